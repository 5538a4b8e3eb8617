"""`tj.image`: the tf.image basics tutorials use, as compositions of ops (so they trace and
compile like any other op). Images are (height, width, channels) or batches of them (NHWC).

`resize` follows TensorFlow 2's half-pixel-centre sampling: output pixel i samples the input
at (i + 0.5) * in / out - 0.5 (bilinear: interpolating along the width, then the height, in
float32, as TF's kernel does; nearest: input pixel floor((i + 0.5) * in / out)). The sampling
positions and weights depend only on the sizes, so they are constants of the graph.

Integer images: tracejit computes with int32, int64, float32 and float64; a uint8 numpy image
becomes int32 when it becomes a tensor. `convert_image_dtype` given the uint8 (or uint16, int8)
numpy array itself scales by that dtype's range, as TF does; given an int32 tensor it scales
by int32's range (TF's rule for int32). Results TF returns as uint8 come back as int32.
"""
import numpy as np

from . import dtypes, errors, ops, random, tracing
from .tensor import TensorOps


def _image(images, what):
    x = tracing.as_operand(images)
    if len(x.shape) not in (3, 4):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{what}: images must be 3-D (height, width, channels) or 4-D (batch, height, '
            f'width, channels), got shape {tuple(x.shape)}'))
    return x


def _positions(in_size, out_size):
    """(lower index, upper index, weight of the upper one) per output pixel, in float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    where = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(where)
    lower = np.maximum(floor, 0).astype(np.int32)
    upper = np.minimum(np.ceil(where), in_size - 1).astype(np.int32)
    return lower, upper, (where - floor).astype(np.float32)


def _nearest(in_size, out_size):
    scale = np.float32(in_size) / np.float32(out_size)
    where = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
    return np.minimum(where, in_size - 1).astype(np.int32)


def _lerp(x, axis, in_size, out_size):
    lower, upper, weight = _positions(in_size, out_size)
    low = ops.gather(x, lower, axis=axis)
    high = ops.gather(x, upper, axis=axis)
    shape = [1] * len(x.shape)
    shape[axis] = out_size
    return low + (high - low) * weight.reshape(shape)


def resize(images, size, method='bilinear', preserve_aspect_ratio=False, antialias=False,
           name=None):
    """Resize to `size` = (height, width): 'bilinear' (float32 result) or 'nearest' (the
    images' dtype)."""
    x = _image(images, 'resize')
    method = getattr(method, 'value', method)
    height, width = (int(d) for d in (size.numpy() if isinstance(size, TensorOps) else size))
    if height < 1 or width < 1:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'resize: size must be positive, got {(height, width)}'))
    if preserve_aspect_ratio or antialias:
        raise errors.UnimplementedError(errors.at_user_line(
            'resize: preserve_aspect_ratio and antialias are not supported'))
    in_h, in_w = x.shape[-3], x.shape[-2]
    if method == 'nearest':
        rows = ops.gather(x, _nearest(in_h, height), axis=len(x.shape) - 3)
        return ops.gather(rows, _nearest(in_w, width), axis=len(x.shape) - 2)
    if method != 'bilinear':
        raise errors.UnimplementedError(errors.at_user_line(
            f"resize: method must be 'bilinear' or 'nearest', got {method!r}"))
    x = ops.cast(x, dtypes.float32)
    x = _lerp(x, len(x.shape) - 2, in_w, width)
    return _lerp(x, len(x.shape) - 3, in_h, height)


def _reverse(x, axis):
    return ops.gather(x, np.arange(x.shape[axis] - 1, -1, -1, dtype=np.int32), axis=axis)


def flip_left_right(image):
    x = _image(image, 'flip_left_right')
    return _reverse(x, len(x.shape) - 2)


def flip_up_down(image):
    x = _image(image, 'flip_up_down')
    return _reverse(x, len(x.shape) - 3)


def _random_flip(image, axis_from_end, seed, what):
    x = _image(image, what)
    batch = (x.shape[0], 1, 1, 1) if len(x.shape) == 4 else ()
    flip = ops.less(random.uniform(batch, seed=seed), 0.5)
    return ops.where(flip, _reverse(x, len(x.shape) - axis_from_end), x)


def random_flip_left_right(image, seed=None):
    """Each image mirrored with probability 1/2, from tj.random's stream (tj.random.set_seed
    makes it reproducible; inside a compiled step each call draws anew)."""
    return _random_flip(image, 2, seed, 'random_flip_left_right')


def random_flip_up_down(image, seed=None):
    return _random_flip(image, 3, seed, 'random_flip_up_down')


def _range_of(np_dtype):
    return np.iinfo(np_dtype).max if np_dtype.kind in 'iu' else 1.0


def convert_image_dtype(image, dtype, saturate=False, name=None):
    """TensorFlow's rules: integers scale to [0, 1] floats by their dtype's maximum; floats
    scale to integers by (maximum + 0.5), clipped first with `saturate`; float to float casts."""
    source = np.asarray(image).dtype if isinstance(image, np.ndarray) else None
    x = tracing.as_operand(image)
    source = source or dtypes.as_np_dtype(x.dtype)
    target = dtypes.as_np_dtype(dtype)
    if source == target:
        return ops.identity(x)
    if source.kind == 'f' and target.kind == 'f':
        return ops.cast(x, target)
    if source.kind in 'iu' and target.kind == 'f':
        return ops.cast(x, target) * (1.0 / _range_of(source))
    if source.kind == 'f' and target.kind in 'iu':
        scaled = ops.cast(x, np.float32 if source.itemsize <= 4 else np.float64) * (
            _range_of(target) + 0.5)
        if saturate:
            info = np.iinfo(target)
            high = np.nextafter(np.asarray(info.max, np.float32), 0) if \
                source.itemsize <= 4 else float(info.max)
            scaled = ops.clip_by_value(scaled, float(info.min), float(high))
        return ops.cast(scaled, dtypes.canonical(target))   # uint8 values as int32
    raise errors.UnimplementedError(errors.at_user_line(
        f'convert_image_dtype from {source.name} to {target.name} is not supported'))


def rgb_to_grayscale(images, name=None):
    """0.2989 R + 0.587 G + 0.114 B, with a last axis of 1, in the images' dtype."""
    source = np.asarray(images).dtype if isinstance(images, np.ndarray) else None
    x = tracing.as_operand(images)
    source = source or dtypes.as_np_dtype(x.dtype)
    floats = convert_image_dtype(images, dtypes.float32)
    weights = np.array([0.2989, 0.587, 0.114], np.float32)
    gray = ops.reduce_sum(floats * weights, axis=-1, keepdims=True)
    return convert_image_dtype(gray, source) if source.kind in 'iu' else ops.cast(gray, source)

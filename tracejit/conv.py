"""Convolutions and pooling with TensorFlow's signatures (tj.nn re-exports them).

Everything is written over three primitives (primitives.py, "windows"): a convolution is
`im2col` (each output position's window as a row) times the filter matrix, so it runs as one
BLAS matmul and its gradients are a matmul (filter) and a matmul plus `col2im` (input); a
depthwise convolution multiplies the windows by the filter and sums them; max pooling is its
own primitive, whose gradient scatters into each window's first maximum found by `pool_argmax`
(TF's MaxPoolGrad); average pooling sums the windows and divides by the number of taps inside
the image (TF's SAME rule). 1-D ops insert a unit height. Images are NHWC; NCHW ('NCW') inputs
are transposed around the NHWC computation.
"""
import numpy as np

from . import errors, ops, primitives as P
from .operands import dtype_of, operand
from .tracing import bind


# ---------------------------------------------------------------------------- arguments

def _fail(message, cls=errors.InvalidArgumentError):
    raise cls(errors.at_user_line(message))


def _spatial(value, what, rank=2, default=None, channels_last=True):
    """TF's forms of strides/dilations/ksize: an int, `rank` ints, or rank + 2 ints in the data
    format's order with 1 at the batch and channel positions."""
    if value is None:
        value = default
    values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values = values * rank
    elif len(values) == rank + 2:
        channel = -1 if channels_last else 1
        if values[0] != 1 or values[channel] != 1:
            _fail(f'{what} {tuple(values)}: the batch and channel entries must be 1')
        values = values[1:-1] if channels_last else values[2:]
    if len(values) != rank or any(v < 1 for v in values):
        _fail(f'{what} must be 1, {rank} or {rank + 2} positive integers, got {value!r}')
    return tuple(values)


def _padding(padding):
    text = str(padding).upper() if isinstance(padding, str) else None
    if text not in ('SAME', 'VALID'):
        _fail(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return text


def _float_operands(op, *values):
    xs = [operand(v) for v in values]
    xs = [ops.constant(x) if not hasattr(x, 'shape') or np.ndim(x) == 0 else x for x in xs]
    kinds = [dtype_of(x) for x in xs]
    if any(k.kind != 'f' for k in kinds) or len(set(kinds)) > 1:
        _fail(f'{op}: needs floating-point operands of one dtype, got '
              f'{" and ".join(k.name for k in kinds)}', errors.DTypeError)
    return xs


def _rank(op, x, rank, what='input'):
    if len(x.shape) != rank:
        _fail(f'{op}: {what} must have rank {rank}, got shape {tuple(x.shape)}', errors.ShapeError)


def _channels_last(data_format, first, last):
    """True for the channels-last format, False for channels-first; anything else is an error."""
    if data_format in (None, last):
        return True
    if data_format == first:
        return False
    _fail(f'data_format must be {last!r} or {first!r}, got {data_format!r}')


def _nhwc(fn, x, channels_last):
    """Apply an NHWC computation to an NCHW input (transposing in and out) or an NHWC one."""
    if channels_last:
        return fn(x)
    return ops.transpose(fn(ops.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))


def windows_transpose(u, size, ksize, strides, dilations, padding):
    """col2im: add each window of `u` (N, OH, OW, KH, KW, C) back into an (N,) + size + (C,)
    image."""
    return bind(P.REGISTRY['col2im'], u, size=tuple(size), ksize=tuple(ksize),
                strides=tuple(strides), dilations=tuple(dilations), padding=padding)


def windows(x, ksize, strides, dilations, padding):
    """im2col: the (N, OH, OW, KH, KW, C) windows of an NHWC image (zeros over the padding)."""
    return bind(P.REGISTRY['im2col'], x, ksize=tuple(ksize), strides=tuple(strides),
                dilations=tuple(dilations), padding=padding)


# ---------------------------------------------------------------------------- convolutions

def _conv2d_arguments(op, image, filters, strides, dilations, padding, data_format,
                      what='filters'):
    """The checked operands and arguments of a 2-D convolution, checked in this order:
    (x, w, channels_last, strides, dilations, padding)."""
    x, w = _float_operands(op, image, filters)
    _rank(op, x, 4)
    _rank(op, w, 4, what)
    channels_last = _channels_last(data_format, 'NCHW', 'NHWC')
    return (x, w, channels_last, _spatial(strides, 'strides', channels_last=channels_last),
            _spatial(dilations, 'dilations', default=1, channels_last=channels_last),
            _padding(padding))


def _conv_nhwc(x, filters, strides, dilations, padding):
    kh, kw, cin, cout = filters.shape
    if x.shape[3] != cin:
        _fail(f'conv2d: input has {x.shape[3]} channels, the filters expect {cin} (filters of '
              f'shape {tuple(filters.shape)})', errors.ShapeError)
    if (kh, kw) == (1, 1) and strides == (1, 1):
        patches = x   # a 1x1 window is the pixel itself, whatever the padding
    else:
        patches = windows(x, (kh, kw), strides, dilations, padding)
    n, oh, ow = patches.shape[:3]
    rows = ops.reshape(patches, (n * oh * ow, kh * kw * cin))
    out = ops.matmul(rows, ops.reshape(filters, (kh * kw * cin, cout)))
    return ops.reshape(out, (n, oh, ow, cout))


def conv2d(input, filters, strides, padding, data_format='NHWC', dilations=None,  # noqa: A002
           name=None):
    """tf.nn.conv2d: filters (kh, kw, in_channels, out_channels)."""
    x, w, channels_last, strides, dilations, padding = _conv2d_arguments(
        'conv2d', input, filters, strides, dilations, padding, data_format)
    return _nhwc(lambda v: _conv_nhwc(v, w, strides, dilations, padding), x, channels_last)


def conv1d(input, filters, stride, padding, data_format='NWC', dilations=None,  # noqa: A002
           name=None):
    """tf.nn.conv1d: input (N, W, C), filters (kw, in_channels, out_channels)."""
    x, w = _float_operands('conv1d', input, filters)
    _rank('conv1d', x, 3)
    _rank('conv1d', w, 3, 'filters')
    channels_last = _channels_last(data_format, 'NCW', 'NWC')
    image = ops.expand_dims(x, 1 if channels_last else 2)
    out = conv2d(image, ops.expand_dims(w, 0), (1,) + _spatial(stride, 'stride', 1), padding,
                 'NHWC' if channels_last else 'NCHW',
                 (1,) + _spatial(dilations, 'dilations', 1, default=1))
    return ops.squeeze(out, 1 if channels_last else 2)


def conv2d_transpose(input, filters, output_shape, strides, padding='SAME',  # noqa: A002
                     data_format='NHWC', dilations=None, name=None):
    """tf.nn.conv2d_transpose, the gradient of conv2d with respect to its input: filters
    (kh, kw, out_channels, in_channels), `output_shape` the full (N, H, W, C) result shape."""
    x, w, channels_last, strides, dilations, padding = _conv2d_arguments(
        'conv2d_transpose', input, filters, strides, dilations, padding, data_format)
    shape = tuple(int(d) for d in np.asarray(output_shape).reshape(-1))
    if len(shape) != 4:
        _fail(f'conv2d_transpose: output_shape must have 4 entries, got {shape}')
    if not channels_last:
        shape = (shape[0], shape[2], shape[3], shape[1])

    def transposed(v):
        n, h, wd, cin = v.shape
        kh, kw, cout, fin = w.shape
        if fin != cin or shape[3] != cout or shape[0] != n:
            _fail(f'conv2d_transpose: input {tuple(v.shape)}, filters {tuple(w.shape)} and '
                  f'output_shape {shape} disagree (filters are (kh, kw, out_channels, '
                  'in_channels))', errors.ShapeError)
        expected = tuple(P.window_geometry(shape[1 + a], (kh, kw)[a], strides[a], dilations[a],
                                           padding)[0] for a in range(2))
        if expected != (h, wd):
            _fail(f'conv2d_transpose: an output of spatial size {shape[1:3]} gives {expected} '
                  f'windows with padding {padding} and strides {strides}, but the input has '
                  f'{(h, wd)}', errors.ShapeError)
        rows = ops.matmul(ops.reshape(v, (n * h * wd, cin)),
                          ops.reshape(w, (kh * kw * cout, cin)), transpose_b=True)
        cols = ops.reshape(rows, (n, h, wd, kh, kw, cout))
        return windows_transpose(cols, shape[1:3], (kh, kw), strides, dilations, padding)
    return _nhwc(transposed, x, channels_last)


def depthwise_conv2d(input, filter, strides, padding, data_format=None,  # noqa: A002
                     dilations=None, name=None):
    """tf.nn.depthwise_conv2d: filter (kh, kw, in_channels, multiplier); output channel
    c * multiplier + m is input channel c convolved with filter[:, :, c, m]."""
    x, w, channels_last, strides, dilations, padding = _conv2d_arguments(
        'depthwise_conv2d', input, filter, strides, dilations, padding, data_format,
        'filter')

    def depthwise(v):
        kh, kw, cin, mult = w.shape
        if v.shape[3] != cin:
            _fail(f'depthwise_conv2d: input has {v.shape[3]} channels, the filter expects {cin}',
                  errors.ShapeError)
        patches = windows(v, (kh, kw), strides, dilations, padding)
        n, oh, ow = patches.shape[:3]
        products = ops.expand_dims(patches, -1) * w
        out = ops.reduce_sum(products, axis=(3, 4))
        return ops.reshape(out, (n, oh, ow, cin * mult))
    return _nhwc(depthwise, x, channels_last)


# ---------------------------------------------------------------------------- pooling

def _max_pool_nhwc(x, ksize, strides, padding):
    return bind(P.REGISTRY['max_pool'], x, ksize=ksize, strides=strides, padding=padding)


def max_pool_grad(ct, x, ksize, strides, padding):
    """The VJP of max pooling: each window's cotangent added at its first maximum."""
    return bind(P.REGISTRY['max_pool_grad'], ct, x, ksize=ksize, strides=strides,
                padding=padding)


def at_window_peaks(ct, x, ksize, strides, padding):
    """The transpose of max_pool_grad in its cotangent: ct (x's shape) read at each window's
    first maximum."""
    index = bind(P.REGISTRY['pool_argmax'], x, ksize=ksize, strides=strides, padding=padding)
    picked = ops.gather(ops.reshape(ct, (-1,)), ops.reshape(index, (-1,)), axis=0)
    return ops.reshape(picked, index.shape)


def _avg_pool_nhwc(x, ksize, strides, padding):
    total = ops.reduce_sum(windows(x, ksize, strides, (1, 1), padding), axis=(3, 4))
    if padding == 'VALID':
        return total / float(ksize[0] * ksize[1])
    counts = [_taps_inside(x.shape[1 + a], ksize[a], strides[a]) for a in range(2)]
    return total / np.multiply.outer(*counts).reshape((1,) + total.shape[1:3] + (1,)).astype(
        dtype_of(x))


def _taps_inside(size, k, stride):
    """How many taps of each SAME window lie inside an axis of `size` (TF divides by these)."""
    out, before = P.window_geometry(size, k, stride, 1, 'SAME')
    starts = np.arange(out) * stride - before
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


def _pool(op, nhwc, input, ksize, strides, padding, data_format, rank):  # noqa: A002
    [x] = _float_operands(op, input)
    _rank(op, x, rank + 2)
    first, last = ('NCW', 'NWC') if rank == 1 else ('NCHW', 'NHWC')
    channels_last = _channels_last(data_format, first, last)
    ksize = _spatial(ksize, 'ksize', rank, channels_last=channels_last)
    strides = _spatial(strides, 'strides', rank, channels_last=channels_last)
    padding = _padding(padding)
    if rank == 1:
        ksize, strides = (1,) + ksize, (1,) + strides
        image = ops.expand_dims(x, 1 if channels_last else 2)
        out = _nhwc(lambda v: nhwc(v, ksize, strides, padding), image, channels_last)
        return ops.squeeze(out, 1 if channels_last else 2)
    return _nhwc(lambda v: nhwc(v, ksize, strides, padding), x, channels_last)


def max_pool2d(input, ksize, strides, padding, data_format='NHWC', name=None):  # noqa: A002
    """tf.nn.max_pool2d; the gradient goes to the first maximum of each window, as in TF."""
    return _pool('max_pool2d', _max_pool_nhwc, input, ksize, strides, padding, data_format, 2)


def avg_pool2d(input, ksize, strides, padding, data_format='NHWC', name=None):  # noqa: A002
    """tf.nn.avg_pool2d; SAME windows average over their taps inside the image."""
    return _pool('avg_pool2d', _avg_pool_nhwc, input, ksize, strides, padding, data_format, 2)


def max_pool1d(input, ksize, strides, padding, data_format='NWC', name=None):  # noqa: A002
    return _pool('max_pool1d', _max_pool_nhwc, input, ksize, strides, padding, data_format, 1)


def avg_pool1d(input, ksize, strides, padding, data_format='NWC', name=None):  # noqa: A002
    return _pool('avg_pool1d', _avg_pool_nhwc, input, ksize, strides, padding, data_format, 1)


def _by_rank(op, pools, input, ksize, strides, padding, data_format):  # noqa: A002
    rank = len(operand(input).shape) - 2
    if rank not in pools:
        _fail(f'{op}: input must have rank 3 or 4 (1-D or 2-D pooling), got rank {rank + 2}',
              errors.ShapeError)
    return pools[rank](input, ksize, strides, padding, data_format or (
        'NWC' if rank == 1 else 'NHWC'))


def max_pool(input, ksize, strides, padding, data_format=None, name=None):  # noqa: A002
    """tf.nn.max_pool: 1-D or 2-D by the input's rank."""
    return _by_rank('max_pool', {1: max_pool1d, 2: max_pool2d}, input, ksize, strides, padding,
                    data_format)


def avg_pool(input, ksize, strides, padding, data_format=None, name=None):  # noqa: A002
    """tf.nn.avg_pool: 1-D or 2-D by the input's rank."""
    return _by_rank('avg_pool', {1: avg_pool1d, 2: avg_pool2d}, input, ksize, strides, padding,
                    data_format)

"""Keras convolution, pooling and image-resizing layers (Keras 3 names, defaults and weight
layouts: kernel (kh, kw, in, out), depthwise kernel (kh, kw, in, multiplier), transposed kernel
(kh, kw, out, in), glorot_uniform kernels, zero biases), over tj.nn's ops.

`get_config()` returns the constructor's keyword arguments, so `cls(**layer.get_config())`
builds an equal layer. `data_format` is 'channels_last' (default) or 'channels_first'.
"""
import re

from .. import errors, nn, ops
from . import activations, initializers
from .base_layer import InputSpec, Layer, unique_name


def _tuple(value, rank, what, least=1):
    values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    values = values * rank if len(values) == 1 else values
    if len(values) != rank or any(v < least for v in values):
        raise ValueError(f'{what} must be {rank} integers >= {least}, got {value!r}')
    return values


def _padding(padding, allowed=('valid', 'same')):
    text = str(padding).lower()
    if text not in allowed:
        raise ValueError(f'padding must be one of {allowed}, got {padding!r}')
    return text


def _data_format(data_format):
    text = data_format or 'channels_last'
    if text not in ('channels_last', 'channels_first'):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f'{data_format!r}')
    return text


def _tf_format(data_format, rank):
    last = data_format == 'channels_last'
    return ('NWC' if last else 'NCW') if rank == 1 else ('NHWC' if last else 'NCHW')


def _check_rank(layer, inputs, rank):
    if len(inputs.shape) != rank + 2:
        raise errors.ShapeError(
            f'Input 0 of layer "{layer.name}" is incompatible with the layer: expected '
            f'ndim={rank + 2}, found ndim={len(inputs.shape)}. Full shape received: '
            f'{tuple(inputs.shape)}')


def _keras_name(class_name):
    """Keras's default layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    return re.sub('([a-z])([A-Z])', r'\1_\2', re.sub('(.)([A-Z][a-z]+)', r'\1_\2',
                                                   class_name)).lower()


class _Base(Layer):
    """Keeps the base layer's own constructor arguments for get_config."""

    def __init__(self, rank, data_format=None, **kwargs):
        if kwargs.get('name') is None:
            kwargs['name'] = unique_name(_keras_name(type(self).__name__))
        super().__init__(**kwargs)
        self.rank = rank
        self.data_format = _data_format(data_format)
        self.input_spec = InputSpec(min_ndim=rank + 2)

    def _channel_axis(self):
        return -1 if self.data_format == 'channels_last' else 1

    def get_config(self):
        config = {'name': self.name, 'trainable': self.trainable, 'dtype': self.dtype.name}
        if self._batch_input_shape is not None:
            config['input_shape'] = tuple(self._batch_input_shape[1:])
        return config


class _Conv(_Base):
    """Shared by Conv1D and Conv2D: kernel (*kernel_size, in // groups, filters)."""

    def __init__(self, rank, filters, kernel_size, strides=1, padding='valid', data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer='glorot_uniform', bias_initializer='zeros', **kwargs):
        super().__init__(rank, data_format, **kwargs)
        if int(filters) != filters or filters < 1:
            raise ValueError(f'filters must be a positive integer, got {filters!r}')
        self.filters, self.groups = int(filters), int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ValueError(f'filters ({filters}) must be a multiple of groups ({groups})')
        self.kernel_size = _tuple(kernel_size, rank, 'kernel_size')
        self.strides = _tuple(strides, rank, 'strides')
        self.dilation_rate = _tuple(dilation_rate, rank, 'dilation_rate')
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f'`strides > 1` not supported in conjunction with `dilation_rate > '
                             f'1`. Received: strides={self.strides} and dilation_rate='
                             f'{self.dilation_rate}')
        self.padding = _padding(padding, ('valid', 'same', 'causal') if rank == 1 else
                                ('valid', 'same'))
        self._activation = activation
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._initializers = (kernel_initializer, bias_initializer)

    def build(self, input_shape):
        channels = int(input_shape[self._channel_axis()])
        if channels % self.groups:
            raise ValueError(f'layer {self.name!r}: {channels} input channels are not a multiple '
                             f'of groups={self.groups}')
        self.kernel = self.add_weight('kernel', self.kernel_size + (
            channels // self.groups, self.filters), initializer=self.kernel_initializer)
        self.bias = self.add_weight('bias', (self.filters,), initializer=self.bias_initializer) \
            if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=self.rank + 2, axes={self._channel_axis(): channels})

    def call(self, inputs):
        _check_rank(self, inputs, self.rank)
        x, padding = inputs, self.padding.upper()
        if self.padding == 'causal':  # left-pad the time axis: output t sees inputs <= t
            x, padding = _pad_time(x, (self.kernel_size[0] - 1) * self.dilation_rate[0],
                                   self._channel_axis()), 'VALID'
        outputs = self._grouped(x, padding)
        if self.bias is not None:
            outputs = outputs + (self.bias if self.data_format == 'channels_last' else
                                 ops.reshape(self.bias, (self.filters,) + (1,) * self.rank))
        return self.activation(outputs)

    def _grouped(self, x, padding):
        """One convolution per group of channels, concatenated (Keras's `groups`)."""
        fmt = _tf_format(self.data_format, self.rank)
        conv = nn.conv1d if self.rank == 1 else nn.conv2d
        strides = self.strides[0] if self.rank == 1 else self.strides
        if self.groups == 1:
            return conv(x, self.kernel, strides, padding, fmt, self.dilation_rate)
        axis = self._channel_axis() % (self.rank + 2)
        per_in, per_out = self.kernel.shape[-2], self.filters // self.groups
        parts = []
        for g in range(self.groups):
            xs = tuple((g * per_in, (g + 1) * per_in, 1) if k == axis else (0, d, 1)
                       for k, d in enumerate(x.shape))
            ks = tuple((g * per_out, (g + 1) * per_out, 1) if k == self.rank + 1 else (0, d, 1)
                       for k, d in enumerate(self.kernel.shape))
            parts.append(conv(ops.slice_(x, xs), ops.slice_(self.kernel, ks), strides, padding,
                              fmt, self.dilation_rate))
        return ops.concat(parts, axis)

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, kernel_size=self.kernel_size,
                    strides=self.strides, padding=self.padding, data_format=self.data_format,
                    dilation_rate=self.dilation_rate, groups=self.groups,
                    activation=self._activation, use_bias=self.use_bias,
                    kernel_initializer=self._initializers[0],
                    bias_initializer=self._initializers[1])


def _pad_time(x, before, channel_axis):
    """Zeros before the time axis of an (N, W, C) / (N, C, W) input."""
    axis = 1 if channel_axis == -1 else 2
    shape = tuple(d + before if k == axis else d for k, d in enumerate(x.shape))
    slices = tuple((before, d, 1) if k == axis else (0, d, 1) for k, d in enumerate(shape))
    return ops.unslice(x, shape, slices)


class Conv1D(_Conv):
    def __init__(self, filters, kernel_size, strides=1, padding='valid', data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer='glorot_uniform', bias_initializer='zeros', **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         **kwargs)


class Conv2D(_Conv):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding='valid', data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer='glorot_uniform', bias_initializer='zeros', **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         **kwargs)


class DepthwiseConv2D(_Base):
    """Each input channel convolved with `depth_multiplier` filters of its own: kernel
    (kh, kw, in, depth_multiplier), output channel c * depth_multiplier + m."""

    def __init__(self, kernel_size, strides=(1, 1), padding='valid', depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer='glorot_uniform', bias_initializer='zeros', **kwargs):
        super().__init__(2, data_format, **kwargs)
        self.kernel_size = _tuple(kernel_size, 2, 'kernel_size')
        self.strides = _tuple(strides, 2, 'strides')
        self.dilation_rate = _tuple(dilation_rate, 2, 'dilation_rate')
        self.padding = _padding(padding)
        self.depth_multiplier = int(depth_multiplier)
        self._activation = activation
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self._initializers = (depthwise_initializer, bias_initializer)

    def build(self, input_shape):
        channels = int(input_shape[self._channel_axis()])
        self.kernel = self.add_weight('kernel', self.kernel_size + (
            channels, self.depth_multiplier), initializer=self._initializers[0])
        self.bias = self.add_weight('bias', (channels * self.depth_multiplier,),
                                    initializer=self._initializers[1]) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=4, axes={self._channel_axis(): channels})

    def call(self, inputs):
        _check_rank(self, inputs, 2)
        outputs = nn.depthwise_conv2d(inputs, self.kernel, self.strides, self.padding.upper(),
                                      _tf_format(self.data_format, 2), self.dilation_rate)
        if self.bias is not None:
            outputs = outputs + (self.bias if self.data_format == 'channels_last' else
                                 ops.reshape(self.bias, (-1, 1, 1)))
        return self.activation(outputs)

    def get_config(self):
        return dict(super().get_config(), kernel_size=self.kernel_size, strides=self.strides,
                    padding=self.padding, depth_multiplier=self.depth_multiplier,
                    data_format=self.data_format, dilation_rate=self.dilation_rate,
                    activation=self._activation, use_bias=self.use_bias,
                    depthwise_initializer=self._initializers[0],
                    bias_initializer=self._initializers[1])


def deconv_output_length(length, kernel, padding, output_padding, stride, dilation):
    """Keras's output size of a transposed convolution along one axis."""
    kernel = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        return length * stride + (max(kernel - stride, 0) if padding == 'valid' else 0)
    pad = kernel // 2 if padding == 'same' else 0
    return (length - 1) * stride + kernel - 2 * pad + output_padding


class Conv2DTranspose(_Conv):
    """The transpose (gradient) of a Conv2D: kernel (kh, kw, filters, in_channels)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding='valid',
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer='glorot_uniform', bias_initializer='zeros',
                 **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         1, activation, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.output_padding = None if output_padding is None else _tuple(
            output_padding, 2, 'output_padding', least=0)

    def build(self, input_shape):
        channels = int(input_shape[self._channel_axis()])
        self.kernel = self.add_weight('kernel', self.kernel_size + (self.filters, channels),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight('bias', (self.filters,), initializer=self.bias_initializer) \
            if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=4, axes={self._channel_axis(): channels})

    def _grouped(self, x, padding):
        last = self.data_format == 'channels_last'
        spatial = x.shape[1:3] if last else x.shape[2:4]
        size = tuple(deconv_output_length(spatial[a], self.kernel_size[a], self.padding,
                                          None if self.output_padding is None else
                                          self.output_padding[a], self.strides[a],
                                          self.dilation_rate[a]) for a in range(2))
        shape = (x.shape[0],) + size + (self.filters,) if last else \
            (x.shape[0], self.filters) + size
        return nn.conv2d_transpose(x, self.kernel, shape, self.strides, padding,
                                   _tf_format(self.data_format, 2), self.dilation_rate)

    def get_config(self):
        config = super().get_config()
        del config['groups']
        return dict(config, output_padding=self.output_padding)


class _Pooling(_Base):
    def __init__(self, rank, pool, pool_size, strides=None, padding='valid', data_format=None,
                 **kwargs):
        super().__init__(rank, data_format, **kwargs)
        self._pool = pool
        self.pool_size = _tuple(pool_size, rank, 'pool_size')
        self.strides = self.pool_size if strides is None else _tuple(strides, rank, 'strides')
        self.padding = _padding(padding)

    def call(self, inputs):
        _check_rank(self, inputs, self.rank)
        return self._pool(inputs, self.pool_size, self.strides, self.padding.upper(),
                          _tf_format(self.data_format, self.rank))

    def get_config(self):
        return dict(super().get_config(), pool_size=self.pool_size, strides=self.strides,
                    padding=self.padding, data_format=self.data_format)


class MaxPooling1D(_Pooling):
    def __init__(self, pool_size=2, strides=None, padding='valid', data_format=None, **kwargs):
        super().__init__(1, nn.max_pool1d, pool_size, strides, padding, data_format, **kwargs)


class MaxPooling2D(_Pooling):
    def __init__(self, pool_size=(2, 2), strides=None, padding='valid', data_format=None,
                 **kwargs):
        super().__init__(2, nn.max_pool2d, pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(_Pooling):
    def __init__(self, pool_size=2, strides=None, padding='valid', data_format=None, **kwargs):
        super().__init__(1, nn.avg_pool1d, pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_Pooling):
    def __init__(self, pool_size=(2, 2), strides=None, padding='valid', data_format=None,
                 **kwargs):
        super().__init__(2, nn.avg_pool2d, pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(_Base):
    def __init__(self, rank, reduce, data_format=None, keepdims=False, **kwargs):
        super().__init__(rank, data_format, **kwargs)
        self._reduce, self.keepdims = reduce, bool(keepdims)

    def call(self, inputs):
        _check_rank(self, inputs, self.rank)
        first = 1 if self.data_format == 'channels_last' else 2
        return self._reduce(inputs, axis=list(range(first, first + self.rank)),
                            keepdims=self.keepdims)

    def get_config(self):
        return dict(super().get_config(), data_format=self.data_format, keepdims=self.keepdims)


class GlobalAveragePooling1D(_GlobalPooling):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(1, ops.reduce_mean, data_format, keepdims, **kwargs)


class GlobalAveragePooling2D(_GlobalPooling):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(2, ops.reduce_mean, data_format, keepdims, **kwargs)


class GlobalMaxPooling1D(_GlobalPooling):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(1, ops.reduce_max, data_format, keepdims, **kwargs)


class GlobalMaxPooling2D(_GlobalPooling):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(2, ops.reduce_max, data_format, keepdims, **kwargs)


def _pairs(padding):
    """ZeroPadding2D's forms: an int, (sym_h, sym_w), or ((top, bottom), (left, right))."""
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if len(padding) == 2 and all(isinstance(p, int) for p in padding):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    if len(padding) == 2 and all(len(p) == 2 for p in padding):
        return tuple((int(a), int(b)) for a, b in padding)
    raise ValueError(f'padding must be an int, 2 ints or 2 pairs of ints, got {padding!r}')


class ZeroPadding2D(_Base):
    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(2, data_format, **kwargs)
        self.padding = _pairs(padding)
        if any(p < 0 for pair in self.padding for p in pair):
            raise ValueError(f'padding must not be negative, got {padding!r}')

    def call(self, inputs):
        _check_rank(self, inputs, 2)
        first = 1 if self.data_format == 'channels_last' else 2
        pads = {first: self.padding[0], first + 1: self.padding[1]}
        shape = tuple(d + sum(pads.get(k, (0, 0))) for k, d in enumerate(inputs.shape))
        slices = tuple((pads.get(k, (0, 0))[0], pads.get(k, (0, 0))[0] + d, 1)
                       for k, d in enumerate(inputs.shape))
        return ops.unslice(inputs, shape, slices)

    def get_config(self):
        return dict(super().get_config(), padding=self.padding, data_format=self.data_format)


class UpSampling2D(_Base):
    """Repeats rows and columns `size` times ('nearest'; Keras's only other mode, 'bilinear',
    is not provided)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation='nearest', **kwargs):
        super().__init__(2, data_format, **kwargs)
        self.size = _tuple(size, 2, 'size')
        if interpolation != 'nearest':
            raise ValueError(f"UpSampling2D supports interpolation='nearest', got "
                             f'{interpolation!r}')
        self.interpolation = interpolation

    def call(self, inputs):
        _check_rank(self, inputs, 2)
        first = 1 if self.data_format == 'channels_last' else 2
        shape = list(inputs.shape)
        spread = shape[:first] + [shape[first], 1, shape[first + 1], 1] + shape[first + 2:]
        target = list(spread)
        target[first + 1], target[first + 3] = self.size
        out = ops.broadcast_to(ops.reshape(inputs, spread), target)
        shape[first], shape[first + 1] = shape[first] * self.size[0], shape[first + 1] * \
            self.size[1]
        return ops.reshape(out, shape)

    def get_config(self):
        return dict(super().get_config(), size=self.size, data_format=self.data_format,
                    interpolation=self.interpolation)


# Keras's alternative names
Convolution1D, Convolution2D, Convolution2DTranspose = Conv1D, Conv2D, Conv2DTranspose
MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, \
    AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D

__all__ = ['Conv1D', 'Conv2D', 'Conv2DTranspose', 'DepthwiseConv2D', 'MaxPooling1D',
           'MaxPooling2D', 'AveragePooling1D', 'AveragePooling2D', 'GlobalAveragePooling1D',
           'GlobalAveragePooling2D', 'GlobalMaxPooling1D', 'GlobalMaxPooling2D', 'ZeroPadding2D',
           'UpSampling2D']

"""Keras layers, all importable from here: the base `Layer` (base_layer.py), the basic layers
`Dense`, `Activation`, `Flatten`, `Dropout` defined below, and the layers of the other modules.
"""
from .. import nn, ops
from . import activations, initializers, serialization
from .base_layer import InputSpec, Layer, unique_name  # noqa: F401 (public names)
from .conv_layers import (  # noqa: F401 (public names)
    AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, Conv1D, Conv2D, Conv2DTranspose,
    Convolution1D, Convolution2D, Convolution2DTranspose, DepthwiseConv2D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D,
    UpSampling2D, ZeroPadding2D)


class Dense(Layer):
    """`activation(inputs @ kernel + bias)` over the last axis of the inputs."""

    supports_masking = True   # per timestep: a sequence mask passes through (Sequential)

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer='glorot_uniform',
                 bias_initializer='zeros', **kwargs):
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f'Dense units must be a positive integer, got {units!r}')
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(min_ndim=2)

    def get_config(self):
        return {**self._base_config(), 'units': self.units,
                'activation': activations.serialize(self.activation), 'use_bias': self.use_bias,
                'kernel_initializer': initializers.serialize(self.kernel_initializer),
                'bias_initializer': initializers.serialize(self.bias_initializer)}

    def build(self, input_shape):
        last = input_shape[-1]
        if last is None:
            raise ValueError(f'layer {self.name!r}: the last dimension of the inputs must be '
                             f'known, got shape {input_shape}')
        self.kernel = self.add_weight('kernel', (int(last), self.units),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight('bias', (self.units,), initializer=self.bias_initializer) \
            if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: int(last)})

    def call(self, inputs):
        shape = tuple(inputs.shape)
        if len(shape) == 2:
            outputs = ops.matmul(inputs, self.kernel)
        else:
            flat = ops.matmul(ops.reshape(inputs, (-1, shape[-1])), self.kernel)
            outputs = ops.reshape(flat, shape[:-1] + (self.units,))
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)


class Activation(Layer):
    supports_masking = True   # elementwise: a sequence mask passes through (Sequential)

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); a rank-1 input becomes (batch, 1)."""

    def call(self, inputs):
        return ops.reshape(inputs, (tuple(inputs.shape)[0], -1))


class Dropout(Layer):
    """With `training=True`, zero each input with probability `rate` and scale the rest by
    1 / (1 - rate); otherwise the identity. Masks come from tj.random, so a compiled step
    draws a new mask every call."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f'Dropout rate must be in [0, 1), got {rate}')
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return ops.identity(inputs)
        noise_shape = None if self.noise_shape is None else tuple(
            size if d is None else d for d, size in zip(self.noise_shape, inputs.shape))
        return nn.dropout(inputs, self.rate, noise_shape=noise_shape)


from .activation_layers import LeakyReLU, ReLU, Softmax  # noqa: E402,F401
from .core_layers import Lambda, Rescaling  # noqa: E402,F401
from .functional import Input, InputLayer  # noqa: E402,F401
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply,  # noqa: E402,F401
                      Subtract, add, average, concatenate, maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization, LayerNormalization  # noqa: E402,F401
from .reshaping import Permute, RepeatVector, Reshape  # noqa: E402,F401
from .embedding import Embedding  # noqa: E402,F401
from .recurrent import GRU, LSTM, RNN, SimpleRNN  # noqa: E402,F401
from .recurrent_cells import (GRUCell, LSTMCell, SimpleRNNCell,  # noqa: E402,F401
                              StackedRNNCells)
from .wrappers import Bidirectional, TimeDistributed  # noqa: E402,F401

serialization.register_builtins(
    'keras.layers', globals(), lambda obj: isinstance(obj, type) and issubclass(obj, Layer))

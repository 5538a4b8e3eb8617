"""Activation layers with options: `Softmax`, `ReLU`, `LeakyReLU` (Keras 3 names and defaults)."""
import warnings

from .. import nn, ops
from .base_layer import Layer

_LARGE_NEGATIVE = -1e9   # what Keras adds to masked-out logits before a softmax


class Softmax(Layer):
    """softmax over `axis` (an int or a tuple of axes); positions where `mask` is False get
    (almost) no probability."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs + (1.0 - ops.cast(mask, inputs.dtype)) * _LARGE_NEGATIVE
        return ops.softmax(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), 'axis': self.axis}


class ReLU(Layer):
    """x above `threshold` (capped at `max_value`), `negative_slope * (x - threshold)` below,
    computed the way Keras 3 does so that gradients at the kinks agree."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f'max_value of a ReLU layer cannot be a negative value, got '
                             f'{max_value}')
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f'negative_slope of a ReLU layer cannot be a negative value, got '
                             f'{negative_slope}')
        if threshold is None:
            raise ValueError('threshold of a ReLU layer cannot be None; use a number')
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def call(self, inputs):
        slope, threshold = self.negative_slope, self.threshold
        if slope and self.max_value is None and threshold == 0:
            return nn.leaky_relu(inputs, alpha=slope)
        max_value = self.max_value
        if threshold:
            outputs = inputs * ops.cast(ops.greater(inputs, threshold), inputs.dtype)
        elif max_value == 6:     # TF's relu6, whose gradient is 0 at 6 (clip's would be 1)
            outputs, max_value = ops.where(ops.less(inputs, 6.0), ops.relu(inputs), 6.0), None
        else:
            outputs = ops.relu(inputs)
        if max_value is not None:
            outputs = ops.clip_by_value(outputs, 0.0, max_value)
        if slope:
            outputs = outputs - slope * ops.relu(threshold - inputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), 'max_value': self.max_value,
                'negative_slope': self.negative_slope, 'threshold': self.threshold}


class LeakyReLU(Layer):
    """x for x > 0, `negative_slope * x` otherwise; `alpha=` (the older Keras name) is
    accepted with a warning, as Keras 3 does."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if 'alpha' in kwargs:
            negative_slope = kwargs.pop('alpha')
            warnings.warn('Argument `alpha` is deprecated. Use `negative_slope` instead.',
                          stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError('The negative_slope value of a Leaky ReLU layer cannot be None or '
                             f'negative, got {negative_slope}')
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return nn.leaky_relu(inputs, alpha=self.negative_slope)

    def get_config(self):
        return {**super().get_config(), 'negative_slope': self.negative_slope}

"""`Lambda` (a layer around a function) and `Rescaling` (x * scale + offset)."""
import inspect

from .. import ops
from .base_layer import Layer


class Lambda(Layer):
    """Calls `function(inputs, **arguments)`; `mask` and `training` are passed on when the
    function takes them. It has no weights of its own (Variables it closes over are read but
    not tracked, as in Keras)."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f'Lambda needs a callable, got {function!r}')
        self.function, self.output_shape = function, output_shape
        self.mask, self.arguments = mask, dict(arguments or {})
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):   # some builtins have no signature
            params = {}
        self._passes = [name for name in ('mask', 'training') if name in params]

    def call(self, inputs, mask=None, training=None):
        extra = {'mask': mask, 'training': training}
        return self.function(inputs, **self.arguments, **{k: extra[k] for k in self._passes})

    def get_config(self):
        return {**super().get_config(), 'function': self.function,
                'output_shape': self.output_shape, 'mask': self.mask,
                'arguments': self.arguments}


class Rescaling(Layer):
    """`inputs * scale + offset`, in the layer's float dtype (integer images become floats)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, inputs):
        inputs = ops.cast(inputs, self._dtype)
        return inputs * ops.cast(self.scale, self._dtype) + ops.cast(self.offset, self._dtype)

    def get_config(self):
        return {**super().get_config(), 'scale': self.scale, 'offset': self.offset}

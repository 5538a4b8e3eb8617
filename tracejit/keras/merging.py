"""Layers that merge a list of inputs: `Concatenate`, `Add`, `Subtract`, `Multiply`, `Average`,
`Maximum`, `Minimum`, and their function forms (`add([a, b])`, `concatenate([a, b])`, ...).

The elementwise merges broadcast as Keras does (shapes must agree where both sizes are not 1).
"""
import functools

from .. import errors, ops
from .base_layer import Layer


class _Merge(Layer):
    """Base: `call` gets a list of at least `min_inputs` tensors and folds them with `_merge`."""

    min_inputs = 1

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f'A merge layer ({self.name!r}) should be called on a list of '
                             f'inputs, got {type(inputs).__name__}')
        if len(inputs) < self.min_inputs:
            raise ValueError(f'layer {self.name!r} should be called on a list of at least '
                             f'{self.min_inputs} inputs, got {len(inputs)}')
        self._check_shapes([tuple(x.shape) for x in inputs])
        return self._merge(list(inputs))

    def _check_shapes(self, shapes):
        for shape in shapes[1:]:
            for a, b in zip(shapes[0][::-1], shape[::-1]):
                if a != b and 1 not in (a, b):
                    raise errors.ShapeError(f'layer {self.name!r}: inputs with shapes '
                                            f'{shapes} cannot be merged (they do not broadcast)')

    def _merge(self, inputs):
        return functools.reduce(self._pair, inputs)


class Add(_Merge):
    _pair = staticmethod(ops.add)


class Multiply(_Merge):
    _pair = staticmethod(ops.multiply)


class Maximum(_Merge):
    _pair = staticmethod(ops.maximum)


class Minimum(_Merge):
    _pair = staticmethod(ops.minimum)


class Subtract(_Merge):
    """inputs[0] - inputs[1]; exactly two inputs."""

    min_inputs = 2

    def _merge(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f'A `Subtract` layer should be called on exactly 2 inputs, got '
                             f'{len(inputs)}')
        return inputs[0] - inputs[1]


class Average(_Merge):
    def _merge(self, inputs):
        return functools.reduce(ops.add, inputs) * (1.0 / len(inputs))


class Concatenate(_Merge):
    """Join the inputs along `axis`; every other size must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        rank = len(shapes[0])
        axis = self.axis % rank if -rank <= self.axis < rank else None
        if axis is None or any(len(s) != rank for s in shapes) or any(
                len({s[k] for s in shapes}) > 1 for k in range(rank) if k != axis):
            raise errors.ShapeError(
                f'A `Concatenate` layer ({self.name!r}) requires inputs with matching shapes '
                f'except for the concatenation axis {self.axis}. Received: input_shape={shapes}')

    def _merge(self, inputs):
        return ops.concat(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), 'axis': self.axis}


def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = f'`{cls.__name__}(**kwargs)(inputs)`.'
    return merge


add, multiply, maximum, minimum, subtract, average = (
    _functional(c) for c in (Add, Multiply, Maximum, Minimum, Subtract, Average))


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)

"""Layers that rearrange the non-batch axes: `Reshape`, `Permute`, `RepeatVector`."""
import numpy as np

from .. import errors, ops
from .base_layer import InputSpec, Layer


class Reshape(Layer):
    """Each sample to `target_shape` (one size may be -1, inferred from the others)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if self.target_shape.count(-1) > 1 or any(d < -1 or d == 0 for d in self.target_shape):
            raise ValueError(f'Reshape target_shape must hold positive sizes and at most one '
                             f'-1, got {tuple(target_shape)}')

    def call(self, inputs):
        shape = tuple(inputs.shape)
        size = int(np.prod(shape[1:], dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            raise errors.ShapeError(
                f'layer {self.name!r}: cannot reshape samples of shape {shape[1:]} ({size} '
                f'values) to target_shape {self.target_shape}')
        return ops.reshape(inputs, (shape[0],) + self.target_shape)

    def get_config(self):
        return {**super().get_config(), 'target_shape': self.target_shape}


class Permute(Layer):
    """Reorder the non-batch axes: `dims` is a permutation of 1..rank-1 (1-indexed)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f'Invalid permutation argument `dims` for Permute Layer. The set '
                             f'of indices in `dims` must be consecutive and start from 1. '
                             f'Received dims={tuple(dims)}')
        self.input_spec = InputSpec(min_ndim=len(self.dims) + 1)

    def call(self, inputs):
        if len(inputs.shape) != len(self.dims) + 1:
            raise errors.ShapeError(f'layer {self.name!r}: dims {self.dims} permute '
                                    f'{len(self.dims)} axes, but the inputs have shape '
                                    f'{tuple(inputs.shape)}')
        return ops.transpose(inputs, (0,) + self.dims)

    def get_config(self):
        return {**super().get_config(), 'dims': self.dims}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): each sample repeated `n` times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if int(n) != n or n < 1:
            raise ValueError(f'RepeatVector n must be a positive integer, got {n!r}')
        self.n = int(n)
        self.input_spec = InputSpec(min_ndim=2)

    def call(self, inputs):
        batch, features = inputs.shape if len(inputs.shape) == 2 else (None, None)
        if batch is None:
            raise errors.ShapeError(f'layer {self.name!r} needs inputs of rank 2 (batch, '
                                    f'features), got shape {tuple(inputs.shape)}')
        return ops.broadcast_to(ops.expand_dims(inputs, 1), (batch, self.n, features))

    def get_config(self):
        return {**super().get_config(), 'n': self.n}

"""`Tensor` (an immutable eager value) and the mixin it shares with Variables and tracers.

`ops.py` installs the mixin's Python operators, each calling the user-facing op, so `a + b`,
`tj.add(a, b)` and the same code under `@tj.function` all go through one path: `ops` ->
`tracing.bind` -> eager numpy rule or IR. This module depends on nothing above dtypes.
"""
import itertools

import numpy as np

from . import dtypes

_uids = itertools.count(1)


class TensorOps:
    """What anything that behaves like a tensor shares: TensorFlow-style methods here, and the
    Python operators (`+`, `@`, `<`, `[]`, `.T`, ...), which `ops.py` installs."""

    __array_priority__ = 100  # numpy defers `ndarray + tensor` to our reflected operators
    __hash__ = object.__hash__

    def __pos__(self):
        return self

    @property
    def ndim(self):
        return len(self.shape)

    def get_shape(self):
        return self.shape

    def __len__(self):
        if not self.shape:
            raise TypeError('len() of a scalar (0-d) tensor')
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError('iteration over a scalar (0-d) tensor')
        return (self[i] for i in range(self.shape[0]))


class Tensor(TensorOps):
    """An immutable eager value holding a numpy array."""

    __slots__ = ('_value', '_uid')

    def __init__(self, value):
        self._value = value
        self._uid = next(_uids)

    weak = False
    shape = property(lambda self: self._value.shape)
    dtype = property(lambda self: dtypes.as_dtype(self._value.dtype))

    def numpy(self):
        """The value as numpy (a 0-d tensor gives a numpy scalar, as in TensorFlow)."""
        value = self._value.copy()
        return value[()] if value.ndim == 0 else value

    def __array__(self, dtype=None, copy=None):
        return self._value if dtype is None else self._value.astype(dtype)

    def __bool__(self):
        return bool(self._value)

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __index__(self):
        if not dtypes.is_int(self._value.dtype):
            raise TypeError(f'only integer tensors can be used as an index, not {self.dtype.name}')
        return int(self._value)

    def __format__(self, spec):
        value = self._value
        return format(value.item() if value.ndim == 0 else value, spec)

    def __repr__(self):
        return (f'<tj.Tensor: shape={self.shape}, dtype={self.dtype.name}, '
                f'numpy={_np_repr(self._value)}>')

    def __str__(self):
        return f'tj.Tensor({_np_repr(self._value)}, shape={self.shape}, dtype={self.dtype.name})'


def _np_repr(value):
    """numpy's shortest round-trip digits for the dtype (float32 0.1 prints as 0.1, 9 as 9.0)."""
    if value.ndim == 0 and value.dtype.kind == 'f':
        return np.format_float_positional(value[()], trim='0')
    return np.array2string(value, separator=', ') if value.ndim else str(value[()])

"""`tj.TensorSpec`: the shape (None for any size) and dtype a tensor must have."""
import numpy as np

from . import dtypes


class TensorSpec:
    """TensorFlow's tf.TensorSpec. `shape` None means any rank; a None entry means any size."""

    __slots__ = ('shape', 'dtype', 'name')

    def __init__(self, shape, dtype=dtypes.float32, name=None):
        self.shape = None if shape is None else tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtypes.as_dtype(dtype)
        self.name = name

    @classmethod
    def from_array(cls, array, name=None):
        array = np.asarray(array)
        return cls(array.shape, array.dtype, name)

    def is_compatible_with(self, value):
        """Whether `value` (an array, a tensor or a TensorSpec) fits this spec."""
        if not isinstance(value, TensorSpec) and not hasattr(value, 'dtype'):
            value = np.asarray(value, dtype=self.dtype.np if isinstance(value, (int, float))
                               else None)   # a Python number fits any numeric dtype
        shape = value.shape if isinstance(value, TensorSpec) else tuple(np.shape(value))
        dtype = dtypes.as_dtype(value.dtype)
        if dtype != self.dtype:
            return False
        if self.shape is None or shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            a is None or b is None or a == b for a, b in zip(self.shape, shape))

    def most_specific_common_supertype(self, other):
        """The narrowest spec both fit (sizes that differ become None)."""
        if self.shape is None or other.shape is None or len(self.shape) != len(other.shape):
            return TensorSpec(None, self.dtype)
        return TensorSpec([a if a == b else None for a, b in zip(self.shape, other.shape)],
                          self.dtype)

    def __eq__(self, other):
        return (isinstance(other, TensorSpec) and self.shape == other.shape
                and self.dtype == other.dtype and self.name == other.name)

    def __hash__(self):
        return hash((self.shape, self.dtype, self.name))

    def __repr__(self):
        shape = 'None' if self.shape is None else \
            '(' + ', '.join(map(str, self.shape)) + (',)' if len(self.shape) == 1 else ')')
        return f'TensorSpec(shape={shape}, dtype={self.dtype!r}, name={self.name!r})'

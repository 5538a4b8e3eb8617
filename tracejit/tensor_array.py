"""`tj.TensorArray`: TensorFlow's TensorArray as far as a static-shape IR allows.

The array is one tensor of shape (size, *element_shape); `write` returns a new TensorArray
(functional, as in TF 2: `ta = ta.write(i, x)`), `read` gathers a row, `stack` is the tensor.
It is a pytree (a one-field namedtuple), so it passes through `tj.while_loop` and `tj.scan`
as a loop variable. The size is static and the element shape must be known before a loop
writes it (`element_shape=`, or a first write before the loop); a dynamic size is refused with
an error saying so.
"""
import collections

import numpy as np

from . import dtypes, errors, ops
from .operands import operand
from .tensor import TensorOps
from .tracing import Tracer


class TensorArray(collections.namedtuple('TensorArray', ['buffer'])):
    """TensorFlow's tf.TensorArray(dtype, size, dynamic_size, ..., element_shape)."""

    __slots__ = ()

    def __new__(cls, dtype, size=None, dynamic_size=None, clear_after_read=None,
                tensor_array_name=None, handle=None, flow=None, infer_shape=True,
                element_shape=None, colocate_with_first_write_call=True, name=None):
        if isinstance(dtype, TensorOps) and size is None:   # rebuilt from its leaf (pytrees)
            return super().__new__(cls, dtype)
        if dynamic_size:
            raise errors.InvalidArgumentError(errors.at_user_line(
                'tj.TensorArray: dynamic_size=True is not supported: compiled arrays have a '
                'static size; pass size=<the number of elements>'))
        if size is None or isinstance(operand(size, 'size'), Tracer):
            raise errors.InvalidArgumentError(errors.at_user_line(
                'tj.TensorArray needs a static size (a Python int)'))
        size = int(np.asarray(size))
        dtype = dtypes.as_dtype(dtype)
        if element_shape is None:
            return _Unshaped(dtype, size)
        return super().__new__(cls, ops.zeros((size,) + tuple(element_shape), dtype))

    @property
    def dtype(self):
        return self.buffer.dtype

    @property
    def element_shape(self):
        return tuple(self.buffer.shape[1:])

    def size(self, name=None):
        return ops.constant(self.buffer.shape[0], dtypes.int32)

    def read(self, index, name=None):
        return ops.gather(self.buffer, self._index(index))

    def write(self, index, value, name=None):
        value = ops.cast(operand(value, 'value'), self.buffer.dtype)
        if tuple(value.shape) != self.element_shape:
            raise errors.ShapeError(errors.at_user_line(
                f'TensorArray.write: value of shape {tuple(value.shape)} into an array of '
                f'elements of shape {self.element_shape}'))
        rows = tuple(self.buffer.shape)
        at = ops.reshape(ops.range(rows[0]), (rows[0],) + (1,) * (len(rows) - 1))
        hit = ops.equal(at, ops.cast(self._index(index), dtypes.int32))
        return TensorArray(ops.where(hit, ops.expand_dims(value, 0), self.buffer))

    def stack(self, name=None):
        return self.buffer

    def unstack(self, value, name=None):
        value = ops.cast(operand(value, 'value'), self.buffer.dtype)
        if tuple(value.shape) != tuple(self.buffer.shape):
            raise errors.ShapeError(errors.at_user_line(
                f'TensorArray.unstack: a tensor of shape {tuple(value.shape)} into an array of '
                f'shape {tuple(self.buffer.shape)}'))
        return TensorArray(value)

    def gather(self, indices, name=None):
        return ops.gather(self.buffer, indices)

    def _index(self, index):
        index = operand(index, 'index')
        if not isinstance(index, Tracer):
            n = int(self.buffer.shape[0])
            i = int(np.asarray(index))
            if not 0 <= i < n:
                raise errors.InvalidArgumentError(errors.at_user_line(
                    f'TensorArray: index {i} is out of range for an array of size {n}'))
        return index


class _Unshaped:
    """A TensorArray before its first write tells its element shape (outside compiled loops)."""

    def __init__(self, dtype, size):
        self.dtype, self._size = dtype, size

    def size(self, name=None):
        return ops.constant(self._size, dtypes.int32)

    def write(self, index, value, name=None):
        value = operand(value, 'value')
        return TensorArray(self.dtype, self._size, element_shape=tuple(value.shape)).write(
            index, value)

    def unstack(self, value, name=None):
        value = operand(value, 'value')
        return TensorArray(self.dtype, self._size, element_shape=tuple(value.shape)[1:]).unstack(
            value)

    def _missing(self, *args, **kwargs):
        raise errors.InvalidArgumentError(errors.at_user_line(
            'this tj.TensorArray has no element shape yet: write to it first, or pass '
            'element_shape= (needed when a tj.while_loop or tj.scan carries it)'))

    read = stack = gather = _missing

"""`IndexedSlices`: TensorFlow's sparse slices of a tensor along its first axis.

The gradient of a gather along axis 0 is one: `values[j]` is the cotangent of row `indices[j]`
of a tensor of shape `dense_shape`, repeated indices meaning rows to add up. Inside a compiled
function `values` and `indices` are traced values, so the IR carries the slices as they are and
an optimizer can update just those rows; every op that needs a tensor converts them to dense
(a scatter-add of the rows into zeros), as TF's conversion function does. Like TF's, the class
has no arithmetic operators beyond negation: `tj.multiply(slices, 2.0)` converts, `slices * 2`
is a TypeError.
"""
import numpy as np

from . import errors, ops, tracing
from .operands import dtype_of, operand
from .tensor import Tensor
from .tracing import Tracer


class IndexedSlices:
    """A sparse representation of `dense_shape`-shaped data: rows `indices` hold `values`."""

    def __init__(self, values, indices, dense_shape=None):
        self._values = operand(values, 'values')
        self._indices = operand(indices, 'indices')
        if not np.issubdtype(dtype_of(self._indices), np.integer):
            raise errors.DTypeError(errors.at_user_line(
                f'IndexedSlices: indices must be integers, got {dtype_of(self._indices).name}'))
        self._dense_shape = None if dense_shape is None else _static_shape(dense_shape)

    values = property(lambda self: self._values)
    indices = property(lambda self: self._indices)
    dtype = property(lambda self: self._values.dtype)

    @property
    def dense_shape(self):
        """The shape of the dense tensor, as an int32 tensor (TF's gradients give int32)."""
        if self._dense_shape is None:
            return None
        return ops.constant(np.asarray(self._dense_shape, _shape_dtype(self._dense_shape)))

    @property
    def shape(self):
        """The dense shape as a tuple (like every tracejit shape); rows unknown without one."""
        if self._dense_shape is not None:
            return self._dense_shape
        return (None,) + tuple(self._values.shape[1:])

    def __neg__(self):
        return IndexedSlices(ops.negative(self._values), self._indices, self._dense_shape)

    def __array__(self, dtype=None, copy=None):
        dense = np.asarray(to_dense(self))
        return dense if dtype is None else dense.astype(dtype)

    def __repr__(self):
        return (f'IndexedSlices(indices={self._indices!r}, values={self._values!r}, '
                f'dense_shape={self.dense_shape!r})')


def _static_shape(dense_shape):
    if isinstance(dense_shape, Tracer):   # a constant of the graph (another slices' shape)
        dense_shape = dense_shape.trace.graph.consts.get(dense_shape.var)
    if dense_shape is None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'IndexedSlices: dense_shape must be known while tracing (a list of ints or a '
            'concrete tensor), not a traced value'))
    return tuple(int(d) for d in np.asarray(dense_shape).reshape(-1))


def _shape_dtype(shape):
    return np.int32 if all(d < 2**31 for d in shape) else np.int64


def to_dense(slices):
    """The dense tensor: the rows of `values` added into zeros at `indices`."""
    if slices._dense_shape is None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'Tensor conversion requested for IndexedSlices without dense_shape; pass '
            'dense_shape= when creating it'))
    values = ops.reshape(slices.values, (-1,) + tuple(slices._dense_shape[1:]))
    indices = ops.reshape(slices.indices, (-1,))
    return ops.scatter_add(values, indices, 0, slices._dense_shape[0])


def densify(value):
    """`value` itself, or the dense tensor of IndexedSlices."""
    return to_dense(value) if isinstance(value, IndexedSlices) else value


def of_gather(ct, indices, dense_shape):
    """The gradient of `gather(params, indices)` along axis 0, as TF's gather gradient builds
    it: every index once per occurrence, `values` flattened to one row per index."""
    tail = tuple(dense_shape[1:])
    flat = ops.reshape(indices, (-1,))
    return IndexedSlices(ops.reshape(ct, (int(np.prod(flat.shape)),) + tail), flat, dense_shape)


def accumulate(total, ct):
    """`total + ct` for gradients: slices of one tensor concatenate (TF's aggregation of
    IndexedSlices); if either is dense, both are added densely."""
    if total is None:
        return ct
    if isinstance(total, IndexedSlices) and isinstance(ct, IndexedSlices):
        return IndexedSlices(ops.concat([total.values, ct.values], 0),
                             ops.concat([total.indices, ops.cast(ct.indices,
                                                                 total.indices.dtype)], 0),
                             total._dense_shape)
    return ops.add(densify(total), densify(ct))


def _as_tensor(value):
    dense = to_dense(value)
    return dense if isinstance(dense, (Tensor, Tracer)) else ops.constant(dense)


tracing.register_conversion(IndexedSlices, _as_tensor)

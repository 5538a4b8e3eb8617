"""Scatters: TF's tensor_scatter_nd_*, scatter_nd, `Variable.scatter_*` and compat.v1's
scatter_update/scatter_add, all as one primitive, `scatter_rows`.

An n-d index `[i0, .., ik-1]` into the first k axes is turned into one row number of the
tensor viewed as (rows, *row), so every scatter is a row scatter. A Variable's scatter is
`assign(scatter_rows(value, ...))`; inside a compiled step the kernel writes those rows into
the Variable's buffer in place (see backend/codegen.py), in program order with its other
reads and writes. Indices are checked as TF checks them on CPU: an index outside the tensor
is an InvalidArgumentError, and nothing is written.
"""
import numpy as np

from . import errors, ops
from .indexed_slices import IndexedSlices
from .operands import SCALARS, dtype_of, operand
from .tracing import Tracer, check_in_range, require_in_range, to_array
from .variables import Variable


def _int_indices(indices, what):
    indices = operand(indices, 'indices')
    if isinstance(indices, SCALARS):
        indices = np.asarray(indices)
    if not np.issubdtype(dtype_of(indices), np.integer):
        raise errors.DTypeError(errors.at_user_line(
            f'{what}: indices must be integers, got {dtype_of(indices).name}'))
    return indices


def _checked_nd(indices, shape, what):
    """Each component of the n-d indices (..., depth) inside its axis of `shape`."""
    depth = tuple(indices.shape)[-1] if indices.shape else 0
    if not 1 <= depth <= len(shape):
        raise errors.ShapeError(errors.at_user_line(
            f'{what}: the last axis of indices ({tuple(indices.shape)}) must index 1 to '
            f'{len(shape)} axes of a tensor of shape {tuple(shape)}'))
    message = f'{what}: indices must lie inside the tensor of shape {tuple(shape)}'
    if isinstance(indices, Tracer):
        require_in_range(indices, 0, max(shape[:depth]), message)
    else:
        values = np.asarray(indices).reshape(-1, depth)
        for axis in range(depth):
            check_in_range(values[:, axis], 0, shape[axis], message)
    return depth


def _row_numbers(indices, shape, depth):
    """Row numbers of the tensor viewed as (prod(shape[:depth]), *shape[depth:])."""
    flat = ops.reshape(indices, (-1, depth))
    if depth == 1:
        return ops.reshape(flat, (-1,))
    strides = np.cumprod((1,) + tuple(shape[1:depth])[::-1])[::-1].astype(dtype_of(indices))
    return ops.reduce_sum(flat * strides, axis=1)


def _scatter_nd(tensor, indices, updates, mode, what, negate=False):
    tensor = operand(tensor, 'tensor')
    shape = tuple(tensor.shape)
    indices = _int_indices(indices, what)
    depth = _checked_nd(indices, shape, what)
    rows = _row_numbers(indices, shape, depth)
    updates = _updates_like(updates, tensor, (int(np.prod(rows.shape)),) + shape[depth:], what)
    return ops.scatter_rows(tensor, rows, ops.negative(updates) if negate else updates, mode,
                            depth)


def _updates_like(updates, tensor, row_shape, what):
    """`updates` as rows of `row_shape`; Python numbers, lists and numpy arrays take the dtype
    of `tensor`, as TF converts them (tensors must have it)."""
    if isinstance(updates, (list, tuple, np.ndarray, *SCALARS)):
        updates = to_array(updates, 'updates', dtype_of(tensor))
    updates = operand(updates, 'updates')
    count = int(np.prod(tuple(updates.shape), dtype=np.int64))
    if count != int(np.prod(row_shape, dtype=np.int64)):
        raise errors.ShapeError(errors.at_user_line(
            f'{what}: updates of shape {tuple(updates.shape)} do not match the indices, which '
            f'need rows of total shape {row_shape}'))
    return ops.reshape(updates, row_shape)


def tensor_scatter_nd_update(tensor, indices, updates, name=None):
    """A copy of `tensor` with the elements or slices at `indices` replaced by `updates`."""
    return _scatter_nd(tensor, indices, updates, 'update', 'tensor_scatter_nd_update')


def tensor_scatter_nd_add(tensor, indices, updates, name=None):
    return _scatter_nd(tensor, indices, updates, 'add', 'tensor_scatter_nd_add')


def tensor_scatter_nd_sub(tensor, indices, updates, name=None):
    return _scatter_nd(tensor, indices, updates, 'add', 'tensor_scatter_nd_sub', negate=True)


def tensor_scatter_nd_max(tensor, indices, updates, name=None):
    return _scatter_nd(tensor, indices, updates, 'max', 'tensor_scatter_nd_max')


def tensor_scatter_nd_min(tensor, indices, updates, name=None):
    return _scatter_nd(tensor, indices, updates, 'min', 'tensor_scatter_nd_min')


def scatter_nd(indices, updates, shape, name=None):
    """Zeros of `shape` with `updates` added at `indices` (repeated indices add up)."""
    updates = operand(updates, 'updates')
    zeros = ops.zeros([int(d) for d in np.asarray(shape).reshape(-1)], dtype_of(updates))
    return _scatter_nd(zeros, indices, updates, 'add', 'scatter_nd')


# ---------------------------------------------------------------------------- Variables

def _scatter_variable(variable, indices, updates, mode, what, negate=False):
    """`variable` with rows `indices` (any shape, over axis 0) combined with `updates`."""
    with variable._lock:
        indices = _int_indices(indices, what)
        rows = variable.shape[0] if variable.shape else 0
        require_in_range(indices, 0, rows,
                         f'{what}: indices must be in [0, {rows}) for Variable '
                         f'{variable.name!r} of shape {variable.shape}')
        flat = ops.reshape(indices, (-1,))
        value = variable.value()
        updates = _updates_like(updates, value, tuple(flat.shape) + variable.shape[1:], what)
        variable.assign(ops.scatter_rows(value, flat, ops.negative(updates) if negate
                                         else updates, mode))
    return variable


def _sparse_delta(sparse_delta, what):
    if not isinstance(sparse_delta, IndexedSlices):
        raise TypeError(errors.at_user_line(
            f'{what}: argument `sparse_delta` must be a tj.IndexedSlices, got '
            f'{type(sparse_delta).__name__}'))
    return sparse_delta.indices, sparse_delta.values


def _variable_method(mode, what, negate=False):
    def method(self, sparse_delta, use_locking=False, name=None):
        indices, values = _sparse_delta(sparse_delta, f'Variable.{what}')
        return _scatter_variable(self, indices, values, mode, f'Variable.{what}', negate)
    method.__name__ = what
    method.__doc__ = f'TF\'s Variable.{what}: rows `sparse_delta.indices` ({mode}).'
    return method


def _variable_nd_method(mode, what, negate=False):
    def method(self, indices, updates, name=None):
        with self._lock:
            self.assign(_scatter_nd(self.value(), indices, updates, mode, f'Variable.{what}',
                                    negate))
        return self
    method.__name__ = what
    method.__doc__ = f'TF\'s Variable.{what}: elements or slices at n-d `indices` ({mode}).'
    return method


def scatter_update(ref, indices, updates, use_locking=True, name=None):
    """compat.v1's scatter_update: rows `indices` of the Variable `ref` set to `updates`."""
    return _scatter_variable(_variable(ref, 'scatter_update'), indices, updates, 'update',
                             'scatter_update')


def scatter_add(ref, indices, updates, use_locking=False, name=None):
    """compat.v1's scatter_add: `updates` added to rows `indices` (repeats add up)."""
    return _scatter_variable(_variable(ref, 'scatter_add'), indices, updates, 'add',
                             'scatter_add')


def scatter_sub(ref, indices, updates, use_locking=False, name=None):
    return _scatter_variable(_variable(ref, 'scatter_sub'), indices, updates, 'add',
                             'scatter_sub', negate=True)


def _variable(ref, what):
    if not isinstance(ref, Variable):
        raise TypeError(errors.at_user_line(
            f'{what}: ref must be a tj.Variable, got {type(ref).__name__}'))
    return ref


for _name, _mode, _negate in [('scatter_update', 'update', False), ('scatter_add', 'add', False),
                              ('scatter_sub', 'add', True), ('scatter_max', 'max', False),
                              ('scatter_min', 'min', False)]:
    setattr(Variable, _name, _variable_method(_mode, _name, _negate))
for _name, _mode, _negate in [('scatter_nd_update', 'update', False),
                              ('scatter_nd_add', 'add', False), ('scatter_nd_sub', 'add', True)]:
    setattr(Variable, _name, _variable_nd_method(_mode, _name, _negate))

"""The primitive registry: every primitive declared once, with everything each layer needs.

A record holds the shape/dtype rule, the numpy rule (eager execution and the IR interpreter),
the fusion kind the backend partitions by, and the codegen template; `vjps.py` adds the VJP rule
of each differentiable primitive (written with ops, which are built on this module). `ops.py`
builds the public API from these; the tests loop over `REGISTRY`. This module imports nothing
of tracejit's but errors.
"""
import time

import numpy as np

from . import errors

REGISTRY = {}
KINDS = ('elementwise', 'reduction', 'layout', 'matmul', 'rowwise', 'source', 'collective',
         'host', 'control')


class Primitive:
    """One primitive op. `codegen` is an expression template for elementwise ops, else a tag."""

    def __init__(self, name, impl, shape_rule, kind, codegen, differentiable=True):
        assert kind in KINDS, kind
        self.name, self.impl, self.shape_rule = name, impl, shape_rule
        self.vjp = None  # set by vjps.defvjp
        self.kind, self.codegen, self.differentiable = kind, codegen, differentiable
        REGISTRY[name] = self

    def check(self, *avals, **params):
        """Output avals [(shape, dtype, weak)]; shape/dtype errors name the op and user line."""
        try:
            return self.shape_rule(*avals, **params)
        except (errors.ShapeError, errors.DTypeError) as e:
            raise type(e)(errors.at_user_line(f'{self.name}: {e}')) from None

    def run(self, *values, **params):
        """Apply the numpy rule; outputs are arrays of exactly the dtypes the shape rule says."""
        avals = self.check(*values, **params)
        with np.errstate(all='ignore'):
            return self._shaped(self.impl(*values, **params), avals)

    def apply(self, node, values):
        """The numpy rule on a traced node's input values, without the shape rule: tracing
        ran it, and the node's outputs hold its avals (the interpreter runs a graph many
        times; the rules cost more than the numpy work of small steps). The caller holds
        np.errstate(all='ignore')."""
        return self._shaped(self.impl(*values, **node.params),
                            [(v.shape, v.dtype, v.weak) for v in node.outputs])

    @staticmethod
    def _shaped(results, avals):
        if not isinstance(results, tuple):
            results = (results,)
        return [np.asarray(r, dtype=dtype).reshape(shape)
                for r, (shape, dtype, _) in zip(results, avals)]

    def __repr__(self):
        return f'Primitive({self.name})'


# ---------------------------------------------------------------------------- shape rules

def broadcast_shapes(*shapes):
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise errors.ShapeError(
                'incompatible shapes ' + ' vs '.join(str(tuple(s)) for s in shapes)
                + ' (dimensions must be equal or 1 to broadcast)')
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _same_dtype(avals):
    dts = {np.dtype(a.dtype) for a in avals}
    if len(dts) > 1:
        raise errors.DTypeError('operands have different dtypes ' + ' vs '.join(
            np.dtype(a.dtype).name for a in avals) + '; cast one with tj.cast')
    return dts.pop()


def _elementwise(out_dtype=None, float_only=False):
    def rule(*avals):
        dtype = _same_dtype(avals)
        if float_only and dtype.kind != 'f':
            raise errors.DTypeError(f'needs a floating-point operand, got {dtype.name}')
        weak = all(getattr(a, 'weak', False) for a in avals)
        return [(broadcast_shapes(*(a.shape for a in avals)), out_dtype or dtype, weak)]
    return rule


def _bool_operands(*avals):
    for a in avals:
        if np.dtype(a.dtype) != np.bool_:
            raise errors.DTypeError(f'needs bool operands, got {np.dtype(a.dtype).name}')
    return [(broadcast_shapes(*(a.shape for a in avals)), np.dtype(np.bool_), False)]


def _select_rule(cond, x, y):
    if np.dtype(cond.dtype) != np.bool_:
        raise errors.DTypeError(f'condition must be bool, got {np.dtype(cond.dtype).name}')
    dtype = _same_dtype([x, y])
    return [(broadcast_shapes(cond.shape, x.shape, y.shape), dtype, False)]


def _fresh_read_rule(value, entry):
    dtype = _same_dtype([value, entry])
    if tuple(value.shape) != tuple(entry.shape):
        raise errors.ShapeError(f'a Variable read of shape {tuple(value.shape)} with an entry '
                                f'value of shape {tuple(entry.shape)}')
    return [(tuple(value.shape), dtype, False)]


def _reduced_shape(shape, axes):
    for ax in axes:
        if not 0 <= ax < len(shape):
            raise errors.ShapeError(f'axis {ax} is out of range for shape {tuple(shape)}')
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_rule(x, *, axes):
    return [(_reduced_shape(x.shape, axes), np.dtype(x.dtype), False)]


def _argreduce_rule(x, *, axis):
    return [(_reduced_shape(x.shape, (axis,)), np.dtype(np.int64), False)]


def _broadcast_to_rule(x, *, shape):
    if broadcast_shapes(x.shape, shape) != tuple(shape) or len(x.shape) > len(shape):
        raise errors.ShapeError(f'cannot broadcast {tuple(x.shape)} to {tuple(shape)}')
    return [(tuple(shape), np.dtype(x.dtype), getattr(x, 'weak', False))]


def _reshape_rule(x, *, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise errors.ShapeError(f'cannot reshape {tuple(x.shape)} ({int(np.prod(x.shape))} '
                                f'elements) to {tuple(shape)} ({int(np.prod(shape))} elements)')
    return [(tuple(shape), np.dtype(x.dtype), getattr(x, 'weak', False))]


def _transpose_rule(x, *, perm):
    if sorted(perm) != list(range(len(x.shape))):
        raise errors.ShapeError(f'perm {perm} is not a permutation of the axes of {tuple(x.shape)}')
    return [(tuple(x.shape[p] for p in perm), np.dtype(x.dtype), False)]


def _slice_len(start, stop, step):
    return len(range(start, stop, step))


def _slice_rule(x, *, slices):
    if len(slices) != len(x.shape):
        raise errors.ShapeError(f'{len(slices)} slices for a rank-{len(x.shape)} operand')
    return [(tuple(_slice_len(*s) for s in slices), np.dtype(x.dtype), False)]


def _unslice_rule(u, *, shape, slices):
    if tuple(_slice_len(*s) for s in slices) != tuple(u.shape):
        raise errors.ShapeError(f'update of shape {tuple(u.shape)} does not fit slices {slices}')
    return [(tuple(shape), np.dtype(u.dtype), False)]


def _concat_rule(*xs, axis):
    dtype = _same_dtype(xs)
    first = tuple(xs[0].shape)
    for x in xs[1:]:
        shape = tuple(x.shape)
        if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, shape))
                                           if i != axis):
            raise errors.ShapeError(f'cannot concatenate shapes {first} and {shape} on axis {axis}')
    size = sum(x.shape[axis] for x in xs)
    return [(first[:axis] + (size,) + first[axis + 1:], dtype, False)]


def _check_indices(indices):
    if np.dtype(indices.dtype).kind not in 'iu':
        raise errors.DTypeError(f'indices must be integers, got {np.dtype(indices.dtype).name}')


def _gather_rule(x, indices, *, axis):
    _check_indices(indices)
    shape = tuple(x.shape)
    return [(shape[:axis] + tuple(indices.shape) + shape[axis + 1:], np.dtype(x.dtype), False)]


def _scatter_add_rule(u, indices, *, axis, size):
    _check_indices(indices)
    shape, k = tuple(u.shape), len(indices.shape)
    if shape[axis:axis + k] != tuple(indices.shape):
        raise errors.ShapeError(f'updates {shape} do not match indices {tuple(indices.shape)}')
    return [(shape[:axis] + (size,) + shape[axis + k:], np.dtype(u.dtype), False)]


def _matmul_rule(a, b, *, transpose_a, transpose_b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    dtype = _same_dtype([a, b])
    if len(sa) < 2 or len(sb) < 2 or sa[:-2] != sb[:-2]:
        raise errors.ShapeError(
            f'matmul needs matrices with equal batch dimensions, got {sa} and {sb}')
    m, k1 = sa[-2:][::-1] if transpose_a else sa[-2:]
    k2, n = sb[-2:][::-1] if transpose_b else sb[-2:]
    if k1 != k2:
        raise errors.ShapeError(f'matrix size-incompatible: {sa} @ {sb} '
                                f'(inner dimensions {k1} and {k2} differ)')
    return [(sa[:-2] + (m, n), dtype, False)]


def _source_rule(*, shape, dtype, **_):
    return [(tuple(shape), np.dtype(dtype), False)]


def _random_rule(key, *, shape, dtype):
    if np.dtype(key.dtype) != np.int64 or tuple(key.shape) != ():
        raise errors.DTypeError('random key must be an int64 scalar')
    return _source_rule(shape=shape, dtype=dtype)


def _host_rule(order, *operands, call):
    """A call back into Python (`callbacks.HostCall`): its outputs are what it declares.
    Input 0 only orders it after the previous host call (its first output, or a constant)."""
    return [(tuple(shape), np.dtype(dtype), False) for shape, dtype in call.out_avals]


def _one_or_tuple(results):
    return results[0] if len(results) == 1 else tuple(results)


def _convert_rule(x, *, dtype):
    return [(tuple(x.shape), np.dtype(dtype), False)]


# -- row scatters into a tensor (Variable.scatter_*, tensor_scatter_nd_*), the duplicate-
#    summing of sparse gradients, embedding bags and the sparse optimizer updates

SCATTER_MODES = ('update', 'add', 'max', 'min')


def _scatter_rows_rule(base, indices, updates, *, mode, depth):
    _check_indices(indices)
    if mode not in SCATTER_MODES:
        raise errors.InvalidArgumentError(f'scatter mode must be one of {SCATTER_MODES}')
    dtype = _same_dtype([base, updates])
    shape = tuple(base.shape)
    if len(indices.shape) != 1 or not 1 <= depth <= len(shape) \
            or tuple(updates.shape) != tuple(indices.shape) + shape[depth:]:
        raise errors.ShapeError(
            f'updates of shape {tuple(updates.shape)} do not fit indices of shape '
            f'{tuple(indices.shape)} into rows of shape {shape[depth:]} of {shape}')
    return [(shape, dtype, False)]


def _sum_duplicates_rule(values, indices):
    _check_indices(indices)
    if len(indices.shape) != 1 or tuple(values.shape[:1]) != tuple(indices.shape):
        raise errors.ShapeError(f'values of shape {tuple(values.shape)} do not match indices of '
                                f'shape {tuple(indices.shape)}')
    return [(tuple(values.shape), np.dtype(values.dtype), False)]


def _gather_sum_rule(x, indices):
    _check_indices(indices)
    if np.dtype(x.dtype).kind != 'f' or not x.shape or not indices.shape:
        raise errors.ShapeError(f'gather_sum needs a float table and indices of rank >= 1, got '
                                f'{np.dtype(x.dtype).name} {tuple(x.shape)} and indices '
                                f'{tuple(indices.shape)}')
    return [(tuple(indices.shape[:-1]) + tuple(x.shape[1:]), np.dtype(x.dtype), False)]


def _check_row_update(base, indices, values, scale, repeat, decays):
    """The checks shared by the sparse optimizer updates: float rows, a scalar coefficient,
    1-D indices, value j // repeat for index j, decays in [0, 1]; returns the dtype."""
    _check_indices(indices)
    dtype = _same_dtype([base, values, scale])
    if dtype.kind != 'f' or not all(0.0 <= d <= 1.0 for d in decays):
        raise errors.InvalidArgumentError(f'row updates need float rows and decays in [0, 1]; '
                                          f'got {dtype} and {decays}')
    if len(indices.shape) != 1 or not base.shape or scale.shape != () \
            or not isinstance(repeat, int) or repeat < 1 or not values.shape \
            or values.shape[0] * repeat != indices.shape[0] \
            or tuple(values.shape[1:]) != tuple(base.shape[1:]):
        raise errors.ShapeError(f'values of shape {tuple(values.shape)}, each repeated {repeat} '
                                f'times, do not fit indices of shape {tuple(indices.shape)} '
                                f'into rows of {tuple(base.shape)}')
    return dtype


def _accumulate_rows_rule(base, indices, values, scale, *, decay, power, repeat):
    if power not in (1, 2):
        raise errors.InvalidArgumentError(f'accumulate_rows: power must be 1 or 2, got {power!r}')
    return [(tuple(base.shape), _check_row_update(base, indices, values, scale, repeat,
                                                   (decay,)), False)]


def _lazy_adam_rows_rule(var, indices, m, v, values, lr, *, beta_1, beta_2, epsilon, repeat):
    dtype = _check_row_update(var, indices, values, lr, repeat, (beta_1, beta_2))
    _same_dtype([var, m, v])
    if not tuple(var.shape) == tuple(m.shape) == tuple(v.shape):
        raise errors.ShapeError(f'lazy_adam_rows needs var, m and v of one shape, got '
                                f'{tuple(var.shape)}, {tuple(m.shape)}, {tuple(v.shape)}')
    return [(tuple(var.shape), dtype, False)] * 3


# ---------------------------------------------------------------------------- numpy rules

def _slices(slices):
    return tuple(slice(start, None if stop < 0 else stop, step) for start, stop, step in slices)


def _unslice(u, *, shape, slices):
    out = np.zeros(shape, u.dtype)
    out[_slices(slices)] = u
    return out


def _scatter_add(u, indices, *, axis, size):
    shape = u.shape[:axis] + (size,) + u.shape[axis + indices.ndim:]
    out = np.zeros(shape, u.dtype)
    moved = np.moveaxis(out, axis, 0)
    np.add.at(moved, indices, np.moveaxis(u, list(range(axis, axis + indices.ndim)),
                                          list(range(indices.ndim))))
    return out


def _gather(x, i, *, axis):
    """np.take, with kernels.gather3's error for an out-of-range index: indices that reach this
    rule unchecked were computed in a traced step (eager ones were range-checked by ops)."""
    n = x.shape[axis]
    if i.size and (i.min() < -n or i.max() >= n):
        raise IndexError('gather: an index computed inside the compiled step is out of range')
    return np.take(x, i, axis=axis)


def _scatter_rows(base, indices, updates, *, mode, depth):
    """A copy of `base` viewed as (rows, row) over its first `depth` axes, with row indices[j]
    set to (or combined with) updates[j] in order: the last of repeated updates wins."""
    rows = int(np.prod(base.shape[:depth], dtype=np.int64))
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        raise IndexError('scatter: an index computed inside the compiled step is out of range')
    out = np.array(base).reshape((rows,) + base.shape[depth:])
    if mode == 'update':
        for j, i in enumerate(indices):
            out[i] = updates[j]
    else:
        {'add': np.add, 'max': np.maximum, 'min': np.minimum}[mode].at(out, indices, updates)
    return out.reshape(base.shape)


def _sum_duplicates(values, indices):
    """Each row replaced by the sum of the rows with the same index (in index order)."""
    _, inverse = np.unique(indices, return_inverse=True)
    sums = np.zeros((int(inverse.max()) + 1 if inverse.size else 0,) + values.shape[1:],
                    values.dtype)
    np.add.at(sums, inverse.reshape(-1), values)
    return sums[inverse.reshape(-1)]


def _gather_sum(x, indices):
    """The rows of `x` at `indices`, summed over the last axis of `indices` (an embedding
    bag): gather then reduce_sum, which passes.embedding_bags fuses into this."""
    return np.sum(_gather(x, indices, axis=0), axis=indices.ndim - 1, dtype=np.float64)


def _row_sums(indices, values, repeat, rows):
    """The distinct indices and the sum (in index order) of the values of each, value
    j // repeat going with index j; range-checked like kernels.scatter_rows2."""
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        raise IndexError('scatter: an index computed inside the compiled step is out of range')
    distinct, inverse = np.unique(indices, return_inverse=True)
    sums = np.zeros((len(distinct),) + values.shape[1:], values.dtype)
    np.add.at(sums, inverse.reshape(-1), np.repeat(values, repeat, axis=0))
    return distinct, sums


def _accumulate_rows(base, indices, values, scale, *, decay, power, repeat):
    """A sparse update on the rows seen (LazyAdam's moments, SGD's step): for each distinct
    index r, with S the sum (in index order) of the values of r, row r becomes decay * row +
    scale * S**power; the other rows are kept. `repeat`: value j // repeat goes with index j
    (the gradient of a sum or mean over looked-up rows, kept unbroadcast by
    passes.row_repeats)."""
    rows, sums = _row_sums(indices, values, repeat, base.shape[0])
    out = np.array(base)
    out[rows] = base.dtype.type(decay) * base[rows] + scale * (sums * sums if power == 2
                                                                else sums)
    return out


def _lazy_adam_rows(var, indices, m, v, values, lr, *, beta_1, beta_2, epsilon, repeat):
    """TF Addons' LazyAdam on the rows seen: with S the summed values of a distinct index r,
    m[r] and v[r] move towards S and S**2, then var[r] -= lr * m[r] / (sqrt(v[r]) + epsilon);
    other rows are kept. Returns the new (var, m, v)."""
    rows, sums = _row_sums(indices, values, repeat, var.shape[0])
    kind = var.dtype.type
    var_out, m_out, v_out = np.array(var), np.array(m), np.array(v)
    m_out[rows] = kind(beta_1) * m[rows] + kind(1.0 - beta_1) * sums
    v_out[rows] = kind(beta_2) * v[rows] + kind(1.0 - beta_2) * (sums * sums)
    var_out[rows] = var[rows] - lr * m_out[rows] / (np.sqrt(v_out[rows]) + kind(epsilon))
    return var_out, m_out, v_out


def _matmul(a, b, *, transpose_a, transpose_b):
    return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a,
                     np.swapaxes(b, -1, -2) if transpose_b else b)


def _iota(*, shape, axis, dtype):
    index_shape = [1] * len(shape)
    index_shape[axis] = shape[axis]
    return np.broadcast_to(np.arange(shape[axis], dtype=dtype).reshape(index_shape), shape)


SPLITMIX_GAMMA = 0x9E3779B97F4A7C15


def random_bits(key, shape):
    """Counter-based uint64 stream: splitmix64 of (key * gamma + element index)."""
    z = np.uint64(key % 2**64) * np.uint64(SPLITMIX_GAMMA) + np.arange(
        int(np.prod(shape)), dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))).reshape(shape)


def _random_uniform(key, *, shape, dtype):
    bits = random_bits(int(key), shape)
    if np.dtype(dtype) == np.float32:
        return (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _allreduce_rule(x, *, comm, timeout):
    if np.dtype(x.dtype).kind not in 'iuf':
        raise errors.DTypeError(f'allreduce needs a numeric operand, got {np.dtype(x.dtype).name}')
    return [(tuple(x.shape), np.dtype(x.dtype), False)]


def _allreduce_sum(x, *, comm, timeout):
    """The sum of `x` over the processes of the MPI communicator `comm` (a handle; 0 is this
    process alone), waited for at most `timeout` seconds. Eager collectives are mpi4py's."""
    if comm == 0:
        return x.copy()
    from mpi4py import MPI
    out = np.empty(x.shape, x.dtype)
    request = MPI.Comm.fromhandle(comm).Iallreduce(np.ascontiguousarray(x), out, MPI.SUM)
    deadline = time.monotonic() + timeout
    while not request.Test():
        if time.monotonic() > deadline:
            raise errors.DeadlineExceededError(
                f'allreduce timed out after {timeout:g} s: another rank died, stopped early or '
                f'runs a different step (TRACEJIT_DISTRIBUTE_TIMEOUT sets the limit)')
    return out


def _rowwise_rule(x):
    if len(x.shape) < 1 or np.dtype(x.dtype).kind != 'f':
        raise errors.DTypeError(f'needs a floating-point operand of rank >= 1, got '
                                f'{np.dtype(x.dtype).name}{list(x.shape)}')
    return [(tuple(x.shape), np.dtype(x.dtype), False)]


def _log_softmax(x):
    """Over the last axis, shifted by the row maximum (0 where that is not finite)."""
    peak = np.max(x, axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,))
    peak = np.where(np.isfinite(peak), peak, 0).astype(x.dtype)
    shifted = x - peak
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True, dtype=np.float64)
                            ).astype(x.dtype)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


# ---------------------------------------------------------------------------- declarations

def unary(name, impl, template, float_only=True):
    Primitive(name, impl, _elementwise(float_only=float_only), 'elementwise', template)


def binary(name, impl, template):
    Primitive(name, impl, _elementwise(), 'elementwise', template)


def nondiff(name, impl, rule, kind, template):
    Primitive(name, impl, rule, kind, template, differentiable=False)


unary('neg', np.negative, '(-{0})', float_only=False)
unary('exp', np.exp, 'exp{bits}({0})')
unary('log', np.log, 'log{bits}({0})')
unary('log1p', np.log1p, 'log1p{bits}({0})')
unary('sqrt', np.sqrt, 'np.sqrt({0})')
unary('tanh', np.tanh, 'tanh{bits}({0})')
unary('sigmoid', _sigmoid, 'sigmoid{bits}({0})')
unary('softplus', lambda x: np.logaddexp(0, x), 'softplus{bits}({0})')
unary('sin', np.sin, 'np.sin({0})')
unary('cos', np.cos, 'np.cos({0})')
unary('abs', np.abs, 'np.abs({0})', float_only=False)
unary('sign', np.sign, 'np.sign({0})', float_only=False)
unary('relu', lambda x: np.maximum(x, 0), 'np.maximum({0}, {dtype}(0))', float_only=False)
unary('floor', np.floor, 'np.floor({0})')

binary('add', np.add, '({0} + {1})')
binary('sub', np.subtract, '({0} - {1})')
binary('mul', np.multiply, '({0} * {1})')
binary('div', np.divide, '({0} / {1})')
binary('pow', np.power, '({0} ** {1})')
binary('max', np.maximum, 'np.maximum({0}, {1})')
binary('min', np.minimum, 'np.minimum({0}, {1})')

COMPARISONS = {'eq': (np.equal, '=='), 'ne': (np.not_equal, '!='), 'lt': (np.less, '<'),
               'le': (np.less_equal, '<='), 'gt': (np.greater, '>'), 'ge': (np.greater_equal, '>=')}
for _name, (_fn, _sym) in COMPARISONS.items():
    nondiff(_name, _fn, _elementwise(out_dtype=np.dtype(np.bool_)), 'elementwise',
            f'({{0}} {_sym} {{1}})')
nondiff('stop_gradient', lambda x: x, _elementwise(), 'elementwise', '{0}')
# A read of a Variable inside a sub-graph: `value` is its current value, `entry` its value on
# entry to the sub-graph; the cotangent goes to `entry` (the Variable), never through `value`
# (an assignment is not differentiated, as in TensorFlow). The simplifier drops it; `entry`
# is an operand for the VJP only.
Primitive('fresh_read', lambda value, entry: value, _fresh_read_rule, 'elementwise',
          '({0} if True else {1})')
nondiff('and', np.logical_and, _bool_operands, 'elementwise', '({0} & {1})')
nondiff('or', np.logical_or, _bool_operands, 'elementwise', '({0} | {1})')
nondiff('not', np.logical_not, _bool_operands, 'elementwise', '(not {0})')

Primitive('select', np.where, _select_rule, 'elementwise', '({1} if {0} else {2})')
Primitive('convert', lambda x, *, dtype: x.astype(dtype), _convert_rule, 'elementwise',
          '{dtype}({0})')

Primitive('reduce_sum', lambda x, *, axes: np.sum(x, axis=axes), _reduce_rule, 'reduction',
          '{acc} + {0}')
Primitive('reduce_max', lambda x, *, axes: np.max(x, axis=axes), _reduce_rule, 'reduction',
          'np.maximum({acc}, {0})')
Primitive('reduce_min', lambda x, *, axes: np.min(x, axis=axes), _reduce_rule, 'reduction',
          'np.minimum({acc}, {0})')
nondiff('argmax', lambda x, *, axis: np.argmax(x, axis=axis), _argreduce_rule, 'reduction', '>')
nondiff('argmin', lambda x, *, axis: np.argmin(x, axis=axis), _argreduce_rule, 'reduction', '<')

Primitive('broadcast_to', lambda x, *, shape: np.broadcast_to(x, shape), _broadcast_to_rule,
          'layout', 'broadcast')
Primitive('reshape', lambda x, *, shape: np.reshape(x, shape), _reshape_rule, 'layout',
          'reshape')
Primitive('transpose', lambda x, *, perm: np.transpose(x, perm), _transpose_rule, 'layout',
          'transpose')
Primitive('slice', lambda x, *, slices: x[_slices(slices)], _slice_rule, 'layout', 'slice')
Primitive('unslice', _unslice, _unslice_rule, 'layout', 'unslice')
Primitive('concat', lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_rule, 'layout',
          'concat')
Primitive('gather', _gather, _gather_rule, 'layout', 'gather')
Primitive('gather_sum', _gather_sum, _gather_sum_rule, 'layout', 'gather_sum')
Primitive('scatter_add', _scatter_add, _scatter_add_rule, 'layout', 'scatter_add')
Primitive('scatter_rows', _scatter_rows, _scatter_rows_rule, 'layout', 'scatter_rows')
Primitive('sum_duplicates', _sum_duplicates, _sum_duplicates_rule, 'layout', 'sum_duplicates')
# optimizer updates of the rows a sparse gradient touches (SGD, LazyAdam); never differentiated
nondiff('accumulate_rows', _accumulate_rows, _accumulate_rows_rule, 'layout', 'accumulate_rows')
nondiff('lazy_adam_rows', _lazy_adam_rows, _lazy_adam_rows_rule, 'layout', 'lazy_adam_rows')
Primitive('matmul', _matmul, _matmul_rule, 'matmul', 'np.dot')
Primitive('log_softmax', _log_softmax, _rowwise_rule, 'rowwise', 'log_softmax_rows')

Primitive('allreduce_sum', _allreduce_sum, _allreduce_rule, 'collective', 'allreduce_sum')

nondiff('iota', _iota, _source_rule, 'source', 'iota')
# side effects at run time (tj.print, py_function, assertions): every pass keeps them, in order
nondiff('host_call', lambda order, *operands, call: _one_or_tuple(call(list(operands))),
        _host_rule, 'host', 'host_call')
nondiff('random_uniform', _random_uniform, _random_rule, 'source', 'random_uniform')


# ---------------------------------------------------------------------------- windows
# Convolution and pooling over NHWC images. `im2col` copies each output position's window into
# a (N, OH, OW, KH, KW, C) array (zeros where the window hangs over the padding), so a
# convolution is one matmul; `col2im`, its transpose, adds windows back into an image.
# `max_pool` takes each window's maximum; `pool_argmax` finds each window's first maximum (TF's
# MaxPoolGrad tie rule) as a flat index into the image, so max pooling's gradient is a
# scatter. Padding is 'SAME' or 'VALID' with TF's arithmetic; pad sizes are derived from the
# array sizes wherever they are needed, so a kernel stays generic in them.

def window_geometry(size, k, stride, dilation, padding):
    """(output size, padding before) of one spatial axis, as TensorFlow computes them."""
    span = (k - 1) * dilation + 1
    if padding == 'VALID':
        if size < span:
            raise errors.ShapeError(f'a window spanning {span} does not fit in an input of size '
                                    f'{size} with padding VALID')
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def _window_params(ksize, strides, dilations, padding):
    if padding not in ('SAME', 'VALID'):
        raise errors.InvalidArgumentError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    for what, values in (('ksize', ksize), ('strides', strides), ('dilations', dilations)):
        if len(values) != 2 or any(int(v) < 1 for v in values):
            raise errors.InvalidArgumentError(f'{what} must be two positive integers, got '
                                              f'{tuple(values)}')


def _image(x, what='input'):
    if len(x.shape) != 4:
        raise errors.ShapeError(f'{what} must be a rank-4 NHWC image, got shape {tuple(x.shape)}')


def _out_hw(shape, ksize, strides, dilations, padding):
    return tuple(window_geometry(shape[1 + a], ksize[a], strides[a], dilations[a], padding)[0]
                 for a in range(2))


def _im2col_rule(x, *, ksize, strides, dilations, padding):
    _window_params(ksize, strides, dilations, padding)
    _image(x)
    n, _, _, c = x.shape
    oh, ow = _out_hw(x.shape, ksize, strides, dilations, padding)
    return [((n, oh, ow) + tuple(ksize) + (c,), np.dtype(x.dtype), False)]


def _col2im_rule(u, *, size, ksize, strides, dilations, padding):
    _window_params(ksize, strides, dilations, padding)
    if len(u.shape) != 6 or tuple(u.shape[3:5]) != tuple(ksize):
        raise errors.ShapeError(f'windows of shape {tuple(u.shape)} are not (N, OH, OW) + '
                                f'{tuple(ksize)} + (C,)')
    shape = (u.shape[0],) + tuple(size) + (u.shape[5],)
    if _out_hw(shape, ksize, strides, dilations, padding) != tuple(u.shape[1:3]):
        raise errors.ShapeError(f'{tuple(u.shape[1:3])} windows do not come from an image of '
                                f'size {tuple(size)} (padding {padding}, strides {strides})')
    return [(shape, np.dtype(u.dtype), False)]


def _pool_argmax_rule(x, *, ksize, strides, padding):
    _window_params(ksize, strides, (1, 1), padding)
    _image(x)
    oh, ow = _out_hw(x.shape, ksize, strides, (1, 1), padding)
    return [((x.shape[0], oh, ow, x.shape[3]), np.dtype(np.int64), False)]


def _window_offsets(shape, ksize, strides, dilations, padding):
    """Per axis: (output size, padding before, input index of each (output, tap) pair)."""
    out = []
    for a in range(2):
        o, before = window_geometry(shape[1 + a], ksize[a], strides[a], dilations[a], padding)
        index = (np.arange(o)[:, None] * strides[a] + np.arange(ksize[a])[None, :] * dilations[a]
                 - before)
        out.append(index)
    return out


def _im2col(x, *, ksize, strides, dilations, padding):
    rows, cols = _window_offsets(x.shape, ksize, strides, dilations, padding)
    h, w = x.shape[1:3]
    valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[None, :, None]
    patches = x[:, np.clip(rows, 0, h - 1)[:, None, :, None], np.clip(cols, 0, w - 1)[None, :,
                                                                                      None]]
    return np.where(valid[None, ..., None], patches, np.zeros((), x.dtype))


def _col2im(u, *, size, ksize, strides, dilations, padding):
    shape = (u.shape[0],) + tuple(size) + (u.shape[5],)
    rows, cols = _window_offsets(shape, ksize, strides, dilations, padding)
    out = np.zeros((shape[0], shape[1] + 2 * rows.size, shape[2] + 2 * cols.size, shape[3]),
                   u.dtype)  # generous margins take the padding's share, cut off below
    np.add.at(out, (slice(None), rows[:, None, :, None] + rows.size,
                    cols[None, :, None] + cols.size), u)
    return out[:, rows.size:rows.size + shape[1], cols.size:cols.size + shape[2]]


def _pool_argmax(x, *, ksize, strides, padding):
    """The first maximum of each window in row-major window order (TF's strict `<` update)."""
    rows, cols = _window_offsets(x.shape, ksize, strides, (1, 1), padding)
    n, h, w, c = x.shape
    best = np.full((n, rows.shape[0], cols.shape[0], c), -1, np.int64)
    peak = np.zeros(best.shape, x.dtype)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            r, q = rows[:, i], cols[:, j]
            ok = ((r >= 0) & (r < h))[:, None] & ((q >= 0) & (q < w))[None, :]
            rc, qc = np.clip(r, 0, h - 1), np.clip(q, 0, w - 1)
            v = x[:, rc[:, None], qc[None, :]]
            flat = ((np.arange(n)[:, None, None, None] * h + rc[:, None, None]) * w
                    + qc[None, :, None]) * c + np.arange(c)
            take = ok[None, :, :, None] & ((peak < v) | (best < 0))
            best, peak = np.where(take, flat, best), np.where(take, v, peak)
    return best


def _max_pool_rule(x, *, ksize, strides, padding):
    [(shape, _, _)] = _pool_argmax_rule(x, ksize=ksize, strides=strides, padding=padding)
    return [(shape, np.dtype(x.dtype), False)]


def _max_pool(x, *, ksize, strides, padding):
    return x.reshape(-1)[_pool_argmax(x, ksize=ksize, strides=strides, padding=padding)]


def _max_pool_grad_rule(ct, x, *, ksize, strides, padding):
    [(shape, _, _)] = _pool_argmax_rule(x, ksize=ksize, strides=strides, padding=padding)
    if tuple(ct.shape) != shape:
        raise errors.ShapeError(f'the cotangent of max pooling {tuple(x.shape)} must have shape '
                                f'{shape}, got {tuple(ct.shape)}')
    return [(tuple(x.shape), np.dtype(ct.dtype), False)]


def _max_pool_grad(ct, x, *, ksize, strides, padding):
    """Each window's cotangent added at its first maximum (max pooling's VJP, fused)."""
    out = np.zeros(x.size, ct.dtype)
    np.add.at(out, _pool_argmax(x, ksize=ksize, strides=strides, padding=padding).ravel(),
              ct.ravel())
    return out.reshape(x.shape)


def _matmul_col2im_rule(a, b, *, transpose_b, size, ksize, strides, dilations, padding):
    _window_params(ksize, strides, dilations, padding)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise errors.ShapeError(f'needs matrices, got shapes {tuple(a.shape)} and '
                                f'{tuple(b.shape)}')
    [((rows, cols), dtype, _)] = _matmul_rule(a, b, transpose_a=False, transpose_b=transpose_b)
    oh, ow = _out_hw((1,) + tuple(size) + (1,), ksize, strides, dilations, padding)
    taps = ksize[0] * ksize[1]
    if rows % (oh * ow) or cols % taps:
        raise errors.ShapeError(f'a product of shape {(rows, cols)} is not the (N * {oh} * '
                                f'{ow}, {ksize[0]} * {ksize[1]} * C) windows of an image of size '
                                f'{tuple(size)}')
    return [((rows // (oh * ow),) + tuple(size) + (cols // taps,), dtype, False)]


def _matmul_col2im(a, b, *, transpose_b, size, ksize, strides, dilations, padding):
    [(shape, _, _)] = _matmul_col2im_rule(a, b, transpose_b=transpose_b, size=size, ksize=ksize,
                                          strides=strides, dilations=dilations, padding=padding)
    oh, ow = _out_hw(shape, ksize, strides, dilations, padding)
    u = _matmul(a, b, transpose_a=False, transpose_b=transpose_b)
    return _col2im(u.reshape((shape[0], oh, ow) + tuple(ksize) + (shape[3],)), size=size,
                   ksize=ksize, strides=strides, dilations=dilations, padding=padding)


def _pool_grad_matmul_rule(a, ct, x, *, ksize, strides, padding):
    [(shape, dtype, _)] = _max_pool_grad_rule(ct, x, ksize=ksize, strides=strides,
                                              padding=padding)
    rows = int(np.prod(shape[:3]))
    if len(a.shape) != 2 or a.shape[0] != rows or np.dtype(a.dtype) != dtype:
        raise errors.ShapeError(f'the left operand must be ({rows}, K) of {dtype}, one row per '
                                f'pixel of {shape}, got {tuple(a.shape)} of {np.dtype(a.dtype)}')
    return [((a.shape[1], shape[3]), dtype, False)]


def _pool_grad_matmul(a, ct, x, *, ksize, strides, padding):
    grad = _max_pool_grad(ct, x, ksize=ksize, strides=strides, padding=padding)
    return a.T @ grad.reshape((-1, grad.shape[3]))


MATMUL_EPILOGUES = ('bias', 'bias_relu', 'relu_mask')


def _matmul_epilogue_rule(a, b, extra, *, transpose_a, transpose_b, epilogue):
    if epilogue not in MATMUL_EPILOGUES:
        raise errors.ShapeError(f'epilogue must be one of {MATMUL_EPILOGUES}, got {epilogue!r}')
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise errors.ShapeError(f'needs matrices, got shapes {tuple(a.shape)} and '
                                f'{tuple(b.shape)}')
    [((m, n), dtype, _)] = _matmul_rule(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    if dtype not in (np.float32, np.float64) or np.dtype(extra.dtype) != dtype:
        raise errors.DTypeError(f'needs float32 or float64 operands of one dtype, got {dtype} '
                                f'and {np.dtype(extra.dtype)}')
    wanted = (m, n) if epilogue == 'relu_mask' else (n,)
    if tuple(extra.shape) != wanted:
        raise errors.ShapeError(f'the {epilogue} operand of a ({m}, {n}) product must have '
                                f'shape {wanted}, got {tuple(extra.shape)}')
    return [((m, n), dtype, False)]


def _matmul_epilogue(a, b, extra, *, transpose_a, transpose_b, epilogue):
    product = _matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    if epilogue == 'relu_mask':
        return np.where(extra > 0, product, 0).astype(product.dtype)
    biased = product + extra
    return np.maximum(biased, 0) if epilogue == 'bias_relu' else biased


Primitive('im2col', _im2col, _im2col_rule, 'layout', 'im2col')
Primitive('col2im', _col2im, _col2im_rule, 'layout', 'col2im')
nondiff('pool_argmax', _pool_argmax, _pool_argmax_rule, 'layout', 'pool_argmax')
Primitive('max_pool', _max_pool, _max_pool_rule, 'layout', 'max_pool')
Primitive('max_pool_grad', _max_pool_grad, _max_pool_grad_rule, 'layout', 'max_pool_grad')
# made by passes after the gradients: col2im of a product's rows (a convolution's input
# gradient), and a transposed product with max pooling's gradient (a filter gradient)
nondiff('matmul_col2im', _matmul_col2im, _matmul_col2im_rule, 'layout', 'matmul_col2im')
nondiff('pool_grad_matmul', _pool_grad_matmul, _pool_grad_matmul_rule, 'layout',
        'pool_grad_matmul')
# a product and the elementwise work that alone reads it: a bias (and relu) of a Dense layer,
# relu's gradient of the product that makes its cotangent
nondiff('matmul_epilogue', _matmul_epilogue, _matmul_epilogue_rule, 'layout', 'matmul_epilogue')

"""User-facing ops with TensorFlow signatures: promotion, axis handling, and stable compositions.

Each op turns its arguments into operands (Tensor, Tracer or numpy), applies dtype promotion with
weak Python scalars, and binds primitives. Numerically delicate functions (logsumexp, softmax and
the cross-entropies) are written here as compositions that never overflow.
"""
import builtins

import numpy as np

from . import dtypes, errors, primitives as P, strings
from .operands import SCALARS, cast_to, dtype_of, is_weak, operand
from .tensor import Tensor, TensorOps
from .tracing import Tracer, bind, converted, current_trace, require_in_range, to_array
from .variables import Variable


# ---------------------------------------------------------------------------- promotion

def _promote(*xs, float_only=False):
    xs = [operand(x) for x in xs]
    if any(dtype_of(x).kind in 'SU' for x in xs):
        raise errors.DTypeError(errors.at_user_line(
            'a string tensor is not a number: strings support ==, != and the tj.strings ops'))
    dtype, _ = dtypes.result_type(*((dtype_of(x), is_weak(x)) for x in xs))
    if float_only and dtype.kind != 'f':
        dtype = dtypes.DEFAULT_FLOAT
    return [cast_to(x, dtype) for x in xs]


def _nary(name, *xs, float_only=False):
    return bind(P.REGISTRY[name], *_promote(*xs, float_only=float_only))


def _shape(x):
    return () if isinstance(x, SCALARS) else tuple(x.shape)


def _ndim(x):
    return len(_shape(x))


def is_floating(x):
    return dtype_of(x).kind == 'f'


# ---------------------------------------------------------------------------- creation

def constant(value, dtype=None, shape=None, name=None):
    """An eager tensor (TensorFlow's tf.constant); `shape` fills from a scalar or reshapes."""
    if isinstance(value, TensorOps) and not isinstance(value, Tensor):
        value = value.value() if isinstance(value, Variable) else value
        if isinstance(value, Tracer):
            out = cast(value, dtype) if dtype is not None else value
            return reshape(out, shape) if shape is not None else out
    if strings.is_text(value) or dtype is not None and dtypes.as_np_dtype(dtype).kind in 'US':
        return strings.constant(value, shape)   # eager even in a trace: kernels hold numbers
    array = to_array(value, 'constant value', dtype)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        array = (np.full(shape, array, array.dtype) if array.size == 1
                 else np.reshape(array, shape))
    array = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    trace = current_trace()
    if trace is not None:  # a graph constant, as tf.constant inside tf.function
        return Tracer(trace, trace.graph.add_const(array))
    return Tensor(array)


def convert_to_tensor(value, dtype=None, name=None):
    value = converted(value)
    if isinstance(value, (Tensor, Tracer)):
        return cast(value, dtype) if dtype is not None else value
    if isinstance(value, Variable):
        value = value.value()
        return cast(value, dtype) if dtype is not None else value
    return constant(value, dtype)


def _shape_arg(shape):
    if isinstance(shape, TensorOps):
        shape = np.asarray(shape.numpy())
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        return tuple(int(d) for d in shape)
    except errors.TracejitError:
        raise
    except (TypeError, ValueError):
        raise TypeError(errors.at_user_line(
            f'shape must be an int or a list of ints, got {shape!r}; pass e.g. shape=[2, 3] '
            '(-1 for one inferred dimension in reshape)')) from None


def fill(dims, value, dtype=None):
    """A tensor of `dims` filled with `value`; inside a trace a broadcast, not a big constant."""
    shape = _shape_arg(dims)
    scalar = operand(value)
    np_dtype = dtypes.as_np_dtype(dtype) if dtype is not None else dtype_of(scalar)
    if isinstance(scalar, SCALARS + (np.ndarray,)):
        trace = current_trace()
        if trace is None:
            return Tensor(np.full(shape, scalar, np_dtype))
        if shape == ():
            return Tracer(trace, trace.graph.add_const(np.asarray(scalar, np_dtype)))
        return trace.emit(P.REGISTRY['broadcast_to'], [np.asarray(scalar, np_dtype)],
                          {'shape': shape})[0]
    return broadcast_to(cast_to(scalar, np_dtype), shape)


def zeros(shape, dtype=dtypes.float32, name=None):
    return fill(shape, 0, dtype)


def ones(shape, dtype=dtypes.float32, name=None):
    return fill(shape, 1, dtype)


def zeros_like(x, dtype=None, name=None):
    x = operand(x)
    return fill(_shape(x), 0, dtype or dtype_of(x))


def ones_like(x, dtype=None, name=None):
    x = operand(x)
    return fill(_shape(x), 1, dtype or dtype_of(x))


def linspace(start, stop, num, name=None, axis=0):
    dtype = np.result_type(np.asarray(start), np.asarray(stop), np.float32)
    if not isinstance(start, np.ndarray) and not isinstance(stop, np.ndarray):
        dtype = dtype_of(start) if isinstance(start, TensorOps) else dtypes.DEFAULT_FLOAT
        dtype = dtype if dtype.kind == 'f' else dtypes.DEFAULT_FLOAT
    return Tensor(np.linspace(float(start), float(stop), int(num), dtype=dtype))


def range(start, limit=None, delta=1, dtype=None, name=None):  # noqa: A001 (TensorFlow's name)
    if limit is None:
        start, limit = 0, start
    values = [v.numpy() if isinstance(v, TensorOps) else v for v in (start, limit, delta)]
    if dtype is None:
        is_float = builtins.any(isinstance(v, (float, np.floating)) for v in values)
        dtype = dtypes.DEFAULT_FLOAT if is_float else dtypes.DEFAULT_INT
    return Tensor(np.arange(*values, dtype=dtypes.as_np_dtype(dtype)))


def cast(x, dtype, name=None):
    x = operand(x)
    if isinstance(x, SCALARS + (np.ndarray,)):
        return constant(x, dtype)
    return cast_to(x, dtypes.as_np_dtype(dtype))


def shape(x, out_type=dtypes.int32, name=None):
    return Tensor(np.asarray(_shape(operand(x)), dtypes.as_np_dtype(out_type)))


def rank(x, name=None):
    return Tensor(np.asarray(_ndim(operand(x)), np.int32))


def size(x, out_type=dtypes.int32, name=None):
    return Tensor(np.asarray(int(np.prod(_shape(operand(x)))), dtypes.as_np_dtype(out_type)))


# ---------------------------------------------------------------------------- elementwise

def add(x, y, name=None): return _nary('add', x, y)
def subtract(x, y, name=None): return _nary('sub', x, y)
def multiply(x, y, name=None): return _nary('mul', x, y)
def maximum(x, y, name=None): return _nary('max', x, y)
def minimum(x, y, name=None): return _nary('min', x, y)
def negative(x, name=None): return _nary('neg', x)
def abs(x, name=None): return _nary('abs', x)  # noqa: A001
def sign(x, name=None): return _nary('sign', x)
def exp(x, name=None): return _nary('exp', x, float_only=True)
def log(x, name=None): return _nary('log', x, float_only=True)
def log1p(x, name=None): return _nary('log1p', x, float_only=True)
def sqrt(x, name=None): return _nary('sqrt', x, float_only=True)
def tanh(x, name=None): return _nary('tanh', x, float_only=True)
def sigmoid(x, name=None): return _nary('sigmoid', x, float_only=True)
def softplus(features, name=None): return _nary('softplus', features, float_only=True)
def relu(features, name=None): return _nary('relu', features)
def sin(x, name=None): return _nary('sin', x, float_only=True)
def cos(x, name=None): return _nary('cos', x, float_only=True)
def floor(x, name=None): return _nary('floor', x, float_only=True)


def equal(x, y, name=None):
    return strings.equal(x, y) if strings.is_text(x) or strings.is_text(y) else _nary('eq', x, y)


def not_equal(x, y, name=None):
    if strings.is_text(x) or strings.is_text(y):
        return strings.not_equal(x, y)
    return _nary('ne', x, y)


def less(x, y, name=None): return _nary('lt', x, y)
def less_equal(x, y, name=None): return _nary('le', x, y)
def greater(x, y, name=None): return _nary('gt', x, y)
def greater_equal(x, y, name=None): return _nary('ge', x, y)
def logical_and(x, y, name=None): return _nary('and', x, y)
def logical_or(x, y, name=None): return _nary('or', x, y)
def logical_not(x, name=None): return _nary('not', x)


def divide(x, y, name=None):
    """True division; integers divide as float32 (TensorFlow's truediv gives floats too)."""
    return _nary('div', x, y, float_only=True)


def floordiv(x, y, name=None):
    x, y = _promote(x, y)
    if is_floating(x):
        return floor(divide(x, y))
    return cast(floor(divide(cast(x, np.float64), cast(y, np.float64))), dtype_of(x))


def floormod(x, y, name=None):
    """x - floordiv(x, y) * y: the remainder takes the divisor's sign, as Python's % and
    tf.math.floormod."""
    x, y = _promote(x, y)
    return subtract(x, multiply(floordiv(x, y), y))


mod = floormod


def pow(x, y, name=None):  # noqa: A001 (TensorFlow's name)
    """x ** y; constant exponents 0, 1, 2, 0.5 and -1 become cheaper, exact ops."""
    if isinstance(y, (int, float)) and not isinstance(y, bool) and not isinstance(x, SCALARS):
        x = operand(x)
        special = {2: lambda: multiply(x, x), 1: lambda: identity(x), 0.5: lambda: sqrt(x),
                   -1: lambda: divide(1.0, x), 0: lambda: ones_like(x)}
        if y in special and (y in (0, 1, 2) or is_floating(x)):
            return special[y]()
    return _nary('pow', x, y)


def square(x, name=None):
    x = operand(x)
    return multiply(x, x)


def rsqrt(x, name=None):
    return divide(1.0, sqrt(x))


def reciprocal(x, name=None):
    return divide(1.0, x)


def squared_difference(x, y, name=None):
    return square(subtract(x, y))


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return minimum(maximum(t, clip_value_min), clip_value_max)


def where(condition, x=None, y=None, name=None):
    if x is None or y is None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'tj.where needs both x and y (index lookup with a condition alone is not supported)'))
    condition = operand(condition, 'condition')
    if isinstance(condition, SCALARS):
        condition = np.asarray(condition)
    if dtype_of(condition) != np.bool_:
        raise errors.DTypeError(errors.at_user_line(
            f'tj.where: condition must be bool, got {dtype_of(condition).name}'))
    x, y = _promote(x, y)
    return bind(P.REGISTRY['select'], condition, x, y)


def is_finite(x):
    return less(abs(x), np.inf)


def stop_gradient(x, name=None):
    """The same value with no gradient flowing back through it."""
    x = operand(x)
    if isinstance(x, Tracer):  # a node, so gradients taken on the graph stop here too
        return bind(P.REGISTRY['stop_gradient'], x)
    if isinstance(x, Tensor):
        return Tensor(x._value)
    return constant(x)


def identity(x, name=None):
    """A new tensor with x's value, as tf.identity: gradients flow through it, and being a value
    of its own it can be differentiated apart from x (grad(f, argnums=(0, 1))(t, t))."""
    x = operand(x)
    if isinstance(x, SCALARS + (np.ndarray,)):
        return constant(x)
    return bind(P.REGISTRY['broadcast_to'], x, shape=_shape(x))


# ---------------------------------------------------------------------------- reductions

def _axes(x, axis):
    nd = _ndim(x)
    if axis is None:
        return tuple(builtins.range(nd))
    if isinstance(axis, TensorOps):
        axis = np.asarray(axis.numpy()).tolist()
    if isinstance(axis, np.ndarray):
        axis = axis.tolist()
    axes = list(axis) if isinstance(axis, (list, tuple, builtins.range)) else [axis]
    out = []
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
            raise TypeError(errors.at_user_line(
                f'axis must be an int or a list of ints, got {ax!r} ({type(ax).__name__})'))
        ax = int(ax)
        if not -nd <= ax < nd:
            raise errors.ShapeError(errors.at_user_line(
                f'axis {ax} is out of range for a tensor of shape {_shape(x)} (valid axes: '
                + (f'{-nd} to {nd - 1})' if nd else 'none; a scalar has no axis to reduce)')))
        if ax % nd in out:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'axis {list(axes)} names dimension {ax % nd} twice (TensorFlow refuses duplicate '
                'reduction axes too); list each axis once'))
        out.append(ax % nd)
    return tuple(sorted(out))


def _check_not_empty(name, x, axes):
    """max/min/argmax/argmin over an axis of length 0 have no value (TensorFlow's
    InvalidArgumentError), rather than numpy's ValueError from deep inside the op."""
    empty = [ax for ax in axes if _shape(x)[ax] == 0]
    if empty:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{name}: reduction axis {empty[0]} is empty in input_tensor of shape {_shape(x)}; '
            'check that the input is not empty before reducing it'))


def _reduce(name, x, axis, keepdims):
    x = operand(x)
    if isinstance(x, SCALARS):
        x = constant(x)
    axes = _axes(x, axis)
    if name in ('reduce_max', 'reduce_min'):
        _check_not_empty(name, x, axes)
    out = bind(P.REGISTRY[name], x, axes=axes)
    if keepdims:
        out = reshape(out, tuple(1 if i in axes else d for i, d in enumerate(_shape(x))))
    return out


def reduce_sum(input_tensor, axis=None, keepdims=False, name=None):
    x = operand(input_tensor)
    if not isinstance(x, SCALARS) and dtype_of(x) == np.bool_:
        x = cast(x, dtypes.DEFAULT_INT)
    return _reduce('reduce_sum', x, axis, keepdims)


def reduce_max(input_tensor, axis=None, keepdims=False, name=None):
    return _reduce('reduce_max', input_tensor, axis, keepdims)


def reduce_min(input_tensor, axis=None, keepdims=False, name=None):
    return _reduce('reduce_min', input_tensor, axis, keepdims)


def reduce_mean(input_tensor, axis=None, keepdims=False, name=None):
    x = operand(input_tensor)
    if isinstance(x, SCALARS):
        x = constant(x)
    if dtype_of(x) == np.bool_:
        x = cast(x, dtypes.DEFAULT_FLOAT)  # the fraction of True values
    count = int(np.prod([_shape(x)[a] for a in _axes(x, axis)]))
    total = reduce_sum(x, axis, keepdims)
    if is_floating(x):
        return multiply(total, 1.0 / count) if count else divide(total, 0.0)
    # integer mean truncates toward zero, as TensorFlow's (C++ integer division), not floor
    return cast(divide(cast(total, np.float64), float(count)), dtype_of(x))


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    """log(sum(exp(x))) shifted by the (gradient-free) maximum, so it never overflows."""
    x = operand(input_tensor)
    peak = stop_gradient(reduce_max(x, axis, keepdims=True))
    peak = where(is_finite(peak), peak, zeros_like(peak))
    out = log(reduce_sum(exp(subtract(x, peak)), axis, keepdims=True)) + peak
    return out if keepdims else squeeze(out, _axes(x, axis)) if _ndim(x) else out


def _argreduce(name, x, axis, output_type):
    x = operand(x)
    axis = 0 if axis is None else _axes(x, axis)[0]
    if _ndim(x):
        _check_not_empty(name, x, (axis,))
    return cast(bind(P.REGISTRY[name], x, axis=axis), output_type)


def argmax(input, axis=None, output_type=dtypes.int64, name=None):  # noqa: A002
    return _argreduce('argmax', input, axis, output_type)


def argmin(input, axis=None, output_type=dtypes.int64, name=None):  # noqa: A002
    return _argreduce('argmin', input, axis, output_type)


def softmax(logits, axis=-1, name=None):
    return exp(log_softmax(logits, axis))


def log_softmax(logits, axis=-1, name=None):
    """(x - max) - log(sum(exp(x - max))): subtracting the shifted logsumexp, not the full one,
    keeps float32 precise at |x| ~ 1e4, where max + log(sum) would round to ~1e-3. Over the last
    axis it is one primitive (one pass per row in compiled code)."""
    logits = operand(logits, 'logits')
    if isinstance(logits, SCALARS) or not is_floating(logits):
        logits = cast(logits, dtypes.DEFAULT_FLOAT)
    if _ndim(logits) and _axes(logits, axis) == (_ndim(logits) - 1,):
        return bind(P.REGISTRY['log_softmax'], logits)
    peak = stop_gradient(reduce_max(logits, axis, keepdims=True))
    shifted = subtract(logits, where(is_finite(peak), peak, zeros_like(peak)))
    return subtract(shifted, log(reduce_sum(exp(shifted), axis, keepdims=True)))


# ---------------------------------------------------------------------------- layout

def reshape(tensor, shape, name=None):
    x = operand(tensor)
    if isinstance(x, SCALARS):
        x = constant(x)
    shape = list(_shape_arg(shape))
    if shape.count(-1) > 1:
        raise errors.ShapeError(errors.at_user_line(f'reshape: at most one -1 in {tuple(shape)}'))
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        total = int(np.prod(_shape(x)))
        if known == 0 or total % known:
            raise errors.ShapeError(errors.at_user_line(
                f'reshape: cannot reshape {_shape(x)} ({total} elements) to {tuple(shape)}'))
        shape[shape.index(-1)] = total // known
    shape = tuple(shape)
    return x if shape == _shape(x) and not isinstance(x, np.ndarray) else bind(
        P.REGISTRY['reshape'], x, shape=shape)


def transpose(a, perm=None, name=None, conjugate=False):
    x = operand(a)
    perm = tuple(builtins.range(_ndim(x)))[::-1] if perm is None else tuple(int(p) for p in perm)
    if perm == tuple(builtins.range(_ndim(x))):
        return identity(x)
    return bind(P.REGISTRY['transpose'], x, perm=perm)


def expand_dims(input, axis, name=None):  # noqa: A002
    x = operand(input)
    nd = _ndim(x) + 1
    axis = int(axis)
    if not -nd <= axis < nd:
        raise errors.ShapeError(errors.at_user_line(f'expand_dims: axis {axis} out of range'))
    shape = list(_shape(x))
    shape.insert(axis % nd, 1)
    return reshape(x, shape)


def squeeze(input, axis=None, name=None):  # noqa: A002
    x = operand(input)
    shape = _shape(x)
    axes = [i for i, d in enumerate(shape) if d == 1] if axis is None else _axes(x, axis)
    for ax in axes:
        if shape[ax] != 1:
            raise errors.ShapeError(errors.at_user_line(
                f'squeeze: dimension {ax} of shape {shape} is {shape[ax]}, not 1'))
    return reshape(x, [d for i, d in enumerate(shape) if i not in axes])


def broadcast_to(input, shape, name=None):  # noqa: A002
    x = operand(input)
    if isinstance(x, SCALARS):
        x = np.asarray(x, dtype_of(x))
    shape = _shape_arg(shape)
    return x if _shape(x) == shape and not isinstance(x, np.ndarray) else bind(
        P.REGISTRY['broadcast_to'], x, shape=shape)


def concat(values, axis, name=None):
    xs = _promote(*values)
    xs = [constant(x) if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in xs]
    if not xs:
        raise errors.InvalidArgumentError(errors.at_user_line('concat needs at least one tensor'))
    axis = _axes(xs[0], axis)[0]
    return identity(xs[0]) if len(xs) == 1 else bind(P.REGISTRY['concat'], *xs, axis=axis)


def stack(values, axis=0, name=None):
    xs = _promote(*values)
    nd = _ndim(xs[0]) + 1
    axis = int(axis) % nd
    return concat([expand_dims(x, axis) for x in xs], axis)


def tile(input, multiples, name=None):  # noqa: A002
    x = operand(input)
    multiples = _shape_arg(multiples)
    shape = _shape(x)
    if len(multiples) != len(shape):
        raise errors.ShapeError(errors.at_user_line(
            f'tile: {len(multiples)} multiples for a rank-{len(shape)} tensor'))
    interleaved = [d for pair in zip((1,) * len(shape), shape) for d in pair]
    expanded = [d for pair in zip(multiples, shape) for d in pair]
    tiled = broadcast_to(reshape(x, interleaved), expanded)
    return reshape(tiled, [m * d for m, d in zip(multiples, shape)])


def gather(params, indices, axis=0, batch_dims=0, name=None):
    x = operand(params)
    indices = operand(indices, 'indices')
    if isinstance(indices, SCALARS):
        indices = np.asarray(indices)
    if batch_dims:
        raise errors.InvalidArgumentError(
            errors.at_user_line('gather: batch_dims is not supported'))
    size = _shape(x)[axis]
    require_in_range(indices, -size, size,
                     f'gather: indices must be in [0, {size}) for axis {axis} of {_shape(x)}')
    return bind(P.REGISTRY['gather'], x, indices, axis=_axes(x, axis)[0])


def scatter_add(updates, indices, axis, size):
    return bind(P.REGISTRY['scatter_add'], operand(updates), operand(indices), axis=axis,
                size=int(size))


def allreduce_sum(x, comm, timeout):
    """The sum of `x` over the processes of MPI communicator handle `comm` (tj.distribute's)."""
    return bind(P.REGISTRY['allreduce_sum'], operand(x), comm=int(comm), timeout=float(timeout))


def scatter_rows(base, indices, updates, mode, depth=1):
    """`base` with rows indices[j] (over its first `depth` axes) set to, or combined by `mode`
    ('update', 'add', 'max', 'min') with, updates[j]: the primitive behind every scatter."""
    return bind(P.REGISTRY['scatter_rows'], operand(base), operand(indices), operand(updates),
                mode=mode, depth=int(depth))


def sum_duplicates(values, indices):
    """Each row of `values` replaced by the sum of the rows that share its index."""
    return bind(P.REGISTRY['sum_duplicates'], operand(values), operand(indices))


def accumulate_rows(base, indices, values, scale, decay, power, repeat=1):
    """`base` with each distinct row r of `indices` set to decay * base[r] + scale *
    S**power, S the sum of the values of r (index j goes with value j // repeat): LazyAdam's
    moments, SGD's sparse step; other rows unchanged."""
    base = operand(base)
    return bind(P.REGISTRY['accumulate_rows'], base, operand(indices), operand(values),
                cast(scale, base.dtype), decay=float(decay), power=int(power),
                repeat=int(repeat))


def lazy_adam_rows(var, indices, m, v, values, lr, beta_1, beta_2, epsilon, repeat=1):
    """(var, m, v) after TF Addons' LazyAdam step on the distinct rows of `indices` (values of
    repeated ids summed; index j goes with value j // repeat); other rows unchanged."""
    var = operand(var)
    return bind(P.REGISTRY['lazy_adam_rows'], var, operand(indices), operand(m),
                operand(v), operand(values), cast(lr, var.dtype), beta_1=float(beta_1),
                beta_2=float(beta_2), epsilon=float(epsilon), repeat=int(repeat))


def slice_(x, slices):
    return bind(P.REGISTRY['slice'], operand(x), slices=tuple(slices))


def unslice(x, shape, slices):
    return bind(P.REGISTRY['unslice'], operand(x), shape=tuple(shape), slices=tuple(slices))


def one_hot(indices, depth, on_value=None, off_value=None, axis=-1, dtype=dtypes.float32,
            name=None):
    indices = operand(indices, 'indices')
    if isinstance(indices, SCALARS):
        indices = np.asarray(indices)
    if not dtypes.is_int(dtype_of(indices)):
        raise errors.DTypeError(errors.at_user_line(
            f'one_hot: indices must be integers, got dtype {dtype_of(indices).name}; '
            'cast them with tj.cast(indices, tj.int32)'))
    shape = _shape(indices) + (int(depth),)
    iota = _source('iota', shape=shape, axis=len(shape) - 1, dtype=dtype_of(indices))
    hot = equal(expand_dims(indices, -1), iota)
    dtype = dtypes.as_np_dtype(dtype)
    out = cast(hot, dtype) if on_value is None and off_value is None else where(
        hot, cast_to(1 if on_value is None else on_value, dtype),
        cast_to(0 if off_value is None else off_value, dtype))
    if axis not in (-1, len(shape) - 1):
        perm = list(builtins.range(len(shape) - 1))
        perm.insert(axis % len(shape), len(shape) - 1)
        out = transpose(out, perm)
    return out


def _source(name, **params):
    trace = current_trace()
    if trace is None:
        return bind(P.REGISTRY[name], **params)
    return trace.emit(P.REGISTRY[name], [], params)[0]


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           name=None):
    a, b = _promote(a, b)
    a, b = (constant(v) if isinstance(v, np.ndarray) and v.ndim == 0 else v for v in (a, b))
    if _ndim(a) == 0 or _ndim(b) == 0:
        raise errors.ShapeError(errors.at_user_line(
            f'matmul needs tensors of rank >= 1, got shapes {_shape(a)} and {_shape(b)}'))
    transpose_a, transpose_b = transpose_a or adjoint_a, transpose_b or adjoint_b
    squeeze_axes = []
    if _ndim(a) == 1:
        a, squeeze_axes = reshape(a, (1, -1)), squeeze_axes + [-2]
    if _ndim(b) == 1:
        b, squeeze_axes = reshape(b, (-1, 1)), squeeze_axes + [-1]
    batch = P.broadcast_shapes(_shape(a)[:-2], _shape(b)[:-2]) if max(
        _ndim(a), _ndim(b)) > 2 else ()
    a = broadcast_to(a, batch + _shape(a)[-2:])
    b = broadcast_to(b, batch + _shape(b)[-2:])
    out = bind(P.REGISTRY['matmul'], a, b, transpose_a=bool(transpose_a),
               transpose_b=bool(transpose_b))
    return squeeze(out, squeeze_axes) if squeeze_axes else out


# ---------------------------------------------------------------------------- indexing

def getitem(x, index):
    """NumPy/TensorFlow basic indexing (ints, slices, None, ...) plus integer-array gathers."""
    x = operand(x)
    items = list(index) if isinstance(index, tuple) else [index]
    if builtins.sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError('an index can only have a single ellipsis')
    consumed = builtins.sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > _ndim(x):
        raise IndexError(errors.at_user_line(
            f'too many indices ({consumed}) for a tensor of shape {_shape(x)}'))
    # `is` tests, not `in`: `==` on an array index is elementwise and has no truth value
    pos = [k for k, i in enumerate(items) if i is Ellipsis]
    if pos:
        items[pos[0]:pos[0] + 1] = [slice(None)] * (_ndim(x) - consumed)
    else:
        items += [slice(None)] * (_ndim(x) - consumed)
    return _apply_index(x, items)


def _apply_index(x, items):
    """Slice once for all ints/slices, gather for array indices, then reshape for ints/None."""
    slices, out_dims, gathers, dim = [], [], [], 0
    shape = _shape(x)
    for item in items:
        if item is None:
            out_dims.append((1,))
            continue
        n = shape[dim]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            slices.append((start, stop, step))
            out_dims.append((len(builtins.range(start, stop, step)),))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            i = int(item)
            if not -n <= i < n:
                raise IndexError(errors.at_user_line(
                    f'index {i} is out of bounds for axis {dim} with size {n}'))
            slices.append((i % n, i % n + 1, 1))
        else:
            idx = operand(item, 'index')
            idx = np.asarray(idx) if isinstance(idx, SCALARS) else idx
            gathers.append((dim, idx))
            slices.append((0, n, 1))
            out_dims.append(_shape(idx))
        dim += 1
    if builtins.any(s != (0, d, 1) for s, d in zip(slices, shape)):
        x = slice_(x, slices)
    for axis, idx in reversed(gathers):
        x = gather(x, idx, axis=axis)
    return reshape(x, [d for dims in out_dims for d in dims])


# ---------------------------------------------------------------------------- control flow

# ---------------------------------------------------------------------------- operators

def _install_operators(cls):
    """Give every tensor-like class (TensorOps: Tensor, Tracer, Variable) its Python operators,
    which call the ops above; installed from here so `tensor.py` depends on nothing above it."""
    def forward(op):
        return lambda self, other: op(self, other)

    def reflected(op):
        return lambda self, other: op(other, self)

    for name, op in (('add', add), ('sub', subtract), ('mul', multiply), ('truediv', divide),
                     ('floordiv', floordiv), ('mod', floormod), ('pow', pow),
                     ('matmul', matmul),
                     ('and', logical_and), ('or', logical_or)):
        setattr(cls, f'__{name}__', forward(op))
        setattr(cls, f'__r{name}__', reflected(op))
    for name, op in (('lt', less), ('le', less_equal), ('gt', greater), ('ge', greater_equal),
                     ('eq', equal), ('ne', not_equal)):
        setattr(cls, f'__{name}__', forward(op))
    cls.__neg__ = lambda self: negative(self)
    cls.__abs__ = lambda self: abs(self)
    cls.__invert__ = lambda self: logical_not(self)
    cls.__getitem__ = lambda self, index: getitem(self, index)
    cls.T = property(lambda self: transpose(self))


_install_operators(TensorOps)

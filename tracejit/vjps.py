"""The VJP rule of every differentiable primitive, one dense table (autograd's `defvjp` style).

Rules are written with tracejit ops, so a gradient is IR and compiles like the forward pass. A
rule, `rule(ct, out, *args, **params)`, returns one input's cotangent (None: no gradient flows),
or with `all_inputs` the list of them. Cotangents may have the broadcast output shape: the
autodiff driver sums them back once. Gradients at kinks follow TensorFlow: relu'(0) = 0, and
max/min send a tie's cotangent to the first argument.
"""
import numpy as np

from . import conv, indexed_slices, ops as o
from .primitives import REGISTRY


def defvjp(name, *per_input, all_inputs=None):
    """Register a primitive's VJP: one rule per input, or `all_inputs`, one rule returning the
    list of every input's cotangent (for primitives of any arity, like concat)."""
    prim = REGISTRY[name]
    assert prim.differentiable and prim.vjp is None, name
    prim.vjp = all_inputs if all_inputs is not None else per_input


def _zero(ct, out, *args, **params):
    return None


def _keepdims_ct(ct, x, axes):
    """Broadcast a reduction's cotangent back over the reduced axes."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return o.broadcast_to(o.reshape(ct, kept), x.shape)


def _extremum_vjp(ct, out, x, *, axes):
    hit = o.cast(o.equal(x, _keepdims_ct(out, x, axes)), out.dtype)
    count = o.reduce_sum(hit, axis=axes, keepdims=True)
    return _keepdims_ct(ct, x, axes) * hit / count


def _concat_vjp(ct, out, *xs, axis):
    cts, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        slices = tuple((start, stop, 1) if i == axis else (0, d, 1) for i, d in enumerate(ct.shape))
        cts.append(o.slice_(ct, slices))
        start = stop
    return cts


def _matmul_vjp_a(ct, out, a, b, *, transpose_a, transpose_b):
    if transpose_a:
        return o.matmul(b, ct, transpose_a=transpose_b, transpose_b=True)
    return o.matmul(ct, b, transpose_b=not transpose_b)


def _matmul_vjp_b(ct, out, a, b, *, transpose_a, transpose_b):
    if transpose_b:
        return o.matmul(ct, a, transpose_a=True, transpose_b=transpose_a)
    return o.matmul(a, ct, transpose_a=not transpose_a)


def _gather_vjp(ct, out, x, i, *, axis):
    """Along axis 0 TF's IndexedSlices (the rows gathered, one per index); else dense."""
    if axis == 0:
        return indexed_slices.of_gather(ct, i, tuple(x.shape))
    return o.scatter_add(ct, i, axis, x.shape[axis])


def _gather_sum_vjp(ct, out, x, i):
    """Each index's row gets its bag's cotangent: gather's rule on the cotangent spread over
    the bag."""
    spread = o.broadcast_to(o.expand_dims(ct, i.ndim - 1), tuple(i.shape) + tuple(x.shape[1:]))
    return _gather_vjp(spread, None, x, i, axis=0)


def _rows(x, depth):
    """`x` viewed as (rows, *row) over its first `depth` axes."""
    return o.reshape(x, (int(np.prod(x.shape[:depth], dtype=np.int64)),) + tuple(x.shape[depth:]))


def _scatter_rows_vjp(ct, out, base, i, updates, *, mode, depth):
    """TF's rules for tensor_scatter_nd_*: an update sends the overwritten rows' cotangent to
    `updates`; max/min split a tie between the operand and the updates that reach it."""
    ct_rows = _rows(ct, depth)
    if mode == 'add':
        return [ct, None, o.gather(ct_rows, i)]
    if mode == 'update':
        zeros = o.zeros_like(updates)
        return [o.scatter_rows(ct, i, zeros, 'update', depth), None, o.gather(ct_rows, i)]
    base_hit = o.cast(o.equal(base, out), ct.dtype)
    update_hit = o.cast(o.equal(updates, o.gather(_rows(out, depth), i)), ct.dtype)
    hits = o.scatter_rows(base_hit, i, update_hit, 'add', depth)
    share = ct / hits
    return [share * base_hit, None, o.gather(_rows(share, depth), i) * update_hit]


defvjp('neg', lambda ct, out, x: o.negative(ct))
defvjp('exp', lambda ct, out, x: ct * out)
defvjp('log', lambda ct, out, x: ct / x)
defvjp('log1p', lambda ct, out, x: ct / (x + 1.0))
defvjp('sqrt', lambda ct, out, x: ct / (out * 2.0))
defvjp('tanh', lambda ct, out, x: ct * (1.0 - out * out))
defvjp('sigmoid', lambda ct, out, x: ct * (out * (1.0 - out)))
defvjp('softplus', lambda ct, out, x: ct * o.sigmoid(x))
defvjp('sin', lambda ct, out, x: ct * o.cos(x))
defvjp('cos', lambda ct, out, x: -(ct * o.sin(x)))
defvjp('abs', lambda ct, out, x: ct * o.sign(x))
defvjp('sign', _zero)
# from the output (positive exactly where x is; NaN in neither), so nothing else reads x and the
# product that makes x can apply the relu itself (passes.product_epilogues)
defvjp('relu', lambda ct, out, x: o.where(o.greater(out, 0), ct, 0))
defvjp('floor', _zero)

defvjp('add', lambda ct, out, x, y: ct, lambda ct, out, x, y: ct)
defvjp('sub', lambda ct, out, x, y: ct, lambda ct, out, x, y: o.negative(ct))
defvjp('mul', lambda ct, out, x, y: ct * y, lambda ct, out, x, y: ct * x)
defvjp('div', lambda ct, out, x, y: ct / y, lambda ct, out, x, y: -(ct * out / y))
defvjp('pow', lambda ct, out, x, y: ct * y * x ** (y - 1),
       lambda ct, out, x, y: o.where(o.equal(x, 0), o.zeros_like(out), ct * out * o.log(x)))
defvjp('max', lambda ct, out, x, y: o.where(o.greater_equal(x, y), ct, 0.0),
       lambda ct, out, x, y: o.where(o.less(x, y), ct, 0.0))
defvjp('min', lambda ct, out, x, y: o.where(o.less_equal(x, y), ct, 0.0),
       lambda ct, out, x, y: o.where(o.greater(x, y), ct, 0.0))
defvjp('select', _zero, lambda ct, out, c, x, y: o.where(c, ct, 0.0),
       lambda ct, out, c, x, y: o.where(c, 0.0, ct))
defvjp('convert', lambda ct, out, x, *, dtype: o.cast(ct, x.dtype) if o.is_floating(x) else None)

defvjp('reduce_sum', lambda ct, out, x, *, axes: _keepdims_ct(ct, x, axes))
defvjp('reduce_max', _extremum_vjp)
defvjp('reduce_min', _extremum_vjp)

defvjp('broadcast_to', lambda ct, out, x, *, shape: ct)
defvjp('reshape', lambda ct, out, x, *, shape: o.reshape(ct, x.shape))
defvjp('transpose', lambda ct, out, x, *, perm: o.transpose(ct, tuple(np.argsort(perm))))
defvjp('slice', lambda ct, out, x, *, slices: o.unslice(ct, x.shape, slices))
defvjp('unslice', lambda ct, out, u, *, shape, slices: o.slice_(ct, slices))
defvjp('concat', all_inputs=_concat_vjp)
defvjp('gather', _gather_vjp, _zero)
defvjp('fresh_read', _zero, lambda ct, out, value, entry: ct)
defvjp('gather_sum', _gather_sum_vjp, _zero)
defvjp('scatter_add', lambda ct, out, u, i, *, axis, size: o.gather(ct, i, axis=axis), _zero)
defvjp('allreduce_sum', lambda ct, out, x, *, comm, timeout: o.allreduce_sum(ct, comm, timeout))
defvjp('matmul', _matmul_vjp_a, _matmul_vjp_b)
defvjp('scatter_rows', all_inputs=_scatter_rows_vjp)
defvjp('sum_duplicates', lambda ct, out, u, i: o.sum_duplicates(ct, i), _zero)
defvjp('log_softmax',
       lambda ct, out, x: ct - o.exp(out) * o.reduce_sum(ct, axis=-1, keepdims=True))

# windows (convolution and pooling): im2col and col2im are each other's transposes
defvjp('im2col', lambda ct, out, x, **window: conv.windows_transpose(ct, x.shape[1:3], **window))
defvjp('col2im', lambda ct, out, u, *, size, **window: conv.windows(ct, **window))
defvjp('max_pool', lambda ct, out, x, **window: conv.max_pool_grad(ct, x, **window))
defvjp('max_pool_grad', lambda ct, out, u, x, **window: conv.at_window_peaks(ct, x, **window),
       _zero)

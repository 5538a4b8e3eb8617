"""Every primitive in `tracejit.primitives.REGISTRY`, tested from one table of specs.

One `Spec` per primitive says how to build valid inputs (respecting domains and staying away
from kinks and ties), the numpy reference (written here, never calling the primitive's own numpy
rule), the dtypes to run and the params. From the table each primitive is checked for:
a complete registry record; eager result == numpy reference; shape rule == the numpy rule's
actual shape and the expected dtype; `tj.function` (traced, then interpreted or compiled) ==
eager; VJP == finite differences in float64, first and second order.

A primitive added to the registry without a spec fails `test_every_primitive_has_a_spec`.
"""
import string

import numpy as np
import pytest

import tracejit as tj
from tracejit import ir, ops
from tracejit import primitives as P
from tracejit.callbacks import HostCall
from tracejit.tracing import bind

from gradcheck import check_grads

FLOATS = (np.float64, np.float32)
NUMBERS = (np.float64, np.float32, np.int32, np.int64)


# ---------------------------------------------------------------------------- input domains
# A domain makes an array of a shape and dtype. Float domains keep away from kinks (0 for
# abs/sign, integers for floor) by much more than the finite-difference step.

def _signed(rng, shape, dtype):
    if np.dtype(dtype).kind in 'iu':
        return (rng.choice([-1, 1], size=shape) * rng.integers(1, 6, size=shape)).astype(dtype)
    return (rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)).astype(dtype)


def _positive(rng, shape, dtype):
    if np.dtype(dtype).kind in 'iu':
        return rng.integers(1, 6, size=shape).astype(dtype)
    return rng.uniform(0.3, 2.0, size=shape).astype(dtype)


def _above_minus_one(rng, shape, dtype):
    return rng.uniform(-0.6, 2.0, size=shape).astype(dtype)


def _non_integer(rng, shape, dtype):
    return (rng.integers(-3, 3, size=shape) + rng.uniform(0.1, 0.9, size=shape)).astype(dtype)


def _grid(offset):
    """Integers plus `offset` (+-0.05): values from _grid(0.25) and _grid(0.75) never tie."""
    def domain(rng, shape, dtype):
        if np.dtype(dtype).kind in 'iu':
            return rng.integers(-3, 4, size=shape).astype(dtype)
        return (rng.integers(-2, 3, size=shape) + offset
                + rng.uniform(-0.05, 0.05, size=shape)).astype(dtype)
    return domain


def _small_int(rng, shape, dtype):
    """Few distinct values, so comparisons meet ties."""
    return rng.integers(-2, 3, size=shape).astype(dtype)


def _distinct(rng, shape, dtype):
    """All elements distinct and >= 0.3 apart: no ties at a maximum or minimum."""
    n = int(np.prod(shape, dtype=np.int64))
    values = rng.permutation(n) - n // 2
    if np.dtype(dtype).kind in 'iu':
        return values.reshape(shape).astype(dtype)
    return (0.37 * values + rng.uniform(-0.03, 0.03, size=n)).reshape(shape).astype(dtype)


def _bools(rng, shape, dtype=None):
    return rng.random(size=shape) < 0.5


class A:
    """A data argument: made by `domain` in the test's dtype (or always bool)."""

    def __init__(self, shape, domain=_signed, bool_=False):
        self.shape, self.domain, self.bool_ = tuple(shape), domain, bool_

    def make(self, rng, dtype):
        if self.bool_:
            return _bools(rng, self.shape)
        return np.asarray(self.domain(rng, self.shape, dtype)).reshape(self.shape)

    def differentiable(self):
        return not self.bool_


def Bool(shape):  # noqa: N802 (reads like a type in the tables)
    return A(shape, bool_=True)


class Fixed:
    """An argument that is the same array for every dtype (indices, random keys)."""

    def __init__(self, value, dtype=np.int32):
        self.value = np.asarray(value, dtype)
        self.shape = self.value.shape

    def make(self, rng, dtype):
        return self.value.copy()

    def differentiable(self):
        return False


class Case:
    def __init__(self, args, params=None, grad=True, grad_kw=None, dtypes=None):
        self.args, self.params = list(args), dict(params or {})
        self.grad, self.grad_kw, self.dtypes = grad, dict(grad_kw or {}), dtypes

    @property
    def id(self):
        shapes = ','.join('x'.join(map(str, a.shape)) or 's' for a in self.args)
        params = ','.join(f'{k}={_short(v)}' for k, v in sorted(self.params.items()))
        return '-'.join(p for p in (shapes, params) if p) or 'noargs'


def _short(value):
    if isinstance(value, (type, np.dtype)):
        return np.dtype(value).name
    return str(value).replace(' ', '')


class Spec:
    """How to test one primitive.

    ref: numpy reference on the same inputs (float inputs upcast to float64).
    op: the public op with the primitive's signature, when there is one.
    out_dtype(input dtype, params): the expected result dtype (default: the input dtype).
    order: highest derivative order checked (0 for non-differentiable primitives).
    compiled: indices of the cases that also run through tj.function (default: all). Every
      distinct graph costs a Numba compile on a cold cache, so elementwise specs compile a few
      representative broadcasting patterns; eager and gradient tests still run every case.
    """

    def __init__(self, cases, ref, op=None, dtypes=FLOATS, out_dtype=None, order=2, grad_kw=None,
                 compiled=None):
        self.cases, self.ref, self.op, self.dtypes = cases, ref, op, tuple(dtypes)
        self.out_dtype = out_dtype or (lambda dtype, params: np.dtype(dtype))
        self.order, self.grad_kw = order, dict(grad_kw or {})
        self.compiled = tuple(range(len(cases)) if compiled is None else compiled)

    def dtypes_of(self, case):
        return tuple(case.dtypes or self.dtypes)


def _bool_out(dtype, params):
    return np.dtype(np.bool_)


def _param_dtype(dtype, params):
    return np.dtype(params['dtype'])


# ---------------------------------------------------------------------------- references

def _sigmoid_ref(x):
    return 1.0 / (1.0 + np.exp(-x))


def _sign_ref(x):
    return ((x > 0).astype(np.int64) - (x < 0).astype(np.int64)).astype(x.dtype)


def _axes_ref(fn):
    return lambda x, *, axes: fn(x, axis=axes) if axes else x


def _sum_ref(x, *, axes):
    return np.sum(x, axis=axes, dtype=x.dtype) if axes else x


def _index_lists(slices):
    """Each (start, stop, step) as the explicit list of indices Python's range gives."""
    return [np.arange(start, stop, step, dtype=np.int64) for start, stop, step in slices]


def _slice_ref(x, *, slices):
    return x[np.ix_(*_index_lists(slices))]


def _unslice_ref(u, *, shape, slices):
    out = np.zeros(shape, u.dtype)
    out[np.ix_(*_index_lists(slices))] = u
    return out


def _concat_ref(*xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = np.empty(shape, xs[0].dtype)
    start = 0
    for x in xs:
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, start + x.shape[axis])
        out[tuple(index)] = x
        start += x.shape[axis]
    return out


def _gather_ref(x, indices, *, axis):
    out_shape = x.shape[:axis] + indices.shape + x.shape[axis + 1:]
    out = np.empty(out_shape, x.dtype)
    for pos in np.ndindex(indices.shape):
        index = (slice(None),) * axis + pos
        out[index] = np.take(x, indices[pos], axis=axis)
    return out


def _scatter_add_ref(u, indices, *, axis, size):
    k = indices.ndim
    out = np.zeros(u.shape[:axis] + (size,) + u.shape[axis + k:], u.dtype)
    for pos in np.ndindex(indices.shape):
        target = (slice(None),) * axis + (int(indices[pos]),)
        out[target] += u[(slice(None),) * axis + pos]
    return out


def _scatter_rows_ref(base, indices, updates, *, mode, depth):
    """Row by row, in order: rows of `base` over its first `depth` axes, as nested indices."""
    out = base.copy()
    lead = base.shape[:depth]
    combine = {'update': lambda old, new: new, 'add': lambda old, new: old + new,
               'max': lambda old, new: np.where(new > old, new, old),
               'min': lambda old, new: np.where(new < old, new, old)}[mode]
    for j, row in enumerate(indices):
        target = np.unravel_index(int(row), lead)
        out[target] = combine(out[target], updates[j])
    return out


def _sum_duplicates_ref(values, indices):
    out = np.zeros_like(values)
    for j, i in enumerate(indices):
        for jj, ii in enumerate(indices):
            if ii == i:
                out[j] = out[j] + values[jj]
    return out


def _gather_sum_ref(x, indices):
    out = np.zeros(indices.shape[:-1] + x.shape[1:], x.dtype)
    for pos in np.ndindex(indices.shape):
        out[pos[:-1]] += x[indices[pos]]
    return out


def _accumulate_rows_ref(base, indices, values, scale, *, decay, power, repeat):
    """Row by row over the distinct indices, the values of each summed first (index j goes
    with value j // repeat)."""
    out = base.copy()
    for row in set(indices.tolist()):
        total = sum(values[j // repeat] for j, i in enumerate(indices) if i == row)
        out[row] = decay * base[row] + scale * total ** power
    return out


def _lazy_adam_rows_ref(var, indices, m, v, values, lr, *, beta_1, beta_2, epsilon, repeat):
    """Row by row over the distinct indices: the moments, then the step."""
    var, m, v = var.copy(), m.copy(), v.copy()
    for row in set(indices.tolist()):
        g = sum(values[j // repeat] for j, i in enumerate(indices) if i == row)
        m[row] = beta_1 * m[row] + (1 - beta_1) * g
        v[row] = beta_2 * v[row] + (1 - beta_2) * g * g
        var[row] = var[row] - lr * m[row] / (np.sqrt(v[row]) + epsilon)
    return var, m, v


def _matmul_ref(a, b, *, transpose_a, transpose_b):
    a = np.swapaxes(a, -1, -2) if transpose_a else a
    b = np.swapaxes(b, -1, -2) if transpose_b else b
    return np.einsum('...ij,...jk->...ik', a, b)


def _matmul_epilogue_ref(a, b, extra, *, transpose_a, transpose_b, epilogue):
    product = _matmul_ref(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    if epilogue == 'relu_mask':
        return np.where(extra > 0, product, 0.0)
    biased = product + extra
    return np.where(biased > 0, biased, 0.0) if epilogue == 'bias_relu' else biased


def _iota_ref(*, shape, axis, dtype):
    return np.indices(shape)[axis].astype(dtype)


def _splitmix64(key, count):
    """The documented generator, in plain Python integers: splitmix64(key * gamma + i)."""
    mask = 2**64 - 1
    out = []
    for i in range(count):
        z = ((key % 2**64) * 0x9E3779B97F4A7C15 + i) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def _random_uniform_ref(key, *, shape, dtype):
    bits = _splitmix64(int(key), int(np.prod(shape, dtype=np.int64)))
    if np.dtype(dtype) == np.float32:
        values = [(b >> 40) * 2.0**-24 for b in bits]
    else:
        values = [(b >> 11) * 2.0**-53 for b in bits]
    return np.array(values, dtype=dtype).reshape(shape)


def _log_softmax_ref(x):
    """log(softmax) over the last axis, computed in float64 from the definition."""
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return (np.log(e / e.sum(axis=-1, keepdims=True))).astype(x.dtype)


def _window_axis(size, k, stride, dilation, padding):
    """(output size, padding before) of one axis: TF's documented SAME/VALID arithmetic."""
    span = (k - 1) * dilation + 1
    if padding == 'VALID':
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + span - size, 0) // 2


def _window_taps(shape, ksize, strides, dilations, padding):
    """[((i, j, p, q), (r, s) or None)]: each output position's taps and where they read
    (None over the padding)."""
    (oh, top), (ow, left) = (_window_axis(shape[1 + a], ksize[a], strides[a], dilations[a],
                                          padding) for a in range(2))
    taps = []
    for i, j, p, q in np.ndindex(oh, ow, *ksize):
        r, s = i * strides[0] + p * dilations[0] - top, j * strides[1] + q * dilations[1] - left
        inside = 0 <= r < shape[1] and 0 <= s < shape[2]
        taps.append(((i, j, p, q), (r, s) if inside else None))
    return (oh, ow), taps


def _im2col_ref(x, *, ksize, strides, dilations, padding):
    (oh, ow), taps = _window_taps(x.shape, ksize, strides, dilations, padding)
    out = np.zeros((x.shape[0], oh, ow) + tuple(ksize) + (x.shape[3],), x.dtype)
    for (i, j, p, q), at in taps:
        if at is not None:
            out[:, i, j, p, q, :] = x[:, at[0], at[1], :]
    return out


def _col2im_ref(u, *, size, ksize, strides, dilations, padding):
    shape = (u.shape[0],) + tuple(size) + (u.shape[5],)
    out = np.zeros(shape, u.dtype)
    for (i, j, p, q), at in _window_taps(shape, ksize, strides, dilations, padding)[1]:
        if at is not None:
            out[:, at[0], at[1], :] += u[:, i, j, p, q, :]
    return out


def _pool_argmax_ref(x, *, ksize, strides, padding):
    """For each window and channel, the flat index of its first largest tap."""
    (oh, ow), taps = _window_taps(x.shape, ksize, strides, (1, 1), padding)
    n, h, w, c = x.shape
    out = np.zeros((n, oh, ow, c), np.int64)
    for b, i, j, ch in np.ndindex(n, oh, ow, c):
        inside = [at for (ti, tj, _, _), at in taps if (ti, tj) == (i, j) and at is not None]
        flat = [((b * h + r) * w + s) * c + ch for r, s in inside]
        out[b, i, j, ch] = flat[int(np.argmax([x[b, r, s, ch] for r, s in inside]))]
    return out


def _matmul_col2im_ref(a, b, *, transpose_b, size, **window):
    """The product's rows as (N, OH, OW, KH, KW, C) windows, added back by _col2im_ref."""
    (oh, ow), _ = _window_taps((1,) + tuple(size) + (1,), **window)
    product = a @ (b.T if transpose_b else b)
    windows = product.reshape((a.shape[0] // (oh * ow), oh, ow) + tuple(window['ksize']) + (-1,))
    return _col2im_ref(windows, size=size, **window)


def _pool_grad_matmul_ref(a, ct, x, **window):
    return a.T @ _max_pool_grad_ref(ct, x, **window).reshape((-1, x.shape[3]))


def _pooled_shape(shape, ksize, strides, padding):
    (oh, ow), _ = _window_taps(shape, ksize, strides, (1, 1), padding)
    return (shape[0], oh, ow, shape[3])


def _max_pool_grad_ref(ct, x, *, ksize, strides, padding):
    """Each window's cotangent added at the first largest tap _pool_argmax_ref finds."""
    out = np.zeros(x.size, ct.dtype)
    index = _pool_argmax_ref(x, ksize=ksize, strides=strides, padding=padding)
    for at, value in zip(index.ravel(), ct.ravel()):
        out[at] += value
    return out.reshape(x.shape)


def _max_pool_ref(x, *, ksize, strides, padding):
    (oh, ow), taps = _window_taps(x.shape, ksize, strides, (1, 1), padding)
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for (i, j, _, _), at in taps:
        if at is not None:
            out[:, i, j] = np.maximum(out[:, i, j], x[:, at[0], at[1]])
    return out.astype(x.dtype)


# ---------------------------------------------------------------------------- the table

# The done-means shapes (), (3, 1), (1, 4), (3, 4) for every elementwise primitive: unary ones
# run on each (the size-1 axes are where a layout or unbroadcast bug would show), binary ones
# on pairs of them that broadcast against each other.
UNARY_SHAPES = [(), (4,), (3, 4), (3, 1), (1, 4)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((), (3, 4)), ((3, 4), ()), ((3, 1), (1, 4)),
                 ((1, 4), (3, 4)), ((3, 4), (3, 1)), ((4,), (2, 3, 4)), ((), ())]
COMPARE_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (3, 4)), ((4,), ())]


def unary(ref, op, domain=_signed, dtypes=FLOATS, **kw):
    return Spec([Case([A(s, domain)]) for s in UNARY_SHAPES], ref, op, dtypes, compiled=(0, 2),
                **kw)


def binary(ref, op, domains=(_signed, _signed), shapes=BINARY_SHAPES, dtypes=FLOATS,
           compiled=(0, 3, 6), **kw):
    return Spec([Case([A(sx, domains[0]), A(sy, domains[1])]) for sx, sy in shapes],
                ref, op, dtypes, compiled=compiled, **kw)


def compare(ref, op):
    return binary(ref, op, (_small_int, _small_int), COMPARE_SHAPES, NUMBERS,
                  out_dtype=_bool_out, order=0, compiled=(0, 1))


def logical(ref, op, arity=2):
    shapes = COMPARE_SHAPES if arity == 2 else [(s,) for s in UNARY_SHAPES]
    return Spec([Case([Bool(s) for s in pair]) for pair in shapes], ref, op, (np.bool_,),
                order=0, compiled=(0, 1) if arity == 2 else (0, 2))


def reduction(ref, op, domain=_signed, dtypes=FLOATS, compiled=tuple(range(8))):
    """Every axis subset of (3, 4), 3-d cases, a scalar, and the broadcasting shapes (3, 1) and
    (1, 4) reduced over their size-1 axis, their long axis and both (eager and gradients; the
    compiled test keeps the first eight cases)."""
    cases = [Case([A(shape, domain)], {'axes': axes}) for shape, axes in [
        ((3, 4), ()), ((3, 4), (0,)), ((3, 4), (1,)), ((3, 4), (0, 1)), ((2, 3, 4), (0, 2)),
        ((2, 3, 4), (1,)), ((), ()), ((5,), (0,)),
        ((3, 1), (1,)), ((3, 1), (0,)), ((1, 4), (0,)), ((1, 4), (0, 1))]]
    return Spec(cases, ref, op, dtypes, compiled=compiled)


def argreduction(ref, op):
    cases = [Case([A(shape, _distinct)], {'axis': axis}) for shape, axis in [
        ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), 0), ((5,), 0)]]
    return Spec(cases, ref, op, (np.float64, np.float32, np.int32),
                out_dtype=lambda dtype, params: np.dtype(np.int64), order=0, compiled=(0, 2, 3))


SLICE_CASES = [
    ((5, 4), ((0, 5, 2), (0, 4, 1))),
    ((5, 4), ((4, -1, -1), (3, 0, -2))),
    ((5, 4), ((1, 4, 1), (3, -1, -1))),
    ((5, 4), ((0, 0, 1), (0, 4, 1))),
    ((6,), ((5, 0, -2),)),
    ((2, 3, 4), ((1, 2, 1), (2, -1, -1), (0, 4, 3))),
]

GATHER_CASES = [  # (operand shape, indices, axis)
    ((5, 3), np.array([4, 0, 2, 2]), 0),
    ((3, 5), np.array([[1, 4], [0, 0]]), 1),
    ((2, 3, 4), np.array([3, 1], np.int64), 2),
    ((4,), np.array(2), 0),
]

GATHER_SUM_CASES = [  # (table shape, indices): bags along the indices' last axis
    ((5, 3), [[4, 0, 2], [2, 2, 1]]),     # a repeated row counts twice
    ((4,), [1, 3, 3]),                    # one bag of scalars
    ((2, 3, 4), [[[1, 0]], [[1, 1]]]),
    ((3, 2), [[0, -1]]),                  # batch 1, a negative index counts from the end
    ((3, 2), np.zeros((2, 0), np.int32)),  # empty bags sum to zero
]

SCATTER_ROWS_CASES = [  # (base shape, row indices, depth, mode, domains of base and updates)
    ((5, 3), [4, 0, 2, 2], 1, 'add', (_signed, _signed)),      # a repeated row adds up
    ((5, 3), [1, 4, 0], 1, 'update', (_signed, _signed)),
    ((1, 3), [0], 1, 'update', (_signed, _signed)),            # one row, id 0
    ((6,), [0, 5, 5], 1, 'add', (_signed, _signed)),
    ((2, 3, 4), [5, 0, 3], 2, 'add', (_signed, _signed)),      # n-d indices as row numbers
    ((4, 3), [3, 1], 1, 'max', (_grid(0.25), _grid(0.75))),
    ((4, 3), [0, 2], 1, 'min', (_grid(0.25), _grid(0.75))),
]
SUM_DUPLICATES_CASES = [((6, 3), [2, 0, 2, 5, 0, 2]), ((4,), [1, 1, 1, 1]), ((1, 2, 2), [0]),
                        ((4, 2), [90000, 3, 90000, 3])]   # a span this wide sorts

ACCUMULATE_ROWS_CASES = [  # (table shape, row indices, decay, power, repeat); scale random
    ((6, 3), [2, 0, 2, 5, 0, 2], 0.9, 1, 1),     # repeated rows sum before the update
    ((5,), [4, 4, 1], 0.999, 2, 1),
    ((1, 2, 2), [0], 0.5, 2, 1),
    ((4, 2), [3, 3, 3, 3], 0.0, 1, 1),           # decay 0: the summed gradient alone
    ((3, 2), [], 0.9, 2, 1),                     # no rows: nothing changes
    ((5, 2), [1, 3, 1, 0, 3, 3], 0.9, 2, 2),     # each value row serves two indices
    ((4, 3), [2, 2, 2], 0.999, 1, 3),
    ((6, 3), [1, 4, 1], 1.0, 1, 1),              # decay 1: SGD's step, base + scale * S
]
LAZY_ADAM_ROWS_CASES = [  # (table shape, row indices, repeat, epsilon)
    ((6, 3), [2, 0, 2, 5], 1, 1e-7),     # a repeated row's values sum first
    ((5,), [4, 1, 4], 1, 0.1),
    ((2, 2, 2), [1], 1, 1e-3),
    ((3, 2), [], 1, 1e-7),               # no rows: nothing changes
    ((5, 2), [1, 3, 1, 0, 3, 3], 3, 1e-7),
]

MATMUL_CASES = [  # (a shape, b shape, transpose_a, transpose_b)
    ((3, 4), (4, 2), False, False),
    ((4, 3), (4, 2), True, False),
    ((3, 4), (2, 4), False, True),
    ((4, 3), (2, 4), True, True),
    ((2, 3, 4), (2, 4, 5), False, False),
    ((2, 4, 3), (2, 5, 4), True, True),
    ((2, 4, 3), (2, 4, 5), True, False),
    ((1, 1), (1, 3), False, False),
]


# (m, k, n, transpose_a, transpose_b): gemm's tiles (more than one tile high, a last panel one
# column wide, transposed operands), and BLAS followed by a pass over the result (two rows, one
# column: too thin for the tiles; a product big enough for two BLAS threads)
EPILOGUE_PRODUCTS = [(13, 4, 33, False, False), (5, 3, 4, True, True), (2, 3, 4, False, True),
                     (4, 3, 1, True, False), (300, 20, 700, False, False)]


def _matmul_epilogue_cases():
    """Each epilogue on each product, integer-valued (small_int) so results meet 0 exactly:
    relu's tie and the mask's."""
    cases = []
    for epilogue in P.MATMUL_EPILOGUES:
        for m, k, n, ta, tb in EPILOGUE_PRODUCTS:
            extra = (m, n) if epilogue == 'relu_mask' else (n,)
            cases.append(Case([A((k, m) if ta else (m, k), _small_int),
                               A((n, k) if tb else (k, n), _small_int), A(extra, _small_int)],
                              {'transpose_a': ta, 'transpose_b': tb, 'epilogue': epilogue}))
    return cases


WINDOW_CASES = [  # (image shape, ksize, strides, dilations, padding): odd sizes, batch 1
    ((2, 5, 4, 3), (3, 2), (1, 1), (1, 1), 'SAME'),
    ((1, 7, 6, 2), (3, 3), (2, 2), (1, 1), 'VALID'),
    ((2, 6, 7, 1), (2, 3), (2, 3), (1, 1), 'SAME'),
    ((1, 7, 7, 2), (3, 2), (1, 1), (2, 3), 'SAME'),
    ((2, 5, 6, 2), (2, 2), (2, 1), (2, 1), 'VALID'),
    ((1, 3, 3, 1), (1, 1), (2, 2), (1, 1), 'SAME'),
]
POOL_CASES = [  # (image shape, ksize, strides, padding)
    ((2, 4, 4, 3), (2, 2), (2, 2), 'VALID'),
    ((1, 5, 5, 2), (3, 3), (2, 2), 'SAME'),
    ((2, 5, 4, 1), (3, 2), (1, 1), 'SAME'),
    ((1, 7, 5, 2), (2, 3), (3, 2), 'VALID'),
    ((1, 5, 7, 2), (2, 2), (3, 2), 'VALID'),   # windows apart: a row and a column in none
    ((2, 5, 5, 1), (2, 1), (2, 3), 'SAME'),    # columns between the windows
    ((2, 4, 5, 3), (2, 2), (1, 1), 'SAME'),    # overlapping 2 x 2 windows, the last ones cut
]


def _matmul_col2im_cases():
    """WINDOW_CASES as products of 3-long rows, the right operand transposed in every other."""
    cases = []
    for k, (shape, *window) in enumerate(WINDOW_CASES):
        rows = int(np.prod(_windows_shape(shape, *window)[:3]))
        cols, transpose_b = window[0][0] * window[0][1] * shape[3], k % 2 == 0
        cases.append(Case([A((rows, 3)), A((cols, 3) if transpose_b else (3, cols))],
                          dict(_window_params(*window), size=shape[1:3], transpose_b=transpose_b)))
    return cases


def _window_params(ksize, strides, dilations, padding):
    return {'ksize': ksize, 'strides': strides, 'dilations': dilations, 'padding': padding}


def _windows_shape(shape, ksize, strides, dilations, padding):
    (oh, _), (ow, _) = (_window_axis(shape[1 + a], ksize[a], strides[a], dilations[a], padding)
                        for a in range(2))
    return (shape[0], oh, ow) + tuple(ksize) + (shape[3],)

CONVERT_TARGETS = (np.float32, np.float64, np.int32, np.bool_)


def _host_double(shape):
    """A host call (Python at run time) returning twice its operand in float64."""
    return HostCall(lambda values: [np.asarray(values[0], np.float64) * 2],
                    [(shape, np.float64)], name='double')

SPECS = {
    'neg': unary(lambda x: 0 - x, tj.negative, dtypes=NUMBERS),
    'exp': unary(np.exp, tj.exp),
    'log': unary(np.log, tj.math.log, _positive),
    'log1p': unary(np.log1p, tj.math.log1p, _above_minus_one),
    'sqrt': unary(np.sqrt, tj.sqrt, _positive),
    'tanh': unary(np.tanh, tj.nn.tanh),
    'sigmoid': unary(_sigmoid_ref, tj.nn.sigmoid),
    'softplus': unary(lambda x: np.log1p(np.exp(x)), tj.nn.softplus),
    'sin': unary(np.sin, tj.sin),
    'cos': unary(np.cos, tj.cos),
    'abs': unary(lambda x: np.where(x < 0, -x, x), tj.abs, dtypes=NUMBERS),
    'sign': unary(_sign_ref, tj.sign, dtypes=NUMBERS),
    'relu': unary(lambda x: np.where(x > 0, x, 0 * x), tj.nn.relu, dtypes=NUMBERS),
    'floor': unary(np.floor, tj.floor, _non_integer),
    'add': binary(lambda x, y: x + y, tj.add, dtypes=NUMBERS),
    'sub': binary(lambda x, y: x - y, tj.subtract, dtypes=NUMBERS),
    'mul': binary(lambda x, y: x * y, tj.multiply, dtypes=NUMBERS),
    'div': binary(lambda x, y: x / y, tj.divide),
    'pow': binary(lambda x, y: np.exp(y * np.log(x)), tj.pow, (_positive, _signed)),
    'max': binary(lambda x, y: np.where(x > y, x, y), tj.maximum, (_grid(0.25), _grid(0.75)),
                  dtypes=NUMBERS),
    'min': binary(lambda x, y: np.where(x < y, x, y), tj.minimum, (_grid(0.75), _grid(0.25)),
                  dtypes=NUMBERS),
    'eq': compare(lambda x, y: x == y, tj.equal),
    'ne': compare(lambda x, y: x != y, tj.not_equal),
    'lt': compare(lambda x, y: x < y, tj.less),
    'le': compare(lambda x, y: x <= y, tj.less_equal),
    'gt': compare(lambda x, y: x > y, tj.greater),
    'ge': compare(lambda x, y: x >= y, tj.greater_equal),
    'stop_gradient': unary(lambda x: x.copy(), tj.stop_gradient, dtypes=NUMBERS, order=0),
    # a read of a Variable in a sub-graph: the value; its VJP is checked against TensorFlow
    # in test_control_flow.py
    'fresh_read': Spec([Case([A(s), A(s)], grad=False) for s in [(3, 4), ()]],
                       lambda value, entry: value.copy(), order=0, compiled=(0,)),
    'and': logical(lambda x, y: x & y, tj.logical_and),
    'or': logical(lambda x, y: x | y, tj.logical_or),
    'not': logical(lambda x: ~x, tj.logical_not, arity=1),
    'select': Spec([Case([Bool(c), A(x), A(y)]) for c, x, y in [
        ((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((), (3, 4), (3, 4)),
        ((3, 4), (3, 1), (1, 4)), ((4,), (3, 4), (4,))]],
        lambda c, x, y: c * x + (~c) * y, tj.where, NUMBERS, compiled=(0, 1, 3)),
    'convert': Spec([Case([A(shape, _signed)], {'dtype': np.dtype(target)},
                          grad=np.dtype(target).kind == 'f',
                          grad_kw={} if target is np.float64 else
                          {'eps': 1e-2, 'rtol': 1e-4, 'atol': 1e-4})
                     for target in CONVERT_TARGETS for shape in [(), (3, 4)]],
                    lambda x, *, dtype: x.astype(dtype),
                    lambda x, *, dtype: tj.cast(x, dtype),
                    (np.float64, np.float32, np.int32, np.int64), out_dtype=_param_dtype,
                    compiled=(1, 3, 5, 7)),  # the (3, 4) case of each target dtype
    'reduce_sum': reduction(_sum_ref, lambda x, *, axes: tj.reduce_sum(x, axis=list(axes)),
                            dtypes=NUMBERS),
    'reduce_max': reduction(_axes_ref(np.amax), lambda x, *, axes: tj.reduce_max(x, axis=axes),
                            _distinct, NUMBERS, compiled=(0, 3, 4, 6)),
    'reduce_min': reduction(_axes_ref(np.amin), lambda x, *, axes: tj.reduce_min(x, axis=axes),
                            _distinct, NUMBERS, compiled=(0, 3, 4, 6)),
    'argmax': argreduction(lambda x, *, axis: np.argmax(x, axis=axis),
                           lambda x, *, axis: tj.argmax(x, axis=axis)),
    'argmin': argreduction(lambda x, *, axis: np.argmin(x, axis=axis),
                           lambda x, *, axis: tj.argmin(x, axis=axis)),
    'broadcast_to': Spec([Case([A(s)], {'shape': t}) for s, t in [
        ((3, 1), (3, 4)), ((), (2, 3)), ((4,), (3, 4)), ((1, 4), (2, 3, 4)), ((3, 4), (3, 4)),
        ((2, 1, 1), (2, 3, 4))]],
        lambda x, *, shape: x + np.zeros(shape, x.dtype), tj.broadcast_to, NUMBERS),
    'reshape': Spec([Case([A(s)], {'shape': t}) for s, t in [
        ((3, 4), (4, 3)), ((3, 4), (12,)), ((3, 4), (2, 1, 6)), ((), (1, 1)), ((1,), ()),
        ((2, 3, 4), (6, 4)), ((0, 3), (3, 0))]],
        lambda x, *, shape: np.array(x.ravel().tolist(), x.dtype).reshape(shape), tj.reshape,
        NUMBERS),
    'transpose': Spec([Case([A(s)], {'perm': p}) for s, p in [
        ((3, 4), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (0, 2, 1)),
        ((5,), (0,))]],
        lambda x, *, perm: np.einsum(x, list(range(x.ndim)), list(perm)), tj.transpose,
        NUMBERS),
    'slice': Spec([Case([A(s)], {'slices': sl}) for s, sl in SLICE_CASES], _slice_ref,
                  ops.slice_, NUMBERS),
    'unslice': Spec([Case([A(tuple(len(range(*s)) for s in sl))], {'shape': shape, 'slices': sl})
                     for shape, sl in SLICE_CASES], _unslice_ref,
                    lambda u, *, shape, slices: ops.unslice(u, shape, slices), NUMBERS),
    'concat': Spec([Case([A(s) for s in shapes], {'axis': axis}) for shapes, axis in [
        (((2, 4), (3, 4)), 0), (((3, 1), (3, 2), (3, 4)), 1), (((2, 3, 4), (2, 1, 4)), 1),
        (((3,), (0,), (2,)), 0), (((2, 2), (2, 3)), 1)]],
        _concat_ref, lambda *xs, axis: tj.concat(list(xs), axis), NUMBERS),
    'gather': Spec([Case([A(s), Fixed(i, i.dtype)], {'axis': axis})
                    for s, i, axis in GATHER_CASES], _gather_ref, tj.gather, NUMBERS),
    'gather_sum': Spec([Case([A(shape), Fixed(rows)]) for shape, rows in GATHER_SUM_CASES],
                       _gather_sum_ref, compiled=(0, 3)),
    'scatter_add': Spec([Case([A(s[:axis] + i.shape + s[axis + 1:]), Fixed(i, i.dtype)],
                              {'axis': axis, 'size': s[axis]}) for s, i, axis in GATHER_CASES],
                        _scatter_add_ref, ops.scatter_add, NUMBERS),
    'scatter_rows': Spec([Case([A(shape, domains[0]), Fixed(rows),
                                A((len(rows),) + shape[depth:], domains[1])],
                               {'mode': mode, 'depth': depth})
                          for shape, rows, depth, mode, domains in SCATTER_ROWS_CASES],
                         _scatter_rows_ref,
                         lambda b, i, u, *, mode, depth: ops.scatter_rows(b, i, u, mode, depth),
                         NUMBERS, compiled=(0, 4, 5)),
    'sum_duplicates': Spec([Case([A(shape), Fixed(rows)]) for shape, rows in SUM_DUPLICATES_CASES],
                           _sum_duplicates_ref, ops.sum_duplicates, NUMBERS, compiled=(0, 3)),
    'accumulate_rows': Spec([Case([A(shape), Fixed(rows), A((len(rows) // repeat,) + shape[1:]),
                                   A(())], {'decay': decay, 'power': power, 'repeat': repeat})
                             for shape, rows, decay, power, repeat in ACCUMULATE_ROWS_CASES],
                            _accumulate_rows_ref, ops.accumulate_rows, order=0,
                            compiled=(0, 5)),
    'lazy_adam_rows': Spec([Case([A(shape), Fixed(rows), A(shape), A(shape, _positive),
                                  A((len(rows) // repeat,) + shape[1:]), A((), _positive)],
                                 {'beta_1': 0.9, 'beta_2': 0.999, 'epsilon': eps,
                                  'repeat': repeat})
                            for shape, rows, repeat, eps in LAZY_ADAM_ROWS_CASES],
                           _lazy_adam_rows_ref, ops.lazy_adam_rows, order=0, compiled=(0, 4)),
    'matmul': Spec([Case([A(sa), A(sb)], {'transpose_a': ta, 'transpose_b': tb})
                    for sa, sb, ta, tb in MATMUL_CASES], _matmul_ref, tj.matmul,
                   (np.float64, np.float32, np.int32)),
    'log_softmax': Spec([Case([A(s)]) for s in [(4,), (3, 4), (2, 3, 5), (1, 1)]],
                        _log_softmax_ref, tj.nn.log_softmax, FLOATS),
    'allreduce_sum': Spec([Case([A(s)], {'comm': 0, 'timeout': 10.0}) for s in UNARY_SHAPES],
                          lambda x, *, comm, timeout: x, ops.allreduce_sum, NUMBERS,
                          compiled=(0, 2)),  # comm 0: this process alone (mpiexec: test_distribute)
    'im2col': Spec([Case([A(shape)], _window_params(*window)) for shape, *window in WINDOW_CASES],
                   _im2col_ref, compiled=(0, 1, 3)),
    'col2im': Spec([Case([A(_windows_shape(shape, *window))],
                         dict(_window_params(*window), size=shape[1:3]))
                    for shape, *window in WINDOW_CASES], _col2im_ref, compiled=(1, 3)),
    # made by passes after the gradients: col2im of a product, a product with a pooling gradient
    'matmul_col2im': Spec(_matmul_col2im_cases(), _matmul_col2im_ref, order=0,
                          compiled=(0, 1)),
    'pool_grad_matmul': Spec([Case([A((int(np.prod(shape[:3])), 2)),
                                    A(_pooled_shape(shape, k, st, pad)), A(shape, _distinct)],
                                   {'ksize': k, 'strides': st, 'padding': pad})
                              for shape, k, st, pad in POOL_CASES], _pool_grad_matmul_ref,
                             order=0, compiled=(0, 6)),
    # made by a pass after the gradients: a product with the elementwise work that alone reads it
    'matmul_epilogue': Spec(_matmul_epilogue_cases(), _matmul_epilogue_ref, order=0,
                            compiled=(0, 3, 4, 5, 8, 9, 10, 11, 12, 14)),
    'pool_argmax': Spec([Case([A(shape, _distinct)], {'ksize': k, 'strides': st, 'padding': pad})
                         for shape, k, st, pad in POOL_CASES], _pool_argmax_ref,
                        out_dtype=lambda dtype, params: np.dtype(np.int64), order=0,
                        compiled=(0, 1)),
    'max_pool': Spec([Case([A(shape, _distinct)], {'ksize': k, 'strides': st, 'padding': pad})
                      for shape, k, st, pad in POOL_CASES], _max_pool_ref, compiled=(1, 3)),
    'max_pool_grad': Spec([Case([A(_pooled_shape(shape, k, st, pad)), A(shape, _distinct)],
                                {'ksize': k, 'strides': st, 'padding': pad})
                           for shape, k, st, pad in POOL_CASES], _max_pool_grad_ref,
                          compiled=(0, 2)),
    'host_call': Spec([Case([Fixed(0, np.int64), A(shape)], {'call': _host_double(shape)})
                       for shape in [(3, 4), ()]], lambda order, x, *, call: 2 * x,
                      out_dtype=lambda dtype, params: np.dtype(np.float64), order=0,
                      compiled=(0,)),
    'iota': Spec([Case([], {'shape': s, 'axis': ax, 'dtype': np.dtype(dt)}) for s, ax, dt in [
        ((3, 4), 1, np.int32), ((3, 4), 0, np.int64), ((2, 3, 4), 1, np.float32),
        ((5,), 0, np.int32),
        ((2, 3), 1, np.float64)]], _iota_ref, dtypes=(None,), out_dtype=_param_dtype, order=0),
    'random_uniform': Spec([Case([Fixed(key, np.int64)], {'shape': s, 'dtype': np.dtype(dt)})
                            for key, s, dt in [
                                (0, (3, 4), np.float32), (12345, (5,), np.float64),
                                (2**40 + 7, (), np.float32), (2**62 + 5, (2, 3), np.float64)]],
                           _random_uniform_ref, dtypes=(None,), out_dtype=_param_dtype, order=0),
}

# ---------------------------------------------------------------------------- helpers

def _cases(kind='all'):
    """pytest params (name, case index, dtype) for every case of every spec."""
    out = []
    for name in sorted(SPECS):
        spec = SPECS[name]
        for i, case in enumerate(spec.cases):
            dts = spec.dtypes_of(case)
            if kind == 'grad':
                if not (spec.order and case.grad and P.REGISTRY[name].differentiable):
                    continue
                dts = (np.float64,)
            for dt in dts:
                dt_name = 'none' if dt is None else np.dtype(dt).name
                out.append(pytest.param(name, i, dt, id=f'{name}-{case.id}-{dt_name}'))
    return out


def _function_cases():
    """pytest params for the compiled test: each of a spec's `compiled` cases and each of its
    dtypes at least once, the dtypes taking turns (every run is one Numba compile when cold)."""
    out = []
    for name in sorted(SPECS):
        spec = SPECS[name]
        for k in range(max(len(spec.compiled), len(spec.dtypes))):
            index = spec.compiled[k % len(spec.compiled)]
            case = spec.cases[index]
            dts = spec.dtypes_of(case)
            dt = dts[k % len(dts)]
            dt_name = 'none' if dt is None else np.dtype(dt).name
            out.append(pytest.param(name, index, dt, id=f'{name}-{case.id}-{dt_name}'))
    return out


def _make_args(name, index, dtype, seed=0):
    case = SPECS[name].cases[index]
    rng = np.random.default_rng([seed, index, sum(map(ord, name))])
    return case, [a.make(rng, dtype) for a in case.args]


def _expected_dtype(name, case, dtype):
    return np.dtype(SPECS[name].out_dtype(dtype, case.params))


def _reference(name, case, args, dtype):
    """The reference result: an array, or a tuple of them for a primitive of several outputs."""
    upcast = [a.astype(np.float64) if a.dtype.kind == 'f' else a for a in args]
    with np.errstate(all='ignore'):
        ref = SPECS[name].ref(*upcast, **case.params)
    return tuple(map(np.asarray, ref)) if isinstance(ref, tuple) else np.asarray(ref)


def _outputs(value):
    """A result as the list of its outputs (one, unless the primitive has several)."""
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _assert_close(actual, expected, dtype, what):
    actual = np.asarray(actual)
    dtype = np.dtype(dtype)
    assert actual.shape == np.shape(expected), (
        f'{what}: shape {actual.shape}, expected {np.shape(expected)}')
    assert actual.dtype == dtype, f'{what}: dtype {actual.dtype}, expected {dtype}'
    if dtype.kind == 'f':
        tol = 2e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(actual, np.asarray(expected, np.float64), rtol=tol,
                                   atol=tol, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, np.asarray(expected).astype(dtype), err_msg=what)


def _run_bind(name, args, params):
    if not args:
        return ops._source(name, **params)
    return bind(P.REGISTRY[name], *args, **params)


def _arity(name):
    spec = SPECS.get(name)
    if spec is not None:
        return len(spec.cases[0].args)
    fields = [f for _, f, _, _ in string.Formatter().parse(P.REGISTRY[name].codegen) if f]
    return 1 + max((int(f) for f in fields if f.isdigit()), default=-1)


# ---------------------------------------------------------------------------- the registry

# control-flow primitives (params holding sub-graphs) have their table in test_control_flow.py
ORDINARY = sorted(name for name, prim in P.REGISTRY.items() if prim.kind != 'control')


def test_every_primitive_has_a_spec():
    missing = sorted(set(ORDINARY) - set(SPECS))
    stale = sorted(set(SPECS) - set(P.REGISTRY))
    assert not missing, f'primitives without a test spec in {__file__}: {missing}'
    assert not stale, f'test specs for primitives that no longer exist: {stale}'


@pytest.mark.parametrize('name', sorted(P.REGISTRY))
def test_record_is_complete(name):
    prim = P.REGISTRY[name]
    assert isinstance(prim, P.Primitive) and prim.name == name
    assert callable(prim.shape_rule) and callable(prim.impl)
    assert prim.kind in P.KINDS
    assert isinstance(prim.codegen, str) and prim.codegen.strip(), 'empty codegen template'
    if prim.differentiable:
        assert prim.vjp is not None, f'{name} is differentiable but has no VJP rule'
        if not callable(prim.vjp):
            assert len(prim.vjp) == _arity(name), f'{name}: one VJP rule per input expected'
            assert all(callable(rule) for rule in prim.vjp), f'{name}: a VJP rule is not callable'
    else:
        assert prim.vjp is None, f'{name} is marked non-differentiable but has a VJP rule'
    if prim.kind == 'elementwise':
        arity = _arity(name)
        fields = [f for _, f, _, _ in string.Formatter().parse(prim.codegen) if f is not None]
        allowed = {str(i) for i in range(arity)} | {'bits', 'dtype'}
        assert set(fields) <= allowed, f'{name}: unknown placeholders {set(fields) - allowed}'
        assert {str(i) for i in range(arity)} <= set(fields), (
            f'{name}: the template {prim.codegen!r} does not use all {arity} operands')
        text = prim.codegen.format(*[f'x{i}' for i in range(arity)], bits='32',
                                   dtype='np.float32')
        assert all(f'x{i}' in text for i in range(arity))


@pytest.mark.parametrize('name', ORDINARY)
def test_nondifferentiable_is_explicit(name):
    """Non-differentiable primitives record nothing on a tape: their outputs get no gradient."""
    prim = P.REGISTRY[name]
    spec = SPECS[name]
    if prim.differentiable:
        assert spec.order > 0 or not any(c.grad for c in spec.cases), (
            f'{name} is differentiable: its spec should check its gradient')
        return
    assert spec.order == 0
    case, args = _make_args(name, 0, spec.dtypes[0] or np.float64)
    inputs = [tj.constant(a) for a in args]
    floats = [x for x in inputs if x.dtype.is_floating]
    with tj.GradientTape() as tape:
        tape.watch(floats)
        out = _run_bind(name, inputs, case.params)
        target = tj.reduce_sum(tj.cast(out, tj.float64))
    grads = tape.gradient(target, floats)
    assert all(g is None for g in grads), f'a gradient flowed through {name}'


# ---------------------------------------------------------------------------- values

@pytest.mark.parametrize('name, index, dtype', _cases())
def test_eager_matches_numpy(name, index, dtype):
    case, args = _make_args(name, index, dtype)
    expected_dtype = _expected_dtype(name, case, dtype)
    refs = _outputs(_reference(name, case, args, dtype))
    results = {'eager (bind)': _run_bind(name, args, case.params),
               'eager on tensors': _run_bind(name, [tj.constant(a) for a in args], case.params)}
    if SPECS[name].op is not None:
        results['public op'] = SPECS[name].op(*args, **case.params)
    for what, result in results.items():
        outs = _outputs(result)
        assert len(outs) == len(refs), f'{name} {what}: {len(outs)} outputs, {len(refs)} expected'
        for k, (out, ref) in enumerate(zip(outs, refs)):
            assert isinstance(out, tj.Tensor), f'{name} {what} returned {type(out)}'
            _assert_close(out, ref, expected_dtype, f'{name} {what} vs numpy, output {k}')


@pytest.mark.parametrize('name, index, dtype', _cases())
def test_shape_rule_matches_numpy_rule(name, index, dtype):
    case, args = _make_args(name, index, dtype)
    prim = P.REGISTRY[name]
    avals = prim.check(*[ir.Var(a.shape, a.dtype) for a in args], **case.params)
    with np.errstate(all='ignore'):
        raws = _outputs(prim.impl(*args, **case.params))
    refs = _outputs(_reference(name, case, args, dtype))
    assert len(avals) == len(raws) == len(refs)
    for (shape, out_dtype, weak), raw, ref in zip(avals, raws, refs):
        assert tuple(shape) == np.shape(raw), (
            f'{name}: shape rule says {shape}, numpy rule gives {np.shape(raw)}')
        assert np.dtype(out_dtype) == _expected_dtype(name, case, dtype)
        assert tuple(shape) == ref.shape
        assert weak is False, 'strongly typed operands must give a strongly typed result'


@pytest.mark.parametrize('name, index, dtype', _function_cases())
def test_function_matches_eager(name, index, dtype):
    """tj.function (traced, then interpreted or compiled) == eager."""
    case, args = _make_args(name, index, dtype)
    eagers = [np.asarray(e) for e in _outputs(_run_bind(name, args, case.params))]
    fn = tj.function(lambda *xs: _run_bind(name, list(xs), case.params))
    outs = _outputs(fn(*args))
    assert len(outs) == len(eagers) and all(isinstance(out, tj.Tensor) for out in outs)
    fn.trace(*args).graph.verify()
    for out, eager in zip(map(np.asarray, outs), eagers):
        assert out.shape == eager.shape and out.dtype == eager.dtype, (
            f'{out.dtype}{out.shape} from tj.function, {eager.dtype}{eager.shape} eagerly')
        if out.dtype.kind == 'f':
            tol = 1e-5 if out.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(out, eager, rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(out, eager)


# ---------------------------------------------------------------------------- gradients

@pytest.mark.parametrize('name, index, dtype', _cases('grad'))
def test_vjp_matches_finite_differences(name, index, dtype):
    spec = SPECS[name]
    case, args = _make_args(name, index, dtype)
    diff = [i for i, a in enumerate(case.args) if a.differentiable()]
    assert diff, f'{name}: a differentiable case needs a float argument'

    def fun(*xs):
        full = list(args)
        for i, x in zip(diff, xs):
            full[i] = x
        return _run_bind(name, full, case.params)

    fun.__name__ = f'{name}[{case.id}]'
    kw = dict(spec.grad_kw, **case.grad_kw)
    check_grads(fun, [args[i] for i in diff], order=spec.order, modes=('tape', 'grad'), **kw)
    if index == 0:  # the gradient graph through tj.function (one compile per primitive)
        check_grads(fun, [args[i] for i in diff], order=1, modes=('function',), **kw)


def test_maximum_and_minimum_ties_send_the_gradient_to_the_first_operand():
    x = tj.constant([1.0, 2.0, 3.0], tj.float64)
    y = tj.constant([1.0, 5.0, 3.0], tj.float64)
    for fn in (tj.maximum, tj.minimum):
        with tj.GradientTape() as tape:
            tape.watch([x, y])
            out = fn(x, y)
        gx, gy = tape.gradient(out, [x, y])
        np.testing.assert_array_equal(np.asarray(gx) + np.asarray(gy), [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(np.asarray(gx)[[0, 2]], [1.0, 1.0])


@pytest.mark.parametrize('fn', [tj.reduce_max, tj.reduce_min])
def test_reduce_extremum_splits_the_gradient_between_ties(fn):
    x = tj.constant([[3.0, 3.0, 1.0], [1.0, 1.0, 1.0]], tj.float64)
    if fn is tj.reduce_min:
        x = -x
    with tj.GradientTape() as tape:
        tape.watch(x)
        out = fn(x, axis=1)
    grad = np.asarray(tape.gradient(out, x))
    np.testing.assert_allclose(grad, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_pow_gradient_at_zero_base_is_finite():
    x = tj.constant([0.0, 2.0], tj.float64)
    y = tj.constant([2.0, 3.0], tj.float64)
    with tj.GradientTape() as tape:
        tape.watch([x, y])
        out = bind(P.REGISTRY['pow'], x, y)
    gx, gy = tape.gradient(out, [x, y])
    np.testing.assert_allclose(np.asarray(gx), [0.0, 12.0])
    np.testing.assert_allclose(np.asarray(gy), [0.0, 8.0 * np.log(2.0)])


def test_random_uniform_is_in_the_unit_interval_and_deterministic():
    key = np.array(987654321, np.int64)
    prim = P.REGISTRY['random_uniform']
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        a = np.asarray(bind(prim, key, shape=(1000,), dtype=dtype))
        b = np.asarray(bind(prim, key, shape=(1000,), dtype=dtype))
        np.testing.assert_array_equal(a, b)
        assert a.min() >= 0 and a.max() < 1 and 0.4 < a.mean() < 0.6
        other = np.asarray(bind(prim, key + 1, shape=(1000,), dtype=dtype))
        assert not np.array_equal(a, other)


# ---------------------------------------------------------------------------- special points
# The gradient AT the points where the random-input tests keep away: kinks (0 for relu, abs,
# sign), ties of max/min and of reductions, equal arguments, repeated gather indices, infinities
# and the ends of domains. The expected values are the convention tracejit documents, TF's
# (relu'(0) = 0, abs'(0) = 0, a tie of maximum/minimum sends the gradient to the first operand,
# a tie of reduce_max/min splits it evenly). Each entry: (arguments, params, expected gradient
# of sum(output) per argument), the points laid out along the arrays so one compiled function
# checks them all, eagerly and in a native kernel (which must agree, infinities included).

INF = np.inf
SPECIAL_POINTS = {
    'neg': ([[0.0, -INF, INF]], {}, [[-1.0, -1.0, -1.0]]),
    'exp': ([[0.0, -INF, 700.0]], {}, [[1.0, 0.0, np.exp(700.0)]]),
    'log': ([[0.0, INF, 1.0]], {}, [[INF, 0.0, 1.0]]),
    'log1p': ([[-1.0, INF, 0.0]], {}, [[INF, 0.0, 1.0]]),
    'sqrt': ([[0.0, INF, 4.0]], {}, [[INF, 0.0, 0.25]]),
    'tanh': ([[0.0, INF, -INF, 30.0]], {}, [[1.0, 0.0, 0.0, 0.0]]),
    'sigmoid': ([[0.0, INF, -INF, -200.0]], {}, [[0.25, 0.0, 0.0, 0.0]]),
    'softplus': ([[0.0, INF, -INF, 200.0]], {}, [[0.5, 1.0, 0.0, 1.0]]),
    'sin': ([[0.0]], {}, [[1.0]]),
    'cos': ([[0.0]], {}, [[0.0]]),
    'abs': ([[0.0, -0.0, INF, -INF]], {}, [[0.0, 0.0, 1.0, -1.0]]),
    'sign': ([[0.0, INF, -2.0]], {}, [[0.0, 0.0, 0.0]]),
    'relu': ([[0.0, -0.0, INF, -INF, 2.0]], {}, [[0.0, 0.0, 1.0, 0.0, 1.0]]),
    'floor': ([[1.0, -2.0, INF]], {}, [[0.0, 0.0, 0.0]]),
    'add': ([[1.0, INF], [1.0, -3.0]], {}, [[1.0, 1.0], [1.0, 1.0]]),
    'sub': ([[1.0, INF], [1.0, -3.0]], {}, [[1.0, 1.0], [-1.0, -1.0]]),
    'mul': ([[2.0, 0.0], [2.0, 0.0]], {}, [[2.0, 0.0], [2.0, 0.0]]),
    'div': ([[1.0, 0.0, 2.0], [INF, 1.0, 2.0]], {}, [[0.0, 1.0, 0.5], [-0.0, 0.0, -0.5]]),
    'pow': ([[0.0, 0.0, 2.0], [2.0, 1.0, 0.0]], {},
            [[0.0, 1.0, 0.0], [0.0, 0.0, np.log(2.0)]]),
    'max': ([[1.0, INF, -INF, 0.0], [1.0, INF, 0.0, 0.0]], {},
            [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]),
    'min': ([[1.0, -INF, INF, 0.0], [1.0, -INF, 0.0, 0.0]], {},
            [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]),
    'reduce_sum': ([[[INF, 1.0], [0.0, -1.0]]], {'axes': (1,)}, [[[1.0, 1.0], [1.0, 1.0]]]),
    'reduce_max': ([[[3.0, 3.0, 1.0], [INF, INF, 0.0], [-INF, -INF, -INF]]], {'axes': (1,)},
                   [[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]]),
    'reduce_min': ([[[1.0, 1.0, 3.0], [-INF, -INF, 0.0], [INF, INF, INF]]], {'axes': (1,)},
                   [[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]]),
    'select': ([Fixed([True, False], np.bool_), [INF, 1.0], [2.0, -INF]], {},
               [None, [1.0, 0.0], [0.0, 1.0]]),
    'log_softmax': ([[[0.0, -INF], [1.0, 1.0]]], {}, [[[-1.0, 1.0], [0.0, 0.0]]]),
    'gather': ([[1.0, INF, 3.0], Fixed([1, 1, 0])], {'axis': 0}, [[1.0, 2.0, 0.0], None]),
    'gather_sum': ([[1.0, INF, 3.0], Fixed([[1, 1], [0, 2]])], {}, [[1.0, 2.0, 1.0], None]),
    'scatter_add': ([[INF, 1.0, 2.0], Fixed([1, 1, 0])], {'axis': 0, 'size': 3},
                    [[1.0, 1.0, 1.0], None]),
    'scatter_rows': ([[[1.0, 2.0, INF]], Fixed([0]), [[1.0, 3.0, 0.0]]],
                     {'mode': 'max', 'depth': 1},   # a tie splits the gradient (TF's rule)
                     [[[0.5, 0.0, 1.0]], None, [[0.5, 1.0, 0.0]]]),
    'sum_duplicates': ([[[INF, 1.0], [2.0, 3.0]], Fixed([1, 1])], {}, [[[2.0, 2.0], [2.0, 2.0]],
                                                                       None]),
    'matmul': ([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]]],
               {'transpose_a': False, 'transpose_b': False},
               [[[3.0, 7.0], [3.0, 7.0]], [[4.0, 4.0], [6.0, 6.0]]]),
    'convert': ([[INF, -0.0]], {'dtype': np.dtype(np.float64)}, [[1.0, 1.0]]),
    'broadcast_to': ([[INF, 1.0]], {'shape': (3, 2)}, [[3.0, 3.0]]),
    'reshape': ([[INF, 1.0]], {'shape': (2, 1)}, [[1.0, 1.0]]),
    'transpose': ([[[INF, 1.0]]], {'perm': (1, 0)}, [[[1.0, 1.0]]]),
    'slice': ([[INF, 1.0, 2.0]], {'slices': ((0, 3, 2),)}, [[1.0, 0.0, 1.0]]),
    'unslice': ([[INF, 1.0]], {'shape': (3,), 'slices': ((0, 3, 2),)}, [[1.0, 1.0]]),
    'concat': ([[INF], [1.0, -INF]], {'axis': 0}, [[1.0], [1.0, 1.0]]),
    'fresh_read': ([[INF, np.nan, 1.0], [-INF, 0.0, 2.0]], {}, [[0.0] * 3, [1.0] * 3]),
    'allreduce_sum': ([[INF, -0.0, np.nan]], {'comm': 0, 'timeout': 10.0}, [[1.0, 1.0, 1.0]]),
    'im2col': ([[[[[INF], [1.0]]]]], _window_params((1, 2), (1, 1), (1, 1), 'SAME'),
               [[[[[1.0], [2.0]]]]]),
    'max_pool': ([[[[[3.0], [3.0], [INF], [-INF]], [[3.0], [1.0], [INF], [-INF]]]]],
                 {'ksize': (2, 2), 'strides': (2, 2), 'padding': 'VALID'},
                 [[[[[1.0], [0.0], [1.0], [0.0]], [[0.0], [0.0], [0.0], [0.0]]]]]),
    'max_pool_grad': ([[[[[INF], [2.0]]]], [[[[3.0], [3.0], [INF], [-INF]],
                                              [[3.0], [1.0], [INF], [-INF]]]]],
                      {'ksize': (2, 2), 'strides': (2, 2), 'padding': 'VALID'},
                      [[[[[1.0], [1.0]]]], [[[[0.0]] * 4] * 2]]),   # x only places the cotangent
    'col2im': ([[[[[[[INF], [1.0]]], [[[2.0], [-INF]]]]]]],
               dict(_window_params((1, 2), (1, 1), (1, 1), 'SAME'), size=(1, 2)),
               [[[[[[[1.0], [1.0]]], [[[1.0], [0.0]]]]]]]),
}


def test_every_differentiable_primitive_has_special_points():
    differentiable = {name for name in ORDINARY if P.REGISTRY[name].differentiable}
    assert not differentiable - set(SPECIAL_POINTS), sorted(differentiable - set(SPECIAL_POINTS))
    assert not set(SPECIAL_POINTS) - differentiable


def _special_args(name, dtype):
    args, params, expected = SPECIAL_POINTS[name]
    arrays = [a.value.copy() if isinstance(a, Fixed) else np.asarray(a, dtype) for a in args]
    if params.get('dtype') is not None:
        params = dict(params, dtype=np.dtype(dtype))
    return arrays, params, expected


def _special_grads(name, params, xs):
    """d sum(prim(*xs)) / d x for each float argument (None for the others)."""
    floats = [x for x in xs if x.dtype.is_floating]
    with tj.GradientTape() as tape:
        tape.watch(floats)
        out = bind(P.REGISTRY[name], *xs, **params)
    grads = iter(tape.gradient(out, floats, unconnected_gradients='zero'))
    return [next(grads) if x.dtype.is_floating else None for x in xs]


@pytest.mark.parametrize('dtype', FLOATS)
@pytest.mark.parametrize('name', sorted(SPECIAL_POINTS))
def test_gradient_at_special_points(name, dtype):
    arrays, params, expected = _special_args(name, dtype)
    eager = _special_grads(name, params, [tj.constant(a) for a in arrays])
    compiled = tj.function(lambda *xs: _special_grads(name, params, list(xs)))(*arrays)
    for i, want in enumerate(expected):
        if want is None:
            assert eager[i] is None and compiled[i] is None
            continue
        want = np.asarray(want, np.float64)
        with np.errstate(over='ignore'):
            want = want.astype(dtype)
        tol = dict(rtol=1e-6, atol=1e-6 if dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(np.asarray(eager[i]), want, **tol,
                                   err_msg=f'{name}: eager gradient of argument {i}')
        np.testing.assert_allclose(np.asarray(compiled[i]), want, **tol,
                                   err_msg=f'{name}: native gradient of argument {i}')

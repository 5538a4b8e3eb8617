"""Random programs: hypothesis builds small DAGs of ops over random shapes and checks that every
way of running and differentiating them agrees.

A program is a list of steps over a pool of values (the inputs first); each step applies one op
from `OPS` (unary, binary with broadcasting, reductions, layout, matmul) to values already in
the pool. For each program:

- values: numpy reference == eager == the traced graph run by `ir.evaluate` (the interpreter);
- gradients of sum(u * outputs): finite differences of the numpy reference (float64) ==
  eager GradientTape == `tj.grad` == GradientTape inside a traced function (interpreted);
  second order by nested tapes and grad-of-grad along a random direction;
- a smaller number of programs also run compiled through `tj.function` (values and gradients).

Inputs avoid kinks: a program whose max/min/abs/relu/where operands come within `MARGIN` of a
tie is rejected (the derivative is undefined there), as is one whose values blow up.
`TRACEJIT_FUZZ=long` selects the long hypothesis profile (see conftest.py).
"""
import itertools

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit import ir
from tracejit.primitives import REGISTRY
from tracejit.tracing import bind

from gradcheck import check_grads
from test_primitives import _accumulate_rows_ref, _gather_sum_ref, _lazy_adam_rows_ref

MARGIN = 1e-2           # distance from any kink, >> the finite-difference steps
MAX_MAGNITUDE = 1e4     # reject programs whose values explode (exp of exp of ...)
FD_EPS = 1e-4


# ---------------------------------------------------------------------------- op table

class Op:
    """One program op: `applies(shapes)` -> list of param choices (empty: not applicable),
    `tj(params, *xs)`, `np(params, *xs)`, and `margin(params, *xs)`: distance to a kink.
    `fd=False`: the numpy function is the value only, not the gradient (stop_gradient), so
    programs using the op compare gradients between tracejit's paths, not with finite
    differences."""

    def __init__(self, arity, tj_fn, np_fn, applies=None, margin=None, fd=True):
        self.arity, self.tj, self.np, self.fd = arity, tj_fn, np_fn, fd
        self.applies = applies or (lambda *shapes: [None])
        self.margin = margin or (lambda p, *xs: np.inf)


def _ew(tj_fn, np_fn, margin=None):
    return Op(1, lambda p, x: tj_fn(x), lambda p, x: np_fn(x), margin=margin)


def _broadcastable(sx, sy):
    try:
        np.broadcast_shapes(sx, sy)
        return [None]
    except ValueError:
        return []


def _bin(tj_fn, np_fn, margin=None):
    return Op(2, lambda p, x, y: tj_fn(x, y), lambda p, x, y: np_fn(x, y), _broadcastable,
              margin and (lambda p, x, y: margin(x, y)))


def _gap(x, y):
    return float(np.min(np.abs(x - y))) if np.size(x - y) else np.inf


def _axis_choices(shape):
    nd = len(shape)
    choices = [(None, k) for k in (False, True)]
    choices += [(ax, k) for ax in range(-nd, nd) for k in (False, True)]
    if nd >= 2:
        choices += [((0, nd - 1), False)]
    return choices


def _np_axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _top_two_gap(x, axis, largest):
    """Smallest gap between the two extreme values of each reduced slice (inf if one value)."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    kept = [a for a in range(x.ndim) if a not in axes]
    rows = np.transpose(x, kept + list(axes)).reshape(int(np.prod([x.shape[a] for a in kept])), -1)
    if rows.shape[1] < 2:
        return np.inf
    rows = np.sort(rows, axis=1)
    gaps = rows[:, -1] - rows[:, -2] if largest else rows[:, 1] - rows[:, 0]
    return float(np.min(gaps))


def _reduce(tj_fn, np_fn, extreme=None):
    """A reduction over a random axis choice; `extreme` (largest: True) marks max/min, whose
    kink is a tie between the two extreme values of a reduced slice."""
    margin = None if extreme is None else (
        lambda p, x: _top_two_gap(np.asarray(x), p[0], extreme))
    return Op(1, lambda p, x: tj_fn(x, axis=p[0], keepdims=p[1]),
              lambda p, x: np_fn(x, axis=_np_axis(p[0]), keepdims=p[1]),
              _axis_choices, margin)


def _np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _matmul_flags(sa, sb):
    """Transpose flags that make (.., m, k) @ (.., k, n) fit, for rank-2/3 operands."""
    if not (2 <= len(sa) <= 3 and 2 <= len(sb) <= 3):
        return []
    if len(sa) == len(sb) == 3 and sa[0] != sb[0] and 1 not in (sa[0], sb[0]):
        return []
    out = []
    for ta, tb in itertools.product((False, True), repeat=2):
        k1 = sa[-2] if ta else sa[-1]
        k2 = sb[-1] if tb else sb[-2]
        if k1 == k2:
            out.append((ta, tb))
    return out


def _np_matmul(p, a, b):
    ta, tb = p
    return np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)


def _product_fits(sa, sb):
    return [None] if len(sa) == len(sb) == 2 and sa[1] == sb[0] else []


def _tj_dense_relu(p, a, b):
    """A Dense layer with relu, read by a product: its bias and relu run in the first
    product, relu's gradient in the product that makes its cotangent (matmul_epilogue)."""
    return tj.matmul(tj.nn.relu(tj.matmul(a, b) + b[0]), b, transpose_b=True)


def _np_dense_relu(p, a, b):
    return np.maximum(a @ b + b[0], 0) @ b.T


def _dense_relu_gap(p, a, b):
    return float(np.min(np.abs(np.asarray(a) @ b + b[0])))


def _slices(shape):
    if not shape:
        return []
    n = shape[0]
    out = []
    for step in (1, 2, -1, -2):
        for start in range(n):
            stop = None if step < 0 else n
            if len(range(*slice(start, stop, step).indices(n))):
                out.append((start, stop, step))
    return out


def _reshapes(shape):
    out = [(-1,), tuple(reversed(shape))]
    if len(shape) < 3:
        out.append((1,) + tuple(shape))
    if len(shape) >= 2:
        out.append((shape[0] * shape[1],) + tuple(shape[2:]))
    return out


def _concat_axes(sx, sy):
    if len(sx) != len(sy) or not sx:
        return []
    return [ax for ax in range(len(sx))
            if all(a == b for i, (a, b) in enumerate(zip(sx, sy)) if i != ax)]


def _gather_params(shape):
    if not shape:
        return []
    n = shape[0]
    return [(tuple(idx), ax) for ax in range(len(shape)) for idx in
            ([0], [n - 1, 0, n - 1], [shape[ax] - 1] * 2) if max(idx) < shape[ax]]


def _row_params(shape):
    """Row indices for scatters over axis 0: one row, two rows, a repeated row (added)."""
    if not shape:
        return []
    n = shape[0]
    return [p for p in [((0,), 'update'), ((n - 1, 0), 'add'), ((n - 1, n - 1), 'add')]
            if len(set(p[0])) == len(p[0]) or p[1] == 'add']


def _np_scatter_rows(p, x):
    """Rows p[0] of x set to (update) or increased by (add) twice the row gathered."""
    out = x.copy()
    for row in p[0]:
        out[row] = 2.0 * x[row] if p[1] == 'update' else out[row] + 2.0 * x[row]
    return out


def _np_sum_duplicates(p, x):
    ids = np.asarray(p)
    return np.stack([x[ids == i].sum(axis=0) for i in ids]) if ids.size else x


def _bag_params(shape):
    """Bags of rows for gather_sum: a repeated row, a negative index, an empty bag."""
    if not shape:
        return []
    n = shape[0]
    return [((0, n - 1), (n - 1, n - 1)), ((-1,),), ((), ())]


def _tj_gather_sum(p, x):
    return bind(REGISTRY['gather_sum'], x, np.array(p, np.int32))


def _np_gather_sum(p, x):
    return _gather_sum_ref(x, np.array(p, np.int32))


def _update_rows_params(shape):
    """(rows, repeat) for the sparse optimizer row kernels: rows repeated, each value row
    serving one or two indices; the values are x's first rows."""
    if not shape:
        return []
    n = shape[0]
    return [((n - 1, 0, n - 1), 1), (tuple(i % n for i in range(2 * n)), 2)]


def _tj_accumulate_rows(p, x):
    """SGD's sparse step on x (the base is an operand used again by the program: an in-place
    row kernel must not clobber it)."""
    rows, repeat = p
    values = tj.gather(x, np.arange(len(rows) // repeat) % x.shape[0])
    return tj.ops.accumulate_rows(x, np.array(rows, np.int32), values, -0.25, 1.0, 1, repeat)


def _np_accumulate_rows(p, x):
    rows, repeat = p
    values = x[np.arange(len(rows) // repeat) % x.shape[0]]
    return _accumulate_rows_ref(x, np.array(rows), values, -0.25, decay=1.0, power=1,
                                repeat=repeat)


def _tj_lazy_adam_rows(p, x):
    rows, repeat = p
    values = tj.gather(x, np.arange(len(rows) // repeat) % x.shape[0])
    var, m, v = tj.ops.lazy_adam_rows(x, np.array(rows, np.int32), x * 0.5, x * x + 0.5,
                                      values, 0.1, 0.9, 0.999, 1e-7, repeat)
    return var + m * v


def _np_lazy_adam_rows(p, x):
    rows, repeat = p
    values = x[np.arange(len(rows) // repeat) % x.shape[0]]
    var, m, v = _lazy_adam_rows_ref(x, np.array(rows), x * 0.5, x * x + 0.5, values, 0.1,
                                    beta_1=0.9, beta_2=0.999, epsilon=1e-7, repeat=repeat)
    return var + m * v


def _to_integer(x):
    """Distance of `x` from the nearest integer (the kinks of floor and of a cast to int)."""
    x = np.asarray(x)
    return float(np.min(np.abs(x - np.round(x)), initial=np.inf))


def _np_windows(x, k, stride, padding, fill):
    """{output position: the image's taps of its window} of a 2-D `x` (one channel), TF's
    SAME/VALID geometry; padded taps are `fill`."""
    out = {}
    sizes = []
    for a in range(2):
        span = k[a]
        n = (-(-x.shape[a] // stride[a]) if padding == 'SAME'
             else (x.shape[a] - span) // stride[a] + 1)
        before = max((n - 1) * stride[a] + span - x.shape[a], 0) // 2 if padding == 'SAME' else 0
        sizes.append((n, before))
    (oh, top), (ow, left) = sizes
    for i, j in np.ndindex(oh, ow):
        taps = [x[r, c] if 0 <= r < x.shape[0] and 0 <= c < x.shape[1] else fill
                for r in range(i * stride[0] - top, i * stride[0] - top + k[0])
                for c in range(j * stride[1] - left, j * stride[1] - left + k[1])]
        out[(i, j)] = taps
    return out, (oh, ow)


def _window_choices(shape, kernel=None):
    """(strides, padding) choices for a 2-D image and a window of shape `kernel`."""
    if len(shape) != 2 or (kernel is not None and len(kernel) != 2):
        return []
    k = kernel or (2, 2)
    out = [((1, 1), 'SAME'), ((2, 1), 'SAME')]
    if all(k[a] <= shape[a] for a in range(2)):
        out.append(((1, 2), 'VALID'))
    return out


def _tj_conv(p, x, y):
    out = tj.nn.conv2d(tj.reshape(x, (1,) + tuple(x.shape) + (1,)),
                       tj.reshape(y, tuple(y.shape) + (1, 1)), p[0], p[1])
    return tj.reshape(out, out.shape[1:3])


def _np_conv(p, x, y):
    """Cross-correlation of the zero-padded image with the kernel."""
    windows, shape = _np_windows(x, y.shape, p[0], p[1], 0.0)
    return np.array([np.dot(windows[ij], y.ravel()) for ij in np.ndindex(shape)]).reshape(shape)


def _tj_pool(fn):
    def apply(p, x):
        out = fn(tj.reshape(x, (1,) + tuple(x.shape) + (1,)), 2, p[0], p[1])
        return tj.reshape(out, out.shape[1:3])
    return apply


def _np_pool(reduce):
    def apply(p, x):
        windows, shape = _np_windows(x, (2, 2), p[0], p[1], None)
        return np.array([reduce([v for v in windows[ij] if v is not None])
                         for ij in np.ndindex(shape)]).reshape(shape)
    return apply


def _tj_pool_peaks(p, x):
    """The gradient of half the sum of squared max-pool outputs (max_pool_grad, whose own
    gradient reads the cotangent at the window peaks)."""
    image = tj.reshape(x, (1,) + tuple(x.shape) + (1,))
    with tj.GradientTape() as tape:
        tape.watch(image)
        half_square = 0.5 * tj.reduce_sum(tj.square(tj.nn.max_pool2d(image, 2, p[0], p[1])))
    return tj.reshape(tape.gradient(half_square, image), x.shape)


def _np_pool_peaks(p, x):
    """x times the number of windows whose first maximum it is."""
    x = np.asarray(x)
    where, _ = _np_windows(np.arange(x.size).reshape(x.shape), (2, 2), p[0], p[1], None)
    counts = np.zeros(x.size)
    for taps in where.values():
        inside = [t for t in taps if t is not None]
        counts[inside[int(np.argmax(x.ravel()[inside]))]] += 1
    return x * counts.reshape(x.shape)


def _tj_conv_pool(p, x, y):
    """Max pooling of a convolution whose image needs no gradient (a first layer): its filter
    gradient makes the pooling gradient block by block for the product (pool_grad_matmul)."""
    image = tj.stop_gradient(tj.reshape(x, (1,) + tuple(x.shape) + (1,)))
    conv = tj.nn.conv2d(image, tj.reshape(y, tuple(y.shape) + (1, 1)), p[0], p[1])
    out = tj.nn.max_pool2d(conv, 2, 1, 'SAME')
    return tj.reshape(out, out.shape[1:3])


def _np_conv_pool(p, x, y):
    return _np_pool(max)(((1, 1), 'SAME'), _np_conv(p, x, y))


def _pool_gap(p, x):
    """Smallest gap between the two largest taps of a window (a max-pool tie is a kink)."""
    windows, _ = _np_windows(np.asarray(x), (2, 2), p[0], p[1], None)
    gaps = [np.diff(sorted(v for v in taps if v is not None))[-1:] for taps in windows.values()]
    return float(np.min(np.concatenate(gaps), initial=np.inf))


COMPARE = {'eq': (tj.equal, np.equal), 'ne': (tj.not_equal, np.not_equal),
           'lt': (tj.less, np.less), 'le': (tj.less_equal, np.less_equal),
           'gt': (tj.greater, np.greater), 'ge': (tj.greater_equal, np.greater_equal)}
LOGICAL = {'and': (tj.logical_and, np.logical_and), 'or': (tj.logical_or, np.logical_or),
           'not': (lambda a, b: tj.logical_not(a), lambda a, b: np.logical_not(a))}
ARG = {'max': (tj.argmax, np.argmax), 'min': (tj.argmin, np.argmin)}


OPS = {  # binary ops first: hypothesis' simplest programs are arithmetic chains
    'add': _bin(tj.add, np.add),
    'sub': _bin(lambda x, y: x - y, np.subtract),
    'mul': _bin(lambda x, y: x * y, np.multiply),
    'div': _bin(lambda x, y: x / (y * y + 0.5), lambda x, y: x / (y * y + 0.5)),
    'pow': _bin(lambda x, y: (x * x + 0.5) ** tj.tanh(y), lambda x, y: (x * x + 0.5) ** np.tanh(y)),
    'max': _bin(tj.maximum, np.maximum, _gap),
    'min': _bin(tj.minimum, np.minimum, _gap),
    'where': _bin(lambda x, y: tj.where(x > y, x * 2.0, y - 1.0),
                  lambda x, y: np.where(x > y, x * 2.0, y - 1.0), _gap),
    'sqdiff': _bin(tj.squared_difference, lambda x, y: (x - y) ** 2),
    'allreduce': _ew(lambda x: tj.distribute.allreduce(x, op=tj.distribute.Sum), lambda x: x),
    'neg': _ew(tj.negative, np.negative),
    'tanh': _ew(tj.tanh, np.tanh),
    'sin': _ew(tj.sin, np.sin),
    'cos': _ew(tj.cos, np.cos),
    'sigmoid': _ew(tj.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    'softplus': _ew(tj.nn.softplus, lambda x: np.log1p(np.exp(x))),
    'exp': _ew(tj.exp, np.exp),
    'square': _ew(tj.square, np.square),
    'log_sq': _ew(lambda x: tj.log(x * x + 0.5), lambda x: np.log(x * x + 0.5)),
    'sqrt_sq': _ew(lambda x: tj.sqrt(x * x + 0.5), lambda x: np.sqrt(x * x + 0.5)),
    'abs': _ew(tj.abs, np.abs, lambda p, x: float(np.min(np.abs(x)))),
    'relu': _ew(tj.nn.relu, lambda x: np.maximum(x, 0), lambda p, x: float(np.min(np.abs(x)))),
    'reduce_sum': _reduce(tj.reduce_sum, np.sum),
    'reduce_mean': _reduce(tj.reduce_mean, np.mean),
    'reduce_max': _reduce(tj.reduce_max, np.max, extreme=True),
    'reduce_min': _reduce(tj.reduce_min, np.min, extreme=False),
    'logsumexp': _reduce(tj.reduce_logsumexp, _np_logsumexp),
    'softmax': Op(1, lambda p, x: tj.nn.softmax(x, axis=p), lambda p, x: _np_softmax(x, p),
                  lambda s: list(range(-len(s), len(s)))),
    'matmul': Op(2, lambda p, a, b: tj.matmul(a, b, transpose_a=p[0], transpose_b=p[1]),
                 _np_matmul, _matmul_flags),
    'dense_relu': Op(2, _tj_dense_relu, _np_dense_relu, _product_fits, _dense_relu_gap),
    'transpose': Op(1, lambda p, x: tj.transpose(x, p), lambda p, x: np.transpose(x, p),
                    lambda s: list(itertools.permutations(range(len(s))))[1:]),
    'reshape': Op(1, lambda p, x: tj.reshape(x, p), lambda p, x: np.reshape(x, p), _reshapes),
    'expand_dims': Op(1, lambda p, x: tj.expand_dims(x, p), lambda p, x: np.expand_dims(x, p),
                      lambda s: list(range(-len(s) - 1, len(s) + 1))),
    'squeeze': Op(1, lambda p, x: tj.squeeze(x, p), lambda p, x: np.squeeze(x, p),
                  lambda s: [i for i, d in enumerate(s) if d == 1]),
    'slice': Op(1, lambda p, x: x[p[0]:p[1]:p[2]], lambda p, x: x[p[0]:p[1]:p[2]], _slices),
    'index': Op(1, lambda p, x: x[..., p], lambda p, x: x[..., p],
                lambda s: list(range(-s[-1], s[-1])) if s else []),
    'gather': Op(1, lambda p, x: tj.gather(x, np.array(p[0]), axis=p[1]),
                 lambda p, x: np.take(x, np.array(p[0]), axis=p[1]), _gather_params),
    'scatter_rows': Op(1, lambda p, x: tj.ops.scatter_rows(
                           x, np.array(p[0]), tj.gather(x, np.array(p[0])) * 2.0, p[1]),
                       _np_scatter_rows, _row_params),
    'sum_duplicates': Op(1, lambda p, x: tj.ops.sum_duplicates(x, np.array(p, np.int32)),
                         _np_sum_duplicates,
                         lambda s: [tuple(i % 2 for i in range(s[0]))] if s else []),
    'gather_sum': Op(1, _tj_gather_sum, _np_gather_sum, _bag_params),
    # the sparse optimizer row kernels are not differentiated (their programs compare
    # tracejit's gradient paths, not finite differences)
    'accumulate_rows': Op(1, _tj_accumulate_rows, _np_accumulate_rows, _update_rows_params,
                          fd=False),
    'lazy_adam_rows': Op(1, _tj_lazy_adam_rows, _np_lazy_adam_rows, _update_rows_params,
                         fd=False),
    'py_function': Op(1, lambda p, x: tj.py_function(lambda a: tj.sin(a) * 2.0, [x], x.dtype),
                      lambda p, x: np.sin(x) * 2.0),   # a host call back into Python
    'tile': Op(1, lambda p, x: tj.tile(x, p), lambda p, x: np.tile(x, p),
               lambda s: [m for m in itertools.product((1, 2), repeat=len(s)) if 2 in m][:3]),
    'broadcast_to': Op(1, lambda p, x: tj.broadcast_to(x, p), lambda p, x: np.broadcast_to(x, p),
                       lambda s: [(2,) + tuple(s)] if len(s) < 3 else []),
    'concat': Op(2, lambda p, x, y: tj.concat([x, y], p),
                 lambda p, x, y: np.concatenate([x, y], p), _concat_axes),
    'stack': Op(2, lambda p, x, y: tj.stack([x, y], p), lambda p, x, y: np.stack([x, y], p),
                lambda sx, sy: list(range(len(sx) + 1)) if sx == sy and len(sx) < 3 else []),
    # the remaining primitives: log1p, sign, floor, comparisons, logical ops, convert, argmax /
    # argmin, one_hot (iota), log_softmax and stop_gradient (see test_every_primitive_is_fuzzed)
    'log1p_sq': _ew(lambda x: tj.math.log1p(x * x), lambda x: np.log1p(x * x)),
    'sign': _ew(lambda x: tj.sign(x) * (x * x + 0.5), lambda x: np.sign(x) * (x * x + 0.5),
                lambda p, x: float(np.min(np.abs(x)))),
    'frac': _ew(lambda x: x - tj.floor(x), lambda x: x - np.floor(x),
                lambda p, x: _to_integer(x)),
    'trunc': _ew(lambda x: x + tj.cast(tj.cast(x * 3.0, tj.int32), x.dtype),
                 lambda x: x + np.trunc(x * 3.0), lambda p, x: _to_integer(x * 3.0)),
    'compare': Op(2, lambda p, x, y: tj.where(COMPARE[p][0](x, y), x * 2.0, y - 1.0),
                  lambda p, x, y: np.where(COMPARE[p][1](x, y), x * 2.0, y - 1.0),
                  lambda sx, sy: sorted(COMPARE) if _broadcastable(sx, sy) else [],
                  lambda p, x, y: np.inf if x is y else _gap(x, y)),
    'logical': Op(2, lambda p, x, y: tj.where(LOGICAL[p][0](x > 0.0, y < 0.0), x, y - 1.0),
                  lambda p, x, y: np.where(LOGICAL[p][1](x > 0.0, y < 0.0), x, y - 1.0),
                  lambda sx, sy: sorted(LOGICAL) if _broadcastable(sx, sy) else [],
                  lambda p, x, y: min(float(np.min(np.abs(x), initial=np.inf)),
                                      float(np.min(np.abs(y), initial=np.inf)))),
    'argmax': Op(1, lambda p, x: tj.cast(ARG[p[0]][0](x, axis=p[1]), x.dtype)
                 + tj.reduce_sum(x, axis=p[1]),
                 lambda p, x: ARG[p[0]][1](x, axis=p[1]).astype(x.dtype) + np.sum(x, axis=p[1]),
                 lambda s: [(k, ax) for k in sorted(ARG) for ax in range(-len(s), len(s))],
                 lambda p, x: _top_two_gap(np.asarray(x), p[1], p[0] == 'max')),
    'one_hot_max': Op(1, lambda p, x: tj.one_hot(tj.argmax(x, axis=-1), x.shape[-1],
                                                 dtype=x.dtype) * x,
                      lambda p, x: (np.arange(x.shape[-1]) == np.argmax(x, -1)[..., None]) * x,
                      lambda s: [None] if s else [],
                      lambda p, x: _top_two_gap(np.asarray(x), -1, True)),
    'log_softmax': Op(1, lambda p, x: tj.nn.log_softmax(x, axis=p),
                      lambda p, x: np.log(_np_softmax(x, p)),
                      lambda s: list(range(-len(s), len(s)))),
    'stop_gradient': Op(1, lambda p, x: x * tj.stop_gradient(x), lambda p, x: x * x, fd=False),
    # convolution and pooling (im2col, col2im, max_pool_grad, pool_argmax) over a one-channel
    # image
    'conv2d': Op(2, _tj_conv, _np_conv, lambda sx, sy: _window_choices(sx, sy)),
    'max_pool': Op(1, _tj_pool(tj.nn.max_pool2d), _np_pool(max), _window_choices, _pool_gap),
    'max_pool_peaks': Op(1, _tj_pool_peaks, _np_pool_peaks, _window_choices, _pool_gap),
    'avg_pool': Op(1, _tj_pool(tj.nn.avg_pool2d), _np_pool(np.mean), _window_choices),
    # the image's gradient is stopped, so no finite differences (as for stop_gradient)
    'conv_pool': Op(2, _tj_conv_pool, _np_conv_pool, lambda sx, sy: _window_choices(sx, sy),
                    lambda p, x, y: _pool_gap(((1, 1), 'SAME'), _np_conv(p, x, y)), fd=False),
    # control flow: a real branch on the data, a bounded data-dependent loop, a scan over rows
    'cond': Op(2, lambda p, x, y: tj.cond(tj.reduce_sum(x) > 0.0, lambda: x * y,
                                          lambda: x - tj.sin(y)),
               lambda p, x, y: x * y if np.sum(x) > 0.0 else x - np.sin(y), _broadcastable,
               lambda p, x, y: abs(float(np.sum(x)))),
    'while': Op(1, lambda p, x: tj.while_loop(
                    lambda i, v: tj.reduce_sum(v * v) < 4.0, lambda i, v: (i + 1, v * 1.5 + 0.1),
                    (0, x), maximum_iterations=p)[1],
                lambda p, x: _np_while(p, x), lambda s: [1, 3],
                lambda p, x: _np_while_margin(p, x)),
    'scan': Op(1, lambda p, x: tj.scan(lambda a, r: tj.tanh(a * 0.8 + r), x,
                                       initializer=tj.zeros_like(x[0]), reverse=p),
               lambda p, x: _np_scan(p, x), lambda s: [False, True] if s else []),
}


def _np_while(limit, x):
    for _ in range(limit):
        if not np.sum(x * x) < 4.0:
            break
        x = x * 1.5 + 0.1
    return x


def _np_while_margin(limit, x):
    """Distance of the loop condition from its switching point on the iterations run."""
    gaps = []
    for _ in range(limit):
        gaps.append(abs(float(np.sum(x * x)) - 4.0))
        if not np.sum(x * x) < 4.0:
            break
        x = x * 1.5 + 0.1
    return min(gaps) if gaps else np.inf


def _np_scan(reverse, x):
    a, out = np.zeros_like(x[0]), np.empty_like(x)
    for i in (range(len(x) - 1, -1, -1) if reverse else range(len(x))):
        a = np.tanh(a * 0.8 + x[i])
        out[i] = a
    return out


# ---------------------------------------------------------------------------- programs

class Program:
    def __init__(self, inputs, steps, outputs):
        self.inputs, self.steps, self.outputs = inputs, steps, outputs

    def run(self, xs, lib):
        """Outputs (a tuple) of the program on `xs` with tracejit ('tj') or numpy ('np')."""
        env = list(xs)
        for name, args, params in self.steps:
            fn = getattr(OPS[name], lib)
            env.append(fn(params, *[env[i] for i in args]))
        return tuple(env[i] for i in self.outputs)

    def margin(self, xs):
        """Smallest distance of any kinked op's operands from its kink."""
        env, margin = list(xs), np.inf
        for name, args, params in self.steps:
            operands = [env[i] for i in args]
            margin = min(margin, OPS[name].margin(params, *operands))
            env.append(OPS[name].np(params, *operands))
        return margin

    def __repr__(self):
        lines = [f'inputs: {[x.shape for x in self.inputs]}']
        n = len(self.inputs)
        for k, (name, args, params) in enumerate(self.steps):
            lines.append(f'  v{n + k} = {name}{list(args)} {params!r}')
        lines.append(f'  return {["v%d" % i for i in self.outputs]}')
        return '\n'.join(lines)


@st.composite
def programs(draw, max_steps=8):
    base = draw(st.tuples(*[st.integers(1, 4)] * 3))
    n_inputs = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_inputs):
        rank = draw(st.integers(0, 3))
        dims = list(base[3 - rank:])
        shapes.append(tuple(draw(st.sampled_from([d, 1])) for d in dims))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = [rng.uniform(-2.0, 2.0, size=s) for s in shapes]
    env_shapes = list(shapes)
    steps = []
    for _ in range(draw(st.integers(3, max_steps))):
        # op first (uniform over the applicable ones), then its operands, preferring recent
        # values so that steps chain into a deep DAG rather than a fan of leaves
        combos = {name: [args for args in itertools.product(range(len(env_shapes)),
                                                             repeat=OPS[name].arity)
                         if OPS[name].applies(*[env_shapes[i] for i in args])]
                  for name in OPS}
        name = draw(st.sampled_from([n for n in OPS if combos[n]]))
        recent = [a for a in combos[name] if max(a) >= len(env_shapes) - 2]
        args = draw(st.sampled_from(recent if recent and draw(st.integers(0, 3)) else combos[name]))
        params = draw(st.sampled_from(OPS[name].applies(*[env_shapes[i] for i in args])))
        value = OPS[name].np(params, *[np.ones(env_shapes[i]) for i in args])
        steps.append((name, args, params))
        env_shapes.append(np.shape(value))
    outputs = [len(env_shapes) - 1]
    if draw(st.booleans()):
        outputs.insert(0, draw(st.integers(n_inputs, len(env_shapes) - 1)))
    return Program(inputs, steps, outputs)


def _valid(program):
    with np.errstate(all='ignore'):
        outs = program.run(program.inputs, 'np')
        margin = program.margin(program.inputs)
    finite = all(np.all(np.isfinite(o)) and np.max(np.abs(o), initial=0) < MAX_MAGNITUDE
                 for o in outs)
    return finite and margin > MARGIN


def _assert_all_close(actual, expected, rtol, what):
    assert len(actual) == len(expected), what
    for k, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f'{what} output {k}: shape {a.shape} vs {e.shape}'
        scale = max(1.0, float(np.max(np.abs(e), initial=0)))
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale,
                                   err_msg=f'{what}, output {k}')


# ---------------------------------------------------------------------------- gradients

def _cotangents(program, seed=7):
    rng = np.random.default_rng(seed)
    outs = program.run(program.inputs, 'np')
    return [rng.standard_normal(np.shape(o)) for o in outs]


def _np_loss(program, us, xs):
    return sum(float(np.sum(u * o)) for u, o in zip(us, program.run(xs, 'np')))


def _tj_loss(program, us):
    def loss(*ts):
        total = tj.constant(0.0, tj.float64)
        for out, u in zip(program.run(ts, 'tj'), us):
            total = total + tj.reduce_sum(out * u)
        return total
    return loss


def _fd_gradient(program, us):
    xs = program.inputs
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            def at(t):
                shifted = [v.copy() for v in xs]
                shifted[i][idx] += t
                return _np_loss(program, us, shifted)
            g[idx] = (-at(2 * FD_EPS) + 8 * at(FD_EPS) - 8 * at(-FD_EPS)
                      + at(-2 * FD_EPS)) / (12 * FD_EPS)
        grads.append(g)
    return grads


def _tape_gradient(program, us, ts):
    with tj.GradientTape() as tape:
        tape.watch(list(ts))
        outs = program.run(ts, 'tj')
    grads = tape.gradient(list(outs), list(ts), output_gradients=[tj.constant(u) for u in us],
                          unconnected_gradients='zero')
    return [tj.convert_to_tensor(g) for g in grads]   # a gather's gradient is IndexedSlices


def _check_gradients(program):
    xs, us = program.inputs, _cotangents(program)
    eager = _tape_gradient(program, us, [tj.constant(x) for x in xs])
    if not all(OPS[name].fd for name, _, _ in program.steps):
        # stop_gradient: no numpy reference for the gradient; tracejit's paths must agree
        via_grad = tj.grad(_tj_loss(program, us), argnums=tuple(range(len(xs))))(*xs)
        traced = tj.function(lambda *ts: _tape_gradient(program, us, ts)).trace(*xs)
        interpreted, _ = ir.evaluate(traced.graph, xs, [])
        for what, grads in (('tj.grad', via_grad), ('GradientTape in a traced function',
                                                    interpreted)):
            _assert_all_close(grads, eager, 1e-12, f'{what} vs eager GradientTape\n{program!r}')
        return
    expected = _fd_gradient(program, us)
    via_grad = tj.grad(_tj_loss(program, us), argnums=tuple(range(len(xs))))(*xs)
    traced = tj.function(lambda *ts: _tape_gradient(program, us, ts)).trace(*xs)
    traced.graph.verify()
    interpreted, _ = ir.evaluate(traced.graph, xs, [])
    for what, grads in (('GradientTape', eager), ('tj.grad', via_grad),
                        ('GradientTape in a traced function', interpreted)):
        _assert_all_close(grads, expected, 1e-6, f'{what} vs finite differences\n{program!r}')
    check_grads(_tj_loss(program, us), xs, order=2, modes=('tape', 'grad'), full_max=0,
                directions=1, name=repr(program))


# ---------------------------------------------------------------------------- the tests

@given(programs())
def test_random_program_values_and_gradients(program):
    assume(_valid(program))
    xs = program.inputs
    with np.errstate(all='ignore'):
        expected = program.run(xs, 'np')
    eager = program.run([tj.constant(x) for x in xs], 'tj')
    _assert_all_close(eager, expected, 1e-9, f'eager vs numpy\n{program!r}')

    fn = tj.function(lambda *ts: program.run(ts, 'tj'))
    traced = fn.trace(*xs)
    traced.graph.verify()
    interpreted, _ = ir.evaluate(traced.graph, xs, [])
    _assert_all_close(interpreted, eager, 1e-12, f'ir.evaluate vs eager\n{program!r}')

    _check_gradients(program)


@given(programs(), st.sampled_from([np.float64, np.float32]))
@settings(max_examples=max(3, settings.default.max_examples // 8))
def test_random_program_compiled(program, dtype):
    """tj.function (the compiled backend) == eager, for values and for a gradient step.
    Fewer examples: every program is a fresh Numba compile."""
    assume(_valid(program))
    xs = [x.astype(dtype) for x in program.inputs]
    eager = program.run([tj.constant(x) for x in xs], 'tj')
    fn = tj.function(lambda *ts: program.run(ts, 'tj'))
    compiled = fn(*xs)
    assert fn.cache_info().get('interpreted_calls', 0) == 0, 'not run by a kernel'
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    what = f'tj.function vs eager ({np.dtype(dtype).name})\n{program!r}'
    _assert_all_close(compiled, eager, rtol, what)

    us = [u.astype(dtype) for u in _cotangents(program)]
    grads = tj.function(lambda *ts: _tape_gradient(program, us, ts))(*xs)
    expected = _tape_gradient(program, us, [tj.constant(x) for x in xs])
    _assert_all_close(grads, expected, rtol, f'gradients in tj.function vs eager\n{program!r}')

"""The public ops built over the primitives: values against numpy, gradients against finite
differences, and the numerically delicate ones (logsumexp, softmax, cross-entropies) at |x| ~ 1e4.

References are written here in float64 with numpy, independently of tracejit's compositions.
"""
import numpy as np
import pytest

import tracejit as tj
from tracejit import ir, ops

from gradcheck import check_grads

RNG = np.random.default_rng(1234)


def _distinct(shape, seed=0):
    """Distinct values >= 0.3 apart (no ties at a maximum), roughly in [-2, 2]."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    values = (rng.permutation(n) - n // 2) * (4.0 / max(n, 1)) + rng.uniform(-0.03, 0.03, n)
    return values.reshape(shape)


def _close(actual, expected, dtype=None, rtol=None, atol=None):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f'shape {actual.shape}, expected {expected.shape}'
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f'dtype {actual.dtype}, expected {dtype}'
    tol = 2e-6 if actual.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=rtol or tol, atol=atol or tol)


def _traced(fn, *args):
    """`fn` traced by tj.function and run by the interpreter (`ir.evaluate`): the tracing
    path without a Numba compile per test (test_primitives compiles every primitive)."""
    graph = tj.function(fn).trace(*args).graph
    graph.verify()
    [out], _ = ir.evaluate(graph, list(args), [])
    return out


def _logsumexp_ref(x, axis=None, keepdims=False):
    x = np.asarray(x, np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax_ref(x, axis=-1):
    x = np.asarray(x, np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    return np.asarray(x, np.float64) - _logsumexp_ref(x, axis=axis, keepdims=True)


def _sigmoid_ref(x):
    x = np.asarray(x, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus_ref(x):
    x = np.asarray(x, np.float64)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# ---------------------------------------------------------------------------- reductions

REDUCTIONS = {
    'reduce_sum': (tj.reduce_sum, lambda x, axis, keepdims: np.sum(x, axis, keepdims=keepdims)),
    'reduce_mean': (tj.reduce_mean, lambda x, axis, keepdims: np.mean(x, axis, keepdims=keepdims)),
    'reduce_max': (tj.reduce_max, lambda x, axis, keepdims: np.max(x, axis, keepdims=keepdims)),
    'reduce_min': (tj.reduce_min, lambda x, axis, keepdims: np.min(x, axis, keepdims=keepdims)),
    'reduce_logsumexp': (tj.reduce_logsumexp, _logsumexp_ref),
}
AXES = [None, 0, 1, (0, 1), -1, [-2, -1], (0, -1)]


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', AXES, ids=str)
@pytest.mark.parametrize('name', sorted(REDUCTIONS))
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_reduction_values(name, axis, keepdims, dtype):
    op, ref = REDUCTIONS[name]
    x = _distinct((3, 4)).astype(dtype)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    expected = ref(x.astype(np.float64), np_axis, keepdims)
    out = op(x, axis=axis, keepdims=keepdims)
    _close(out, expected, dtype)
    x3 = _distinct((2, 3, 4), seed=1).astype(dtype)
    _close(op(tj.constant(x3), axis=axis, keepdims=keepdims),
           ref(x3.astype(np.float64), np_axis, keepdims), dtype)


@pytest.mark.parametrize('keepdims', [False, True])
@pytest.mark.parametrize('axis', [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize('name', sorted(REDUCTIONS))
def test_reduction_gradients(name, axis, keepdims):
    op = REDUCTIONS[name][0]
    check_grads(lambda x: op(x, axis=axis, keepdims=keepdims), [_distinct((3, 4))],
                order=2, modes=('tape',) if keepdims else ('grad',), name=name)


def test_integer_reductions_keep_their_dtype():
    x = np.array([[1, 2, 3], [4, 5, 7]], np.int32)
    out = tj.reduce_sum(x, axis=1)
    assert out.dtype == tj.int32
    np.testing.assert_array_equal(out.numpy(), [6, 16])
    assert tj.reduce_max(x).dtype == tj.int32 and int(tj.reduce_max(x)) == 7
    mean = tj.reduce_mean(x, axis=1)
    assert mean.dtype == tj.int32
    np.testing.assert_array_equal(mean.numpy(), [2, 5])
    assert tj.reduce_sum(np.array([True, True, False])).numpy() == 2
    # integer means truncate toward zero, as TensorFlow's C++ integer division does
    assert int(tj.reduce_mean(np.array([-1, -2], np.int32))) == -1
    assert int(tj.function(tj.reduce_mean)(np.array([-3, -3, -2], np.int64))) == -2
    mean = tj.reduce_mean(np.array([True, False, True, True]))
    assert mean.dtype == tj.float32 and float(mean) == 0.75   # the fraction of True values


SCALAR_OPS = {
    'expand_dims': (lambda: tj.expand_dims(2.0, 0), np.array([2.0])),
    'squeeze': (lambda: tj.squeeze(3.0), np.array(3.0)),
    'transpose': (lambda: tj.transpose(2.0), np.array(2.0)),
    'tile': (lambda: tj.tile(2.0, []), np.array(2.0)),
    'reshape': (lambda: tj.reshape(2.0, [1, 1]), np.array([[2.0]])),
    'zeros_like': (lambda: tj.zeros_like(1.0), np.array(0.0)),
    'ones_like': (lambda: tj.ones_like(1.0), np.array(1.0)),
    'where': (lambda: tj.where(True, 1.0, 2.0), np.array(1.0)),
    'where_scalar_condition': (lambda: tj.where(False, np.ones(2), np.zeros(2)), np.zeros(2)),
    'reduce_logsumexp': (lambda: tj.reduce_logsumexp(2.0), np.array(2.0)),
    'reduce_mean': (lambda: tj.reduce_mean(3.0), np.array(3.0)),
    'broadcast_to': (lambda: tj.broadcast_to(1.0, (2,)), np.ones(2)),
    'stack': (lambda: tj.stack([1.0, 2.0]), np.array([1.0, 2.0])),
    'exp': (lambda: tj.exp(0.0), np.array(1.0)),
    'relu': (lambda: tj.nn.relu(-1.0), np.array(0.0)),
    'softmax': (lambda: tj.nn.softmax([1.0, 1.0]), np.array([0.5, 0.5])),
    'identity': (lambda: tj.identity(1.5), np.array(1.5)),
    'stop_gradient': (lambda: tj.stop_gradient(1.5), np.array(1.5)),
    'cast': (lambda: tj.cast(1.5, tj.int32), np.array(1)),
}


@pytest.mark.parametrize('name', sorted(SCALAR_OPS))
def test_python_numbers_are_accepted_wherever_a_tensor_is(name):
    fn, expected = SCALAR_OPS[name]
    out = fn()
    assert isinstance(out, tj.Tensor), type(out)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_reduction_axis_out_of_range_is_a_shape_error():
    with pytest.raises(tj.errors.ShapeError, match='axis 2'):
        tj.reduce_sum(np.ones((3, 4)), axis=2)


@pytest.mark.parametrize('axis', [0, 1, -1, None])
def test_argmax_argmin(axis):
    x = _distinct((3, 4))
    np_axis = 0 if axis is None else axis  # TensorFlow: axis=None means axis 0
    for op, ref in ((tj.argmax, np.argmax), (tj.argmin, np.argmin)):
        out = op(x, axis=axis)
        assert out.dtype == tj.int64
        np.testing.assert_array_equal(out.numpy(), ref(x, axis=np_axis))
    assert tj.argmax(x, axis=0, output_type=tj.int32).dtype == tj.int32


# ---------------------------------------------------------------------------- stability

BIG = [np.array([1e4, -1e4, 0.5, 2e4]), np.array([-1e4, -1e4 + 1.0, -2e4, -1e4 - 3.0]),
       np.array([3.0e4, 3.0e4, 3.0e4 - 2.0, -5.0])]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('x', BIG, ids=['mixed', 'negative', 'positive'])
def test_stable_functions_at_large_magnitudes(x, dtype):
    x = x.astype(dtype)
    x64 = x.astype(np.float64)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else {}
    cases = [
        (tj.reduce_logsumexp(x), _logsumexp_ref(x64)),
        (tj.nn.softmax(x), _softmax_ref(x64)),
        (tj.nn.log_softmax(x), _log_softmax_ref(x64)),
        (tj.nn.sigmoid(x), _sigmoid_ref(x64)),
        (tj.nn.softplus(x), _softplus_ref(x64)),
        (tj.math.softplus(-x), _softplus_ref(-x64)),
    ]
    for out, ref in cases:
        out = np.asarray(out)
        assert np.all(np.isfinite(out)), out
        _close(out, ref, dtype, **tol)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cross_entropies_at_large_logits(dtype):
    logits = np.stack(BIG).astype(dtype)                      # (3, 4)
    x64 = logits.astype(np.float64)
    labels = np.array([3, 0, 2])
    hot = np.eye(4)[labels]
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    binary = (np.arange(12).reshape(3, 4) % 3 == 0).astype(np.float64)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else {}

    sparse_ref = _logsumexp_ref(x64, axis=-1) - x64[np.arange(3), labels]
    softmax_ce_ref = -np.sum(probs * _log_softmax_ref(x64), axis=-1)
    sigmoid_ce_ref = np.maximum(x64, 0) - x64 * binary + np.log1p(np.exp(-np.abs(x64)))
    grads_ref = {
        'sparse': _softmax_ref(x64) - hot,
        'softmax': _softmax_ref(x64) * probs.sum(-1, keepdims=True) - probs,
        'sigmoid': _sigmoid_ref(x64) - binary,
    }
    losses = {
        'sparse': (lambda z: tj.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=z), sparse_ref),
        'softmax': (lambda z: tj.nn.softmax_cross_entropy_with_logits(
            labels=probs.astype(dtype), logits=z), softmax_ce_ref),
        'sigmoid': (lambda z: tj.nn.sigmoid_cross_entropy_with_logits(
            labels=binary.astype(dtype), logits=z), sigmoid_ce_ref),
    }
    for name, (loss, ref) in losses.items():
        z = tj.constant(logits)
        with tj.GradientTape() as tape:
            tape.watch(z)
            out = loss(z)
        grad = np.asarray(tape.gradient(out, z))
        assert np.all(np.isfinite(np.asarray(out))) and np.all(np.isfinite(grad)), name
        _close(out, ref, dtype, **tol)
        _close(grad, grads_ref[name], dtype, **tol)


def test_cross_entropies_match_definitions_at_moderate_logits():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4, 3))
    labels = np.array([0, 2, 1, 1])
    probs = _softmax_ref(rng.normal(size=(4, 3)))
    _close(tj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
           -np.log(_softmax_ref(logits)[np.arange(4), labels]))
    _close(tj.nn.softmax_cross_entropy_with_logits(labels=probs, logits=logits),
           -np.sum(probs * np.log(_softmax_ref(logits)), axis=-1))
    z = (rng.random((4, 3)) < 0.5).astype(np.float64)
    s = 1 / (1 + np.exp(-logits))
    _close(tj.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=logits),
           -(z * np.log(s) + (1 - z) * np.log(1 - s)))
    _close(tj.nn.softmax(logits, axis=0), _softmax_ref(logits, axis=0))
    _close(tj.nn.log_softmax(logits, axis=0), _log_softmax_ref(logits, axis=0))
    for loss in (lambda x: tj.nn.softmax_cross_entropy_with_logits(labels=probs, logits=x),
                 lambda x: tj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x),
                 lambda x: tj.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x),
                 lambda x: tj.nn.softmax(x, axis=0), lambda x: tj.nn.log_softmax(x)):
        check_grads(loss, [logits], order=2, modes=('tape',))


def test_cross_entropy_argument_errors():
    with pytest.raises(tj.errors.ShapeError, match=r'\(4,\).*\(3, 5\)'):
        tj.nn.sparse_softmax_cross_entropy_with_logits(labels=np.zeros(4, np.int32),
                                                       logits=np.zeros((3, 5)))
    with pytest.raises(tj.errors.DTypeError, match='integer'):
        tj.nn.sparse_softmax_cross_entropy_with_logits(labels=np.zeros(3),
                                                       logits=np.zeros((3, 5)))
    with pytest.raises(tj.errors.ShapeError):
        tj.nn.softmax_cross_entropy_with_logits(labels=np.zeros((3, 4)), logits=np.zeros((3, 5)))


# ---------------------------------------------------------------------------- elementwise

SMOOTH_UNARY = {  # public op, numpy reference, domain
    'relu': (tj.nn.relu, lambda x: np.where(x > 0, x, 0.0), 'signed'),
    'leaky_relu': (tj.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), 'signed'),
    'elu': (tj.nn.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1), 'signed'),
    'square': (tj.square, lambda x: x * x, 'signed'),
    'rsqrt': (tj.rsqrt, lambda x: 1 / np.sqrt(x), 'positive'),
    'reciprocal': (tj.math.reciprocal, lambda x: 1 / x, 'signed'),
    'sigmoid': (tj.math.sigmoid, _sigmoid_ref, 'signed'),
    'softplus': (tj.math.softplus, _softplus_ref, 'signed'),
    'tanh': (tj.math.tanh, np.tanh, 'signed'),
    'abs': (tj.math.abs, np.abs, 'signed'),
    'negative': (tj.math.negative, np.negative, 'signed'),
    'log': (tj.math.log, np.log, 'positive'),
    'pow3': (lambda x: x ** 3, lambda x: x ** 3, 'signed'),
    'pow_half': (lambda x: tj.pow(x, 0.5), np.sqrt, 'positive'),
    'pow_minus1': (lambda x: x ** -1, lambda x: 1 / x, 'signed'),
    'pow_2.5': (lambda x: tj.pow(x, 2.5), lambda x: x ** 2.5, 'positive'),
    'rpow': (lambda x: 2.0 ** x, lambda x: 2.0 ** x, 'signed'),
    'l2_loss': (tj.nn.l2_loss, lambda x: 0.5 * np.sum(x * x), 'signed'),
    'clip': (lambda x: tj.clip_by_value(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), 'signed'),
    'is_finite_where': (lambda x: tj.where(tj.math.is_finite(x), x, 0.0), lambda x: x, 'signed'),
}


def _domain(kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    if kind == 'positive':
        return rng.uniform(0.3, 2.0, shape)
    # away from 0 and from +-1 (the clip bounds) by more than the finite-difference steps
    return rng.choice([-1, 1], shape) * rng.choice([0.3, 0.6, 1.4, 1.8], shape) \
        + rng.uniform(-0.05, 0.05, shape)


@pytest.mark.parametrize('name', sorted(SMOOTH_UNARY))
def test_unary_public_ops(name):
    op, ref, kind = SMOOTH_UNARY[name]
    x = _domain(kind, (3, 4))
    _close(op(x), ref(x), np.float64)
    x32 = x.astype(np.float32)
    _close(op(x32), ref(x32.astype(np.float64)), np.float32, rtol=1e-5, atol=1e-6)
    _close(_traced(op, x), np.asarray(op(x)), np.float64)
    check_grads(op, [x], order=2, modes=('tape', 'grad'), name=name)


def test_squared_difference_and_binary_compositions():
    x, y = _domain('signed', (3, 1), 1), _domain('signed', (1, 4), 2)
    _close(tj.squared_difference(x, y), (x - y) ** 2)
    check_grads(tj.squared_difference, [x, y], order=2)
    check_grads(lambda a, b: tj.where(tj.greater(a, b), a * b, a - b), [x, y], order=2)


def test_clip_by_value_with_tensor_bounds():
    x = _domain('signed', (3, 4))
    lo, hi = np.full((3, 1), -0.5), np.full((1, 4), 1.2)
    _close(tj.clip_by_value(x, lo, hi), np.clip(x, lo, hi))
    check_grads(lambda v: tj.clip_by_value(v, lo, hi), [x], order=2)


def test_where_broadcasts_and_promotes_weak_scalars():
    cond = np.array([[True], [False], [True]])
    x = np.arange(4, dtype=np.float32)
    out = tj.where(cond, x, 0.5)
    assert out.dtype == tj.float32 and out.shape == (3, 4)
    _close(out, np.where(cond, x, 0.5).astype(np.float32))
    with pytest.raises(tj.errors.DTypeError, match='bool'):
        tj.where(np.array([1, 0]), x[:2], x[:2])


def test_weak_scalars_never_promote_float32():
    x = tj.constant([1.0, 2.0])
    assert x.dtype == tj.float32
    for out in (x * 0.5, 0.5 * x, x + 1, x / 3, x ** 2.0, 2.0 - x, -x, abs(x), x @ x):
        assert out.dtype == tj.float32, out
    assert (x + np.ones(2, np.float64)).dtype == tj.float64
    assert (tj.constant([1, 2]) + 1).dtype == tj.int32
    assert (tj.constant([1, 2]) / 2).dtype == tj.float32
    assert (tj.constant([1, 2]) + 0.5).dtype == tj.float32


def test_tensor_operators_match_numpy():
    a = _domain('signed', (3, 4))
    b = _domain('positive', (3, 4), 1)
    ta, tb = tj.constant(a), tj.constant(b)
    _close(ta + tb, a + b)
    _close(ta - 1.0, a - 1)
    _close(2.0 * ta, 2 * a)
    _close(ta / tb, a / b)
    _close(tb ** ta, b ** a)
    _close(ta @ tb.T, a @ b.T)
    _close(-ta, -a)
    np.testing.assert_array_equal((ta < tb).numpy(), a < b)
    np.testing.assert_array_equal((ta >= 0.5).numpy(), a >= 0.5)
    np.testing.assert_array_equal((ta == ta).numpy(), np.ones((3, 4), bool))
    np.testing.assert_array_equal(((ta > 0) & (tb > 1)).numpy(), (a > 0) & (b > 1))
    np.testing.assert_array_equal(((ta > 0) | ~(tb > 1)).numpy(), (a > 0) | ~(b > 1))
    np.testing.assert_array_equal((tj.constant([7, -7]) // 2).numpy(), [3, -4])
    _close(tj.constant([7.5, -7.5], tj.float64) // 2.0, [3.0, -4.0])
    _close(a + ta, 2 * a)  # numpy on the left defers to the tensor


# ---------------------------------------------------------------------------- layout

@pytest.mark.parametrize('multiples', [(1, 1), (2, 1), (1, 3), (2, 3)], ids=str)
def test_tile(multiples):
    x = _domain('signed', (2, 3))
    _close(tj.tile(x, multiples), np.tile(x, multiples))
    check_grads(lambda v: tj.tile(v, multiples), [x], order=2)


@pytest.mark.parametrize('axis', [0, 1, 2, -1, -3])
def test_stack(axis):
    xs = [_domain('signed', (2, 3), s) for s in range(3)]
    _close(tj.stack(xs, axis=axis), np.stack(xs, axis=axis))
    check_grads(lambda *v: tj.stack(list(v), axis=axis), xs, order=2)


@pytest.mark.parametrize('axis', [None, 0, 2, (0, 2), -1, [0, -1]], ids=str)
def test_squeeze(axis):
    x = _domain('signed', (1, 3, 1))
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    _close(tj.squeeze(x, axis), np.squeeze(x, np_axis))
    check_grads(lambda v: tj.squeeze(v, axis), [x], order=1)


def test_squeeze_of_a_non_unit_dimension_is_a_shape_error():
    with pytest.raises(tj.errors.ShapeError, match='squeeze'):
        tj.squeeze(np.ones((1, 3)), 1)


@pytest.mark.parametrize('axis', [0, 1, 2, -1, -2, -3])
def test_expand_dims(axis):
    x = _domain('signed', (2, 3))
    _close(tj.expand_dims(x, axis), np.expand_dims(x, axis))
    check_grads(lambda v: tj.expand_dims(v, axis), [x], order=1)


@pytest.mark.parametrize('axis', [0, 1, -1])
def test_concat_public(axis):
    xs = [_domain('signed', (2, 3), 1), _domain('signed', (2, 3), 2)]
    _close(tj.concat(xs, axis), np.concatenate(xs, axis))
    check_grads(lambda a, b: tj.concat([a, b], axis), xs, order=2)


def test_transpose_and_reshape_public():
    x = _domain('signed', (2, 3, 4))
    _close(tj.transpose(x), np.transpose(x))
    _close(tj.transpose(x, [1, 0, 2]), np.transpose(x, (1, 0, 2)))
    _close(tj.reshape(x, [-1, 4]), x.reshape(-1, 4))
    _close(tj.reshape(x, (4, -1)), x.reshape(4, -1))
    _close(tj.constant(x[0]).T, x[0].T)
    check_grads(lambda v: tj.reshape(tj.transpose(v, [2, 0, 1]), (4, -1)), [x], order=1)
    with pytest.raises(tj.errors.ShapeError, match=r'\(2, 3, 4\).*\(5, -1\)'):
        tj.reshape(x, (5, -1))


def test_broadcast_to_public():
    x = _domain('signed', (3, 1))
    _close(tj.broadcast_to(x, (2, 3, 4)), np.broadcast_to(x, (2, 3, 4)))
    check_grads(lambda v: tj.broadcast_to(v, (2, 3, 4)), [x], order=2)
    with pytest.raises(tj.errors.ShapeError):
        tj.broadcast_to(np.ones((3, 2)), (3, 4))


@pytest.mark.parametrize('axis', [-1, 0, 1])
def test_one_hot(axis):
    indices = np.array([[0, 3], [2, 5]])         # 5 is out of range: an all-off row, as in TF
    eye = np.vstack([np.eye(4), np.zeros((2, 4))])
    ref = np.moveaxis(eye[indices], -1, axis)
    out = tj.one_hot(indices, 4, axis=axis)
    _close(out, ref.astype(np.float32), np.float32)
    out = tj.one_hot(indices, 4, on_value=5.0, off_value=-1.0, axis=axis, dtype=tj.float64)
    _close(out, np.where(ref == 1, 5.0, -1.0), np.float64)
    assert tj.one_hot(np.array([1, 0]), 3, dtype=tj.int32).dtype == tj.int32


def test_gather_public_and_its_gradient_accumulates_duplicates():
    x = _domain('signed', (4, 3))
    idx = np.array([1, 3, 1, 1])
    _close(tj.gather(x, idx), x[idx])
    _close(tj.gather(x, np.array([[2, 0]]), axis=1), x[:, np.array([[2, 0]])])
    xt = tj.constant(x)
    with tj.GradientTape() as tape:
        tape.watch(xt)
        out = tj.reduce_sum(tj.gather(xt, idx))
    grad = tape.gradient(out, xt)   # IndexedSlices, as in TF: rows [1, 3, 1, 1]
    assert isinstance(grad, tj.IndexedSlices)
    np.testing.assert_array_equal(tj.convert_to_tensor(grad).numpy(),
                                  np.array([[0.0] * 3, [3.0] * 3, [0.0] * 3, [1.0] * 3]))
    check_grads(lambda v: tj.gather(v, idx, axis=0), [x], order=2)
    with pytest.raises(tj.errors.InvalidArgumentError, match='indices'):
        tj.gather(x, np.array([4]))


MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2))]


@pytest.mark.parametrize('sa, sb', MATMUL_SHAPES, ids=str)
def test_matmul_public_ranks_and_batch_broadcasting(sa, sb):
    a, b = _domain('signed', sa, 1), _domain('signed', sb, 2)
    _close(tj.linalg.matmul(a, b), np.matmul(a, b))
    check_grads(tj.matmul, [a, b], order=2)


def test_matmul_flags_and_errors():
    a, b = _domain('signed', (4, 3), 1), _domain('signed', (5, 4), 2)
    _close(tj.matmul(a, b, transpose_a=True, transpose_b=True), a.T @ b.T)
    _close(tj.matmul(a, b, adjoint_a=True, adjoint_b=True), a.T @ b.T)
    with pytest.raises(tj.errors.ShapeError, match=r'\(4, 3\).*\(5, 4\)'):
        tj.matmul(a, b)
    with pytest.raises(tj.errors.ShapeError):
        tj.matmul(np.float64(2.0), b)


# ---------------------------------------------------------------------------- indexing

X = np.arange(60, dtype=np.float64).reshape(3, 4, 5) * 0.1 - 2.0
INDICES = [
    1, -1, (0, 2), (2, -1, 3), slice(None), slice(1, 3), slice(None, None, -1),
    (slice(None), slice(3, 0, -2)), (Ellipsis, 1), (1, Ellipsis), (Ellipsis, None, 2),
    (None, 1), (slice(None), None, 2, None), (Ellipsis,), (0, Ellipsis, slice(None, None, 2)),
    np.array([2, 0, 0]), (1, np.array([3, 1])), (slice(None), np.array([[0, 1], [3, 3]])),
    (np.array([1, 2]), slice(None, None, -1), 0), (Ellipsis, np.array([4, 0])),
    (slice(-2, None), 1, slice(None, -1)), (slice(10, 20),),
]


@pytest.mark.parametrize('index', INDICES, ids=repr)
def test_getitem_matches_numpy(index):
    t = tj.constant(X)
    _close(t[index], X[index])
    _close(_traced(lambda v: v[index], X), X[index])
    if X[index].size:
        check_grads(lambda v: v[index], [X], order=1, full_max=0, directions=2)


def test_getitem_errors():
    t = tj.constant(X)
    with pytest.raises(IndexError, match='out of bounds'):
        t[3]
    with pytest.raises(IndexError, match='too many indices'):
        t[0, 0, 0, 0]
    with pytest.raises(IndexError, match='ellipsis'):
        t[..., 0, ...]


def test_math_and_linalg_namespaces_reexport_the_ops():
    for name in ('abs add argmax argmin cos divide equal exp floor greater greater_equal less '
                 'less_equal log log1p logical_and logical_not logical_or maximum minimum multiply '
                 'negative not_equal pow reduce_logsumexp reduce_max reduce_mean reduce_min '
                 'reduce_sum rsqrt sigmoid sign sin sqrt square squared_difference subtract '
                 'tanh softplus reciprocal is_finite').split():
        assert getattr(tj.math, name) is getattr(ops, name), name
    assert tj.linalg.matmul is ops.matmul
    for name in ('relu sigmoid tanh softplus softmax log_softmax sigmoid_cross_entropy_with_logits '
                 'softmax_cross_entropy_with_logits sparse_softmax_cross_entropy_with_logits '
                 'l2_loss').split():
        assert callable(getattr(tj.nn, name)), name


def test_creation_ops():
    _close(tj.zeros((2, 3)), np.zeros((2, 3), np.float32), np.float32)
    _close(tj.ones([2], tj.float64), np.ones(2), np.float64)
    _close(tj.fill([2, 2], 7.0), np.full((2, 2), 7.0, np.float32), np.float32)
    _close(tj.zeros_like(np.ones((2, 1), np.float64)), np.zeros((2, 1)), np.float64)
    assert tj.ones_like(tj.constant([1, 2])).dtype == tj.int32
    _close(tj.linspace(0.0, 1.0, 5), np.linspace(0, 1, 5).astype(np.float32), np.float32)
    np.testing.assert_array_equal(tj.range(5).numpy(), np.arange(5))
    np.testing.assert_array_equal(tj.range(1, 10, 3).numpy(), [1, 4, 7])
    assert tj.range(0.0, 1.0, 0.5).dtype == tj.float32
    assert tj.constant(1.5).dtype == tj.float32 and tj.constant(2).dtype == tj.int32
    assert tj.constant(np.float64(1.5)).dtype == tj.float64
    _close(tj.constant(3.0, shape=(2, 2)), np.full((2, 2), 3.0, np.float32), np.float32)
    assert tj.cast(np.array([1.7, -1.7]), tj.int32).numpy().tolist() == [1, -1]
    assert tuple(tj.shape(np.ones((2, 3))).numpy()) == (2, 3) and int(tj.rank(np.ones((2, 3)))) == 2


def test_floormod_and_the_percent_operator_follow_python():
    a = np.array([-7, -1, 0, 5, 7, -6])
    b = np.array([3, 3, -3, -3, 2, 3])
    np.testing.assert_array_equal((tj.constant(a) % tj.constant(b)).numpy(), a % b)
    np.testing.assert_array_equal((7 % tj.constant(b)).numpy(), 7 % b)
    x = np.array([-7.5, 2.25, 5.0, -0.5], np.float32)
    np.testing.assert_allclose(tj.math.floormod(x, 2.0).numpy(), np.mod(x, 2.0), rtol=1e-6)
    assert tj.math.mod is tj.math.floormod


def test_floormod_gradient_and_special_values():
    """d/dx = 1 and d/dy = -floor(x / y) (TF's rule); inf gives NaN, as numpy."""
    x = tj.constant([7.5, -2.5, 3.0])
    y = tj.constant([2.0, 2.0, -4.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, y])
        r = tj.math.floormod(x, y)
    np.testing.assert_array_equal(tape.gradient(r, x).numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(r, y).numpy(), -np.floor(x.numpy() / y.numpy()))
    special = tj.math.floormod(tj.constant([np.inf, 0.0, -0.0]), 2.0).numpy()
    assert np.isnan(special[0]) and special[1] == 0.0 and special[2] == 0.0

"""Values and gradients where a composition or a kernel could silently go wrong: the kinks that
cancel in a stable formula, native rsqrt/sqrt at 0, inf and denormals, an argument passed twice
to grad, unsigned integers above the signed range, and reduction axes TF refuses."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from tracejit import keras


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


LOGITS = np.array([0.0, -0.0, 1.5, -2.0, 30.0, -30.0], np.float32)
LABELS = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 1.0], np.float32)


def _sigmoid_ce_grads(logits, labels):
    with tj.GradientTape() as tape:
        tape.watch(logits)
        loss = tj.reduce_sum(tj.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                     logits=logits))
    return loss, tape.gradient(loss, logits)


def test_sigmoid_cross_entropy_gradient_is_sigmoid_minus_label_at_zero():
    expected = _sigmoid(LOGITS.astype(np.float64)) - LABELS
    loss, eager = _sigmoid_ce_grads(tj.constant(LOGITS), tj.constant(LABELS))
    x64 = LOGITS.astype(np.float64)
    ref_loss = np.sum(np.maximum(x64, 0) - x64 * LABELS + np.log1p(np.exp(-np.abs(x64))))
    np.testing.assert_allclose(loss.numpy(), ref_loss, rtol=1e-6)
    np.testing.assert_allclose(eager.numpy(), expected, rtol=1e-6, atol=1e-7)
    _, native = tj.function(_sigmoid_ce_grads)(LOGITS, LABELS)
    np.testing.assert_allclose(native.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_sigmoid_cross_entropy_second_derivative_at_zero():
    x = tj.constant(0.0, tj.float64)
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            loss = tj.nn.sigmoid_cross_entropy_with_logits(labels=tj.constant(1.0, tj.float64),
                                                           logits=x)
        first = inner.gradient(loss, x)
    np.testing.assert_allclose(first.numpy(), -0.5)
    np.testing.assert_allclose(outer.gradient(first, x).numpy(), 0.25)


def test_sigmoid_cross_entropy_keeps_nan():
    out = tj.nn.sigmoid_cross_entropy_with_logits(labels=tj.constant([1.0]),
                                                  logits=tj.constant([np.nan]))
    assert np.isnan(out.numpy()).all()


def test_binary_crossentropy_from_logits_with_a_zero_output_layer():
    """A zero-initialised output layer gives logits exactly 0: the first step must move the bias
    by lr * mean(0.5 - y), not lr * mean(1 - y)."""
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    y = np.array([[1], [0], [1], [1], [0], [1], [1], [1]], np.float32)
    model = keras.Sequential([keras.layers.Dense(1, kernel_initializer='zeros')])
    model.compile(keras.optimizers.SGD(0.5), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    expected_bias = -0.5 * np.mean(0.5 - y)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), [expected_bias], rtol=1e-6)


@pytest.mark.parametrize('fn', [tj.nn.relu, keras.activations.get('relu')])
def test_relu_gradient_at_zero_is_zero(fn):
    x = tj.constant([0.0, -0.0, 1.0, -1.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(fn(x))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.0, 0.0, 1.0, 0.0])


def test_relu_propagates_nan_and_infinities():
    x = np.array([np.nan, np.inf, -np.inf, 0.0], np.float32)
    for out in (tj.nn.relu(x), tj.function(tj.nn.relu)(x)):
        np.testing.assert_array_equal(out.numpy(), [np.nan, np.inf, 0.0, 0.0])


SQRT_POINTS = np.array([0.0, np.inf, 1e-40, 4.0], np.float32)  # 1e-40 is a float32 denormal


def _rsqrt_and_sqrt_grad(x):
    with tj.GradientTape() as tape:
        tape.watch(x)
        total = tj.reduce_sum(tj.sqrt(x))
    return tj.math.rsqrt(x), tape.gradient(total, x)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_native_rsqrt_and_sqrt_gradient_equal_eager(dtype):
    x = SQRT_POINTS.astype(dtype)
    with np.errstate(divide='ignore'):
        expected_rsqrt = 1.0 / np.sqrt(x)
        expected_grad = 0.5 / np.sqrt(x)
    eager = _rsqrt_and_sqrt_grad(tj.constant(x))
    native = tj.function(_rsqrt_and_sqrt_grad)(x)
    for got in (eager, native):
        np.testing.assert_allclose(got[0].numpy(), expected_rsqrt, rtol=1e-6)
        np.testing.assert_allclose(got[1].numpy(), expected_grad, rtol=1e-6)


def _poly(a, b):
    return a * a + b * b * b


@pytest.mark.parametrize('wrap', [lambda g: g, tj.function])
def test_grad_of_one_value_passed_twice_gives_each_partial(wrap):
    t = tj.constant(1.0)
    da, db = wrap(tj.grad(_poly, argnums=(0, 1)))(t, t)
    assert (float(da), float(db)) == (2.0, 3.0)


def test_grad_of_one_array_twice_in_a_pytree():
    x = np.float32(2.0)
    grads = tj.grad(lambda p: p[0] * p[1] * p[1])((x, x))
    assert (float(grads[0]), float(grads[1])) == (4.0, 8.0)


def test_second_order_through_an_argument_passed_twice():
    f = lambda a, b: a * a * b  # noqa: E731
    # the partials 2ab and a^2 at a = b = t sum to 3t^2, whose derivative is 6t
    dsum = tj.grad(lambda t: sum(tj.grad(f, argnums=(0, 1))(t, t)))(tj.constant(1.5))
    assert float(dsum) == pytest.approx(9.0)


@pytest.mark.parametrize('value, dtype', [(np.uint32(3_000_000_000), np.int64),
                                          (np.array([2**32 - 1, 7], np.uint32), np.int64),
                                          (np.array([2**63 - 1], np.uint64), np.int64),
                                          (np.array([200], np.uint8), np.int32)])
def test_unsigned_values_keep_their_value(value, dtype):
    t = tj.constant(value)
    np.testing.assert_array_equal(t.numpy(), np.asarray(value).astype(np.int64))
    assert t.numpy().dtype == dtype
    native = tj.function(lambda x: x + 1)(np.asarray(value))
    np.testing.assert_array_equal(native.numpy(), np.asarray(value).astype(np.int64) + 1)


def test_uint64_above_int64_is_refused_not_wrapped():
    big = np.array([2**63 + 5], np.uint64)
    with pytest.raises(errors.DTypeError, match='9223372036854775813'):
        tj.constant(big)
    with pytest.raises(errors.DTypeError, match='argument'):
        tj.function(lambda x: x + 1)(big)


@pytest.mark.parametrize('axis', [[0, 0], [1, -1], (0, 1, 0)])
@pytest.mark.parametrize('op', [tj.reduce_sum, tj.reduce_mean, tj.reduce_max,
                                tj.reduce_logsumexp])
def test_duplicate_reduction_axes_are_refused(op, axis):
    x = tj.ones((2, 3))
    with pytest.raises(errors.InvalidArgumentError, match='twice'):
        op(x, axis=axis)
    with pytest.raises(errors.InvalidArgumentError, match='twice'):
        tj.function(lambda v: op(v, axis=axis))(np.ones((2, 3), np.float32))


@pytest.mark.parametrize('axis', [0, -1, [0]])
@pytest.mark.parametrize('op', [tj.reduce_sum, tj.reduce_mean, tj.reduce_min])
def test_an_axis_of_a_scalar_is_refused(op, axis):
    with pytest.raises(ValueError, match='out of range'):
        op(tj.constant(3.0), axis=axis)


def test_scalar_reductions_without_axis_still_work():
    assert float(tj.reduce_sum(tj.constant(3.0))) == 3.0
    assert float(tj.reduce_mean(tj.constant(3.0), axis=[])) == 3.0


def _small_model():
    model = keras.Sequential([keras.layers.Dense(2, kernel_initializer='ones')])
    model.compile('sgd', 'mse')
    return model


@pytest.mark.parametrize('where, value', [('x', np.inf), ('y', -np.inf), ('x', np.nan)])
def test_fit_refuses_non_finite_data_before_any_step(where, value):
    model = _small_model()
    x, y = np.ones((6, 3), np.float32), np.ones((6, 2), np.float32)
    model.predict(x)  # build
    before = [w.numpy() for w in model.weights]
    (x if where == 'x' else y)[4, 1] = value
    name = 'NaN' if np.isnan(value) else str(value)
    with pytest.raises(ValueError, match=rf'{where} contains {name} \(first at index \(4, 1\)\)'):
        model.fit(x, y, epochs=1, verbose=0)
    for w, old in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)


def test_fit_refuses_inf_in_validation_data():
    model = _small_model()
    x, y = np.ones((6, 3), np.float32), np.ones((6, 2), np.float32)
    bad = y.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match='inf'):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, bad))


def test_predict_on_zero_rows_is_empty():
    model = _small_model()
    out = model.predict(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 2) and out.dtype == np.float32
    np.testing.assert_allclose(model.predict(np.ones((2, 3), np.float32)), np.full((2, 2), 3.0))


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'garbage', 'single_array'])
def test_load_weights_of_a_damaged_file_names_it_and_changes_nothing(tmp_path, damage):
    model = _small_model()
    model.predict(np.ones((1, 3), np.float32))
    good = tmp_path / 'good.npz'
    model.save_weights(str(good))
    path = tmp_path / 'bad.npz'
    content = {'empty': b'', 'truncated': good.read_bytes()[:40],
               'garbage': b'\x93NUMPY not really' * 9}.get(damage)
    if content is None:  # a .npy file under a .npz name
        np.save(tmp_path / 'one.npy', np.zeros(3))
        (tmp_path / 'one.npy').rename(path)
    else:
        path.write_bytes(content)
    for w in model.weights:
        w.assign(np.full(w.shape, 7.0, np.float32))
    with pytest.raises(errors.DataLossError, match='bad.npz'):
        model.load_weights(str(path))
    for w in model.weights:
        np.testing.assert_array_equal(w.numpy(), np.full(w.shape, 7.0, np.float32))

"""The autodiff API (GradientTape, tj.gradients, grad/value_and_grad, custom_gradient,
stop_gradient), eagerly and inside tj.function, and the errors users meet while tracing."""
import numpy as np
import pytest

import tracejit as tj

from gradcheck import check_grads, numeric_gradient


def _np(x):
    return None if x is None else np.asarray(x)


def _raised_at_line(info):
    """The line of this file that the exception in `info` was raised from."""
    entries = [e for e in info.traceback if str(e.path) == __file__]
    return entries[-1].lineno + 1  # pytest counts lines from 0


# ---------------------------------------------------------------------------- GradientTape

def test_tape_gradient_of_a_constant_and_a_variable():
    x = tj.constant(3.0)
    v = tj.Variable(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x * v
    gx, gv = tape.gradient(y, [x, v])
    assert float(gx) == 12.0 and float(gv) == 9.0
    assert gx.dtype == tj.float32


def test_non_persistent_tape_can_be_used_once():
    x = tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match='persistent'):
        tape.gradient(y, x)


def test_persistent_tape_can_be_used_many_times():
    x = tj.constant(3.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = y * y
    assert float(tape.gradient(y, x)) == 6.0
    assert float(tape.gradient(z, x)) == 108.0
    assert float(tape.gradient(z, y)) == 18.0


def test_persistent_tape_differentiates_gradients_taken_inside_its_block():
    x = tj.constant(2.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x ** 3
        dy = tape.gradient(y, x)          # recorded, as in TF: higher order with one tape
    assert float(dy) == 12.0
    assert float(tape.gradient(dy, x)) == 12.0


def test_nested_tapes_give_second_and_third_order():
    x = tj.constant(1.5, tj.float64)
    with tj.GradientTape() as t3:
        t3.watch(x)
        with tj.GradientTape() as t2:
            t2.watch(x)
            with tj.GradientTape() as t1:
                t1.watch(x)
                y = tj.sin(x) * x
            dy = t1.gradient(y, x)
        d2y = t2.gradient(dy, x)
    d3y = t3.gradient(d2y, x)
    s, c = np.sin(1.5), np.cos(1.5)
    np.testing.assert_allclose(float(dy), c * 1.5 + s)
    np.testing.assert_allclose(float(d2y), 2 * c - 1.5 * s)
    np.testing.assert_allclose(float(d3y), -3 * s - 1.5 * c)


def test_watch_accessed_variables():
    v = tj.Variable(2.0)
    frozen = tj.Variable(3.0, trainable=False)
    with tj.GradientTape() as tape:
        y = v * frozen
    gv, gf = tape.gradient(y, [v, frozen])
    assert float(gv) == 3.0 and gf is None  # non-trainable Variables are not watched
    with tj.GradientTape(watch_accessed_variables=False) as tape:
        y = v * v
    assert tape.gradient(y, v) is None
    with tj.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(v)
        y = v * v * frozen
    assert float(tape.gradient(y, v)) == 12.0
    with tj.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([frozen])
        y = v * frozen
    assert float(tape.gradient(y, frozen)) == 2.0
    assert tape.watched_variables() == (frozen,)


def test_watch_rejects_non_tensors():
    with tj.GradientTape() as tape:
        with pytest.raises(TypeError, match='str'):
            tape.watch('x')


def test_unconnected_gradients():
    a, b = tj.constant([1.0, 2.0]), tj.constant([[3.0]])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        y = a * 2.0
    ga, gb = tape.gradient(y, [a, b])
    np.testing.assert_array_equal(ga.numpy(), [2.0, 2.0])
    assert gb is None
    ga, gb = tape.gradient(y, [a, b], unconnected_gradients='zero')
    np.testing.assert_array_equal(gb.numpy(), [[0.0]])
    assert gb.dtype == b.dtype
    with pytest.raises(tj.errors.InvalidArgumentError, match='unconnected_gradients'):
        tape.gradient(y, a, unconnected_gradients='nan')


def test_output_gradients_weight_the_targets():
    x = tj.constant([1.0, 2.0, 3.0], tj.float64)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = tj.reduce_sum(x)
    g = tape.gradient(y, x, output_gradients=np.array([1.0, 0.0, -2.0]))
    np.testing.assert_array_equal(g.numpy(), [2.0, 0.0, -12.0])
    g = tape.gradient([y, z], x, output_gradients=[np.ones(3), np.float64(10.0)])
    np.testing.assert_array_equal(g.numpy(), [12.0, 14.0, 16.0])


def test_non_scalar_and_multiple_targets_sum():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = x * 3.0
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(tape.gradient([y, z], x).numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(tape.gradient({'y': y, 'z': [z]}, x).numpy(), [5.0, 7.0])


def test_sources_in_any_nesting():
    a, b, c = tj.constant(1.0), tj.constant([2.0, 3.0]), tj.Variable(4.0)
    with tj.GradientTape() as tape:
        tape.watch([a, b])
        y = a * tj.reduce_sum(b) * c
    grads = tape.gradient(y, {'a': a, 'rest': (b, [c])})
    assert set(grads) == {'a', 'rest'} and isinstance(grads['rest'], tuple)
    assert float(grads['a']) == 20.0
    np.testing.assert_array_equal(grads['rest'][0].numpy(), [4.0, 4.0])
    assert isinstance(grads['rest'][1], list) and float(grads['rest'][1][0]) == 5.0


def test_variable_read_several_times_accumulates():
    v = tj.Variable([1.0, 2.0])
    with tj.GradientTape() as tape:
        y = tj.reduce_sum(v * v) + tj.reduce_sum(v)
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [3.0, 5.0])


def test_broadcast_operands_get_gradients_of_their_own_shape():
    x = tj.constant(np.ones((3, 1)))
    y = tj.constant(np.arange(4.0).reshape(1, 4))
    s = tj.constant(2.0, tj.float64)
    with tj.GradientTape() as tape:
        tape.watch([x, y, s])
        z = x * y * s
    gx, gy, gs = tape.gradient(z, [x, y, s])
    np.testing.assert_array_equal(gx.numpy(), np.full((3, 1), 12.0))
    np.testing.assert_array_equal(gy.numpy(), np.full((1, 4), 6.0))
    assert gs.shape == () and float(gs) == 18.0


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=3), rng.normal(size=(2, 3))

    def f(x, w):
        return tj.tanh(tj.matmul(w, x[:, None])) * tj.reduce_sum(x)   # shape (2, 1)

    x, w = tj.constant(xv), tj.constant(wv)
    with tj.GradientTape() as tape:
        tape.watch([x, w])
        y = f(x, w)
    jx, jw = tape.jacobian(y, [x, w])
    assert jx.shape == (2, 1, 3) and jw.shape == (2, 1, 2, 3)
    for index in np.ndindex(2, 1):
        u = np.zeros((2, 1))
        u[index] = 1.0
        nx, nw = numeric_gradient(f, [xv, wv], u, 1e-4)
        np.testing.assert_allclose(jx.numpy()[index], nx, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(jw.numpy()[index], nw, rtol=1e-7, atol=1e-9)


def test_jacobian_unconnected():
    a, b = tj.constant([1.0, 2.0]), tj.constant([5.0, 6.0, 7.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        y = a * a
    ja, jb = tape.jacobian(y, [a, b])
    np.testing.assert_array_equal(ja.numpy(), [[2.0, 0.0], [0.0, 4.0]])
    assert jb is None
    jb = tape.jacobian(y, b, unconnected_gradients='zero')
    np.testing.assert_array_equal(jb.numpy(), np.zeros((2, 3)))


def test_stop_recording_and_stop_gradient():
    x = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
        with tape.stop_recording():
            z = y * 100.0
        w = y + tj.stop_gradient(y) * x + z * 0.0
    # d/dx [x^2 + sg(x^2) * x] = 2x + x^2; z was not recorded
    assert float(tape.gradient(w, x)) == 8.0


def test_tape_inside_function_matches_eager_and_updates_variables():
    def make():
        return tj.Variable(np.array([1.0, -2.0]), name='w'), tj.Variable(0.5, name='b')

    def step(w, b, x, y, lr):
        with tj.GradientTape() as tape:
            pred = tj.reduce_sum(w * x, axis=-1) + tj.cast(b, tj.float64)
            loss = tj.reduce_mean(tj.square(pred - y))
        gw, gb = tape.gradient(loss, [w, b])
        w.assign_sub(lr * gw)
        b.assign_sub(lr * gb)
        return loss, gw, gb

    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([1.0, 0.0])
    we, be = make()
    wc, bc = make()
    compiled = tj.function(step)
    for _ in range(3):
        eager_out = step(we, be, x, y, 0.125)
        compiled_out = compiled(wc, bc, x, y, 0.125)
        for e, c in zip(eager_out, compiled_out):
            np.testing.assert_allclose(np.asarray(c), np.asarray(e), rtol=1e-6)
    np.testing.assert_allclose(wc.numpy(), we.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bc.numpy(), be.numpy(), rtol=1e-6)
    assert compiled.cache_info()['traces'] == 1


def test_tapes_inside_function_persistent_nested_and_unconnected():
    @tj.function
    def f(x, other):
        with tj.GradientTape(persistent=True) as outer:
            outer.watch(x)
            with tj.GradientTape() as inner:
                inner.watch(x)
                y = tj.reduce_sum(tj.exp(x) * x)
            dy = inner.gradient(y, x)
            s = tj.reduce_sum(dy)
        d2 = outer.gradient(s, x)
        d2_again = outer.gradient(s, x)
        none = outer.gradient(s, other)
        zero = outer.gradient(s, other, unconnected_gradients='zero')
        return dy, d2, d2_again, none, zero

    xv = np.array([0.5, -1.0])
    dy, d2, d2_again, none, zero = f(xv, np.ones(3))
    np.testing.assert_allclose(dy.numpy(), np.exp(xv) * (xv + 1))
    np.testing.assert_allclose(d2.numpy(), np.exp(xv) * (xv + 2))
    np.testing.assert_allclose(d2_again.numpy(), d2.numpy())
    assert none is None
    np.testing.assert_array_equal(zero.numpy(), np.zeros(3))


def test_non_persistent_tape_used_twice_inside_function_raises():
    @tj.function
    def f(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = x * x
        tape.gradient(y, x)
        return tape.gradient(y, x)

    with pytest.raises(RuntimeError, match='persistent'):
        f(np.float64(1.0))


# ---------------------------------------------------------------------------- tj.gradients

def test_gradients_int_example_from_the_tf1_tutorial():
    @tj.function
    def f(a, b):
        eqn = a + 2 * b
        return tj.gradients(eqn, b), tj.gradients(eqn, [a, b])

    grad_b, grad_both = f(np.array(5, np.int32), np.array(7, np.int32))
    assert isinstance(grad_b, list) and len(grad_b) == 1   # a list, as in TF: grads[0]
    assert grad_b[0].dtype == tj.int32 and int(grad_b[0]) == 2
    assert [int(g) for g in grad_both] == [1, 2]


def test_gradients_of_constants_created_inside_the_function():
    @tj.function
    def f():
        a = tj.constant(5)
        b = tj.constant(7)
        return tj.gradients(a + 2 * b, b)

    assert int(f()[0]) == 2


def test_gradients_sums_over_ys_and_takes_grad_ys():
    @tj.function
    def f(a, b):
        eqn = a + 2.0 * b
        eqn2 = a * b + b
        return (tj.gradients([eqn, eqn2], [a, b]),
                tj.gradients(eqn2, [a, b], grad_ys=[np.float32(10.0)]),
                tj.gradients(eqn, {'b': b}))

    both, weighted, as_dict = f(np.float32(5.0), np.float32(7.0))
    assert [float(g) for g in both] == [8.0, 8.0]          # [1, 2] + [7, 6]
    assert [float(g) for g in weighted] == [70.0, 60.0]
    assert float(as_dict['b']) == 2.0


def test_gradients_unconnected_and_variables():
    v = tj.Variable([1.0, 2.0])

    @tj.function
    def f(x, unused):
        loss = tj.reduce_sum(v * v * x)
        return tj.gradients(loss, [v, x, unused]), tj.gradients(loss, unused,
                                                                unconnected_gradients='zero')

    (gv, gx, gu), [gu_zero] = f(np.float32(3.0), np.ones(2, np.float32))
    np.testing.assert_array_equal(gv.numpy(), [6.0, 12.0])
    assert float(gx) == 5.0 and gu is None
    np.testing.assert_array_equal(gu_zero.numpy(), [0.0, 0.0])


def test_gradients_needs_a_graph():
    with pytest.raises(RuntimeError, match='GradientTape'):
        tj.gradients(tj.constant(1.0), tj.constant(2.0))


# ---------------------------------------------------------------------------- grad / value_and_grad

def test_grad_argnums_int_and_tuple():
    def f(x, y, z):
        return tj.reduce_sum(x * y) + z

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    np.testing.assert_array_equal(tj.grad(f)(x, y, 1.0).numpy(), y)
    np.testing.assert_array_equal(tj.grad(f, argnums=1)(x, y, 1.0).numpy(), x)
    gx, gz = tj.grad(f, argnums=(0, 2))(x, y, 1.0)
    np.testing.assert_array_equal(gx.numpy(), y)
    assert float(gz) == 1.0
    assert isinstance(tj.grad(f, argnums=(1,))(x, y, 1.0), tuple)
    np.testing.assert_array_equal(tj.grad(f, argnums=-2)(x, y, 1.0).numpy(), x)
    with pytest.raises(tj.errors.InvalidArgumentError, match='argnums'):
        tj.grad(f, argnums=3)(x, y, 1.0)


def test_value_and_grad_and_has_aux():
    def f(x):
        loss = tj.reduce_sum(x * x)
        return loss, {'norm': tj.sqrt(loss)}

    x = np.array([3.0, 4.0])
    (value, aux), g = tj.value_and_grad(f, has_aux=True)(x)
    assert float(value) == 25.0 and float(aux['norm']) == 5.0
    np.testing.assert_array_equal(g.numpy(), 2 * x)
    g, aux = tj.grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(g.numpy(), 2 * x)
    assert float(aux['norm']) == 5.0
    with pytest.raises(TypeError, match='pair'):
        tj.grad(lambda x: tj.reduce_sum(x), has_aux=True)(x)


def test_grad_over_pytrees():
    params = {'w': np.array([[1.0, 2.0], [3.0, 4.0]]), 'layers': [np.array([0.5]),
                                                                  (np.float64(2.0),)]}
    x = np.array([1.0, -1.0])

    def loss(p, x):
        h = tj.matmul(p['w'], x[:, None])
        return tj.reduce_sum(h * p['layers'][0]) * p['layers'][1][0]

    value, grads = tj.value_and_grad(loss)(params, x)
    assert float(value) == -2.0                               # sum([-1, -1] * 0.5) * 2
    assert set(grads) == {'w', 'layers'} and isinstance(grads['layers'], list)
    assert isinstance(grads['layers'][1], tuple)
    np.testing.assert_array_equal(grads['w'].numpy(), np.outer([1.0, 1.0], x))
    np.testing.assert_array_equal(grads['layers'][0].numpy(), [-4.0])
    assert float(grads['layers'][1][0]) == -1.0
    check_grads(lambda w, b: loss({'w': w, 'layers': [b, (2.0,)]}, x),
                [params['w'], params['layers'][0]], order=2)


def test_grad_of_grad():
    f = lambda x: x ** 3 * tj.sin(x)  # noqa: E731
    x = 0.7
    d1 = tj.grad(f)(np.float64(x))
    d2 = tj.grad(tj.grad(f))(np.float64(x))
    d3 = tj.grad(tj.grad(tj.grad(f)))(np.float64(x))
    s, c = np.sin(x), np.cos(x)
    np.testing.assert_allclose(float(d1), 3 * x**2 * s + x**3 * c)
    np.testing.assert_allclose(float(d2), 6 * x * s + 6 * x**2 * c - x**3 * s)
    np.testing.assert_allclose(float(d3), 6 * s + 18 * x * c - 9 * x**2 * s - x**3 * c)
    assert d1.dtype == tj.float64


def test_grad_inside_function():
    f = lambda x: tj.reduce_sum(tj.sin(x) * x)  # noqa: E731
    x = np.array([0.3, -1.2])
    np.testing.assert_allclose(tj.function(tj.grad(f))(x).numpy(), np.sin(x) + x * np.cos(x))


def test_function_inside_grad_and_tape():
    f = lambda x: tj.reduce_sum(tj.sin(x) * x)  # noqa: E731
    x = np.array([0.3, -1.2])
    expected = np.sin(x) + x * np.cos(x)
    xt = tj.constant(x)
    with tj.GradientTape() as tape:
        tape.watch(xt)
        y = tj.function(f)(xt)
    np.testing.assert_allclose(_np(tape.gradient(y, xt)), expected)
    np.testing.assert_allclose(tj.grad(tj.function(f))(x).numpy(), expected)


def test_grad_unconnected_argument_is_zero():
    g = tj.grad(lambda x, y: tj.reduce_sum(x * 2.0), argnums=(0, 1))(np.ones(2), np.ones(3))
    np.testing.assert_array_equal(g[1].numpy(), np.zeros(3))


def test_grad_of_a_constant_function_is_zero():
    for fn in (lambda x: 1.0, lambda x: np.float32(2.0), lambda x: tj.constant(3.0)):
        g = tj.grad(fn)(np.float64(2.0))
        assert float(g) == 0.0 and g.dtype == tj.float64


def test_grad_bad_inputs():
    with pytest.raises(TypeError, match='floating-point inputs'):
        tj.grad(lambda x: x * x)(3)
    with pytest.raises(TypeError, match='floating-point inputs'):
        tj.grad(lambda x: tj.reduce_sum(x))(np.array([1, 2]))
    with pytest.raises(TypeError, match='scalar'):
        tj.grad(lambda x: x * x)(np.ones(3))
    with pytest.raises(TypeError, match='scalar'):
        tj.grad(lambda x: tj.cast(x, tj.int32))(1.0)


# ---------------------------------------------------------------------------- custom rules

@tj.custom_gradient
def _clip_gradient(x):
    def grad_fn(dy):
        return tj.clip_by_value(dy, -0.5, 0.5)
    return tj.identity(x), grad_fn


@tj.custom_gradient
def _log1pexp(x):
    """TF's documented example: a numerically stable gradient for log(1 + exp(x))."""
    e = tj.exp(x)

    def grad_fn(dy):
        return dy * (1 - 1 / (1 + e))
    return tj.log(1 + e), grad_fn


def test_custom_gradient_uses_the_custom_rule():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(_clip_gradient(x) * tj.constant([3.0, -0.25]))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.5, -0.25])
    np.testing.assert_array_equal(_clip_gradient(x).numpy(), x.numpy())
    g = tj.grad(lambda v: tj.reduce_sum(_clip_gradient(v) * 3.0))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g.numpy(), [0.5, 0.5])
    x100 = tj.constant(100.0)
    with tj.GradientTape() as tape:
        tape.watch(x100)
        y = _log1pexp(x100)
    assert float(tape.gradient(y, x100)) == 1.0


def test_custom_gradient_inside_function_and_second_order():
    @tj.function
    def f(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(_clip_gradient(x) * 3.0)
        return tape.gradient(y, x)

    np.testing.assert_array_equal(f(np.array([1.0, 2.0], np.float32)).numpy(), [0.5, 0.5])

    @tj.custom_gradient
    def cube(x):
        def grad_fn(dy):
            return dy * 3.0 * x * x
        return x * x * x, grad_fn

    assert float(tj.grad(tj.grad(cube))(np.float64(2.0))) == 12.0


def test_custom_gradient_with_two_inputs_and_a_wrong_count():
    @tj.custom_gradient
    def scaled(x, y):
        def grad_fn(dy):
            return dy * 10.0, dy * 20.0
        return x * y, grad_fn

    x, y = tj.constant(2.0), tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch([x, y])
        z = scaled(x, y)
    assert [float(g) for g in tape.gradient(z, [x, y])] == [10.0, 20.0]

    @tj.custom_gradient
    def wrong(x, y):
        return x * y, lambda dy: dy
    with tj.GradientTape() as tape:
        tape.watch([x, y])
        z = wrong(x, y)
    with pytest.raises(tj.errors.InvalidArgumentError, match='1 gradients for 2 inputs'):
        tape.gradient(z, [x, y])


def test_stop_gradient_in_function_and_grad():
    f = lambda x: tj.reduce_sum(x * tj.stop_gradient(x))  # noqa: E731
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(tj.grad(f)(x).numpy(), x)
    np.testing.assert_array_equal(tj.function(tj.grad(f))(x).numpy(), x)
    np.testing.assert_array_equal(tj.stop_gradient(x).numpy(), x)


# ---------------------------------------------------------------------------- errors

def test_shape_error_names_the_op_both_shapes_and_the_line():
    a, b = np.ones((3, 4)), np.ones((2, 4))
    with pytest.raises(tj.errors.ShapeError) as info:
        tj.add(a, b)
    message = str(info.value)
    assert 'add' in message and '(3, 4)' in message and '(2, 4)' in message
    assert f'test_autodiff.py:{_raised_at_line(info)}' in message
    with pytest.raises(tj.errors.ShapeError) as info:
        tj.constant(a) * tj.constant(b)
    message = str(info.value)
    assert 'mul' in message and f'test_autodiff.py:{_raised_at_line(info)}' in message
    with pytest.raises(tj.errors.ShapeError) as info:
        tj.matmul(a, b)
    message = str(info.value)
    assert 'matmul' in message and '(3, 4)' in message and '(2, 4)' in message
    assert f'test_autodiff.py:{_raised_at_line(info)}' in message


def test_shape_error_inside_function_points_at_the_users_line():
    @tj.function
    def f(x, y):
        h = x * 2.0
        return h - y

    with pytest.raises(tj.errors.ShapeError) as info:
        f(np.ones((3, 4)), np.ones((4, 3)))
    message = str(info.value)
    assert 'sub' in message and '(3, 4)' in message and '(4, 3)' in message
    line = _raised_at_line(info)
    assert f'test_autodiff.py:{line}' in message
    assert 'return h - y' in open(__file__).read().splitlines()[line - 1]


def test_python_control_flow_on_traced_values_is_a_concretization_error():
    @tj.function(autograph=False)   # AutoGraph would make it a tj.cond
    def branchy(x):
        if tj.reduce_sum(x) > 0:
            return x
        return -x

    with pytest.raises(tj.errors.ConcretizationError) as info:
        branchy(np.ones(3))
    message = str(info.value)
    assert 'tj.where' in message and f'test_autodiff.py:{_raised_at_line(info)}' in message

    for convert in (bool, float, int, lambda t: t.numpy(), np.asarray):
        with pytest.raises(tj.errors.ConcretizationError, match='tj.where'):
            tj.function(lambda x: convert(x))(np.float32(1.0))


def test_branch_on_a_static_flag_is_fine():
    @tj.function
    def f(x, training):
        return x * 2.0 if training else x

    assert float(f(np.float32(1.0), True)) == 2.0 and float(f(np.float32(1.0), False)) == 1.0


@pytest.mark.parametrize('bad', [np.array(['a', 'b']), np.array([object(), 1], dtype=object),
                                 ['a', 'b'], 'abc'], ids=['str-array', 'object-array',
                                                          'str-list', 'str'])
def test_non_numeric_data_is_a_type_error(bad):
    with pytest.raises(TypeError):
        tj.add(bad, 1.0)
    with pytest.raises(TypeError):
        tj.reduce_sum(bad)
    with pytest.raises(TypeError):
        tj.Variable(bad)
    if isinstance(bad, np.ndarray):
        with pytest.raises(TypeError, match="argument 'x'"):
            tj.function(lambda x: x * 2.0)(bad)
        with pytest.raises(TypeError):
            tj.constant(bad) if bad.dtype == object else tj.exp(tj.constant(bad))
        with pytest.raises(TypeError):
            tj.grad(lambda x: tj.reduce_sum(x))(bad)

"""tj.py_function / tj.numpy_function: Python at run time inside compiled steps, TensorFlow's
Tout structures, py_function's gradient, and errors that propagate and change nothing."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors


def _f(x):
    return x * 2.0 + tj.sin(x)


def _df(x):
    return 2.0 + np.cos(x)


def test_eager_py_function_records_on_the_outer_tape():
    x = tj.constant([0.0, 1.0, 2.5])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.py_function(_f, [x], tj.float32)
    np.testing.assert_allclose(y.numpy(), _f(x).numpy())
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), _df(x.numpy()), rtol=1e-6)


def test_tout_structures_and_eager_numpy_function():
    x = tj.constant([3.0, 1.0, 2.0])
    pair = tj.py_function(lambda a: (a + 1.0, tj.cast(tj.argmax(a), tj.int32)), [x],
                          [tj.float32, tj.int32])
    assert isinstance(pair, list) and len(pair) == 2
    np.testing.assert_array_equal(pair[0].numpy(), [4, 2, 3])
    assert pair[1].numpy() == 0 and pair[1].dtype == tj.int32
    assert tj.py_function(lambda a: None, [x], None) is None
    out = tj.numpy_function(lambda a: np.sort(a), [x], tj.float32)
    np.testing.assert_array_equal(out.numpy(), [1, 2, 3])
    with pytest.raises(errors.InvalidArgumentError, match='is float64, but Tout expects float32'):
        tj.numpy_function(lambda a: a.astype(np.float64), [x], tj.float32)
    with pytest.raises(errors.InvalidArgumentError, match='returned 1 values.*declares 2'):
        tj.py_function(lambda a: [a], [x], [tj.float32, tj.float32])


def test_an_unknown_output_size_inside_a_trace_is_refused():
    def f(x):
        return tj.py_function(lambda a: a, [x], tj.TensorSpec([None], tj.float32))
    with pytest.raises(errors.UnimplementedError, match='must give every size'):
        tj.function(f).trace(np.ones(3, np.float32))


@pytest.mark.compiled
def test_compiled_py_function_values_gradient_and_every_call():
    calls = []
    v = tj.Variable([0.0, 0.0, 0.0])

    def record(a):
        calls.append(a.copy())
        return np.sort(a)[::-1].copy()

    @tj.function
    def step(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.py_function(_f, [x], tj.float32)
            loss = tj.reduce_sum(y * y)
        grad = tape.gradient(loss, x)
        v.assign_add(grad)
        ordered = tj.numpy_function(record, [x], tj.float32)
        total = tj.py_function(lambda a: tj.reduce_sum(a), [x], tj.TensorSpec([], tj.float32))
        return y, grad, ordered, total

    xs = [np.array([0.0, 1.0, 2.5], np.float32), np.array([-1.0, 0.5, 3.0], np.float32)]
    expected_v = np.zeros(3)
    for x in xs:
        y, grad, ordered, total = step(x)
        fx = 2 * x + np.sin(x)
        np.testing.assert_allclose(y.numpy(), fx, rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), 2 * fx * _df(x), rtol=1e-5)
        np.testing.assert_array_equal(ordered.numpy(), np.sort(x)[::-1])
        assert total.shape == () and total.numpy() == pytest.approx(x.sum())
        expected_v += 2 * fx * _df(x)
    np.testing.assert_allclose(v.numpy(), expected_v, rtol=1e-5)
    assert len(calls) == 2 and step.cache_info()['traces'] == 1
    np.testing.assert_array_equal(calls[1], xs[1])


@pytest.mark.compiled
def test_a_compiled_call_gets_a_scalar_operand_in_its_own_dtype():
    """A kernel passes 0-d operands to the host as Python floats: they arrive as float32 again,
    so a float32 Tout of a float32 computation holds (it was refused as float64)."""
    seen = []

    def f(a):
        seen.append(a.dtype)
        return tj.sin(a) * 2.0

    @tj.function
    def step(x, s):
        return x + tj.py_function(f, [s], s.dtype)
    s = np.array(0.75, np.float32)
    out = step(np.ones(2, np.float32), s)
    assert out.dtype == tj.float32 and seen == [tj.float32]
    np.testing.assert_allclose(out, 1.0 + 2.0 * np.sin(np.float32(0.75)), rtol=1e-6)


@pytest.mark.compiled
def test_errors_in_func_propagate_and_leave_variables_unchanged():
    v = tj.Variable([1.0, 2.0])

    def fails(a):
        if a[0] > 10:
            raise KeyError('raised by the user function')
        return a

    @tj.function
    def step(x):
        v.assign_add(x)           # written in place before the call back
        y = tj.numpy_function(fails, [x], tj.float32)
        tj.py_function(lambda a: np.ones(5, np.float32), [x], tj.float32)
        return y

    with pytest.raises(KeyError, match='raised by the user function') as info:
        step(np.array([11.0, 0.0], np.float32))
    assert any(frame.name == 'fails' for frame in info.traceback)   # the user's traceback
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    with pytest.raises(errors.InvalidArgumentError, match=r'py_function\(<lambda>\).*shape '
                                                          r'\(5,\).*TensorSpec'):
        step(np.array([1.0, 1.0], np.float32))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_a_float64_result_keeps_its_precision_on_the_interpreter():
    """A float64 Tensor returned by func is not narrowed to float32 on the way back."""
    from tracejit import ir
    x = np.array([[0.9]])
    f = tj.function(lambda x: tj.py_function(lambda a: tj.sin(a) * 2.0, [x], tj.float64))
    (out,), _ = ir.evaluate(f.trace(x).graph, [x], [])
    assert out.dtype == np.float64 and out[0, 0] == np.sin(0.9) * 2.0

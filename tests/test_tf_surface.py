"""Small pieces of TensorFlow's surface that tutorial code uses, checked against TF's
documented behaviour: tj.newaxis, tj.device, Variable.assign of Python lists,
tj.UnconnectedGradients, and the gradient of a Variable with respect to itself."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors


def test_newaxis_inserts_an_axis():
    t = tj.constant([[1, 2, 3]])
    assert tj.newaxis is None
    assert t[tj.newaxis].shape == (1, 1, 3)
    assert t[:, tj.newaxis, :].shape == (1, 1, 3)
    np.testing.assert_array_equal(t[..., tj.newaxis].numpy(), np.array([[1, 2, 3]])[..., None])


def test_device_is_accepted_and_changes_nothing():
    with tj.device('/GPU:0'):
        out = tj.constant([1.0, 2.0]) * 2.0
    with tj.device(None):
        pass
    np.testing.assert_array_equal(out.numpy(), [2.0, 4.0])
    with pytest.raises(TypeError, match='string'):
        with tj.device(0):
            pass


def test_assign_converts_python_lists_to_the_variables_dtype():
    v = tj.Variable([1.0, 2.0])
    v.assign([3, 4])                       # TF converts ints to the float Variable's dtype
    assert v.numpy().dtype == np.float32 and v.numpy().tolist() == [3.0, 4.0]
    v.assign_add([1, 1])
    assert v.numpy().tolist() == [4.0, 5.0]
    n = tj.Variable([1, 2])
    with pytest.raises(errors.DTypeError, match='list of floats'):
        n.assign([1.5, 2.0])
    assert n.numpy().tolist() == [1, 2]
    with pytest.raises(errors.ShapeError, match='shape'):
        v.assign([1, 2, 3])
    assert v.numpy().tolist() == [4.0, 5.0]


def test_gradient_of_a_variable_with_respect_to_itself_is_one():
    w = tj.Variable(3.0)
    with tj.GradientTape() as tape:
        y = w * 2.0
    assert float(tape.gradient(w, w)) == 1.0
    with tj.GradientTape() as tape:
        y = w * 2.0
    assert float(tape.gradient([y, w], w)) == 3.0          # d(y + w)/dw
    m = tj.Variable(np.ones((2, 2), np.float32))
    with tj.GradientTape() as tape:
        pass
    np.testing.assert_array_equal(tape.gradient(m, m).numpy(), np.ones((2, 2)))


def test_unconnected_gradients_enum():
    w, unused = tj.Variable(3.0), tj.Variable([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        y = w * 2.0
    assert tape.gradient(y, unused, unconnected_gradients=tj.UnconnectedGradients.NONE) is None
    zero = tape.gradient(y, unused, unconnected_gradients=tj.UnconnectedGradients.ZERO)
    np.testing.assert_array_equal(zero.numpy(), [0.0, 0.0])
    assert tj.UnconnectedGradients.ZERO.value == 'zero'


@pytest.mark.compiled
def test_gradient_of_a_variable_with_respect_to_itself_inside_a_function():
    w = tj.Variable(3.0)

    @tj.function
    def f():
        with tj.GradientTape() as tape:
            y = w * w
        return tape.gradient([y, w], w)
    assert float(f()) == 7.0                               # 2w + 1


@pytest.mark.compiled
def test_a_function_returns_python_numbers_as_tensors_of_tfs_dtypes():
    out = tj.function(lambda: (3, 1.5, True, None, 'name'))()
    assert [type(v) for v in out[:3]] == [tj.Tensor] * 3
    assert [v.dtype for v in out[:3]] == [tj.int32, tj.float32, tj.bool]
    assert [v.numpy().item() for v in out[:3]] == [3, 1.5, True]
    assert out[3:] == (None, 'name')


@pytest.mark.compiled
def test_a_list_of_floats_is_one_traced_argument():
    f = tj.function(lambda x: tj.reduce_sum(x * x))
    assert float(f([1.0, 2.0, 3.0])) == 14.0
    assert float(f([[4.0, 5], [6, 7]])) == 126.0        # nested, ints among the floats
    assert float(f([1.5, 0.5, 2.0])) == 6.5
    assert f.cache_info()['traces'] == 2                 # one per shape, not per value
    ints = tj.function(lambda shape: tj.zeros(shape))   # a list of ints stays static (a shape)
    assert ints([2, 3]).shape == (2, 3) and ints([4]).shape == (4,)


@pytest.mark.compiled
def test_init_scope_runs_eagerly_inside_a_trace():
    seen = []

    @tj.function
    def f(x):
        with tj.init_scope():
            eager = tj.constant([1.0, 2.0]) * 3.0      # a concrete value while tracing
            seen.append(eager.numpy().tolist())
        return x + eager
    np.testing.assert_array_equal(f(np.ones(2, np.float32)).numpy(), [4.0, 7.0])
    assert seen == [[3.0, 6.0]]
    w = tj.Variable(2.0)
    with tj.GradientTape(persistent=True) as tape:
        y = w * w
        with tj.init_scope():
            hidden = w * 10.0                           # unseen by the tape
    assert float(tape.gradient(y, w)) == 4.0 and tape.gradient(hidden, w) is None


@pytest.mark.compiled
def test_a_leaked_traced_value_raises_what_tf_raises():
    leak = []

    @tj.function
    def f(x):
        leak.append(x * 2.0)
        return x
    f(np.ones(2, np.float32))
    with pytest.raises(TypeError, match='finished tracing') as eager:
        leak[0] + 1.0
    assert isinstance(eager.value, errors.LeakedTensorError)

    @tj.function
    def g(x):
        return x + leak[0]
    with pytest.raises(ValueError, match='escaped from another compiled function') as other:
        g(np.ones(2, np.float32))
    assert isinstance(other.value, errors.InaccessibleTensorError)


def test_shape_errors_of_ops_are_invalid_argument_errors():
    with pytest.raises(tj.errors.InvalidArgumentError, match='incompatible shapes'):
        tj.constant([1.0, 2.0]) + tj.constant([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        tj.reshape(tj.constant([1.0, 2.0]), [3])


def test_gradients_with_respect_to_integer_tensors_are_none():
    x = tj.constant([1, 2])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.cast(x, tj.float32) * 2.0
    assert tape.gradient(y, x) is None

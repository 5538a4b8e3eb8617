"""tj.debugging: InvalidArgumentError eagerly, at trace time for concrete values, and at run
time from compiled steps, which then leave their Variables unchanged."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

dbg = tj.debugging
NAN, INF = float('nan'), float('inf')


@pytest.mark.parametrize('check, args, holds', [
    (dbg.assert_equal, ([1, 2], [1, 2]), True), (dbg.assert_equal, ([1, 2], [1, 3]), False),
    (dbg.assert_equal, ([2, 2], 2), True),  # broadcast
    (dbg.assert_none_equal, ([1, 2], [2, 1]), True),
    (dbg.assert_none_equal, ([1, 2], [1, 1]), False),
    (dbg.assert_less, ([1.0, 2.0], 2.5), True), (dbg.assert_less, ([1.0, 2.0], 2.0), False),
    (dbg.assert_less_equal, ([1.0, 2.0], 2.0), True),
    (dbg.assert_greater, ([3, 4], [2, 3]), True), (dbg.assert_greater, ([3, 4], [3, 3]), False),
    (dbg.assert_greater_equal, ([3, 4], [3, 3]), True),
    (dbg.assert_less, ([NAN], 1.0), False),   # NaN compares false, as in TF
    (dbg.assert_non_negative, ([0.0, 1.0],), True), (dbg.assert_non_negative, ([-1e-9],), False),
    (dbg.assert_positive, ([0.0, 1.0],), False), (dbg.assert_positive, ([1, 2],), True),
    (dbg.assert_negative, ([-1],), True), (dbg.assert_non_positive, ([0, 1],), False),
    (dbg.assert_near, ([1.0, 2.0], [1.0, 2.0 + 1e-7]), True),
    (dbg.assert_near, ([1.0, 2.0], [1.0, 2.1]), False),
    (dbg.assert_equal, ([], [1]), True),     # no elements: nothing to fail
])
def test_eager_value_checks(check, args, holds):
    tensors = [tj.constant(a, tj.float32 if check is dbg.assert_near else None) for a in args]
    if holds:
        assert check(*tensors) is None
    else:
        with pytest.raises(errors.InvalidArgumentError, match='did not hold|not equal to tol'):
            check(*tensors, message='my message')


def test_failure_messages_name_the_condition_and_the_data():
    with pytest.raises(errors.InvalidArgumentError) as info:
        dbg.assert_equal(tj.constant([1, 2]), tj.constant([1, 3]), message='labels')
    text = str(info.value)
    assert text.startswith('labels\nCondition x == y did not hold.')
    assert 'First 2 elements of x:\n[1 2]' in text and '[1 3]' in text


@pytest.mark.parametrize('values, what', [([1.0, NAN], 'NaN'), ([INF, 1.0], 'Inf'),
                                          ([NAN, -INF], 'Inf and NaN')])
def test_check_numerics_names_what_it_found(values, what):
    with pytest.raises(errors.InvalidArgumentError, match=f'^bad x : Tensor had {what} values'):
        dbg.check_numerics(tj.constant(values), 'bad x')
    with pytest.raises(errors.InvalidArgumentError, match=f'Tensor had {what} values'):
        dbg.assert_all_finite(tj.constant(values), 'bad x')
    ok = tj.constant([1.0, -0.0])
    np.testing.assert_array_equal(dbg.check_numerics(ok, 'fine').numpy(), [1.0, -0.0])
    with pytest.raises(errors.DTypeError):
        dbg.check_numerics(tj.constant([1, 2]), 'ints')


def test_static_shape_and_type_checks():
    x = tj.zeros((2, 3))
    dbg.assert_rank(x, 2)
    with pytest.raises(ValueError, match='must have rank 1.  Received rank 2'):
        dbg.assert_rank(x, 1)
    dbg.assert_shapes([(x, ('N', 3)), (tj.zeros((2,)), ('N',)),
                       (tj.zeros((5, 2, 3)), ('*', 'N', 3))])
    with pytest.raises(ValueError, match='dimension 0 must have size 2.  Received size 4'):
        dbg.assert_shapes([(x, ('N', 3)), (tj.zeros((4,)), ('N',))])
    with pytest.raises(ValueError, match='must have rank 2'):
        dbg.assert_shapes([(tj.zeros((4,)), ('N', 3))])
    dbg.assert_type(x, tj.float32)
    with pytest.raises(TypeError, match='must be of type tj.int32; got tj.float32'):
        dbg.assert_type(x, tj.int32)
    assert dbg.set_log_device_placement(True) is None


def test_a_check_of_concrete_values_fails_while_tracing():
    def f(x):
        dbg.assert_equal(tj.constant(1), tj.constant(2))
        return x
    with pytest.raises(errors.InvalidArgumentError, match='Condition x == y'):
        tj.function(f).trace(np.ones(2, np.float32))


def test_checks_of_traced_values_become_guarded_host_calls():
    def f(x):
        dbg.assert_positive(x)
        return dbg.check_numerics(x, 'x')
    fn = tj.function(f)
    calls = [n for n in fn.trace(np.ones(2, np.float32)).graph.nodes
             if n.prim.name == 'host_call']
    assert len(calls) == 2 and all(n.params['call'].guarded for n in calls)
    source = fn.lower(np.ones(2, np.float32)).source
    assert source.count('if not ') == 2   # the kernel calls back only when a check fails


@pytest.mark.compiled
def test_run_time_failures_raise_and_leave_variables_unchanged():
    v = tj.Variable([1.0, 2.0])
    count = tj.Variable(0)

    @tj.function
    def step(x):
        v.assign_add(x)
        count.assign_add(1)
        y = dbg.check_numerics(tj.math.log(v), 'log v')
        dbg.assert_less(x, 10.0, message='x too big')
        return y

    np.testing.assert_allclose(step(np.array([1.0, 1.0], np.float32)).numpy(), np.log([2, 3]))
    for bad, match in [([-5.0, 0.0], 'log v : Tensor had NaN values'),
                       ([-2.0, 0.0], 'log v : Tensor had Inf values'),
                       ([11.0, 0.0], 'x too big\nCondition x < y did not hold')]:
        with pytest.raises(errors.InvalidArgumentError, match=match):
            step(np.array(bad, np.float32))
        np.testing.assert_array_equal(v.numpy(), [2.0, 3.0])
        assert count.numpy() == 1
    step(np.array([1.0, 1.0], np.float32))
    np.testing.assert_array_equal(v.numpy(), [3.0, 4.0])
    assert count.numpy() == 2

"""AutoGraph: Python control flow on traced tensors, converted by tj.function.

Each converted construct is traced, run on the IR interpreter and compared with the same
function run as plain Python on concrete values (eagerly, where `if` on a tensor is a Python
bool). Also: to_code, autograph=False and tj.jit keep Python semantics, do_not_convert,
recursive conversion of user code but not library code, errors at the user's original line,
gradients through converted control flow against finite differences.
"""
import inspect
import re
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from tracejit.autograph import conversion
from tracejit.backend import Interpreted

from gradcheck import check_grads

X = np.array([0.5, -1.5, 2.0], np.float32)


def _traced(fn, *args):
    """`fn` traced by tj.function (AutoGraph on) and run on the IR interpreter."""
    graph = tj.function(fn).trace(*args).graph
    outs = Interpreted(graph).run(list(args))
    return outs[0] if len(outs) == 1 else outs


def _check(fn, *arg_sets):
    """Converted and traced == plain Python on concrete values, for each argument set."""
    for args in arg_sets:
        want = fn(*args)
        got = _traced(fn, *args)
        if isinstance(want, tuple):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, np.asarray(w), rtol=1e-6, err_msg=str(args))
        else:
            np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, err_msg=str(args))


# ------------------------------------------------------------------------- constructs

def _if_elif_else(x):
    s = tj.reduce_sum(x)
    if s > 2.0:
        y = x * 2.0
    elif s > 0.0:
        y = x - 1.0
    else:
        y = -x
    return y


def _while(x):
    while tj.reduce_sum(tj.abs(x)) > 1.0:
        x = x / 2.0
    return x


def _for_range(x, n):
    s = tj.zeros_like(x)
    for i in range(n):
        s = s + x * tj.cast(i, tj.float32)
    return s


def _for_tj_range(x):
    s = tj.zeros_like(x)
    for i in tj.range(1, 7, 2):
        s = s * 0.5 + x * tj.cast(i, tj.float32)
    return s


def _for_tensor(x):
    s = 0.0
    for v in x:
        s = s * 2.0 + v
    return s


def _nested(x):
    total = 0.0
    for v in x:
        for j in tj.range(3):
            if v > tj.cast(j, tj.float32):
                total = total + v
            else:
                total = total - 1.0
    return total


def _break_continue(x):
    s = 0.0
    for v in x:
        if v < 0.0:
            continue
        s = s + v
        if s > 2.2:
            break
    return s


def _early_return(x):
    if tj.reduce_sum(x) > 1.0:
        return x * 3.0
    return x - 1.0


def _return_in_with(x):
    with tj.GradientTape():   # any context manager
        if tj.reduce_sum(x) > 1.0:
            return x * 3.0
    return x - 1.0


def _logic(x):
    a, b = x[0], x[1]
    if (a > 0.0 and b < 0.0) or not (x[2] > 1.0):
        return x + 1.0
    return x - 1.0


def _ternary(x):
    return x * 2.0 if tj.reduce_max(x) > 1.5 else x * -1.0


def _loop_in_branch(x):
    if tj.reduce_sum(x) > 0.0:
        k = 0
        while k < 3:   # a Python loop on a Python counter stays Python, even in a tensor if
            x = x * 1.5
            k += 1
        i = tj.constant(0)
        while i < 2:
            x = x + 1.0
            i += 1
    else:
        x = x * 0.0
    return x


def _while_break_and_else(x):
    i = tj.constant(0)
    while i < 10:
        x = x * 1.5
        if tj.reduce_max(x) > 3.0:
            break
        i += 1
    else:
        x = x * 0.0   # runs only when the loop did not break
    return x, i


def _nested_function(x):
    def clip(v, limit=1.0):
        if tj.reduce_max(v) > limit:
            v = v / tj.reduce_max(v) * limit
        return v
    scale = lambda v: v * 2.0 if tj.reduce_min(v) > 0.0 else v   # noqa: E731
    return scale(clip(x, limit=1.5)) + clip(-x)


def test_if_elif_else():
    _check(_if_elif_else, (X,), (X - 1.0,), (X - 2.0,))


def test_while():
    _check(_while, (X,), (X * 0.1,))
    _check(_while_break_and_else, (X,), (X * 0.01,))


_calls = 0


def _counts_calls(x):
    global _calls
    seen = 0

    def bump(v):
        nonlocal seen
        if tj.reduce_sum(v) > 0.0:
            v = v * 2.0
        for k in range(2):
            seen += 1
        return v
    global_before = _calls
    if global_before >= 0:
        _calls += 1
    return bump(x) + seen


def test_nested_functions_lambdas_and_default_arguments():
    _check(_nested_function, (X,), (np.abs(X),), (np.abs(X) * 0.1,))
    before = _calls
    _check(_counts_calls, (X,), (-X,))   # nonlocal and global names assigned in converted code
    assert _calls == before + 4   # two plain runs, two traces


def test_for_over_range_of_a_tensor_and_tj_range():
    _check(_for_range, (X, np.array(4, np.int32)), (X, np.array(0, np.int32)))
    _check(_for_tj_range, (X,))
    assert 'while' in str(tj.function(_for_range).trace(X, np.array(4, np.int32)).graph)
    assert 'scan' in str(tj.function(_for_tj_range).trace(X).graph)   # not unrolled


def test_for_over_a_tensor_nested_loops_break_continue():
    xs = (np.array([1.0, -2.0, 2.0, 0.5], np.float32),)
    _check(_for_tensor, xs)
    _check(_nested, xs, (np.array([0.5, 3.0], np.float32),))
    _check(_break_continue, xs, (np.array([-1.0, 0.5], np.float32),))


def test_early_return_logic_and_ternary():
    _check(_early_return, (X,), (X - 1.0,))
    _check(_return_in_with, (X,), (X - 1.0,))
    for x in (X, np.array([-1.0, 2.0, 3.0], np.float32), np.array([1.0, -1.0, 3.0], np.float32)):
        _check(_logic, (x,))
    _check(_ternary, (X,), (X - 1.0,))
    _check(_loop_in_branch, (X,), (-X,))


def test_python_control_flow_on_python_values_traces_the_same_graph():
    def plain(x, flag=True):
        y = x
        for k in range(3):
            if flag and k != 1:
                y = y * 2.0
            else:
                y = y + 1.0
        return y if flag else -y
    converted = str(tj.function(plain).trace(X).graph)
    unconverted = str(tj.function(plain, autograph=False).trace(X).graph)
    assert converted == unconverted
    assert 'cond' not in converted and 'while' not in converted


def test_variables_assigned_in_branches_and_loops():
    v = tj.Variable(np.zeros(3, np.float32))

    def step(x):
        if tj.reduce_sum(x) > 0.0:
            v.assign_add(x)
        else:
            v.assign_sub(x)
        for i in tj.range(2):
            v.assign(v * 2.0)
        return v.read_value()
    np.testing.assert_allclose(_traced(step, X), 4.0 * X, rtol=1e-6)
    np.testing.assert_allclose(_traced(step, -X), 4.0 * (4.0 * X + X), rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), 4.0 * (4.0 * X + X), rtol=1e-6)

    u = tj.Variable(1.0)

    def doubles(limit):
        while u < limit:   # no local state: the Variable is the loop's only state
            u.assign(u * 2.0)
        return u.read_value()
    assert _traced(doubles, np.float32(10.0)) == 16.0 and u.numpy() == 16.0


def _branch_and_scan_loss(x):
    y = x
    if tj.reduce_sum(x) > 0.0:
        y = tj.sin(x) * x
    else:
        y = x * x
    for v in x:
        y = y * tj.tanh(v)
    return tj.reduce_sum(y)


def _early_exit_loss(x):
    s = tj.reduce_sum(x) * 0.0
    for v in x:
        s = s + v * v
        if s > 0.05:
            break
    return s


@pytest.mark.parametrize('loss', [_branch_and_scan_loss, _early_exit_loss])
def test_gradients_through_converted_control_flow(loss):
    def grad(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            out = loss(x)
        return tape.gradient(out, x)
    x64 = X.astype(np.float64) * 0.3
    for x in (x64, -x64):
        graph = tj.function(grad).trace(x).graph
        got = Interpreted(graph).run([x])[0]
        np.testing.assert_allclose(got, grad(tj.constant(x)), rtol=1e-9)
        check_grads(loss, (x,), order=1)


def _doubling_capped(x):
    while tj.reduce_sum(x) < 100.0:
        tj.autograph.experimental.set_loop_options(maximum_iterations=3)
        x = x * 2.0
    return x


def _range_capped(x, n):
    for i in tj.range(n):
        tj.autograph.experimental.set_loop_options(maximum_iterations=2, parallel_iterations=4)
        x = x + tj.cast(i, tj.float32) + 1.0
    return x


def _rows_capped(x):
    s = x[0] * 0.0
    for v in x:
        tj.autograph.experimental.set_loop_options(maximum_iterations=2)
        s = s + v * v
    return s


def test_set_loop_options_bounds_tensor_loops_and_makes_while_differentiable():
    """maximum_iterations caps each kind of tensor loop (plain Python ignores the call, as in
    TF: the references cap by hand), and a bounded while has a gradient (2**3 here)."""
    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(_traced(_doubling_capped, x), x * 8.0)
    np.testing.assert_allclose(_traced(_doubling_capped, x * 10.0), x * 40.0)   # test stops it
    np.testing.assert_allclose(_traced(_range_capped, x, np.array(5, np.int32)), x + 3.0)
    np.testing.assert_allclose(_traced(_range_capped, x, np.array(1, np.int32)), x + 1.0)
    rows = np.array([1.0, -2.0, 3.0], np.float32)
    np.testing.assert_allclose(_traced(_rows_capped, rows), 5.0)
    np.testing.assert_allclose(_rows_capped(rows), 14.0)   # eager: a Python loop, no cap

    def grad(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            out = tj.reduce_sum(_doubling_capped(x))
        return tape.gradient(out, x)
    np.testing.assert_allclose(_traced(grad, x), [8.0, 8.0])

    def bad(x):
        while tj.reduce_sum(x) < 100.0:
            tj.autograph.experimental.set_loop_options(maximum_iterations=-1)
            x = x * 2.0
        return x
    with pytest.raises(errors.InvalidArgumentError, match='non-negative integer, got -1'):
        tj.function(bad).trace(x)


# ------------------------------------------------------------------------- errors

def test_undefined_in_one_branch_and_containers_in_tensor_loops():
    def one_branch(x):
        if tj.reduce_sum(x) > 0.0:
            y = x
        return y

    def appends(x):
        out = []
        for v in x:
            out.append(v)
        return out
    with pytest.raises(errors.InvalidArgumentError, match="'y' must also be initialized in the "
                                                          "else branch"):
        tj.function(one_branch).trace(X)
    with pytest.raises(errors.InvalidArgumentError, match='tj.TensorArray'):
        tj.function(appends).trace(X)

    def returns_in_loop(x):
        for v in x:
            if v > 0.0:
                return v
        return x[0]
    with pytest.raises(errors.UnimplementedError, match='return inside a tensor loop.*break'):
        tj.function(returns_in_loop).trace(X)
    assert returns_in_loop(tj.constant(X)).numpy() == X[0]   # eagerly: Python's loop

    def changes_dtype(x):
        i = 0
        while tj.reduce_sum(x) > 0.0:
            x = x - 1.0
            i = i + 0.5
        return i
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"'i' is int32\[\] before the tensor loop but float32\[\] after"):
        tj.function(changes_dtype).trace(X)

    def changes_shape(x):
        if tj.reduce_sum(x) > 0.0:
            y = x
        else:
            y = x[0]
        return y
    line = inspect.getsourcelines(changes_shape)[1] + 1
    with pytest.raises(errors.InvalidArgumentError,
                       match=rf"'y' is float32\[\] in the else branch but float32\[3\] .*"
                             rf"test_autograph.py:{line}\)"):
        tj.function(changes_shape).trace(X)


def test_autograph_false_and_jit_keep_python_semantics():
    for f in (tj.function(_if_elif_else, autograph=False), tj.jit(_if_elif_else)):
        with pytest.raises(errors.ConcretizationError):
            f.trace(X)


def test_error_points_at_the_users_original_line():
    def bad(x):
        if tj.reduce_sum(x) > 0.0:
            y = tj.reshape(x, [7])   # 3 values: a shape error
        else:
            y = x
        return y
    line = inspect.getsourcelines(bad)[1] + 2
    with pytest.raises(errors.TracejitError) as info:
        tj.function(bad).trace(X)
    assert f'{__file__}:{line}' in str(info.value)
    assert any(t.lineno + 1 == line and str(t.path) == __file__
               for t in info.traceback), 'the traceback shows the original line'


# ------------------------------------------------------------------------- policy

def _helper(x):
    if tj.reduce_sum(x) > 0.0:
        return x + 10.0
    return x - 10.0


@tj.autograph.experimental.do_not_convert
def _not_converted(x):
    if tj.reduce_sum(x) > 0.0:
        return x
    return -x


class _Scaler:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x):
        return self.apply(x)

    def apply(self, x, offset=1.0):
        if tj.reduce_sum(x) > 0.0:
            x = x * self.scale
        return x + offset


def test_recursive_conversion_methods_closures_defaults():
    scale = 3.0

    def closure(x):
        return _helper(x) * scale + _Scaler(2.0)(x)
    _check(closure, (X,), (-X,))
    with pytest.raises(errors.ConcretizationError):
        tj.function(lambda x: _not_converted(x)).trace(X)
    assert conversion.convert(np.mean) is np.mean
    assert conversion.convert(tj.reduce_sum) is tj.reduce_sum
    assert conversion.convert(_helper) is conversion.convert(_helper)   # cached


def test_to_code():
    code = tj.autograph.to_code(_break_continue)
    assert 'ag__.for_stmt' in code and 'ag__.if_stmt' in code
    assert not re.search(r'\b(break|continue)\b', code), code
    compile(code, '<to_code>', 'exec')
    assert tj.autograph.to_graph(_helper)(tj.constant(X)).shape == (3,)


def test_unavailable_source_runs_unconverted_with_a_warning():
    namespace = {'tj': tj}
    exec('def made(x):\n    return x * 2.0\n', namespace)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        _check(namespace['made'], (X,))
    assert any('could not convert' in str(w.message) for w in seen)


# ------------------------------------------------------------------------- Keras

class _Gated(tj.keras.Model):
    """A subclassed model whose call branches on a tensor."""

    def __init__(self):
        super().__init__()
        self.dense = tj.keras.layers.Dense(1)

    def call(self, x):
        y = self.dense(x)
        if tj.reduce_mean(y) > 0.0:
            y = y * 2.0
        else:
            y = tj.tanh(y)
        return y


class _Shifted(_Gated):
    """Its call uses zero-argument super() and branches again."""

    def call(self, x):
        y = super().call(x)
        return y + 1.0 if tj.reduce_sum(y) < 0.0 else y


def _fit(run_eagerly, x, y):
    tj.random.set_seed(3)
    model = _Gated()
    model.compile(optimizer=tj.keras.optimizers.SGD(0.05), loss='mse', run_eagerly=run_eagerly)
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return history.history['loss'], model.get_weights()


@pytest.mark.parametrize('model_class', [_Gated, _Shifted])
def test_keras_layer_call_is_converted_unless_autograph_is_off(model_class):
    model = model_class()
    x = np.stack([X, -X])

    def predict(x):
        return model(x)
    want = model(tj.constant(x)).numpy()   # eagerly: Python's if on a concrete value
    np.testing.assert_allclose(_traced(predict, x), want, rtol=1e-6)
    with pytest.raises(errors.ConcretizationError):
        tj.function(predict, autograph=False).trace(x)


@pytest.mark.compiled
def test_keras_model_with_a_tensor_if_in_call_fits_as_eagerly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = np.concatenate([np.ones((4, 1)), -np.ones((4, 1))]).astype(np.float32)
    x[4:] -= 2.0   # the second batch takes the other branch
    want_loss, want_weights = _fit(True, x, y)
    got_loss, got_weights = _fit(False, x, y)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for got, want in zip(got_weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.compiled
def test_compiled_tensor_loop_takes_a_new_trip_count_without_retracing():
    f = tj.function(_for_range)
    for n in (3, 5, 0):
        np.testing.assert_allclose(f(X, np.array(n, np.int32)), _for_range(X, n), rtol=1e-6)
    assert f.experimental_get_tracing_count() == 1

"""The compiler: fusion outcomes, shape-generic kernels, caches, state semantics, debugging."""
import dataclasses
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
from tracejit.backend import fusion, codegen

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')


def linear_step():
    W, b = tj.Variable(5.0), tj.Variable(0.0)

    @tj.function
    def step(x, y, lr):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(W * x + b - y))
        dW, db = tape.gradient(loss, [W, b])
        W.assign_sub(lr * dW)
        b.assign_sub(lr * db)
        return loss
    return step, W, b


def linear_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    return x, (3 * x + 2 + 0.1 * rng.standard_normal(n)).astype(np.float32)


def numpy_linear(x, y, W, b, lr, steps):
    x, y = x.astype(np.float64), y.astype(np.float64)
    for _ in range(steps):
        err = W * x + b - y
        W, b = W - lr * np.mean(2 * err * x), b - lr * np.mean(2 * err)
    return W, b


def elementwise_step(n):
    a = tj.Variable(np.ones(n, np.float32))
    b = tj.Variable(np.zeros(n, np.float32))

    @tj.function
    def step(x, y, lr):
        with tj.GradientTape() as tape:
            z = a * x + b
            loss = tj.reduce_mean(tj.nn.softplus(-y * z) + 0.1 * tj.square(tj.tanh(z))) \
                + 0.01 * tj.reduce_mean(a * a + b * b)
        ga, gb = tape.gradient(loss, [a, b])
        a.assign_sub(lr * ga)
        b.assign_sub(lr * gb)
        return loss
    return step, a, b


def test_linear_step_is_one_loop_and_matches_numpy():
    step, W, b = linear_step()
    x, y = linear_data()
    plan = step.lower(x, y, 0.1).plan
    assert len(plan.loops()) == 1
    assert {g.kind for g in plan.groups} <= {'loop', 'scalar'}  # no library call, no copies
    for _ in range(5):
        step(x, y, 0.1)
    W_ref, b_ref = numpy_linear(x, y, 5.0, 0.0, 0.1, 5)
    np.testing.assert_allclose([W.numpy(), b.numpy()], [W_ref, b_ref], rtol=1e-5)


def test_views_of_a_variable_read_before_its_update_keep_the_old_value():
    """reshape and a leading-axis slice of a Variable are views of its buffer in the kernel:
    results read before the assignment hold the old value, as in TensorFlow, whether the
    update is written in place or copied in at the end."""
    w0 = np.arange(6.0).reshape(2, 3)
    v, u = tj.Variable(w0), tj.Variable(w0)

    @tj.function
    def step():
        flat, row, cols = tj.reshape(v, (6,)), v[0], tj.transpose(u)
        v.assign(v * 2.0 + 1.0)
        u.assign(tj.transpose(cols) + 1.0)
        return flat, row, cols

    flat, row, cols = step()
    np.testing.assert_array_equal(np.asarray(flat), w0.ravel())
    np.testing.assert_array_equal(np.asarray(row), w0[0])
    np.testing.assert_array_equal(np.asarray(cols), w0.T)
    np.testing.assert_array_equal(v.numpy(), w0 * 2.0 + 1.0)
    np.testing.assert_array_equal(u.numpy(), w0 + 1.0)


@pytest.mark.parametrize('n', [64, codegen.PARALLEL_MIN + 1000])
def test_elementwise_loss_gradient_and_update_share_one_pass(n):
    step, a, b = elementwise_step(n)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    lowered = step.lower(x, y, 0.1)
    assert len(lowered.plan.loops()) == 1
    assert lowered.source.count('np.empty') == 0, 'no intermediate arrays'
    assert 'copy_into' not in lowered.source, 'updates written in place, not copied afterwards'
    assert ('numba.prange' in lowered.source) == (n >= codegen.PARALLEL_MIN)
    with tj.config.disabled_jit():
        a2, b2 = tj.Variable(a.numpy()), tj.Variable(b.numpy())
    eager_loss = None
    with tj.GradientTape() as tape:
        z = a2 * x + b2
        eager_loss = tj.reduce_mean(tj.nn.softplus(-y * z) + 0.1 * tj.square(tj.tanh(z))) \
            + 0.01 * tj.reduce_mean(a2 * a2 + b2 * b2)
    ga, gb = tape.gradient(eager_loss, [a2, b2])
    loss = step(x, y, 0.1)
    np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), a2.numpy() - 0.1 * ga.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.numpy(), b2.numpy() - 0.1 * gb.numpy(), rtol=1e-6, atol=1e-7)


def mlp_step(rng, n_in=8, n_hidden=16, n_out=4):
    W1 = tj.Variable(rng.standard_normal((n_in, n_hidden)).astype(np.float32) * 0.3)
    b1 = tj.Variable(np.zeros(n_hidden, np.float32))
    W2 = tj.Variable(rng.standard_normal((n_hidden, n_out)).astype(np.float32) * 0.3)
    b2 = tj.Variable(np.zeros(n_out, np.float32))
    params = [W1, b1, W2, b2]

    def step(x, y, lr):
        with tj.GradientTape() as tape:
            h = tj.nn.relu(tj.matmul(x, W1) + b1)
            logits = tj.matmul(h, W2) + b2
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        for p, g in zip(params, tape.gradient(loss, params)):
            p.assign_sub(lr * g)
        return loss
    return step, params


def test_mlp_step_compiled_matches_eager_and_fuses_epilogues():
    rng = np.random.default_rng(2)
    step, params = mlp_step(rng)
    x = rng.standard_normal((32, 8)).astype(np.float32)
    y = rng.integers(0, 4, 32).astype(np.int32)
    start = [p.numpy() for p in params]
    eager_losses = [float(step(x, y, 0.1)) for _ in range(3)]
    eager_params = [p.numpy() for p in params]
    for p, s in zip(params, start):
        p.assign(s)
    compiled = tj.function(step)
    losses = [float(compiled(x, y, 0.1)) for _ in range(3)]
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for p, e in zip(params, eager_params):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-5, atol=1e-6)
    plan = compiled.lower(x, y, 0.1).plan
    kinds = [g.kind for g in plan.groups]
    assert kinds.count('call') >= 4  # the forward and backward matmuls go to BLAS
    products = [g.members[0] for g in plan.groups
                if g.kind == 'call' and g.members[0].prim.name.startswith('matmul')]
    assert len(products) == 5  # 2 forward, 3 backward (no gradient for the input x)
    # the bias adds and the relu run in the forward products, relu's gradient in the product
    # making the hidden layer's cotangent
    assert [n.params['epilogue'] for n in products if n.prim.name == 'matmul_epilogue'] == [
        'bias_relu', 'bias', 'relu_mask']
    assert 'relu' not in [n.prim.name for n in plan.graph.nodes]
    assert 'transpose' not in [n.prim.name for n in plan.graph.nodes]


def test_new_batch_size_retraces_without_compiling():
    step, W, b = linear_step()
    x, y = linear_data(1000)
    step(x, y, 0.1)
    compiles = step.cache_info()['compiles'] + step.cache_info()['disk_hits']
    step(x[:37], y[:37], 0.1)
    info = step.cache_info()
    assert info['traces'] == 2
    assert info['compiles'] + info['disk_hits'] == compiles
    assert step.lower(x, y, 0.1).source == step.lower(x[:37], y[:37], 0.1).source


def test_new_learning_rate_does_not_retrace():
    step, _, _ = linear_step()
    x, y = linear_data(100)
    for lr in (0.1, 0.05, 0.01):
        step(x, y, lr)
    assert step.cache_info()['traces'] == 1


def test_retrace_is_logged_with_reason(caplog):
    step, _, _ = linear_step()
    x, y = linear_data(100)
    with caplog.at_level(logging.INFO, logger='tracejit'):
        step(x, y, 0.1)
        step(x[:10], y[:10], 0.1)
    messages = [r.getMessage() for r in caplog.records if r.name == 'tracejit']
    assert any('first time' in m for m in messages)
    assert any('retracing' in m and "'x'" in m and '(10,)' in m for m in messages)


def test_read_after_assign_sees_new_value_and_old_reads_keep_old():
    v = tj.Variable(np.arange(4, dtype=np.float32))

    @tj.function
    def f():
        old = v.value()
        v.assign(old * 2)
        return old + 1, v.value() + 1

    old, new = f()
    np.testing.assert_array_equal(old.numpy(), np.arange(4) + 1)
    np.testing.assert_array_equal(new.numpy(), np.arange(4) * 2 + 1)
    np.testing.assert_array_equal(v.numpy(), np.arange(4) * 2)


def test_swap_through_assign_uses_values_from_before():
    a = tj.Variable(np.ones(3, np.float32))
    b = tj.Variable(np.full(3, 2.0, np.float32))

    @tj.function
    def swap():
        old_a = a.value()
        a.assign(b)
        b.assign(old_a)

    swap()
    np.testing.assert_array_equal(a.numpy(), [2, 2, 2])
    np.testing.assert_array_equal(b.numpy(), [1, 1, 1])


def test_failed_trace_leaves_variables_unchanged():
    v = tj.Variable(np.ones(3, np.float32))

    @tj.function
    def f(x):
        v.assign(v * 3)
        return v + x  # shape error for a (4,) input, after the assign

    with pytest.raises(tj.errors.ShapeError, match='test_compiler.py'):
        f(np.ones(4, np.float32))
    np.testing.assert_array_equal(v.numpy(), np.ones(3))


def test_returned_tensor_does_not_alias_variable_buffer():
    v = tj.Variable(np.zeros(3, np.float32))

    @tj.function
    def f():
        v.assign_add(tf_ones())
        return v.value()

    def tf_ones():
        return tj.ones([3])

    first = f()
    f()
    np.testing.assert_array_equal(first.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(v.numpy(), [2, 2, 2])


def test_nan_and_inf_propagate_like_eager():
    x = np.array([1.0, np.nan, -np.inf, np.inf, -2.0, 0.0], np.float32)

    def f(x):
        return (tj.reduce_max(x), tj.reduce_min(x), tj.nn.relu(x), tj.exp(x), tj.log(x),
                tj.reduce_sum(x), tj.nn.softplus(x), tj.tanh(x))

    eager = f(tj.constant(x))
    compiled = tj.function(f)(x)
    for e, c in zip(eager, compiled):
        np.testing.assert_array_equal(np.isnan(c.numpy()), np.isnan(e.numpy()))
        np.testing.assert_allclose(c.numpy(), e.numpy(), rtol=1e-6)


def test_float32_reduction_is_accurate_over_many_elements():
    rng = np.random.default_rng(3)
    x = (rng.random(10**7) + 0.5).astype(np.float32)
    total = tj.function(lambda x: tj.reduce_mean(x))(x)
    reference = np.mean(x.astype(np.float64))
    assert abs(float(total) - reference) / reference < 1e-6


def test_debug_nans_names_op_and_line_and_restores_state():
    v = tj.Variable(np.ones(3, np.float32))

    @tj.function(debug_nans=True)
    def f(x):
        v.assign(v + tj.log(x))
        return v.value()

    f(np.ones(3, np.float32))
    with pytest.raises(FloatingPointError, match=r'log .*test_compiler.py'):
        f(np.array([1.0, -1.0, 1.0], np.float32))
    np.testing.assert_array_equal(v.numpy(), np.ones(3))


def test_debug_nans_names_a_bad_argument_by_its_parameter():
    offset = tj.Variable(np.zeros(2, np.float32))   # a leaf that is state, not an input

    @tj.function(debug_nans=True)
    def f(scale, params):
        return params['w'] * scale + params['b'] + params['offset']

    good = {'b': np.zeros(2, np.float32), 'offset': offset, 'w': np.ones(2, np.float32)}
    np.testing.assert_array_equal(f(np.float32(2), good).numpy(), [2, 2])
    with pytest.raises(FloatingPointError, match=r"argument 'params \(leaf 2 of 3\)' \(f32\[2\]"):
        f(np.float32(2), dict(good, w=np.array([1, np.nan], np.float32)))
    with pytest.raises(FloatingPointError, match=r"argument 'scale' "):
        f(np.float32(np.inf), good)


def test_debug_env_prints_passes_and_source(monkeypatch, capsys):
    monkeypatch.setenv('TRACEJIT_DEBUG', '2')
    tj.function(lambda x: tj.exp(x) * 2.0)(np.ones(3, np.float32))
    err = capsys.readouterr().err
    assert '--- after dce ---' in err and 'def kernel(' in err


def test_graph_to_dot_lists_every_op():
    graph = tj.function(lambda x: tj.exp(x) + x).trace(np.ones(3, np.float32)).graph
    dot = tj.graph_to_dot(graph)
    assert dot.startswith('digraph') and 'exp' in dot and 'add' in dot


def test_disable_jit_runs_python_eagerly():
    calls = []

    @tj.function
    def f(x):
        calls.append(type(x))
        return x * 2

    with tj.config.disabled_jit():
        out = f(tj.constant([1.0]))
    assert calls == [tj.Tensor] and out.numpy()[0] == 2


def test_fusion_refusal_is_recorded_with_reason():
    def f(x):
        m = tj.reduce_max(x)
        return tj.exp(x - m)  # needs the finished max: cannot share its loop
    graph = tj.function(f).trace(np.ones(8, np.float32)).graph
    plan = fusion.partition(graph)
    assert len(plan.loops()) == 2
    assert any('reduction' in reason for _, _, reason in plan.refusals)


def test_fusion_refusals_are_printed_at_debug_level_2(monkeypatch, capsys):
    monkeypatch.setenv('TRACEJIT_DEBUG', '2')
    f = tj.function(lambda x: tj.exp(x - tj.reduce_max(x)))
    np.testing.assert_allclose(f(np.arange(8, dtype=np.float32)).numpy(),
                               np.exp(np.arange(8) - 7.0), rtol=1e-6)
    err = capsys.readouterr().err
    assert '--- fusion refusals ---' in err
    assert 'exp' in err and 'reads a reduction computed by this loop' in err


def test_a_loop_reading_its_index_and_a_broadcast_operand_is_not_flattened():
    """one_hot(argmax(x)) compares a (1,) operand with an iota of shape (n,): the loop must
    index the operand, not view it flat (a flat view of 1 element as n failed in the kernel)."""
    def f(x):
        hot = tj.one_hot(tj.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)
        return tj.squeeze(tj.reshape(hot, (1, 2)), 0)
    for x in (np.array([0.3, 0.7]), np.array([0.9, -1.0])):
        want = (np.arange(2) == np.argmax(x)).astype(np.float64)
        np.testing.assert_array_equal(tj.function(f)(x).numpy(), want)


def test_transcendental_of_a_whole_array_runs_flat_ahead_of_a_broadcasting_loop():
    """exp32 inside a (rows, 3) loop nest would run scalar; it gets a flat loop of its own."""
    f = tj.function(lambda x, scale, y: tj.exp(x) * scale + tj.tanh(y) * scale)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 5, 3)).astype(np.float32)
    scale = rng.standard_normal((5, 1)).astype(np.float32)
    source = f.lower(x, scale, y).source
    flat_exp = re.search(r'for i in range\(p\d+\):\n'
                         r'\s+w\d+\[i\] = np.float32\(exp32\(w\d+\[i\]\)\)', source)
    assert flat_exp and source.count('tanh32(') == 1 and 'exp32(p' not in source, source
    expected = np.exp(x.astype(np.float64)) * scale + np.tanh(y.astype(np.float64)) * scale
    np.testing.assert_allclose(f(x, scale, y).numpy(), expected, rtol=1e-6, atol=1e-7)
    # float64 math calls libm either way: nothing to hoist
    assert 'for i in range' not in f.lower(*(a.astype(np.float64) for a in (x, scale, y))).source


def test_tensor_views_are_passed_as_contiguous_arrays():
    """Eager results may be transposed or read-only views; kernels view arguments flat."""
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    frozen = x.copy()
    frozen.flags.writeable = False
    f = tj.function(lambda a, s: tj.exp(a) * s)
    scale = np.array([[1.0], [2.0]], np.float32)
    want = np.exp(x.T.astype(np.float64)) * scale
    np.testing.assert_allclose(f(tj.transpose(tj.constant(x)), scale).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(f(tj.transpose(tj.constant(frozen)), scale).numpy(), want,
                               rtol=1e-6)
    assert len(next(iter(f._cache.values())).executable.fn.signatures) == 1


def test_read_only_arguments_share_the_kernel_of_writeable_ones():
    """Numba types read-only arrays apart: passed as they are, they would compile the kernel
    again (seconds, on the caller's thread)."""
    step = tj.function(lambda x: tj.exp(x) * 2.0)
    x = np.linspace(0, 1, 5, dtype=np.float32)
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_allclose(step(x).numpy(), 2 * np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(step(frozen).numpy(), 2 * np.exp(x), rtol=1e-6)
    kernel = next(iter(step._cache.values())).executable
    assert len(kernel.fn.signatures) == 1


@pytest.mark.parametrize('name', ['linear_step', 'softmax_rows'])
def test_generated_source_snapshot(name):
    if name == 'linear_step':
        step, _, _ = linear_step()
        source = step.lower(*linear_data(16), 0.1).source
    else:
        source = tj.function(lambda x: tj.nn.softmax(x)).lower(np.ones((4, 3), np.float32)).source
    path = os.path.join(GOLDEN, f'{name}.py.txt')
    if os.environ.get('TRACEJIT_UPDATE_GOLDEN'):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, 'w') as f:
            f.write(source)
    with open(path) as f:
        assert source == f.read(), f'generated source changed; see {path}'


SCRIPT = textwrap.dedent('''
    import json, time, numpy as np, tracejit as tj
    W, b = tj.Variable(5.0), tj.Variable(0.0)
    @tj.function
    def step(x, y, lr):
        with tj.GradientTape() as t:
            loss = tj.reduce_mean(tj.square(W * x + b - y))
        dW, db = t.gradient(loss, [W, b])
        W.assign_sub(lr * dW); b.assign_sub(lr * db)
        return loss
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    loss = step(x, 3 * x + 2, 0.1)
    print(json.dumps(dict(step.cache_info(), loss=float(loss))))
''')


def _run_script(cache_dir):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_disk_cache_is_reused_by_a_new_process_and_survives_corruption(tmp_path):
    first, _ = _run_script(tmp_path)
    assert first['compiles'] == 1 and first['disk_hits'] == 0
    second, _ = _run_script(tmp_path)
    assert second['compiles'] == 0 and second['disk_hits'] == 1
    assert second['loss'] == first['loss']
    for name in os.listdir(tmp_path):
        if name.startswith('kernel_') and name.endswith('.py'):
            with open(tmp_path / name, 'w') as f:
                f.write('garbage (((')
    third, _ = _run_script(tmp_path)
    assert third['loss'] == first['loss']


def test_unwritable_cache_dir_falls_back_to_memory(tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('a file where the cache directory should be')
    result, err = _run_script(blocker / 'cache')
    assert result['loss'] > 0
    assert 'compiling in memory' in err


def test_codegen_module_has_no_size_literals():
    step, _, _ = linear_step()
    source = step.lower(*linear_data(1000), 0.1).source
    assert '1000' not in source
    assert codegen.PARALLEL_MIN > 0


def test_equal_static_objects_do_not_leave_stale_fast_entries():
    """A hashable argument compared by value is not kept alive by the cache, so its id can be
    reused by a different value; that must never select the other value's trace."""
    @dataclasses.dataclass(frozen=True)
    class Scale:
        factor: float

    @tj.function
    def scaled(x, scale):
        return x * scale.factor

    x = np.ones(2, np.float32)
    keep = Scale(1.0)
    scaled(x, keep)
    for factor in (2.0, 3.0, 4.0, 5.0):
        twin = Scale(1.0)
        scaled(x, twin)  # same trace as `keep`, found through a new object
        del twin
        other = Scale(factor)  # CPython usually reuses the freed twin's id here
        np.testing.assert_allclose(scaled(x, other).numpy(), [factor, factor])
        del other


def test_small_matrix_products_run_on_one_blas_thread():
    """Kernels' np.dot goes through scipy's OpenBLAS; small products (few multiply-adds, few
    outputs of sums not too long, or short sums at any size) drop it to one thread for their
    duration and then restore the count (left alone when it is already 1)."""
    from tracejit.backend import kernels
    get, set_ = blas_thread_functions()
    default = get()
    set_(3)
    assert get() == 3                           # the symbols are OpenBLAS's thread count
    rng = np.random.default_rng(0)
    try:
        for threads in (3, 1):
            set_(threads)
            # few multiply-adds; a sum of 1024 terms into few outputs; sums of 16 terms (10 of
            # 20000 x 10 outputs: BLAS, not gemm); neither, or few outputs of sums too long, or
            # many of 17 terms (two threads)
            for (m, k, n), small in [((128, 64, 128), True), ((64, 1024, 256), True),
                                     ((20000, 16, 10), True), ((300, 200, 300), False),
                                     ((16, 8192, 64), False), ((20000, 17, 128), False)]:
                a = rng.standard_normal((m, k)).astype(np.float32)
                b = rng.standard_normal((k, n)).astype(np.float32)
                assert kernels._small_gemm(a, b) == small
                want = a.astype(np.float64) @ b
                np.testing.assert_allclose(kernels.dot(a, b), want, rtol=1e-4, atol=1e-4)
                out = np.empty((m, n), np.float32)
                kernels.dot_into(a, b, out)
                np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
                assert get() == threads         # the caller's count was restored
    finally:
        set_(default)


def blas_thread_functions():
    """The kernels' BLAS thread-count getter and setter, callable from Python."""
    import numba
    from tracejit.backend.kernels import _blas_get_threads, _blas_set_threads

    @numba.njit
    def get():
        return _blas_get_threads()

    @numba.njit
    def set_(n):
        _blas_set_threads(n)
    return get, set_


HELPER_CACHE_SCRIPT = '''
import numpy as np
from tracejit.backend import kernels as K
K.dot_into(np.ones((8, 3), np.float32), np.ones((3, 32), np.float32), np.empty((8, 32), np.float32))
print(sum(K.dot_into.stats.cache_hits.values()), sum(K.dot_into.stats.cache_misses.values()))
'''


def test_a_change_to_any_helper_module_recompiles_the_cached_helpers(tmp_path):
    # K.dot_into compiles in gemm.py's tiles: Numba alone would key its disk cache on
    # kernels.py's content only and keep the old machine code after gemm.py changed
    import shutil
    package = tmp_path / 'tracejit'
    shutil.copytree(os.path.dirname(tj.__file__), package,
                    ignore=shutil.ignore_patterns('__pycache__'))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop('NUMBA_CACHE_DIR', None)

    def hits_and_misses():
        out = subprocess.run([sys.executable, '-c', HELPER_CACHE_SCRIPT], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return tuple(int(v) for v in out.stdout.split())
    assert hits_and_misses() == (0, 1)     # compiled and written
    assert hits_and_misses() == (1, 0)     # loaded
    gemm_file = package / 'backend' / 'gemm.py'
    gemm_file.write_text(gemm_file.read_text() + '\n# changed\n')
    assert hits_and_misses() == (0, 1)     # the entry's stamp no longer matches: recompiled


def test_only_the_helper_modules_share_the_stamp():
    import numba
    from tracejit.backend import compiler, helper_cache, kernels as K
    locator = K.dot_into._cache._impl.locator
    assert type(locator).__name__.startswith('Helper')
    assert locator.get_source_stamp() == compiler.helpers_hash(compiler.helper_sources())

    @numba.njit(cache=True)
    def elsewhere(x):
        return x + 1
    other = elsewhere._cache._impl.locator
    assert not type(other).__name__.startswith('Helper')
    assert isinstance(other, tuple(helper_cache._numba('CacheImpl')._locator_classes[3:]))
    assert helper_cache._PATHS >= {os.path.abspath(K.__file__)}


def test_loops_read_unit_step_slices_at_their_offsets_without_copies():
    """An LSTM cell's gates are column blocks of one product: the loop reading them indexes the
    product at each block's offset (no copy). So do a reduction over a slice, a slice broadcast
    against the loop, and a slice offset along two axes; the values equal numpy's."""
    def f(z, c, t):
        i, g, o = tj.sigmoid(z[:, :4]), tj.tanh(z[:, 4:8]), tj.sigmoid(z[:, 8:])
        cell = i * g + c
        row_sums = tj.reduce_sum(z[:, 2:6], axis=1)
        return o * tj.tanh(cell) * z[1:2, 3:7], row_sums, t[1:, 2:4, :] * 2.0
    rng = np.random.default_rng(0)
    z, c = rng.standard_normal((6, 12)), rng.standard_normal((6, 4))
    t = rng.standard_normal((3, 5, 2))
    compiled = tj.function(f)
    source = compiled.lower(z, c, t).source
    assert 'ascontiguousarray(a0[' not in source and 'ascontiguousarray(a2[' not in source
    assert re.search(r'p\d+\[w\d+, 8 \+ w\d+\]', source), source
    got = [r.numpy() for r in compiled(z, c, t)]
    sig = lambda x: 1 / (1 + np.exp(-x))   # noqa: E731
    want = [sig(z[:, 8:]) * np.tanh(sig(z[:, :4]) * np.tanh(z[:, 4:8]) + c) * z[1:2, 3:7],
            z[:, 2:6].sum(axis=1), t[1:, 2:4, :] * 2.0]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_slices_read_by_a_product_are_copied_and_one_of_a_variable_keeps_its_old_value():
    """A slice that a matmul reads, or that is an output, is a copy; a slice of a Variable
    read by a loop after the Variable's in-place update still reads the value from before."""
    v = tj.Variable(np.arange(12.0).reshape(3, 4))
    w0 = v.numpy().copy()

    @tj.function
    def step(x):
        block, left = v[:, 1:3], v[:, :2]
        v.assign(v * 2.0 + 1.0)
        return tj.exp(block) + 1.0, tj.matmul(x[:, :3], left), x[:, 1:]
    x = np.arange(8.0).reshape(2, 4)
    assert re.search(r'p\d+\[w\d+, 1 \+ w\d+\]', step.lower(x).source)   # block: not copied
    late, product, rest = (r.numpy() for r in step(x))
    np.testing.assert_allclose(late, np.exp(w0[:, 1:3]) + 1.0, rtol=1e-12)
    np.testing.assert_allclose(product, x[:, :3] @ w0[:, :2], rtol=1e-12)
    np.testing.assert_array_equal(rest, x[:, 1:])
    np.testing.assert_array_equal(v.numpy(), w0 * 2.0 + 1.0)


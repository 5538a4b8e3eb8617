"""Compiling in the background (the default outside the test suite): the first steps run on the
numpy interpreter while a thread compiles, with the same results and Variable updates as the
kernel, and the kernel takes over once it is ready."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import tracejit as tj
from tracejit import config, errors
from tracejit.backend import compile_process, compiler, runtime


@pytest.fixture
def background(monkeypatch, tmp_path):
    """Background compiling, with an empty disk cache: a kernel already on disk would load on
    the first call instead."""
    monkeypatch.setattr(config, 'compile_in_background', True)
    monkeypatch.setenv('TRACEJIT_CACHE_DIR', str(tmp_path))


def _sgd_problem():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal(16).astype(np.float32)
    return x, y


def _reference_sgd(x, y, w, lr, steps):
    """Plain numpy: loss = mean(tanh(x @ w) - y)^2, SGD on w."""
    x, y, w = x.astype(np.float64), y.astype(np.float64), w.astype(np.float64)
    losses = []
    for _ in range(steps):
        t = np.tanh(x @ w)
        r = t - y
        losses.append(np.mean(r * r))
        grad = x.T @ (2 * r / len(y) * (1 - t * t))
        w = w - lr * grad
    return np.array(losses), w


def _make_step(w, activation=tj.tanh):
    @tj.function
    def step(x, y, lr):
        with tj.GradientTape() as tape:
            r = activation(tj.matmul(x, w[:, None]))[:, 0] - y
            loss = tj.reduce_mean(r * r)
        w.assign_sub(lr * tape.gradient(loss, w))
        return loss
    return step


def test_interpreted_steps_then_kernel_match_numpy(background):
    x, y = _sgd_problem()
    w0 = np.array([0.5, -0.25, 1.0], np.float32)
    w = tj.Variable(w0)
    step = _make_step(w)
    losses = [float(step(x, y, 0.3))]
    assert step.cache_info()['interpreted_calls'] == 1     # the first call never waits
    step.block_until_compiled()
    losses += [float(step(x, y, 0.3)) for _ in range(5)]
    info = step.cache_info()
    assert info['interpreted_calls'] == 1                   # then only the kernel runs
    assert info['compiles'] + info['disk_hits'] == 1
    want_losses, want_w = _reference_sgd(x, y, w0, 0.3, 6)
    np.testing.assert_allclose(losses, want_losses, rtol=2e-5)
    np.testing.assert_allclose(w.numpy(), want_w, rtol=2e-5, atol=1e-6)


def test_a_failed_background_compile_is_raised_and_the_step_changes_nothing(background,
                                                                             monkeypatch):
    def broken_load(source, parallel):
        raise RuntimeError('no compiler today')
    monkeypatch.setattr(compiler, 'load', broken_load)
    x, y = _sgd_problem()
    w = tj.Variable(np.array([0.1, 0.2, 0.3], np.float32))
    step = _make_step(w, tj.sigmoid)    # a kernel no other test has loaded
    step(x, y, 0.1)                                         # interpreted: a correct step
    after_first = w.numpy().copy()
    with pytest.raises(errors.CompilationError, match='no compiler today'):
        step.block_until_compiled()
    with pytest.raises(errors.CompilationError, match='no compiler today'):
        step(x, y, 0.1)
    np.testing.assert_array_equal(w.numpy(), after_first)


def test_a_failed_compile_process_leaves_the_compile_to_this_process(background, monkeypatch,
                                                                   tmp_path):
    def failing_child(name, path, values):
        child = subprocess.Popen([sys.executable, '-c', 'raise SystemExit(3)'])
        child.job = str(tmp_path / 'job')   # never written: the child failed before reading
        return child
    monkeypatch.setattr(compile_process, 'start', failing_child)
    x, y = _sgd_problem()
    w0 = np.array([0.3, -0.2, 0.1], np.float32)
    w = tj.Variable(w0)
    step = _make_step(w, tj.square)    # a kernel no other test has loaded
    losses = [float(step(x, y, 0.25)) for _ in range(2)]
    step.block_until_compiled()
    losses += [float(step(x, y, 0.25)) for _ in range(2)]
    info = step.cache_info()
    assert info['compiles'] == 1 and info['interpreted_calls'] <= 2
    x64, y64, w64 = x.astype(np.float64), y.astype(np.float64), w0.astype(np.float64)
    for loss in losses:   # square: z^2, derivative 2z
        z = x64 @ w64
        r = z * z - y64
        assert loss == pytest.approx(np.mean(r * r), rel=1e-5)
        w64 = w64 - 0.25 * x64.T @ (2 * r / len(y64) * 2 * z)
    np.testing.assert_allclose(w.numpy(), w64, rtol=1e-5)


def _strided(shape, dtype):
    return np.zeros(tuple(3 * n for n in shape), dtype)[(slice(None, None, 3),) * len(shape)]


def _read_only(array):
    array.flags.writeable = False
    return array


@pytest.mark.parametrize('value', [
    np.zeros(5, np.float32), np.zeros((4, 3), np.float64), np.zeros((2, 3, 4), np.int32),
    np.zeros((), np.float32), np.zeros(0, np.int64), np.zeros((1, 7), np.float32),
    np.zeros((3, 5), np.float32, order='F'), np.zeros((3, 5), np.float32).T[:, ::-1],
    _strided((4,), np.float32), _strided((2, 5), np.int64), np.zeros((6, 4), np.uint8)[:, 1:3],
    _read_only(np.zeros((2, 2), np.float32)), _read_only(_strided((3,), np.float64)),
    np.float32(1.5), np.int64(3), np.bool_(True), 2.5, 7, True,
    (), (1, 2, 3), (0.5, 1.5), (np.zeros(3, np.float32), (4, np.int32(2))),
], ids=repr)
def test_compile_job_templates_have_the_numba_types_of_the_values(value):
    """The compile process types small stand-ins, not the data: each must give Numba the
    type the call itself will have (dtype, dimensions, layout, writeability)."""
    import numba
    template, = compile_process.templates((value,))
    assert numba.typeof(template) == numba.typeof(value)
    assert getattr(template, 'size', 0) <= 3 ** max(getattr(value, 'ndim', 0), 1)


def test_values_without_a_template_compile_in_this_process():
    assert compile_process.templates((np.zeros(3), object())) is None
    assert compile_process.templates(((1, [2]),)) is None
    unaligned = np.frombuffer(bytearray(17), np.float32, 4, offset=1)
    assert not unaligned.flags.aligned and compile_process.templates((unaligned,)) is None
    assert compile_process.start('name', 'path', (object(),)) is None


def test_a_compile_process_waits_while_another_holds_its_entry(tmp_path):
    """Two compile processes for one entry (a script run again before the last run's child is
    done): the second takes the entry only once the first has let it go."""
    path = str(tmp_path / 'kernel_x.py')
    waiter = textwrap.dedent(f'''
        import time
        from tracejit.backend import compile_process
        print('started', flush=True)
        with compile_process.entry_lock({path!r}):
            print(time.time(), flush=True)
    ''')
    with compile_process.entry_lock(path):
        child = subprocess.Popen([sys.executable, '-c', waiter], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == 'started\n'
        time.sleep(0.5)
        released = time.time()
    acquired = float(child.stdout.readline())
    assert child.wait(timeout=60) == 0
    assert acquired >= released


def test_a_kernel_already_in_memory_runs_from_the_first_call(background):
    x, y = _sgd_problem()
    first = _make_step(tj.Variable(np.zeros(3, np.float32)))
    first(x, y, 0.1)
    first.block_until_compiled()
    second = _make_step(tj.Variable(np.zeros(3, np.float32)))   # same source, same kernel
    second(x, y, 0.1)
    assert second.cache_info()['interpreted_calls'] == 0


def test_interpreted_and_compiled_steps_report_a_bad_computed_index_alike(background):
    w = tj.Variable(np.zeros(3, np.float32))
    table = np.arange(4, dtype=np.float32)

    @tj.function
    def step(i):
        w.assign_add(tj.ones([3]))
        return tj.gather(table, i * 3 + 1)   # a kernel no other test has loaded

    message = 'gather: an index computed inside the compiled step is out of range'
    with pytest.raises(IndexError, match=message):
        step(np.array([1], np.int32))
    assert step.cache_info()['interpreted_calls'] == 1
    step.block_until_compiled()
    with pytest.raises(IndexError, match=message):
        step(np.array([1], np.int32))
    assert step.cache_info()['interpreted_calls'] == 1
    np.testing.assert_array_equal(w.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(step(np.array([0], np.int32)).numpy(), [1.0])


PROCESS = textwrap.dedent('''
    import json, sys, numpy as np, tracejit as tj
    v = tj.Variable(np.full(6, 2.0, np.float32))
    @tj.function
    def step(x):
        with tj.GradientTape() as tape:
            loss = tj.reduce_sum(tj.nn.softplus(v * x) * 0.375)
        v.assign_sub(0.125 * tape.gradient(loss, v))
        return loss
    loss = float(step(np.linspace(-2, 3, 6, dtype=np.float32)))
    result = dict(step.cache_info(), loss=loss, v=v.numpy().tolist(),
                  numba_loaded='numba' in sys.modules)
    if sys.argv[1] == 'wait':
        result['after'] = step.block_until_compiled().cache_info()
    print(json.dumps(result))
''')


def _run_process(cache_dir, mode):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), TRACEJIT_BACKGROUND_COMPILE='1')
    out = subprocess.run([sys.executable, '-c', PROCESS, mode], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_for_entry(cache_dir, timeout=300):
    """Until the compile process a run left behind has written the kernel's cache entry."""
    deadline = time.monotonic() + timeout
    pycache = cache_dir / '__pycache__'
    while time.monotonic() < deadline:
        if pycache.is_dir() and any(n.endswith('.nbi') for n in os.listdir(pycache)):
            return
        time.sleep(0.1)
    raise AssertionError('no compiled kernel in the disk cache')


def test_a_process_exits_after_its_kernel_is_cached(tmp_path):
    """The first process interprets its only step and exits without loading Numba; the
    process compiling its kernel finishes the disk-cache entry, so the next process loads the
    kernel instead of compiling."""
    first = _run_process(tmp_path, 'exit')
    assert first['interpreted_calls'] == 1 and not first['numba_loaded']
    _wait_for_entry(tmp_path)
    second = _run_process(tmp_path, 'wait')
    x = np.linspace(-2, 3, 6)
    z = 2.0 * x
    want_v = 2.0 - 0.125 * 0.375 * x / (1 + np.exp(-z))
    for result in (first, second):
        assert result['loss'] == pytest.approx(0.375 * np.log1p(np.exp(z)).sum(), rel=1e-6)
        np.testing.assert_allclose(result['v'], want_v, rtol=1e-6)
    assert (second['after']['compiles'], second['after']['disk_hits']) == (0, 1)


def test_a_warm_cache_runs_the_kernel_from_the_first_call(tmp_path):
    """A kernel compiled on disk loads on the caller's thread: interpreted steps would hold the
    GIL and slow a loading thread down (a warm 5000-step script ran every step interpreted)."""
    first = _run_process(tmp_path, 'exit')
    _wait_for_entry(tmp_path)
    second = _run_process(tmp_path, 'exit')
    assert first['interpreted_calls'] == 1 and first['compiles'] == 0
    assert second['interpreted_calls'] == 0
    assert (second['compiles'], second['disk_hits']) == (0, 1)
    assert second['loss'] == pytest.approx(first['loss'], rel=1e-6)   # interpreted vs native
    np.testing.assert_allclose(second['v'], first['v'], rtol=1e-6)


def test_a_retrace_never_waits_for_a_kernel_still_compiling(background, monkeypatch):
    """A new batch size while the first kernel is still compiling runs interpreted too (the
    shape-generic kernel is loaded but not compiled yet: it must not be called)."""
    release = threading.Event()
    real_compile = runtime.Kernel.compile

    def slow_compile(kernel, args):
        release.wait(30)
        real_compile(kernel, args)
    monkeypatch.setattr(runtime.Kernel, 'compile', slow_compile)
    w = tj.Variable(np.array([0.3, -0.1, 0.2], np.float32))
    step = _make_step(w, tj.nn.softplus)          # a kernel no other test has loaded
    x, y = _sgd_problem()
    step(x, y, 0.1)
    time.sleep(0.5)                               # let the thread load the kernel's module
    start = time.perf_counter()
    step(x[:5], y[:5], 0.1)                       # retrace: same source, new sizes
    elapsed = time.perf_counter() - start
    release.set()
    step.block_until_compiled()
    assert elapsed < 5
    assert step.cache_info()['interpreted_calls'] == 2
    eager_w = tj.Variable(np.array([0.3, -0.1, 0.2], np.float32))
    eager_step = _make_step(eager_w, tj.nn.softplus)
    with tj.config.disabled_jit():
        eager_step(x, y, 0.1)
        eager_step(x[:5], y[:5], 0.1)
    np.testing.assert_allclose(w.numpy(), eager_w.numpy(), rtol=1e-6)


def test_interpreted_swap_of_two_variables_matches_the_kernel(background):
    """An update that is another Variable's old value: the interpreter copies every update
    before writing any, as the kernel does."""
    a = tj.Variable(np.array([1.0, 2.0], np.float32))
    b = tj.Variable(np.array([10.0, 20.0], np.float32))

    @tj.function
    def swap(scale):
        old_a, old_b = a.read_value(), b.read_value()
        a.assign(old_b * scale)
        b.assign(old_a)
        return tj.reduce_sum(old_a)

    assert float(swap(1.0)) == 3.0
    assert swap.cache_info()['interpreted_calls'] == 1
    np.testing.assert_array_equal(a.numpy(), [10, 20])
    np.testing.assert_array_equal(b.numpy(), [1, 2])
    swap.block_until_compiled()
    assert float(swap(1.0)) == 30.0
    np.testing.assert_array_equal(a.numpy(), [1, 2])
    np.testing.assert_array_equal(b.numpy(), [10, 20])


def test_a_failed_compile_raises_a_fresh_error_on_every_call(background, monkeypatch):
    import traceback

    def broken_load(source, parallel):
        raise RuntimeError('no compiler today')
    monkeypatch.setattr(compiler, 'load', broken_load)
    monkeypatch.setattr(compile_process, 'start', lambda name, path, values: None)
    x, y = _sgd_problem()
    step = _make_step(tj.Variable(np.zeros(3, np.float32)), tj.nn.relu)
    step(x, y, 0.1)
    with pytest.raises(errors.CompilationError):
        step.block_until_compiled()
    depths = []
    for _ in range(3):
        with pytest.raises(errors.CompilationError) as info:
            step(x, y, 0.1)
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
    assert depths[0] == depths[1] == depths[2]


FORK = textwrap.dedent('''
    import os, numpy as np, tracejit as tj
    w = tj.Variable(np.ones(3, np.float32))
    @tj.function
    def f(x):
        w.assign_add(tj.sin(x) * 0.125)
        return tj.reduce_sum(w)
    f(np.ones(3, np.float32))            # starts compiling in a thread
    pid = os.fork()                       # waits for that thread first
    if pid == 0:
        g = tj.function(lambda x: tj.reduce_sum(tj.cos(x) * 0.75))
        value = float(g(np.ones(3, np.float32)))
        g.block_until_compiled()
        os._exit(0 if abs(value - 3 * 0.75 * np.cos(1.0)) < 1e-5 else 3)
    _, status = os.waitpid(pid, 0)
    f.block_until_compiled()
    print(os.waitstatus_to_exitcode(status))
''')


def test_a_process_forked_while_compiling_can_compile_in_the_child(tmp_path):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_BACKGROUND_COMPILE='1')
    out = subprocess.run([sys.executable, '-c', FORK], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '0'

"""The specialised call of a cached entry (tracejit/fast_call.py): a call like the last one skips
the cache key, and every change the key would see still retraces or takes the general path.

`served_fast` makes the general path fail, so a call under it proves the specialised call ran;
every value is checked against numpy or an analytic answer."""
import contextlib
import inspect
import os
import signal
import threading

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors, fast_call, tracing

function_module = __import__('tracejit.function', fromlist=['_fast_key'])


@contextlib.contextmanager
def served_fast(monkeypatch):
    """Calls inside the block must be answered by the specialised call."""
    def general(*_):
        raise AssertionError('the call took the general path')
    with monkeypatch.context() as patch:
        patch.setattr(function_module, '_fast_key', general)
        yield


def linreg_step(lr):
    w, b = tj.Variable(np.float32(5.0)), tj.Variable(np.float32(0.0))

    @tj.function
    def step(x, y):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(w * x + b - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(lr * dw)
        b.assign_sub(lr * db)
        return loss
    return step, w, b


def test_a_training_loop_runs_the_specialised_call_and_matches_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    y = (3 * x + 2 + rng.standard_normal(1000)).astype(np.float32)
    step, w, b = linreg_step(0.1)
    ref_w, ref_b = 5.0, 0.0
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    for i in range(12):
        err = ref_w * xd + ref_b - yd
        want = np.mean(err ** 2)
        ref_w, ref_b = ref_w - 0.1 * np.mean(2 * err * xd), ref_b - 0.1 * np.mean(2 * err)
        with served_fast(monkeypatch) if i >= 2 else contextlib.nullcontext():
            loss = step(x, y)
        assert isinstance(loss, tj.Tensor) and loss.shape == () and loss.dtype == tj.float32
        np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    np.testing.assert_allclose([w.numpy(), b.numpy()], [ref_w, ref_b], rtol=1e-5)
    info = step.cache_info()
    assert (info['traces'], info['calls'], info['memory_hits']) == (1, 12, 11)


def test_a_new_dtype_shape_or_rank_retraces():
    f = tj.function(lambda x: tj.reduce_sum(x * x, axis=-1))
    x = np.arange(5, dtype=np.float32)
    for _ in range(3):
        np.testing.assert_allclose(f(x).numpy(), 30.0)
    cases = [x.astype(np.float64), np.arange(6, dtype=np.float32),
             np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(5, dtype=np.int32), x]
    for case in cases:
        got = f(case)
        np.testing.assert_array_equal(got.numpy(), np.sum(case * case, axis=-1))
        assert got.dtype.name == case.dtype.name
    assert f.cache_info()['entries'] == 5


def test_two_alternating_signatures_are_both_served_and_a_third_still_runs(monkeypatch):
    total = tj.Variable(np.float32(0.0))

    @tj.function
    def add_mean(x):
        total.assign_add(tj.reduce_mean(x))
        return total.value()

    batches = [np.full(n, n, np.float32) for n in (4, 7, 9)]
    want = 0.0
    for i in range(12):
        x = batches[i % 2] if i < 8 else batches[i % 3]   # two shapes in turn, then three
        want += x[0]
        with served_fast(monkeypatch) if 4 <= i < 8 else contextlib.nullcontext():
            np.testing.assert_allclose(add_mean(x).numpy(), want)
    assert add_mean.cache_info()['traces'] == 3


def test_an_array_changed_in_place_is_seen():
    """numpy lets an array change its shape, dtype and writeable flag in place: the same
    object must not reuse the specialised call's assumptions."""
    f = tj.function(lambda x: x + 1)
    a = np.arange(6, dtype=np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(f(a).numpy(), np.arange(1, 7))
    a.shape = (2, 3)
    np.testing.assert_array_equal(f(a).numpy(), np.arange(1, 7).reshape(2, 3))
    a.shape = (6,)
    a.dtype = np.int32   # the float32 bits read as int32
    np.testing.assert_array_equal(f(a).numpy(), a + 1)
    assert f(a).dtype == tj.int32
    a.dtype = np.float32
    a.flags.writeable = False
    np.testing.assert_array_equal(f(a).numpy(), np.arange(1, 7))
    assert f(np.arange(12, dtype=np.float32)[::2]).numpy().tolist() == list(range(1, 12, 2))
    flat = next(e for e in f._cache.values() if e.result.graph.inputs[0].shape == (6,)
                and e.result.graph.inputs[0].dtype == np.float32)
    assert len(flat.executable.fn.signatures) == 1   # read-only and strided arrays were copied


def test_the_argument_check_flags_are_numpys():
    mask = fast_call.KERNEL_ARRAY_FLAGS
    fine = np.zeros(4, np.float32)
    frozen = fine.copy()
    frozen.flags.writeable = False
    unaligned = np.frombuffer(bytearray(17), np.float32, count=4, offset=1)
    assert fine.flags.num & mask == mask
    for array in (frozen, unaligned, np.zeros(8, np.float32)[::2], np.zeros((3, 2)).T):
        assert array.flags.num & mask != mask
    assert not unaligned.flags.aligned and unaligned.flags.writeable


def test_python_values_and_objects_are_checked():
    class Holder:
        def __init__(self, value):
            self.v = tj.Variable(np.float32(value))

    @tj.function
    def f(x, n, flag, name, nothing, holder):
        out = x * n + holder.v
        out = out + 1.0 if flag else out
        return out * 2.0 if name == 'double' else out

    x = np.ones(3, np.float32)
    first, second = Holder(10.0), Holder(20.0)
    cases = [(2, True, 'double', first, 26.0), (3, True, 'double', first, 28.0),
             (2, False, 'double', first, 24.0), (2, 1, 'double', first, 26.0),   # 1 is not True
             (2, True, 'single', first, 13.0), (2, True, 'double', second, 46.0)]
    for _ in range(2):
        for n, flag, name, holder, value in cases:
            for _ in range(2):
                np.testing.assert_allclose(f(x, n, flag, name, None, holder).numpy(), value)
    assert f.cache_info()['entries'] == 6


def test_tensors_and_arrays_share_one_entry(monkeypatch):
    f = tj.function(lambda x: tj.exp(x) * 2.0)
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    for value in (x, tj.constant(x), x, tj.constant(x)):
        np.testing.assert_allclose(f(value).numpy(), 2 * np.exp(x), rtol=1e-6)
    with served_fast(monkeypatch):
        np.testing.assert_allclose(f(tj.constant(x)).numpy(), 2 * np.exp(x), rtol=1e-6)
    assert f.cache_info()['entries'] == 1


def test_a_new_learning_rate_or_scalar_array_runs_without_retracing(monkeypatch):
    v = tj.Variable(np.ones(3, np.float32))

    @tj.function
    def step(lr, scale):
        v.assign(v * scale - lr)
        return v.value()

    expected = np.ones(3)
    for i in range(6):
        lr, scale = 0.1 * i, np.array(1.0 + i, np.float32)   # a float and a 0-d array
        expected = expected * (1.0 + i) - 0.1 * i
        with served_fast(monkeypatch) if i >= 2 else contextlib.nullcontext():
            got = step(lr, scale)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert step.cache_info()['traces'] == 1


def test_structured_outputs_and_no_arguments(monkeypatch):
    count = tj.Variable(np.int64(0))

    @tj.function
    def tick():
        count.assign_add(1)
        return {'count': count.value(), 'twice': tj.stack([count.value()] * 2)}, 'label'

    for i in range(1, 6):
        with served_fast(monkeypatch) if i >= 3 else contextlib.nullcontext():
            out, label = tick()
        assert label == 'label' and int(out['count'].numpy()) == i
        np.testing.assert_array_equal(out['twice'].numpy(), [i, i])
    assert tick.cache_info()['traces'] == 1


def test_tapes_traces_and_disable_jit_still_see_the_call():
    w = tj.Variable(np.float32(3.0))
    runs = []

    @tj.function
    def f(x):
        runs.append(1)   # runs when the Python function runs: tracing or eagerly
        return tj.reduce_sum(w * x * x)

    x = np.array([1.0, 2.0], np.float32)
    for _ in range(3):
        np.testing.assert_allclose(f(x).numpy(), 15.0)
    assert len(runs) == 1
    with tj.GradientTape() as tape:
        loss = f(x)
    np.testing.assert_allclose(tape.gradient(loss, w).numpy(), 5.0)   # d(w*5)/dw
    np.testing.assert_allclose(tj.function(lambda x: f(x) * 2.0)(x).numpy(), 30.0)
    calls = len(runs)
    with tj.config.disabled_jit():
        np.testing.assert_allclose(f(x).numpy(), 15.0)
    assert len(runs) == calls + 1
    np.testing.assert_allclose(f(x).numpy(), 15.0)
    assert len(runs) == calls + 1


def test_debug_nans_switched_on_after_the_loop_started():
    v = tj.Variable(np.ones(3, np.float32))
    f = tj.function(lambda x: v.assign(v + tj.log(x)))
    for _ in range(3):
        f(np.ones(3, np.float32))
    f.debug_nans = True
    with pytest.raises(FloatingPointError, match='log'):
        f(np.array([1.0, -1.0, 1.0], np.float32))
    np.testing.assert_array_equal(v.numpy(), np.ones(3))


def test_a_failing_step_changes_no_state():
    table = tj.Variable(np.arange(8, dtype=np.float32).reshape(4, 2))

    @tj.function
    def f(idx):
        table.assign(table * 2.0)
        return tj.gather(table, idx)

    idx = np.array([0, 3], np.int64)
    for k in range(1, 4):
        np.testing.assert_array_equal(f(idx).numpy(), np.arange(8).reshape(4, 2)[[0, 3]] * 2 ** k)
    before = table.numpy()
    with pytest.raises(errors.InvalidArgumentError):
        f(np.array([0, 4], np.int64))
    np.testing.assert_array_equal(table.numpy(), before)
    np.testing.assert_array_equal(f(idx).numpy(), before[[0, 3]] * 2)


def test_the_specialised_call_holds_the_locks_of_the_variables_it_writes(monkeypatch):
    v = tj.Variable(np.zeros(4, np.float32))
    step = tj.function(lambda x: v.assign_add(x))
    one = np.ones(4, np.float32)
    step(one)
    step(one)
    done = threading.Event()

    def work():
        step(one)
        done.set()
    with served_fast(monkeypatch):
        with v._lock:   # as an eager update in another thread holds it
            worker = threading.Thread(target=work)
            worker.start()
            assert not done.wait(0.2)
            np.testing.assert_array_equal(v.numpy(), np.full(4, 2.0))
        assert done.wait(60)
        worker.join()
    np.testing.assert_array_equal(v.numpy(), np.full(4, 3.0))


def test_threads_running_the_specialised_call_lose_no_update():
    v = tj.Variable(np.zeros(1000, np.float32))
    step = tj.function(lambda x: v.assign_add(x))
    one = np.ones(1000, np.float32)
    step(one)
    step(one)
    errors_seen = []

    def work():
        try:
            for _ in range(500):
                step(one)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors_seen.append(e)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors_seen and not any(t.is_alive() for t in threads)
    np.testing.assert_array_equal(v.numpy(), np.full(1000, 2002.0))


def test_steps_interpreted_while_compiling_then_the_kernel_is_called_directly(monkeypatch,
                                                                              tmp_path):
    monkeypatch.setattr(tj.config, 'compile_in_background', True)
    monkeypatch.setenv('TRACEJIT_CACHE_DIR', str(tmp_path))
    v = tj.Variable(np.zeros(5, np.float32))

    @tj.function
    def step(x):   # a kernel no other test compiles, so this one compiles in a thread
        v.assign(v * 0.5 + tj.sqrt(x) * 0.25)
        return tj.reduce_max(v)

    x = np.arange(5, dtype=np.float32)
    want = np.zeros(5)
    for i in range(8):
        if i == 2:
            step.block_until_compiled()
        want = want * 0.5 + np.sqrt(np.arange(5.0)) * 0.25
        with served_fast(monkeypatch) if i >= 3 else contextlib.nullcontext():
            np.testing.assert_allclose(step(x).numpy(), want.max(), rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-6)
    assert 1 <= step.cache_info()['interpreted_calls'] <= 2


def test_a_child_forked_while_the_trace_count_is_locked_can_record_a_tape():
    with tracing._entered_lock:   # as another thread entering a trace at the fork holds it
        pid = os.fork()
        if pid == 0:   # the child: a deadlock ends by the alarm, with another exit code
            signal.alarm(30)
            with tj.GradientTape() as tape:
                w = tj.Variable(2.0)
                loss = w * w
            os._exit(0 if float(tape.gradient(loss, w)) == 4.0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_range_checked_labels_run_natively_and_a_bad_label_changes_nothing(monkeypatch):
    """A step whose labels are range-checked (sparse softmax cross-entropy) checks them natively
    on the specialised call and calls the kernel directly; a label out of range raises the
    general path's error, before anything is written."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 8).astype(np.int32)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    w = tj.Variable(w0.copy())

    @tj.function
    def step(x, labels):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=tj.matmul(x, w)))
        w.assign_sub(0.5 * tape.gradient(loss, w))
        return loss

    executed = []
    general = function_module.Function._execute
    monkeypatch.setattr(function_module.Function, '_execute',
                        lambda self, *a: executed.append(1) or general(self, *a))
    ref = w0.astype(np.float64)
    onehot = np.eye(3)[labels]

    def numpy_step():
        nonlocal ref
        z = x @ ref
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(8), labels]))
        ref = ref - 0.5 * x.T @ (p - onehot) / 8
        return loss
    for i in range(6):
        with served_fast(monkeypatch) if i >= 2 else contextlib.nullcontext():
            np.testing.assert_allclose(step(x, labels).numpy(), numpy_step(), rtol=1e-5)
    assert len(executed) == 2   # the first two calls; then the kernel, called directly
    before = w.numpy()
    for bad in (3, -1):
        wrong = labels.copy()
        wrong[5] = bad
        with served_fast(monkeypatch), pytest.raises(
                errors.InvalidArgumentError, match=f'labels.*got values from {min(bad, 0)}'):
            step(x, wrong)
    np.testing.assert_array_equal(w.numpy(), before)
    with served_fast(monkeypatch):
        np.testing.assert_allclose(step(x, labels).numpy(), numpy_step(), rtol=1e-5)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5)
    assert len(executed) == 4   # only the two bad calls took the general execution


def test_a_bad_label_on_the_specialised_call_names_the_users_line():
    w = tj.Variable(np.ones((2, 3), np.float32))

    @tj.function
    def step(x, labels):
        w.assign_sub(0.1 * tj.matmul(tj.transpose(x), tj.one_hot(labels, 3)))
        return tj.reduce_sum(tj.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=tj.matmul(x, w)))

    x = np.ones((4, 2), np.float32)
    for _ in range(3):
        step(x, np.array([0, 1, 2, 0], np.int32))
    with pytest.raises(errors.InvalidArgumentError) as raised:
        line = inspect.currentframe().f_lineno + 1
        step(x, np.array([0, 1, 3, 0], np.int32))
    assert str(raised.value).endswith(f'(at {__file__}:{line})')   # not the generated call's

"""Reliability under stress: threads and processes sharing compiled kernels, numerically
delicate functions in compiled code, and checkpoints that are never half written."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tracejit as tj


def test_two_threads_calling_one_function_with_different_signatures():
    @tj.function
    def f(x):
        return tj.reduce_sum(tj.tanh(x) * 2.0) + tj.reduce_max(x)

    inputs = {n: np.linspace(-1, 1, n).astype(np.float32) for n in (10, 7)}
    expected = {n: 2 * np.tanh(x.astype(np.float64)).sum() + x.max() for n, x in inputs.items()}
    errors = []

    def worker(n):
        try:
            for _ in range(200):
                got = float(f(inputs[n]))
                if abs(got - expected[n]) > 1e-5 * max(1.0, abs(expected[n])):
                    errors.append((n, got, expected[n]))
        except Exception as e:  # noqa: BLE001 - the test reports any failure in a thread
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert f.cache_info()['entries'] == 2


STEP = textwrap.dedent('''
    import json, numpy as np, tracejit as tj
    W = tj.Variable(np.ones((4, 3), np.float32))
    @tj.function
    def step(x, lr):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.nn.softplus(tj.matmul(x, W)))
        W.assign_sub(lr * tape.gradient(loss, W))
        return loss
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    losses = [float(step(x, 0.5)) for _ in range(3)]
    print(json.dumps(dict(step.cache_info(), losses=losses, W=W.numpy().tolist())))
''')


def _start(cache_dir):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir))
    return subprocess.Popen([sys.executable, '-c', STEP], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(process):
    import json
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_compiling_the_same_step_into_one_cache(tmp_path):
    first, second = _start(tmp_path), _start(tmp_path)
    a, b = _result(first), _result(second)
    assert a['losses'] == b['losses'] and a['W'] == b['W']
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')], 'temporary files left'
    third = _result(_start(tmp_path))
    assert third['disk_hits'] == 1 and third['compiles'] == 0
    assert third['losses'] == a['losses']


STABLE = {
    'softplus': (lambda x: tj.nn.softplus(x), lambda x: np.logaddexp(0, x)),
    'logsumexp': (lambda x: tj.reduce_logsumexp(x, axis=1),
                  lambda x: np.logaddexp.reduce(x, axis=1)),
    'sigmoid_xent': (lambda x: tj.nn.sigmoid_cross_entropy_with_logits(
        labels=np.ones((2, 3), np.float32), logits=x), lambda x: np.logaddexp(0, -x)),
    'softmax_xent': (lambda x: tj.nn.softmax_cross_entropy_with_logits(
        labels=np.eye(3, dtype=np.float32)[[0, 1]], logits=x),
        lambda x: np.logaddexp.reduce(x, axis=1) - x[[0, 1], [0, 1]]),
    'sparse_xent': (lambda x: tj.nn.sparse_softmax_cross_entropy_with_logits(
        labels=np.array([2, 0], np.int32), logits=x),
        lambda x: np.logaddexp.reduce(x, axis=1) - x[[0, 1], [2, 0]]),
}


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


STABLE_GRADS = {  # d sum(op(x)) / dx, float64 references
    'softplus': lambda x: np.exp(-np.logaddexp(0, -x)),
    'logsumexp': _softmax,
    'sigmoid_xent': lambda x: np.exp(-np.logaddexp(0, -x)) - 1,
    'softmax_xent': lambda x: _softmax(x) - np.eye(3)[[0, 1]],
    'sparse_xent': lambda x: _softmax(x) - np.eye(3)[[2, 0]],
}


@pytest.mark.parametrize('name', sorted(STABLE))
def test_stable_forms_hold_at_1e4_in_compiled_code(name):
    op, reference = STABLE[name]
    x = np.array([[1e4, -1e4, 0.5], [-1e4, 3.0, 1e4]], np.float32)
    got = tj.function(op)(x).numpy()
    want = reference(x.astype(np.float64))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    grad = tj.function(lambda x: tj.grad(lambda v: tj.reduce_sum(op(v)))(x))(x).numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, STABLE_GRADS[name](x.astype(np.float64)), rtol=1e-6,
                               atol=1e-6)


def test_save_weights_never_leaves_a_half_written_checkpoint(tmp_path, monkeypatch):
    model = tj.keras.Sequential([tj.keras.layers.Dense(2)])
    model(np.ones((1, 3), np.float32))
    path = str(tmp_path / 'ckpt.npz')
    model.save_weights(path)
    before = open(path, 'rb').read()

    def broken_savez(file, **arrays):
        file.write(b'partial bytes of a checkpoint')
        raise OSError('disk full')

    monkeypatch.setattr(np, 'savez', broken_savez)
    with pytest.raises(OSError, match='disk full'):
        model.save_weights(path)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['ckpt.npz']


# ------------------------------------------------------------------------------ atomicity

def _everything(model):
    """Every Variable of a model and its optimizer (weights, slots, iterations), as arrays."""
    return [np.array(v.numpy()) for v in list(model.variables) + list(model.optimizer.variables())]


def _model():
    tj.random.set_seed(11)
    model = tj.keras.Sequential([tj.keras.layers.Dense(3, activation='tanh'),
                                 tj.keras.layers.Dense(1)])
    model.build((None, 4))
    model.compile(optimizer=tj.keras.optimizers.Adam(0.05), loss='mse')
    return model


class _RaiseAt(tj.keras.callbacks.Callback):
    def __init__(self, hook, batch, error):
        super().__init__()
        self.hook, self.batch, self.error = hook, batch, error

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == 'begin' and batch == self.batch:
            raise self.error('stop')

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == 'end' and batch == self.batch:
            raise self.error('stop')


@pytest.mark.parametrize('error, hook', [(RuntimeError, 'begin'), (KeyboardInterrupt, 'begin'),
                                         (RuntimeError, 'end')])
def test_fit_interrupted_in_a_callback_keeps_every_variable_of_the_last_step(error, hook):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    interrupted = _model()
    with pytest.raises(error):
        interrupted.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                        callbacks=[_RaiseAt(hook, 2, error)])
    done = 2 if hook == 'begin' else 3        # steps that completed before the interruption
    reference = _model()
    reference.fit(x[:done * 16], y[:done * 16], batch_size=16, epochs=1, shuffle=False,
                  verbose=0)
    got, want = _everything(interrupted), _everything(reference)
    assert len(got) == len(want) > 4          # weights, Adam slots and the step counter
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert int(interrupted.optimizer.iterations.numpy()) == done


def test_failed_eager_apply_gradients_changes_no_variable():
    first, second = tj.Variable(np.ones(2, np.float32)), tj.Variable(np.ones(3, np.float32))
    opt = tj.keras.optimizers.Adam(0.1)
    with pytest.raises(tj.errors.ShapeError):   # the second pair is wrong, the first is fine
        opt.apply_gradients([(tj.ones([2]), first), (tj.ones([4]), second)])
    np.testing.assert_array_equal(first.numpy(), [1, 1])
    np.testing.assert_array_equal(second.numpy(), [1, 1, 1])
    assert int(opt.iterations.numpy()) == 0


# (index expression, a good argument, its gathered value, a bad argument, error, message):
# an argument is range-checked before the call; indices computed in the step are checked by
# the kernel, which may already have written Variables and puts them back; `i * 1` is computed
# when traced (no check recorded) but simplifies to the argument itself.
GATHERS = {
    'argument': (lambda i: i, [1], [1.0], [7], tj.errors.InvalidArgumentError,
                 r'indices must be in \[0, 4\)'),
    'computed': (lambda i: i * 3, [1], [3.0], [2], IndexError, 'out of range'),
    'simplified_to_argument': (lambda i: i * 1, [1], [1.0], [1, 12], IndexError, 'out of range'),
}


@pytest.mark.parametrize('case', list(GATHERS))
def test_compiled_gather_with_out_of_range_indices_raises_and_changes_nothing(case):
    indices, good, value, bad, error, message = GATHERS[case]
    w = tj.Variable(np.zeros(3, np.float32))
    table = np.arange(4, dtype=np.float32)

    @tj.function
    def step(i):
        w.assign_add(tj.ones([3]))
        return tj.gather(table, indices(i))

    np.testing.assert_array_equal(step(np.array(good, np.int32)).numpy(), value)
    with pytest.raises(error, match=message):
        step(np.array(bad, np.int32))
    np.testing.assert_array_equal(w.numpy(), [1, 1, 1])


@pytest.mark.parametrize('index', [lambda i: i, lambda i: i * 3], ids=['argument', 'computed'])
def test_a_gather_in_an_untaken_cond_branch_does_not_fail(index):
    """Only the taken branch of a traced cond runs, so the guarded gather never sees a bad
    index; one out of range in the taken branch raises, as in TensorFlow."""
    table = np.array([10, 20, 30, 40], np.float32)
    w = tj.Variable(np.float32(2.0))

    @tj.function
    def step(i):
        with tj.GradientTape() as tape:
            j = index(i)
            y = tj.cond(j < 4, lambda: tj.gather(table, j) * w, lambda: w * 0.0 - 1.0)
        return y, tape.gradient(y, w)

    for i in range(-1, 8):
        j = index(i)
        want = (table[j] * 2.0, table[j]) if j < 4 else (-1.0, 0.0)
        got = step(np.array(i, np.int32))
        np.testing.assert_array_equal([float(got[0]), float(got[1])], want)
    taken = tj.function(lambda i: tj.cond(i > 0, lambda: tj.gather(table, i), lambda: 0.0))
    assert float(taken(np.array(3, np.int32))) == 40.0
    with pytest.raises(IndexError, match='out of range'):
        taken(np.array(9, np.int32))


def test_indices_feeding_only_dead_code_are_not_range_checked():
    table = np.arange(4, dtype=np.float32)

    @tj.function
    def step(i, x):
        tj.gather(table, i)     # result unused: removed from the graph, so i is never read
        return x * 2

    np.testing.assert_array_equal(step(np.array([9], np.int32), np.float32(1.5)).numpy(), 3.0)


def test_out_of_range_class_labels_raise_eagerly_and_compiled():
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(tj.errors.InvalidArgumentError, match=r'class indices in \[0, 3\)'):
        tj.nn.sparse_softmax_cross_entropy_with_logits(labels=np.array([0, 3]), logits=logits)
    loss = tj.function(lambda labels, x: tj.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=x))
    np.testing.assert_allclose(loss(np.array([0, 2]), logits).numpy(), [np.log(3)] * 2, rtol=1e-6)
    with pytest.raises(tj.errors.InvalidArgumentError, match='got values from -1 to 2'):
        loss(np.array([-1, 2]), logits)


def test_failed_load_weights_changes_nothing_even_when_only_the_last_weight_differs(tmp_path):
    def model(units):
        m = tj.keras.Sequential([tj.keras.layers.Dense(3), tj.keras.layers.Dense(units)])
        m.build((None, 4))
        return m
    saved = model(1)
    path = saved.save_weights(str(tmp_path / 'ckpt'))
    target = model(2)                  # the first Dense matches the checkpoint, the last does not
    before = target.get_weights()
    assert [w.shape for w in before[:2]] == [w.shape for w in saved.get_weights()[:2]]
    with pytest.raises(ValueError, match='nothing was loaded'):
        target.load_weights(path)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)
    data = open(path, 'rb').read()
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(data[:len(data) // 2])
    same = model(1)
    before = same.get_weights()
    with pytest.raises(Exception) as info:
        same.load_weights(str(truncated))
    assert not type(info.value).__module__.startswith('numba')
    for a, b in zip(before, same.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_weights_writes_a_temporary_file_fsyncs_it_then_renames_it(tmp_path, monkeypatch):
    model = tj.keras.Sequential([tj.keras.layers.Dense(2)])
    model.build((None, 3))
    path = str(tmp_path / 'ckpt.npz')
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', os.path.realpath(f'/proc/self/fd/{fd}')))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(('replace', os.path.realpath(src), os.path.realpath(dst)))
        assert os.path.getsize(src) > 0 and not os.path.exists(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    model.save_weights(path)
    kinds = [e[0] for e in events]
    assert 'replace' in kinds
    rename = events[kinds.index('replace')]
    tmp = rename[1]
    assert rename[2] == os.path.realpath(path) and os.path.dirname(tmp) == str(tmp_path)
    assert ('fsync', tmp) in events[:kinds.index('replace')]   # the data is durable first
    assert os.listdir(tmp_path) == ['ckpt.npz']
    np.testing.assert_array_equal(np.load(path)[np.load(path).files[0]], model.get_weights()[0])


# ------------------------------------------------------------------------------ caches

def test_truncated_kernel_file_is_rewritten(tmp_path):
    first = _result(_start(tmp_path))
    kernels = [n for n in os.listdir(tmp_path) if n.startswith('kernel_') and n.endswith('.py')]
    assert kernels
    for name in kernels:                     # cut off after a complete prefix of the module
        text = (tmp_path / name).read_text()
        (tmp_path / name).write_text(text[:len(text) // 2])
    second = _result(_start(tmp_path))
    assert second['losses'] == first['losses'] and second['W'] == first['W']
    third = _result(_start(tmp_path))        # and the rewritten entries are good again
    assert third['losses'] == first['losses'] and third['compiles'] == 0


def test_garbage_numba_cache_files_are_recompiled(tmp_path):
    first = _result(_start(tmp_path))
    pycache = tmp_path / '__pycache__'
    for name in os.listdir(pycache):         # Numba's index and object files: garbage
        (pycache / name).write_bytes(b'\x80garbage' if name.endswith('.nbi') else b'')
    second = _result(_start(tmp_path))
    assert second['losses'] == first['losses'] and second['W'] == first['W']


WARN_ONCE = textwrap.dedent('''
    import warnings, numpy as np, tracejit as tj
    warnings.simplefilter('always')
    x = np.linspace(-1, 1, 6).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        a = float(tj.function(lambda x: tj.reduce_sum(tj.tanh(x)))(x))
        b = float(tj.function(lambda x: tj.reduce_max(x * 3.0))(x))
    assert abs(a - np.tanh(x.astype(np.float64)).sum()) < 1e-5 and abs(b - 3.0) < 1e-6, (a, b)
    print(sum('compiling in memory' in str(w.message) for w in caught))
''')


def test_unusable_cache_dir_falls_back_to_memory_and_warns_once(tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('a file where the cache directory should be')
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(blocker / 'cache'))
    out = subprocess.run([sys.executable, '-c', WARN_ONCE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '1'   # two kernels compiled, one warning
    assert blocker.read_text().startswith('a file')


# ------------------------------------------------------------------------------ numerics

SPECIAL = np.array([1.0, np.nan, -np.inf, np.inf, -2.0, 0.0, 0.5, -0.0], np.float64)
SPECIAL_OPS = {
    'maximum': lambda x: tj.maximum(x, 0.25), 'maximum_rev': lambda x: tj.maximum(0.25, x),
    'minimum': lambda x: tj.minimum(x, 0.25), 'max_pair': lambda x: tj.maximum(x, x[::-1]),
    'min_pair': lambda x: tj.minimum(x, x[::-1]), 'abs': tj.abs, 'sign': tj.sign,
    'sqrt': tj.sqrt, 'log': tj.log, 'log1p': tj.math.log1p, 'exp': tj.exp, 'sigmoid': tj.sigmoid,
    'tanh': tj.tanh, 'softplus': tj.nn.softplus, 'relu': tj.nn.relu, 'sin': tj.sin,
    'div': lambda x: x / x[::-1], 'pow': lambda x: tj.pow(x, 0.5), 'square': tj.square,
    'floor': tj.floor, 'where': lambda x: tj.where(x > 0.0, x, -x),
    'clip': lambda x: tj.clip_by_value(x, -1.0, 1.0),
    'reduce_sum': lambda x: tj.reduce_sum(x), 'reduce_max': lambda x: tj.reduce_max(x),
    'reduce_min': lambda x: tj.reduce_min(x), 'reduce_mean': lambda x: tj.reduce_mean(x),
    'logsumexp': lambda x: tj.reduce_logsumexp(x), 'softmax': lambda x: tj.nn.softmax(x),
    'log_softmax': lambda x: tj.nn.log_softmax(x),
    'argmax': lambda x: tj.argmax(x), 'argmin': lambda x: tj.argmin(x),
    'matmul': lambda x: tj.matmul(tj.reshape(x, [2, 4]), tj.reshape(x, [4, 2])),
    'logsumexp_finite_inf': lambda x: tj.reduce_logsumexp(tj.stack([x[2:4], x[4:6]]), axis=0),
    'grad_square': lambda x: tj.grad(lambda t: tj.reduce_sum(tj.square(t)))(x),
}


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_nan_and_inf_propagate_through_compiled_code_exactly_as_eager(dtype):
    x = SPECIAL.astype(dtype)
    ops = sorted(SPECIAL_OPS)

    def all_ops(x):
        return [SPECIAL_OPS[name](x) for name in ops]
    with np.errstate(all='ignore'):
        eager = [np.asarray(r) for r in all_ops(tj.constant(x))]
        compiled = [np.asarray(r) for r in tj.function(all_ops)(x)]
    bad = []
    for name, e, c in zip(ops, eager, compiled):
        same_specials = (np.array_equal(np.isnan(e), np.isnan(c))
                         and np.array_equal(np.isposinf(e), np.isposinf(c))
                         and np.array_equal(np.isneginf(e), np.isneginf(c)))
        finite = np.isfinite(e) & np.isfinite(c)
        if not same_specials or not np.allclose(c[finite], e[finite], rtol=1e-6, atol=1e-7):
            bad.append(f'{name}: compiled {c} vs eager {e}')
    assert not bad, '\n'.join(bad)


def test_float32_fused_reductions_over_1e7_elements_match_float64():
    rng = np.random.default_rng(5)
    x = (rng.random(10**7) + 0.5).astype(np.float32)
    total, squares, rows = tj.function(lambda x: (
        tj.reduce_sum(x), tj.reduce_sum(x * x), tj.reduce_sum(tj.reshape(x, [2, -1]), axis=1)))(x)
    x64 = x.astype(np.float64)
    for got, want in ((total, x64.sum()), (squares, (x64 * x64).sum()),
                      (rows, x64.reshape(2, -1).sum(axis=1))):
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=0)


def test_nan_indices_cast_to_int_fail_the_range_check():
    table = np.arange(4, dtype=np.float32)
    gather = tj.function(lambda i: tj.gather(table, tj.cast(i, tj.int32)))
    np.testing.assert_array_equal(gather(np.array([1.0, 3.0], np.float32)).numpy(), [1, 3])
    with pytest.raises(tj.errors.InvalidArgumentError, match='indices must be in'):
        gather(np.array([1.0, np.nan], np.float32))

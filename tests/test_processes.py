"""Processes and the disk cache: fork pools after parallel kernels, threads launching parallel
kernels at once, and a kernel cache that cannot be written (backend/parallel.py, compiler.py).

Each scenario runs in a fresh interpreter: a failure here aborts or hangs a process."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SIZE = 1 << 17   # elements: above codegen.PARALLEL_MIN, so the kernel's loops are parallel

PARALLEL_STEP = textwrap.dedent(f'''
    import numpy as np, tracejit as tj
    from tracejit.backend import codegen
    assert {SIZE} >= codegen.PARALLEL_MIN
    x = np.linspace(-1, 1, {SIZE}).astype(np.float32)

    def parallel_step():
        v = tj.Variable(np.zeros({SIZE}, np.float32))
        @tj.function
        def step(s):
            v.assign(tj.tanh(x * s) + 1.0)
            return tj.reduce_sum(v)
        return step
''')

FORK_POOL = PARALLEL_STEP + textwrap.dedent('''
    import multiprocessing, numba, sys
    step = parallel_step()
    before = [float(step(np.float32(s))) for s in (1, 2)]
    print(numba.threading_layer())

    def task(s):
        return float(step(np.float32(s)))

    if __name__ == '__main__':
        with multiprocessing.get_context('fork').Pool(2) as pool:
            try:
                print(pool.map_async(task, [1, 2, 3, 4]).get(timeout=120))
            except multiprocessing.TimeoutError:
                print('the pool hung'); sys.stdout.flush(); pool.terminate()
        print(before)
''')


def _expected_sum(s):
    return float(np.sum(np.tanh(np.linspace(-1, 1, SIZE).astype(np.float32) * np.float32(s)
                                ).astype(np.float64) + 1.0))


def _python(script, env, timeout=300):
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines(), out.stderr


@pytest.fixture(scope='module')
def shared_cache(tmp_path_factory):
    """One kernel cache for the parallel-kernel scripts: each compiles the same step."""
    return dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path_factory.mktemp('cache')))


def test_a_fork_pool_after_parallel_kernels_runs_them_in_the_children(shared_cache):
    lines, err = _python(FORK_POOL, shared_cache)
    layer, children, parent = lines[-3:]
    assert layer in ('tbb', 'workqueue'), layer     # fork-safe; GNU OpenMP aborts the children
    assert 'GNU OpenMP' not in err
    np.testing.assert_allclose(eval(children), [_expected_sum(s) for s in (1, 2, 3, 4)],
                               rtol=1e-5)
    np.testing.assert_allclose(eval(parent), [_expected_sum(s) for s in (1, 2)], rtol=1e-5)


THREADS = PARALLEL_STEP + textwrap.dedent('''
    import threading
    steps = [parallel_step(), parallel_step()]
    for step in steps:
        step(np.float32(1))                  # compiled before the threads start
    results, start = [[], []], threading.Barrier(2)

    def work(i):
        start.wait()
        for k in range(200):
            results[i].append(float(steps[i](np.float32(1 + (k + i) % 3))))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(results)
''')


def test_two_threads_running_parallel_kernels_at_once(shared_cache):
    lines, _ = _python(THREADS, shared_cache)
    results = eval(lines[-1])
    for i in range(2):
        want = [_expected_sum(1 + (k + i) % 3) for k in range(200)]
        np.testing.assert_allclose(results[i], want, rtol=1e-5)


def test_a_threading_layer_the_user_chose_is_kept(shared_cache):
    env = dict(shared_cache, NUMBA_THREADING_LAYER='omp')
    script = (PARALLEL_STEP
              + 'import numba\nparallel_step()(np.float32(1))\nprint(numba.threading_layer())')
    lines, _ = _python(script, env)
    assert lines[-1] == 'omp'


CACHE_LIMITED = textwrap.dedent('''
    import resource, sys, warnings, numpy as np
    if len(sys.argv) > 1:                    # a file-size limit the cache's object files exceed
        limit = int(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    import tracejit as tj
    warnings.simplefilter('always')
    x = np.linspace(-1, 1, 5).astype(np.float32)
    v = tj.Variable(np.zeros(5, np.float32))

    @tj.function
    def step(x):
        v.assign_add(tj.tanh(x) * 2.0 + tj.exp(x))
        return tj.reduce_sum(v)

    with warnings.catch_warnings(record=True) as caught:
        losses = [float(step(x)) for _ in range(3)]
        other = float(tj.function(lambda x: tj.reduce_max(tj.sigmoid(x) * 3.0))(x))
        step.block_until_compiled()
        losses.append(float(step(x)))
    print(sum('compiling in memory only' in str(w.message) for w in caught))
    print([losses, other, v.numpy().tolist()])
''')


def _limited_results():
    x = np.linspace(-1, 1, 5).astype(np.float64)
    increment = np.tanh(x) * 2.0 + np.exp(x)
    losses = [np.sum(increment) * k for k in (1, 2, 3, 4)]
    return losses, 3.0 / (1.0 + np.exp(-1.0)), increment * 4


@pytest.mark.parametrize('background', ['0', '1'])
def test_a_cache_that_cannot_be_written_costs_only_the_cache(tmp_path, background):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_BACKGROUND_COMPILE=background)
    want_losses, want_other, want_v = _limited_results()
    script = ['-c', CACHE_LIMITED]
    for limit, warnings in (('20000', '1'), (None, '0')):   # then a process without the limit
        out = subprocess.run([sys.executable, *script, *([limit] if limit else [])], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        count, values = out.stdout.strip().splitlines()[-2:]
        assert count == warnings, out.stderr
        losses, other, v = eval(values)
        np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
        np.testing.assert_allclose(other, want_other, rtol=1e-6)
        np.testing.assert_allclose(v, want_v, rtol=1e-5)


CACHE_DELETED = textwrap.dedent('''
    import os, shutil, threading, time, warnings, numpy as np
    import tracejit as tj
    warnings.simplefilter('always')
    directory = os.environ['TRACEJIT_CACHE_DIR']
    stop = threading.Event()

    def delete_repeatedly():             # Numba's files, while it writes them
        while not stop.is_set():
            shutil.rmtree(os.path.join(directory, '__pycache__'), ignore_errors=True)
            time.sleep(0.00005)

    deleter = threading.Thread(target=delete_repeatedly)
    deleter.start()
    x = np.linspace(-1, 1, 4).astype(np.float32)
    results = []
    with warnings.catch_warnings(record=True) as caught:
        try:
            for k in range(6):
                step = tj.function(lambda x, k=k: tj.reduce_sum(tj.tanh(x) * (0.5 + k)
                                                                + tj.exp(x) * float(k)))
                results.append(float(step(x)))
        finally:
            stop.set()
            deleter.join()
    print(sum('compiling in memory only' in str(w.message) for w in caught))
    print(results)
''')


def test_a_cache_directory_deleted_during_compiles_costs_only_the_cache(tmp_path):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path / 'cache'))
    lines, err = _python(CACHE_DELETED, env)
    assert int(lines[-2]) <= 1, err
    x = np.linspace(-1, 1, 4).astype(np.float32).astype(np.float64)
    want = [np.sum(np.tanh(x) * (0.5 + k) + np.exp(x) * k) for k in range(6)]
    np.testing.assert_allclose(eval(lines[-1]), want, rtol=1e-5)


HEAP = textwrap.dedent('''
    import resource
    import numpy as np, tracejit as tj
    from tracejit.backend import heap

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def temporaries():   # what a step allocates: 8 arrays of 1 MiB, written, then freed
        arrays = [np.ones(1 << 18, np.float32) for _ in range(8)]
        del arrays

    tj.function(lambda x: x * 2.0)(np.ones(3, np.float32))   # the first kernel sets the heap
    temporaries()
    before = faults()
    for _ in range(10):
        temporaries()
    print(heap.keep_freed_memory(), (faults() - before) / 10)
''')


@pytest.mark.parametrize('tuning', ['1', '0'])
def test_temporaries_reuse_the_heap_instead_of_faulting_pages_in_again(shared_cache, tuning):
    """Once a kernel exists, the blocks a step frees stay in the heap for the next step;
    glibc's defaults hand them back and fault each of their 2,048 pages in again per step
    (what TRACEJIT_MALLOC_TUNING=0 keeps)."""
    lines, _ = _python(HEAP, dict(shared_cache, TRACEJIT_MALLOC_TUNING=tuning))
    applied, per_step = lines[-1].split()
    assert applied == str(tuning == '1')
    assert float(per_step) < 100 if tuning == '1' else float(per_step) > 1000

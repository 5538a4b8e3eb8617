"""tj.distribute: one process alone (size 1, no MPI needed), and two processes on loopback
started with `mpiexec -n 2` (tests/distributed_worker.py), which must train exactly like one
process on the concatenated batches and fail, not hang, when a process dies or leaves."""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import tracejit as tj

hvd = tj.distribute
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'distributed_worker.py')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tj.__file__)))
TIMEOUT = 240   # seconds for one mpiexec run, compiles on a cold cache included
Slices = tj.IndexedSlices


# ----------------------------------------------------------------------------- one process

def test_a_process_alone_has_size_one_and_collectives_return_their_input():
    assert (hvd.size(), hvd.rank(), hvd.local_size(), hvd.local_rank()) == (1, 0, 1, 0)
    x = np.array([[1.5, -2.0]], np.float32)
    for op in (hvd.Average, hvd.Sum):
        np.testing.assert_array_equal(hvd.allreduce(x, op=op).numpy(), x)
    np.testing.assert_array_equal(hvd.allgather(x).numpy(), x)
    np.testing.assert_array_equal(hvd.broadcast(x, root_rank=0).numpy(), x)
    fused = hvd.grouped_allreduce([x, None, np.arange(3)], op=hvd.Sum)
    assert fused[1] is None and fused[2].dtype == tj.int64
    np.testing.assert_array_equal(fused[2].numpy(), np.arange(3))
    variable = tj.Variable([1.0, 2.0])
    hvd.broadcast_variables([variable], root_rank=0)
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])


def test_sparse_gradients_stay_sparse():
    slices = Slices(np.ones((2, 3), np.float32), np.array([4, 0]), (9, 3))
    out = hvd.allreduce(slices)
    assert type(out) is Slices and tuple(out.dense_shape) == (9, 3)
    np.testing.assert_array_equal(out.indices.numpy(), [4, 0])
    np.testing.assert_array_equal(out.values.numpy(), np.ones((2, 3)))


def test_bad_arguments_are_refused():
    with pytest.raises(tj.errors.InvalidArgumentError, match='Average or tj.distribute.Sum'):
        hvd.allreduce(np.ones(2), op='max')
    with pytest.raises(tj.errors.InvalidArgumentError, match='either op= or'):
        hvd.allreduce(np.ones(2), op=hvd.Sum, average=True)
    with pytest.raises(tj.errors.DTypeError, match='cast to a float'):
        hvd.allreduce(np.arange(3), op=hvd.Average)
    with pytest.raises(tj.errors.InvalidArgumentError,
                       match=r'root_rank must be a rank in \[0, 1\)'):
        hvd.broadcast(np.ones(2), root_rank=1)
    with pytest.raises(TypeError, match='wraps a tj.keras optimizer'):
        hvd.DistributedOptimizer(object())
    twice = hvd.DistributedOptimizer(tj.keras.optimizers.SGD(0.1))
    with pytest.raises(tj.errors.InvalidArgumentError, match='already'):
        hvd.DistributedOptimizer(twice)
    with pytest.raises(tj.errors.InvalidArgumentError, match='positive number of seconds'):
        hvd.world._timeout('soon')


def test_init_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    monkeypatch.delenv('MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD', raising=False)
    with pytest.raises(tj.errors.UnavailableError, match=r'pip install "tracejit\[distributed\]"'):
        hvd.init()
    assert 'MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD' not in os.environ   # nothing set for nothing
    assert hvd.size() == 1 and not hvd.is_initialized()


def test_distributed_optimizer_shares_the_wrapped_optimizers_state():
    sgd = tj.keras.optimizers.SGD(0.5, momentum=0.9)
    distributed = hvd.DistributedOptimizer(sgd)
    assert isinstance(distributed, tj.keras.optimizers.SGD)
    assert distributed.learning_rate is sgd.learning_rate and distributed.momentum == 0.9
    variable = tj.Variable([1.0, -1.0])
    distributed.apply_gradients([(np.array([2.0, 4.0], np.float32), variable)])  # eager, alone
    np.testing.assert_allclose(variable.numpy(), [0.0, -3.0])  # lr * g, momentum 0 at first


# ----------------------------------------------------------------------------- two processes

def _mpiexec(scenario, tmp_path, **env):
    """(return code, output, seconds) of `mpiexec -n 2 python distributed_worker.py`."""
    mpiexec = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which('mpiexec')
    assert mpiexec, 'mpiexec not found: pip install "tracejit[distributed]"'
    environment = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', NUMBA_NUM_THREADS='1',
                       **env)
    start = time.monotonic()
    done = subprocess.run([mpiexec, '-n', '2', '-prepend-rank', sys.executable, WORKER,
                           scenario, str(tmp_path)], env=environment, capture_output=True,
                          text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def _untagged(output):
    """The output without the rank tags -prepend-rank puts on every chunk a rank writes
    (which can split a line)."""
    return re.sub(r'\[[01]\] ', '', output)


@pytest.mark.compiled
def test_two_processes_train_like_one_on_the_concatenated_batches(tmp_path):
    code, output, _ = _mpiexec('train', tmp_path)
    assert code == 0, output
    ranks = [dict(np.load(tmp_path / f'rank{r}.npz')) for r in (0, 1)]
    r0, r1 = ranks
    for k in r0:   # every rank holds the same weights, bit for bit
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    for i in range(3):   # DistributedGradientTape + Adam inside tj.function
        np.testing.assert_allclose(r0[f'param{i}'], r0[f'ref{i}'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r0['embedding'], r0['ref_embedding'], rtol=1e-5, atol=1e-6)
    assert r0['allreduce_calls'] == 1 == r0['mpi_calls_in_kernel']  # fused: one MPI call a step
    assert r0['concatenates'] == 0 and r0['gradients_in_buffer'] == 2
    assert r0['cma_threshold'] == str(256 * 1024)   # init's MPICH default
    for i in range(4):   # Keras fit with DistributedOptimizer and both callbacks
        np.testing.assert_allclose(r0[f'fit{i}'], r0[f'ref_fit{i}'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r0['fit_loss'], r0['ref_fit_loss'], rtol=1e-5)
    lines = output.splitlines()
    assert any(line.startswith('[0] Epoch 1/2') for line in lines), output
    assert not any(line.startswith('[1]') and 'Epoch' in line for line in lines), output
    np.testing.assert_array_equal(r0['eager_sum'], [2.0, 1.0])
    np.testing.assert_array_equal(r0['eager_mean'], [1.0])
    np.testing.assert_array_equal(r0['gather_uneven'], [[0, 0], [1, 1], [1, 1]])
    np.testing.assert_array_equal(r0['bcast'], [6.0])
    # sparse: rank r sent rows [r, 3] of value r + 1; gathered, averaged values are halved
    np.testing.assert_array_equal(r0['sparse_indices'], [0, 3, 1, 3])
    np.testing.assert_array_equal(r0['sparse_values'], np.repeat([[0.5], [0.5], [1], [1]], 3, 1))
    np.testing.assert_array_equal(r0['traced_sparse_indices'], [0, 3, 1, 3])
    np.testing.assert_array_equal(r0['traced_sparse_values'],
                                  np.repeat([[1.0], [1.0], [2.0], [2.0]], 3, 1))
    np.testing.assert_array_equal(r0['traced_gather'], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(r0['traced_bcast'], [1, 1, 1])
    assert "rank 1 has 4 variables, the root 3" in str(r0['mismatch'])
    assert "'extra:0'" in str(r0['mismatch'])


@pytest.mark.compiled
@pytest.mark.parametrize('scenario, expected', [
    ('killed', 'Killed (signal 9)'),
    ('stopped', 'DeadlineExceededError: allreduce in a compiled step timed out'),
])
def test_a_process_that_dies_or_leaves_fails_the_others_within_the_timeout(
        tmp_path, scenario, expected):
    code, output, seconds = _mpiexec(scenario, tmp_path, TRACEJIT_DISTRIBUTE_TIMEOUT='3')
    assert code != 0, output
    assert expected in _untagged(output), output
    assert 'finished without noticing' not in output
    if scenario == 'stopped':
        assert 'rank 0 of 2 failed with DeadlineExceededError; aborting every rank' in output

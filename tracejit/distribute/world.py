"""The group of processes training together: MPI's world, as Horovod's `init`, `size`, `rank`.

Before `init()` (or without MPI) this process is alone: size 1, rank 0, and every collective
returns its input, so the same script runs under `python` and under `mpiexec -n 4 python`.
After `init()` in a group of more than one, an exception that nothing catches aborts every
process (MPI_Abort) instead of leaving the others waiting in a collective, and collectives wait
at most `timeout()` seconds for their peers (TRACEJIT_DISTRIBUTE_TIMEOUT, default 300).

`init()` first sets MPICH's defaults in MPICH_DEFAULTS where the environment has none (other
MPI libraries ignore them; they take effect when `init()` is what starts MPI): messages under
256 KiB between processes of one machine go through MPICH's shared-memory cells instead of a
single-copy CMA transfer, whose handshake costs more than it saves below that size (on 2
processes, the allreduce of W3's 38 KB of gradients takes about half the time, of 200 KB a
third; from ~800 KB on CMA is faster).
"""
import importlib
import os
import sys
import time

from .. import errors
from ..keras import callbacks as keras_callbacks

INSTALL_HINT = ('tj.distribute needs mpi4py and an MPI library: pip install '
                '"tracejit[distributed]" (mpi4py and mpich), then launch with '
                '`mpiexec -n 2 python train.py`')
DEFAULT_TIMEOUT = 300.0
ABORT_DRAIN_SECONDS = 0.5
MPICH_DEFAULTS = {'MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD': str(1 << 18)}

_world = {'comm': None, 'local': None, 'timeout': None}


def init(comm=None, timeout=None):
    """Join the processes started by `mpiexec` (or `comm`, an mpi4py communicator). `timeout`:
    seconds a collective waits for the other processes before raising DeadlineExceededError."""
    try:
        MPI = _start_mpi()
    except ImportError:
        raise errors.UnavailableError(INSTALL_HINT) from None
    comm = MPI.COMM_WORLD if comm is None else comm
    comm.Set_errhandler(MPI.ERRORS_RETURN)  # MPI failures become Python exceptions
    _world.update(comm=comm, local=comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank),
                  timeout=_timeout(timeout))
    keras_callbacks.set_chief(comm.rank == 0)
    if comm.size > 1:
        _abort_on_uncaught_exceptions(comm)


def _start_mpi():
    """mpi4py's MPI module, imported (which starts MPI) once MPICH_DEFAULTS are set."""
    importlib.import_module('mpi4py')   # without mpi4py, fail before touching the environment
    for name, value in MPICH_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mpi4py import MPI
    return MPI


def _timeout(value):
    if value is None:
        value = os.environ.get('TRACEJIT_DISTRIBUTE_TIMEOUT', DEFAULT_TIMEOUT)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise errors.InvalidArgumentError(
            f'the distributed timeout must be a positive number of seconds, got {value!r}')
    return seconds


def _abort_on_uncaught_exceptions(comm):
    """A process that raises prints its traceback and aborts the whole job: its peers would
    otherwise wait for it in the next collective."""
    previous = sys.excepthook

    def abort(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.write(f'tracejit.distribute: rank {comm.rank} of {comm.size} failed with '
                         f'{kind.__name__}; aborting every rank\n')
        sys.stderr.flush()
        # mpiexec forwards each process's output through a pipe and kills the job on Abort:
        # without a pause, the end of the traceback was sometimes lost on a busy machine
        time.sleep(ABORT_DRAIN_SECONDS)
        comm.Abort(1)
    sys.excepthook = abort


def shutdown():
    """Leave the group: this process is alone again (MPI itself finalises at exit)."""
    if _world['comm'] is not None:
        _world['local'].Free()
    _world.update(comm=None, local=None, timeout=None)
    keras_callbacks.set_chief(True)


def is_initialized():
    return _world['comm'] is not None


def size():
    return 1 if _world['comm'] is None else _world['comm'].size


def rank():
    return 0 if _world['comm'] is None else _world['comm'].rank


def local_size():
    """Processes of the group on this machine."""
    return 1 if _world['local'] is None else _world['local'].size


def local_rank():
    return 0 if _world['local'] is None else _world['local'].rank


def communicator():
    """The mpi4py communicator, or None when this process is alone."""
    return _world['comm'] if size() > 1 else None


def handle():
    """The communicator's MPI handle as an integer (what compiled steps receive), 0 when this
    process is alone."""
    comm = communicator()
    if comm is None:
        return 0
    from mpi4py import MPI
    return MPI._handleof(comm)


def timeout():
    return _world['timeout'] or _timeout(None)

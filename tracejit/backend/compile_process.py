"""Compiling a kernel for the disk cache in a process of its own.

A compiling thread shares the interpreter lock with the steps the interpreter runs meanwhile
(Numba's compiler is mostly Python), so both went at half speed, and a script ending before its
kernel was ready waited for the compile: seed 001's 5000-step loop ended at 1.0-1.1 s from
process start and the process at 1.7-1.9 s. A child process compiles on another core instead;
the thread only waits for it and then loads the entry from disk. A script that ends first
leaves the child to finish the entry for the next run. When the child fails, the caller
compiles in its own process, which raises the real error.

The child starts before this process imports Numba: it gets the kernel's module file and small
stand-ins of the call's arguments with their Numba types (`templates`), not Numba types, so a
short script interprets all its steps without ever loading Numba (importing it in the thread
took ~0.3 s of the interpreter lock from the steps).

Run as `python -m tracejit.backend.compile_process JOB`: JOB is a pickle of (module name,
module path, argument templates).
"""
import contextlib
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np


def start(name, path, values):
    """A child process compiling the kernel of the module `name` at `path` (a disk-cache
    entry) into the cache for a call with these argument values, or None when it cannot be
    started: arguments without templates, or an executable that is not a Python interpreter
    (an application embedding Python)."""
    if not os.path.basename(sys.executable or '').lower().startswith('python'):
        return None
    stand_ins = templates(values)
    if stand_ins is None:
        return None
    with tempfile.NamedTemporaryFile('wb', suffix='.job', delete=False) as f:
        pickle.dump((name, path, stand_ins), f)
    try:
        child = subprocess.Popen([sys.executable, '-m', __name__, f.name], env=_child_env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    except OSError:
        os.unlink(f.name)
        return None
    child.job = f.name
    return child


def templates(values):
    """Small values with the Numba types of `values` (a tuple), or None when one has no such
    stand-in: an array's dtype, dimensions, layout (C, F or neither) and writeability are kept,
    not its data; scalars and tuples of them are kept as they are."""
    out = []
    for value in values:
        if isinstance(value, np.ndarray):
            value = _array_template(value)
        elif isinstance(value, tuple):
            value = templates(value)
        elif not isinstance(value, (bool, int, float, np.generic)):
            value = None
        if value is None:
            return None
        out.append(value)
    return tuple(out)


def _array_template(array):
    if not array.flags.aligned or array.dtype.hasobject:
        return None
    ndim, flags = array.ndim, array.flags
    if flags.c_contiguous:
        template = np.zeros((1,) * ndim, array.dtype)
    elif flags.f_contiguous:
        template = np.zeros((2,) * ndim, array.dtype, order='F')
    else:   # every other axis of a (3, ..., 3) array: contiguous in neither order
        template = np.zeros((3,) * ndim, array.dtype)[(slice(None, None, 2),) * ndim]
    template.flags.writeable = flags.writeable
    return template


def finish(child):
    """Wait for `child` (a failure shows when the caller loads: the entry is missing). The
    child deletes its job once read; one that failed before may have left it."""
    child.wait()
    if os.path.exists(child.job):
        os.unlink(child.job)


def _child_env():
    """The caller's environment with its import path, so the child imports the same tracejit."""
    path = os.pathsep.join(p for p in sys.path if p)
    return dict(os.environ, PYTHONPATH=path)


def main(job_path):
    with open(job_path, 'rb') as f:
        name, path, stand_ins = pickle.load(f)
    os.unlink(job_path)
    with entry_lock(path):
        import numba

        from . import compiler
        signature = tuple(numba.typeof(value) for value in stand_ins)
        compiler.import_module(name, path).kernel.compile(signature)


@contextlib.contextmanager
def entry_lock(path):
    """Held while a compile process compiles the entry at `path`: a script run again before
    the last run's compile process is done starts another for the same entry, which waits and
    then loads what the first wrote instead of compiling it a second time on the other core.
    Without fcntl (not POSIX) or a lock file, each compiles."""
    try:
        import fcntl
        lock = open(path + '.lock', 'a')
    except (ImportError, OSError):
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


if __name__ == '__main__':
    main(sys.argv[1])

"""Compiling a kernel for the disk cache in a process of its own.

A compiling thread shares the interpreter lock with the steps the interpreter runs meanwhile
(Numba's compiler is mostly Python), so both went at half speed, and a script ending before its
kernel was ready waited for the compile: seed 001's 5000-step loop ended at 1.0-1.1 s from
process start and the process at 1.7-1.9 s. A child process compiles on another core instead;
the thread only waits for it and then loads the entry from disk. A script that ends first
leaves the child to finish the entry for the next run. When the child fails, the caller
compiles in its own process, which raises the real error.

Run as `python -m tracejit.backend.compile_process JOB`: JOB is a pickle of (module path,
module name, Numba signature).
"""
import os
import pickle
import subprocess
import sys
import tempfile


def start(kernel, args):
    """A child process compiling `kernel` (a Kernel whose module is in the disk cache) for
    these arguments into the cache, or None when it cannot be started (also when this
    process's executable is not a Python interpreter: an application embedding Python)."""
    if not os.path.basename(sys.executable or '').lower().startswith('python'):
        return None
    job = (kernel.source_path, kernel.fn.py_func.__module__, kernel._signature(args))
    with tempfile.NamedTemporaryFile('wb', suffix='.job', delete=False) as f:
        pickle.dump(job, f)
    try:
        child = subprocess.Popen([sys.executable, '-m', __name__, f.name], env=_child_env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    except OSError:
        os.unlink(f.name)
        return None
    child.job = f.name
    return child


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
    from . import compiler
    with open(job_path, 'rb') as f:
        path, name, signature = pickle.load(f)
    os.unlink(job_path)
    compiler.import_module(name, path).kernel.compile(signature)


if __name__ == '__main__':
    main(sys.argv[1])

"""Compiling in the background: a step never waits for Numba.

A new kernel takes seconds to compile (a kernel on disk loads on the first call instead, in about
0.1 s). Meanwhile each step runs on the numpy interpreter, which has the kernel's semantics
(outputs, Variable updates in program order, nothing written when a step fails), so the first
step of a fresh process costs a trace instead of a compile, and training starts at once. The
first call starts one compiling thread; once the kernel is ready every later call runs it.
Compilation failures are raised, wrapped, by the next call, before that step runs.

A kernel whose module is in the disk cache compiles in a process of its own
(compile_process.py), which leaves the interpreter lock to the steps; the thread waits for it
and loads the entry. A process that exits meanwhile leaves that process to finish the entry;
threads compiling or loading in this process are waited for at exit, and every thread before
a fork, so disk-cache entries are complete and a child never inherits a half-held compiler lock.
"""
import atexit
import os
import threading

from .. import errors
from . import compile_process

_pending = []
_start_lock = threading.Lock()
_state_lock = threading.Lock()
_waiting_on_child = set()   # pending threads waiting for a compile process
_exiting = []               # set once the process exits: those threads load nothing then


class Tiered:
    """An executable that interprets the graph until its kernel has been compiled."""

    def __init__(self, interpreted, build_kernel, on_compiled=None, compile_job=None):
        self.interpreted = interpreted
        self._build_kernel = build_kernel   # () -> (Kernel, how); runs in the thread
        self._on_compiled = on_compiled     # called with how ('compiled' or 'disk')
        # args -> ((module name, path) of the kernel's disk-cache entry or None, the values a
        # call passes): what a compile process needs, known before Numba is imported
        self._compile_job = compile_job
        self.kernel = self.error = self._thread = None
        self.interpreted_runs = 0

    @property
    def native(self):
        return self.kernel is not None

    def run(self, args):
        kernel = self.kernel
        if kernel is not None:
            return kernel.run(args)
        if self.error is not None:
            self._raise_error()
        if self._thread is None:
            self._start(list(args))
        self.interpreted_runs += 1
        return self.interpreted.run(args)

    def wait(self):
        """Block until the kernel is ready; raise its compilation error if it failed."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            self._raise_error()

    def _raise_error(self):
        """A new exception each time (re-raising one object would grow its traceback)."""
        raise errors.CompilationError(str(self.error)) from (self.error.__cause__ or self.error)

    def _start(self, args):
        with _start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._compile, args=(args,), daemon=True,
                                      name='tracejit-compile')
            _pending.append(thread)
            self._thread = thread
            thread.start()

    def _compile(self, args):
        try:
            elsewhere = self._compile_job is not None and _compiled_elsewhere(
                *self._compile_job(args))
            if elsewhere is None:
                return   # the process is exiting: the compile process finishes the entry
            kernel, how = self._build_kernel()
            kernel.compile(args)   # loads what the compile process wrote, or compiles here
            if elsewhere:
                how = 'compiled'
        except errors.CompilationError as e:
            self.error = e
        except BaseException as e:  # the next call reports it; this thread has no caller
            self.error = errors.CompilationError(f'compiling the kernel failed: '
                                                 f'{type(e).__name__}: {e}')
            self.error.__cause__ = e
        else:
            self.kernel = kernel
            if self._on_compiled is not None:
                self._on_compiled(how)
        finally:
            _pending.remove(threading.current_thread())


def _compiled_elsewhere(entry, values):
    """Compile the disk-cache entry `entry` (module name, path; None when this process
    compiles in memory) for a call passing `values` in a child process, and wait for it.
    True once it has ended (the caller loads the entry, or compiles it here when the child
    failed, which raises the real error); False when no child could start; None when this
    process began exiting meanwhile: the child then finishes the entry on its own and the
    caller loads nothing (the interpreter is shutting down)."""
    if entry is None:
        return False
    child = compile_process.start(*entry, values)
    if child is None:
        return False
    thread = threading.current_thread()
    with _state_lock:
        if _exiting:
            return None
        _waiting_on_child.add(thread)
    compile_process.finish(child)
    with _state_lock:
        _waiting_on_child.discard(thread)
        return None if _exiting else True


def wait_all():
    """Block until every kernel compiling in the background is ready (or has failed)."""
    for thread in list(_pending):
        if thread is not threading.current_thread():
            thread.join()


@atexit.register
def _wait_at_exit():
    """Wait for kernels compiling or loading in this process, not for compile processes."""
    with _state_lock:
        _exiting.append(True)
        detached = set(_waiting_on_child)
    for thread in list(_pending):
        if thread is not threading.current_thread() and thread not in detached:
            thread.join()


# A child forked while a thread compiles would inherit held locks (ours and Numba's) and a
# thread that does not exist there: finish compiling first.
os.register_at_fork(before=wait_all)

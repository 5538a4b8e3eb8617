"""Compiling in the background: a step never waits for Numba.

A new kernel takes seconds to compile (a kernel on disk loads on the first call instead, in about
0.1 s). Meanwhile each step runs on the numpy interpreter, which has the kernel's semantics
(outputs, Variable updates in program order, nothing written when a step fails), so the first
step of a fresh process costs a trace instead of a compile, and training starts at once. The
first call starts one compiling thread; once the kernel is ready every later call runs it.
Compilation failures are raised, wrapped, by the next call, before that step runs.

Threads still compiling when the process exits or forks are waited for, so their disk-cache
entries are complete and a child never inherits a half-held compiler lock.
"""
import atexit
import os
import threading

from .. import errors

_pending = []
_start_lock = threading.Lock()


class Tiered:
    """An executable that interprets the graph until its kernel has been compiled."""

    def __init__(self, interpreted, build_kernel, on_compiled=None):
        self.interpreted = interpreted
        self._build_kernel = build_kernel   # () -> (Kernel, how); runs in the thread
        self._on_compiled = on_compiled     # called with how ('compiled' or 'disk')
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
            kernel, how = self._build_kernel()
            kernel.compile(args)
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


@atexit.register
def wait_all():
    """Block until every kernel compiling in the background is ready (or has failed)."""
    for thread in list(_pending):
        if thread is not threading.current_thread():
            thread.join()


# A child forked while a thread compiles would inherit held locks (ours and Numba's) and a
# thread that does not exist there: finish compiling first.
os.register_at_fork(before=wait_all)

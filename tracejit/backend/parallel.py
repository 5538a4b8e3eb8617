"""Kernels with parallel loops under threads and fork.

Numba runs prange loops on a threading layer. Its default on Linux without TBB is GNU OpenMP,
which does not survive fork: a child of a process that ran a parallel loop aborts ("fork() called
from a process already using GNU OpenMP") when it runs one, and a `multiprocessing` fork pool
started after training hangs. So, unless the user chose a layer (NUMBA_THREADING_LAYER, or
`numba.config.THREADING_LAYER` set before the first kernel), tracejit asks Numba for a fork-safe
one: TBB where it loads (tracejit depends on pip's `tbb` where it has wheels), else the
workqueue layer.

Workqueue aborts the process when two threads launch parallel loops at once, so kernels with
parallel loops run one at a time (`launch_lock`). Each already uses every core: little is lost.
"""
import ctypes
import functools
import importlib.metadata
import os
import re
import sys
import threading

launch_lock = threading.Lock()


def choose_threading_layer(parallel):
    """Ask Numba for a fork-safe threading layer unless the user chose one, and before a kernel
    with `parallel` loops, make pip's TBB loadable. Must run before Numba starts its threads (the
    first parallel kernel compiled or loaded); later it is a no-op."""
    import numba
    if 'NUMBA_THREADING_LAYER' not in os.environ and numba.config.THREADING_LAYER == 'default':
        numba.config.THREADING_LAYER = 'forksafe'
    if parallel and numba.config.THREADING_LAYER.lower() in ('default', 'tbb', 'safe',
                                                             'forksafe', 'threadsafe'):
        _load_pip_tbb()


@functools.cache
def _load_pip_tbb():
    """Make pip's TBB loadable. The `tbb` wheel puts libtbb in the environment's lib/, where
    the dynamic loader does not look, so Numba's TBB layer (which needs it by name) would not
    load and Numba would fall back to workqueue, whose launch costs ~65 us against TBB's ~2.
    A library loaded by path first satisfies the later load by name."""
    if not sys.platform.startswith('linux'):
        return
    try:
        files = importlib.metadata.distribution('tbb').files or ()
    except importlib.metadata.PackageNotFoundError:
        return
    for file in files:
        if re.fullmatch(r'libtbb\.so\.\d+', file.name):
            try:
                ctypes.CDLL(str(file.locate()), mode=ctypes.RTLD_GLOBAL)
            except OSError:   # a broken install: Numba falls back to another layer
                pass
            return


# A child forked while another thread runs a parallel kernel would inherit the lock held (and
# the threading layer mid-loop): let that kernel finish first.
os.register_at_fork(before=launch_lock.acquire, after_in_parent=launch_lock.release,
                    after_in_child=launch_lock.release)

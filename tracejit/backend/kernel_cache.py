"""Kernels (and helpers called from Python) load machine code from Numba's disk cache without
Numba's registry refresh.

Before it loads a cached function, Numba refreshes its target context: it imports and registers
the typing and lowering of everything it can compile, some forty modules, about half a second,
the largest part of a warm script's start-up (seed 001's 5000-step loop took 0.84-1.01 s with
it and 0.55-0.66 s without, from process start). Machine code needs none of that, only the
runtime it links against: NRT's allocator, initialised here. Numba's C helpers and libm are
registered when the target context is created, and a parallel kernel's entry starts the thread
pool itself (its reload hooks). Compiling still refreshes: Numba's compiler does it first.
"""
from numba.core import caching
from numba.core.runtime import rtsys


class RuntimeOnlyCache(caching.FunctionCache):
    """Numba's cache of one function, loading with only the runtime initialised."""

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def load_without_refresh(dispatcher):
    """Make the cached `dispatcher` (a generated kernel, a helper called from Python) load
    this way; returns it."""
    dispatcher._cache = RuntimeOnlyCache(dispatcher.py_func)
    return dispatcher

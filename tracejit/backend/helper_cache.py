"""One disk-cache stamp for all the helper modules' Numba functions.

Numba keys a cached function on the content of its own file. A helper in kernels.py compiles in
code from gemm.py, rowops.py and fastmath.py, so a change there alone left kernels.py's cached
machine code in use: stale results. The locators here stamp the cache entries of every helper
module with the hash of all their sources instead (the hash generated kernels embed), so any
change recompiles them all. Modules defining `cache=True` functions import this one first:
Numba picks a function's locator when it is decorated.
"""
import os

from numba.core import caching

from .compiler import HELPER_DIR, HELPER_FILES, helper_sources, helpers_hash

_PATHS = frozenset(os.path.join(HELPER_DIR, name) for name in HELPER_FILES)
_STAMP = helpers_hash(helper_sources())


def _stamped(locator):
    """`locator` for the helper modules only, with the shared stamp."""
    class HelperLocator(locator):
        def get_source_stamp(self):
            return _STAMP

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.abspath(py_file) not in _PATHS:
                return None
            return super().from_function(py_func, py_file)
    HelperLocator.__name__ = HelperLocator.__qualname__ = f'Helper{locator.__name__}'
    return HelperLocator


def _numba(name):
    """caching's class `name`: public since Numba 0.61, with a leading underscore before."""
    return getattr(caching, name, None) or getattr(caching, '_' + name)


# Numba's own order of locators (a user's NUMBA_CACHE_DIR first), each for the helpers first
_numba('CacheImpl')._locator_classes[:0] = [
    _stamped(_numba(name)) for name in ('UserProvidedCacheLocator', 'InTreeCacheLocator',
                                        'UserWideCacheLocator')]

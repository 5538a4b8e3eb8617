"""The addresses and handles a compiled kernel needs to call the MPI library mpi4py loaded.

A kernel calls MPI through function pointers and handles it receives as int64 arguments (in
its `ic` constants), never through addresses written into its source: the source, hence the
disk cache entry, is the same in every process, and each process passes its own values.
Loaded lazily: importing mpi4py initialises MPI, which only a distributed step should do.
"""
import ctypes
import functools

import numpy as np

FUNCTIONS = ('MPI_Iallreduce', 'MPI_Test', 'MPI_Wtime')


@functools.lru_cache(maxsize=None)
def _library():
    from mpi4py import MPI
    return MPI, ctypes.CDLL(MPI.__file__)  # dlsym on mpi4py's module finds libmpi's symbols


def handle_bits():
    """Width of MPI's handles: 32 in MPICH (integers), 64 in Open MPI (pointers)."""
    MPI, _ = _library()
    return 8 * MPI._sizeof(MPI.Comm)


def function_addresses():
    """Addresses of FUNCTIONS, of the C library's sched_yield, then MPI_IN_PLACE (a special
    address: -1 in MPICH, 1 in Open MPI)."""
    MPI, lib = _library()
    functions = [getattr(lib, name) for name in FUNCTIONS] + [ctypes.CDLL(None).sched_yield]
    return [ctypes.cast(f, ctypes.c_void_p).value for f in functions] + [int(MPI.IN_PLACE)]


def sum_handles(dtype):
    """(datatype, MPI_SUM) handles for a sum of `dtype` elements."""
    MPI, _ = _library()
    datatype = MPI._typedict[np.dtype(dtype).char]
    return [MPI._handleof(datatype), MPI._handleof(MPI.SUM)]

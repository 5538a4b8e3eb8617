"""MPI calls from inside a compiled kernel: an in-place allreduce with a deadline, through C
function pointers received as arguments (see mpi_library.py).

The buffer is reduced in place (MPI_IN_PLACE): it is the step's persistent fusion buffer
(fusion_buffers.py), so a step neither allocates a receive buffer nor hands MPI a new address.

The allreduce is non-blocking (MPI_Iallreduce) and polled with MPI_Test until it completes or
`timeout` seconds of MPI_Wtime pass: a peer that died, stopped early or runs a different step
makes this rank raise DeadlineExceededError instead of waiting forever. MPICH's blocking
MPI_Allreduce polls the same way; after SPINS polls this one also yields its core between polls
(sched_yield), so on a machine with more busy processes than cores the peer it waits for can
be scheduled instead of the poller.

`fns` holds the addresses of (MPI_Iallreduce, MPI_Test, MPI_Wtime, sched_yield, MPI_IN_PLACE),
`handles`
(datatype, op, communicator); a handle is an integer of `bits` bits (32 for MPICH, 64 for Open
MPI), passed as an int64 and narrowed here, so one kernel source serves both.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import helper_cache  # noqa: F401 (before any cache=True function)
from ..errors import DeadlineExceededError, UnavailableError

_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)


def _narrow(builder, value, llvm_type):
    if llvm_type == _I8P:
        return builder.inttoptr(value, _I8P)
    return builder.trunc(value, llvm_type) if llvm_type.width < 64 else value


def _c_function(result, llvm_result, llvm_args):
    """An intrinsic `call(address, (arg, ..))` calling the C function at `address` with
    parameters of the LLVM types `llvm_args`; each argument (an integer: pointers come as
    their address) is converted to int64, then narrowed to its parameter's type."""
    @intrinsic
    def call(typingctx, address, arguments):
        if not isinstance(arguments, types.BaseTuple) or len(arguments) != len(llvm_args):
            return None

        def codegen(context, builder, signature, values):
            function_type = ir.FunctionType(llvm_result, llvm_args)
            function = builder.inttoptr(values[0], function_type.as_pointer())
            converted = [_narrow(builder, context.cast(builder, builder.extract_value(
                values[1], k), arguments[k], types.int64), t) for k, t in enumerate(llvm_args)]
            return builder.call(function, converted)
        return result(types.int64, arguments), codegen
    return call


def _iallreduce(handle):
    return _c_function(types.int32, _I32, [_I8P, _I8P, _I32, handle, handle, handle, _I8P])


_mpi_test = _c_function(types.int32, _I32, [_I8P, _I8P, _I8P])
_mpi_wtime = _c_function(types.float64, ir.DoubleType(), [])
_sched_yield = _c_function(types.int32, _I32, [])
SPINS = 100
_IALLREDUCE = {32: _iallreduce(ir.IntType(32)), 64: _iallreduce(ir.IntType(64))}


def _allreduce_sum(iallreduce):
    @numba.njit(nogil=True, cache=True, fastmath=False)   # not the caller's (see kernels._cached)
    def allreduce_sum(buffer, fns, handles, timeout):
        """buffer (C-contiguous) <- its sum over ranks, or raise."""
        request = np.zeros(1, np.int64)
        flag = np.zeros(1, np.int32)
        status = np.zeros(16, np.int64)  # larger than MPI_Status in MPICH and Open MPI
        code = iallreduce(fns[0], (fns[4], buffer.ctypes.data, buffer.size, handles[0],
                                   handles[1], handles[2], request.ctypes.data))
        if code != 0:
            raise UnavailableError('MPI_Iallreduce failed in a compiled step')
        start = _mpi_wtime(fns[2], ())
        polls = 0
        while True:
            if _mpi_test(fns[1], (request.ctypes.data, flag.ctypes.data, status.ctypes.data)):
                raise UnavailableError('MPI_Test failed in a compiled step: a rank has failed')
            if flag[0]:
                return
            polls += 1
            if polls > SPINS:
                _sched_yield(fns[3], ())
            if _mpi_wtime(fns[2], ()) - start > timeout:
                raise DeadlineExceededError(
                    'allreduce in a compiled step timed out: another rank died, stopped early '
                    'or runs a different step (TRACEJIT_DISTRIBUTE_TIMEOUT sets the limit)')
    return allreduce_sum


allreduce_sum32 = _allreduce_sum(_IALLREDUCE[32])
allreduce_sum64 = _allreduce_sum(_IALLREDUCE[64])

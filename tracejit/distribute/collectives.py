"""Horovod's collectives on tensors: allreduce, allgather, broadcast, and the fused allreduce
of a list (tensor fusion) that gradients go through.

Inside `tj.function` they are IR: an allreduce is the `allreduce_sum` primitive, which the
compiled step runs itself (one MPI call from native code, see backend/mpi_kernels.py);
allgather and broadcast are built on it (each rank's block placed in a zero buffer, then
summed), so every collective of a step is native and differentiable. Eagerly they are the
same ops, run by mpi4py. A sparse gradient (anything with `values`, `indices` and
`dense_shape`, as tj.IndexedSlices) is allgathered, never densified.
"""
import numpy as np

from .. import errors, ops
from ..tracing import Tracer
from . import sparse, world


class ReduceOp:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f'tj.distribute.{self.name}'


Average = ReduceOp('Average')
Sum = ReduceOp('Sum')


def reduce_op(op, average):
    if average is not None:
        if op is not None:
            raise errors.InvalidArgumentError('pass either op= or the older average=, not both')
        return Average if average else Sum
    if op is None:
        return Average
    if op not in (Average, Sum):
        raise errors.InvalidArgumentError(
            f'op must be tj.distribute.Average or tj.distribute.Sum, got {op!r}')
    return op


def _sum(tensor):
    return ops.allreduce_sum(tensor, world.handle(), world.timeout())


def _scale(tensor, factor):
    return tensor if factor == 1.0 else tensor * ops.cast(factor, tensor.dtype)


def allreduce(tensor, average=None, op=None, name=None, prescale_factor=1.0,
              postscale_factor=1.0):
    """The sum (op=Sum) or mean (op=Average, the default) of `tensor` over all processes."""
    op = reduce_op(op, average)
    if sparse.is_indexed_slices(tensor):
        return sparse.allgathered(tensor, allgather, 1.0 / world.size() if op is Average else 1.0)
    tensor = ops.convert_to_tensor(tensor) if not isinstance(tensor, Tracer) else tensor
    factor = _factor(op, tensor.dtype, postscale_factor)
    return _scale(_sum(_scale(tensor, prescale_factor)), factor)


def _factor(op, dtype, postscale_factor=1.0):
    """What the sum over processes is multiplied by."""
    if op is Average and dtype.is_integer:
        raise errors.DTypeError(f'allreduce: the average of {dtype.name} tensors is not '
                                f'an integer; cast to a float type or use op=Sum')
    return postscale_factor / world.size() if op is Average else postscale_factor


def grouped_allreduce(tensors, average=None, op=None):
    """`allreduce` of each tensor of a list (None entries stay None), fused: the dense tensors
    of one dtype are packed into one flat buffer and reduced by ONE collective, so a step's
    gradients cost one MPI call, not one per variable. Sparse ones are allgathered. The
    average's scaling is applied per tensor after the split, where it fuses with the
    consumer (the optimizer update), instead of as a pass of its own over the buffer."""
    op = reduce_op(op, average)
    results = [None] * len(tensors)
    groups = {}
    for k, t in enumerate(tensors):
        if t is None:
            continue
        if sparse.is_indexed_slices(t):
            results[k] = allreduce(t, op=op)
        else:
            t = t if isinstance(t, Tracer) else ops.convert_to_tensor(t)
            groups.setdefault(t.dtype.name, []).append((k, t))
    for members in groups.values():
        factor = _factor(op, members[0][1].dtype)
        flat = [ops.reshape(t, [-1]) for _, t in members]
        total = allreduce(ops.concat(flat, 0) if len(flat) > 1 else flat[0], op=Sum)
        start = 0
        for (k, t), f in zip(members, flat):
            size = int(np.prod(t.shape))
            results[k] = _scale(ops.reshape(total[start:start + size], t.shape), factor)
            start += size
    return results


def allgather(tensor, name=None):
    """Every process's `tensor` concatenated along axis 0 in rank order. Inside a compiled
    step every process must pass the same shape; eagerly the first axis may differ."""
    if world.size() == 1:
        return ops.identity(tensor)
    if not isinstance(tensor, Tracer):
        return ops.convert_to_tensor(_allgather_eager(np.asarray(ops.convert_to_tensor(tensor))))
    if not tensor.shape:
        raise errors.ShapeError('allgather needs a tensor of rank >= 1, got a scalar')
    rows, rank = tensor.shape[0], world.rank()
    rest = tuple(tensor.shape[1:])
    zeros = [ops.zeros((n,) + rest, tensor.dtype) for n in (rank * rows,
                                                            (world.size() - rank - 1) * rows)]
    return _sum(ops.concat([zeros[0], tensor, zeros[1]], 0))


def broadcast(tensor, root_rank, name=None):
    """`tensor` as the process `root_rank` holds it."""
    check_root(root_rank)
    if world.size() == 1:
        return ops.identity(tensor)
    if not isinstance(tensor, Tracer):
        value = np.array(ops.convert_to_tensor(tensor).numpy(), order='C')
        wait(world.communicator().Ibcast(value, root=root_rank), 'broadcast')
        return ops.convert_to_tensor(value)
    return _sum(tensor if world.rank() == root_rank else ops.zeros_like(tensor))


def check_root(root_rank):
    if not isinstance(root_rank, (int, np.integer)) or not 0 <= root_rank < world.size():
        raise errors.InvalidArgumentError(
            f'root_rank must be a rank in [0, {world.size()}), got {root_rank!r}')


def _allgather_eager(value):
    comm = world.communicator()
    if value.ndim == 0:
        raise errors.ShapeError('allgather needs a tensor of rank >= 1, got a scalar')
    shapes = gather_objects((value.shape, value.dtype.str))
    if any(s[1:] != value.shape[1:] or d != value.dtype.str for s, d in shapes):
        raise errors.ShapeError(
            'allgather: processes passed tensors that differ beyond the first axis: '
            + ', '.join(f'rank {r}: {s} {np.dtype(d).name}' for r, (s, d) in enumerate(shapes)))
    counts = [int(np.prod(s)) for s, _ in shapes]
    out = np.empty((sum(s[0] for s, _ in shapes),) + value.shape[1:], value.dtype)
    wait(comm.Iallgatherv(np.ascontiguousarray(value), [out, counts]), 'allgather')
    return out


def gather_objects(obj):
    """[obj of rank 0, obj of rank 1, ..] (small picklable values), within the deadline."""
    import pickle
    comm = world.communicator()
    data = np.frombuffer(pickle.dumps(obj), np.uint8)
    lengths = np.empty(comm.size, np.int64)
    wait(comm.Iallgather(np.array([data.size], np.int64), lengths), 'allgather')
    out = np.empty(int(lengths.sum()), np.uint8)
    wait(comm.Iallgatherv(data, [out, lengths]), 'allgather')
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [pickle.loads(out[a:b].tobytes()) for a, b in zip(bounds[:-1], bounds[1:])]


def wait(request, what):
    """Wait for a non-blocking MPI call, at most `world.timeout()` seconds."""
    import time
    deadline = time.monotonic() + world.timeout()
    while not request.Test():
        if time.monotonic() > deadline:
            raise errors.DeadlineExceededError(
                f'{what} timed out after {world.timeout():g} s: another rank died, stopped '
                f'early or runs different code (TRACEJIT_DISTRIBUTE_TIMEOUT sets the limit)')

"""Data-parallel scaling of W3 and W4 on MPI: 2 processes of 1 thread vs 1 process of 1 thread.

    mpiexec -n 2 python -m benchmarks.distributed [--workloads W4,W3] [--repeats 7]

Every process trains on its own batch of the workload's size (weak scaling, as Horovod is
measured): throughput scaling = 2 x t(one process alone) / t(distributed step). In each round,
taken in turn so background load hits every measurement alike:
  alone        rank 0 runs the plain step while rank 1 sleeps (it polls a barrier every 2 ms);
  local        both ranks run the plain step at once (both cores busy, no communication);
  distributed  both ranks run the step with DistributedGradientTape (the allreduce inside the
               kernel);
  mpi4py       both ranks run mpi4py's `Allreduce` of the step's gradient bytes;
  synced       the plain step then the in-kernel allreduce of one float: lockstep, no data;
  in-kernel    the compiled steps' allreduce (backend/mpi_kernels.py) of the gradient bytes,
               called alone.
The allreduce's share of the step is distributed - local (packing, MPI call, waiting for the
peer), quoted against mpi4py's own Allreduce of the same bytes, and split into: lockstep
(synced - local: waiting for the slower rank), the MPI call (in-kernel), and the rest (packing,
both ranks' memory-bound phases coinciding). Medians of `repeats` blocks of >= 50 ms; rank 0
prints, with the minor page faults per step of the plain and distributed steps.
"""
import os

for _name in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMBA_NUM_THREADS'):
    os.environ.setdefault(_name, '1')

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tracejit as tj  # noqa: E402

from .tracejit_workloads import Adam, mlp_logits  # noqa: E402
from .workloads import make_w3, make_w4  # noqa: E402

hvd = tj.distribute
MIN_BLOCK_S = 0.05


def make_step(problem, distributed):
    variables = [tj.Variable(v.copy()) for v in problem.init.values()]
    optimizer = Adam(variables)

    @tj.function
    def step(x, labels):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=mlp_logits(variables, x)))
        if distributed:
            tape = hvd.DistributedGradientTape(tape)
        optimizer.apply_gradients(tape.gradient(loss, variables), variables)
        return loss
    feed = problem.new_feed()
    return lambda: step(*feed()), sum(v.numpy().size for v in variables)


def idle_until_peer(comm):
    """Wait for the other rank without taking a core (MPI's own waits spin)."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def block(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def steps_per_block(fn, comm=None):
    """The smallest power of two of steps lasting >= MIN_BLOCK_S. With `comm` (fn runs a
    collective) every rank decides on the slowest rank's time, so all make the same calls."""
    n = 1
    while True:
        seconds = block(fn, n) * n
        if comm is not None:
            from mpi4py import MPI
            seconds = comm.allreduce(seconds, op=MPI.MAX)
        if seconds >= MIN_BLOCK_S:
            return n
        n *= 2


def measure(problem, repeats, comm):
    alone, count = make_step(problem, False)
    distributed, _ = make_step(problem, True)
    grads = np.ones(count, np.float32)
    out = np.empty_like(grads)

    kernel_allreduce = in_kernel_allreduce(grads, comm)
    sync = in_kernel_allreduce(np.ones(1, np.float32), comm)

    def mpi4py_allreduce():
        comm.Allreduce(grads, out)

    def synced():
        alone()
        sync()
    runs = {'local': alone, 'distributed': distributed, 'mpi4py': mpi4py_allreduce,
            'synced': synced, 'in-kernel': kernel_allreduce}
    for fn in runs.values():   # compile and warm up on both ranks
        fn(), fn(), fn()
    tj.config.block_until_compiled()   # time native kernels, not the interpreter meanwhile
    sizes = {name: steps_per_block(fn, comm) for name, fn in runs.items()}
    sizes['alone'] = comm.bcast(steps_per_block(alone) if comm.rank == 0 else None)
    times = {name: [] for name in ('alone', *runs)}
    for _ in range(repeats):
        comm.Barrier()
        if comm.rank == 0:
            times['alone'].append(block(alone, sizes['alone']))
            comm.Ibarrier().Wait()
        else:
            idle_until_peer(comm)
        for name, fn in runs.items():
            comm.Barrier()
            times[name].append(block(fn, sizes[name]))
    faults = {name: page_faults(runs[name]) for name in ('local', 'distributed')}
    return times, count, faults


def in_kernel_allreduce(buffer, comm):
    """The allreduce compiled steps make, of `buffer` in place, as a Python callable."""
    from mpi4py import MPI

    from tracejit.backend import mpi_kernels, mpi_library
    fns = np.array(mpi_library.function_addresses(), np.int64)
    handles = np.array(mpi_library.sum_handles(buffer.dtype) + [MPI._handleof(comm)], np.int64)
    allreduce = getattr(mpi_kernels, f'allreduce_sum{mpi_library.handle_bits()}')
    return lambda: allreduce(buffer, fns, handles, 300.0)


def page_faults(fn, steps=10):
    """Minor page faults per call of `fn` (a fresh multi-MB array costs one per 4 KiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def report(problem, times, count, faults):
    us = {name: float(np.median(t)) * 1e6 for name, t in times.items()}
    spread = {name: float(np.subtract(*np.percentile(t, [75, 25])) / 2 / np.median(t))
              for name, t in times.items()}
    share = us['distributed'] - us['local']
    mib = count * 4 / 2**20
    print(f'{problem.name}  {problem.title}: gradients {count} floats ({mib:.2f} MiB)')
    for name in ('alone', 'local', 'distributed', 'mpi4py', 'synced', 'in-kernel'):
        print(f'  {name:12s} {us[name]:10.1f} us   +-{100 * spread[name]:4.1f}%')
    scaling = 2 * us['alone'] / us['distributed']
    print(f'  throughput scaling 2 x alone / distributed = {scaling:.2f}x'
          f'   (both cores busy, no communication: 2 x alone / local = '
          f'{2 * us["alone"] / us["local"]:.2f}x)')
    print(f'  allreduce share = distributed - local = {share:.1f} us = '
          f'{share / us["mpi4py"]:.2f}x mpi4py Allreduce of the same bytes '
          f'({100 * share / us["distributed"]:.0f}% of the step)')
    lockstep = us['synced'] - us['local']
    print(f'    lockstep {lockstep:.1f} us, MPI call {us["in-kernel"]:.1f} us, rest '
          f'{share - lockstep - us["in-kernel"]:.1f} us;  page faults a step: local '
          f'{faults["local"]:.0f}, distributed {faults["distributed"]:.0f};  load '
          f'{os.getloadavg()[0]:.2f}', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workloads', default='W4,W3')
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args()
    hvd.init()
    comm = hvd.world.communicator()
    if comm is None or comm.size != 2:
        raise SystemExit('run with: mpiexec -n 2 python -m benchmarks.distributed')
    makers = {'W3': make_w3, 'W4': make_w4}
    for name in args.workloads.split(','):
        problem = makers[name]()
        times, count, faults = measure(problem, args.repeats, comm)
        if comm.rank == 0:
            report(problem, times, count, faults)


if __name__ == '__main__':
    main()

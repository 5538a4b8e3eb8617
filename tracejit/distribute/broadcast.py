"""broadcast_variables: every process starts from the root's values, after a check that all
processes hold the same variables (a model built differently on one rank is named, not
silently mixed)."""
import numpy as np

from .. import errors
from . import collectives, world


def _structure(variables):
    return [(getattr(v, 'name', f'variable {k}'), tuple(v.shape), np.dtype(v.dtype.np).str)
            for k, v in enumerate(variables)]


def _mismatch(root, other, rank):
    """A sentence naming the first difference between the root's structure and rank's."""
    for k, (a, b) in enumerate(zip(root, other)):
        if a != b:
            return (f'variable {k} is {b[0]!r} of shape {b[1]} {np.dtype(b[2]).name} on rank '
                    f'{rank} but {a[0]!r} of shape {a[1]} {np.dtype(a[2]).name} on the root')
    if len(root) != len(other):
        extra = (root if len(root) > len(other) else other)[min(len(root), len(other))][0]
        return (f'rank {rank} has {len(other)} variables, the root {len(root)} (the first '
                f'without a match: {extra!r})')
    return None


def broadcast_variables(variables, root_rank=0):
    """Assign to each Variable its value on process `root_rank`. Raises InvalidArgumentError on
    every process, naming the variable, when the processes' variables differ in number, name,
    shape or dtype."""
    collectives.check_root(root_rank)
    variables = list(variables)
    if world.size() == 1:
        return
    structures = collectives.gather_objects(_structure(variables))
    for rank, structure in enumerate(structures):
        problem = _mismatch(structures[root_rank], structure, rank)
        if problem:
            raise errors.InvalidArgumentError(
                f'broadcast_variables: the model differs between processes: {problem}; build '
                f'the same model on every process')
    comm = world.communicator()
    buffers = [np.array(v.numpy(), order='C') for v in variables]
    requests = [comm.Ibcast(b, root=root_rank) for b in buffers]
    for request in requests:
        collectives.wait(request, 'broadcast_variables')
    for v, b in zip(variables, buffers):
        v.assign(b)

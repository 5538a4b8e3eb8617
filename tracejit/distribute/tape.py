"""DistributedGradientTape: a GradientTape whose gradients are averaged over all processes."""
from .. import tree
from ..autodiff import GradientTape
from . import collectives, sparse


class DistributedGradientTape:
    """Wraps `tape` (Horovod's API): `gradient` returns the allreduce of the local gradients,
    fused into one collective per dtype (see collectives.grouped_allreduce). Every other
    attribute is the wrapped tape's. Use it after the `with` block, or as the block's tape."""

    def __init__(self, gradtape=None, op=None, average=None, persistent=False,
                 watch_accessed_variables=True):
        if gradtape is None:
            gradtape = GradientTape(persistent, watch_accessed_variables)
        self._tape = gradtape
        self._op = collectives.reduce_op(op, average)

    def __enter__(self):
        self._tape.__enter__()
        return self

    def __exit__(self, *exc):
        return self._tape.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._tape, name)

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients='none'):
        grads = self._tape.gradient(target, sources, output_gradients, unconnected_gradients)
        leaves, treedef = tree.flatten(grads, is_leaf=_gradient_leaf)
        return tree.unflatten(treedef, collectives.grouped_allreduce(leaves, op=self._op))


def _gradient_leaf(value):
    return value is None or sparse.is_indexed_slices(value)

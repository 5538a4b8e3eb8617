"""DistributedOptimizer: an optimizer that averages gradients over all processes before it
applies them, inside the compiled step when it runs in one (Keras `fit` does)."""
from .. import errors
from ..keras import optimizers
from . import collectives


class _Distributed:
    """Mixed in before the optimizer's class: `apply_gradients` (which `minimize` and `fit`
    call) first reduces the gradients, fused into one collective per dtype."""

    def apply_gradients(self, grads_and_vars, name=None):
        pairs = list(grads_and_vars)
        grads = collectives.grouped_allreduce([g for g, _ in pairs], op=self._distributed_op)
        return super().apply_gradients(zip(grads, [v for _, v in pairs]), name)


def DistributedOptimizer(optimizer, name=None, op=None, average=None):  # noqa: N802 (Horovod)
    """An optimizer like `optimizer` (same hyperparameters, learning rate and slot Variables,
    shared with it) whose updates use the gradients reduced over all processes
    (op=Average by default, as Horovod)."""
    if not isinstance(optimizer, optimizers.Optimizer):
        raise TypeError(errors.at_user_line(
            f'DistributedOptimizer wraps a tj.keras optimizer, got {type(optimizer).__name__}'))
    cls = type(optimizer)
    if issubclass(cls, _Distributed):
        raise errors.InvalidArgumentError('this optimizer is already a DistributedOptimizer')
    distributed = cls.__new__(type(f'Distributed{cls.__name__}', (_Distributed, cls), {}))
    distributed.__dict__.update(optimizer.__dict__)
    distributed._distributed_op = collectives.reduce_op(op, average)
    if name is not None:
        distributed.name = name
    return distributed

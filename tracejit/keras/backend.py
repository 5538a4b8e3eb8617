"""Keras backend helpers: float type, epsilon, and the scope that runs initialisers eagerly.

Weights are created while a layer is first called, which may happen while `tj.function` is
tracing a training step. Their initial values must still be concrete numbers drawn once (not
nodes of the step's graph that would re-draw every step), so initialisers run under
`init_scope()`, TensorFlow's name for "step outside any graph being built".
"""
import contextlib

from .. import ops, tracing

_EPSILON = 1e-7


def floatx():
    return 'float32'


def epsilon():
    """The fuzz factor of the probability losses (Keras's 1e-7)."""
    return _EPSILON


@contextlib.contextmanager
def init_scope():
    """Run the block eagerly: no active trace and no recording gradient tape."""
    traces, tapes = list(tracing._trace_stack), list(tracing.active_tapes)
    tracing._trace_stack[:], tracing.active_tapes[:] = [], []
    try:
        yield
    finally:
        tracing._trace_stack[:], tracing.active_tapes[:] = traces, tapes


def element_count(values, batch_size=None):
    """How many elements `values` has, for means over a batch.

    With `batch_size` (a traced scalar inside compiled steps) the count is computed from it at
    run time, so a step holds no constant that depends on the batch size: the last, smaller
    batch of an epoch then produces the same kernel source and never recompiles.
    """
    shape = tuple(values.shape)
    if batch_size is None or not shape:
        size = 1
        for d in shape:
            size *= d
        return float(size)
    per_sample = 1
    for d in shape[1:]:
        per_sample *= d
    return batch_size if per_sample == 1 else ops.multiply(batch_size, float(per_sample))

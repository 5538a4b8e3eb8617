"""Keras backend helpers: float type, epsilon, and the scope that runs initialisers eagerly.

Weights are created while a layer is first called, which may happen while `tj.function` is
tracing a training step. Their initial values must still be concrete numbers drawn once (not
nodes of the step's graph that would re-draw every step), so initialisers run under
`init_scope()`, TensorFlow's name for "step outside any graph being built".
"""
from .. import ops
from . import serialization
from ..tracing import init_scope  # noqa: F401 (re-exported for the layers)

_EPSILON = 1e-7


def floatx():
    return 'float32'


def epsilon():
    """The fuzz factor of the probability losses (Keras's 1e-7)."""
    return _EPSILON


def element_count(values, batch_size=None, batch_dim=None):
    """How many elements `values` has, for means over a batch.

    When `batch_size` is given (a traced scalar inside compiled steps) and the leading axis of
    `values` is the batch axis (its length is `batch_dim`), the count is computed from it at run
    time, so a step holds no constant that depends on the batch size: the last, smaller batch
    of an epoch then produces the same kernel source and never recompiles.
    """
    shape = tuple(values.shape)
    per_sample = 1
    for d in shape[1:]:
        per_sample *= d
    if batch_size is None or not shape or shape[0] != batch_dim:
        return float(per_sample * shape[0]) if shape else 1.0
    return batch_size if per_sample == 1 else ops.multiply(batch_size, float(per_sample))


def lookup(identifier, functions, classes, base, kind):
    """Resolve a Keras identifier: a snake_case name gives a function, a class name a fresh
    instance, a `base` subclass an instance, a saved record its object; instances and
    callables are returned unchanged."""
    if isinstance(identifier, dict):
        return serialization.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        if identifier in functions:
            return functions[identifier]
        if identifier in classes:
            return classes[identifier]()
        raise ValueError(f'unknown {kind} {identifier!r}; use one of {sorted(functions)}, a '
                         f'{base.__name__} instance or a function (y_true, y_pred)')
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f'{kind} must be a name, a {base.__name__} or a callable, got {identifier!r}')

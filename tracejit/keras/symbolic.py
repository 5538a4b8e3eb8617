"""Symbolic tensors of the functional API: `KerasTensor` and the `Node`s that layer calls on
them record.

Calling a layer on KerasTensors computes nothing: it records a `Node` (the layer, the call's
arguments with KerasTensors in them, and the output KerasTensors) and returns the outputs.
Output shapes come from tracing the layer's real `__call__` on stand-in inputs inside a
throwaway trace (no numbers are computed, nothing is compiled), once with every unknown size
set to 2 and once with 3: sizes that differ between the two are unknown (None) in the output,
so the batch axis stays None and layers need no separate shape rule. The layer builds its
weights during the first of those traces, as it would on its first real call.
"""
from .. import dtypes, errors, tracing, tree

_PROBE_SIZES = (2, 3)


class KerasTensor:
    """A symbolic value: shape (None for unknown sizes), dtype, and the node producing it
    (`_keras_history = (layer, node_index, tensor_index)`, as in Keras)."""

    def __init__(self, shape, dtype, name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtypes.as_dtype(dtype)
        self.name = name
        self._keras_history = history

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return (f'<KerasTensor shape={self.shape}, dtype={self.dtype.name}, '
                f'name={self.name}>')

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            f'{self!r} is symbolic (a functional-model input or a layer output): it has no '
            'values. Compute on it with layers, e.g. keras.layers.Add()([a, b]) or '
            'keras.layers.Lambda(lambda t: ...)(x)')

    __array__ = __bool__ = __float__ = __int__ = __index__ = numpy = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __neg__ = _refuse
    __getitem__ = _refuse


class Node:
    """One call of `layer`: `args`/`kwargs` as given (KerasTensors inside), `outputs` the
    KerasTensors it produced (a nested structure, like the call's result)."""

    def __init__(self, layer, args, kwargs, outputs):
        self.layer, self.args, self.kwargs, self.outputs = layer, args, kwargs, outputs

    @property
    def input_tensors(self):
        return [x for x in tree.leaves((self.args, self.kwargs)) if isinstance(x, KerasTensor)]

    @property
    def output_tensors(self):
        return tree.leaves(self.outputs)

    @property
    def is_input(self):
        return not self.input_tensors

    def parent_nodes(self):
        """The nodes producing this node's inputs."""
        return [layer._inbound_nodes[index]
                for layer, index, _ in (x._keras_history for x in self.input_tensors)]


def is_symbolic(value):
    return any(isinstance(x, KerasTensor) for x in tree.leaves(value))


def inbound_nodes(layer):
    """The nodes recorded by calls of `layer` on KerasTensors (a list the layer owns)."""
    if '_inbound_nodes' not in vars(layer):
        layer._inbound_nodes = []
    return layer._inbound_nodes


def call_layer(layer, inputs, args, kwargs):
    """Record a call of `layer` on symbolic `inputs`; return its symbolic outputs."""
    call_args = (inputs,) + tuple(args)
    if any(isinstance(x, KerasTensor) for x in tree.leaves((args, kwargs))):
        raise errors.InvalidArgumentError(
            f'layer {layer.name!r}: symbolic tensors must be passed as the first argument '
            '(a list or dict of them for several inputs)')
    probes = [_probe(layer, call_args, kwargs, size) for size in _PROBE_SIZES]
    (first, treedef), (second, _) = probes
    nodes = inbound_nodes(layer)
    outputs = []
    for index, (a, b) in enumerate(zip(first, second)):
        if len(a.shape) != len(b.shape):
            raise errors.InvalidArgumentError(
                f'layer {layer.name!r}: the rank of output {index} depends on the unknown '
                f'input sizes ({a.shape} and {b.shape}); the functional API needs fixed ranks')
        shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape))
        name = layer.name if len(first) == 1 else f'{layer.name}_{index}'
        outputs.append(KerasTensor(shape, a.dtype, name, (layer, len(nodes), index)))
    outputs = tree.unflatten(treedef, outputs)
    nodes.append(Node(layer, call_args, dict(kwargs), outputs))
    return outputs


def _probe(layer, call_args, kwargs, size):
    """The flat output tracers (and their structure) of `layer` called on stand-ins of
    `call_args` whose unknown sizes are `size`."""
    with tracing.Trace() as trace:
        def stand_in(x):
            if not isinstance(x, KerasTensor):
                return x
            shape = tuple(size if d is None else d for d in x.shape)
            return trace.new_input(shape, x.dtype.np)
        concrete = tree.tree_map(stand_in, call_args)
        outputs = layer(*concrete, **kwargs)
    leaves, treedef = tree.flatten(outputs)
    if not all(isinstance(x, tracing.Tracer) for x in leaves):
        raise errors.InvalidArgumentError(
            f'layer {layer.name!r} returned {outputs!r} on symbolic inputs; a layer called in '
            'a functional model must return tensors computed from its inputs')
    return leaves, treedef

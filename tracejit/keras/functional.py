"""The graph of a functional model: `Input`/`InputLayer`, the map from inputs to outputs (the
layer calls recorded on KerasTensors), running it on real tensors, and its Keras config.

`Graph` orders its nodes as Keras 3 does (`map_graph`): a depth-first walk back from the
outputs gives a topological order and each layer's first-visit index; a layer's depth is its
longest distance to an output; `layers` lists them by decreasing depth, ties in visit order.
Running the graph calls each node's layer on the values of its inputs, in topological order;
a layer called twice (shared) runs twice with the same weights. A model's `training` flag, when
given, overrides a `training=` recorded at construction (Keras 3's rule).
"""
import collections

import numpy as np

from .. import errors, tree
from .base_layer import Layer, unique_name
from .masking import call_with_mask
from .symbolic import KerasTensor, Node, inbound_nodes  # noqa: F401 (KerasTensor public)


class InputLayer(Layer):
    """The layer behind `Input(...)`: no weights, one node with no inputs; its output is the
    KerasTensor that a model's inputs name."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 sparse=False, ragged=False, **kwargs):
        super().__init__(name=name or unique_name('input_layer'), dtype=dtype or 'float32',
                         **kwargs)
        if sparse or ragged:
            raise NotImplementedError('sparse and ragged inputs are not supported')
        if batch_shape is None:
            if shape is None:
                raise ValueError('Input needs a shape (the sizes of one sample), e.g. '
                                 'keras.Input(shape=(28, 28, 1))')
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            batch_shape = (batch_size,) + shape
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        if any(d is not None and d < 0 for d in self.batch_shape):
            raise ValueError(f'Input sizes must be non-negative or None, got {batch_shape}')
        self.output = KerasTensor(self.batch_shape, self.dtype, self.name, (self, 0, 0))
        inbound_nodes(self).append(Node(self, (), {}, self.output))
        self.built = True

    def get_config(self):
        return {'batch_shape': self.batch_shape, 'dtype': self.dtype.name, 'sparse': False,
                'ragged': False, 'name': self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic input of a functional model: `shape` is one sample's shape (None for sizes
    known only at run time); the batch size is None unless `batch_size` is given."""
    if tensor is not None or optional:
        raise NotImplementedError('Input(tensor=...) and optional inputs are not supported')
    return InputLayer(shape, batch_size, dtype, batch_shape, name, sparse=bool(sparse)).output


class Graph:
    """The nodes between `inputs` and `outputs` (nested structures of KerasTensors)."""

    def __init__(self, inputs, outputs):
        for what, value in (('inputs', inputs), ('outputs', outputs)):
            leaves = tree.leaves(value)
            bad = [x for x in leaves if not isinstance(x, KerasTensor)]
            if bad or not leaves:
                raise TypeError(f'Model {what} must be KerasTensors (from keras.Input or layer '
                                f'calls on them), or lists/dicts of them; got {value!r}')
        self.inputs, self.outputs = inputs, outputs
        self.flat_inputs, self.flat_outputs = tree.leaves(inputs), tree.leaves(outputs)
        self.nodes, visit_index = self._topological_nodes()
        self.layers, self.nodes_by_depth = self._layers_by_depth(visit_index)
        self._check_computable()

    def _topological_nodes(self):
        """Nodes from inputs to outputs (depth-first post-order), and each layer's index of
        first visit."""
        done, in_progress, order, visit_index = set(), set(), [], {}
        input_ids = {id(x) for x in self.flat_inputs}

        def visit(tensor):
            layer, node_index, _ = tensor._keras_history
            node = layer._inbound_nodes[node_index]
            if node in done:
                return
            if not node.is_input and id(tensor) in input_ids:   # an intermediate as input
                done.add(node)
                return
            if node in in_progress:
                raise ValueError(f'tensor {tensor} from layer {layer.name!r} is part of a cycle')
            visit_index.setdefault(layer, len(visit_index))
            in_progress.add(node)
            if not node.is_input:
                for parent in node.input_tensors:
                    visit(parent)
            in_progress.discard(node)
            done.add(node)
            order.append(node)

        for output in self.flat_outputs:
            visit(output)
        return order, visit_index

    def _layers_by_depth(self, visit_index):
        depth_of_node, depth_of_layer = {}, {}
        members = set(self.nodes)
        for node in reversed(self.nodes):
            depth = max(depth_of_node.setdefault(node, 0), depth_of_layer.get(node.layer, 0))
            depth_of_layer[node.layer] = depth_of_node[node] = depth
            for parent in node.parent_nodes():
                if parent in members:
                    depth_of_node[parent] = max(depth + 1, depth_of_node.get(parent, 0))
        for tensor in self.flat_inputs:                   # inputs that reach no output
            layer = tensor._keras_history[0]
            if isinstance(layer, InputLayer) and layer not in depth_of_layer:
                depth_of_layer[layer], visit_index[layer] = 0, -1
                depth_of_node[layer._inbound_nodes[0]] = 0
        layers = sorted(depth_of_layer, key=lambda l: (-depth_of_layer[l], visit_index[l]))
        by_depth = collections.defaultdict(list)
        for node, depth in depth_of_node.items():
            by_depth[depth].append(node)
        names = [layer.name for layer in layers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f'The name "{name}" is used {names.count(name)} times in the '
                                 'model. All layer names should be unique.')
        return layers, dict(by_depth)

    def _check_computable(self):
        known = {id(x) for x in self.flat_inputs}
        for node in self.nodes:
            if node.is_input and id(node.outputs) not in known:
                raise ValueError(
                    f'Graph disconnected: the output {self.flat_outputs} depends on input '
                    f'{node.layer.name!r}, which is not among the model inputs')
            known.update(id(x) for x in node.output_tensors)

    @property
    def relevant_nodes(self):
        return set(self.nodes) | {n for nodes in self.nodes_by_depth.values() for n in nodes}

    # -- running ----------------------------------------------------------------------------

    def run(self, values, training=None):
        """The outputs (as structured as `outputs`) for input `values`."""
        flat = self._flat_values(values)
        for tensor, value in zip(self.flat_inputs, flat):
            _check_input(tensor, value)
        env = {id(x): v for x, v in zip(self.flat_inputs, flat)}
        masks = {}   # id of a KerasTensor -> the mask of its value (masking.py)

        def lookup(x):
            return env[id(x)] if isinstance(x, KerasTensor) else x

        for node in self.nodes:
            if node.is_input or all(id(x) in env for x in node.output_tensors):
                continue
            args, kwargs = tree.tree_map(lookup, (node.args, node.kwargs),
                                         is_leaf=lambda x: isinstance(x, KerasTensor))
            if training is not None:
                kwargs.pop('training', None)      # the model's flag reaches the layer
            first = node.args[0] if node.args else None
            mask = masks.get(id(first)) if isinstance(first, KerasTensor) else None
            outputs, mask = call_with_mask(node.layer, args[0], mask, *args[1:], **kwargs) \
                if args else (node.layer(**kwargs), None)
            env.update((id(x), v) for x, v in zip(node.output_tensors, tree.leaves(outputs)))
            out_masks = mask if isinstance(mask, (list, tuple)) else [mask]
            masks.update((id(x), m) for x, m in zip(node.output_tensors, out_masks))
        return tree.tree_map(lookup, self.outputs, is_leaf=lambda x: isinstance(x, KerasTensor))

    def _flat_values(self, values):
        """`values` matched to the inputs: the inputs' own structure, a dict keyed by input
        names, or a list in input order."""
        names = [x._keras_history[0].name for x in self.flat_inputs]
        if isinstance(values, dict) and not isinstance(self.inputs, dict):
            missing = [n for n in names if n not in values]
            if missing:
                raise ValueError(f'the model expects inputs named {names}; missing {missing} '
                                 f'in the given dict with keys {sorted(values)}')
            return [values[n] for n in names]
        if isinstance(self.inputs, dict) and isinstance(values, dict):
            missing = [k for k in self.inputs if k not in values]
            if missing:
                raise ValueError(f'the model expects inputs {sorted(self.inputs)}; missing '
                                 f'{missing}')
            return tree.leaves({k: values[k] for k in self.inputs})
        flat = tree.leaves(values) if isinstance(values, (list, tuple, dict)) else [values]
        if len(flat) != len(self.flat_inputs):
            raise ValueError(f'the model has {len(self.flat_inputs)} inputs {names} but was '
                             f'called on {len(flat)} arrays')
        return flat

    # -- configuration ----------------------------------------------------------------------

    def node_key(self, tensor):
        """[layer name, node index, tensor index] of a KerasTensor, the node index counted
        among the layer's calls in this graph (what a rebuilt layer's calls are numbered)."""
        layer, node_index, tensor_index = tensor._keras_history
        if isinstance(layer, InputLayer):
            return [layer.name, 0, tensor_index]
        relevant = self.relevant_nodes
        calls = [n for n in layer._inbound_nodes if n in relevant]
        return [layer.name, calls.index(layer._inbound_nodes[node_index]), tensor_index]

    def config(self, name, trainable, serialize_layer):
        """Keras's functional config: each layer's serialized config (`serialize_layer`) with
        its inbound nodes (arguments holding `__keras_tensor__` references), and the
        references of the inputs and outputs."""
        relevant = self.relevant_nodes
        layers = []
        for layer in self.layers:
            entry = dict(serialize_layer(layer))
            entry['name'] = layer.name
            entry['inbound_nodes'] = [
                {'args': self._encode(node.args), 'kwargs': self._encode(node.kwargs)}
                for node in layer._inbound_nodes if node in relevant and not node.is_input]
            layers.append(entry)
        return {'name': name, 'trainable': trainable, 'layers': layers,
                'input_layers': _map_tensors(self.node_key, self.inputs),
                'output_layers': _map_tensors(self.node_key, self.outputs)}

    def _encode(self, value):
        return _map_tensors(lambda x: {
            'class_name': '__keras_tensor__',
            'config': {'shape': list(x.shape), 'dtype': x.dtype.name,
                       'keras_history': self.node_key(x)}}, value)


def _check_input(tensor, value):
    """A value given for an input must have its rank and known sizes."""
    shape = tuple(getattr(value, 'shape', np.shape(value)))
    if len(shape) != len(tensor.shape) or any(
            want is not None and got != want for got, want in zip(shape, tensor.shape)):
        raise errors.ShapeError(
            f'Input "{tensor.name}" of the model is incompatible with the data: expected '
            f'shape={tensor.shape}, found shape={shape}')


def _map_tensors(fn, value):
    """`value` with `fn(x)` for each KerasTensor x in it (tuples become lists, as in JSON)."""
    if isinstance(value, KerasTensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_tensors(fn, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_tensors(fn, v) for v in value]
    return value


def _is_reference(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and \
        all(isinstance(v, int) for v in value[1:])


def from_config(config, deserialize_layer):
    """(inputs, outputs) rebuilt from a functional config: each layer is made by
    `deserialize_layer(entry)`, then the recorded calls are replayed on KerasTensors, each
    layer's calls in their order, as soon as their inputs exist."""
    layers, made = {}, {}          # name -> layer; (name, call index) -> output structure
    pending = collections.deque()
    for entry in config['layers']:
        layer = layers[entry['name']] = deserialize_layer(entry)
        if isinstance(layer, InputLayer):
            made[(layer.name, 0)] = layer.output
        pending.extend((entry['name'], k, node) for k, node in
                       enumerate(entry.get('inbound_nodes', [])))

    def tensor(ref):
        name, call, index = ref
        return tree.leaves(made[(name, call)])[index]

    def decode(value):
        if isinstance(value, dict) and value.get('class_name') == '__keras_tensor__':
            return tensor(value['config']['keras_history'])
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    stalled = 0
    while pending and stalled <= len(pending):
        name, call, node = pending.popleft()
        try:
            if call and (name, call - 1) not in made:
                raise KeyError(name)                # the layer's earlier call comes first
            args, kwargs = decode(node['args']), decode(node.get('kwargs', {}))
        except KeyError:
            pending.append((name, call, node))
            stalled += 1
            continue
        made[(name, call)] = layers[name](*args, **kwargs)
        stalled = 0
    if pending:
        raise ValueError(f'cannot rebuild the functional model {config.get("name")!r}: the '
                         f'calls of {sorted({p[0] for p in pending})} use tensors that no '
                         'layer of the config makes')

    def rebuild(refs):
        if _is_reference(refs):
            return tensor(refs)
        if isinstance(refs, dict):
            return {k: rebuild(v) for k, v in refs.items()}
        return [rebuild(r) for r in refs]
    return rebuild(config['input_layers']), rebuild(config['output_layers'])

"""IR graphs as JSON: what a SavedModel stores of a traced function, never pickled Python.

A graph becomes {inputs, state, consts, nodes, outputs, updates}. Values are numbered in order
of definition; a node names its primitive (looked up in the registry when read back), its input
numbers, its params and its outputs' shapes and dtypes; state and updates name Variables by
their index in the SavedModel's variable list; constants are base64 bytes. Params are encoded
by type (tuples, lists, dtypes, tensor specs, non-finite floats and control flow's sub-graphs
survive the round trip); anything else, such as a Python callable, is refused with a
SerializationError naming it.
"""
import base64
import math

import numpy as np

from . import errors, ir
from .primitives import REGISTRY
from .signature import WEAK_FLOAT
from .spec import TensorSpec


class SerializationError(errors.TracejitError, TypeError):
    """A traced function holds something that cannot be stored as data."""


# ------------------------------------------------------------------------------ values

def encode_value(value, what):
    """A JSON-able form of a param or static value; SerializationError names `what`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {'float': repr(value)}
    if isinstance(value, np.generic):
        return {'np': value.dtype.name, 'value': encode_value(value.item(), what)}
    if isinstance(value, np.dtype):
        return {'dtype': value.name}
    if value is WEAK_FLOAT:
        return {'weak_float': True}
    if isinstance(value, ir.Graph):    # control flow's closed sub-graphs: no Variables
        return {'graph': encode_graph(value, _no_variables)}
    if isinstance(value, TensorSpec):
        return {'spec': None if value.shape is None else list(value.shape),
                'dtype': value.dtype.name, 'name': value.name}
    if isinstance(value, tuple) and not hasattr(type(value), '_fields'):
        return {'tuple': [encode_value(v, what) for v in value]}
    if type(value) is list:
        return {'list': [encode_value(v, what) for v in value]}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {'dict': [[k, encode_value(v, what)] for k, v in value.items()]}
    raise SerializationError(
        f'{what} holds {value!r} ({type(value).__name__}), which a SavedModel cannot store as '
        'data; only numbers, strings, None, dtypes, tensor specs and tuples, lists and dicts of '
        'them are stored (Python objects and callables are not)')


def decode_value(data):
    if not isinstance(data, dict):
        return data
    if 'float' in data:
        return float(data['float'])
    if 'weak_float' in data:
        return WEAK_FLOAT
    if 'graph' in data:
        return decode_graph(data['graph'], [])
    if 'np' in data:
        return np.dtype(data['np']).type(decode_value(data['value']))
    if 'dtype' in data and 'spec' not in data:
        return np.dtype(data['dtype'])
    if 'spec' in data:
        return TensorSpec(data['spec'], data['dtype'], data['name'])
    if 'tuple' in data:
        return tuple(decode_value(v) for v in data['tuple'])
    if 'list' in data:
        return [decode_value(v) for v in data['list']]
    if 'dict' in data:
        return {k: decode_value(v) for k, v in data['dict']}
    raise ValueError(f'unknown encoded value {data!r}')


def _no_variables(variable):
    raise SerializationError(f'a sub-graph reads Variable {variable.name} as state; '
                             'sub-graphs take Variables as inputs')


def _encode_array(array):
    array = np.ascontiguousarray(array)
    return {'dtype': array.dtype.name, 'shape': list(array.shape),
            'data': base64.b64encode(array.tobytes()).decode('ascii')}


def _decode_array(data):
    raw = base64.b64decode(data['data'].encode('ascii'), validate=True)
    return np.frombuffer(raw, np.dtype(data['dtype'])).reshape(data['shape']).copy()


def _aval(var):
    return {'shape': list(var.shape), 'dtype': var.dtype.name, 'weak': var.weak}


def _var(data):
    return ir.Var(tuple(data['shape']), np.dtype(data['dtype']), data['weak'])


# ------------------------------------------------------------------------------ graphs

def encode_graph(graph, variable_index):
    """The JSON form of `graph`; `variable_index(variable)` numbers its Variables."""
    ids = {}

    def define(var):
        ids[var] = len(ids)
        return _aval(var)

    data = {'inputs': [define(v) for v in graph.inputs],
            'state': [dict(define(v), variable=variable_index(variable))
                      for variable, v in graph.state],
            'consts': [dict(define(v), value=_encode_array(value))
                       for v, value in graph.consts.items()],
            'nodes': []}
    for node in graph.nodes:
        params = {k: encode_value(v, f'parameter {k!r} of primitive {node.prim.name!r}')
                  for k, v in node.params.items()}
        data['nodes'].append({'prim': node.prim.name, 'inputs': [ids[v] for v in node.inputs],
                              'params': params, 'outputs': [define(v) for v in node.outputs]})
    data['outputs'] = [ids[v] for v in graph.outputs]
    data['updates'] = [[variable_index(variable), ids[v]] for variable, v in graph.updates]
    return data


def decode_graph(data, variables):
    """The graph from its JSON form; `variables` are the SavedModel's Variables. Raises
    ValueError (or KeyError, TypeError) for data that does not make a valid graph."""
    graph, values = ir.Graph(), []

    def define(item):
        var = _var(item)
        values.append(var)
        return var

    graph.inputs = [define(item) for item in data['inputs']]
    graph.state = [(variables[item['variable']], define(item)) for item in data['state']]
    for item in data['consts']:
        var = define(item)
        graph.consts[var] = _decode_array(item['value']).reshape(var.shape)
    for item in data['nodes']:
        prim = REGISTRY.get(item['prim'])
        if prim is None:
            raise ValueError(f'unknown primitive {item["prim"]!r}')
        params = {k: decode_value(v) for k, v in item['params'].items()}
        inputs = [values[i] for i in item['inputs']]
        graph.nodes.append(ir.Node(prim, inputs, params, [define(o) for o in item['outputs']]))
    graph.outputs = [values[i] for i in data['outputs']]
    graph.updates = [(variables[k], values[i]) for k, i in data['updates']]
    try:
        graph.verify()
    except AssertionError as e:
        raise ValueError(f'the stored graph is inconsistent: {e}') from None
    return graph

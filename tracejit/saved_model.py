"""`tj.saved_model.save(obj, path)` / `tj.saved_model.load(path)`: Variables and traced
functions, stored as data so that a process without the user's code runs them.

A SavedModel is a directory with `variables.npz` (every Variable a saved function reads, plus
those reachable from the object) and `saved_model.json` (the Variables' attribute paths, names
and trainable flags; per tj.function attribute its concrete functions: signature, output
structure and the IR of every traced size, see irjson.py). Both are written atomically, the JSON
last. Loading builds Variables and objects mirroring the saved attribute paths; each function is
callable with its traced signatures and runs its IR through the normal compile path (compiled,
disk-cached kernels). A None dimension runs any size when the IR does not depend on it (checked
at save time, see ConcreteFunction.size_free_template); otherwise the sizes traced before saving.
"""
import inspect
import json
import os
import zipfile

import numpy as np

from . import errors, irjson, tree
from . import signature as sig
from .concrete import ConcreteFunction, resized
from .fileio import write_atomically
from .function import Function, TraceResult
from .spec import TensorSpec
from .variables import Module, Variable, update_locks

FORMAT = 'tracejit.saved_model/1'
JSON_NAME, VARIABLES_NAME = 'saved_model.json', 'variables.npz'


# ------------------------------------------------------------------------------ saving

def save(obj, export_dir, signatures=None, options=None):
    """Store `obj`'s Variables and tj.functions (each with the signatures traced so far, or
    its input_signature) under `export_dir`. `signatures`: a tj.function with an
    input_signature, a ConcreteFunction, or a dict of them by name ('serving_default')."""
    variables, functions = _walk(obj)
    saver = _Saver(variables)
    stored = {path: saver.function(path, fn) for path, fn in functions.items()}
    stored = {path: concretes for path, concretes in stored.items() if concretes}
    serving = {name: saver.concrete(f'signature {name!r}', _as_concrete(fn))
               for name, fn in _signature_dict(signatures).items()}
    meta = {'format': FORMAT,
            'variables': [{'path': saver.paths.get(id(v)), 'name': v.name.rsplit(':', 1)[0],
                           'trainable': v.trainable} for v in saver.variables],
            'functions': stored, 'signatures': serving}
    os.makedirs(export_dir, exist_ok=True)
    arrays = {f'v{k}': v.numpy() for k, v in enumerate(saver.variables)}
    write_atomically(os.path.join(export_dir, VARIABLES_NAME),
                     lambda f: np.savez(f, **arrays), binary=True)
    write_atomically(os.path.join(export_dir, JSON_NAME), lambda f: json.dump(meta, f))


class _Saver:
    """Numbers the Variables (reachable ones first, then those only a function reads)."""

    def __init__(self, variables):
        self.variables = [v for _, v in variables]
        self.paths = {id(v): path for path, v in variables}
        self.index = {id(v): k for k, v in enumerate(self.variables)}

    def variable_index(self, variable):
        if id(variable) not in self.index:
            self.index[id(variable)] = len(self.variables)
            self.variables.append(variable)
        return self.index[id(variable)]

    def function(self, path, fn):
        concretes = fn.concrete_functions
        if not concretes and fn.input_signature is not None:
            concretes = [fn.get_concrete_function()]
        return [self.concrete(f'function {path!r}', c) for c in concretes]

    def concrete(self, what, concrete):
        template = concrete.size_free_template()
        traces = concrete.traces + ([template] if template is not None else [])
        return {'name': concrete.name,
                'signature': [[name, kind, irjson.encode_value(spec, f'{what}, argument {name!r}')]
                              for name, kind, spec in concrete.signature.params],
                'traces': [self.trace(what, result) for result in traces],
                'size_free': template is not None}

    def trace(self, what, result):
        traced = result.traced_leaves()
        static = [None if t else irjson.encode_value(s, f'{what}: a returned value')
                  for s, t in zip(result.out_static, traced)]
        return {'graph': irjson.encode_graph(result.graph, self.variable_index),
                'outputs': {'tree': _encode_treedef(result.out_treedef), 'traced': traced,
                            'static': static},
                'guards': [list(g) for g in result.guards], 'input_names': result.input_names}


def _walk(obj):
    """([(attribute path, Variable)], {attribute path: Function}) reachable from `obj`."""
    variables, functions, seen = [], {}, set()

    def visit(value, path):
        if isinstance(value, Variable):
            if id(value) not in seen:
                seen.add(id(value))
                variables.append((path, value))
        elif isinstance(value, Function):
            functions[path] = value
        elif isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                visit(item, f'{path}[{k}]')
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                if isinstance(key, str) and key.isidentifier():
                    visit(value[key], f'{path}[{key!r}]')
        elif isinstance(value, Module) or (path == '' and hasattr(value, '__dict__')):
            if id(value) in seen:
                return
            seen.add(id(value))
            members = dict(vars(value))
            for name, attr in inspect.getmembers(type(value)):
                if isinstance(attr, Function):
                    members[name] = getattr(value, name)   # bound to this object
            for name in sorted(members):
                if not name.startswith('__'):
                    visit(members[name], f'{path}.{name}' if path else name)

    visit(obj, '')
    return variables, functions


def _signature_dict(signatures):
    if signatures is None:
        return {}
    if isinstance(signatures, dict):
        return dict(signatures)
    return {'serving_default': signatures}


def _as_concrete(fn):
    if isinstance(fn, ConcreteFunction):
        return fn
    if isinstance(fn, Function):
        if fn.input_signature is None:
            raise ValueError(f'signatures: {fn!r} has no input_signature; pass '
                             'f.get_concrete_function(tj.TensorSpec(...)) instead')
        return fn.get_concrete_function()
    raise TypeError(f'signatures must be tj.functions or ConcreteFunctions, got {fn!r}')


def _encode_treedef(treedef):
    kind = treedef.kind
    children = [_encode_treedef(c) for c in treedef.children]
    if kind in ('leaf', 'none', 'tuple', 'list'):
        return {'kind': kind, 'children': children}
    if kind == 'namedtuple':
        return {'kind': 'tuple', 'children': children}
    return {'kind': 'dict', 'keys': [irjson.encode_value(k, 'a returned dict key')
                                     for k in treedef.meta], 'children': children}


def _decode_treedef(data):
    children = [_decode_treedef(c) for c in data['children']]
    if data['kind'] == 'dict':
        return tree.TreeDef(('dict', dict), tuple(irjson.decode_value(k) for k in data['keys']),
                            children)
    return tree.TreeDef(data['kind'], None, children)


# ------------------------------------------------------------------------------ loading

class Loaded(Module):
    """A loaded SavedModel: the saved attributes (Variables, functions, sub-objects)."""


def load(export_dir, tags=None, options=None):
    """The object saved under `export_dir`; raises DataLossError naming a corrupt file."""
    json_path = os.path.join(export_dir, JSON_NAME)
    npz_path = os.path.join(export_dir, VARIABLES_NAME)
    meta = _read_json(json_path)
    arrays = _read_arrays(npz_path, len(meta.get('variables', ())))
    try:
        variables = [Variable(array, trainable=item['trainable'], name=item['name'])
                     for array, item in zip(arrays, meta['variables'])]
        root = Loaded()
        for variable, item in zip(variables, meta['variables']):
            if item['path']:
                _place(root, item['path'], variable)
        for path, concretes in meta['functions'].items():
            _place(root, path, LoadedFunction(path, [_concrete(c, variables)
                                                     for c in concretes]))
        root.signatures = {name: SignatureFunction(_concrete(c, variables))
                           for name, c in meta['signatures'].items()}
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise errors.DataLossError(f'{json_path} is not a valid SavedModel description: '
                                   f'{type(e).__name__}: {e}') from None
    return root


def _read_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise errors.DataLossError(f'{path} does not exist: not a SavedModel directory') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.DataLossError(f'{path} is corrupt: {e}') from None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise errors.DataLossError(f'{path} is not a tracejit SavedModel ({FORMAT})')
    return meta


def _read_arrays(path, count):
    try:
        with np.load(path, allow_pickle=False) as data:
            return [np.array(data[f'v{k}']) for k in range(count)]
    except FileNotFoundError:
        raise errors.DataLossError(f'{path} does not exist: the SavedModel is incomplete') \
            from None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise errors.DataLossError(f'{path} is corrupt: {type(e).__name__}: {e}') from None


def _place(root, path, value):
    """Set `value` at an attribute path like "layers[0]['w']", creating on the way the
    objects (attributes), lists (indices) and dicts (keys) the path goes through."""
    steps = _steps(path)
    obj = root
    for step, following in zip(steps, steps[1:]):
        obj = _child(obj, step, {'index': list, 'key': dict, 'attr': Loaded}[following[0]])
    _set(obj, steps[-1], value)


def _steps(path):
    """[(kind, name or index)] with kind 'attr', 'index' or 'key'."""
    steps = []
    for part in path.split('.'):
        name, *subscripts = part.replace(']', '').split('[')
        if name:
            steps.append(('attr', name))
        steps.extend(('index', int(s)) if s.isdigit() else ('key', s.strip("'"))
                     for s in subscripts)
    return steps


def _child(obj, step, kind):
    """The container at `step` of `obj`, made a new `kind()` when it is not there yet."""
    existing = _get(obj, step)
    if existing is None:
        existing = kind()
        _set(obj, step, existing)
    return existing


def _get(obj, step):
    how, at = step
    if how == 'attr':
        return getattr(obj, at, None)
    if how == 'key':
        return obj.get(at)
    return obj[at] if at < len(obj) else None


def _set(obj, step, value):
    how, at = step
    if how == 'attr':
        setattr(obj, at, value)
    elif how == 'key':
        obj[at] = value
    else:
        obj.extend([None] * (at + 1 - len(obj)))
        obj[at] = value


def _concrete(data, variables):
    params = [(name, kind, irjson.decode_value(spec)) for name, kind, spec in data['signature']]
    signature = sig.Signature(params)
    py_signature = _python_signature(params)
    traces = [_trace(t, variables) for t in data['traces']]
    runner = _StoredTraces(data['name'], signature, py_signature, traces, data['size_free'])
    concrete = ConcreteFunction(data['name'], signature, py_signature, runner)
    for result in traces:
        concrete.attach(result)
    return concrete


def _python_signature(params):
    """A Python signature accepting the stored parameters: positional-or-keyword ones, then
    keyword-only ones (the saved call's keyword arguments of those kinds)."""
    out, keyword_only = [], False
    for name, kind, _ in params:
        keyword_only = keyword_only or kind in ('KEYWORD_ONLY', 'VAR_KEYWORD')
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY if keyword_only
                                     else inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return inspect.Signature(out)


def _trace(data, variables):
    graph = irjson.decode_graph(data['graph'], variables)
    outputs = data['outputs']
    static = [irjson.decode_value(s) for s in outputs['static']]
    return TraceResult.restored(graph, _decode_treedef(outputs['tree']), static,
                                outputs['traced'], [tuple(g) for g in data['guards']],
                                data['input_names'])


class _StoredTraces:
    """Runs a conforming call on the stored IR of its sizes, compiled on first use."""

    def __init__(self, name, signature, py_signature, traces, size_free):
        self.name, self.signature, self.py_signature = name, signature, py_signature
        self.traces, self.size_free = traces, size_free
        self.built = {}

    def __call__(self, args, kwargs):
        dynamic = self._dynamic(args, kwargs)
        key = tuple((np.shape(v), _dtype(v)) for v in dynamic)
        built = self.built.get(key)
        if built is None:
            built = self.built[key] = self._build(key)
        executable, result, locks = built
        for lock in locks:
            lock.acquire()
        try:
            outs = executable.run(dynamic)
        finally:
            for lock in locks:
                lock.release()
        return result.build_outputs(outs)

    def _dynamic(self, args, kwargs):
        values = []
        for (_, _, value), (_, specs, _) in zip(sig.bind(self.py_signature, args, kwargs),
                                                self.signature.flat):
            for leaf, spec in zip(tree.leaves(value, sig.is_leaf), specs):
                if spec is sig.WEAK_FLOAT:
                    values.append(leaf)
                elif isinstance(spec, TensorSpec):
                    values.append(np.array(leaf, order='C'))   # a writeable copy
        return values

    def _build(self, key):
        from .backend import compile_graph
        matching = [r for r in self.traces
                    if tuple((v.shape, v.dtype) for v in r.graph.inputs) == key]
        if matching or self.size_free:
            result = matching[0] if matching else resized(self.traces[-1],
                                                          [shape for shape, _ in key])
            executable, _ = compile_graph(result.graph, None, result.guards)
            return executable, result, update_locks(v for v, _ in result.graph.updates)
        sizes = ', '.join(str([v.shape for v in r.graph.inputs]) for r in self.traces)
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{self.name}: the SavedModel holds this function traced for input shapes {sizes}, '
            f'not {[shape for shape, _ in key]}; tracejit stores the IR of every size a None '
            'dimension was called with before saving: call it with this size before saving'))


def _dtype(value):
    return np.dtype(np.float64) if isinstance(value, float) else value.dtype


class LoadedFunction:
    """A loaded tj.function: callable with any of its saved concrete signatures."""

    def __init__(self, name, concretes):
        self.__name__, self.concrete_functions = name, concretes

    def __call__(self, *args, **kwargs):
        for concrete in self.concrete_functions:
            try:
                args_, kwargs_ = sig.conform(concrete.signature, concrete.py_signature, args,
                                             kwargs)
            except (TypeError, ValueError):
                continue
            return concrete.run_conformed(args_, kwargs_)
        expected = '\n'.join(f'  {c.pretty_printed_signature(verbose=False)}'
                             for c in self.concrete_functions)
        raise ValueError(f'Could not find matching concrete function to call loaded from the '
                         f'SavedModel ({self.__name__}). Got: args={args}, kwargs={kwargs}. '
                         f'Expected one of:\n{expected}')

    def get_concrete_function(self, *args, **kwargs):
        wanted = sig.Signature.of_call(self.concrete_functions[0].py_signature, args, kwargs)
        for concrete in self.concrete_functions:
            if concrete.signature.accepts(wanted):
                return concrete
        raise ValueError(f'{self.__name__}: no saved concrete function accepts '
                         f'{wanted.describe(False)}')

    def pretty_printed_concrete_signatures(self, verbose=True):
        return '\n\n'.join(c.pretty_printed_signature(verbose) for c in self.concrete_functions)

    def __repr__(self):
        return f'<loaded tj.function {self.__name__}>'


class SignatureFunction:
    """A serving signature: called with keyword arguments, returns a dict of tensors
    (`output_0`, ... for outputs that are not a dict already), as TF's."""

    def __init__(self, concrete):
        self.concrete = concrete
        self.structured_input_signature = concrete.structured_input_signature

    def __call__(self, **kwargs):
        out = self.concrete(**kwargs)
        if isinstance(out, dict):
            return out
        leaves = tree.leaves(out)
        return {f'output_{k}': leaf for k, leaf in enumerate(leaves)}

"""TF1 graphs over tracejit's IR: a `Graph` is a `tracing.Trace` that stays open.

Every user-level op call becomes one `Operation`. Building it runs the tracejit op once inside
the graph's trace, exactly as tracing a `tj.function` would: shapes and dtypes are checked there
(errors point at the user's line) and give the output's static shape and dtype. The Operation
also keeps the call (function and arguments, tensors standing for graph values) so that a
Session can replay the operations it needs into a fresh trace with the concrete shapes of each
feed. One call may bind several primitives; its Operation's output is the call's result.

Placeholders whose shape is not fully known are traced with a stand-in size (`PROBE`) for each
unknown dimension (unknown rank: one dimension); static shapes report those dimensions as None.
When an op cannot be traced with stand-ins (say a matmul of an unknown-rank value), its output
gets an unknown shape while building, and the op is checked with real shapes at run time.
"""
import contextlib

import numpy as np

from .. import dtypes, errors, operands, ops, tracing, tree

PROBE = 5040  # stand-in size for unknown dimensions while building (divisible by 1..10)

_graph_stack = []          # graphs entered with `as_default()`
_session_stack = []        # sessions entered with `as_default()` (compat/session.py)
_global_default = []       # the graph used when none is entered


class TensorShape:
    """A static shape: `dims` is a tuple of ints and Nones, or None when the rank is unknown."""

    def __init__(self, dims):
        self.dims = None if dims is None else tuple(None if d is None else int(d) for d in dims)

    ndims = property(lambda self: None if self.dims is None else len(self.dims))
    rank = ndims

    def as_list(self):
        if self.dims is None:
            raise ValueError('as_list() is not defined on an unknown TensorShape.')
        return list(self.dims)

    def is_fully_defined(self):
        return self.dims is not None and None not in self.dims

    def is_compatible_with(self, other):
        other = other if isinstance(other, TensorShape) else TensorShape(other)
        if self.dims is None or other.dims is None:
            return True
        return len(self.dims) == len(other.dims) and all(
            a is None or b is None or a == b for a, b in zip(self.dims, other.dims))

    def __iter__(self):
        if self.dims is None:
            raise ValueError('Cannot iterate over a shape with unknown rank.')
        return iter(self.dims)

    def __len__(self):
        if self.dims is None:
            raise ValueError('Cannot take the length of a shape with unknown rank.')
        return len(self.dims)

    def __getitem__(self, index):
        dims = self.as_list()[index]
        return TensorShape(dims) if isinstance(index, slice) else dims

    def __eq__(self, other):
        if not isinstance(other, (TensorShape, tuple, list)):
            return NotImplemented
        return self.dims == (other.dims if isinstance(other, TensorShape) else tuple(other))

    __hash__ = None

    def __str__(self):
        if self.dims is None:
            return '<unknown>'
        dims = ['?' if d is None else str(d) for d in self.dims]
        return f'({dims[0]},)' if len(dims) == 1 else f'({", ".join(dims)})'

    def __repr__(self):
        return 'TensorShape(None)' if self.dims is None else f'TensorShape({self.as_list()})'


class Graph:
    """A TF1 graph: operations in creation order, TF's names, collections, and the trace every
    operation is recorded into (never finished: sessions replay sub-graphs instead)."""

    def __init__(self):
        self._trace = tracing.Trace()
        self._operations = []
        self._by_name = {}
        self._names_in_use = {}
        self._name_stack = ''
        self._collections = {}

    @contextlib.contextmanager
    def as_default(self):
        """Make this the graph that new operations go into, inside the `with` block."""
        _graph_stack.append(self)
        try:
            yield self
        finally:
            _graph_stack.pop()

    # -- inspection -------------------------------------------------------------------------

    def get_operations(self):
        return list(self._operations)

    def get_operation_by_name(self, name):
        if name not in self._by_name:
            raise KeyError(f"The name '{name}' refers to an Operation not in the graph.")
        return self._by_name[name]

    def get_tensor_by_name(self, name):
        op_name, _, index = name.rpartition(':')
        if not op_name or not index.isdigit():
            raise ValueError(f"The name '{name}' looks like an Operation name, not a Tensor "
                             "name; Tensor names look like '<op_name>:<output_index>'.")
        op = self._by_name.get(op_name)
        if op is None or int(index) >= len(op.outputs):
            raise KeyError(f"The name '{name}' refers to a Tensor which does not exist. "
                           f"The operation, '{op_name}', does not exist in the graph."
                           if op is None else f"The name '{name}' refers to a Tensor which "
                           f"does not exist: '{op_name}' has {len(op.outputs)} outputs.")
        return op.outputs[int(index)]

    def as_graph_element(self, obj):
        """The Tensor or Operation `obj` (or the name it is given by) stands for, in this graph."""
        if isinstance(obj, str):
            return self.get_tensor_by_name(obj) if ':' in obj else \
                self.get_operation_by_name(obj)
        if isinstance(obj, _Operators):
            obj = obj._graph_tensor()
        elif not isinstance(obj, Operation):
            raise TypeError(f'Can not convert a {type(obj).__name__} into a Tensor or '
                            'Operation.')
        if obj.graph is not self:
            raise ValueError(f'{obj!r} is not an element of this graph.')
        return obj

    # -- names ------------------------------------------------------------------------------

    def unique_name(self, name, mark_as_used=True):
        """TF's rule: `name` inside the current scope, then `name_1`, `name_2`, ... (case-blind)."""
        if self._name_stack:
            name = f'{self._name_stack}/{name}'
        key = name.lower()
        count = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = count + 1
        if count == 0:
            return name
        base = key
        while key in self._names_in_use:
            key = f'{base}_{count}'
            count += 1
        if mark_as_used:
            self._names_in_use[key] = 1
        return f'{name}_{count - 1}'

    @contextlib.contextmanager
    def name_scope(self, name):
        """Yields 'scope/'. None or '' goes back to the top; a name ending in '/' is used as is."""
        old = self._name_stack
        if not name:
            new = ''
        elif name.endswith('/'):
            new = name[:-1]
        else:
            new = self.unique_name(name)
        self._name_stack = new
        try:
            yield f'{new}/' if new else ''
        finally:
            self._name_stack = old

    def _op_name(self, name, default):
        return name[:-1] if name and name.endswith('/') else self.unique_name(name or default)

    # -- collections ------------------------------------------------------------------------

    def add_to_collection(self, name, value):
        self._collections.setdefault(name, []).append(value)

    def get_collection(self, name, scope=None):
        items = self._collections.get(name, [])
        if scope is None:
            return list(items)
        return [x for x in items if getattr(x, 'name', '').startswith(scope)]

    # -- building ---------------------------------------------------------------------------

    def _add(self, op):
        self._operations.append(op)
        self._by_name[op.name] = op


def get_default_graph():
    """The graph new operations go into: the innermost `as_default()` one, else the global one."""
    if _graph_stack:
        return _graph_stack[-1]
    if not _global_default:
        _global_default.append(Graph())
    return _global_default[0]


def get_default_session():
    return _session_stack[-1] if _session_stack else None


def session_for(session, element):
    """`session`, else the default session; it must run `element`'s graph."""
    session = session or get_default_session()
    if session is None:
        raise ValueError('Cannot evaluate tensor using `eval()`: No default session is '
                         'registered. Use `with sess.as_default()` or pass an explicit session '
                         'to `eval(session=sess)`')
    if session.graph is not element.graph:
        raise ValueError('Cannot use the given session to evaluate tensor: the tensor\'s graph '
                         'is different from the session\'s graph.')
    return session


def reset_default_graph():
    """Replace the global default graph by a new, empty one (existing graphs are untouched)."""
    if _graph_stack:
        raise AssertionError('Do not use tf.reset_default_graph() to clear nested graphs. If '
                             'you need a cleared graph, exit the nesting and create a new graph.')
    _global_default[:] = [Graph()]


class Operation:
    """One node of a TF1 graph: a recorded op call, replayed by sessions into their traces."""

    def __init__(self, graph, name, op_type, inputs, control_inputs, call, stateful):
        self.graph, self.name, self.type = graph, name, op_type
        self.inputs = tuple(inputs)
        self.control_inputs = [c.op if isinstance(c, Tensor) else c for c in control_inputs]
        self.outputs = []
        self._call = call          # (fn, treedef, leaves): leaves that are Tensors are inputs
        self._stateful = stateful  # fn takes `resolve(variable) -> tracejit Variable` first
        self._variable = None      # the graph Variable a VariableV2 / Assign* op belongs to
        self._index = len(graph._operations)

    def _compute(self, value_of, resolve):
        """Call the op on `value_of(tensor)` for each input; a list of results (None allowed)."""
        fn, treedef, leaves = self._call
        args, kwargs = tree.unflatten(
            treedef, [value_of(x) if isinstance(x, Tensor) else x for x in leaves])
        if self._stateful:
            args = (resolve,) + tuple(args)
        out = fn(*args, **kwargs)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        trace = tracing.current_trace()
        if trace is None:
            return out
        # eager results (constants, static shapes) become values of the trace, as in TF's graph
        return [r if r is None or isinstance(r, tracing.Tracer)
                else tracing.Tracer(trace, trace.to_var(operands.operand(r))) for r in out]

    def values(self):
        return tuple(self.outputs)

    def run(self, feed_dict=None, session=None):
        """Run this operation in `session` (default: the default session)."""
        session_for(session, self).run(self, feed_dict)

    def __repr__(self):
        return f"<tf.Operation '{self.name}' type={self.type}>"


class _Operators:
    """Python operators for Tensors and Variables: each adds one Operation (TF's names)."""

    __array_priority__ = 100
    __array_ufunc__ = None  # numpy defers `array * tensor` to our reflected operators

    def __bool__(self):
        raise TypeError('Using a `tf.Tensor` as a Python `bool` is not allowed in graph mode: '
                        'its value only exists when a Session runs it. Use tf.where or fetch '
                        'the value with sess.run first.')

    def __iter__(self):
        dims = self._graph_tensor().shape.dims
        if not dims or dims[0] is None:
            raise TypeError('Tensor objects are only iterable when the first dimension of their '
                            'static shape is known.')
        return (self[i] for i in range(dims[0]))

    def __getitem__(self, index):
        return make_op('StridedSlice', ops.getitem, (self, index), default_name='strided_slice')


def _binary(default_name, op_type, fn, reflected):
    def method(self, other):
        args = (other, self) if reflected else (self, other)
        return make_op(op_type, fn, args, default_name=default_name, operands=('x', 'y'))
    return method


def _unary(op_type, fn):
    return lambda self: make_op(op_type, fn, (self,), operands=('x',))


for _name, _type, _fn in [('add', 'Add', ops.add), ('sub', 'Sub', ops.subtract),
                          ('mul', 'Mul', ops.multiply), ('truediv', 'RealDiv', ops.divide),
                          ('floordiv', 'FloorDiv', ops.floordiv), ('pow', 'Pow', ops.pow),
                          ('matmul', 'MatMul', ops.matmul), ('and', 'LogicalAnd', ops.logical_and),
                          ('or', 'LogicalOr', ops.logical_or)]:
    setattr(_Operators, f'__{_name}__', _binary(_name, _type, _fn, False))
    setattr(_Operators, f'__r{_name}__', _binary(_name, _type, _fn, True))
for _name, _type, _fn in [('lt', 'Less', ops.less), ('le', 'LessEqual', ops.less_equal),
                          ('gt', 'Greater', ops.greater),
                          ('ge', 'GreaterEqual', ops.greater_equal)]:
    setattr(_Operators, f'__{_name}__', _binary(_type, _type, _fn, False))
for _name, _type, _fn in [('neg', 'Neg', ops.negative), ('abs', 'Abs', ops.abs),
                          ('invert', 'LogicalNot', ops.logical_not)]:
    setattr(_Operators, f'__{_name}__', _unary(_type, _fn))


class Tensor(_Operators):
    """A symbolic output of an Operation (`name` like 'add:0'); its value exists in sessions."""

    def __init__(self, op, value_index, build, partial, unknown_rank):
        self.op, self.value_index = op, value_index
        self._build = build                 # its Tracer in the graph's trace
        self._partial = partial             # depends on a dimension only the feeds will tell
        self._unknown_rank = unknown_rank   # ... or on a rank they will tell

    name = property(lambda self: f'{self.op.name}:{self.value_index}')
    graph = property(lambda self: self.op.graph)
    dtype = property(lambda self: self._build.dtype)
    device = ''

    @property
    def shape(self):
        dims = self._build.shape
        if self._unknown_rank and PROBE in dims:
            return TensorShape(None)
        return TensorShape([None if self._partial and d == PROBE else d for d in dims])

    def get_shape(self):
        return self.shape

    def consumers(self):
        return [op for op in self.graph._operations if self in op.inputs]

    def eval(self, feed_dict=None, session=None):
        """This tensor's value in `session` (default: the default session)."""
        return session_for(session, self).run(self, feed_dict)

    def _graph_tensor(self):
        return self

    def __repr__(self):
        return f"<tf.Tensor '{self.name}' shape={self.shape} dtype={self.dtype.name}>"


# -------------------------------------------------------------------------------- making ops

_SCALARS = (bool, int, float, np.generic)


def make_op(op_type, fn, args=(), kwargs=None, *, name=None, default_name=None, operands=(),
            stateful=False, control_inputs=(), graph=None, multi=False):
    """Record `fn(*args, **kwargs)` as one Operation and return its output Tensor (or, with
    `multi`, the list of results with a Tensor for each one that is not None).

    Tensors and Variables anywhere in the arguments are the op's inputs; `operands` names the
    leading positional arguments that TF converts to tensors: a number or array there becomes a
    Const op '<op>/<operand>' (Python scalars take the dtype of the other operands, as in TF).
    """
    leaves = tree.leaves((args, kwargs), is_leaf=_is_graph_value)
    graph = graph or _graph_of(leaves)
    op_name = graph._op_name(name, default_name or op_type)
    args = _constant_operands(graph, op_name, list(args), operands)
    leaves, treedef = tree.flatten((tuple(args), dict(kwargs or {})), is_leaf=_is_graph_value)
    leaves = [x._graph_tensor() if isinstance(x, _Operators) else x for x in leaves]
    inputs = [x for x in leaves if isinstance(x, Tensor)]
    for t in inputs:
        if t.graph is not graph:
            raise ValueError(f'{t!r} must be from the same graph as the other inputs of '
                             f'{op_name!r}.')
    op = Operation(graph, op_name, op_type, inputs, control_inputs, (fn, treedef, leaves),
                   stateful)
    results, guessed = _build(op, graph, multi)
    partial = guessed or any(t._partial for t in inputs)
    unknown_rank = guessed or any(t._unknown_rank for t in inputs)
    out = []
    for r in results:
        if r is not None:
            r = Tensor(op, len(op.outputs), r, partial, unknown_rank)
            op.outputs.append(r)
        out.append(r)
    graph._add(op)
    if multi:
        return out
    return out[0] if out else op


def _build(op, graph, multi):
    """(build-time Tracers of the op's results, whether they are stand-ins of unknown shape).

    A single-output op that fails on an input of unknown rank (whose stand-in rank is a guess)
    is checked at run time, when shapes are real; meanwhile its output has an unknown shape.
    Unknown dimensions of a known rank do not excuse a failure: as in TF, the known ones
    must fit at build time.
    """
    try:
        with graph._trace:
            results = op._compute(lambda t: t._build, lambda v: v._proto)
    except (errors.TracejitError, ValueError, TypeError, IndexError):
        if multi or not any(t._unknown_rank for t in op.inputs):
            raise
        dtype, _ = dtypes.result_type(*((t.dtype.np, False) for t in op.inputs))
        return [graph._trace.new_input((PROBE,), dtype)], True
    return results, False


def _is_graph_value(x):
    return isinstance(x, _Operators)


def _graph_of(leaves):
    for x in leaves:
        if isinstance(x, _Operators):
            return x._graph_tensor().graph
    return get_default_graph()


def _constant_operands(graph, op_name, args, operands):
    """Numbers and arrays in operand positions become Const ops named '<op>/<operand>'."""
    hint = [(t._graph_tensor().dtype.np, False) for t in args[:len(operands)]
            if isinstance(t, _Operators)]
    for i, operand in enumerate(operands[:len(args)]):
        value = args[i]
        if isinstance(value, _Operators) or value is None:
            continue
        dtype = None
        if isinstance(value, _SCALARS) and hint:
            scalar = dtypes.python_scalar_dtype(value.item() if isinstance(value, np.generic)
                                                else value)
            dtype, _ = dtypes.result_type(*hint, (scalar, True))
        with graph.name_scope(f'{op_name}/'):
            args[i] = constant(value, dtype, name=operand, graph=graph)
    return args


def constant(value, dtype=None, shape=None, name='Const', verify_shape=False, graph=None):
    """A Const operation holding `value` (converted once, when the graph is built)."""
    value = ops.constant(value, dtype, shape)
    return make_op('Const', lambda: value, name=name, graph=graph)

"""The IR: a flat, typed SSA graph of primitive applications.

A `Graph` has argument inputs, state inputs (the Variables the step reads), constants, a list of
`Node`s in program order, outputs, and state updates (the value each assigned Variable holds at
the end). Assignment is functional: `v.assign(x)` rebinds which SSA value `v` means from then on,
so program order is explicit in the data flow and the backend may write updates in place.

Values (`Var`) carry shape, dtype and weak-typedness and get their printed names only when the
graph is printed (a, b, ..., z, ba, ...), so printing is deterministic and golden-testable.
"""
import numpy as np

_DTYPE_ABBREV = {'float32': 'f32', 'float64': 'f64', 'int32': 'i32', 'int64': 'i64', 'bool': 'bool'}


class Var:
    """One SSA value: its abstract value (shape, dtype, weak) and nothing else."""

    __slots__ = ('shape', 'dtype', 'weak')

    def __init__(self, shape, dtype, weak=False):
        self.shape, self.dtype, self.weak = tuple(shape), np.dtype(dtype), bool(weak)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def type_str(self):
        dims = ','.join(map(str, self.shape))
        return f'{_DTYPE_ABBREV.get(self.dtype.name, self.dtype.name)}[{dims}]'

    def __repr__(self):
        return f'Var({self.type_str()})'


class Node:
    """`outputs = primitive(*inputs, **params)`; params are hashable (tuples, numbers, strings)."""

    __slots__ = ('prim', 'inputs', 'params', 'outputs', 'where')

    def __init__(self, prim, inputs, params, outputs, where=''):
        self.prim, self.inputs, self.outputs = prim, list(inputs), list(outputs)
        self.params, self.where = dict(params), where

    def __repr__(self):
        return f'Node({self.prim.name})'


class Graph:
    """A traced program. `state` / `updates` map Variables to their input / final values."""

    def __init__(self):
        self.inputs = []       # [Var] for the flattened traced arguments
        self.state = []        # [(Variable, Var)] state read by the program, in first-read order
        self.consts = {}       # {Var: np.ndarray}
        self.nodes = []        # [Node] in program order
        self.outputs = []      # [Var]
        self.updates = []      # [(Variable, Var)] final values of assigned Variables

    def add_const(self, value):
        value = np.asarray(value)
        var = Var(value.shape, value.dtype)
        self.consts[var] = value
        return var

    def producers(self):
        """{Var: Node} for every value a node defines."""
        return {out: node for node in self.nodes for out in node.outputs}

    def input_position(self, var, producers=None):
        """The position in `inputs` of the argument `var` holds the values of (through
        reshapes, casts and broadcasts), or None for a computed value."""
        producers = self.producers() if producers is None else producers
        while True:
            for position, input_var in enumerate(self.inputs):
                if input_var is var:
                    return position
            node = producers.get(var)
            if node is None or node.prim.name not in ('reshape', 'convert', 'broadcast_to'):
                return None
            var = node.inputs[0]

    def verify(self):
        """Check SSA order and re-run every node's shape rule, recursing into the sub-graphs
        of control-flow nodes (closed: no state of their own); raises AssertionError."""
        defined = set(self.inputs) | {v for _, v in self.state} | set(self.consts)
        for node in self.nodes:
            for v in node.inputs:
                assert v in defined, f'{node.prim.name} uses an undefined value'
            for sub in subgraphs(node):
                assert not sub.state and not sub.updates, f'{node.prim.name}: a sub-graph has state'
                sub.verify()
            expected = node.prim.shape_rule(*node.inputs, **node.params)
            for out, (shape, dtype, _) in zip(node.outputs, expected):
                assert out.shape == tuple(shape) and out.dtype == dtype, (
                    f'{node.prim.name}: {out.type_str()} does not match its shape rule')
            defined.update(node.outputs)
        for v in self.outputs + [v for _, v in self.updates]:
            assert v in defined, 'an output is undefined'
        return True

    def __str__(self):
        return GraphPrinter(self).render()


def subgraphs(node):
    """The graphs a node's params hold (the branches of a cond, the body of a loop), in
    parameter-name order."""
    found = []
    for _, value in sorted(node.params.items()):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, Graph):
                found.append(item)
    return found


class GraphPrinter:
    """Renders a graph one node per line with names assigned in order of appearance; the
    sub-graphs of control-flow nodes are rendered nested under their node (as jaxprs are),
    sharing the names, so every value has one name."""

    def __init__(self, graph, names=None):
        self.graph, self.names = graph, {} if names is None else names

    def name(self, var):
        if var in self.graph.consts and self.graph.consts[var].ndim == 0:
            return str(self.graph.consts[var][()])
        if var not in self.names:
            self.names[var] = _letters(len(self.names))
        return self.names[var]

    def decl(self, var):
        return f'{self.name(var)}:{var.type_str()}'

    def render(self):
        g = self.graph
        args = ' '.join(self.decl(v) for v in g.inputs)
        state = ' '.join(f'{self.decl(v)}={_var_label(var)}' for var, v in g.state)
        lines = [f'{{ lambda {args} ; {state} .']
        for var, value in g.consts.items():
            if value.ndim:
                lines.append(f'    {self.decl(var)} = const')
        for node in g.nodes:
            outs = ' '.join(self.decl(v) for v in node.outputs)
            params = ''.join(f' {k}={_param_str(v)}' for k, v in sorted(node.params.items()))
            ins = ' '.join(self.name(v) for v in node.inputs)
            bracketed = f'[{params.strip()}]' if params else ''
            lines.append(f'    {outs} = {node.prim.name}{bracketed} {ins}'.rstrip())
            for sub in subgraphs(node):
                nested = GraphPrinter(sub, self.names).render()
                lines.extend('      ' + line for line in nested.split('\n'))
        outs = ', '.join(self.name(v) for v in g.outputs)
        lines.append(f'  return ({outs})')
        state_vars = {id(variable): var for variable, var in g.state}
        for variable, value in g.updates:
            lines.append(f'  {self.name(state_vars[id(variable)])} <- {self.name(value)}')
        return '\n'.join(lines) + ' }'


def _var_label(variable):
    return getattr(variable, 'name', None) or 'Variable'


def _param_str(value):
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, Graph):
        return '{..}'   # rendered nested, under the node
    if isinstance(value, tuple) and value and all(isinstance(v, Graph) for v in value):
        return '(' + ','.join('{..}' for _ in value) + ')'
    return str(value).replace(' ', '')


def _letters(index):
    letters = 'abcdefghijklmnopqrstuvwxyz'
    out = ''
    while True:
        out = letters[index % 26] + out
        index //= 26
        if index == 0:
            return out


def evaluate(graph, args, state_values, frees=None):
    """Run a graph with the primitives' numpy rules: the reference the backend is checked against.

    Returns (outputs, updates) as lists of numpy arrays. `frees`: `last_uses(graph)`, for
    callers that evaluate one graph many times.
    """
    env = dict(graph.consts)
    env.update((v, np.asarray(a, v.dtype)) for v, a in zip(graph.inputs, args))
    env.update(zip((v for _, v in graph.state), (np.asarray(s) for s in state_values)))
    frees = last_uses(graph) if frees is None else frees
    with np.errstate(all='ignore'):
        for i, node in enumerate(graph.nodes):
            results = node.prim.apply(node, [env[v] for v in node.inputs])
            for var, value in zip(node.outputs, results):
                env[var] = value
            for var in frees.get(i, ()):  # free intermediates early: peak memory stays small
                del env[var]
    return [env[v] for v in graph.outputs], [env[v] for _, v in graph.updates]


def last_uses(graph):
    """{node index: intermediates that no later node, output or update reads}."""
    kept = set(graph.outputs) | {v for _, v in graph.updates}
    last = {}
    for i, node in enumerate(graph.nodes):
        for var in (*node.inputs, *node.outputs):
            last[var] = i
    produced = {v for node in graph.nodes for v in node.outputs}
    by_node = {}
    for var, i in last.items():
        if var in produced and var not in kept:
            by_node.setdefault(i, []).append(var)
    return by_node

"""Recording a branch or loop body as a closed sub-graph, and replaying a graph with ops.

A `SubTrace` is a trace nested in the current one (or in eager code). Values of the enclosing
traces that the function closes over, and the Variables it reads, become inputs of the
sub-graph, remembered in `captured` as the operands the control-flow node must be given; a
Variable the function assigns leaves its final value as an extra output (`assigned`). Gradient
tapes are paused while recording: they see the control-flow node as a whole, not its insides,
and are told of the Variable reads it makes on the enclosing level.

As in TensorFlow, the gradient with respect to a Variable sums the cotangents of its reads, and
an assignment is not differentiated: a read after an assignment in the function is a
`fresh_read` node, whose cotangent goes to the Variable's value on entry (the captured read of
the enclosing level), never back through the assigned value. A loop carries an assigned
Variable: `carry_reads` makes the reads of its value on entry fresh reads of the carry too.
"""
import numpy as np

from . import errors, ir, tracing, tree
from .primitives import REGISTRY
from .tensor import Tensor, TensorOps
from .tracing import Trace, Tracer

FRESH_READ = REGISTRY['fresh_read']


class SubTrace(Trace):
    def __init__(self, parent):
        super().__init__(allow_new_variables=False)
        self.parent = parent          # the enclosing Trace, or None in eager code
        self.captured = []            # operands on the enclosing level, one per captured input
        self.capture_vars = []        # the input Var of each
        self._capture_of = {}         # uid of an enclosing value -> its input Var here
        self.reads = {}               # id(Variable) -> Var of its value on entry
        self.tapes = list(tracing.active_tapes())

    def to_var(self, value):
        if isinstance(value, Tracer) and value.trace is not self and self.encloses(value.trace):
            return self.capture(value)
        if isinstance(value, Tensor) and self.in_eager_code():
            return self.capture(value)   # an operand, so tapes see gradients flow into it
        return super().to_var(value)

    def records_eager_ops(self):
        return self.in_eager_code()

    def in_eager_code(self):
        """Whether the outermost enclosing trace is a sub-graph of eager code."""
        root = self
        while root.parent is not None:
            root = root.parent
        return isinstance(root, SubTrace)

    def capture(self, value):
        """The input Var standing for `value`, a tensor of an enclosing level."""
        var = self._capture_of.get(value._uid)
        if var is None:
            outer = value
            if self.parent is not None and not (isinstance(value, Tracer)
                                                and value.trace is self.parent):
                outer = Tracer(self.parent, self.parent.to_var(value))   # through each level
            var = ir.Var(value.shape, np.dtype(value.dtype.np), getattr(value, 'weak', False))
            self.graph.inputs.append(var)
            self.captured.append(outer)
            self.capture_vars.append(var)
            self._capture_of[value._uid] = var
        return var

    def read_variable(self, variable):
        entry = self._entry(variable)
        current = Tracer(self, self.current[id(variable)][1])
        if current.var is entry:
            return current
        return self.emit(FRESH_READ, [current, Tracer(self, entry)], {})[0]

    def assign_variable(self, variable, value):
        self._entry(variable)
        self.current[id(variable)] = (variable, self.to_var(value))

    def _entry(self, variable):
        """The input Var of `variable`'s value on entry, read on the enclosing level first."""
        key = id(variable)
        if key not in self.reads:
            if self.parent is not None:
                outer = self.parent.read_variable(variable)
            else:
                outer = Tensor(variable.buffer.copy())
            for tape in self.tapes:
                tape.on_variable_read(variable, outer)
            var = self.reads[key] = self.capture(outer)
            self.current[key] = (variable, var)
        return self.reads[key]

    def assigned(self):
        """[(Variable, Var of its final value)] for the Variables the function assigned."""
        return [(variable, var) for key, (variable, var) in self.current.items()
                if self.reads[key] is not var]


class Recorded:
    """A function recorded as a sub-graph: `graph` (inputs: the explicit ones, then the
    captured), the outputs' tree, the captured operands and the assigned Variables."""

    def __init__(self, sub, num_explicit, out_tree, out_leaves):
        self.sub, self.graph, self.num_explicit = sub, sub.graph, num_explicit
        self.out_tree, self.num_outputs = out_tree, out_leaves

    def variables(self):
        return [variable for variable, _ in self.sub.assigned()]

    def captures(self):
        """[(operand on the enclosing level, input Var here)] in capture order."""
        return list(zip(self.sub.captured, self.sub.capture_vars))

    def capture_keys(self):
        """[(key, operand, input Var)] in capture order. The n-th capture of one operand (a
        Variable's entry read and a closed-over tensor can hold one value) has the n-th key
        of it, so two recordings share a key for a value both captured."""
        counts, out = {}, []
        for outer, var in self.captures():
            key = operand_key(outer)
            counts[key] = counts.get(key, -1) + 1
            out.append(((key, counts[key]), outer, var))
        return out

    def input_for(self, key):
        """This graph's input Var for a key of `capture_keys`, or None."""
        return next((var for k, _, var in self.capture_keys() if k == key), None)

    def value_of(self, variable):
        """The Var of `variable`'s value at the end (read now if the function never did)."""
        if id(variable) not in self.sub.current:
            self.sub.read_variable(variable)
        return self.sub.current[id(variable)][1]

    def carry_reads(self, variables):
        """Fresh input Vars carrying `variables` through a loop. The reads of a Variable's
        value on entry become fresh reads of its carry: the cotangent of each goes to the
        value before the loop, a const input, not back into the previous iteration."""
        carry = []
        for variable in variables:
            var = ir.Var(variable.shape, variable.dtype.np)
            entry = self.sub.reads.get(id(variable))
            if entry is not None:
                _read_through(self.graph, entry, var)
            carry.append(var)
        return carry


def _read_through(graph, entry, carry):
    """Let every use of `entry` in `graph` (but as the entry of a fresh read) read
    `fresh_read(carry, entry)` instead."""
    read = ir.Var(entry.shape, entry.dtype)

    def renamed(node):
        inputs = [read if v is entry else v for v in node.inputs]
        if node.prim is FRESH_READ:
            inputs[1] = entry
        return ir.Node(node.prim, inputs, node.params, node.outputs, node.where)

    graph.nodes = [ir.Node(FRESH_READ, [carry, entry], {}, [read])] + [
        renamed(n) if entry in n.inputs else n for n in graph.nodes]
    graph.outputs = [read if v is entry else v for v in graph.outputs]


def union_captures(recs):
    """The operands the recordings captured, each once, and their keys (`capture_keys`)."""
    operands, keys = [], []
    for rec in recs:
        for key, outer, _ in rec.capture_keys():
            if key not in keys:
                operands.append(outer)
                keys.append(key)
    return operands, keys


def operand_key(value):
    """Equal for two operands of the enclosing level holding the same value (two reads of a
    Variable give two Tracers of one Var)."""
    return (id(value.trace), value.var) if isinstance(value, Tracer) else id(value)


def record(fn, in_avals, what):
    """Trace `fn(*inputs)` (inputs of `in_avals`, (shape, dtype, weak) each) into a sub-graph
    of the current trace; the outputs are its result's leaves then nothing else (callers add
    the assigned Variables' values)."""
    sub = SubTrace(tracing.current_trace())
    tapes = tracing.active_tapes()
    saved, tapes[:] = list(tapes), []
    try:
        with sub:
            inputs = [sub.new_input(*aval) for aval in in_avals]
            out = fn(*inputs)
            leaves, out_tree = tree.flatten(out)
            for leaf in leaves:
                if not _is_tensor_like(leaf):
                    raise TypeError(errors.at_user_line(
                        f'{what} must return tensors (or nests of them), got '
                        f'{type(leaf).__name__}'))
            sub.graph.outputs = [sub.to_var(tracing.as_operand(leaf)) for leaf in leaves]
    finally:
        tapes[:] = saved
    return Recorded(sub, len(in_avals), out_tree, len(leaves))


def _is_tensor_like(leaf):
    return isinstance(leaf, (TensorOps, np.ndarray, bool, int, float, np.generic))


def call_graph(graph, args):
    """Run `graph` on `args` by binding its nodes' primitives: eagerly, into the current trace,
    and seen by the active tapes (how a sub-graph is differentiated)."""
    env = dict(graph.consts)
    env.update(zip(graph.inputs, args))
    for node in graph.nodes:
        outs = tracing.bind(node.prim, *(env[v] for v in node.inputs), **node.params)
        outs = outs if isinstance(outs, list) else [outs]
        env.update(zip(node.outputs, outs))
    return [env[v] for v in graph.outputs]

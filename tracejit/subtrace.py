"""Recording a branch or loop body as a closed sub-graph, and replaying a graph with ops.

A `SubTrace` is a trace nested in the current one (or in eager code). Values of the enclosing
traces that the function closes over, and the Variables it reads, become inputs of the
sub-graph, remembered in `captured` as the operands the control-flow node must be given; a
Variable the function assigns leaves its final value as an extra output (`assigned`). Gradient
tapes are paused while recording: they see the control-flow node as a whole, not its insides,
and are told of the Variable reads it makes on the enclosing level.
"""
import numpy as np

from . import errors, ir, tracing, tree
from .tensor import Tensor, TensorOps
from .tracing import Trace, Tracer


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
        entry = self.current.get(id(variable))
        if entry is None:
            if self.parent is not None:
                outer = self.parent.read_variable(variable)
            else:
                outer = Tensor(variable.buffer.copy())
            for tape in self.tapes:
                tape.on_variable_read(variable, outer)
            var = self.capture(outer)
            self.reads[id(variable)] = var
            entry = self.current[id(variable)] = (variable, var)
        return Tracer(self, entry[1])

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

    def input_for(self, key):
        """This graph's input Var for an enclosing operand's `operand_key`, or None."""
        for outer, var in self.captures():
            if operand_key(outer) == key:
                return var
        return None

    def read_var(self, variable):
        """The input Var of `variable`'s value on entry (None if never read)."""
        return self.sub.reads.get(id(variable))

    def value_of(self, variable):
        """The Var of `variable`'s value at the end (read now if the function never did)."""
        self.sub.read_variable(variable)
        return self.sub.current[id(variable)][1]


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

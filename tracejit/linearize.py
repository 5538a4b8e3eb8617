"""Partial evaluation of a loop body's linearization into a forward and a backward part, as
JAX's partial_eval splits a jaxpr into known and unknown parts.

A linearization is one graph `(body inputs, output cotangents, captured) -> (body outputs,
input cotangents)`: the body replayed, then differentiated. Its nodes that read no cotangent
(the replayed forward and the factors of the derivative that depend on forward values only)
are known: they move into the forward loop, which emits what the rest reads (the residuals).
The other nodes form the backward body, which reads the residuals instead of recomputing the
forward; only cheap arithmetic of values a loop stacks anyway (an LSTM gate's s * (1 - s) from
its activation s) is recomputed there rather than stacked too (an LSTM stacks 7 values a step,
not 12).
A residual is, by where its value comes from:

- `('const', i)`: the loop's const input i (the backward loop is given it as it is);
- `('x', i)`: the row of the scanned input i (the backward loop scans the same input);
- `('captured', j)`: a value the linearization captured from the enclosing level;
- `('hoisted', k)`: output k of `hoist`, a value computed from consts only, which runs once
  before the backward loop instead of once per iteration;
- `('stacked', k)`: extra output k of the forward body, stacked per iteration (carry inputs
  and intermediates).
"""
from . import ir
from .passes import has_effects


class Split:
    """The parts of a linearization: `forward` (inputs: the captured, then the body's; outputs:
    the body's, then the stacked residuals), `hoist` (inputs: the consts, then the captured),
    `backward` (inputs: the residuals in `residuals` order, then the cotangents; outputs: the
    input cotangents) and `residuals`, the (kind, index) of each backward input before the
    cotangents."""

    def __init__(self, forward, hoist, backward, residuals):
        self.forward, self.hoist, self.backward = forward, hoist, backward
        self.residuals = residuals


def _graph(inputs, nodes, outputs, consts):
    graph = ir.Graph()
    graph.inputs, graph.outputs = list(inputs), list(outputs)
    graph.nodes = _live(nodes, outputs)
    read = {v for node in graph.nodes for v in node.inputs} | set(outputs)
    graph.consts = {v: c for v, c in consts.items() if v in read}
    return graph


def _live(nodes, targets):
    """The nodes (in order) some target depends on."""
    live, kept = set(targets), []
    for node in reversed(nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return kept[::-1]


def _needed(backward_nodes, grads, unknown, consts):
    """The known values the backward nodes and the gradients read, in order of first use."""
    needed = []
    for v in [v for node in backward_nodes for v in node.inputs] + grads:
        if v not in unknown and v not in consts and v not in needed:
            needed.append(v)
    return needed


# arithmetic the backward recomputes rather than reading it from a stacked residual: an
# LSTM's gate derivatives, s * (1 - s) and 1 - t * t, from the stacked activations s and t
RECOMPUTED = frozenset({'add', 'sub', 'mul', 'neg'})


def _recomputed(needed, known, free):
    """The known nodes (in order) that recompute, from the other needed values and `free`
    ones, the needed values that only cheap arithmetic (RECOMPUTED) makes from them; their
    values then need not be stacked."""
    producers = {out: node for node in known for out in node.outputs}
    kept = [v for v in needed if not free(v)]

    def derivable(v, sources, depth=4):
        if v in sources or free(v):
            return True
        node = producers.get(v)
        return node is not None and node.prim.name in RECOMPUTED and depth > 0 and all(
            derivable(u, sources, depth - 1) for u in node.inputs)

    for v in list(kept):
        others = set(kept) - {v}
        if v in producers and producers[v].prim.name in RECOMPUTED and derivable(v, others):
            kept.remove(v)
    sources, nodes = set(kept), set()

    def collect(v):
        if v in sources or free(v) or v not in producers or producers[v] in nodes:
            return
        nodes.add(producers[v])
        for u in producers[v].inputs:
            collect(u)

    for v in needed:
        if v not in sources and not free(v):
            collect(v)
    return [node for node in known if node in nodes]


def split(graph, num_inputs, num_outputs, num_cts, num_consts, x_start, hoist=True):
    """Split the linearization `graph` of a sub-graph whose inputs are `num_consts` consts,
    then a loop's carry, then its xs from position `x_start`. Without `hoist` (a branch, which
    may not run), nothing is hoisted."""
    primal_in = graph.inputs[:num_inputs]
    captured = graph.inputs[num_inputs + num_cts:]
    position = {v: i for i, v in enumerate(primal_in)}
    unknown = set(graph.inputs[num_inputs:num_inputs + num_cts])
    invariant = set(primal_in[:num_consts]) | set(captured) | set(graph.consts)
    known, backward_nodes = [], []
    for node in graph.nodes:
        if any(v in unknown for v in node.inputs):
            backward_nodes.append(node)
            unknown.update(node.outputs)
            continue
        known.append(node)
        if all(v in invariant for v in node.inputs) and not has_effects(node):
            invariant.update(node.outputs)
    grads = graph.outputs[num_outputs:]
    needed = _needed(backward_nodes, grads, unknown, graph.consts)
    if hoist:   # a loop stacks residuals per iteration: recompute cheap ones instead
        def free(v):
            return v in captured or v in invariant or v in graph.consts or v in position and (
                position[v] < num_consts or position[v] >= x_start)
        recomputed = _recomputed(needed, known, free)
        backward_nodes = recomputed + backward_nodes
        unknown.update(v for node in recomputed for v in node.outputs)
        needed = _needed(backward_nodes, grads, unknown, graph.consts)
    residuals, stacked, hoisted = [], [], []
    for v in needed:
        if v in position and (position[v] < num_consts or position[v] >= x_start):
            i = position[v]
            residuals.append(('const', i) if i < num_consts else ('x', i - x_start))
        elif v in captured:
            residuals.append(('captured', captured.index(v)))
        elif hoist and v in invariant:
            residuals.append(('hoisted', len(hoisted)))
            hoisted.append(v)
        else:
            residuals.append(('stacked', len(stacked)))
            stacked.append(v)
    forward = _graph(captured + primal_in, known, graph.outputs[:num_outputs] + stacked,
                     graph.consts)
    hoist = _graph(primal_in[:num_consts] + captured, known, hoisted, graph.consts)
    backward = _graph(needed + graph.inputs[num_inputs:num_inputs + num_cts], backward_nodes,
                      grads, graph.consts)
    return Split(forward, hoist, backward, residuals)

"""Reverse mode through the control-flow nodes (the VJP rules of subgraph.py's records).

The forward runs once. A rule linearizes the node's sub-graphs (each replayed under a tape and
differentiated, recorded as one graph), splits each linearization into the part that reads no
cotangent and the rest (linearize.py), and turns the primal node, where it sits in a graph being
traced, into the forward node of the first parts, which also outputs the residuals (stacked per
iteration in a scan, one set per branch in a cond); the backward node of the other parts reads
them instead of recomputing the forward. Eagerly, or when a node is differentiated a second
time, a new forward node computes the residuals. A bounded while loop is differentiated as a
scan of `maximum_iterations` steps (TensorFlow's rule), which then replaces the loop.
"""
import numpy as np

from . import errors, indexed_slices, ir, linearize, ops, tracing
from .autodiff import GradientTape
from .control import cond, scan_flat, switch
from .operands import dtype_of
from .primitives import REGISTRY
from .subgraph import COND, SCAN, WHILE
from .subtrace import call_graph, record, union_captures
from .tracing import Tracer, bind


def _float_positions(values):
    return [i for i, v in enumerate(values) if dtype_of(v).kind == 'f']


def _listed(result):
    return result if isinstance(result, list) else [result]


def _linearization(graph, diff_in, diff_out, num_consts, x_start, hoist, what):
    """`graph`'s linearization (inputs: graph inputs, cotangents of the `diff_out` outputs;
    outputs: graph outputs, cotangents of the `diff_in` inputs) split by linearize.py, and the
    recording (for the operands it captured: eager constants)."""
    n = len(graph.inputs)

    def linearized(*args):
        ins, cts = list(args[:n]), list(args[n:])
        with GradientTape(watch_accessed_variables=False) as tape:
            for i in diff_in:
                tape.watch(ins[i])
            outs = call_graph(graph, ins)
        grads = tape.gradient([outs[j] for j in diff_out], [ins[i] for i in diff_in],
                              output_gradients=cts, unconnected_gradients='zero')
        return list(outs) + [indexed_slices.densify(g) for g in grads]

    avals = [(v.shape, v.dtype, v.weak) for v in graph.inputs + [graph.outputs[j]
                                                                 for j in diff_out]]
    rec = record(linearized, avals, what)
    parts = linearize.split(rec.graph, n, len(graph.outputs), len(diff_out), num_consts,
                            x_start, hoist)
    return parts, rec


# -------------------------------------------------------------------------------- the forward

def _producer(value):
    """(trace, index) of the node computing `value` in a graph being traced, or None."""
    if not isinstance(value, Tracer) or not value.trace.active:
        return None
    nodes = value.trace.graph.nodes
    for index in range(len(nodes) - 1, -1, -1):
        if any(out is value.var for out in nodes[index].outputs):
            return value.trace, index
    return None


def _defined_everywhere(trace, values):
    """Whether each value is an input or a constant of `trace`'s graph."""
    graph = trace.graph
    known = set(graph.inputs) | set(graph.consts)
    return all(isinstance(v, Tracer) and v.trace is trace and v.var in known for v in values)


def _residuals(outs, args, captured, arrange, prim, params, primal_params):
    """The residual outputs of the forward node `prim(*arrange(captured, args), **params)`:
    the primal node (found by its output and its params, `primal_params`) rewritten into it,
    or a new node. The forward node keeps the primal's outputs first."""
    found = _producer(outs[0])
    if found is not None:
        trace, index = found
        node = trace.graph.nodes[index]
        if (node.prim is prim and all(node.params[k] is v for k, v in primal_params.items())
                and _defined_everywhere(trace, captured)):
            inputs = arrange([c.var for c in captured], node.inputs)
            avals = prim.check(*inputs, **params)[len(node.outputs):]
            extra = [ir.Var(*aval) for aval in avals]
            trace.graph.nodes[index] = ir.Node(prim, inputs, params, node.outputs + extra,
                                               node.where)
            residuals = [Tracer(trace, v) for v in extra]
            primal = [Tracer(trace, v) for v in node.outputs]
            for tape in tracing.active_tapes():   # residuals depend on the inputs too
                tape.record(prim, arrange(captured, list(args)), params, primal + residuals)
            return residuals
    return _listed(bind(prim, *arrange(captured, list(args)), **params))[len(outs):]


# -------------------------------------------------------------------------------- cond

def _cond_vjp(cts, outs, index, *operands, branches):
    """A cond of the branches' backward parts, reading the residuals the taken branch of the
    forward cond output (zeros in the slots of the other branches)."""
    diff_in = _float_positions(operands)
    diff_out = [j for j in _float_positions(outs) if cts[j] is not None]
    if not diff_in or not diff_out:
        return [None] * (1 + len(operands))
    n = len(operands)
    parts = [_linearization(b, diff_in, diff_out, n, n, False, 'a tj.cond gradient')
             for b in branches]
    captured, keys = union_captures([rec for _, rec in parts])
    slots, placements = _slots([lin.forward.outputs[len(outs):] for lin, _ in parts])
    forward = [_branch_forward(lin.forward, rec, captured, keys, len(outs), slots, placed)
               for (lin, rec), placed in zip(parts, placements)]
    residuals = _residuals(outs, (index,) + operands, captured,
                           lambda c, a: a[:1] + c + a[1:], COND, {'branches': tuple(forward)},
                           {'branches': branches})
    out_cts = [cts[j] for j in diff_out]
    fns = []
    for (lin, rec), placed in zip(parts, placements):
        outer = {'const': list(operands), 'captured': [o for o, _ in rec.captures()],
                 'stacked': [residuals[slot] for slot in placed]}
        fns.append(lambda lin=lin, outer=outer: call_graph(
            lin.backward, [outer[kind][k] for kind, k in lin.residuals] + out_cts))
    grads = _listed(switch(index, fns, 'a tj.cond gradient'))
    result = [None] * n
    for i, g in zip(diff_in, grads):
        result[i] = g
    return [None] + result


def _slots(residuals):
    """Residual slots shared by the branches (one per aval as often as one branch needs it):
    the slots' Vars (of the branch that placed them first) and each branch's slot for each of
    its residuals."""
    slots, placements = [], []
    for own in residuals:
        taken, placed = set(), []
        for v in own:
            slot = next((k for k, s in enumerate(slots) if k not in taken
                         and (s.shape, s.dtype) == (v.shape, v.dtype)), None)
            if slot is None:
                slot = len(slots)
                slots.append(v)
            taken.add(slot)
            placed.append(slot)
        placements.append(placed)
    return slots, placements


def _branch_forward(forward, rec, captured, keys, num_outs, slots, placed):
    """A branch's forward part with the node's inputs (every branch's captured operands, then
    the operands) and outputs (its own, then every residual slot: its residuals in the slots
    `placed`, zeros in the others)."""
    own_captured = len(rec.captures())
    graph = ir.Graph()
    graph.inputs = [rec.input_for(key) or ir.Var(c.shape, dtype_of(c).np, c.weak)
                    for key, c in zip(keys, captured)] + forward.inputs[own_captured:]
    graph.consts, graph.nodes = dict(forward.consts), list(forward.nodes)
    filled = dict(zip(placed, forward.outputs[num_outs:]))
    graph.outputs = list(forward.outputs[:num_outs]) + [
        filled[k] if k in filled else _zeros(graph, slot) for k, slot in enumerate(slots)]
    return graph


def _zeros(graph, like):
    """A Var of zeros with `like`'s aval, computed in `graph`."""
    zero = graph.add_const(np.zeros((), like.dtype))
    if like.shape == ():
        return zero
    out = ir.Var(like.shape, like.dtype)
    graph.nodes.append(ir.Node(REGISTRY['broadcast_to'], [zero], {'shape': like.shape}, [out]))
    return out


# -------------------------------------------------------------------------------- scan

def _scan_vjp(cts, outs, *args, body, num_consts, num_carry, length, reverse):
    """A scan in the other direction over the residuals the forward scan stacked, the xs and
    the ys' cotangents, carrying the carry's cotangent and the consts' accumulated
    cotangents (values of the consts alone are computed once, before it)."""
    split = num_consts + num_carry
    consts, init, xs = list(args[:num_consts]), list(args[num_consts:split]), list(args[split:])
    diff_consts, diff_carry, diff_xs = (_float_positions(consts), _float_positions(init),
                                        _float_positions(xs))
    diff_ys = [j for j in _float_positions(outs[num_carry:]) if cts[num_carry + j] is not None]
    flowing = diff_ys or any(cts[i] is not None for i in diff_carry)
    if not (diff_consts or diff_carry or diff_xs) or not flowing:
        return [None] * len(args)
    diff_in = diff_consts + [num_consts + i for i in diff_carry] + [split + i for i in diff_xs]
    diff_out = diff_carry + [num_carry + j for j in diff_ys]
    lin, rec = _linearization(body, diff_in, diff_out, num_consts, split, True,
                              'a tj.scan gradient')
    captured = [outer for outer, _ in rec.captures()]
    params = dict(body=lin.forward, num_consts=num_consts + len(captured), num_carry=num_carry,
                  length=length, reverse=reverse)
    stacked = _residuals(outs, args, captured, lambda c, a: c + a, SCAN, params, {'body': body})
    hoisted = _listed(call_graph(lin.hoist, consts + captured)) if lin.hoist.outputs else []
    outer = {'const': consts, 'captured': captured, 'hoisted': hoisted}
    carry_cts = [cts[i] if cts[i] is not None else ops.zeros_like(outs[i]) for i in diff_carry]
    y_cts = [cts[num_carry + j] for j in diff_ys]
    n_ct, n_acc, n_stacked = len(carry_cts), len(diff_consts), len(stacked)

    def backward(state, rows):
        ct, acc = state[:n_ct], state[n_ct:]
        scanned = {'stacked': rows[:n_stacked], 'x': rows[n_stacked:n_stacked + len(xs)]}
        residuals = [(scanned[kind] if kind in scanned else outer[kind])[k]
                     for kind, k in lin.residuals]
        grads = call_graph(lin.backward, residuals + ct + rows[n_stacked + len(xs):])
        g_consts, g_carry = grads[:n_acc], grads[n_acc:n_acc + n_ct]
        return list(g_carry) + [ops.add(a, g) for a, g in zip(acc, g_consts)], \
            list(grads[n_acc + n_ct:])

    acc = [ops.zeros_like(consts[i]) for i in diff_consts]
    state, g_xs = scan_flat(backward, carry_cts + acc, stacked + xs + y_cts, length,
                            not reverse, 'a tj.scan gradient')
    result = [None] * len(args)
    for i, g in zip(diff_consts, state[n_ct:]):
        result[i] = g
    for i, g in zip(diff_carry, state[:n_ct]):
        result[num_consts + i] = g
    for i, g in zip(diff_xs, g_xs):
        result[split + i] = g
    return result


# -------------------------------------------------------------------------------- while

def _while_vjp(cts, outs, *args, cond_graph, body_graph, num_consts, max_iter):
    """TensorFlow's rule: differentiable with a static maximum_iterations, as a scan of that
    many steps whose body runs the loop body only while the condition holds; in a graph being
    traced that scan then computes the loop's results in its place."""
    if max_iter is None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'the gradient of tj.while_loop needs a bound on its iterations: pass '
            'maximum_iterations=<a Python int> (or use tj.scan / tj.lax.fori_loop with static '
            'bounds)'))
    consts, init = list(args[:num_consts]), list(args[num_consts:])
    sources = [i for i, a in enumerate(args) if hasattr(a, '_uid') and dtype_of(a).kind == 'f']

    def step(carry, _):
        pred = call_graph(cond_graph, consts + carry)[0]
        new = cond(pred, lambda: call_graph(body_graph, consts + carry), lambda: list(carry))
        return new, []

    with GradientTape(watch_accessed_variables=False) as tape:
        for i in sources:
            tape.watch(args[i])
        final, _ = scan_flat(step, init, [], length=max_iter, what='a tj.while_loop gradient')
    diff = [j for j, c in enumerate(cts) if c is not None and dtype_of(outs[j]).kind == 'f']
    grads = tape.gradient([final[j] for j in diff], [args[i] for i in sources],
                          output_gradients=[cts[j] for j in diff])
    _replace_loop(outs, final, cond_graph)
    result = [None] * len(args)
    for i, g in zip(sources, grads):
        result[i] = g
    return result


def _replace_loop(outs, final, cond_graph):
    """Let the scan computing `final` compute the while loop's results `outs` in the loop's
    place, where both are nodes of the graph being traced and the scan reads only values
    defined before the loop."""
    loop, scan = _producer(outs[0]), _producer(final[0])
    if loop is None or scan is None or loop[0] is not scan[0]:
        return
    trace, (at, index) = loop[0], (loop[1], scan[1])
    nodes = trace.graph.nodes
    node, scan_node = nodes[at], nodes[index]
    if node.prim is not WHILE or node.params['cond_graph'] is not cond_graph or \
            scan_node.prim is not SCAN or at > index:
        return
    defined = set(trace.graph.inputs) | set(trace.graph.consts) | {
        v for _, v in trace.graph.state} | {v for n in nodes[:at] for v in n.outputs}
    if not all(v in defined for v in scan_node.inputs):
        return
    count = len(node.outputs)
    rename = dict(zip(scan_node.outputs[:count], node.outputs))
    nodes[at] = ir.Node(SCAN, scan_node.inputs, scan_node.params,
                        node.outputs + scan_node.outputs[count:], scan_node.where)
    del nodes[index]
    for k in range(at + 1, len(nodes)):
        n = nodes[k]
        if any(v in rename for v in n.inputs):
            nodes[k] = ir.Node(n.prim, [rename.get(v, v) for v in n.inputs], n.params,
                               n.outputs, n.where)


COND.vjp = _cond_vjp
SCAN.vjp = _scan_vjp
WHILE.vjp = _while_vjp

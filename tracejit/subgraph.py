"""The control-flow primitives, whose params hold closed sub-graphs: `cond`, `while`, `scan`.

A sub-graph is an `ir.Graph` with inputs and outputs only: every value it closes over, and every
Variable it reads or assigns, is an explicit input (and an assigned Variable's final value an
output), so a sub-graph is a pure function and the node's data flow says everything.

- `cond(index, *operands; branches)`: runs `branches[index]` (index clamped into range, as
  JAX's switch) on the operands; every branch has the operands' avals as inputs and the same
  outputs.
- `while(*consts, *carry; cond_graph, body_graph, num_consts, max_iter)`: while
  `cond_graph(consts, carry)` is true, `carry = body_graph(consts, carry)`. `max_iter`, a
  static bound the condition already enforces (or None), is what reverse mode needs.
- `scan(*consts, *carry, *xs; body, num_consts, num_carry, length, reverse)`: for each i of
  the leading axis (backwards with `reverse`), `carry, y = body(consts, carry, xs[i])`; outputs
  the final carry and the ys stacked on a new leading axis of `length`.

The records' numpy rules run the sub-graphs with `ir.evaluate`: the interpreter, eager
execution and debug_nans need nothing else. VJPs are in control.py, lowering in
backend/control.py.
"""
import numpy as np

from . import errors, ir
from .primitives import Primitive


def avals(vars_):
    return [(tuple(v.shape), np.dtype(v.dtype)) for v in vars_]


def _check_inputs(graph, args, what):
    if avals(graph.inputs) != avals(args):
        raise errors.ShapeError(f'{what} takes {_types(graph.inputs)} but is given '
                                f'{_types(args)}')


def _types(vars_):
    return '(' + ', '.join(f'{np.dtype(v.dtype).name}{list(v.shape)}' for v in vars_) + ')'


def _out_avals(graph):
    return [(v.shape, v.dtype, v.weak) for v in graph.outputs]


# -------------------------------------------------------------------------------- cond

def _cond_rule(index, *operands, branches):
    if tuple(index.shape) != () or np.dtype(index.dtype) != np.int32:
        raise errors.DTypeError('the branch index must be an int32 scalar')
    for k, branch in enumerate(branches):
        _check_inputs(branch, operands, f'branch {k}')
        if avals(branch.outputs) != avals(branches[0].outputs):
            raise errors.ShapeError(f'branch {k} returns {_types(branch.outputs)} but branch 0 '
                                    f'returns {_types(branches[0].outputs)}')
    weak = [all(b.outputs[i].weak for b in branches) for i in range(len(branches[0].outputs))]
    return [(v.shape, v.dtype, w) for v, w in zip(branches[0].outputs, weak)]


def branch_taken(index, count):
    return min(max(int(index), 0), count - 1)


def _cond(index, *operands, branches):
    outs, _ = ir.evaluate(branches[branch_taken(index, len(branches))], operands, [])
    return tuple(outs)


# -------------------------------------------------------------------------------- while

def _while_rule(*args, cond_graph, body_graph, num_consts, max_iter):
    carry = args[num_consts:]
    _check_inputs(cond_graph, args, 'the loop condition')
    _check_inputs(body_graph, args, 'the loop body')
    if avals(cond_graph.outputs) != [((), np.dtype(np.bool_))]:
        raise errors.DTypeError(f'the loop condition must return one bool scalar, got '
                                f'{_types(cond_graph.outputs)}')
    if avals(body_graph.outputs) != avals(carry):
        raise errors.ShapeError(f'the loop body returns {_types(body_graph.outputs)} for loop '
                                f'variables {_types(carry)}: each must keep its shape and dtype')
    return _out_avals(body_graph)


def _while(*args, cond_graph, body_graph, num_consts, max_iter):
    consts, carry = list(args[:num_consts]), list(args[num_consts:])
    while bool(ir.evaluate(cond_graph, consts + carry, [])[0][0]):
        carry = ir.evaluate(body_graph, consts + carry, [])[0]
    return tuple(carry)


# -------------------------------------------------------------------------------- scan

def _scan_rule(*args, body, num_consts, num_carry, length, reverse):
    split = num_consts + num_carry
    xs = args[split:]
    for x in xs:
        if len(x.shape) == 0 or x.shape[0] != length:
            raise errors.ShapeError(f'scan over a leading axis of {length} is given an operand '
                                    f'of shape {tuple(x.shape)}')
    slices = [ir.Var(x.shape[1:], x.dtype) for x in xs]
    _check_inputs(body, list(args[:split]) + slices, 'the scan body')
    carry_outs = body.outputs[:num_carry]
    if avals(carry_outs) != avals(args[num_consts:split]):
        raise errors.ShapeError(f'the scan body returns the carry {_types(carry_outs)} for an '
                                f'initial carry {_types(args[num_consts:split])}: each part must '
                                'keep its shape and dtype')
    return _out_avals(body)[:num_carry] + [((length,) + v.shape, v.dtype, v.weak)
                                           for v in body.outputs[num_carry:]]


def _scan(*args, body, num_consts, num_carry, length, reverse):
    split = num_consts + num_carry
    consts, carry, xs = list(args[:num_consts]), list(args[num_consts:split]), args[split:]
    ys = [np.empty((length,) + v.shape, v.dtype) for v in body.outputs[num_carry:]]
    for step in range(length):
        i = length - 1 - step if reverse else step
        outs = ir.evaluate(body, consts + carry + [x[i] for x in xs], [])[0]
        carry = outs[:num_carry]
        for stacked, y in zip(ys, outs[num_carry:]):
            stacked[i] = y
    return tuple(carry) + tuple(ys)


# -------------------------------------------------------------------------------- records

class ControlPrimitive(Primitive):
    """A primitive with several outputs whose params hold sub-graphs. Its VJP rule takes every
    output's cotangent (None where none flows) and returns every input's."""

    multiple_results = True

    def __init__(self, name, impl, shape_rule):
        super().__init__(name, impl, shape_rule, 'control', name)

    def prune_outputs(self, node, live):
        """The node without the outputs `live` marks False (the node itself if it must keep
        them)."""
        return node

    def prune_inputs(self, node):
        """The node without the inputs its sub-graphs no longer read."""
        return node


COND = ControlPrimitive('cond', _cond, _cond_rule)
WHILE = ControlPrimitive('while', _while, _while_rule)
SCAN = ControlPrimitive('scan', _scan, _scan_rule)


# -------------------------------------------------------------------------------- pruning
# Dead-code elimination (passes.py) drops the outputs of a control-flow node nothing reads,
# then, once the sub-graphs lost their dead code, the inputs none of them reads.

def _with(graph, inputs=None, outputs=None):
    out = ir.Graph()
    out.inputs = list(graph.inputs if inputs is None else inputs)
    out.consts, out.nodes = dict(graph.consts), list(graph.nodes)
    out.outputs = list(graph.outputs if outputs is None else outputs)
    return out


def _read(graph):
    return {v for node in graph.nodes for v in node.inputs} | set(graph.outputs)


def _node(node, inputs, outputs, **params):
    return ir.Node(node.prim, inputs, dict(node.params, **params), outputs, node.where)


def _cond_prune_outputs(node, live):
    keep = [i for i, alive in enumerate(live) if alive]
    if len(keep) == len(live):
        return node
    branches = tuple(_with(b, outputs=[b.outputs[i] for i in keep])
                     for b in node.params['branches'])
    return _node(node, node.inputs, [node.outputs[i] for i in keep], branches=branches)


def _cond_prune_inputs(node):
    branches = node.params['branches']
    read = set().union(*(_read(b) for b in branches))
    keep = [k for k in range(len(node.inputs) - 1)
            if any(b.inputs[k] in read for b in branches)]
    if len(keep) == len(node.inputs) - 1:
        return node
    branches = tuple(_with(b, inputs=[b.inputs[k] for k in keep]) for b in branches)
    return _node(node, node.inputs[:1] + [node.inputs[1 + k] for k in keep], node.outputs,
                 branches=branches)


def _scan_prune_outputs(node, live):
    body, num_carry = node.params['body'], node.params['num_carry']
    keep = list(range(num_carry)) + [i for i in range(num_carry, len(live)) if live[i]]
    if len(keep) == len(live):
        return node
    return _node(node, node.inputs, [node.outputs[i] for i in keep],
                 body=_with(body, outputs=[body.outputs[i] for i in keep]))


def _scan_prune_inputs(node):
    body, num_consts = node.params['body'], node.params['num_consts']
    split = num_consts + node.params['num_carry']
    read = _read(body)
    keep = [k for k in range(len(node.inputs)) if num_consts <= k < split
            or body.inputs[k] in read]
    if len(keep) == len(node.inputs):
        return node
    return _node(node, [node.inputs[k] for k in keep], node.outputs,
                 body=_with(body, inputs=[body.inputs[k] for k in keep]),
                 num_consts=sum(1 for k in keep if k < num_consts))


def _while_prune_inputs(node):
    cond_graph, body_graph = node.params['cond_graph'], node.params['body_graph']
    num_consts = node.params['num_consts']
    read = _read(cond_graph) | _read(body_graph)
    keep = [k for k in range(len(node.inputs)) if k >= num_consts
            or cond_graph.inputs[k] in read or body_graph.inputs[k] in read]
    if len(keep) == len(node.inputs):
        return node
    return _node(node, [node.inputs[k] for k in keep], node.outputs,
                 cond_graph=_with(cond_graph, inputs=[cond_graph.inputs[k] for k in keep]),
                 body_graph=_with(body_graph, inputs=[body_graph.inputs[k] for k in keep]),
                 num_consts=sum(1 for k in keep if k < num_consts))


COND.prune_outputs, COND.prune_inputs = _cond_prune_outputs, _cond_prune_inputs
SCAN.prune_outputs, SCAN.prune_inputs = _scan_prune_outputs, _scan_prune_inputs
WHILE.prune_inputs = _while_prune_inputs

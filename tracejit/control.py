"""Control flow with TensorFlow's signatures: cond, switch_case, while_loop, scan, foldl, foldr,
map_fn, built on the sub-graph primitives (subgraph.py); their VJP rules are in control_grads.py.

Inside a trace each construct records its functions once as closed sub-graphs (subtrace.py) and
binds one node, so the kernel runs one branch and native loops. Variables the functions assign
become outputs of the node (and carried state of loops), assigned on the enclosing level after
it. Eagerly, cond and while_loop run Python control flow, as TensorFlow's eager mode does; scan
and its relatives bind their node eagerly (the interpreter runs it).
"""
import numpy as np

from . import dtypes, errors, ir, ops, tree
from .operands import dtype_of, operand
from .subgraph import COND, SCAN, WHILE
from .subtrace import record, union_captures
from .tensor import TensorOps
from .tracing import Tracer, bind


def _convert(value, what):
    value = operand(value, what)
    if not isinstance(value, TensorOps):
        value = ops.convert_to_tensor(value)
    return value


def _aval(value):
    return tuple(value.shape), dtype_of(value), bool(getattr(value, 'weak', False))


def _is_float(value):
    return dtype_of(value).kind == 'f'


def _inputs_for(rec, keys, operands):
    """The recording's input Var for each operand (a fresh, unread one where it has none)."""
    out = []
    for key, op in zip(keys, operands):
        var = rec.input_for(key)
        out.append(var if var is not None else ir.Var(*_aval(op)))
    return out


def _assigned(recs):
    found = []
    for rec in recs:
        for variable in rec.variables():
            if not any(variable is v for v in found):
                found.append(variable)
    return found


def _assign_back(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


def _outs(result):
    return result if isinstance(result, list) else [result]


# -------------------------------------------------------------------------------- cond

def cond(pred, true_fn=None, false_fn=None, name=None):
    """TensorFlow's tf.cond: `true_fn()` if `pred` else `false_fn()`. Traced, only the taken
    branch runs (its Variable assignments and gathers, not the other's)."""
    if not callable(true_fn) or not callable(false_fn):
        raise TypeError(errors.at_user_line('tj.cond: true_fn and false_fn must be callable'))
    pred = operand(pred, 'pred')
    if not isinstance(pred, Tracer):   # eager, or a constant: only the taken branch runs
        return true_fn() if bool(np.asarray(pred)) else false_fn()
    if tuple(pred.shape) != () or np.dtype(pred.dtype.np) != np.bool_:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'tj.cond: pred must be a bool scalar, got {pred.dtype.name}{list(pred.shape)}'))
    return switch(ops.cast(pred, dtypes.int32), [false_fn, true_fn], 'tj.cond')


def switch_case(branch_index, branch_fns, default=None, name=None):
    """TensorFlow's tf.switch_case: `branch_fns[branch_index]()`; an index out of range runs
    `default` (or, without one, the last branch)."""
    if isinstance(branch_fns, dict):
        keys = sorted(branch_fns)
        if keys != list(range(len(keys))):
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'tj.switch_case: branch keys must be 0..n-1, got {keys}'))
        branch_fns = [branch_fns[k] for k in keys]
    fns = [f[1] if isinstance(f, tuple) else f for f in branch_fns]
    if not fns or not all(callable(f) for f in fns) or (default is not None
                                                        and not callable(default)):
        raise TypeError(errors.at_user_line(
            'tj.switch_case: branch_fns must be a non-empty list of callables'))
    fns = fns + ([default] if default is not None else [])
    index = operand(branch_index, 'branch_index')
    if not isinstance(index, Tracer):
        i = int(np.asarray(index))
        return (fns[i] if 0 <= i < len(branch_fns) else fns[-1])()
    index = ops.cast(index, dtypes.int32)
    in_range = ops.logical_and(index >= 0, index < len(branch_fns))
    return switch(ops.where(in_range, index, len(fns) - 1), fns, 'tj.switch_case')


def switch(index, fns, what):
    """Bind one cond node running `fns[index]()` (index an int32 scalar, clamped)."""
    recs = [record(fn, [], f'{what} branch {k}') for k, fn in enumerate(fns)]
    for k, rec in enumerate(recs[1:], 1):
        if rec.out_tree != recs[0].out_tree:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'{what}: branch {k} returns the structure {rec.out_tree} but branch 0 returns '
                f'{recs[0].out_tree}; every branch must return the same structure'))
        _check_same_types(recs[0].graph.outputs, rec.graph.outputs, what, k)
    variables = _assigned(recs)
    for rec in recs:   # a branch leaves a Variable it does not assign as it was
        rec.graph.outputs = rec.graph.outputs + [rec.value_of(v) for v in variables]
        if not rec.graph.outputs:   # branches of effects (or nothing): a flag keeps the node
            rec.graph.outputs = [rec.graph.add_const(np.int32(0))]
    operands, keys = union_captures(recs)
    for rec in recs:
        rec.graph.inputs = _inputs_for(rec, keys, operands)
    outs = _outs(bind(COND, index, *operands, branches=tuple(rec.graph for rec in recs)))
    count = recs[0].num_outputs
    _assign_back(variables, outs[count:])
    return tree.unflatten(recs[0].out_tree, outs[:count])


def _check_same_types(first, other, what, k):
    for i, (a, b) in enumerate(zip(first, other)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'{what}: output {i} of branch {k} is {b.type_str()} but branch 0 gives '
                f'{a.type_str()}; every branch must return the same shapes and dtypes'))


# -------------------------------------------------------------------------------- loops

def _loop_inputs(rec, variables, keys, operands, x_count=0):
    """Inputs of a loop function in node order: consts, carry, carried Variables, xs."""
    explicit = rec.graph.inputs[:rec.num_explicit]
    carried = rec.carry_reads(variables)
    consts = _inputs_for(rec, keys, operands)
    carry, xs = explicit[:len(explicit) - x_count], explicit[len(explicit) - x_count:]
    return consts + carry + carried + xs


def while_loop(cond, body, loop_vars, shape_invariants=None, parallel_iterations=10,
               back_prop=True, swap_memory=False, maximum_iterations=None, name=None):
    """TensorFlow's tf.while_loop: repeat `loop_vars = body(*loop_vars)` while
    `cond(*loop_vars)`, at most `maximum_iterations` times. Traced, one native loop; each loop
    variable must keep its shape and dtype. Differentiable when `maximum_iterations` is a
    Python int (TensorFlow's rule for reverse mode)."""
    if not callable(cond) or not callable(body):
        raise TypeError(errors.at_user_line('tj.while_loop: cond and body must be callable'))
    packed = isinstance(loop_vars, (list, tuple))
    leaves, treedef = tree.flatten(loop_vars)
    leaves = [_convert(v, 'loop variable') for v in leaves]

    def call(fn, values):
        args = tree.unflatten(treedef, values)
        return fn(*args) if packed else fn(args)

    def body_leaves(values):
        out = call(body, values)
        if packed and len(loop_vars) == 1 and not isinstance(out, (list, tuple)):
            out = type(loop_vars)([out])
        out_leaves, out_tree = tree.flatten(out)
        if out_tree != treedef:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'tj.while_loop: body returns the structure {out_tree} for loop variables '
                f'{treedef}; it must return the same structure'))
        return out_leaves

    limit = maximum_iterations
    if not any(isinstance(v, Tracer) for v in leaves) and _eager():
        return tree.unflatten(treedef, _eager_while(call, cond, body_leaves, leaves, limit))
    if limit is not None:
        counter = ops.constant(0, dtypes.int32)
        outs = _while([counter] + leaves,
                      lambda c: ops.logical_and(c[0] < limit, call(cond, c[1:])),
                      lambda c: [c[0] + 1] + body_leaves(c[1:]),
                      limit if isinstance(limit, int) else None)[1:]
    else:
        outs = _while(leaves, lambda c: call(cond, c), body_leaves, None)
    return tree.unflatten(treedef, outs)


def _eager():
    from .tracing import current_trace
    return current_trace() is None


def _eager_while(call, cond, body_leaves, values, limit):
    count = 0
    while (limit is None or count < int(limit)) and bool(np.asarray(call(cond, values))):
        values = [_convert(v, 'loop variable') for v in body_leaves(values)]
        count += 1
    return values


def _while(init, cond_fn, body_fn, max_iter):
    """Bind one while node; returns the final loop values (Variables assigned in the body are
    carried and assigned after it)."""
    in_avals = [_aval(v) for v in init]
    rec_cond = record(lambda *c: cond_fn(list(c)), in_avals, 'the tj.while_loop condition')
    rec_body = record(lambda *c: body_fn(list(c)), in_avals, 'the tj.while_loop body')
    if rec_cond.variables():
        raise errors.InvalidArgumentError(errors.at_user_line(
            'tj.while_loop: the condition assigns a Variable; assign it in the body'))
    pred = rec_cond.graph.outputs
    if len(pred) != 1 or pred[0].shape != () or pred[0].dtype != np.bool_:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'tj.while_loop: cond must return a bool scalar, got '
            + ', '.join(v.type_str() for v in pred)))
    _check_loop_types(init, rec_body.graph.outputs, 'tj.while_loop: body')
    variables = rec_body.variables()
    rec_body.graph.outputs = rec_body.graph.outputs + [rec_body.value_of(v) for v in variables]
    operands, keys = union_captures([rec_cond, rec_body])
    for rec in (rec_cond, rec_body):
        rec.graph.inputs = _loop_inputs(rec, variables, keys, operands)
    initial = [v.value() for v in variables]
    outs = _outs(bind(WHILE, *operands, *init, *initial, cond_graph=rec_cond.graph,
                      body_graph=rec_body.graph, num_consts=len(operands), max_iter=max_iter))
    _assign_back(variables, outs[len(init):])
    return outs[:len(init)]


def _check_loop_types(init, outs, what):
    if len(outs) != len(init):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{what} returns {len(outs)} values for {len(init)} loop variables'))
    for i, (v, out) in enumerate(zip(init, outs)):
        shape, dtype, _ = _aval(v)
        if out.shape != shape or out.dtype != dtype:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'{what} changes loop variable {i} from {dtype.name}{list(shape)} to '
                f'{out.type_str()}: compiled loops keep each loop variable\'s shape and dtype '
                '(cast it, or give it its final shape before the loop)'))


def scan_flat(body_fn, init, xs, length=None, reverse=False, what='tj.scan'):
    """Bind one scan node over flat lists: `body_fn(carry, x) -> (carry, ys)` (lists) runs for
    each row of the xs. Returns (final carry, stacked ys) as lists."""
    init = [_convert(v, 'initial value') for v in init]
    xs = [_convert(x, 'elems') for x in xs]
    lengths = {int(x.shape[0]) for x in xs if len(x.shape)} | ({int(length)} if length else set())
    if len(lengths) != 1 or any(not len(x.shape) for x in xs):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{what}: the scanned tensors need one leading axis of the same length, got shapes '
            + ', '.join(str(tuple(x.shape)) for x in xs) + (f' and length={length}' if length
                                                              else '')))
    (length,) = lengths
    x_avals = [_row_aval(x) for x in xs]
    num_carry = len(init)

    def body(*args):
        carry, ys = body_fn(list(args[:num_carry]), list(args[num_carry:]))
        return list(carry), list(ys)

    rec = record(body, [_aval(v) for v in init] + x_avals, f'the {what} function')
    _check_loop_types(init, rec.graph.outputs[:num_carry], f'{what}: the function')
    variables = rec.variables()
    outputs = rec.graph.outputs
    finals = [rec.value_of(v) for v in variables]
    rec.graph.outputs = outputs[:num_carry] + finals + outputs[num_carry:]
    if not rec.graph.outputs:   # a body of effects (or nothing): a counter keeps the node
        scan_flat(lambda counter, x: (counter, body_fn([], x)[1]), [np.int32(0)], xs, length,
                  reverse, what)
        return [], []
    operands, keys = union_captures([rec])
    rec.graph.inputs = _loop_inputs(rec, variables, keys, operands, len(xs))
    initial = [v.value() for v in variables]
    carried = num_carry + len(variables)
    outs = _outs(bind(SCAN, *operands, *init, *initial, *xs, body=rec.graph,
                      num_consts=len(operands), num_carry=carried, length=length,
                      reverse=bool(reverse)))
    _assign_back(variables, outs[num_carry:carried])
    return outs[:num_carry], outs[carried:]


def _elems(elems):
    leaves, treedef = tree.flatten(elems)
    return [_convert(x, 'elems') for x in leaves], treedef


def scan(fn, elems, initializer=None, parallel_iterations=10, back_prop=True,
         swap_memory=False, infer_shape=True, reverse=False, name=None):
    """TensorFlow's tf.scan: the stacked accumulated values of `a = fn(a, x)` over the rows of
    `elems` (a nest); without `initializer`, the first row starts (and is the first result)."""
    xs, x_tree = _elems(elems)
    if initializer is None:
        first = [x[-1] if reverse else x[0] for x in xs]
        rest = [x[:-1] if reverse else x[1:] for x in xs]
        init, init_tree, seed = first, x_tree, first
    else:
        init, init_tree = tree.flatten(initializer)
        rest, seed = xs, None

    def body(carry, x):
        out = fn(tree.unflatten(init_tree, carry), tree.unflatten(x_tree, x))
        leaves = tree.leaves(out)
        return leaves, leaves

    _, ys = scan_flat(body, init, rest, reverse=reverse, what='tj.scan')
    if seed is not None:
        parts = [ys, [ops.expand_dims(s, 0) for s in seed]] if reverse else \
            [[ops.expand_dims(s, 0) for s in seed], ys]
        ys = [ops.concat([a, b], 0) for a, b in zip(*parts)]
    return tree.unflatten(init_tree, ys)


def foldl(fn, elems, initializer=None, parallel_iterations=10, back_prop=True,
          swap_memory=False, name=None):
    """TensorFlow's tf.foldl: the final `a = fn(a, x)` over the rows of `elems`, first to last."""
    return _fold(fn, elems, initializer, reverse=False)


def foldr(fn, elems, initializer=None, parallel_iterations=10, back_prop=True,
          swap_memory=False, name=None):
    """TensorFlow's tf.foldr: as foldl, last row to first."""
    return _fold(fn, elems, initializer, reverse=True)


def _fold(fn, elems, initializer, reverse):
    xs, x_tree = _elems(elems)
    if initializer is None:
        init = [x[-1] if reverse else x[0] for x in xs]
        xs, init_tree = [x[:-1] if reverse else x[1:] for x in xs], x_tree
    else:
        init, init_tree = tree.flatten(initializer)

    def body(carry, x):
        out = fn(tree.unflatten(init_tree, carry), tree.unflatten(x_tree, x))
        return tree.leaves(out), []

    carry, _ = scan_flat(body, init, xs, reverse=reverse, what='tj.foldl/foldr')
    return tree.unflatten(init_tree, carry)


def map_fn(fn, elems, dtype=None, parallel_iterations=None, back_prop=True, swap_memory=False,
           infer_shape=True, name=None, fn_output_signature=None):
    """TensorFlow's tf.map_fn: `fn` applied to each row of `elems` (a nest), results stacked."""
    xs, x_tree = _elems(elems)
    out_tree = []

    def body(carry, x):
        leaves, treedef = tree.flatten(fn(tree.unflatten(x_tree, x)))
        out_tree.append(treedef)
        return [], leaves

    _, ys = scan_flat(body, [], xs, what='tj.map_fn')
    return tree.unflatten(out_tree[0], ys)


def _value_aval(v):
    if isinstance(v, np.ndarray):
        return tuple(v.shape), v.dtype, False
    return _aval(v)


def _row_aval(v):
    """The aval of one row of a scanned value."""
    shape, dtype, _ = _value_aval(v)
    return shape[1:], dtype, False

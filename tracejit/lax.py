"""JAX's structured control flow (`jax.lax`) with JAX's signatures and semantics: cond, switch,
while_loop, fori_loop, scan, map. Each binds the same sub-graph primitives as tj.cond and
tj.while_loop; functions take and return pytrees, and the carry keeps its structure and types.
"""
import numpy as np

from . import control, dtypes, errors, ops, tree
from .operands import operand
from .tracing import Tracer


def cond(pred, true_fun, false_fun, *operands):
    """jax.lax.cond: `true_fun(*operands)` if `pred` else `false_fun(*operands)` (any scalar
    pred; nonzero is true)."""
    index = operand(pred, 'pred')
    if isinstance(index, Tracer):
        index = ops.not_equal(index, 0) if index.dtype != dtypes.bool_ else index
    elif not np.ndim(np.asarray(index)) == 0:
        raise TypeError(errors.at_user_line('lax.cond: pred must be a scalar'))
    return control.cond(index, lambda: true_fun(*operands), lambda: false_fun(*operands))


def switch(index, branches, *operands):
    """jax.lax.switch: `branches[clamp(index, 0, len - 1)](*operands)`."""
    n = len(branches)
    index = operand(index, 'index')
    if not isinstance(index, Tracer):
        return branches[min(max(int(np.asarray(index)), 0), n - 1)](*operands)
    clamped = ops.clip_by_value(ops.cast(index, dtypes.int32), 0, n - 1)
    return control.switch(clamped, [lambda f=f: f(*operands) for f in branches], 'lax.switch')


def while_loop(cond_fun, body_fun, init_val):
    """jax.lax.while_loop: `val = body_fun(val)` while `cond_fun(val)`; one pytree carry."""
    leaves, treedef = tree.flatten(init_val)
    leaves = [control._convert(v, 'init_val') for v in leaves]

    def body(values):
        out_leaves, out_tree = tree.flatten(body_fun(tree.unflatten(treedef, values)))
        if out_tree != treedef:
            raise TypeError(errors.at_user_line(
                f'lax.while_loop: body_fun output {out_tree} must have the same structure as '
                f'init_val {treedef}'))
        return out_leaves

    run = control._eager_while if _eager(leaves) else None
    if run is not None:
        call = lambda fn, values: fn(tree.unflatten(treedef, values))  # noqa: E731
        return tree.unflatten(treedef, run(call, cond_fun, body, leaves, None))
    outs = control._while(leaves, lambda c: cond_fun(tree.unflatten(treedef, c)), body, None)
    return tree.unflatten(treedef, outs)


def _eager(leaves):
    from .tracing import current_trace
    return current_trace() is None and not any(isinstance(v, Tracer) for v in leaves)


def fori_loop(lower, upper, body_fun, init_val):
    """jax.lax.fori_loop: `val = body_fun(i, val)` for i in [lower, upper). Python-int bounds
    give a scan (reverse-differentiable); traced bounds a while loop (a new trip count then
    costs neither a trace nor a compile)."""
    if isinstance(lower, (int, np.integer)) and isinstance(upper, (int, np.integer)):
        start = int(lower)
        if int(upper) <= start:
            return init_val

        def step(carry, x):
            i, val = carry
            return (i + 1, body_fun(i, val)), None
        (_, val), _ = scan(step, (ops.constant(start, dtypes.int32), init_val), None,
                           length=max(int(upper) - start, 0))
        return val
    lower_t = ops.cast(operand(lower, 'lower'), dtypes.int32)
    upper_t = ops.cast(operand(upper, 'upper'), dtypes.int32)
    _, val = while_loop(lambda c: c[0] < upper_t, lambda c: (c[0] + 1, body_fun(c[0], c[1])),
                        (lower_t, init_val))
    return val


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """jax.lax.scan: `carry, y = f(carry, x)` over the leading axis of `xs` (a pytree, or None
    with `length`); returns (final carry, stacked ys)."""
    carry_leaves, carry_tree = tree.flatten(init)
    x_leaves, x_tree = tree.flatten(xs)
    y_tree = []
    if length == 0 or (x_leaves and not length and any(np.shape(x)[:1] == (0,)
                                                        for x in x_leaves)):
        raise errors.InvalidArgumentError(errors.at_user_line(
            'lax.scan over zero iterations is not supported: the stacked outputs would need '
            'the body traced without running it'))

    def body(carry, x):
        new, y = f(tree.unflatten(carry_tree, carry), tree.unflatten(x_tree, x))
        new_leaves, new_tree = tree.flatten(new)
        if new_tree != carry_tree:
            raise TypeError(errors.at_user_line(
                f'lax.scan: the carry output {new_tree} must have the structure of init '
                f'{carry_tree}'))
        y_leaves, treedef = tree.flatten(y)
        y_tree.append(treedef)
        return new_leaves, y_leaves

    carry, ys = control.scan_flat(body, carry_leaves, x_leaves, length, reverse, 'lax.scan')
    return tree.unflatten(carry_tree, carry), tree.unflatten(y_tree[0], ys)


def map(f, xs):  # noqa: A001 (jax.lax.map)
    """jax.lax.map: `f` over the leading axis of the pytree `xs`, results stacked."""
    return scan(lambda carry, x: ((), f(x)), (), xs)[1]

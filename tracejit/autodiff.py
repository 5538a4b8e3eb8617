"""Reverse-mode differentiation: GradientTape, tj.gradients, grad/value_and_grad, custom_gradient.

One backward driver serves every front end. It walks recorded primitive applications in reverse
and applies their VJP rules, which are written with tracejit ops: eagerly they compute numpy
values, under a trace they emit gradient IR into the same graph (so the backward pass fuses and
compiles with the forward), and under an outer tape they are themselves recorded, which gives
higher-order gradients. Broadcasting is undone once, here, not in each rule.

Two sources of "entries": a tape records ops as they run (eager or traced), keyed by each
value's uid; `tj.gradients` walks the nodes of the current graph, keyed by SSA value.
"""
import contextlib
import enum
import functools

import numpy as np

from . import errors, indexed_slices, operands, ops, tracing, tree
from . import vjps  # noqa: F401 (registers every primitive's VJP rule)
from .indexed_slices import IndexedSlices
from .tensor import Tensor
from .tracing import Tracer
from .variables import Variable


class _Entry:
    """One differentiable application: `outs = prim(*args, **params)`."""

    __slots__ = ('prim', 'args', 'params', 'outs')

    def __init__(self, prim, args, params, outs):
        self.prim, self.args, self.params, self.outs = prim, args, params, outs


class _CustomVJP:
    """Stands in for a primitive when a `custom_gradient` function supplies the VJP."""

    name, differentiable = 'custom_gradient', True

    def __init__(self, grad_fn, num_inputs):
        self.grad_fn, self.num_inputs = grad_fn, num_inputs

    def vjp(self, *cts):
        grads = self.grad_fn(*cts)
        grads = list(grads) if isinstance(grads, (list, tuple)) else [grads]
        if len(grads) != self.num_inputs:
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'custom_gradient: the gradient function returned {len(grads)} gradients for '
                f'{self.num_inputs} inputs'))
        return grads


def _unbroadcast(ct, shape):
    """Sum a cotangent of a broadcast result back to an operand's shape."""
    ct_shape = tuple(ct.shape)
    if ct_shape == tuple(shape):
        return ct
    lead = len(ct_shape) - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape)
                                if d == 1 and ct_shape[lead + i] != 1]
    return ops.reshape(ops.reduce_sum(ct, axis=axes), shape)


def backward(entries, cts, key, tracked):
    """Propagate cotangents `cts` {key: ct} through `entries` in reverse; returns `cts`.

    `tracked(arg)` says whether an argument leads to a source (only those get cotangents).
    """
    for entry in reversed(entries):
        out_cts = [indexed_slices.densify(cts.get(key(o))) for o in entry.outs]
        if all(c is None for c in out_cts):
            continue
        if isinstance(entry.prim, _CustomVJP):
            full = [c if c is not None else ops.zeros_like(o) for c, o in zip(out_cts, entry.outs)]
            in_cts = entry.prim.vjp(*full)
        elif getattr(entry.prim, 'multiple_results', False):   # control flow: every output's ct
            in_cts = entry.prim.vjp(out_cts, entry.outs, *entry.args, **entry.params)
        else:
            in_cts = _apply_vjp(entry, out_cts[0])
        for arg, ct in zip(entry.args, in_cts):
            if ct is None or not tracked(arg):
                continue
            if not isinstance(ct, IndexedSlices):  # slices come from gathers: never broadcast
                ct = _unbroadcast(operands.operand(ct), tuple(arg.shape))
            k = key(arg)
            cts[k] = indexed_slices.accumulate(cts.get(k), ct)
    return cts


def _apply_vjp(entry, ct):
    rule, args, out = entry.prim.vjp, entry.args, entry.outs[0]
    if callable(rule):
        return rule(ct, out, *args, **entry.params)
    return [r(ct, out, *args, **entry.params) if _has_uid(a) else None
            for r, a in zip(rule, args)]


def _has_uid(x):
    return hasattr(x, '_uid')


def _seed_cts(targets, output_gradients, key):
    cts = {}
    for i, t in enumerate(targets):
        seed = ops.ones_like(t) if output_gradients is None else \
            operands.operand(output_gradients[i])
        dtype = operands.dtype_of(t)
        seed = seed.astype(dtype) if isinstance(seed, np.ndarray) else operands.cast_to(seed, dtype)
        k = key(t)
        cts[k] = seed if k not in cts else ops.add(cts[k], seed)
    return cts


def _finish(grad, source, unconnected_gradients):
    if grad is None and unconnected_gradients == 'zero':
        return ops.zeros_like(source.value() if isinstance(source, Variable) else source)
    if isinstance(grad, np.ndarray):
        return Tensor(grad)
    return grad


class UnconnectedGradients(enum.Enum):
    """What `gradient` returns for a source the target does not depend on (TF's enum)."""
    NONE = 'none'
    ZERO = 'zero'


def _check_unconnected(value):
    value = getattr(value, 'value', value)
    if value not in ('none', 'zero'):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f"unconnected_gradients must be 'none' or 'zero', got {value!r}"))
    return value


class GradientTape:
    """Records operations on watched values so that gradients can be computed afterwards."""

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self._persistent = persistent
        self._watch_accessed = watch_accessed_variables
        self._watched = set()        # uids of values that depend on a watched source
        self._var_reads = {}         # id(Variable) -> (Variable, [uid of each read])
        self._watched_vars = {}      # id(Variable) -> Variable explicitly watched
        self._entries = []
        self._recording = False
        self._used = False

    def __enter__(self):
        self._recording = True
        tracing.count_entered(1)
        tracing.active_tapes().append(self)
        return self

    def __exit__(self, *exc):
        self._recording = False
        if self in tracing.active_tapes():
            tracing.active_tapes().remove(self)
            tracing.count_entered(-1)

    # -- recording ----------------------------------------------------------------------------

    def watch(self, tensor):
        """Watch a tensor, a Variable, or any nest of them."""
        for leaf in tree.leaves(tensor):
            if isinstance(leaf, Variable):
                self._watched_vars[id(leaf)] = leaf
            elif _has_uid(leaf):
                self._watched.add(leaf._uid)
            else:
                raise TypeError(errors.at_user_line(
                    f'GradientTape.watch needs tensors or Variables, got {type(leaf).__name__}'))

    def on_variable_read(self, variable, value):
        if not self._recording:
            return
        if (self._watch_accessed and variable.trainable) or id(variable) in self._watched_vars:
            self._watched.add(value._uid)
            self._var_reads.setdefault(id(variable), (variable, []))[1].append(value._uid)

    def record(self, prim, args, params, outs):
        if not self._recording or not prim.differentiable:
            return
        if any(getattr(a, '_uid', None) in self._watched for a in args):
            self._entries.append(_Entry(prim, args, params, outs))
            self._watched.update(o._uid for o in outs)

    def record_custom(self, grad_fn, args, outs):
        if self._recording and any(getattr(a, '_uid', None) in self._watched for a in args):
            self._entries.append(_Entry(_CustomVJP(grad_fn, len(args)), args, {}, outs))
            self._watched.update(o._uid for o in outs)

    @contextlib.contextmanager
    def stop_recording(self):
        was, self._recording = self._recording, False
        try:
            yield
        finally:
            self._recording = was

    def reset(self):
        self._watched.clear(), self._var_reads.clear(), self._entries.clear()
        self._used = False

    def watched_variables(self):
        found = {k: v for k, (v, _) in self._var_reads.items()}
        found.update(self._watched_vars)
        return tuple(found.values())

    # -- gradients ----------------------------------------------------------------------------

    def gradient(self, target, sources, output_gradients=None,
                 unconnected_gradients='none'):
        """d(sum of targets)/d(sources), in the structure of `sources`."""
        unconnected = _check_unconnected(unconnected_gradients)
        if target is None:
            raise TypeError(errors.at_user_line(
                'GradientTape.gradient: target is None; pass the tensor (or structure of '
                'tensors) computed inside the tape, e.g. the loss'))
        self._consume()
        leaves = tree.leaves(target)
        targets = [operands.operand(t, 'target') for t in leaves]
        # a Variable target is read here, after recording: its own gradient is 1, as in TF
        target_reads = {}   # id(Variable) -> [uid of each read of it as a target]
        for leaf, value in zip(leaves, targets):
            if isinstance(leaf, Variable):
                target_reads.setdefault(id(leaf), []).append(value._uid)
        if output_gradients is not None:
            output_gradients = tree.leaves(output_gradients)
        source_leaves, treedef = tree.flatten(sources)
        # as in TF, a persistent tape still in its `with` block records the gradient computation
        # too, so that one tape can differentiate its own gradients (higher order)
        with contextlib.nullcontext() if self._persistent else self.stop_recording():
            grads = self._gradients(targets, output_gradients, source_leaves, target_reads)
            grads = [_finish(g, s, unconnected) for g, s in zip(grads, source_leaves)]
        return tree.unflatten(treedef, grads)

    def _consume(self):
        if self._used and not self._persistent:
            raise RuntimeError(errors.at_user_line(
                'A non-persistent GradientTape can only be used to compute one set of gradients '
                '(or jacobians); use GradientTape(persistent=True) to call it more than once'))
        self._used = True

    def _gradients(self, targets, output_gradients, sources, target_reads=None):
        for s in sources:
            if s is None or not (isinstance(s, Variable) or _has_uid(s)):
                raise TypeError(errors.at_user_line(
                    f'gradient sources must be tensors or Variables, got {type(s).__name__}'))
        key = lambda x: x._uid  # noqa: E731
        targets = [t if _has_uid(t) else ops.constant(t) for t in targets]
        cts = backward(list(self._entries), _seed_cts(targets, output_gradients, key), key,
                       lambda a: getattr(a, '_uid', None) in self._watched)
        return [self._source_ct(s, cts, target_reads or {}) for s in sources]

    def _source_ct(self, source, cts, target_reads):
        if not isinstance(source, Variable):
            return cts.get(source._uid)
        total = None
        reads = self._var_reads.get(id(source), (None, []))[1]
        for uid in list(reads) + target_reads.get(id(source), []):
            if uid in cts:
                total = indexed_slices.accumulate(total, cts[uid])
        return total

    def jacobian(self, target, sources, unconnected_gradients='none', parallel_iterations=None,
                 experimental_use_pfor=True):
        """Full Jacobian: result[i] has shape target.shape + source.shape."""
        unconnected = _check_unconnected(unconnected_gradients)
        self._consume()
        target = operands.operand(target, 'target')
        source_leaves, treedef = tree.flatten(sources)
        t_shape, dtype = tuple(target.shape), operands.dtype_of(target)
        rows = [[] for _ in source_leaves]
        connected = [False] * len(source_leaves)
        with self.stop_recording():
            for i in range(int(np.prod(t_shape))):
                seed = np.zeros(int(np.prod(t_shape)), dtype)
                seed[i] = 1
                grads = self._gradients([target], [seed.reshape(t_shape)], source_leaves)
                for j, (g, s) in enumerate(zip(grads, source_leaves)):
                    connected[j] |= g is not None
                    rows[j].append(_finish(g, s, 'zero'))
            out = [_stack_rows(row, t_shape, s) if c or unconnected == 'zero' else None
                   for row, s, c in zip(rows, source_leaves, connected)]
        return tree.unflatten(treedef, out)


def _stack_rows(row, t_shape, source):
    s_shape = tuple(source.shape)
    if not row:
        return ops.zeros(t_shape + s_shape, source.dtype)
    return ops.reshape(ops.stack(row), t_shape + s_shape)


# -------------------------------------------------------------------------------- graph mode

def gradients(ys, xs, grad_ys=None, name='gradients', unconnected_gradients='none',
              stop_gradients=None):
    """TF1 `tf.gradients`: d(sum of ys)/d(xs) on the graph being traced; None if unconnected.

    Returns a list with one gradient per x (also for a single x), or the structure of `xs`."""
    trace = tracing.current_trace()
    if trace is None:
        raise RuntimeError('tj.gradients works on graphs (inside tj.function or a compat.v1 '
                           'graph); eagerly, use tj.GradientTape')
    unconnected = _check_unconnected(unconnected_gradients)
    ys = [_graph_value(trace, y) for y in tree.leaves(ys)]
    xs_leaves, treedef = tree.flatten(xs)
    xs_vals = [_graph_value(trace, x) for x in xs_leaves]
    if grad_ys is not None:
        grad_ys = tree.leaves(grad_ys)
    tracked = {x.var for x in xs_vals}
    entries = []
    for node in list(trace.graph.nodes):
        if node.prim.differentiable and any(v in tracked for v in node.inputs):
            tracked.update(node.outputs)
            entries.append(_Entry(node.prim, [Tracer(trace, v) for v in node.inputs],
                                  node.params, [Tracer(trace, v) for v in node.outputs]))
    key = lambda t: t.var  # noqa: E731
    cts = backward(entries, _seed_cts(ys, grad_ys, key), key, lambda a: a.var in tracked)
    grads = [_finish(cts.get(x.var), x, unconnected) for x in xs_vals]
    if treedef == tree.LEAF:
        return grads  # TF returns a list even for a single x: `tf.gradients(loss, x)[0]`
    return tree.unflatten(treedef, grads)


def _graph_value(trace, value):
    if isinstance(value, Variable):
        return trace.read_variable(value)
    value = operands.operand(value)
    if isinstance(value, Tracer):
        return value
    return Tracer(trace, trace.to_var(value))


# -------------------------------------------------------------------------------- JAX style

def value_and_grad(fun, argnums=0, has_aux=False):
    """JAX's value_and_grad: returns (value, grads) or ((value, aux), grads)."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        for n in nums:
            if not -len(args) <= n < len(args):
                raise errors.InvalidArgumentError(errors.at_user_line(
                    f'argnums={argnums} but the function was called with {len(args)} '
                    'positional arguments'))
        args = list(args)
        with GradientTape(watch_accessed_variables=False) as tape:
            for n in nums:
                args[n] = _differentiable_input(None) if args[n] is None else tree.tree_map(
                    _differentiable_input, args[n])
                tape.watch(args[n])
            out = fun(*args, **kwargs)
        value, aux = _split_aux(out, has_aux)
        if tuple(value.shape) != () or not ops.is_floating(value):
            raise TypeError(errors.at_user_line(
                'grad needs a function with a scalar floating-point output, got '
                f'shape {tuple(value.shape)} dtype {operands.dtype_of(value).name}'))
        grads = tape.gradient(value, [args[n] for n in nums], unconnected_gradients='zero')
        grads = tree.tree_map(indexed_slices.densify, grads)   # JAX's gradients are dense
        grads = grads[0] if single else tuple(grads)
        return ((value, aux) if has_aux else value), grads

    return wrapper


def grad(fun, argnums=0, has_aux=False):
    """JAX's grad: the gradient of a scalar function with respect to argument(s) `argnums`."""
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        (value_aux, grads) = vg(*args, **kwargs)
        return (grads, value_aux[1]) if has_aux else grads

    return wrapper


def _split_aux(out, has_aux):
    if has_aux and (not isinstance(out, (tuple, list)) or len(out) != 2):
        raise TypeError(errors.at_user_line(
            'with has_aux=True the function must return a pair (value, aux)'))
    value, aux = (out[0], out[1]) if has_aux else (out, None)
    value = operands.operand(value, 'output')
    return (ops.constant(value) if isinstance(value, operands.SCALARS) else value), aux


def _differentiable_input(leaf):
    if leaf is None:
        raise TypeError(errors.at_user_line(
            'grad needs floating-point inputs, got None for a differentiated argument; pass an '
            'array or float, or exclude this argument from argnums'))
    if isinstance(leaf, Variable):
        leaf = leaf.value()
    value = operands.operand(leaf, 'argument')
    if isinstance(value, (float, np.floating)):
        return ops.constant(value)
    if isinstance(value, (bool, int, np.integer, np.bool_)) or not ops.is_floating(value):
        raise TypeError(errors.at_user_line(
            f'grad needs floating-point inputs, got {operands.dtype_of(value).name}; '
            'pass floats (e.g. 1.0 instead of 1) or exclude this argument from argnums'))
    # a value of its own per argument: passing one tensor twice gives two partial derivatives
    return ops.identity(value) if _has_uid(value) else ops.constant(value)


# -------------------------------------------------------------------------------- custom rules

@contextlib.contextmanager
def _tapes_paused():
    tapes = tracing.active_tapes()
    saved, tapes[:] = list(tapes), []
    try:
        yield
    finally:
        tapes[:] = saved


def custom_gradient(f=None):
    """TensorFlow's custom_gradient: `f` returns (output, grad_fn) with grad_fn(dy) -> input
    grads."""
    if f is None:
        return custom_gradient

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        inputs = [operands.operand(a) for a in args]
        with _tapes_paused():
            out, grad_fn = f(*inputs, **kwargs)
        out_leaves, treedef = tree.flatten(out)
        fresh = [ops.stop_gradient(o) for o in out_leaves]
        for tape in tracing.active_tapes():
            tape.record_custom(grad_fn, inputs, fresh)
        return tree.unflatten(treedef, fresh)

    return wrapper

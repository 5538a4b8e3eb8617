"""Differential fuzzer for COMPILED code: random stateful programs run three ways must agree.

A case is a random `tj.function` body over two inputs `x` (3, 4), `y` (4,) and three Variables
`W` (4, 4), `b` (4,), `s` () (fixed shapes and a small op table, so that generated kernels repeat
and the Numba cache keeps the file fast):

1. optionally a training step: under a `GradientTape` the Variables are read, a random program
   (elementwise ops, broadcasting, reductions with axes/keepdims, matmul) gives
   `loss = sum(u * outputs)`, `tape.gradient` gives the gradients (returned), and an SGD update
   `v.assign_sub(lr * g)` follows; a subset also returns a second-order derivative (nested tapes:
   the gradient of `sum(u2 * grads)`);
2. the Variables are read again, a random program runs over the reads, and random actions
   `assign` / `assign_add` / `assign_sub` a Variable with a program value (reduced/broadcast to its
   shape), or read a Variable again (read-after-assign; the read joins the value pool). The
   program's outputs, the old reads and the re-reads are returned; a 'noise' action multiplies
   a pool value by `tj.random.uniform` draws (same seed in every run: eager and compiled draws
   agree bitwise).

`differences(case)` compares, from identical starting Variable values, the outputs and final
Variable values of: the compiled function; the same function run eagerly
(`tj.config.disabled_jit()`); `ir.evaluate` of the traced graph. Gradients are compared with
central finite differences in float64 (gradcheck.py). A kernel made wrong on purpose (one
primitive's expression scaled by 1.0001 in backend/lowering.py) proves the comparison catches it.
`TRACEJIT_FUZZ=long` selects the long hypothesis profile (conftest.py).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tracejit as tj
from tracejit import ir
from tracejit.backend import lowering

from gradcheck import numeric_gradient
from test_random_programs import MARGIN, MAX_MAGNITUDE, Op, _bin, _ew, _gap, _matmul_flags, \
    _np_matmul, _np_logsumexp, _reduce

INPUT_SHAPES = [(3, 4), (4,)]
VAR_SHAPES = [(4, 4), (4,), ()]
LR = 0.1
SEED = 1234   # tj.random's seed before each of the three runs
FD_EPS = 1e-4

OPS = {  # a small fixed table: kernels repeat across examples
    'add': _bin(tj.add, np.add),
    'sub': _bin(lambda x, y: x - y, np.subtract),
    'mul': _bin(lambda x, y: x * y, np.multiply),
    'div': _bin(lambda x, y: x / (y * y + 0.5), lambda x, y: x / (y * y + 0.5)),
    'max': _bin(tj.maximum, np.maximum, _gap),
    'tanh': _ew(tj.tanh, np.tanh),
    'sin': _ew(tj.sin, np.sin),
    'sigmoid': _ew(tj.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    'square': _ew(tj.square, np.square),
    'abs': _ew(tj.abs, np.abs, lambda p, x: float(np.min(np.abs(x)))),
    'reduce_sum': _reduce(tj.reduce_sum, np.sum),
    'reduce_mean': _reduce(tj.reduce_mean, np.mean),
    'reduce_max': _reduce(tj.reduce_max, np.max, extreme=True),
    'logsumexp': _reduce(tj.reduce_logsumexp, _np_logsumexp),
    'matmul': Op(2, lambda p, a, b: tj.matmul(a, b, transpose_a=p[0], transpose_b=p[1]),
                 _np_matmul, _matmul_flags),
}
ASSIGNS = ('assign', 'assign_add', 'assign_sub')


# ---------------------------------------------------------------------------- cases

class Case:
    """steps: [(op, args, params)] over the pool [x, y, W, b, s, ...]; outputs: pool indices;
    actions: [('read', var) | (assign kind, var, pool index)] after the program (stage 2).
    grad: stage 1 runs `steps` under a tape (loss = sum(u * outputs)); order2: also nested."""

    def __init__(self, inputs, variables, steps, outputs, actions, grad, order2, seed):
        self.inputs, self.variables = inputs, variables
        self.steps, self.outputs, self.actions = steps, outputs, actions
        self.grad, self.order2 = grad, order2
        rng = np.random.default_rng(seed)
        shapes = [np.shape(o) for o in run_steps(self.steps, self.leaves(), 'np')]
        self.us = [rng.standard_normal(shapes[i]) for i in outputs]
        self.u2 = [rng.standard_normal(s) for s in VAR_SHAPES]

    def leaves(self):
        return list(self.inputs) + list(self.variables)

    def __repr__(self):
        lines = ['inputs x, y; state W, b, s = v0..v4' + (' [grad step' + (
            ', second order]' if self.order2 else ']') if self.grad else '')]
        for k, (name, args, params) in enumerate(self.steps):
            lines.append(f'  v{5 + k} = {name}{list(args)} {params!r}')
        lines.append(f'  outputs {["v%d" % i for i in self.outputs]}')
        lines += [f'  {a}' for a in self.actions]
        return '\n'.join(lines)


def run_steps(steps, leaves, lib):
    env = list(leaves)
    for name, args, params in steps:
        env.append(getattr(OPS[name], lib)(params, *[env[i] for i in args]))
    return env


def fit(value, shape):
    """`value` summed / averaged / broadcast to `shape` (so it can be assigned to a Variable)."""
    extra = len(value.shape) - len(shape)
    if extra > 0:
        value = tj.reduce_sum(value, axis=list(range(extra)))
    offset = len(shape) - len(value.shape)
    for ax, d in enumerate(value.shape):
        if d != 1 and d != shape[offset + ax]:
            value = tj.reduce_mean(value, axis=ax, keepdims=True)
    return tj.broadcast_to(value, shape)


@st.composite
def cases(draw, max_steps=4):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    leaves = [rng.uniform(-1.5, 1.5, size=s) for s in INPUT_SHAPES + VAR_SHAPES]
    shapes = INPUT_SHAPES + VAR_SHAPES
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        combos = {name: [args for args in _arg_tuples(len(shapes), OPS[name].arity)
                         if OPS[name].applies(*[shapes[i] for i in args])] for name in OPS}
        name = draw(st.sampled_from([n for n in OPS if combos[n]]))
        recent = [a for a in combos[name] if max(a) >= len(shapes) - 1]
        args = draw(st.sampled_from(recent if recent and draw(st.booleans()) else combos[name]))
        params = draw(st.sampled_from(OPS[name].applies(*[shapes[i] for i in args])))
        steps.append((name, args, params))
        shapes.append(np.shape(OPS[name].np(params, *[np.ones(shapes[i]) for i in args])))
    outputs = sorted({len(shapes) - 1, draw(st.integers(0, len(shapes) - 1))})
    actions, pool = [], len(shapes)
    for _ in range(draw(st.integers(0, 4))):
        var = draw(st.integers(0, len(VAR_SHAPES) - 1))
        kind = draw(st.sampled_from(ASSIGNS + ('read', 'noise')))
        if kind == 'read':
            actions.append(('read', var))
            pool += 1
        elif kind == 'noise':
            actions.append(('noise', draw(st.integers(0, pool - 1))))
            pool += 1
        else:
            actions.append((kind, var, draw(st.integers(0, pool - 1))))
    grad = draw(st.booleans())
    order2 = grad and draw(st.integers(0, 3)) == 0
    return Case(leaves[:2], leaves[2:], steps, outputs, actions, grad, order2,
                seed=draw(st.integers(0, 1000)))


def _arg_tuples(n, arity):
    return [(i,) for i in range(n)] if arity == 1 else [(i, j) for i in range(n) for j in range(n)]


def valid(case):
    """Finite, moderate values, and (when differentiated) away from kinks of max/abs/reduce_max."""
    with np.errstate(all='ignore'):
        env, margin = list(case.leaves()), np.inf
        for name, args, params in case.steps:
            operands = [env[i] for i in args]
            margin = min(margin, OPS[name].margin(params, *operands))
            env.append(OPS[name].np(params, *operands))
    finite = all(np.all(np.isfinite(v)) and np.max(np.abs(v), initial=0) < MAX_MAGNITUDE
                 for v in env)
    return finite and (not case.grad or margin > MARGIN)


# ---------------------------------------------------------------------------- the program

def body(case, variables):
    """The Python function under test (closes over `variables`)."""
    def fn(x, y):
        results = []
        if case.grad:
            with tj.GradientTape() as outer:
                with tj.GradientTape() as tape:
                    loss = _loss(case, [x, y] + [v.value() for v in variables])
                grads = tape.gradient(loss, variables, unconnected_gradients='zero')
                if case.order2:
                    h = _sum([tj.reduce_sum(g * u) for g, u in zip(grads, case.u2)])
            results += [loss] + list(grads)
            if case.order2:
                results += outer.gradient(h, variables, unconnected_gradients='zero')
            for v, g in zip(variables, grads):
                v.assign_sub(LR * g)
        olds = [v.value() for v in variables]
        env = run_steps(case.steps, [x, y] + olds, 'tj')
        results += [env[i] for i in case.outputs] + olds
        for action in case.actions:
            if action[0] == 'noise':
                value = env[action[1]]
                env.append(value * tj.random.uniform(value.shape, dtype=tj.float64))
                results.append(env[-1])
                continue
            v = variables[action[1]]
            if action[0] == 'read':
                env.append(v.value())
                results.append(env[-1])
            else:
                getattr(v, action[0])(fit(env[action[2]], VAR_SHAPES[action[1]]))
        return results
    return fn


def _loss(case, leaves):
    env = run_steps(case.steps, leaves, 'tj')
    return _sum([tj.reduce_sum(env[i] * u) for i, u in zip(case.outputs, case.us)])


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _fresh_variables(case):
    with tj.config.disabled_jit():
        return [tj.Variable(np.array(v)) for v in case.variables]


def _close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return f'shape {a.shape} vs {b.shape}'
    scale = max(1.0, float(np.max(np.abs(b), initial=0)))
    bad = np.abs(a - b) > rtol * scale + rtol * np.abs(b)
    if bad.any():
        return f'max |diff| {np.max(np.abs(a - b)):.3g}:\n{a}\nvs\n{b}'
    return None


def differences(case, rtol=1e-9):
    """Mismatches (a list of messages; empty when all agree) between compiled, eager and
    interpreted runs of `case`, and between its gradients and finite differences."""
    x, y = case.inputs
    found = []

    def compare(what, actual, expected, tol=rtol):
        if len(actual) != len(expected):
            found.append(f'{what}: {len(actual)} vs {len(expected)} values')
            return
        for k, (a, e) in enumerate(zip(actual, expected)):
            msg = _close(a, e, tol)
            if msg:
                found.append(f'{what}, value {k}: {msg}')

    compiled_vars = _fresh_variables(case)
    compiled_fn = tj.function(body(case, compiled_vars))
    tj.random.set_seed(SEED)
    compiled = [np.asarray(r) for r in compiled_fn(x, y)]
    compiled_state = [v.numpy() for v in compiled_vars]
    if compiled_fn.cache_info().get('interpreted_calls', 0):
        found.append('the compiled call ran on the interpreter, not a kernel')

    eager_vars = _fresh_variables(case)
    tj.random.set_seed(SEED)
    with tj.config.disabled_jit():
        eager = [np.asarray(r) for r in tj.function(body(case, eager_vars))(x, y)]
    eager_state = [v.numpy() for v in eager_vars]

    traced_vars = _fresh_variables(case)
    tj.random.set_seed(SEED)
    graph = tj.function(body(case, traced_vars)).trace(x, y).graph
    graph.verify()
    start = {id(v): np.array(v0) for v, v0 in zip(traced_vars, case.variables)}
    for v, _ in graph.state:  # the random generator's state
        start.setdefault(id(v), np.array(v.numpy()))
    outs, updates = ir.evaluate(graph, [x, y], [start[id(v)] for v, _ in graph.state])
    final = dict(start)
    final.update((id(v), u) for (v, _), u in zip(graph.updates, updates))
    interp_state = [final[id(v)] for v in traced_vars]

    compare('compiled vs eager: outputs', compiled, eager)
    compare('compiled vs eager: Variables after the call', compiled_state, eager_state)
    compare('ir.evaluate vs eager: outputs', outs, eager, 1e-12)
    compare('ir.evaluate vs eager: Variables after the call', interp_state, eager_state, 1e-12)

    if case.grad:  # compiled gradients (and second order) vs finite differences in float64
        n = len(VAR_SHAPES)
        grads = compiled[1:1 + n]

        def loss_of(*vs):
            return _loss(case, [tj.constant(x), tj.constant(y)] + list(vs))
        fd = numeric_gradient(loss_of, list(case.variables), np.float64(1.0), FD_EPS)
        compare('compiled gradients vs finite differences', grads, fd, 1e-6)
        if case.order2:
            def grad_dot_u2(*vs):
                with tj.GradientTape() as tape:
                    tape.watch(list(vs))
                    loss = loss_of(*vs)
                gs = tape.gradient(loss, list(vs), unconnected_gradients='zero')
                return _sum([tj.reduce_sum(g * u) for g, u in zip(gs, case.u2)])
            fd2 = numeric_gradient(grad_dot_u2, list(case.variables), np.float64(1.0), FD_EPS)
            compare('compiled second order vs finite differences', compiled[1 + n:1 + 2 * n],
                    fd2, 1e-5)
    return found


# ---------------------------------------------------------------------------- the tests

@given(cases())
@settings(max_examples=max(6, settings.default.max_examples // 3))
def test_compiled_matches_eager_interpreter_and_finite_differences(case):
    assume(valid(case))
    found = differences(case)
    assert not found, f'{case!r}\n' + '\n'.join(found)


def _tanh_case():
    rng = np.random.default_rng(0)
    leaves = [rng.uniform(-1.5, 1.5, size=s) for s in INPUT_SHAPES + VAR_SHAPES]
    steps = [('matmul', (0, 2), (False, False)), ('tanh', (5,), None), ('add', (6, 3), None),
             ('reduce_sum', (7,), (0, True))]
    return Case(leaves[:2], leaves[2:], steps, [7, 8], [('assign_add', 1, 8), ('read', 1),
                                                        ('assign_sub', 0, 6)],
                grad=True, order2=True, seed=0)


def test_fixed_case_agrees():
    assert valid(_tanh_case())
    assert differences(_tanh_case()) == []


@pytest.mark.parametrize('prim', ['tanh', 'add'])
def test_fuzzer_catches_a_miscompiled_kernel(prim, monkeypatch, tmp_path):
    monkeypatch.setenv('TRACEJIT_CACHE_DIR', str(tmp_path))  # no cached correct kernel
    correct = lowering.expression

    def miscompiled(node, *args):
        expr = correct(node, *args)
        return f'({expr} * 1.0001)' if node.prim.name == prim else expr
    monkeypatch.setattr(lowering, 'expression', miscompiled)
    found = differences(_tanh_case())
    assert any(f.startswith('compiled vs eager') for f in found), found
    assert not any(f.startswith('ir.evaluate') for f in found), found  # only the kernel is wrong


def _value_and_grads(op, params):
    def fn(*xs):
        with tj.GradientTape() as tape:
            tape.watch(list(xs))
            out = tj.reduce_sum(op.tj(params, *xs))
        return out, tape.gradient(out, list(xs), unconnected_gradients='zero')
    return fn


def test_every_primitive_is_fuzzed():
    """The two fuzzers' op tables (with their gradients) and the 'noise' action reach every
    primitive in the registry: a new primitive must be added to a fuzzer."""
    from tracejit.primitives import REGISTRY
    from test_random_programs import OPS as PROGRAM_OPS
    seen = set()

    def record(fn, *args):
        graph = tj.function(fn).trace(*args).graph
        seen.update(node.prim.name for node in graph.nodes)

    candidates = {1: [[(3, 4)], [(1, 3, 4)]], 2: [[(3, 4), (4, 3)], [(3, 4), (3, 4)]]}
    for table in (OPS, PROGRAM_OPS):
        for name, op in table.items():
            shapes = next(s for s in candidates[op.arity] if op.applies(*s))
            args = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) + 0.1 for s in shapes]
            for params in op.applies(*shapes):
                record(_value_and_grads(op, params), *args)
                # a differentiated bounded while loop becomes a scan: trace the op alone too
                record(lambda *xs, op=op, params=params: op.tj(params, *xs), *args)
    case = Case([np.ones(s) for s in INPUT_SHAPES], [np.ones(s) for s in VAR_SHAPES],
                [('tanh', (0,), None)], [5], [('noise', 5)], grad=False, order2=False, seed=0)
    record(body(case, _fresh_variables(case)), *case.inputs)
    # stop_gradient and fresh_read are dropped by the simplifier once the graph is
    # differentiated, so they never reach a kernel; the program table applies stop_gradient
    # (eagerly, traced and compiled), test_control_flow.py fresh reads
    assert 'stop_gradient' in PROGRAM_OPS
    assert sorted(set(REGISTRY) - seen - {'stop_gradient', 'fresh_read'}) == []

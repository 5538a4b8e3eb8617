"""Control flow: the cond, while and scan primitives (params holding sub-graphs) and their APIs.

The control-flow primitives' table (`CASES`, their counterpart of test_primitives.py's SPECS):
each case is a program of public ops around one construct, with a numpy reference written
here. Every case is checked: numpy == eager == the traced graph on the IR interpreter ==
compiled; and, where differentiable, VJP == finite differences to second order (eagerly: tapes
and tj.grad; compiled: a tape inside tj.function). Cases cover Variables assigned inside
branches and loop bodies, and loops nested in branches.
"""
import os

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors, passes, tracing
from tracejit.backend import Interpreted
from tracejit.primitives import REGISTRY

import assigned_variables as av
from gradcheck import check_grads

X = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6], [0.7, -0.1, 0.2], [-0.3, 0.2, 0.4]])
W = np.array([1.3, 0.7, -0.4])
ASSIGNED = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'assigned_variables.npz'))


def _np_rnn(x, w, reverse=False):
    a, out = np.zeros_like(x[0]), np.empty_like(x)
    rows = range(len(x) - 1, -1, -1) if reverse else range(len(x))
    for i in rows:
        a = np.tanh(a * w + x[i])
        out[i] = a
    return out


class Case:
    """`fn(x, w)` with public ops; `ref(x, w)` in numpy; `grad`: differentiable in both."""

    def __init__(self, prim, fn, ref, x=X, grad=True):
        self.prim, self.fn, self.ref, self.x, self.grad = prim, fn, ref, x, grad


def _cond_both_ways(x, w):
    return tj.cond(tj.reduce_sum(x) > 0.5, lambda: tj.sin(x) * w, lambda: x * x * w)


def _switch(x, w):
    index = tj.cast(tj.reduce_sum(x) > 0.0, tj.int32) + tj.cast(tj.reduce_sum(w) < 0.0, tj.int32)
    return tj.switch_case(index, [lambda: x * w, lambda: tj.exp(x) * w, lambda: x - w])


def _loop_in_branch(x, w):
    def loop():
        return tj.scan(lambda a, r: tj.tanh(a * w + r), x, initializer=tj.zeros_like(w))
    return tj.cond(tj.reduce_sum(w) > 0.0, loop, lambda: x * w)


def _while_bounded(x, w):
    _, y = tj.while_loop(lambda i, y: tj.reduce_sum(y * y) < 30.0,
                         lambda i, y: (i + 1, y * w + 0.5), (0, x), maximum_iterations=5)
    return y


def _np_while(x, w):
    y = x.copy()
    for _ in range(5):
        if not np.sum(y * y) < 30.0:
            break
        y = y * w + 0.5
    return y


def _lax_scan(x, w):
    def step(carry, r):
        h, total = carry
        h = tj.sin(h * w) + r
        return (h, total + tj.reduce_sum(h)), h * 2.0
    (h, total), ys = tj.lax.scan(step, (tj.zeros_like(w), tj.constant(0.0, tj.float64)), x)
    return tj.concat([ys, tj.reshape(h + total, (1, 3))], 0)


def _np_lax_scan(x, w):
    h, total, ys = np.zeros_like(w), 0.0, []
    for r in x:
        h = np.sin(h * w) + r
        total += h.sum()
        ys.append(h * 2.0)
    return np.concatenate([np.array(ys), (h + total).reshape(1, 3)], 0)


def _fori_in_scan(x, w):   # a loop nested in a loop body
    def row(r):
        return tj.lax.fori_loop(0, 3, lambda i, a: a * w + tj.cast(i, tj.float64), r)
    return tj.map_fn(row, x)


def _np_fori_in_scan(x, w):
    out = x.copy()
    for i in range(3):
        out = out * w + i
    return out


CASES = {
    'cond-true': Case('cond', _cond_both_ways, lambda x, w: np.sin(x) * w),
    'cond-false': Case('cond', _cond_both_ways, lambda x, w: x * x * w, x=-X),
    'switch_case': Case('cond', _switch, lambda x, w: np.exp(x) * w),
    'scan-in-cond': Case('cond', _loop_in_branch, lambda x, w: _np_rnn(x, w), x=X),
    'cond-false-nested': Case('cond', lambda x, w: _loop_in_branch(x, -w), lambda x, w: -x * w),
    'scan': Case('scan', lambda x, w: tj.scan(lambda a, r: tj.tanh(a * w + r), x,
                                             initializer=tj.zeros_like(w)), _np_rnn),
    'scan-reverse': Case('scan', lambda x, w: tj.scan(lambda a, r: tj.tanh(a * w + r), x,
                                                     initializer=tj.zeros_like(w), reverse=True),
                         lambda x, w: _np_rnn(x, w, reverse=True)),
    # exp(w) does not change in the loop: eagerly too it is part of the body's graph
    'scan-invariant': Case('scan', lambda x, w: tj.scan(lambda a, r: tj.tanh(a * tj.exp(w) + r),
                                                       x, initializer=tj.zeros_like(w)),
                           lambda x, w: _np_rnn(x, np.exp(w))),
    'lax.scan': Case('scan', _lax_scan, _np_lax_scan),
    'fori-in-map_fn': Case('scan', _fori_in_scan, _np_fori_in_scan),
    'while': Case('while', _while_bounded, _np_while),
}


def test_every_control_primitive_has_cases():
    control = {name for name, prim in REGISTRY.items() if prim.kind == 'control'}
    assert control == {case.prim for case in CASES.values()}


def _interpreted(fn, *args):
    graph = tj.function(fn).trace(*args).graph
    graph.verify()
    assert any(node.prim.kind == 'control' for node in graph.nodes)
    return Interpreted(graph).run(list(args))[0]


@pytest.mark.parametrize('name', sorted(CASES))
def test_values_numpy_eager_interpreted(name):
    case = CASES[name]
    want = case.ref(case.x, W)
    np.testing.assert_allclose(case.fn(tj.constant(case.x), tj.constant(W)).numpy(), want,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_interpreted(case.fn, case.x, W), want, rtol=1e-12, atol=1e-12)


@pytest.mark.compiled
@pytest.mark.parametrize('name', sorted(CASES))
def test_values_compiled(name):
    case = CASES[name]
    got = tj.function(case.fn)(case.x, W).numpy()
    np.testing.assert_allclose(got, case.ref(case.x, W), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name', sorted(n for n, c in CASES.items() if c.grad))
def test_gradients_match_finite_differences(name):
    check_grads(CASES[name].fn, [CASES[name].x, W], order=2, name=name)


@pytest.mark.compiled
@pytest.mark.parametrize('name', ['cond-true', 'scan', 'while', 'scan-in-cond', 'fori-in-map_fn'])
def test_compiled_gradients_match_finite_differences_to_second_order(name):
    """Through the kernels of the forward-once VJPs: the residual-emitting forward nodes and
    the backward nodes reading them, differentiated again."""
    check_grads(CASES[name].fn, [CASES[name].x, W], order=2, modes=('function',), name=name)


def _vjp_graph(name):
    def vjp(x, w):
        with tj.GradientTape() as tape:
            tape.watch([x, w])
            y = tj.reduce_sum(CASES[name].fn(x, w))
        return tape.gradient(y, [x, w])
    return tj.function(vjp).trace(CASES[name].x, W).graph


def _nodes(graph, name):
    found = []
    for node in graph.nodes:
        if node.prim.name == name:
            found.append(node)
        for sub in node.params.get('branches', ()) + tuple(
                node.params[k] for k in ('body', 'body_graph') if k in node.params):
            found += _nodes(sub, name)
    return found


def test_gradients_run_the_forward_once():
    """A scan's gradient is one forward scan (stacking residuals) and one backward scan; a
    cond's one forward cond and one backward cond whose branches compute no sine; a bounded
    while loop's gradient replaces the loop by the forward scan. Without a gradient the scan
    stacks nothing more than its ys."""
    scan_nodes = _nodes(_vjp_graph('scan'), 'scan')
    assert len(scan_nodes) == 2 and len(scan_nodes[0].outputs) > 2
    assert [n.prim.name for n in scan_nodes[1].params['body'].nodes].count('tanh') == 0
    graph = _vjp_graph('cond-true')
    assert len(_nodes(graph, 'cond')) == 2 and len(_nodes(graph, 'sin')) == 1
    graph = _vjp_graph('while')
    assert not _nodes(graph, 'while') and len(_nodes(graph, 'scan')) == 2
    plain = tj.function(CASES['scan'].fn).trace(CASES['scan'].x, W).graph
    assert [len(n.outputs) for n in plain.nodes if n.prim.name == 'scan'] == [2]


def _gated(x, w):
    """An LSTM's cell-state update, elementwise: c = sigmoid(f) * c + sigmoid(i) * tanh(g)."""
    def cell(c, r):
        return tj.sigmoid(r * w) * c + tj.sigmoid(r + w) * tj.tanh(r - w)
    return tj.scan(cell, x, initializer=tj.zeros_like(w))


def _np_gated(x, w):
    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))
    c, out = np.zeros_like(w), []
    for r in x:
        c = sigmoid(r * w) * c + sigmoid(r + w) * np.tanh(r - w)
        out.append(c)
    return np.stack(out)


def test_a_scan_gradient_stacks_activations_and_recomputes_their_derivatives():
    """The backward loop recomputes s * (1 - s) and 1 - t * t from the activations s and t
    the forward loop stacks, instead of reading each derivative from a stack of its own:
    the forward scan stacks the three activations and the carry, and the gradients, first
    and second order, equal finite differences."""
    x = np.linspace(-1.0, 1.5, 12).reshape(4, 3)
    np.testing.assert_allclose(_gated(tj.constant(x), tj.constant(W)).numpy(), _np_gated(x, W),
                               rtol=1e-12)

    def vjp(x, w):
        with tj.GradientTape() as tape:
            tape.watch([x, w])
            y = tj.reduce_sum(_gated(x, w))
        return tape.gradient(y, [x, w])
    forward, backward = _nodes(tj.function(vjp).trace(x, W).graph, 'scan')
    # the final c and 4 stacks: the 3 activations and c's previous value (7 with derivatives)
    assert len(forward.outputs) == 1 + 4
    assert {'sigmoid', 'tanh'}.isdisjoint(n.prim.name for n in backward.params['body'].nodes)
    check_grads(_gated, [x, W], order=2, modes=('tape', 'function'))


# ---------------------------------------------------------------------------- Variables

def _branch_assigns(v, u):
    def step(x):
        def taken():
            v.assign(v * x)
            return tj.reduce_sum(v)
        y = tj.cond(tj.reduce_sum(x) > 0.0, taken, lambda: tj.reduce_sum(u * x))
        return y, v.value() + 0.0
    return step


def _loop_assigns(v):
    def step(xs):
        def body(carry, r):
            v.assign_add(r * carry)
            return carry + 1.0, tj.reduce_sum(v)
        _, ys = tj.lax.scan(body, tj.constant(1.0, tj.float64), xs)
        i, _ = tj.while_loop(lambda i, a: i < 2, lambda i, a: (i + 1, v.assign(v * 0.5)),
                             (0, v.value()))
        return ys
    return step


def _np_loop_assigns(v, xs):
    ys, carry = [], 1.0
    for r in xs:
        v = v + r * carry
        carry += 1.0
        ys.append(v.sum())
    return np.array(ys), v * 0.25


COMPILED = pytest.param('compiled', marks=pytest.mark.compiled)


@pytest.mark.parametrize('mode', ['eager', 'interpreted', COMPILED])
def test_variables_assigned_in_branches_and_loop_bodies(mode):
    v0, u = np.array([1.0, 2.0, 3.0]), tj.Variable(np.array([4.0, 5.0, 6.0]))
    for x, (y_want, v_want) in [(X[0], ((v0 * X[0]).sum(), v0 * X[0])),
                                (-X[0], ((u.numpy() * -X[0]).sum(), v0))]:
        v = tj.Variable(v0)
        y, seen = _run(mode, _branch_assigns(v, u), x)
        np.testing.assert_allclose([float(y)], [y_want], rtol=1e-12)
        np.testing.assert_allclose(v.numpy(), v_want, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(seen), v_want, rtol=1e-12)
    v = tj.Variable(v0)
    ys = _run(mode, _loop_assigns(v), X)
    ys_want, v_want = _np_loop_assigns(v0, X)
    np.testing.assert_allclose(np.asarray(ys), ys_want, rtol=1e-12)
    np.testing.assert_allclose(v.numpy(), v_want, rtol=1e-12)


def _run(mode, step, *args):
    if mode == 'eager':
        return step(*[tj.constant(a) for a in args])
    if mode == 'compiled':
        return tj.function(step)(*args)
    graph = tj.function(step).trace(*args).graph
    outs = Interpreted(graph).run(list(args))
    return outs[0] if len(outs) == 1 else outs


def _updated_in_loop(v, xs, keep=None):
    """v <- v * 0.5 + x (+ `keep`, a view of v's value read before the loop) for x in xs."""
    @tj.function
    def run(xs):
        before = tj.reshape(v, (-1,))
        first = v[0]
        for x in xs:
            v.assign(v * 0.5 + x + (first if keep == 'first' else 0.0))
        return before if keep == 'before' else tj.reduce_sum(xs) + 1.0
    return run


@pytest.mark.compiled
@pytest.mark.parametrize('keep', [None, 'before', 'first'])
def test_a_loop_updates_a_variable_in_its_buffer_unless_its_old_value_is_read(keep):
    """A loop whose body reads each element of a Variable before it writes it runs in the
    Variable's buffer: no copy in, none out, no spare buffer. When the old value is read
    after the loop starts (a view of it returned, or read by the body), it must not: every
    result equals a numpy loop."""
    w0 = np.arange(6.0).reshape(2, 3)
    xs = np.linspace(-1.0, 1.0, 18).reshape(3, 2, 3)
    v = tj.Variable(w0)
    run = _updated_in_loop(v, xs, keep)
    out = np.asarray(run(xs)).copy()
    want = w0
    for x in xs:
        want = want * 0.5 + x + (w0[0] if keep == 'first' else 0.0)
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(out, w0.ravel() if keep == 'before' else xs.sum() + 1.0,
                               rtol=1e-12)
    source = run.lower(xs).source
    if keep is None:
        assert '.copy()' not in source and 'np.empty_like' not in source
        assert 'copy_into' not in source


@pytest.mark.compiled
def test_a_loop_failing_midway_leaves_the_variables_it_updates_in_place_unchanged():
    v = tj.Variable(np.zeros(3))
    table = np.arange(12.0).reshape(4, 3)

    @tj.function
    def run(ids):
        for i in ids:
            v.assign(v * 0.5 + tj.gather(table, i))
        return tj.reduce_sum(v)

    np.testing.assert_allclose(float(run(np.array([1, 2], np.int32))),
                               (table[1] * 0.5 + table[2]).sum())
    before = v.numpy().copy()
    with pytest.raises(IndexError, match='out of range'):   # at the third step
        run(np.array([0, 3, 4], np.int32))
    np.testing.assert_array_equal(v.numpy(), before)


def test_gradient_through_a_variable_read_in_a_branch_and_a_loop():
    w = tj.Variable(np.array([0.5, -1.5, 2.0]))

    def loss(x):
        with tj.GradientTape() as tape:
            y = tj.cond(tj.reduce_sum(x) > 0.0, lambda: tj.reduce_sum(tj.sin(w) * x),
                        lambda: tj.reduce_sum(w * w))
            z = tj.foldl(lambda a, r: a + tj.reduce_sum(w * r), x[None, :] * 2.0,
                         initializer=tj.constant(0.0, tj.float64))
            total = y + z
        return tape.gradient(total, w)

    x = X[0]
    want = np.cos(w.numpy()) * x + 2.0 * x
    np.testing.assert_allclose(loss(tj.constant(x)).numpy(), want, rtol=1e-12)
    graph = tj.function(loss).trace(x).graph
    np.testing.assert_allclose(Interpreted(graph).run([x])[0], want, rtol=1e-12)


def _assigned_variable_programs(variables):
    """Every program of assigned_variables.py with its own Variables, results in one list."""
    def step(xs):
        return [r for name, program in av.PROGRAMS.items()
                for r in av.gradients(tj, program, xs, *variables[name])]
    return step


@pytest.mark.parametrize('mode', ['eager', 'interpreted', COMPILED])
def test_gradients_through_assigned_variables_match_tensorflow(mode):
    """As TensorFlow: the gradient in a Variable sums its reads (each read in a loop body a
    read of the Variable), an assignment is not differentiated (nothing flows through it into
    the Variable's old value or into xs), to second order; nested loops in branches and loops."""
    variables = {name: av.variables(tj) for name in av.PROGRAMS}
    got = iter(_run(mode, _assigned_variable_programs(variables), av.XS))
    for name in av.PROGRAMS:
        for key in av.NAMES:
            np.testing.assert_allclose(np.asarray(next(got)), ASSIGNED[f'{name}/{key}'],
                                       rtol=1e-10, atol=1e-12, err_msg=f'{name}: {key} ({mode})')
        for variable, key in zip(variables[name], ('v_final', 'w_final')):
            np.testing.assert_allclose(variable.numpy(), ASSIGNED[f'{name}/{key}'], rtol=1e-12)


def _reset_and_run(name):
    v, w = av.variables(tj)

    def fn(xs):
        v.assign(av.V0)
        w.assign(av.W0)
        return av.PROGRAMS[name](tj, xs, v, w)
    return fn


@pytest.mark.parametrize('name', av.FD_PROGRAMS)
def test_gradients_through_assigned_variables_match_finite_differences(name):
    """Where the assigned values do not depend on xs, the gradient in xs is the derivative."""
    check_grads(_reset_and_run(name), [av.XS], order=2, name=name)


@pytest.mark.compiled
def test_compiled_gradients_through_an_assigned_variable_to_second_order():
    check_grads(_reset_and_run('scan_in_cond'), [av.XS], order=2, modes=('function',))


def test_a_fresh_read_has_the_current_value_and_the_gradient_of_the_entry():
    current, entry = tj.constant(X), tj.constant(-X)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([current, entry])
        y = tj.reduce_sum(tj.sin(tracing.bind(REGISTRY['fresh_read'], current, entry)))
    np.testing.assert_array_equal(y.numpy(), np.sin(X).sum())
    assert tape.gradient(y, current) is None
    np.testing.assert_allclose(tape.gradient(y, entry).numpy(), np.cos(X), rtol=1e-15)
    with pytest.raises(errors.ShapeError, match=r'fresh_read: .* shape \(4, 3\) .* shape \(3,\)'):
        tracing.bind(REGISTRY['fresh_read'], current, entry[0])
    with pytest.raises(errors.DTypeError, match='fresh_read: operands have different dtypes'):
        tracing.bind(REGISTRY['fresh_read'], current, tj.cast(entry, tj.float32))


def test_fresh_reads_leave_no_trace_in_the_optimised_loop():
    """Without a gradient, the fresh reads and the Variable's value before the loop they read
    are optimised away: the scan has the inputs of a loop that knows nothing of gradients."""
    v, w = av.variables(tj)
    graph = tj.function(lambda xs: av.scan_assign_then_read(tj, xs, v, w)).trace(av.XS).graph
    assert not _nodes(graph, 'fresh_read')
    (scan,) = [n for n in graph.nodes if n.prim.name == 'scan']
    assert len(scan.inputs) == 3   # the carry, the Variable carried, the xs


# ---------------------------------------------------------------------------- the kernel

def _guarded(table, v):
    def step(i, d):
        def safe():
            v.assign_add(1.0)
            return tj.gather(table, i) / d
        return tj.cond(tj.logical_and(i < 4, d != 0.0), safe, lambda: tj.constant(-1.0))
    return step


@pytest.mark.compiled
def test_an_untaken_branch_does_not_run():
    """Its gather with a bad index, its division by zero and its Variable update do not happen;
    an out-of-range gather in the taken branch raises and leaves the Variables unchanged."""
    table = np.array([10.0, 20.0, 30.0, 40.0], np.float32)
    v = tj.Variable(0.0)
    step = tj.function(_guarded(table, v), debug_nans=True)
    i32, f32 = (lambda i: np.array(i, np.int32)), (lambda d: np.array(d, np.float32))
    assert float(step(i32(9), f32(2.0))) == -1.0      # bad index, not taken
    assert float(step(i32(1), f32(0.0))) == -1.0      # 1/0, not taken
    assert float(v.numpy()) == 0.0
    assert float(step(i32(2), f32(2.0))) == 15.0
    assert float(v.numpy()) == 1.0
    @tj.function
    def taken(i):
        def branch():
            v.assign_add(1.0)
            return tj.gather(table, i)
        return tj.cond(i > -9, branch, lambda: tj.constant(0.0))
    assert float(taken(i32(3))) == 40.0 and float(v.numpy()) == 2.0
    with pytest.raises(IndexError, match='out of range'):
        taken(i32(7))
    assert float(v.numpy()) == 2.0


@pytest.mark.compiled
def test_kernel_holds_an_if_and_a_loop_and_a_new_trip_count_does_not_recompile():
    def step(n, xs, h):
        h = tj.cond(tj.reduce_sum(h) > 0.0, lambda: h * 2.0, lambda: tj.sin(h))
        _, h = tj.while_loop(lambda i, h: i < n, lambda i, h: (i + 1, tj.tanh(h * 0.5 + 1.0)),
                             (0, h))
        return tj.scan(lambda a, x: tj.exp(a * x) - 1.0, xs, initializer=h)

    def source(length):
        return tj.function(step).lower(np.array(3, np.int32), np.ones((length, 5), np.float32),
                                       np.ones(5, np.float32)).source

    text = source(3)
    kernel = text[text.index('def kernel'):]
    assert 'if ' in kernel and 'else:' in kernel and 'while True:' in kernel
    assert 'for ' in kernel and 'range(' in kernel
    assert text.count('np.tanh') + text.count('tanh32(') == 1     # the body once, not unrolled
    assert source(7) == text                                     # the same for any length
    f = tj.function(step)
    xs, h = np.full((3, 5), 0.1, np.float32), np.full(5, 0.2, np.float32)
    outs = [f(np.array(n, np.int32), xs, h).numpy() for n in (0, 4, 11)]
    info = f.cache_info()
    assert info['traces'] == 1 and info['compiles'] + info['disk_hits'] == 1
    for n, got in zip((0, 4, 11), outs):
        want = step(tj.constant(np.int32(n)), tj.constant(xs), tj.constant(h)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    f(np.array(2, np.int32), np.full((9, 5), 0.1, np.float32), h)   # a new scan length
    info = f.cache_info()
    assert info['traces'] == 2 and info['compiles'] + info['disk_hits'] == 1


# ---------------------------------------------------------------------------- IR and passes

def test_printer_nests_sub_graphs_and_passes_prune_them():
    def fn(x, w):
        a, b = tj.cond(tj.reduce_sum(x) > 0.0, lambda: (x * 1.0 + w, tj.exp(x)),
                       lambda: (x - w, tj.exp(w)))
        return a
    raw = tj.function(fn)
    graph = raw.trace(X[0], W).graph
    text = str(graph)
    assert 'cond[branches=({..},{..})]' in text
    nested = [line for line in text.split('\n') if line.startswith('      { lambda')]
    assert len(nested) == 2
    node = next(n for n in graph.nodes if n.prim.name == 'cond')
    assert len(node.outputs) == 1                       # exp(x) / exp(w) pruned by DCE
    for branch in node.params['branches']:
        assert [n.prim.name for n in branch.nodes] in (['add'], ['sub'])   # x * 1.0 simplified
    graph.verify()


def test_dce_drops_unread_scan_outputs_and_inputs():
    def fn(x, w):
        (h, _), ys = tj.lax.scan(lambda c, r: ((c[0] + r, c[1] * w), (c[0] * w, r)),
                                 (tj.zeros_like(w), w), x)
        return h
    graph = tj.function(fn).trace(X, W).graph
    node = next(n for n in graph.nodes if n.prim.name == 'scan')
    assert len(node.outputs) == 2                       # the carry; both stacked ys dropped
    np.testing.assert_allclose(Interpreted(graph).run([X, W])[0], X.sum(0), rtol=1e-12)
    assert passes.optimize(graph).verify()


# ---------------------------------------------------------------------------- TF semantics

@pytest.mark.compiled
def test_tf_scan_fold_map_fn_and_switch_semantics():
    x = tj.constant(np.arange(1.0, 5.0))
    np.testing.assert_allclose(tj.scan(lambda a, e: a + e, x).numpy(), [1, 3, 6, 10])
    np.testing.assert_allclose(tj.scan(lambda a, e: a + e, x, reverse=True).numpy(),
                               [10, 9, 7, 4])
    assert float(tj.foldl(lambda a, e: a - e, x)) == 1 - 2 - 3 - 4
    assert float(tj.foldr(lambda a, e: a - e, x)) == 4 - 3 - 2 - 1
    assert float(tj.foldl(lambda a, e: a * 2 + e, x, initializer=tj.constant(0.0, tj.float64))
                 ) == ((1 * 2 + 2) * 2 + 3) * 2 + 4
    np.testing.assert_allclose(tj.map_fn(lambda e: (e * 2, e + 1), x)[1].numpy(), [2, 3, 4, 5])
    fns = [lambda: tj.constant(10), lambda: tj.constant(20)]

    @tj.function
    def pick(i):
        return tj.switch_case(i, fns, default=lambda: tj.constant(-1))
    assert [int(pick(np.array(i, np.int32))) for i in (0, 1, 2, -1)] == [10, 20, -1, -1]
    assert pick.cache_info()['traces'] == 1
    assert [int(tj.switch_case(i, fns)) for i in (0, 1, 5)] == [10, 20, 20]


@pytest.mark.compiled
def test_lax_semantics():
    @tj.function
    def f(i, n, x):
        a = tj.lax.switch(i, [lambda v: v + 1.0, lambda v: v * 2.0, lambda v: -v], x)
        b = tj.lax.fori_loop(0, n, lambda k, v: v + tj.cast(k, tj.float32), x)
        c = tj.lax.while_loop(lambda v: v[0] < 100.0, lambda v: (v[0] * 3.0, v[1] + 1), (x, 0))
        d = tj.lax.cond(i, lambda v: v * 10.0, lambda v: v, x)
        return a, b, c[0], c[1], d
    for i in (-3, 0, 1, 2, 7):
        args = np.array(i, np.int32), np.array(4, np.int32), np.array(2.0, np.float32)
        a, b, c0, c1, d = (np.asarray(t) for t in f(*args))
        assert float(a) == [3.0, 4.0, -2.0][min(max(i, 0), 2)]       # the index is clamped
        assert float(b) == 2.0 + 0 + 1 + 2 + 3
        assert (float(c0), int(c1)) == (162.0, 4)
        assert float(d) == (2.0 if i == 0 else 20.0)
    assert f.cache_info()['traces'] == 1


def test_errors_are_specific():
    x = tj.constant(X)

    @tj.function
    def mismatched(x):
        return tj.cond(tj.reduce_sum(x) > 0, lambda: x, lambda: (x, x))
    with pytest.raises(errors.InvalidArgumentError, match='same structure'):
        mismatched(X)

    @tj.function
    def growing(x):
        return tj.while_loop(lambda v: tj.reduce_sum(v) < 5.0,
                             lambda v: tj.concat([v, v], 0), [x])
    with pytest.raises(errors.InvalidArgumentError, match='keep each loop variable'):
        growing(X)

    def unbounded(x):
        return tj.reduce_sum(tj.while_loop(lambda v: tj.reduce_sum(v) < 50.0,
                                           lambda v: v * 2.0, [x])[0])
    with pytest.raises(errors.InvalidArgumentError, match='maximum_iterations='):
        tj.function(tj.grad(unbounded))(X)
    doublings = int(np.ceil(np.log2(50.0 / X.sum())))
    np.testing.assert_allclose(tj.grad(unbounded)(x).numpy(),   # eager: a Python loop, as TF
                               np.full(X.shape, 2.0 ** doublings))
    with pytest.raises(errors.InvalidArgumentError, match='one leading axis'):
        tj.scan(lambda a, e: a + e, [x, x[:2]], initializer=(x[0], x[0]))


# ---------------------------------------------------------------------------- TensorArray

def _rnn_into_tensor_array(x):
    ta = tj.TensorArray(tj.float64, size=x.shape[0], element_shape=x.shape[1:])

    def body(i, h, ta):
        h = tj.tanh(h * 0.5 + tj.gather(x, i))
        return i + 1, h, ta.write(i, h)
    _, _, ta = tj.while_loop(lambda i, h, ta: i < ta.size(), body,
                             (0, tj.zeros(x.shape[1:], tj.float64), ta))
    return ta.stack(), ta.read(1)


def test_tensor_array_in_a_loop_and_outside():
    want = np.empty_like(X)
    h = np.zeros(3)
    for i, row in enumerate(X):
        h = np.tanh(h * 0.5 + row)
        want[i] = h
    for stacked, row in (_rnn_into_tensor_array(tj.constant(X)),
                         Interpreted(tj.function(_rnn_into_tensor_array).trace(X).graph).run([X])):
        np.testing.assert_allclose(np.asarray(stacked), want, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(row), want[1], rtol=1e-12)
    ta = tj.TensorArray(tj.float32, size=2).write(1, [3.0, 4.0]).write(0, tj.constant([1.0, 2.0]))
    np.testing.assert_array_equal(ta.stack().numpy(), [[1, 2], [3, 4]])
    assert int(ta.size()) == 2 and ta.read(1).numpy().tolist() == [3.0, 4.0]
    unstacked = tj.TensorArray(tj.float64, size=4).unstack(X)
    np.testing.assert_array_equal(unstacked.read(3).numpy(), X[3])
    with pytest.raises(errors.InvalidArgumentError, match='dynamic_size'):
        tj.TensorArray(tj.float32, size=2, dynamic_size=True)
    with pytest.raises(errors.InvalidArgumentError, match='element_shape='):
        tj.TensorArray(tj.float32, size=2).read(0)
    with pytest.raises(errors.InvalidArgumentError, match='out of range'):
        ta.write(2, [0.0, 0.0])
    with pytest.raises(errors.ShapeError, match='elements of shape'):
        ta.write(0, [0.0, 0.0, 0.0])


@pytest.mark.compiled
def test_debug_nans_names_the_control_flow_node_and_keeps_the_variables():
    v = tj.Variable(np.array([1.0, 2.0]))

    @tj.function(debug_nans=True)
    def step(x):
        v.assign(tj.cond(tj.reduce_sum(x) > 0.0, lambda: tj.log(x - 1.0) * v, lambda: v))
        return tj.reduce_sum(v)
    assert float(step(np.array([-1.0, -2.0]))) == 3.0           # the log is not taken
    with pytest.raises(FloatingPointError, match='cond produced NaN'):
        step(np.array([0.5, 2.0]))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


@pytest.mark.compiled
def test_carries_in_two_buffers_keep_each_iterations_values():
    """Array carries are updated in place (in their own buffer when the body reads element i
    before writing it, else the body writes a spare buffer and the two swap) and stacked rows
    written into the result: a body that swaps two carries, passes one
    through, and stacks the old value, the new one and matmuls' must still equal a Python
    loop, for odd and even trip counts, forwards and reversed; a while loop likewise (zero
    trips too)."""
    def body(carry, x):
        a, b, k = carry
        new_a = tj.tanh(b * x + 1.0)
        return (new_a, a, k), (a, new_a, tj.matmul(k, tj.expand_dims(new_a, 1))[:, 0], x[0],
                               tj.matmul(k, k * x[1]))

    @tj.function
    def run(xs, a, b, k, n):
        forward = tj.lax.scan(body, (a, b, k), xs)
        backward = tj.lax.scan(body, (a, b, k), xs, reverse=True)
        _, c, d = tj.while_loop(lambda i, c, d: i < n, lambda i, c, d: (i + 1, d * 0.5, c + d),
                                (0, a, b))
        return forward, backward, (c, d)

    def reference(xs, a, b, k, n, reverse=False):
        ys = [np.empty((len(xs), 3)) for _ in range(3)] + [np.empty(len(xs)),
                                                           np.empty((len(xs), 3, 3))]
        for i in (range(len(xs) - 1, -1, -1) if reverse else range(len(xs))):
            new_a = np.tanh(b * xs[i] + 1.0)
            ys[0][i], ys[1][i], ys[2][i], ys[3][i] = a, new_a, k @ new_a, xs[i, 0]
            ys[4][i] = k @ (k * xs[i, 1])
            a, b = new_a, a
        return (a, b, k), ys

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    for length, n in ((5, 3), (2, 0)):
        xs = rng.standard_normal((length, 3)).astype(np.float32)
        forward, backward, (c, d) = run(xs, a, b, k, np.int32(n))
        for got, reverse in ((forward, False), (backward, True)):
            want = reference(xs, a, b, k, n, reverse)
            (got_carry, got_ys), (want_carry, want_ys) = got, want
            for g, w in zip(list(got_carry) + list(got_ys), list(want_carry) + want_ys):
                np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6, atol=1e-6)
        want_c, want_d = a, b
        for _ in range(n):
            want_c, want_d = want_d * 0.5, want_c + want_d
        np.testing.assert_allclose(c.numpy(), want_c, rtol=1e-6)
        np.testing.assert_allclose(d.numpy(), want_d, rtol=1e-6)
    source = run.lower(xs, a, b, k, np.int32(1)).source
    in_loops = [line for line in source[source.index('def kernel'):].splitlines()
                if line.startswith(' ' * 8)]
    # no carry or stacked row is copied or allocated per iteration: the loops' only allocation
    # is each scan body's own temporary `k * x[1]`
    allocations = [line for line in in_loops if '.copy()' in line or 'np.empty' in line]
    assert len(allocations) == 2 and all('= np.empty((' in line for line in allocations)
    # each scan swaps two carries (its body reads an old value after the new one is made: `a`
    # is stacked, `b` becomes `a`) and leaves `k`, passed through, in its buffer; the while
    # body's loop reads c[i] and d[i] before it writes them, so both stay in their buffers
    assert sum(', b' in line and ' = b' in line for line in in_loops) == 2 * 2
    assert source.count('np.empty_like') == 2 * 2


@pytest.mark.compiled
def test_a_stacked_concat_is_written_into_its_row():
    """A concatenation the body stacks (an LSTM's gate gradients) is written straight into its
    row of the result, parts of any kind (computed, or an argument passed through), and the
    values equal a Python loop's."""
    @tj.function
    def run(xs, h, w):
        def body(h, x):
            z = tj.concat([tj.tanh(h * x), w, tj.sin(h)], axis=1)
            return tj.tanh(z[:, :3] + z[:, 4:]), z
        return tj.lax.scan(body, h, xs)

    rng = np.random.default_rng(4)
    xs, h = rng.standard_normal((5, 2, 3)).astype(np.float32), np.full((2, 3), 0.5, np.float32)
    w = rng.standard_normal((2, 1)).astype(np.float32)
    final, zs = run(xs, h, w)
    want_zs = []
    for x in xs:
        z = np.concatenate([np.tanh(h * x), w, np.sin(h)], axis=1)
        h = np.tanh(z[:, :3] + z[:, 4:])
        want_zs.append(z)
    np.testing.assert_allclose(final.numpy(), h, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(zs.numpy(), np.stack(want_zs), rtol=1e-6, atol=1e-6)
    source = run.lower(xs, h, w).source
    loop = [line for line in source[source.index('def kernel'):].splitlines()
            if line.startswith(' ' * 8)]
    assert any('K.concat_into(' in line for line in loop)
    assert 'np.concatenate' not in source


# ------------------------------------------------------------ in-place loop carries and views
# Loop bodies are emitted in place, carries are updated in their own buffer (or a Variable's)
# when that is legal, and reshape/slice/transpose results may be views: each program below
# mixes these and must equal a numpy loop written here, for zero, odd and even trip counts.

RNG = np.random.default_rng(11)
XS = RNG.standard_normal((5, 2, 3))
H0, H1, H2 = RNG.standard_normal((3, 2, 3))
SQUARE = RNG.standard_normal((3, 3))


def _allclose(got, want, dtype=np.float64):
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol)


@pytest.mark.compiled
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_carries_that_rotate_and_read_each_other_after_their_update(dtype):
    """(a, b, c) -> (b + x, c * 1, a - x) rotates the buffers' contents; d's next value reads
    a's next one; the old a is stacked and d's new value too; two 0-d carries swap."""
    @tj.function
    def run(xs, a, b, c):
        def body(carry, x):
            a, b, c, d, p, q = carry
            a2 = b + x
            return (a2, c * 1.0, a - x, d * 0.5 + a2 * a2, q, p + tj.reduce_sum(x)), (
                a, d * 0.5 + a2 * a2, p)
        zero = tj.reduce_sum(tj.zeros_like(a))
        return tj.lax.scan(body, (a, b, c, tj.zeros_like(a), zero, zero + 1.0), xs)

    for length in (5, 4):
        xs, init = XS[:length].astype(dtype), [h.astype(dtype) for h in (H0, H1, H2)]
        carry, ys = run(xs, *init)
        a, b, c = init
        d, p, q, want_ys = np.zeros_like(a), 0.0, 1.0, ([], [], [])
        for x in xs:
            want_ys[0].append(a)
            want_ys[2].append(p)
            a, b, c, p, q = b + x, c, a - x, q, p + x.sum()
            d = d * 0.5 + a * a
            want_ys[1].append(d)
        for got, want in zip(list(carry) + list(ys), [a, b, c, d, p, q] + [
                np.array(y) for y in want_ys]):
            _allclose(np.asarray(got), want, dtype)


@pytest.mark.compiled
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_two_variables_swapped_in_a_loop_run_in_their_buffers(dtype):
    v0, u0 = H0.astype(dtype), H1.astype(dtype)
    v, u = tj.Variable(v0), tj.Variable(u0)

    @tj.function
    def run(xs):
        for x in xs:
            new_v, new_u = u * 1.0 + x, v * 2.0
            v.assign(new_v)
            u.assign(new_u)
        return tj.reduce_sum(xs)

    for length in (5, 2):
        v.assign(v0)
        u.assign(u0)
        run(XS[:length].astype(dtype))
        want_v, want_u = v0, u0
        for x in XS[:length].astype(dtype):
            want_v, want_u = want_u + x, want_v * 2.0
        _allclose(v.numpy(), want_v, dtype)
        _allclose(u.numpy(), want_u, dtype)


@pytest.mark.compiled
def test_views_of_a_variable_a_while_loop_updates_keep_their_values():
    """Views read before the loop (transpose, a column) have the old value, views after it the
    new one, whether or not the loop runs."""
    v = tj.Variable(H0)

    @tj.function
    def run(n):
        before, column = tj.transpose(v), v[:, 1]
        i = tj.constant(0)
        while i < n:
            v.assign(v * 0.5 + 1.0)
            i += 1
        return before, column, tj.reshape(v, (-1,)), v[0]

    for n in (0, 3, 2):
        v.assign(H0)
        got = run(np.int32(n))
        want = H0
        for _ in range(n):
            want = want * 0.5 + 1.0
        for g, w in zip(got, (H0.T, H0[:, 1], want.ravel(), want[0])):
            _allclose(g.numpy(), w)
        _allclose(v.numpy(), want)


@pytest.mark.compiled
def test_a_variable_read_by_the_loop_as_a_constant_or_scanned_and_carried():
    """The loop's constant is the Variable's value or a view of it (transpose, a row), or the
    loop scans the rows of the Variable or of its transpose: the loop must not run in the
    Variable's buffer, or what it reads would change under it."""
    vs = [tj.Variable(SQUARE) for _ in range(5)]

    @tj.function
    def run(n):
        for v, constant in zip(vs, (vs[0].value(), tj.transpose(vs[1]), vs[2][0])):
            _, final = tj.while_loop(lambda i, a: i < n,
                                     lambda i, a, k=constant: (i + 1, a * 0.5 + k),
                                     (0, v.value()))
            v.assign(final)
        for v, rows in ((vs[3], vs[3].value()), (vs[4], tj.transpose(vs[4]))):
            for row in rows:
                v.assign(v * 0.5 + row)
        return tj.reduce_sum(vs[0])

    for n in (3, 0):
        for v in vs:
            v.assign(SQUARE)
        run(np.int32(n))
        for v, constant in zip(vs, (SQUARE, SQUARE.T, SQUARE[0])):
            want = SQUARE
            for _ in range(n):
                want = want * 0.5 + constant
            _allclose(v.numpy(), want)
        for v, rows in zip(vs[3:], (SQUARE, SQUARE.T)):
            want = SQUARE
            for row in rows:
                want = want * 0.5 + row
            _allclose(v.numpy(), want)


@pytest.mark.compiled
def test_carries_read_through_gathers_reductions_and_broadcasts():
    """Each carry's next value reads other elements of the carry (a gather, sums along either
    axis, a matmul, a max, a broadcast row): none may be updated in place element by element."""
    index = np.array([2, 0, 1], np.int32)
    steps = [
        (lambda a: tj.gather(a, index), lambda a: a[index]),
        (lambda a: tj.reduce_sum(SQUARE * a, axis=1), lambda a: (SQUARE * a).sum(1)),
        (lambda a: tj.reduce_sum(SQUARE * tj.expand_dims(a, 1), axis=0),
         lambda a: (SQUARE * a[:, None]).sum(0)),
        (lambda a: tj.matmul(SQUARE, tj.expand_dims(a, 1))[:, 0], lambda a: SQUARE @ a),
        (lambda a: tj.reduce_max(a), lambda a: a.max()),
        (lambda a: tj.broadcast_to(a[1:2], (3,)), lambda a: a[1]),
    ]
    xs, init = XS.reshape(10, 3), H0.reshape(2, 3)[0]
    v = [tj.Variable(init) for _ in steps]

    @tj.function
    def run(xs):
        carry, _ = tj.lax.scan(lambda c, x: ([a * 0.5 + f(a) + x for a, (f, _) in
                                              zip(c, steps)], x), [init] * len(steps), xs)
        for x in xs:
            for variable, (f, _) in zip(v, steps):
                variable.assign(variable * 0.5 + f(variable.value()) + x)
        return carry

    got = run(xs)
    for k, (_, ref) in enumerate(steps):
        want = init
        for x in xs:
            want = want * 0.5 + ref(want) + x
        _allclose(got[k].numpy(), want)
        _allclose(v[k].numpy(), want)


@pytest.mark.compiled
def test_a_cond_in_a_scan_in_a_while_loop():
    @tj.function
    def run(xs, h, n):
        def body(h, x):
            h = tj.cond(tj.reduce_sum(x) > 0.0, lambda: tj.tanh(h + x), lambda: h * 0.5 - x)
            return h, h * 2.0

        def outer(i, h, total):
            h, ys = tj.lax.scan(body, h, xs)
            return i + 1, h, total + tj.reduce_sum(ys, axis=0)
        return tj.while_loop(lambda i, h, total: i < n, outer, (0, h, tj.zeros_like(h)))

    for n in (0, 1, 2):
        _, h, total = run(XS, H0, np.int32(n))
        want_h, want_total = H0, np.zeros_like(H0)
        for _ in range(n):
            for x in XS:
                want_h = np.tanh(want_h + x) if x.sum() > 0 else want_h * 0.5 - x
                want_total = want_total + want_h * 2.0
        _allclose(h.numpy(), want_h)
        _allclose(total.numpy(), want_total)


def _decay(c, x):
    return c * 0.9 + x, c


def _np_decay(c, xs, reverse=False):
    ys = [None] * len(xs)
    for i in (range(len(xs) - 1, -1, -1) if reverse else range(len(xs))):
        ys[i], c = c, c * 0.9 + xs[i]
    return c, np.array(ys)


@pytest.mark.compiled
def test_scans_in_both_branches_and_one_body_in_several_loops():
    """The same body function in four loops (two in a cond's branches, two after it, one
    reversed) and a scan over a scan that stacks the outer carry: the loops' code is emitted
    in place four times over with distinct names."""
    @tj.function
    def run(xs, c, flag):
        r = tj.cond(flag > 0, lambda: tj.lax.scan(_decay, c, xs)[0],
                    lambda: tj.lax.scan(_decay, c * 2.0, xs)[1][-1])
        r2, _ = tj.lax.scan(_decay, r, xs)
        r3, _ = tj.lax.scan(_decay, r2, xs, reverse=True)
        nested = tj.lax.scan(lambda c, x: (tj.lax.scan(_decay, c, tj.transpose(x))[0], c),
                             r3[0], tj.reshape(xs, (5, 3, 2)))
        return r, r2, r3, nested

    for flag in (1, -1):
        got_r, got_r2, got_r3, (got_final, got_stacked) = run(XS, H0, np.int32(flag))
        r = _np_decay(H0, XS)[0] if flag > 0 else _np_decay(H0 * 2.0, XS)[1][-1]
        r2 = _np_decay(r, XS)[0]
        r3 = _np_decay(r2, XS, reverse=True)[0]
        final, stacked = r3[0], []
        for x in XS.reshape(5, 3, 2):
            stacked.append(final)
            final = _np_decay(final, x.T)[0]
        for got, want in ((got_r, r), (got_r2, r2), (got_r3, r3), (got_final, final),
                          (got_stacked, np.array(stacked))):
            _allclose(got.numpy(), want)


@pytest.mark.compiled
def test_gradients_through_a_loop_with_swapping_carries_match_eager():
    """A tape inside tj.function over two scans of one body (carries swapping, a Variable
    read in the body), then the Variable updated: loss, gradient and Variable equal eager."""
    def make():
        w = tj.Variable(SQUARE * 0.5)

        def step(xs, h):
            with tj.GradientTape() as tape:
                def body(carry, x):
                    a, b = carry
                    new_a = tj.tanh(tj.matmul(a, w) + x)
                    return (b * 1.0, new_a), new_a
                (a, b), ys = tj.lax.scan(body, (h, h * 0.5), xs)
                (a, _), _ = tj.lax.scan(body, (a, b), xs, reverse=True)
                loss = tj.reduce_sum(ys * ys) + tj.reduce_sum(tj.transpose(w)[:2] * a)
            gradient = tape.gradient(loss, w)
            w.assign_sub(gradient * 0.1)
            return loss, gradient
        return w, step

    w_eager, eager = make()
    w_compiled, compiled = make()
    compiled = tj.function(compiled)
    for xs in (XS, XS[:2]):
        want = eager(tj.constant(xs), tj.constant(H0))
        got = compiled(xs, H0)
        for g, w in zip(list(got) + [w_compiled], list(want) + [w_eager]):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.compiled
def test_a_gather_failing_midway_leaves_loop_variables_and_views_unchanged():
    table = np.arange(12.0).reshape(4, 3)
    v, u = tj.Variable(np.ones((2, 3))), tj.Variable(np.zeros(3))

    @tj.function
    def run(ids):
        first = v[0]
        i = tj.constant(0)
        while i < tj.shape(ids)[0]:
            v.assign(v * 0.5 + tj.gather(table, ids[i]))
            u.assign(u + v[1])
            i += 1
        return first, tj.transpose(v)

    first, transposed = run(np.array([1, 2], np.int32))
    want_v, want_u = np.ones((2, 3)), np.zeros(3)
    for i in (1, 2):
        want_v = want_v * 0.5 + table[i]
        want_u = want_u + want_v[1]
    _allclose(first.numpy(), np.ones(3))
    _allclose(transposed.numpy(), want_v.T)
    _allclose(u.numpy(), want_u)
    with pytest.raises(IndexError, match='out of range'):   # at the third step
        run(np.array([0, 3, 4, 1], np.int32))
    _allclose(v.numpy(), want_v)
    _allclose(u.numpy(), want_u)


@pytest.mark.compiled
def test_a_cond_returning_a_variable_or_its_view_keeps_the_old_value():
    """A branch passes the Variable's value (or a slice, a transposed slice) through, then the
    step updates the Variable: the result is the value from before the update."""
    picks = [(lambda v: v.value(), lambda a: a), (lambda v: v[:, 1:], lambda a: a[:, 1:]),
             (lambda v: tj.transpose(v)[1:], lambda a: a.T[1:])]
    vs = [tj.Variable(H0) for _ in picks]

    @tj.function
    def run(x):
        results = []
        for v, (pick, _) in zip(vs, picks):
            results.append(tj.cond(tj.reduce_sum(x) > 0.0, lambda v=v, pick=pick: pick(v),
                                   lambda v=v, pick=pick: pick(v) * 2.0))
            v.assign(v * 0.5 + x)
        return results

    for sign in (1.0, -1.0):
        for v in vs:
            v.assign(H0)
        got = run(sign * np.abs(H1))
        for g, v, (_, ref) in zip(got, vs, picks):
            _allclose(g.numpy(), ref(H0) * (1.0 if sign > 0 else 2.0))
            _allclose(v.numpy(), H0 * 0.5 + sign * np.abs(H1))


@pytest.mark.compiled
def test_a_loop_and_a_cond_of_effects_only_run(capfd):
    """A loop whose body only prints or assigns a Variable its own value, and a cond whose
    branches only print, have no outputs: they still run for their effects."""
    v = tj.Variable(H0)

    @tj.function
    def run(xs):
        for x in xs:
            tj.print(x[0, 0])
            v.assign(v.value())
        tj.cond(tj.reduce_sum(xs) > 0.0, lambda: tj.print(1.0), lambda: tj.print(-1.0))
        return tj.reduce_sum(xs)
    for sign in (1.0, -1.0):
        xs = sign * np.abs(XS)
        _allclose(run(xs).numpy(), xs.sum())
        _allclose(v.numpy(), H0)
        printed = capfd.readouterr()
        assert [float(line) for line in (printed.out + printed.err).split()] == pytest.approx(
            list(xs[:, 0, 0]) + [sign], rel=1e-5)

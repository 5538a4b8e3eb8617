"""Each rewrite pass of tracejit/passes.py alone, on graphs built by hand with the IR API.

For every pass: what it must rewrite (node counts and primitive names after it), what it must
leave alone (a graph without an opportunity comes back with the same nodes), and that the
graph computes the same values before and after, checked with the IR interpreter against numpy
written here. Every result is checked with `Graph.verify()`, and no pass may modify its input.
"""
import re

import numpy as np
import pytest

import tracejit as tj
from gradcheck import check_grads
from tracejit import ir, passes
from tracejit.primitives import REGISTRY, window_geometry

F64, F32, I64 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64)
RNG = np.random.default_rng(0)


class Builder:
    """A graph under construction: arguments, state, constants and nodes in program order."""

    def __init__(self):
        self.graph = ir.Graph()

    def arg(self, shape, dtype=F64):
        var = ir.Var(shape, dtype)
        self.graph.inputs.append(var)
        return var

    def state(self, variable):
        var = ir.Var(variable.shape, variable.dtype.np)
        self.graph.state.append((variable, var))
        return var

    def const(self, value, dtype=F64):
        return self.graph.add_const(np.asarray(value, dtype))

    def op(self, name, *inputs, **params):
        prim = REGISTRY[name]
        [(shape, dtype, weak)] = prim.check(*inputs, **params)
        out = ir.Var(shape, dtype, weak)
        self.graph.nodes.append(ir.Node(prim, inputs, params, [out]))
        return out

    def done(self, *outputs, updates=()):
        self.graph.outputs, self.graph.updates = list(outputs), list(updates)
        self.graph.verify()
        return self.graph


def apply(rewrite_pass, graph):
    """Run one pass; the result verifies and the input graph is unchanged."""
    text, nodes, consts = str(graph), list(graph.nodes), dict(graph.consts)
    inputs = [list(node.inputs) for node in graph.nodes]
    result = rewrite_pass(graph)
    result.verify()
    assert str(graph) == text, 'the pass modified its input graph'
    assert all(a is b for a, b in zip(graph.nodes, nodes)) and len(graph.nodes) == len(nodes)
    assert [list(node.inputs) for node in graph.nodes] == inputs
    assert graph.consts.keys() == consts.keys()
    assert result.inputs == graph.inputs and result.state == graph.state
    return result


def prims(graph):
    return [node.prim.name for node in graph.nodes]


def run(graph, args=(), state=()):
    return ir.evaluate(graph, list(args), list(state))


def assert_same_values(before, after, args=(), state=(), expected=None, expected_updates=None,
                       rtol=0.0):
    """Both graphs compute the same outputs and updates, and those equal numpy's."""
    outs_b, ups_b = run(before, args, state)
    outs_a, ups_a = run(after, args, state)
    assert len(outs_a) == len(outs_b) and len(ups_a) == len(ups_b)
    for a, b in zip(outs_a + ups_a, outs_b + ups_b):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    for got, want in ((outs_a, expected), (ups_a, expected_updates)):
        if want is not None:
            assert len(got) == len(want)
            for g, w in zip(got, want):
                w = np.asarray(w)
                assert g.shape == w.shape, (g.shape, w.shape)
                np.testing.assert_allclose(g, w.astype(g.dtype), rtol=max(rtol, 1e-12), atol=0)


def producer(graph, var):
    return graph.producers().get(var)


def x34(dtype=F64):
    return RNG.standard_normal((3, 4)).astype(dtype)


# ----------------------------------------------------------------- dead code elimination

def test_dce_removes_nodes_nothing_reads_with_their_constants():
    b = Builder()
    x = b.arg((3,))
    c = b.const([1.0, 2.0, 3.0])
    dead = b.op('exp', x)
    b.op('add', dead, c)  # reads a dead value: dead as well, found in the same pass
    live = b.op('neg', x)
    graph = b.done(live)
    assert prims(graph) == ['exp', 'add', 'neg']
    after = apply(passes.dead_code_elimination, graph)
    assert prims(after) == ['neg']
    assert c not in after.consts
    assert after.outputs == [live]
    xv = np.array([0.0, -1.5, 2.0])
    assert_same_values(graph, after, [xv], expected=[-xv])


def test_dce_keeps_variable_updates_that_no_output_reads():
    W = tj.Variable(np.zeros(3))
    b = Builder()
    x = b.arg((3,))
    w = b.state(W)
    step = b.op('mul', x, b.const(0.5))
    new = b.op('sub', w, step)
    b.op('mul', w, x)  # dead
    graph = b.done(updates=[(W, new)])
    after = apply(passes.dead_code_elimination, graph)
    assert prims(after) == ['mul', 'sub']
    assert after.updates == [(W, new)] and after.outputs == []
    xv, wv = np.array([1.0, 0.0, -4.0]), np.array([2.0, 3.0, 0.0])
    assert_same_values(graph, after, [xv], [wv], expected=[], expected_updates=[wv - 0.5 * xv])


def test_dce_keeps_a_value_used_twice_and_read_by_an_output_and_an_update():
    W = tj.Variable(np.zeros(3))
    b = Builder()
    x = b.arg((3,))
    b.state(W)
    y = b.op('exp', x)
    twice = b.op('add', y, y)
    graph = b.done(twice, updates=[(W, y)])
    after = apply(passes.dead_code_elimination, graph)
    assert len(after.nodes) == 2 and all(n is m for n, m in zip(after.nodes, graph.nodes))
    xv = np.array([0.0, 1.0, -1.0])
    assert_same_values(graph, after, [xv], [np.zeros(3)], expected=[2 * np.exp(xv)],
                       expected_updates=[np.exp(xv)])


def test_dce_without_dead_code_changes_nothing():
    b = Builder()
    x, y = b.arg((3, 4)), b.arg((4, 2))
    c = b.const(2.0)
    graph = b.done(b.op('mul', b.op('matmul', x, y, transpose_a=False, transpose_b=False), c))
    after = apply(passes.dead_code_elimination, graph)
    assert [id(n) for n in after.nodes] == [id(n) for n in graph.nodes]
    assert after.consts.keys() == graph.consts.keys()
    xv, yv = x34(), RNG.standard_normal((4, 2))
    assert_same_values(graph, after, [xv, yv], expected=[2 * (xv @ yv)])


def test_dce_keeps_outputs_that_are_arguments_or_constants():
    b = Builder()
    x = b.arg((2,))
    c = b.const([7.0, 0.0])
    unused = b.const(3.0)
    b.op('exp', x)
    graph = b.done(x, c, x)  # the same Var returned twice
    after = apply(passes.dead_code_elimination, graph)
    assert after.nodes == []
    assert c in after.consts and unused not in after.consts
    xv = np.array([1.0, -0.0])
    assert_same_values(graph, after, [xv], expected=[xv, [7.0, 0.0], xv])


def test_dce_of_an_empty_graph():
    graph = Builder().done()
    after = apply(passes.dead_code_elimination, graph)
    assert after.nodes == [] and after.outputs == [] and after.consts == {}


# ----------------------------------------------------------------------- constant folding

DIVIDEND = [1.0, -2.0, 0.0, 3.0, -0.0]
DIVISOR = [0.0, 0.0, 0.0, 2.0, 5.0]


@pytest.mark.parametrize('dtype', [F64, F32])
@pytest.mark.parametrize('name, fn', [('add', np.add), ('sub', np.subtract),
                                      ('mul', np.multiply), ('div', np.divide),
                                      ('max', np.maximum), ('pow', np.power)])
def test_fold_a_node_of_constants_into_numpys_value(name, fn, dtype):
    b = Builder()
    graph = b.done(b.op(name, b.const(DIVIDEND, dtype), b.const(DIVISOR, dtype)))
    after = apply(passes.constant_folding, graph)
    assert after.nodes == []
    [out] = after.outputs
    assert out in after.consts and out.shape == (5,) and out.dtype == dtype
    with np.errstate(all='ignore'):
        want = fn(np.asarray(DIVIDEND, dtype), np.asarray(DIVISOR, dtype))
    np.testing.assert_array_equal(after.consts[out], want)  # inf, -inf and nan included
    assert after.consts[out].dtype == dtype
    assert np.array_equal(np.signbit(after.consts[out]), np.signbit(want))
    assert_same_values(graph, after)


def test_fold_a_chain_in_one_pass_and_a_repeated_argument():
    b = Builder()
    c = b.const([0.0, -1.0, 2.0])
    square = b.op('mul', c, c)
    graph = b.done(b.op('exp', b.op('neg', square)))
    after = apply(passes.constant_folding, graph)
    assert after.nodes == []
    np.testing.assert_array_equal(after.consts[after.outputs[0]],
                                  np.exp(-np.array([0.0, 1.0, 4.0])))


def test_fold_reductions_layouts_and_matmul_like_numpy():
    a, m = x34(), RNG.standard_normal((4, 2))
    b = Builder()
    ca, cm = b.const(a), b.const(m)
    outs = [b.op('reduce_sum', ca, axes=(1,)),
            b.op('reduce_max', ca, axes=(0, 1)),
            b.op('transpose', ca, perm=(1, 0)),
            b.op('reshape', ca, shape=(2, 6)),
            b.op('matmul', ca, cm, transpose_a=False, transpose_b=False),
            b.op('convert', ca, dtype=F32),
            b.op('argmax', ca, axis=1)]
    graph = b.done(*outs)
    after = apply(passes.constant_folding, graph)
    assert after.nodes == []
    want = [a.sum(axis=1), a.max(), a.T, a.reshape(2, 6), a @ m, a.astype(F32), a.argmax(axis=1)]
    for var, w in zip(after.outputs, want):
        value = after.consts[var]
        assert value.dtype == w.dtype and value.shape == w.shape
        np.testing.assert_allclose(value, w, rtol=1e-15)


def test_fold_integer_constants_exactly():
    b = Builder()
    big = np.array([2**62, -3, 0], I64)
    graph = b.done(b.op('add', b.const(big, I64), b.const([2**62 - 1, 3, 0], I64)))
    after = apply(passes.constant_folding, graph)
    value = after.consts[after.outputs[0]]
    assert value.dtype == I64
    np.testing.assert_array_equal(value, big + np.array([2**62 - 1, 3, 0], I64))


def test_fold_leaves_nodes_with_a_computed_operand():
    b = Builder()
    x = b.arg((3,))
    c = b.const([1.0, 0.0, -2.0])
    graph = b.done(b.op('add', x, b.op('mul', c, c)))
    after = apply(passes.constant_folding, graph)
    assert prims(after) == ['add']
    add = after.nodes[0]
    assert add.inputs[0] is x and add.inputs[1] in after.consts
    np.testing.assert_array_equal(after.consts[add.inputs[1]], [1.0, 0.0, 4.0])
    xv = np.array([0.5, 0.0, -1.0])
    assert_same_values(graph, after, [xv], expected=[xv + [1.0, 0.0, 4.0]])


def test_fold_never_expands_constants():
    b = Builder()
    outs = [b.op('broadcast_to', b.const(1.5), shape=(3, 4)),
            b.op('broadcast_to', b.const([2.0]), shape=(1000,)),
            b.op('add', b.const(1.0), b.const(np.zeros((2, 3))))]  # 6 elements from 6: folds
    graph = b.done(*outs)
    after = apply(passes.constant_folding, graph)
    assert prims(after) == ['broadcast_to', 'broadcast_to']
    assert after.outputs[2] in after.consts
    assert_same_values(graph, after, expected=[np.full((3, 4), 1.5), np.full(1000, 2.0),
                                               np.ones((2, 3))])


def test_fold_respects_the_size_limit():
    n = passes.FOLD_MAX_SIZE
    b = Builder()
    at_limit = b.op('neg', b.const(np.arange(n, dtype=F64)))
    over = b.op('neg', b.const(np.arange(n + 1, dtype=F64)))
    graph = b.done(at_limit, over)
    after = apply(passes.constant_folding, graph)
    assert prims(after) == ['neg']
    assert after.nodes[0].outputs[0] is over and after.outputs[0] in after.consts
    np.testing.assert_array_equal(after.consts[after.outputs[0]], -np.arange(n, dtype=F64))


def test_fold_leaves_sources_alone():
    b = Builder()
    key = b.const(7, I64)
    graph = b.done(b.op('random_uniform', key, shape=(3,), dtype=F64),
                   b.op('iota', shape=(2, 3), axis=1, dtype=I64))
    after = apply(passes.constant_folding, graph)
    assert prims(after) == ['random_uniform', 'iota']
    outs, _ = run(after)
    np.testing.assert_array_equal(outs[1], [[0, 1, 2], [0, 1, 2]])
    assert_same_values(graph, after)


def test_fold_a_constant_update():
    W = tj.Variable(np.zeros(2))
    b = Builder()
    b.state(W)
    graph = b.done(updates=[(W, b.op('add', b.const([1.0, 2.0]), b.const([0.5, 0.0])))])
    after = apply(passes.constant_folding, graph)
    assert after.nodes == []
    [(variable, value)] = after.updates
    assert variable is W and value in after.consts
    assert_same_values(graph, after, state=[np.zeros(2)], expected_updates=[[1.5, 2.0]])


def test_fold_without_constant_nodes_changes_nothing():
    b = Builder()
    x = b.arg((3, 4))
    graph = b.done(b.op('reduce_sum', b.op('mul', x, b.const(3.0)), axes=(0,)))
    after = apply(passes.constant_folding, graph)
    assert prims(after) == ['mul', 'reduce_sum']
    assert after.consts.keys() == graph.consts.keys()
    assert [n.outputs for n in after.nodes] == [n.outputs for n in graph.nodes]
    xv = x34()
    assert_same_values(graph, after, [xv], expected=[(3 * xv).sum(axis=0)], rtol=1e-15)


# -------------------------------------------------------------- algebraic simplification

@pytest.mark.parametrize('dtype', [F64, F32])
@pytest.mark.parametrize('name, neutral, x_first', [
    ('mul', 1.0, True), ('mul', 1.0, False), ('add', 0.0, True), ('add', 0.0, False),
    ('sub', 0.0, True), ('div', 1.0, True)])
@pytest.mark.parametrize('neutral_shape', [(), (4,), (3, 4)])
def test_simplify_removes_identity_operands(name, neutral, x_first, dtype, neutral_shape):
    b = Builder()
    x = b.arg((3, 4), dtype)
    c = b.const(np.full(neutral_shape, neutral), dtype)
    graph = b.done(b.op(name, *((x, c) if x_first else (c, x))))
    after = apply(passes.algebraic_simplification, graph)
    assert after.nodes == [] and after.outputs == [x]
    xv = x34(dtype)
    xv[0, :2] = [0.0, np.nan]
    assert_same_values(graph, after, [xv], expected=[xv])


@pytest.mark.parametrize('name, left, right', [
    ('sub', 0.0, None), ('div', 1.0, None),       # 0 - x and 1 / x are not x
    ('mul', None, 0.0), ('add', None, 1.0),       # not neutral
    ('mul', None, [1.0, 2.0, 1.0, 1.0]),          # neutral only in some elements
    ('mul', None, np.ones((2, 3, 4))),            # a neutral operand that broadcasts x
    ('add', np.zeros((2, 1, 4)), None)])
def test_simplify_keeps_operands_that_are_not_identities(name, left, right):
    b = Builder()
    x = b.arg((3, 4))
    operands = [x if v is None else b.const(v) for v in (left, right)]
    out = b.op(name, *operands)
    graph = b.done(out)
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == [name] and after.outputs == [out]
    xv = RNG.standard_normal(x.shape)
    consts = [xv if v is None else np.asarray(v) for v in (left, right)]
    fn = {'sub': np.subtract, 'div': np.divide, 'mul': np.multiply, 'add': np.add}[name]
    assert_same_values(graph, after, [xv], expected=[fn(*consts)])


def test_simplify_an_identity_on_the_same_value_used_twice():
    b = Builder()
    x = b.arg((3,))
    square = b.op('mul', x, x)
    graph = b.done(b.op('add', b.op('mul', square, b.const(1.0)), square))
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == ['mul', 'add']
    assert after.nodes[1].inputs == [square, square]
    xv = np.array([0.0, -2.0, 3.0])
    assert_same_values(graph, after, [xv], expected=[2 * xv * xv])


def test_simplify_double_negation_but_not_a_triple_one():
    b = Builder()
    x = b.arg((4,))
    two = b.op('neg', b.op('neg', x))
    three = b.op('neg', b.op('neg', b.op('neg', x)))
    graph = b.done(two, three)
    after = apply(passes.algebraic_simplification, graph)
    assert after.outputs[0] is x
    last = producer(after, after.outputs[1])
    assert last.prim.name == 'neg' and last.inputs == [x]
    xv = np.array([0.0, -0.0, 1.0, -np.inf])
    assert_same_values(graph, after, [xv], expected=[xv, -xv])


@pytest.mark.parametrize('name, params', [('reshape', {'shape': (3, 4)}),
                                          ('broadcast_to', {'shape': (3, 4)}),
                                          ('stop_gradient', {})])
def test_simplify_removes_layout_ops_that_change_nothing(name, params):
    b = Builder()
    x = b.arg((3, 4))
    graph = b.done(b.op('exp', b.op(name, x, **params)))
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == ['exp'] and after.nodes[0].inputs == [x]
    xv = x34()
    assert_same_values(graph, after, [xv], expected=[np.exp(xv)])


def test_simplify_collapses_reshape_chains():
    b = Builder()
    x = b.arg((3, 4))
    flat = b.op('reshape', x, shape=(12,))
    two = b.op('reshape', flat, shape=(2, 6))
    graph = b.done(two, b.op('reshape', two, shape=(6, 2)))
    after = apply(passes.algebraic_simplification, graph)
    last = producer(after, after.outputs[0])
    assert last.prim.name == 'reshape' and last.inputs == [x] and last.params == {'shape': (2, 6)}
    # a reshape emitted by the pass is not a rewrite source within the same pass: the
    # three-step chain needs the second simplification of the pipeline
    again = apply(passes.algebraic_simplification, after)
    last = producer(again, again.outputs[1])
    assert last.prim.name == 'reshape' and last.inputs == [x] and last.params == {'shape': (6, 2)}
    xv = x34()
    for result in (after, again):
        assert_same_values(graph, result, [xv], expected=[xv.reshape(2, 6), xv.reshape(6, 2)])


def test_simplify_cancels_a_transpose_of_a_transpose():
    b = Builder()
    x = b.arg((3, 4))
    graph = b.done(b.op('transpose', b.op('transpose', x, perm=(1, 0)), perm=(1, 0)))
    after = apply(passes.algebraic_simplification, graph)
    assert after.outputs == [x] and prims(after) == ['transpose']  # the first one, now dead
    xv = x34()
    assert_same_values(graph, after, [xv], expected=[xv])


@pytest.mark.parametrize('first, second', [((1, 2, 0), (1, 2, 0)), ((2, 0, 1), (0, 2, 1)),
                                           ((1, 0, 2), (2, 1, 0)), ((1, 2, 0), (2, 0, 1))])
def test_simplify_composes_transposes(first, second):
    b = Builder()
    x = b.arg((2, 3, 4))
    graph = b.done(b.op('transpose', b.op('transpose', x, perm=first), perm=second))
    after = apply(passes.algebraic_simplification, graph)
    xv = RNG.standard_normal((2, 3, 4))
    want = np.transpose(np.transpose(xv, first), second)
    if want.strides == xv.strides:  # the composition is the identity
        assert after.outputs == [x]
    else:
        last = producer(after, after.outputs[0])
        assert last.prim.name == 'transpose' and last.inputs == [x]
    assert_same_values(graph, after, [xv], expected=[want])


@pytest.mark.parametrize('transpose_a', [False, True])
@pytest.mark.parametrize('transpose_b', [False, True])
@pytest.mark.parametrize('wrap_a, wrap_b', [(True, False), (False, True), (True, True)])
def test_simplify_folds_transposes_into_matmul_flags(transpose_a, transpose_b, wrap_a, wrap_b):
    a_shape = (3, 2) if transpose_a else (2, 3)
    b_shape = (5, 3) if transpose_b else (3, 5)
    b = Builder()
    a = b.arg(a_shape[::-1] if wrap_a else a_shape)
    m = b.arg(b_shape[::-1] if wrap_b else b_shape)
    lhs = b.op('transpose', a, perm=(1, 0)) if wrap_a else a
    rhs = b.op('transpose', m, perm=(1, 0)) if wrap_b else m
    graph = b.done(b.op('matmul', lhs, rhs, transpose_a=transpose_a, transpose_b=transpose_b))
    after = apply(passes.algebraic_simplification, graph)
    mm = producer(after, after.outputs[0])
    assert mm.prim.name == 'matmul' and mm.inputs == [a, m]
    assert mm.params == {'transpose_a': transpose_a != wrap_a, 'transpose_b': transpose_b != wrap_b}
    av, mv = RNG.standard_normal(a.shape), RNG.standard_normal(m.shape)
    lv, rv = (av.T if wrap_a else av), (mv.T if wrap_b else mv)
    want = (lv.T if transpose_a else lv) @ (rv.T if transpose_b else rv)
    assert_same_values(graph, after, [av, mv], expected=[want], rtol=1e-14)


def test_simplify_folds_one_transpose_used_as_both_matmul_operands():
    b = Builder()
    a = b.arg((3, 3))
    t = b.op('transpose', a, perm=(1, 0))
    graph = b.done(b.op('matmul', t, t, transpose_a=False, transpose_b=False))
    after = apply(passes.algebraic_simplification, graph)
    mm = producer(after, after.outputs[0])
    assert mm.inputs == [a, a] and mm.params == {'transpose_a': True, 'transpose_b': True}
    av = RNG.standard_normal((3, 3))
    assert_same_values(graph, after, [av], expected=[av.T @ av.T], rtol=1e-14)


def test_simplify_folds_only_transposes_of_the_last_two_axes_into_batched_matmul():
    b = Builder()
    a, m = b.arg((2, 4, 3)), b.arg((3, 2, 5))
    swapped = b.op('transpose', a, perm=(0, 2, 1))   # (2, 3, 4): folds
    batch = b.op('transpose', m, perm=(1, 0, 2))     # (2, 3, 5): moves the batch axis, stays
    graph = b.done(b.op('matmul', swapped, batch, transpose_a=True, transpose_b=False))
    after = apply(passes.algebraic_simplification, graph)
    mm = producer(after, after.outputs[0])
    assert mm.inputs == [a, batch] and mm.params == {'transpose_a': False, 'transpose_b': False}
    av, mv = RNG.standard_normal((2, 4, 3)), RNG.standard_normal((3, 2, 5))
    want = np.matmul(av, np.transpose(mv, (1, 0, 2)))
    assert_same_values(graph, after, [av, mv], expected=[want], rtol=1e-14)


def test_simplify_leaves_matmul_without_transposes():
    b = Builder()
    a, m = b.arg((2, 3)), b.arg((3, 3))
    graph = b.done(b.op('matmul', a, b.op('exp', m), transpose_a=False, transpose_b=True))
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == ['exp', 'matmul'] and after.outputs == graph.outputs


@pytest.mark.parametrize('x_shape, full, axes, copies', [
    ((3,), (4, 3), (0,), 4),
    ((3, 1), (3, 4), (1,), 4),
    ((), (2, 3), (0, 1), 6),
    ((1, 3), (5, 2, 3), (0, 1), 10),
    ((2, 1, 3), (2, 4, 3), (1,), 4)])
@pytest.mark.parametrize('dtype', [F64, F32])
def test_simplify_sum_of_a_broadcast_into_a_multiplication(x_shape, full, axes, copies, dtype):
    b = Builder()
    x = b.arg(x_shape, dtype)
    graph = b.done(b.op('reduce_sum', b.op('broadcast_to', x, shape=full), axes=axes))
    after = apply(passes.algebraic_simplification, graph)
    assert 'reduce_sum' not in prims(after)
    mul = producer(after, after.outputs[0])
    assert mul.prim.name == 'mul'
    assert [after.consts[v][()] for v in mul.inputs if v in after.consts] == [copies]
    xv = RNG.standard_normal(x_shape).astype(dtype)
    want = np.sum(np.broadcast_to(xv, full), axis=axes)
    assert_same_values(graph, after, [xv], expected=[want], rtol=1e-6 if dtype == F32 else 1e-14)


@pytest.mark.parametrize('x_shape, full, axes, dtype', [
    ((3,), (4, 3), (1,), F64),       # axis 1 was not broadcast
    ((3,), (4, 3), (0, 1), F64),     # one of the axes was not broadcast
    ((3, 1), (3, 4), (0,), F64),
    ((3,), (4, 3), (0,), I64)])      # integers: left alone
def test_simplify_keeps_sums_over_axes_that_were_not_broadcast(x_shape, full, axes, dtype):
    b = Builder()
    x = b.arg(x_shape, dtype)
    graph = b.done(b.op('reduce_sum', b.op('broadcast_to', x, shape=full), axes=axes))
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == ['broadcast_to', 'reduce_sum'] and after.outputs == graph.outputs
    xv = (RNG.standard_normal(x_shape) * 10).astype(dtype)
    assert_same_values(graph, after, [xv], expected=[np.sum(np.broadcast_to(xv, full), axis=axes)])


def test_simplify_broadcasts_one_element_values_from_a_scalar():
    b = Builder()
    x = b.arg((1, 1))
    graph = b.done(b.op('broadcast_to', x, shape=(3, 4)),
                   b.op('broadcast_to', b.const([2.5]), shape=(2,)))
    after = apply(passes.algebraic_simplification, graph)
    for out in after.outputs:
        node = producer(after, out)
        assert node.prim.name == 'broadcast_to' and node.inputs[0].shape == ()
    const_input = producer(after, after.outputs[1]).inputs[0]
    assert after.consts[const_input][()] == 2.5
    assert_same_values(graph, after, [np.array([[-1.5]])],
                       expected=[np.full((3, 4), -1.5), [2.5, 2.5]])


def test_simplify_drops_an_update_that_writes_a_variable_back_unchanged():
    W, V = tj.Variable(np.zeros(3)), tj.Variable(np.zeros(3))
    b = Builder()
    x = b.arg((3,))
    w, v = b.state(W), b.state(V)
    graph = b.done(updates=[(W, b.op('mul', w, b.const(1.0))), (V, b.op('add', v, x))])
    after = apply(passes.algebraic_simplification, graph)
    assert [variable for variable, _ in after.updates] == [V]
    xv, wv, vv = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), np.zeros(3)
    outs, updates = run(after, [xv], [wv, vv])
    np.testing.assert_array_equal(updates[0], xv)


def test_simplify_without_an_opportunity_changes_nothing():
    b = Builder()
    x, y = b.arg((3, 4)), b.arg((4,))
    s = b.op('add', x, y)
    t = b.op('mul', s, s)
    r = b.op('reduce_sum', b.op('exp', t), axes=(1,))
    graph = b.done(b.op('matmul', x, b.op('reshape', t, shape=(4, 3)),
                        transpose_a=False, transpose_b=False), r)
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == prims(graph)
    assert [n.outputs for n in after.nodes] == [n.outputs for n in graph.nodes]
    assert [n.inputs for n in after.nodes] == [n.inputs for n in graph.nodes]
    assert after.outputs == graph.outputs and after.consts.keys() == graph.consts.keys()
    xv, yv = x34(), RNG.standard_normal(4)
    tv = (xv + yv) ** 2
    assert_same_values(graph, after, [xv, yv], expected=[xv @ tv.reshape(4, 3),
                                                         np.exp(tv).sum(axis=1)], rtol=1e-14)


# ------------------------------------------------------------ common subexpression elimination

def test_cse_merges_identical_nodes_and_what_reads_them():
    b = Builder()
    x = b.arg((3,))
    e1, e2 = b.op('exp', x), b.op('exp', x)
    n1, n2 = b.op('neg', e1), b.op('neg', e2)  # identical once e2 is e1
    graph = b.done(b.op('add', n1, n2), n2)
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == ['exp', 'neg', 'add']
    assert after.nodes[2].inputs == [n1, n1] and after.outputs[1] is n1
    xv = np.array([0.0, 1.0, -2.0])
    assert_same_values(graph, after, [xv], expected=[-2 * np.exp(xv), -np.exp(xv)])


def test_cse_merges_nodes_that_use_the_same_value_twice():
    W = tj.Variable(np.zeros(3))
    b = Builder()
    x = b.arg((3,))
    b.state(W)
    sq1, sq2 = b.op('mul', x, x), b.op('mul', x, x)
    graph = b.done(sq1, updates=[(W, sq2)])
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == ['mul']
    assert after.outputs == [sq1] and after.updates == [(W, sq1)]
    xv = np.array([0.0, -3.0, 0.5])
    assert_same_values(graph, after, [xv], [np.zeros(3)], expected=[xv * xv],
                       expected_updates=[xv * xv])


@pytest.mark.parametrize('name, params_1, params_2', [
    ('reduce_sum', {'axes': (0,)}, {'axes': (1,)}),
    ('transpose', {'perm': (1, 0)}, {'perm': (0, 1)}),
    ('matmul', {'transpose_a': True, 'transpose_b': False},
     {'transpose_a': False, 'transpose_b': False}),
    ('slice', {'slices': ((0, 2, 1), (0, 3, 1))}, {'slices': ((1, 3, 1), (0, 3, 1))}),
    ('reshape', {'shape': (9,)}, {'shape': (9,)}),  # the only pair with equal params
])
def test_cse_does_not_merge_nodes_with_different_params(name, params_1, params_2):
    b = Builder()
    x = b.arg((3, 3))
    args = (x, x) if name == 'matmul' else (x,)
    out1, out2 = b.op(name, *args, **params_1), b.op(name, *args, **params_2)
    graph = b.done(out1, out2)
    after = apply(passes.common_subexpression_elimination, graph)
    same = params_1 == params_2
    assert prims(after) == [name] * (1 if same else 2)
    assert (after.outputs[1] is after.outputs[0]) == same
    assert_same_values(graph, after, [RNG.standard_normal((3, 3))])


def test_cse_merges_nodes_with_equal_dtype_params():
    b = Builder()
    x = b.arg((3,))
    graph = b.done(b.op('convert', x, dtype=np.dtype('float32')),
                   b.op('convert', x, dtype=np.dtype(np.float32)),
                   b.op('convert', x, dtype=np.dtype(np.int64)))
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == ['convert', 'convert']
    assert after.outputs[0] is after.outputs[1] is not after.outputs[2]
    xv = np.array([1.5, -2.5, 0.0])
    assert_same_values(graph, after, [xv], expected=[xv.astype(F32), xv.astype(F32),
                                                     xv.astype(I64)])


def test_cse_does_not_merge_different_operands_or_operand_orders():
    b = Builder()
    x, y = b.arg((3,)), b.arg((3,))
    graph = b.done(b.op('sub', x, y), b.op('sub', y, x), b.op('exp', x), b.op('exp', y))
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == ['sub', 'sub', 'exp', 'exp']
    assert len({id(v) for v in after.outputs}) == 4
    xv, yv = np.array([1.0, 2.0, 0.0]), np.array([0.5, 2.0, -1.0])
    assert_same_values(graph, after, [xv, yv], expected=[xv - yv, yv - xv, np.exp(xv),
                                                         np.exp(yv)])


def test_cse_does_not_merge_equal_constants_or_random_draws():
    b = Builder()
    x = b.arg((3,))
    c1, c2 = b.const(2.0), b.const(2.0)
    key = b.const(3, I64)
    graph = b.done(b.op('mul', x, c1), b.op('mul', x, c2),
                   b.op('random_uniform', key, shape=(3,), dtype=F64),
                   b.op('random_uniform', key, shape=(3,), dtype=F64))
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == ['mul', 'mul', 'random_uniform', 'random_uniform']
    assert after.outputs == graph.outputs
    xv = np.array([1.0, 0.0, -1.0])
    outs, _ = run(after, [xv])
    np.testing.assert_array_equal(outs[0], 2 * xv)
    np.testing.assert_array_equal(outs[2], outs[3])  # the same key draws the same numbers


def test_cse_without_duplicates_changes_nothing():
    b = Builder()
    x = b.arg((3, 4))
    e = b.op('exp', x)
    graph = b.done(b.op('reduce_sum', e, axes=(0,)), b.op('reduce_sum', e, axes=(1,)))
    after = apply(passes.common_subexpression_elimination, graph)
    assert prims(after) == prims(graph) and after.outputs == graph.outputs
    assert [n.outputs for n in after.nodes] == [n.outputs for n in graph.nodes]
    xv = x34()
    assert_same_values(graph, after, [xv], expected=[np.exp(xv).sum(0), np.exp(xv).sum(1)],
                       rtol=1e-14)


# ----------------------------------------------------------------- pooled relu gradients

def _pool_gradient_reference(r, ct, ksize, strides, padding):
    """numpy, by explicit windows: (the window maxima of r, each window's cotangent added at
    its first maximum where that maximum is positive: relu's gradient behind max pooling)."""
    grad, pooled = np.zeros_like(r), np.zeros_like(ct)
    n, h, w, c = r.shape
    geometry = [window_geometry(size, k, s, 1, padding)
                for size, k, s in zip((h, w), ksize, strides)]
    for b, i, j, ch in np.ndindex(ct.shape):
        rows, cols = [range(max(o * s - before, 0), min(o * s - before + k, size))
                      for o, s, (_, before), k, size in zip((i, j), strides, geometry, ksize,
                                                            (h, w))]
        taps = [(p, q) for p in rows for q in cols]
        p, q = taps[int(np.argmax([r[b, p, q, ch] for p, q in taps]))]
        pooled[b, i, j, ch] = r[b, p, q, ch]
        if r[b, p, q, ch] > 0:
            grad[b, p, q, ch] += ct[b, i, j, ch]
    return pooled, grad


def _relu_pool_backward(b, shape, window):
    """The graph of relu -> max_pool and relu's gradient behind the pooling's, as autodiff
    emits it: (pre-activation, cotangent, pooled, gradient, its sum over batch and space)."""
    a = b.arg(shape)
    r = b.op('relu', a)
    pooled = b.op('max_pool', r, **window)
    ct = b.arg(pooled.shape)
    grad = b.op('select', b.op('gt', r, b.const(0.0)), b.op('max_pool_grad', ct, r, **window),
                b.const(0.0))
    return a, ct, pooled, grad, b.op('reduce_sum', grad, axes=(0, 1, 2))


@pytest.mark.parametrize('shape, ksize, strides, padding', [
    ((2, 5, 5, 3), (2, 2), (2, 2), 'VALID'),   # odd size: the last row and column in no window
    ((1, 4, 6, 2), (3, 3), (1, 1), 'SAME'),    # overlapping windows over the padding
    ((2, 3, 4, 1), (2, 3), (2, 1), 'SAME'),
])
def test_pooled_relu_gradients_mask_and_sum_at_the_pooled_size(shape, ksize, strides, padding):
    """The mask reads the forward pass's pooled array, the bias sum the pooled cotangent; the
    full-size gt is dead. Ties, windows of zeros and of negatives, and equal values across a
    window included (integers in [-3, 3])."""
    b = Builder()
    window = dict(ksize=ksize, strides=strides, padding=padding)
    a, ct, pooled, grad, bias = _relu_pool_backward(b, shape, window)
    graph = b.done(pooled, grad, bias)
    after = passes.dead_code_elimination(apply(passes.pooled_relu_gradients, graph))
    assert prims(after).count('max_pool') == 1 and 'relu' in prims(after)
    made = after.producers()
    scatter = made[after.outputs[1]]
    assert scatter.prim.name == 'max_pool_grad' and scatter.inputs[1] is graph.nodes[0].outputs[0]
    mask = made[scatter.inputs[0]]
    assert mask.prim.name == 'select' and mask.inputs[1] is ct
    assert made[mask.inputs[0]].inputs[0] is pooled
    assert made[after.outputs[2]].inputs[0] is scatter.inputs[0]
    assert all(made[v].inputs[0] is not graph.nodes[0].outputs[0]
               for v in made if made[v].prim.name == 'gt')
    av = RNG.integers(-3, 4, shape).astype(F64)
    cv = RNG.standard_normal(pooled.shape)
    max_pooled, want = _pool_gradient_reference(np.maximum(av, 0), cv, ksize, strides, padding)
    assert_same_values(graph, after, [av, cv], expected=[max_pooled, want, want.sum((0, 1, 2))],
                       rtol=1e-12)


def test_pooled_relu_gradients_keep_nans_where_the_original_does():
    """A NaN pre-activation is masked (NaN > 0 is false) whether it is its window's peak (a
    first tap) or not; a NaN cotangent reaches the gradient only through a positive peak."""
    b = Builder()
    window = dict(ksize=(2, 2), strides=(2, 2), padding='VALID')
    *_, pooled, grad, bias = _relu_pool_backward(b, (1, 4, 4, 1), window)
    graph = b.done(grad, bias)
    after = apply(passes.pooled_relu_gradients, graph)
    av = np.array([[np.nan, 1, 2, np.nan], [3, 0, -1, 5], [-1, -2, 1, 1], [-3, -4, 1, 1]])
    cv = np.array([[7.0, np.nan], [np.nan, 2.0]])
    want = np.zeros((4, 4))
    want[1, 3], want[2, 2] = np.nan, 2.0   # the NaN window peak (first tap) is masked
    assert_same_values(graph, after, [av.reshape(1, 4, 4, 1), cv.reshape(1, 2, 2, 1)],
                       expected=[want.reshape(1, 4, 4, 1), [np.nan]])


def test_pooled_relu_gradients_leave_other_masks_and_sums_alone():
    """A mask of another value, a non-zero threshold, a pooled value that is not a relu, and a
    sum that keeps a spatial axis are not the pattern."""
    window = dict(ksize=(2, 2), strides=(2, 2), padding='VALID')
    b = Builder()
    a, other = b.arg((1, 4, 4, 2)), b.arg((1, 4, 4, 2))
    ct = b.arg((1, 2, 2, 2))
    r, e = b.op('relu', a), b.op('exp', a)
    scatter = b.op('max_pool_grad', ct, r, **window)
    outs = [b.op('select', b.op('gt', other, b.const(0.0)), scatter, b.const(0.0)),
            b.op('select', b.op('gt', r, b.const(0.5)), scatter, b.const(0.0)),
            b.op('select', b.op('gt', e, b.const(0.0)),
                 b.op('max_pool_grad', ct, e, **window), b.const(0.0)),
            b.op('reduce_sum', scatter, axes=(0, 1))]
    graph = b.done(*outs)
    assert prims(apply(passes.pooled_relu_gradients, graph)) == prims(graph)


def _windows_added_back(u, size, ksize, strides, dilations, padding):
    """col2im written out: each window tap of u (N, OH, OW, KH, KW, C) added at its pixel."""
    n, oh, ow, kh, kw, c = u.shape
    (_, top), (_, left) = [window_geometry(s, k, st, d, padding)
                           for s, k, st, d in zip(size, ksize, strides, dilations)]
    image = np.zeros((n,) + tuple(size) + (c,))
    for i, j, p, q in np.ndindex(oh, ow, kh, kw):
        r = i * strides[0] + p * dilations[0] - top
        col = j * strides[1] + q * dilations[1] - left
        if 0 <= r < size[0] and 0 <= col < size[1]:
            image[:, r, col] += u[:, i, j, p, q]
    return image


@pytest.mark.parametrize('size, ksize, strides, dilations, padding, transpose_b', [
    ((6, 5), (3, 3), (1, 1), (1, 1), 'VALID', True),    # a convolution's input gradient
    ((7, 6), (3, 2), (2, 1), (1, 2), 'SAME', False),   # padding, strides and dilations
    ((5, 5), (2, 2), (3, 3), (1, 1), 'VALID', True),   # pixels in no window
])
def test_products_into_images_fuse_a_product_added_back_as_windows(size, ksize, strides,
                                                                     dilations, padding,
                                                                     transpose_b):
    """col2im(reshape(a @ b)) becomes one matmul_col2im with col2im's parameters; its values
    are the windows of the product added back pixel by pixel."""
    window = dict(size=size, ksize=ksize, strides=strides, dilations=dilations, padding=padding)
    (oh, _), (ow, _) = [window_geometry(*g, padding) for g in zip(size, ksize, strides,
                                                                       dilations)]
    n, inner, c = 2, 4, 3
    b = Builder()
    a = b.arg((n * oh * ow, inner))
    w = b.arg((ksize[0] * ksize[1] * c, inner) if transpose_b else (inner, ksize[0] * ksize[1] * c))
    rows = b.op('matmul', a, w, transpose_a=False, transpose_b=transpose_b)
    image = b.op('col2im', b.op('reshape', rows, shape=(n, oh, ow) + ksize + (c,)), **window)
    graph = b.done(image)
    after = passes.dead_code_elimination(apply(passes.products_into_images, graph))
    assert prims(after) == ['matmul_col2im']
    assert after.nodes[0].inputs == [a, w]
    av, wv = RNG.standard_normal(a.shape), RNG.standard_normal(w.shape)
    u = av @ (wv.T if transpose_b else wv)
    want = _windows_added_back(u.reshape((n, oh, ow) + ksize + (c,)), **window)
    assert_same_values(graph, after, [av, wv], expected=[want], rtol=1e-12)


def test_products_into_images_leave_products_read_elsewhere_alone():
    """A product (or its reshape) that something besides col2im reads, and a product of a
    transposed left operand, stay as they are."""
    window = dict(size=(4, 4), ksize=(3, 3), strides=(1, 1), dilations=(1, 1), padding='VALID')
    b = Builder()
    a, at, w = b.arg((8, 2)), b.arg((2, 8)), b.arg((2, 9))
    shared = b.op('matmul', a, w, transpose_a=False, transpose_b=False)
    transposed = b.op('matmul', at, w, transpose_a=True, transpose_b=False)
    reshaped = b.op('reshape', b.op('matmul', a, w, transpose_a=False, transpose_b=False),
                    shape=(2, 2, 2, 3, 3, 1))
    outs = [b.op('col2im', b.op('reshape', shared, shape=(2, 2, 2, 3, 3, 1)), **window), shared,
            b.op('col2im', b.op('reshape', transposed, shape=(2, 2, 2, 3, 3, 1)), **window),
            b.op('col2im', reshaped, **window), reshaped]
    graph = b.done(*outs)
    assert prims(apply(passes.products_into_images, graph)) == prims(graph)


@pytest.mark.parametrize('shape, ksize, strides, padding', [
    ((2, 6, 6, 3), (2, 2), (2, 2), 'VALID'),
    ((2, 5, 4, 2), (3, 3), (1, 1), 'SAME'),    # overlapping windows
    ((1, 5, 5, 2), (2, 2), (3, 3), 'VALID'),   # pixels in no window
])
def test_pool_gradient_products_fuse_a_filter_gradient_behind_max_pooling(shape, ksize,
                                                                           strides, padding):
    """a.T @ reshape(max_pool_grad(ct, x)) becomes one pool_grad_matmul of a, ct and x; its
    values are a.T times the gradient placed at each window's first maximum (ties included:
    integers)."""
    window = dict(ksize=ksize, strides=strides, padding=padding)
    pixels = int(np.prod(shape[:3]))
    b = Builder()
    a, x = b.arg((pixels, 4)), b.arg(shape)
    ct = b.arg(REGISTRY['max_pool'].check(x, **window)[0][0])
    rows = b.op('reshape', b.op('max_pool_grad', ct, x, **window), shape=(pixels, shape[3]))
    graph = b.done(b.op('matmul', a, rows, transpose_a=True, transpose_b=False))
    after = passes.dead_code_elimination(apply(passes.pool_gradient_products, graph))
    assert prims(after) == ['pool_grad_matmul'] and after.nodes[0].inputs == [a, ct, x]
    av, xv = RNG.standard_normal(a.shape), RNG.integers(-2, 3, shape).astype(F64)
    cv = RNG.standard_normal(ct.shape)
    # the reference places cotangents at positive maxima only: shifted up, the same maxima
    _, placed = _pool_gradient_reference(xv - xv.min() + 1, cv, ksize, strides, padding)
    assert_same_values(graph, after, [av, xv, cv], expected=[av.T @ placed.reshape(pixels, -1)],
                       rtol=1e-12)


def test_pool_gradient_products_leave_other_products_alone():
    """A pooling gradient read elsewhere too, a product not transposed on the left, and one
    transposed on the right are not the pattern."""
    window = dict(ksize=(2, 2), strides=(2, 2), padding='VALID')
    b = Builder()
    a, x, ct = b.arg((32, 3)), b.arg((2, 4, 4, 4)), b.arg((2, 2, 2, 4))
    grad = b.op('max_pool_grad', ct, x, **window)
    rows = b.op('reshape', grad, shape=(32, 4))
    other = b.op('reshape', b.op('max_pool_grad', ct, x, **window), shape=(32, 4))
    outs = [b.op('matmul', a, rows, transpose_a=True, transpose_b=False), grad,
            b.op('matmul', other, b.arg((4, 2)), transpose_a=False, transpose_b=False),
            b.op('matmul', b.arg((3, 4)), other, transpose_a=False, transpose_b=True)]
    graph = b.done(*outs)
    assert prims(apply(passes.pool_gradient_products, graph)) == prims(graph)


# ----------------------------------------------------------------- the pipeline and verify()

def test_the_pipeline_cleans_up_naive_gradient_ir():
    """seed * 1, a reshape that changes nothing, a transpose into matmul, a repeated node:
    what autodiff emits, reduced by the default pipeline to the essential work."""
    b = Builder()
    a, m = b.arg((2, 3)), b.arg((2, 4))
    seed = b.op('mul', b.const(np.ones((3, 4))), b.const(1.0))      # folds to a constant
    at = b.op('transpose', a, perm=(1, 0))
    g1 = b.op('matmul', at, m, transpose_a=False, transpose_b=False)  # -> transpose_a=True
    g2 = b.op('matmul', at, m, transpose_a=False, transpose_b=False)  # CSE
    scaled = b.op('mul', b.op('reshape', g1, shape=(3, 4)), seed)     # both identities
    graph = b.done(b.op('add', scaled, g2))
    after = passes.optimize(graph)
    after.verify()
    assert prims(after) == ['matmul', 'add']
    assert after.nodes[0].inputs == [a, m] and after.nodes[0].params['transpose_a'] is True
    assert after.nodes[1].inputs == [after.nodes[0].outputs[0]] * 2
    assert after.consts == {}
    av, mv = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 4))
    assert_same_values(graph, after, [av, mv], expected=[2 * av.T @ mv], rtol=1e-14)


def test_optimize_verifies_the_result_of_every_pass():
    """The conftest fixture: a pass that breaks the graph fails the test that optimises."""
    assert all(getattr(p, '_verifies', False) for _, p in passes.PIPELINE)
    b = Builder()
    x = b.arg((3,))
    graph = b.done(b.op('exp', x))

    def breaks_shapes(g):
        g = passes.dead_code_elimination(g)
        g.nodes[0] = ir.Node(g.nodes[0].prim, [x], {}, [ir.Var((4,), F64)])
        g.outputs = [g.nodes[0].outputs[0]]
        return g

    def drops_a_producer(g):
        g = passes.dead_code_elimination(g)
        g.nodes = []
        return g

    for name, broken in (('shapes', breaks_shapes), ('producer', drops_a_producer)):
        with pytest.raises(AssertionError, match=f"after pass '{name}'"):
            passes.optimize(graph, [('dce', passes.dead_code_elimination), (name, broken)])
    assert prims(passes.optimize(graph, [('dce', passes.dead_code_elimination)])) == ['exp']


def _unslice_sum(b, parts, shape, order):
    """b's graph of sum(unslice(part, shape, slices)) in `order`, and its numpy value."""
    total, values, want = None, [], np.zeros(shape)
    for k in order:
        slices = parts[k]
        size = tuple(stop - start for start, stop, _ in slices)
        x = b.arg(size)
        value = RNG.standard_normal(size)
        values.append(value)
        want[tuple(slice(*s) for s in slices)] += value
        u = b.op('unslice', x, shape=shape, slices=slices)
        total = u if total is None else b.op('add', total, u)
    return total, values, want


def test_simplify_joins_a_sum_of_adjacent_unslices_into_one_concat():
    """The gradient of gates split from one array: four pads summed in any order become one
    concat (no zero-filled pad, no add); a partial tiling keeps one unslice of the concat."""
    gates = [((0, 3, 1), (2 * k, 2 * k + 2, 1)) for k in range(4)]
    b = Builder()
    whole, values, want = _unslice_sum(b, gates, (3, 8), [3, 2, 0, 1])
    graph = b.done(whole)
    after = passes.dead_code_elimination(apply(passes.algebraic_simplification, graph))
    assert prims(after) == ['concat']
    assert_same_values(graph, after, values, expected=[want])
    b = Builder()
    partial, values, want = _unslice_sum(b, [((1, 3, 1), (0, 2, 1)), ((1, 3, 1), (2, 5, 1)),
                                             ((1, 3, 1), (6, 8, 1))], (4, 8), [2, 1, 0])
    graph = b.done(partial)
    after = passes.dead_code_elimination(apply(passes.algebraic_simplification, graph))
    assert sorted(prims(after)) == ['add', 'concat', 'unslice', 'unslice']
    assert_same_values(graph, after, values, expected=[want])


@pytest.mark.parametrize('parts', [
    [((0, 3, 1), (0, 3, 1)), ((0, 3, 1), (2, 5, 1))],     # overlapping
    [((0, 3, 1), (0, 2, 1)), ((0, 3, 1), (3, 5, 1))],     # a gap between them
    [((0, 1, 1), (0, 2, 1)), ((1, 3, 1), (2, 4, 1))]])    # differing on two axes
def test_simplify_keeps_sums_of_unslices_that_do_not_touch(parts):
    b = Builder()
    total, values, want = _unslice_sum(b, parts, (3, 5), [0, 1])
    graph = b.done(total)
    after = apply(passes.algebraic_simplification, graph)
    assert prims(after) == prims(graph)
    assert_same_values(graph, after, values, expected=[want])



# ----------------------------------------------------------------- scan accumulations

def _scan(b, body, consts, carry, xs, reverse=False):
    """Append a scan node running `body` to b's graph; its outputs."""
    params = dict(body=body, num_consts=len(consts), num_carry=len(carry),
                  length=xs[0].shape[0], reverse=reverse)
    inputs = list(consts) + list(carry) + list(xs)
    outs = [ir.Var(*aval) for aval in REGISTRY['scan'].check(*inputs, **params)]
    b.graph.nodes.append(ir.Node(REGISTRY['scan'], inputs, params, outs))
    return outs


def _op(x, transposed):
    return x.T if transposed else x


def _summed_product_scan(transpose_a, transpose_b, q_row, reverse=False, zero_init=False,
                         use_q=False):
    """A scan carrying h = tanh(h @ w + x_i) and acc + op(h) @ op(q_i) (q_i the scanned row,
    or with `use_q` the intermediate h @ w + q_i): the graph, its arguments and numpy's
    (h, acc)."""
    acc_shape = (_op(np.empty((2, 3)), transpose_a) @ _op(np.empty(q_row), transpose_b)).shape
    body = Builder()
    w, h, acc, x, q = (body.arg(s) for s in ((3, 3), (2, 3), acc_shape, (2, 3), q_row))
    hw = body.op('matmul', h, w, transpose_a=False, transpose_b=False)
    operand = body.op('add', hw, q) if use_q else q
    term = body.op('matmul', h, operand, transpose_a=transpose_a, transpose_b=transpose_b)
    body = body.done(body.op('tanh', body.op('add', hw, x)), body.op('add', acc, term))
    b = Builder()
    w, h0 = b.arg((3, 3)), b.arg((2, 3))
    init = b.op('broadcast_to', b.const(0.0), shape=acc_shape) if zero_init else b.arg(
        acc_shape)
    xs, qs = b.arg((5, 2, 3)), b.arg((5,) + q_row)
    graph = b.done(*_scan(b, body, [w], [h0, init], [xs, qs], reverse))
    values = [RNG.standard_normal(v.shape) for v in graph.inputs]
    wv, hv = values[:2]
    accv = np.zeros(acc_shape) if zero_init else values[2]
    xv, qv = values[-2:]
    for i in (range(4, -1, -1) if reverse else range(5)):
        operand = hv @ wv + qv[i] if use_q else qv[i]
        accv = accv + _op(hv, transpose_a) @ _op(operand, transpose_b)
        hv = np.tanh(hv @ wv + xv[i])
    return graph, values, [hv, accv]


def _scan_node(graph):
    (node,) = [n for n in graph.nodes if n.prim.name == 'scan']
    return node


@pytest.mark.parametrize('transpose_a, transpose_b, q_row', [
    (True, False, (2, 4)), (False, False, (3, 4)), (False, True, (4, 3)), (True, True, (4, 2))])
@pytest.mark.parametrize('reverse', [False, True])
def test_hoist_sums_a_carried_matmul_as_one_matmul_after_the_scan(transpose_a, transpose_b,
                                                                  q_row, reverse):
    """acc + op(h_i) @ op(q_i) over the iterations: the carry leaves the loop, h_i is stacked
    as an output, q_i is read from the scanned input, and one matmul over all rows follows."""
    graph, values, want = _summed_product_scan(transpose_a, transpose_b, q_row, reverse)
    after = apply(passes.hoist_scan_accumulations, graph)
    scan = _scan_node(after)
    assert scan.params['num_carry'] == 1 and len(scan.outputs) == 2
    assert prims(scan.params['body']) == ['matmul', 'add', 'tanh']
    assert prims(after)[-1] == 'add' and prims(after).count('matmul') == 1
    (dot,) = [n for n in after.nodes if n.prim.name == 'matmul']
    contracted = 2 if transpose_a else 3   # h's rows or columns, of every iteration at once
    assert dot.inputs[0].shape[1 - transpose_a] == 5 * contracted
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)


def test_hoist_stacks_an_intermediate_and_drops_the_add_of_zeros():
    """The recurrent kernel's gradient: h^T @ z_i with z_i computed in the body (stacked as a
    new output), summed from zeros (no add after the matmul)."""
    graph, values, want = _summed_product_scan(True, False, (2, 3), zero_init=True,
                                               use_q=True)
    after = passes.dead_code_elimination(apply(passes.hoist_scan_accumulations, graph))
    scan = _scan_node(after)
    assert len(scan.outputs) == 3 and scan.outputs[2].shape == (5, 2, 3)
    assert [v.shape for v in scan.params['body'].outputs] == [(2, 3), (2, 3), (2, 3)]
    assert prims(after) == ['scan', 'reshape', 'reshape', 'matmul']
    assert after.outputs[1] is after.nodes[-1].outputs[0]
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)


def _edit_body(graph, edit):
    """The graph of one scan with its body rebuilt by `edit(builder, inputs) -> outputs`."""
    node = _scan_node(graph)
    body = Builder()
    ins = [body.arg(v.shape) for v in node.params['body'].inputs]
    b = Builder()
    b.graph.inputs = list(graph.inputs)
    return b.done(*_scan(b, body.done(*edit(body, ins)), node.inputs[:1], node.inputs[1:3],
                         node.inputs[3:]))


@pytest.mark.parametrize('case', ['acc-read-twice', 'invariant-operand', 'not-a-matmul',
                                  'sum-also-stacked'])
def test_hoist_leaves_accumulations_it_cannot_move_alone(case):
    graph, values, _ = _summed_product_scan(True, False, (2, 3))

    def edit(b, ins):
        w, h, acc, x, q = ins
        new_h = b.op('tanh', b.op('add', b.op('matmul', h, w, transpose_a=False,
                                              transpose_b=False), x))
        term = b.op('matmul', h, b.const(np.ones((2, 3))) if case == 'invariant-operand' else q,
                    transpose_a=True,
                    transpose_b=False)
        if case == 'not-a-matmul':
            term = b.op('exp', b.op('matmul', h, q, transpose_a=True, transpose_b=False))
        total = b.op('add', acc, term)
        if case == 'acc-read-twice':
            new_h = b.op('add', new_h, b.op('reduce_sum', acc, axes=(0, 1)))
        return [new_h, total] + ([total] if case == 'sum-also-stacked' else [])

    graph = _edit_body(graph, edit)
    after = apply(passes.hoist_scan_accumulations, graph)
    assert prims(after) == prims(graph)
    assert _scan_node(after).params['num_carry'] == 2
    assert_same_values(graph, after, values)


def _rnn_loss(w, u, xs):
    def cell(h, x):
        h = tj.tanh(tj.matmul(x, w) + tj.matmul(h, u))
        return h, h
    _, hs = tj.lax.scan(cell, tj.zeros((2, 3), tj.float64), xs)
    return tj.reduce_sum(tj.sin(hs))


def _dots_in_loops(source):
    """(matmuls inside the kernel's loops, matmuls in the kernel outside them)."""
    kernel = source[source.index('def kernel'):].splitlines()
    looped = [line for line in kernel if line.startswith(' ' * 8)]
    return (sum(line.count('dot') for line in looped),
            sum(line.count('dot') for line in kernel) - sum(line.count('dot') for line in looped))


@pytest.mark.compiled
def test_a_compiled_rnn_gradient_sums_its_weight_gradients_after_the_loop():
    """End to end: the gradients of an RNN's input and recurrent kernels, compiled, equal
    finite differences, and the loops hold only the products that carry values from one
    step to the next (x_i @ w, h @ u forward; the cotangent through u and w backward)."""
    xs = RNG.standard_normal((4, 2, 5))
    w, u = 0.5 * RNG.standard_normal((5, 3)), 0.5 * RNG.standard_normal((3, 3))
    check_grads(_rnn_loss, [w, u, xs], order=1, modes=('function',))
    grads = tj.function(tj.grad(_rnn_loss, argnums=(0, 1, 2)))
    assert _dots_in_loops(grads.lower(w, u, xs).source) == (2 + 2, 2)


# ----------------------------------------------------------------- transposed loop constants

def _transposed_constant_scan(reverse):
    """A scan carrying h = tanh(h @ w.T + x_i) + h @ w (w a loop constant read both ways): the
    graph, its arguments and numpy's final h."""
    body = Builder()
    w, h, x = body.arg((3, 3)), body.arg((2, 3)), body.arg((2, 3))
    across = body.op('matmul', h, w, transpose_a=False, transpose_b=True)
    along = body.op('matmul', h, w, transpose_a=False, transpose_b=False)
    body = body.done(body.op('add', body.op('tanh', body.op('add', across, x)), along))
    b = Builder()
    w, h0, xs = b.arg((3, 3)), b.arg((2, 3)), b.arg((5, 2, 3))
    graph = b.done(*_scan(b, body, [w], [h0], [xs], reverse))
    wv, hv, xv = values = [RNG.standard_normal(v.shape) for v in graph.inputs]
    for i in (range(4, -1, -1) if reverse else range(5)):
        hv = np.tanh(hv @ wv.T + xv[i]) + hv @ wv
    return graph, values, [hv]


@pytest.mark.parametrize('reverse', [False, True])
def test_a_loop_constant_read_transposed_is_transposed_once_before_the_loop(reverse):
    graph, values, want = _transposed_constant_scan(reverse)
    after = apply(passes.transpose_loop_constants, graph)
    assert prims(after) == ['transpose', 'scan']
    transposed, scan = after.nodes
    assert transposed.inputs == [graph.inputs[0]] and scan.params['num_consts'] == 2
    assert scan.inputs[:2] == [graph.inputs[0], transposed.outputs[0]]
    body = scan.params['body']
    across, along = [n for n in body.nodes if n.prim.name == 'matmul']
    assert across.inputs[1] is body.inputs[1] and not across.params['transpose_b']
    assert along.inputs[1] is body.inputs[0]
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)
    assert prims(apply(passes.transpose_loop_constants, after)) == prims(after)   # once


def test_a_transposed_carry_or_row_stays_in_the_loop():
    """Only constants: a carry or a scanned row changes per iteration (and a constant read
    untransposed, or on the left, needs no copy)."""
    body = Builder()
    w, h, x = body.arg((2, 2)), body.arg((2, 2)), body.arg((2, 2))
    products = [body.op('matmul', h, x, transpose_a=False, transpose_b=True),
                body.op('matmul', x, h, transpose_a=False, transpose_b=True),
                body.op('matmul', h, w, transpose_a=False, transpose_b=False),
                body.op('matmul', w, h, transpose_a=True, transpose_b=False)]
    total = products[0]
    for p in products[1:]:
        total = body.op('add', total, p)
    body = body.done(body.op('tanh', total))
    b = Builder()
    w0, h0, xs = b.arg((2, 2)), b.arg((2, 2)), b.arg((4, 2, 2))
    graph = b.done(*_scan(b, body, [w0], [h0], [xs]))
    after = apply(passes.transpose_loop_constants, graph)
    scan = _scan_node(after)
    assert prims(after) == ['scan'] and scan.params['num_consts'] == 1
    assert str(scan.params['body']) == str(body)


def _loop_products_of_transposes(source):
    """The matmuls inside the kernel's loops whose right operand is a transpose."""
    kernel = source[source.index('def kernel'):].splitlines()
    return [line for line in kernel if line.startswith(' ' * 8)
            and re.search(r'K\.dot(_into)?\([^,]+, [^,]+\.T[,)]', line)]


@pytest.mark.compiled
def test_compiled_loops_read_no_transposed_constants():
    """End to end: an RNN's gradient (the cotangent through u backward is `g @ u.T`) and a
    while loop through a captured matrix transposed equal numpy, and no product inside their
    loops reads a transpose: each was made once, before its loop."""
    xs = RNG.standard_normal((4, 2, 5))
    w, u = 0.5 * RNG.standard_normal((5, 3)), 0.5 * RNG.standard_normal((3, 3))
    grads = tj.function(tj.grad(_rnn_loss, argnums=(0, 1, 2)))
    check_grads(_rnn_loss, [w, u, xs], order=1, modes=('function',))
    assert _loop_products_of_transposes(grads.lower(w, u, xs).source) == []

    def repeat(h, m):
        return tj.while_loop(lambda i, h: i < 3,
                             lambda i, h: (i + 1, tj.tanh(tj.matmul(h, m, transpose_b=True))),
                             (tj.constant(0), h))[1]
    h, m = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 3))
    want = h
    for _ in range(3):
        want = np.tanh(want @ m.T)
    compiled = tj.function(repeat)
    np.testing.assert_allclose(compiled(h, m).numpy(), want, rtol=1e-12)
    assert _loop_products_of_transposes(compiled.lower(h, m).source) == []


# ----------------------------------------------------------------- slices before elementwise

def _gates(case):
    """tanh(p + q) * 2 (p, q of shape (3, 8)) read as column blocks: the graph, its
    arguments and numpy's blocks."""
    b = Builder()
    p, q = b.arg((3, 8)), b.arg((3, 8)) if case != 'broadcast' else b.arg((8,))
    whole = b.op('mul', b.op('tanh', b.op('add', p, q)), b.const(2.0))
    boxes = {'disjoint': [(0, 4), (4, 8)], 'overlapping': [(0, 5), (4, 8)],
             'broadcast': [(0, 4), (4, 8)], 'also-read-whole': [(0, 4), (4, 8)]}[case]
    blocks = [b.op('slice', whole, slices=((0, 3, 1), (start, stop, 1)))
              for start, stop in boxes]
    extra = [b.op('reduce_sum', whole, axes=(0, 1))] if case == 'also-read-whole' else []
    graph = b.done(*[b.op('exp', block) for block in blocks], *extra)
    pv, qv = values = [RNG.standard_normal(v.shape) for v in graph.inputs]
    full = np.tanh(pv + qv) * 2.0
    want = [np.exp(full[:, start:stop]) for start, stop in boxes]
    return graph, values, want + ([full.sum()] if extra else [])


def test_disjoint_slices_of_an_elementwise_result_are_computed_from_the_operands_blocks():
    graph, values, want = _gates('disjoint')
    after = passes.dead_code_elimination(apply(passes.slices_before_elementwise, graph))
    assert prims(after).count('add') == 2 and prims(after).count('slice') == 4
    for node in after.nodes:
        if node.prim.name == 'slice':
            assert node.inputs[0] in graph.inputs            # blocks of the arguments
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)


def test_slices_stop_at_an_operand_broadcast_by_the_op():
    """p + q with q a row broadcast over p: the sum stays whole, the ops after it per block."""
    graph, values, want = _gates('broadcast')
    after = passes.dead_code_elimination(apply(passes.slices_before_elementwise, graph))
    (add,) = [n for n in after.nodes if n.prim.name == 'add']
    slices = [n for n in after.nodes if n.prim.name == 'slice']
    assert len(slices) == 2 and all(n.inputs[0] is add.outputs[0] for n in slices)
    assert prims(after).count('tanh') == 2
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)


@pytest.mark.parametrize('case', ['overlapping', 'also-read-whole'])
def test_slices_stay_after_an_elementwise_op_that_would_be_computed_twice(case):
    graph, values, want = _gates(case)
    after = apply(passes.slices_before_elementwise, graph)
    assert prims(after) == prims(graph)
    assert_same_values(graph, after, values, expected=want, rtol=1e-12)


def _dense_relu_backward(b, x_shape=(5, 3), units=4, reshape=None):
    """A Dense layer with relu and relu's gradient of the product that makes its cotangent, as
    autodiff emits them: (relu output, masked cotangent), the product perhaps reshaped."""
    x, w, bias = b.arg(x_shape), b.arg((x_shape[1], units)), b.arg((units,))
    product = b.op('matmul', x, w, transpose_a=False, transpose_b=False)
    rows = b.op('reshape', product, shape=reshape) if reshape else product
    r = b.op('relu', b.op('add', rows, bias))
    d, w2 = b.arg((x_shape[0], 2)), b.arg((units, 2))
    ct = b.op('matmul', d, w2, transpose_a=False, transpose_b=True)
    masked = b.op('select', b.op('gt', b.op('reshape', r, shape=(x_shape[0], units))
                                 if reshape else r, b.const(0.0)), ct, b.const(0.0))
    return [x, w, bias, d, w2], r, masked


def _small_ints(*shapes):
    return [RNG.integers(-2, 3, shape).astype(F64) for shape in shapes]


@pytest.mark.parametrize('reshape', [None, (5, 1, 4)])
def test_product_epilogues_fuse_bias_relu_and_relus_gradient(reshape):
    """relu(x @ w + bias) and select(r > 0, d @ w2.T, 0) each become one matmul_epilogue (the
    first reshaped back when its rows were reshaped); values equal numpy's, relu's ties at 0
    included (integer values)."""
    b = Builder()
    args, r, masked = _dense_relu_backward(b, reshape=reshape)
    graph = b.done(r, masked)
    after = passes.dead_code_elimination(apply(passes.product_epilogues, graph))
    fused = [n for n in after.nodes if n.prim.name == 'matmul_epilogue']
    assert [n.params['epilogue'] for n in fused] == ['bias_relu', 'relu_mask']
    assert 'relu' not in prims(after) and 'add' not in prims(after)
    assert fused[1].params['transpose_b'] and fused[1].inputs[2].shape == (5, 4)
    x, w, bias, d, w2 = values = _small_ints((5, 3), (3, 4), (4,), (5, 2), (4, 2))
    relu = np.maximum(x @ w + bias, 0)
    assert (x @ w + bias == 0).any() and (relu == 0).any()
    assert_same_values(graph, after, values, expected=[
        relu.reshape(reshape or relu.shape), np.where(relu > 0, d @ w2.T, 0)])


def test_product_epilogues_fuse_a_bias_read_by_more_than_a_relu():
    """bias + x @ w (bias first) read twice becomes one 'bias' epilogue that both read."""
    b = Builder()
    x, w, bias = b.arg((4, 3)), b.arg((3, 5)), b.arg((5,))
    biased = b.op('add', bias, b.op('matmul', x, w, transpose_a=False, transpose_b=False))
    graph = b.done(b.op('relu', biased), b.op('exp', biased))
    after = passes.dead_code_elimination(apply(passes.product_epilogues, graph))
    assert prims(after) == ['matmul_epilogue', 'relu', 'exp']
    assert after.nodes[0].params['epilogue'] == 'bias'
    xv, wv, bv = _small_ints((4, 3), (3, 5), (5,))
    assert_same_values(graph, after, [xv, wv, bv], expected=[
        np.maximum(xv @ wv + bv, 0), np.exp(xv @ wv + bv)], rtol=1e-15)


def test_product_epilogues_leave_other_patterns_alone():
    """A product read twice, a bias along the rows or of the product's own shape, an integer
    product, a reshape that moves the columns, a threshold other than 0, a mask that keeps the
    other operand, and a relu of a sum of products are not the pattern."""
    b = Builder()
    x, w = b.arg((4, 3)), b.arg((3, 6))
    mm = lambda p, q: b.op('matmul', p, q, transpose_a=False, transpose_b=False)  # noqa: E731
    shared = mm(x, w)
    xi, wi = b.arg((4, 3), I64), b.arg((3, 6), I64)
    y = b.arg((4, 6))
    outs = [b.op('relu', b.op('add', shared, b.arg((6,)))), b.op('exp', shared),
            b.op('add', mm(x, w), b.arg((4, 1))),
            b.op('add', mm(x, w), b.arg((4, 6))),
            b.op('relu', b.op('add', mm(xi, wi), b.arg((6,), I64))),
            b.op('add', b.op('reshape', mm(x, w), shape=(8, 3)), b.arg((3,))),
            b.op('select', b.op('gt', y, b.const(0.5)), mm(x, w), b.const(0.0)),
            b.op('select', b.op('gt', y, b.const(0.0)), b.const(0.0), mm(x, w)),
            b.op('relu', b.op('add', mm(x, w), mm(x, w)))]
    graph = b.done(*outs)
    assert prims(apply(passes.product_epilogues, graph)) == prims(graph)

"""Sparse gradients and row updates: IndexedSlices by TF's rules, Variable scatters, optimizers
that touch only the rows looked up, and keras.layers.Embedding against TF fixtures.

References: numpy written here, TF's rules as observed in TF 2.21 (Keras 3.15), and
tests/fixtures/embedding.npz (made by tests/fixtures/make_embedding.py with TF). Tests marked
`compiled` build a few small kernels (one per optimizer and one scatter program).
"""
import os
import re

import numpy as np
import pytest

import tracejit as tj
import tracejit.compat.v1 as v1
from tracejit import passes
from tracejit.errors import InvalidArgumentError

FIXTURES = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'embedding.npz'))
TABLE = np.arange(24, dtype=np.float32).reshape(8, 3) / 10
IDS = np.array([[0, 3, 3], [7, 0, 1]], np.int32)          # a repeated id, id 0, the last id
LOOKED_UP = sorted(set(IDS.ravel()))


def _dense_of(indices, values, shape):
    out = np.zeros(shape, values.dtype)
    for i, row in zip(np.ravel(indices), values.reshape((-1,) + tuple(shape[1:]))):
        out[i] += row
    return out


# ---------------------------------------------------------------------------- IndexedSlices

def test_gather_gradients_are_indexed_slices_by_tf_rules():
    x = tj.constant(TABLE)
    v = tj.Variable(TABLE)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        of_tensor = tj.reduce_sum(tj.gather(x, [0, 2, 0]))
        of_variable = tj.reduce_sum(tj.nn.embedding_lookup(v, IDS) * 2.0)
        two_lookups = tj.reduce_sum(tj.gather(v, [5, 2])) + tj.reduce_sum(tj.gather(v, [5]))
        with_dense = tj.reduce_sum(tj.gather(v, [0, 2])) + tj.reduce_sum(v * 2.0)
        through_an_op = tj.reduce_sum(tj.gather(v * 1.0, [0, 2]))
        along_axis_1 = tj.reduce_sum(tj.gather(v, [0, 2], axis=1))
    grad = tape.gradient(of_tensor, x)
    assert isinstance(grad, tj.IndexedSlices) and grad.shape == (8, 3)
    np.testing.assert_array_equal(grad.indices.numpy(), [0, 2, 0])
    grad = tape.gradient(of_variable, v)      # one row per id, repeats kept, in id order
    np.testing.assert_array_equal(grad.indices.numpy(), IDS.ravel())
    np.testing.assert_array_equal(grad.values.numpy(), np.full((6, 3), 2.0, np.float32))
    np.testing.assert_array_equal(grad.dense_shape.numpy(), [8, 3])
    assert grad.dense_shape.dtype == tj.int32
    grad = tape.gradient(two_lookups, v)      # slices of slices concatenate
    np.testing.assert_array_equal(grad.indices.numpy(), [5, 2, 5])
    for dense in (with_dense, through_an_op, along_axis_1):
        assert isinstance(tape.gradient(dense, v), tj.Tensor)
    np.testing.assert_array_equal(tape.gradient(with_dense, v).numpy(),
                                  2.0 + _dense_of([0, 2], np.ones((2, 3), np.float32), (8, 3)))


def test_indexed_slices_convert_to_dense_but_have_no_arithmetic():
    s = tj.IndexedSlices(tj.ones((3, 2)), tj.constant([1, 1, 0]), [4, 2])
    dense = np.array([[1, 1], [2, 2], [0, 0], [0, 0]], np.float32)
    np.testing.assert_array_equal(tj.convert_to_tensor(s).numpy(), dense)
    np.testing.assert_array_equal(tj.multiply(s, 2.0).numpy(), 2 * dense)
    np.testing.assert_array_equal(np.asarray(-s), -dense)
    assert isinstance(-s, tj.IndexedSlices) and s.dtype == tj.float32
    with pytest.raises(TypeError):
        s * 2.0
    with pytest.raises(TypeError):
        s + s
    with pytest.raises(InvalidArgumentError, match='dense_shape'):
        tj.convert_to_tensor(tj.IndexedSlices(tj.ones((1, 2)), tj.constant([0])))
    with pytest.raises(tj.errors.DTypeError, match='integers'):
        tj.IndexedSlices(tj.ones((1, 2)), tj.constant([0.0]), [2, 2])


def test_jax_style_gradients_of_a_gather_are_dense():
    grad = tj.grad(lambda t: tj.reduce_sum(tj.gather(t, [1, 1])))(TABLE)
    assert isinstance(grad, tj.Tensor)
    np.testing.assert_array_equal(grad.numpy(), _dense_of([1, 1], np.ones((2, 3)), (8, 3)))


@pytest.mark.compiled
def test_slices_inside_compiled_functions_and_tf_gradients():
    v = tj.Variable(TABLE)

    @tj.function
    def grads(ids):
        with tj.GradientTape() as tape:
            loss = tj.reduce_sum(tj.square(tj.nn.embedding_lookup(v, ids)))
        by_tape = tape.gradient(loss, v)
        by_gradients = tj.gradients(tj.reduce_sum(tj.gather(v.value(), ids) * 3.0), v.value())[0]
        assert isinstance(by_tape, tj.IndexedSlices) and isinstance(by_gradients,
                                                                    tj.IndexedSlices)
        return by_tape, by_gradients

    graph = grads.trace(IDS).graph
    assert 'scatter_add' not in str(graph)     # carried as slices, never made dense
    by_tape, by_gradients = grads(IDS)
    assert isinstance(by_tape, tj.IndexedSlices) and by_tape.shape == (8, 3)
    np.testing.assert_array_equal(by_tape.indices.numpy(), IDS.ravel())
    np.testing.assert_allclose(by_tape.values.numpy(), 2 * TABLE[IDS.ravel()], rtol=1e-6)
    np.testing.assert_array_equal(by_gradients.values.numpy(), np.full((6, 3), 3.0))


# ---------------------------------------------------------------------------- scatters

def _scatter_ref(table, indices, rows, combine):
    out = table.copy()
    for i, row in zip(indices, rows):
        out[i] = combine(out[i], row)
    return out


ROWS = np.arange(12, dtype=np.float32).reshape(4, 3) - 5


@pytest.mark.parametrize('method, combine', [
    ('scatter_update', lambda old, new: new), ('scatter_add', lambda old, new: old + new),
    ('scatter_sub', lambda old, new: old - new), ('scatter_max', np.maximum),
    ('scatter_min', np.minimum)])
def test_variable_scatters_match_numpy(method, combine):
    indices = np.array([0, 5, 5, 7])                  # id 0, a repeat, the last row
    v = tj.Variable(TABLE)
    result = getattr(v, method)(tj.IndexedSlices(tj.constant(ROWS), tj.constant(indices)))
    assert result is v
    np.testing.assert_array_equal(v.numpy(), _scatter_ref(TABLE, indices, ROWS, combine))


def test_scatter_nd_and_compat_v1_scatters_match_numpy():
    v = tj.Variable(TABLE)
    v.scatter_nd_update([[1, 2], [7, 0]], [10.0, 20.0])
    want = TABLE.copy()
    want[1, 2], want[7, 0] = 10.0, 20.0
    np.testing.assert_array_equal(v.numpy(), want)
    v.scatter_nd_add([[3], [3]], [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    want[3] += 3.0
    np.testing.assert_array_equal(v.numpy(), want)
    v1.scatter_update(v, 2, [9.0, 9.0, 9.0])
    v1.scatter_add(v, [[4, 4]], [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    want[2], want[4] = 9.0, want[4] + 2.0
    np.testing.assert_array_equal(v.numpy(), want)
    np.testing.assert_array_equal(
        tj.tensor_scatter_nd_update(tj.zeros((3, 2)), [[0], [2]], [[1.0, 1.0], [2.0, 2.0]]),
        [[1, 1], [0, 0], [2, 2]])
    np.testing.assert_array_equal(tj.tensor_scatter_nd_add(tj.ones((2, 2)), [[0, 1], [0, 1]],
                                                           [1.0, 2.0]), [[1, 4], [1, 1]])
    np.testing.assert_array_equal(tj.scatter_nd([[1], [3], [1]], [5, 6, 7], [4]), [0, 12, 0, 6])


def test_compat_v1_scatters_in_a_session():
    graph = v1.Graph()
    with graph.as_default():
        v = v1.Variable(np.zeros((4, 2), np.float32))
        add = v1.scatter_add(v, [1, 1, 3], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            np.testing.assert_array_equal(sess.run(add), [[0, 0], [4, 6], [0, 0], [5, 6]])


@pytest.mark.parametrize('bad', [8, -1])
def test_out_of_range_scatter_and_lookup_ids_raise_and_change_nothing(bad):
    v = tj.Variable(TABLE)
    for call in (lambda: v.scatter_add(tj.IndexedSlices(tj.ones((2, 3)), tj.constant([1, bad]))),
                 lambda: v.scatter_nd_update([[bad, 0]], [1.0]),
                 lambda: v1.scatter_update(v, [bad], [[1.0, 1.0, 1.0]]),
                 lambda: tj.nn.embedding_lookup(v, [[0, bad]])):
        with pytest.raises(InvalidArgumentError, match='indices|ids'):
            call()
    np.testing.assert_array_equal(v.numpy(), TABLE)
    with pytest.raises(TypeError, match='sparse_delta'):
        v.scatter_update(tj.ones((1, 3)))


@pytest.mark.compiled
def test_compiled_scatters_write_rows_in_place_in_program_order():
    v = tj.Variable(TABLE)

    @tj.function
    def step(ids, rows):
        before = tj.reduce_sum(v)
        v.scatter_add(tj.IndexedSlices(rows, ids))
        middle = tj.reduce_sum(v)            # sees the rows just added
        v.scatter_update(tj.IndexedSlices(rows[:1] * 0.0, ids[:1]))
        return before, middle

    ids = np.array([2, 2, 6], np.int32)
    rows = ROWS[:3].copy()
    before, middle = step(ids, rows)
    want = _scatter_ref(TABLE, ids, rows, lambda old, new: old + new)
    np.testing.assert_allclose([before, middle], [TABLE.sum(), want.sum()], rtol=1e-6)
    want[2] = 0.0
    np.testing.assert_array_equal(v.numpy(), want)
    with pytest.raises(InvalidArgumentError, match='indices'):
        step(np.array([1, 8, 1], np.int32), rows)
    np.testing.assert_array_equal(v.numpy(), want)


# ---------------------------------------------------------------------------- optimizers

def _embedding_step(optimizer, table):
    """A compiled step on one embedding table: loss = sum(lookup(ids) * weights)^2 / 2."""
    v = tj.Variable(table)

    @tj.function
    def step(ids, weights):
        with tj.GradientTape() as tape:
            loss = tj.square(tj.reduce_sum(tj.nn.embedding_lookup(v, ids) * weights)) * 0.5
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])
        return loss
    return v, step


WEIGHTS = np.linspace(-1, 1, 18, dtype=np.float32).reshape(2, 3, 3)


def _loss_gradient(table, ids=IDS, weights=WEIGHTS):
    """Per-id gradient rows of loss = (sum lookup * weights)^2 / 2, and the dense gradient."""
    total = float(np.sum(table[ids] * weights))
    rows = (total * weights).reshape(-1, table.shape[1])
    return rows, _dense_of(ids, rows, table.shape)


@pytest.mark.compiled
def test_sgd_updates_only_the_rows_looked_up():
    v, step = _embedding_step(tj.keras.optimizers.SGD(0.1), TABLE)
    # the rows are written into the Variable's buffer (state argument s0), not into a copy
    assert re.search(r'(\w+) = s0\n\s+K\.accumulate_rows2\(\1', step.lower(IDS, WEIGHTS).source)
    step(IDS, WEIGHTS)
    rows, _ = _loss_gradient(TABLE)
    want = _scatter_ref(TABLE, IDS.ravel(), 0.1 * rows, lambda old, new: old - new)
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-6)
    untouched = np.setdiff1d(np.arange(8), LOOKED_UP)
    assert v.numpy()[untouched].tobytes() == TABLE[untouched].tobytes()
    with pytest.raises(InvalidArgumentError, match='ids'):   # a bad id: nothing changes
        step(np.array([[0, 8, 1], [1, 1, 1]], np.int32), WEIGHTS)
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-6)


def _lazy_adam_ref(table, m, v, grad_rows, ids, t, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    """TF Addons' LazyAdam on the unique rows, gradients of repeated ids summed."""
    table, m, v = table.astype(np.float64), m.copy(), v.copy()
    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    for i in np.unique(ids):
        g = grad_rows[np.ravel(ids) == i].sum(axis=0)
        m[i] = b1 * m[i] + (1 - b1) * g
        v[i] = b2 * v[i] + (1 - b2) * g * g
        table[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps)
    return table, m, v


@pytest.mark.compiled
def test_lazy_adam_updates_only_the_rows_seen_in_weights_and_slots():
    optimizer = tj.keras.optimizers.LazyAdam(0.01)
    var, step = _embedding_step(optimizer, TABLE)
    # weights and both moments are written in their own buffers (s0 and two slots), no copies
    source = step.lower(IDS, WEIGHTS).source
    assert re.search(r'(\w+) = s0\n\s+(\w+) = s\d+\n\s+(\w+) = s\d+\n\s+K\.lazy_adam_rows2\(\1'
                     r'\.reshape\(\(\w+, \w+\)\), \2\.reshape\(\(\w+, \w+\)\), \3', source)
    table, m, v = TABLE.astype(np.float64), np.zeros((8, 3)), np.zeros((8, 3))
    for t, ids in enumerate([IDS, np.array([[1, 1, 1], [2, 0, 2]], np.int32)], start=1):
        rows, _ = _loss_gradient(var.numpy(), ids)
        step(ids, WEIGHTS)
        table, m, v = _lazy_adam_ref(table, m, v, rows, ids, t)
    np.testing.assert_allclose(var.numpy(), table, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(optimizer.get_slot(var, 'm').numpy(), m, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(optimizer.get_slot(var, 'v').numpy(), v, rtol=1e-5, atol=1e-10)
    never_seen = [4, 5]
    assert var.numpy()[never_seen].tobytes() == TABLE[never_seen].tobytes()
    for slot in ('m', 'v'):
        assert not optimizer.get_slot(var, slot).numpy()[never_seen].any()


@pytest.mark.compiled
def test_lazy_adam_on_a_mean_of_embeddings_reads_the_gradient_unbroadcast():
    """The gradient of a mean over each sequence is one row per sequence, broadcast over its
    ids: the optimized step updates the rows from those (`repeat`), same numbers."""
    optimizer = tj.keras.optimizers.LazyAdam(0.01)
    var = tj.Variable(TABLE)
    weights = WEIGHTS[:, 0, :]

    @tj.function
    def step(ids):
        with tj.GradientTape() as tape:
            loss = tj.reduce_sum(tj.reduce_mean(tj.nn.embedding_lookup(var, ids), axis=1)
                                 * weights)
        optimizer.apply_gradients([(tape.gradient(loss, var), var)])
        return loss

    graph = passes.optimize(step.trace(IDS).graph)
    names = [n.prim.name for n in graph.nodes]
    assert names.count('gather_sum') == 1 and 'gather' not in names   # the forward bag
    updates = [n for n in graph.nodes if n.prim.name == 'lazy_adam_rows']
    assert [n.params['repeat'] for n in updates] == [3]
    assert not any(n.prim.name == 'broadcast_to' and n.outputs[0].shape == (2, 3, 3)
                   for n in graph.nodes)
    rows = np.repeat(weights / 3, 3, axis=0)
    table, m, v = TABLE.astype(np.float64), np.zeros((8, 3)), np.zeros((8, 3))
    for t, ids in enumerate([IDS, np.array([[1, 1, 1], [2, 0, 2]], np.int32)], start=1):
        step(ids)
        table, m, v = _lazy_adam_ref(table, m, v, rows, ids, t)
    np.testing.assert_allclose(var.numpy(), table, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(optimizer.get_slot(var, 'v').numpy(), v, rtol=1e-5, atol=1e-10)
    assert var.numpy()[[4, 5, 6]].tobytes() == TABLE[[4, 5, 6]].tobytes()


def test_sparse_row_updates_refuse_bad_operands_by_name():
    table, ids, rows = tj.constant(TABLE), np.array([1, 4], np.int32), TABLE[:2]
    with pytest.raises(tj.errors.ShapeError, match=r'lazy_adam_rows: .*one shape'):
        tj.ops.lazy_adam_rows(table, ids, table[:4], table, rows, np.float32(0.1), 0.9, 0.999,
                              1e-7)
    with pytest.raises(tj.errors.ShapeError, match=r'accumulate_rows: .*repeated 2 times'):
        tj.ops.accumulate_rows(table, ids, rows, np.float32(0.1), 0.9, 1, repeat=2)
    with pytest.raises(InvalidArgumentError, match='power must be 1 or 2'):
        tj.ops.accumulate_rows(table, ids, rows, np.float32(0.1), 0.9, 3)
    with pytest.raises(IndexError, match='out of range'):   # eagerly too, nothing written
        tj.ops.accumulate_rows(table, np.array([1, 8], np.int32), rows, np.float32(0.1), 0.9, 1)


def test_a_bag_is_fused_only_when_nothing_else_reads_the_gathered_rows():
    @tj.function
    def bags(table, ids):
        rows = tj.gather(table, ids)
        return tj.reduce_sum(rows, axis=1), tj.reduce_sum(rows, axis=0)

    names = [n.prim.name for n in passes.optimize(bags.trace(TABLE, IDS).graph).nodes]
    assert 'gather' in names and 'gather_sum' not in names
    by_bag, by_position = bags(TABLE, IDS)
    np.testing.assert_allclose(by_bag, TABLE[IDS].sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(by_position, TABLE[IDS].sum(axis=0), rtol=1e-6)


@pytest.mark.compiled
def test_adam_on_slices_equals_dense_adam_and_momentum_too():
    for make in (lambda: tj.keras.optimizers.Adam(0.01),
                 lambda: tj.keras.optimizers.SGD(0.1, momentum=0.9)):
        sparse_opt, dense_opt = make(), make()
        sparse_var, sparse_step = _embedding_step(sparse_opt, TABLE)
        dense_var = tj.Variable(TABLE)

        @tj.function
        def dense_step(ids, weights):
            with tj.GradientTape() as tape:
                lookup = tj.gather(dense_var * 1.0, ids)    # through an op: a dense gradient
                loss = tj.square(tj.reduce_sum(lookup * weights)) * 0.5
            grad = tape.gradient(loss, dense_var)
            assert not isinstance(grad, tj.IndexedSlices)
            dense_opt.apply_gradients([(grad, dense_var)])
            return loss

        for _ in range(3):
            sparse_step(IDS, WEIGHTS)
            dense_step(IDS, WEIGHTS)
        assert sparse_var.numpy().tobytes() == dense_var.numpy().tobytes()
        assert not np.array_equal(sparse_var.numpy(), TABLE)


# ---------------------------------------------------------------------------- Embedding

def test_embedding_outputs_mask_and_gradient_equal_tf():
    layer = tj.keras.layers.Embedding(7, 3, mask_zero=True)
    layer.build(None)
    layer.embeddings.assign(FIXTURES['table'])
    ids = FIXTURES['ids']
    with tj.GradientTape() as tape:
        out = layer(ids)
        loss = tj.reduce_sum(out * FIXTURES['weights'])
    np.testing.assert_allclose(out.numpy(), FIXTURES['output'], rtol=1e-6)
    np.testing.assert_array_equal(layer.compute_mask(ids).numpy(), FIXTURES['mask'])
    grad = tape.gradient(loss, layer.embeddings)
    assert isinstance(grad, tj.IndexedSlices)
    np.testing.assert_array_equal(grad.indices.numpy(), FIXTURES['grad_indices'])
    np.testing.assert_allclose(grad.values.numpy(), FIXTURES['grad_values'], rtol=1e-6)
    np.testing.assert_allclose(tj.convert_to_tensor(grad).numpy(), FIXTURES['grad_dense'],
                               rtol=1e-6)
    assert layer.trainable_weights == [layer.embeddings] and layer.count_params() == 21


@pytest.mark.parametrize('optimizer', ['adam', 'sgd'])
def test_embedding_classifier_steps_equal_tf(optimizer):
    """Two steps of Embedding -> mean -> Dense -> sigmoid cross-entropy, as Keras 3 takes them
    (SGD on repeated ids; Adam on ids seen once, see optimizers.py on Keras's Adam with
    repeated ids)."""
    embedding, dense = tj.keras.layers.Embedding(7, 3), tj.keras.layers.Dense(1)
    embedding.build(None)
    dense(np.zeros((1, 3), np.float32))
    embedding.embeddings.assign(FIXTURES['table'])
    dense.kernel.assign(FIXTURES['kernel'])
    opt = tj.keras.optimizers.Adam(0.01) if optimizer == 'adam' else tj.keras.optimizers.SGD(0.5)
    variables = [embedding.embeddings, dense.kernel, dense.bias]
    for _ in range(2):
        with tj.GradientTape() as tape:
            logits = dense(tj.reduce_mean(embedding(FIXTURES[f'{optimizer}_ids']), axis=1))
            loss = tj.reduce_mean(tj.nn.sigmoid_cross_entropy_with_logits(
                labels=FIXTURES['labels'], logits=logits))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    for variable, key in zip(variables, ('table', 'kernel', 'bias')):
        np.testing.assert_allclose(variable.numpy(), FIXTURES[f'{optimizer}_{key}'], rtol=2e-5,
                                   atol=1e-7, err_msg=key)


def test_embedding_ids_batch_one_config_and_errors():
    layer = tj.keras.layers.Embedding(5, 2, embeddings_initializer='ones', name='emb')
    assert layer(np.array([[4]])).shape == (1, 1, 2)                      # batch 1
    np.testing.assert_array_equal(layer(np.array([1.7, 2.2])).numpy(), np.ones((2, 2)))
    with pytest.raises(InvalidArgumentError, match='indices'):
        layer(np.array([[5]]))
    assert layer.compute_mask(np.array([0, 1])) is None
    config = layer.get_config()
    assert config == {'name': 'emb', 'trainable': True, 'dtype': 'float32', 'input_dim': 5,
                      'output_dim': 2, 'embeddings_initializer': 'ones', 'mask_zero': False}
    twin = tj.keras.layers.Embedding.from_config(config)
    assert (twin.input_dim, twin.output_dim, twin.name) == (5, 2, 'emb')
    with pytest.warns(UserWarning, match='input_length'):
        tj.keras.layers.Embedding(5, 2, input_length=3)
    with pytest.raises(ValueError, match='input_dim'):
        tj.keras.layers.Embedding(0, 2)
    default = tj.keras.layers.Embedding(50, 4)
    default.build(None)
    assert np.abs(default.embeddings.numpy()).max() <= 0.05          # Keras's 'uniform'

"""Keras recurrent layers against TensorFlow (fixtures/make_recurrent.py), numpy references and
finite differences: outputs and gradients eagerly and compiled, the Orthogonal initializer,
dropout, bad arguments, the loop structure of the kernel, and a digits LSTM trained by fit."""
import json
import os

import numpy as np
import pytest

import tracejit as tj
from fixtures.make_recurrent import build
from gradcheck import check_grads

keras = tj.keras
L = keras.layers
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
with open(os.path.join(HERE, 'recurrent.json')) as f:
    INDEX = json.load(f)
DATA = np.load(os.path.join(HERE, 'recurrent.npz'))
CASES = list(enumerate(INDEX['cases']))


def _case_id(case):
    k, c = case
    spec = c['spec']
    inner = spec.get('layer', {}).get('class', '')
    return f"{k}-{spec['class']}{'-' + inner if inner else ''}"


def _load(k, case):
    arrays = {f'{name}{j}': DATA[f'{k}/{name}{j}'] for name, count in (
        ('state', case['states']), ('w', case['weights']), ('y', case['outputs']),
        ('u', case['outputs']), ('g', case['grads'])) for j in range(count)}
    layer = build(L, case['spec'])
    x = DATA[f'{k}/x']
    kwargs = {}
    if case['states']:
        kwargs['initial_state'] = [arrays[f'state{j}'] for j in range(case['states'])]
    if case['masked']:
        kwargs['mask'] = np.array(INDEX['mask'], bool)
    layer(x, **kwargs)
    layer.set_weights([arrays[f'w{j}'] for j in range(case['weights'])])
    return layer, x, kwargs, arrays


def _outputs_and_grads(layer, x, kwargs, us):
    """The flat outputs and the gradients of sum_k sum(u_k * y_k) w.r.t. x, the initial
    states and the trainable weights."""
    x = tj.constant(x)
    states = [tj.constant(s) for s in kwargs.get('initial_state', [])]
    call = dict(kwargs, initial_state=states) if states else kwargs
    with tj.GradientTape() as tape:
        tape.watch(x)
        for s in states:
            tape.watch(s)
        outs = tj.tree.leaves(layer(x, **call))
        total = sum(tj.reduce_sum(u * o) for u, o in zip(us, outs))
    grads = tape.gradient(total, [x] + states + list(layer.trainable_weights))
    return outs, grads


def _check(case, outs, grads, arrays):
    assert len(outs) == case['outputs'] and len(grads) == case['grads']
    for j, out in enumerate(outs):
        np.testing.assert_allclose(np.asarray(out), arrays[f'y{j}'], rtol=2e-5, atol=2e-6)
    for j, g in enumerate(grads):
        np.testing.assert_allclose(np.asarray(g), arrays[f'g{j}'], rtol=1e-4, atol=1e-5,
                                   err_msg=f'gradient {j}')


@pytest.mark.parametrize('case', CASES, ids=_case_id)
def test_outputs_and_gradients_equal_tensorflow_eagerly(case):
    k, case = case
    layer, x, kwargs, arrays = _load(k, case)
    us = [arrays[f'u{j}'] for j in range(case['outputs'])]
    outs, grads = _outputs_and_grads(layer, x, kwargs, us)
    _check(case, outs, grads, arrays)


COMPILED_CASES = [c for c in CASES if c[0] in (5, 7, 12)]   # masked LSTM, GRU, Bidirectional


@pytest.mark.compiled
@pytest.mark.parametrize('case', COMPILED_CASES, ids=_case_id)
def test_outputs_and_gradients_equal_tensorflow_compiled(case):
    k, case = case
    layer, x, kwargs, arrays = _load(k, case)
    us = [arrays[f'u{j}'] for j in range(case['outputs'])]
    step = tj.function(lambda x, us: _outputs_and_grads(layer, x, kwargs, us))
    outs, grads = step(x, us)
    _check(case, outs, grads, arrays)


# ------------------------------------------------------------------------ numpy references

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm_reference(x, kernel, recurrent, bias, masks=None):
    """Keras's LSTM recurrence in float64, input dropout masks (one or four) applied."""
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    masks = masks or [np.ones(x.shape[::2])]
    for t in range(x.shape[1]):
        xs = [x[:, t] * m for m in masks]
        z = np.concatenate([xs[k % len(xs)] @ kernel[:, k * units:(k + 1) * units]
                            for k in range(4)], 1) + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h


def test_lstm_dropout_draws_one_mask_per_sequence_as_keras():
    """In training, the input mask (drawn from tj.random, a new one per call) is the same at
    every step: outputs equal the numpy recurrence on the masked inputs for the masks the
    layer draws; inference ignores dropout."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 6, 5)).astype(np.float32)
    layer = L.LSTM(3, dropout=0.5)
    layer(x)
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_allclose(layer(x).numpy(), _lstm_reference(x, kernel, recurrent, bias),
                               rtol=1e-5, atol=1e-6)
    tj.random.set_seed(7)
    trained = layer(x, training=True).numpy()
    tj.random.set_seed(7)
    drawn = layer.cell.dropout_masks(4, 5, True)[0]
    assert len(drawn) == 1 and {0.0, 2.0} == set(np.unique(drawn[0].numpy()))
    np.testing.assert_allclose(trained, _lstm_reference(x, kernel, recurrent, bias,
                                                        [drawn[0].numpy()]), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(trained, layer(x, training=True).numpy())   # a new mask per call


def test_recurrent_dropout_draws_one_mask_per_gate():
    cell = L.GRUCell(4, dropout=0.3, recurrent_dropout=0.2)
    inputs, recurrent = cell.dropout_masks(2, 3, True)
    assert len(inputs) == len(recurrent) == 3
    assert [tuple(m.shape) for m in inputs + recurrent] == [(2, 3)] * 3 + [(2, 4)] * 3
    assert cell.dropout_masks(2, 3, False) == (None, None)
    layer = L.GRU(4, recurrent_dropout=0.5, return_sequences=True)
    x = np.ones((2, 3, 3), np.float32)
    assert not np.allclose(layer(x, training=True).numpy(), layer(x).numpy())


def test_second_order_gradients_through_the_scan_match_finite_differences():
    layer = L.SimpleRNN(2, dtype='float64')
    rng = np.random.default_rng(5)
    layer(np.zeros((2, 3, 2)))
    layer.set_weights([w * 0.8 for w in layer.get_weights()])
    check_grads(lambda x: layer(x), [rng.normal(size=(2, 3, 2))], order=2, modes=('tape',))


class _MinimalCell(keras.layers.Layer):
    """Keras's guide example of a user cell: `h = x @ W + tanh(h) @ U`, one state."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight('kernel', (input_shape[-1], self.units))
        self.recurrent_kernel = self.add_weight('recurrent_kernel', (self.units, self.units))

    def call(self, inputs, states):
        h = tj.matmul(inputs, self.kernel) + tj.matmul(tj.tanh(states[0]), self.recurrent_kernel)
        return h, [h]


def test_a_user_cell_runs_its_own_call_at_each_step():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    layer = L.RNN(_MinimalCell(2), return_sequences=True, go_backwards=True)
    y = layer(x).numpy()
    kernel, recurrent = layer.get_weights()
    h, expected = np.zeros((2, 2)), []
    for t in reversed(range(4)):
        h = x[:, t] @ kernel + np.tanh(h) @ recurrent
        expected.append(h)
    np.testing.assert_allclose(y, np.stack(expected, 1), rtol=1e-5, atol=1e-6)


def test_models_pass_the_embedding_mask_to_the_lstm():
    """Embedding(mask_zero=True) -> Dropout -> LSTM in a Sequential: the LSTM sees the mask
    (Dropout keeps it) and equals the LSTM called with the mask; a layer that does not
    support masking (Flatten here) drops it, as Keras. A functional model passes it too
    (through a Dense)."""
    tj.random.set_seed(2)
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 0]], np.int32)
    embed, lstm = L.Embedding(5, 3, mask_zero=True), L.LSTM(2, return_sequences=True)
    model = keras.Sequential([keras.Input((4,), dtype='int32'), embed, L.Dropout(0.5), lstm])
    masked = lstm(embed(ids), mask=ids != 0).numpy()
    np.testing.assert_allclose(model(ids).numpy(), masked, rtol=1e-6)
    assert not np.allclose(masked, lstm(embed(ids)).numpy())
    flat = keras.Sequential([keras.Input((4,), dtype='int32'), embed, L.Flatten(),
                             L.Reshape((4, 3)), lstm])
    np.testing.assert_allclose(flat(ids).numpy(), lstm(embed(ids)).numpy(), rtol=1e-6)
    inputs = keras.Input((4,), dtype='int32')
    functional = keras.Model(inputs, lstm(L.Dense(3)(embed(inputs))))
    np.testing.assert_allclose(functional(ids).numpy(), lstm(
        embed(ids) @ functional.layers[2].kernel.numpy(), mask=ids != 0).numpy(), rtol=1e-5,
        atol=1e-6)


# ------------------------------------------------------------------------------ Orthogonal

@pytest.mark.parametrize('shape', [(5, 5), (3, 7), (7, 3), (2, 3, 4)])
def test_orthogonal_initializer_is_orthogonal_scaled_and_seeded(shape):
    init = keras.initializers.Orthogonal(gain=1.5, seed=4)
    q = init(shape).reshape(-1, shape[-1])
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(small), atol=1e-5)
    assert q.dtype == np.float32
    np.testing.assert_array_equal(init(shape), init(shape))
    again = keras.initializers.get(keras.initializers.serialize(init))
    assert isinstance(again, keras.initializers.Orthogonal) and again.gain == 1.5
    with pytest.raises(ValueError, match='at least two-dimensional'):
        init((4,))


def test_default_initialization_follows_keras():
    layer = L.LSTM(8)
    layer(np.zeros((1, 2, 3), np.float32))
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(8), atol=1e-5)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    assert np.abs(kernel).max() <= np.sqrt(6 / (3 + 32))
    gru = L.GRU(2)
    gru(np.zeros((1, 2, 3), np.float32))
    assert gru.cell.bias.shape == (2, 6) and not gru.get_weights()[2].any()
    assert [w.name for w in gru.weights] == ['gru_cell/kernel:0', 'gru_cell/recurrent_kernel:0',
                                             'gru_cell/bias:0']


# ------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize('make, error, match', [
    (lambda: L.LSTM(0), ValueError, 'positive integer'),
    (lambda: L.GRU(3, dropout=1.5), ValueError, r'dropout must be in \[0, 1\)'),
    (lambda: L.SimpleRNN(3, stateful=True), NotImplementedError, 'stateful=True'),
    (lambda: L.LSTM(3, kernel_regularizer='l2'), NotImplementedError, 'kernel_regularizer'),
    (lambda: L.LSTM(3, use_cudnn=True), ValueError, 'cuDNN'),
    (lambda: L.RNN(object()), ValueError, '`call` method'),
    (lambda: L.Bidirectional(L.LSTM(2), merge_mode='max'), ValueError, 'Invalid merge mode'),
    (lambda: L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2)), ValueError,
     'different `go_backwards`'),
    (lambda: L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(
        2, go_backwards=True, return_sequences=True)), ValueError, 'return_sequences'),
    (lambda: L.TimeDistributed('dense'), ValueError, 'Layer` instance'),
])
def test_bad_constructor_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_call_arguments_are_refused():
    x = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(tj.errors.ShapeError, match='expected min_ndim=3'):
        L.LSTM(2)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r'initial_state must be 2 tensors of shapes'):
        L.LSTM(2)(x, initial_state=[np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError, match=r'mask must have shape \(batch, timesteps\)'):
        L.GRU(2)(x, mask=np.ones((2, 3), bool))


# ---------------------------------------------------------------------- configs, summary

def test_configs_round_trip_with_the_weights_layout():
    layer = L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True), merge_mode='sum')
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    y = layer(x)
    record = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    again = keras.saving.deserialize_keras_object(record)
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_allclose(again(x).numpy(), y.numpy(), rtol=1e-6)
    assert [w.shape for w in again.get_weights()] == [(3, 9), (3, 9), (9,)] * 2
    stacked = L.RNN([L.LSTMCell(2), L.GRUCell(3)], return_state=True)
    config = stacked.get_config()
    assert type(L.RNN.from_config(config).cell) is L.StackedRNNCells
    assert L.RNN.from_config(config).get_config() == config


def test_summary_shows_the_recurrent_shapes_and_parameters():
    model = keras.Sequential([keras.Input((8, 8)), L.LSTM(64), L.Dense(10)])
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if '(LSTM)' in line)
    assert '(None, 64)' in row and f'{4 * 64 * (8 + 64 + 1)}' in row


# --------------------------------------------------------------------- compiled structure

@pytest.mark.compiled
def test_the_lstm_step_is_one_native_loop_with_the_input_matmul_outside():
    layer = L.LSTM(4)
    x = np.random.default_rng(1).normal(size=(3, 6, 2)).astype(np.float32)
    step = tj.function(lambda x: layer(x))
    np.testing.assert_allclose(step(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-6)
    source = step.lower(x).source
    assert source.count('for j') == 1 and 'range(' in source   # one time loop, not 6 bodies
    assert source.count('K.dot') == 2   # x @ W over all rows, then h @ U in the loop body
    info = step.cache_info()
    longer = np.concatenate([x, x[:, ::-1]], 1)
    np.testing.assert_allclose(step(longer).numpy(), layer(longer).numpy(), rtol=1e-5,
                               atol=1e-6)
    after = step.cache_info()   # a new trip count reuses the kernel: no compile, no disk load
    assert after['compiles'] + after['disk_hits'] == info['compiles'] + info['disk_hits']


# ------------------------------------------------------------------------ training by fit

@pytest.mark.compiled
def test_a_digits_lstm_learns_through_fit():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    tj.random.set_seed(0)
    model = keras.Sequential([keras.Input((8, 8)), L.LSTM(32), L.Dense(10)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ['accuracy'])
    model.fit(x[:1400], y[:1400], epochs=12, batch_size=64, verbose=0)
    loss, accuracy = model.evaluate(x[1400:], y[1400:], verbose=0)
    assert accuracy > 0.88, accuracy

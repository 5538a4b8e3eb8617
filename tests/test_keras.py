"""tj.keras: optimizers, layers, losses, metrics and initializers against numpy references, and
compile/fit/evaluate/predict, checkpoints and callbacks on a small classification problem.

Compiled graphs are few and shared: every model trained here is the same two-layer network
(same kernel source, so after the first compile each new model only retraces), all optimizers
are checked in ONE compiled step, and the bad-input tests fail before any step runs.
"""
import logging
import os

import numpy as np
import pytest

import tracejit as tj
from tracejit import keras

# ------------------------------------------------------------------------------ optimizers

def quadratic_grad(w, target, scale):
    """Gradient of sum(0.5 * scale * (w - target)^2 + 0.3 * sin(w))."""
    return scale * (w - target) + 0.3 * np.cos(w)


def reference_run(kind, options, w, target, scale, steps, lrs):
    """The published update rules (TF2 Keras), in float64; `lrs[t]` is step t's rate."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    acc = np.full_like(w, options.get('initial_accumulator_value', 0.1))
    for t in range(1, steps + 1):
        g, lr = quadratic_grad(w, target, scale), lrs[t - 1]
        if kind == 'SGD':
            mu = options.get('momentum', 0.0)
            if mu == 0:
                w = w - lr * g
            else:
                m = mu * m - lr * g
                w = w + (mu * m - lr * g if options.get('nesterov') else m)
        elif kind == 'Adam':
            b1, b2, eps = 0.9, 0.999, 1e-7
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w = w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
        elif kind == 'RMSprop':
            rho, mu, eps = 0.9, options.get('momentum', 0.0), 1e-7
            v = rho * v + (1 - rho) * g * g
            if mu == 0:
                w = w - lr * g / (np.sqrt(v) + eps)
            else:
                m = mu * m + lr * g / np.sqrt(v + eps)
                w = w - m
        elif kind == 'Adagrad':
            acc = acc + g * g
            w = w - lr * g / (np.sqrt(acc) + 1e-7)
    return w


OPTIMIZERS = [('SGD', {'learning_rate': 0.1}),
              ('SGD', {'learning_rate': 0.05, 'momentum': 0.9}),
              ('SGD', {'learning_rate': 0.05, 'momentum': 0.9, 'nesterov': True}),
              ('Adam', {'learning_rate': 0.05}),
              ('RMSprop', {'learning_rate': 0.02}),
              ('RMSprop', {'learning_rate': 0.02, 'momentum': 0.5}),
              ('Adagrad', {'learning_rate': 0.3, 'initial_accumulator_value': 0.2})]
W0 = np.array([1.5, -0.7, 0.2], np.float32)
TARGET = np.array([0.5, 0.8, -1.0], np.float32)
SCALE = np.array([1.0, 3.0, 0.5], np.float32)


def optimizer_setup(compiled):
    """Every optimizer on its own copy of W0, all updated by one step (one compiled graph)."""
    optimizers = [getattr(keras.optimizers, kind)(**options) for kind, options in OPTIMIZERS]
    weights = [tj.Variable(W0) for _ in OPTIMIZERS]

    def step():
        with tj.GradientTape() as tape:
            loss = sum(tj.reduce_sum(0.5 * SCALE * tj.square(w - TARGET) + 0.3 * tj.sin(w))
                       for w in weights)
        grads = tape.gradient(loss, weights)
        for opt, g, w in zip(optimizers, grads, weights):
            opt.apply_gradients([(g, w)])
    return (tj.function(step) if compiled else step), optimizers, weights


@pytest.mark.parametrize('compiled', [False, True], ids=['eager', 'compiled'])
def test_optimizers_match_published_update_rules(compiled):
    step, optimizers, weights = optimizer_setup(compiled)
    for _ in range(20):
        step()
    for opt in optimizers:          # a new learning rate is read from the Variable: no retrace
        opt.learning_rate = float(opt.learning_rate.numpy()) / 2
    step()
    if compiled:
        assert step.cache_info()['traces'] == 1
    for (kind, options), opt, w in zip(OPTIMIZERS, optimizers, weights):
        lrs = [options['learning_rate']] * 20 + [options['learning_rate'] / 2]
        expected = reference_run(kind, options, W0, TARGET, SCALE, 21, lrs)
        np.testing.assert_allclose(w.numpy(), expected, rtol=2e-5, atol=2e-6,
                                   err_msg=f'{kind} {options}')
        assert opt.iterations.numpy() == 21 and opt.iterations.dtype == tj.int64


def test_optimizer_slots_are_variables_created_once():
    _, optimizers, weights = optimizer_setup(compiled=False)
    adam = optimizers[3]
    assert adam.get_slot_names() == [] and adam.variables() == [adam.iterations]
    with tj.GradientTape() as tape:
        loss = tj.reduce_sum(tj.square(weights[3]))
    adam.apply_gradients(zip(tape.gradient(loss, [weights[3]]), [weights[3]]))
    assert adam.get_slot_names() == ['m', 'v']
    assert len(adam.variables()) == 3 and not adam.get_slot(weights[3], 'm').trainable


def test_minimize_takes_a_loss_function():
    x = tj.Variable([[0.5]])
    opt = keras.optimizers.SGD(learning_rate=0.1)
    for _ in range(3):
        opt.minimize(lambda: tj.pow(x - 4, 2), [x])
    expected = 0.5
    for _ in range(3):
        expected -= 0.1 * 2 * (expected - 4)
    np.testing.assert_allclose(x.numpy(), [[expected]], rtol=1e-6)
    with pytest.raises(TypeError, match='tape'):
        opt.minimize(tj.constant(1.0), [x])


def test_apply_gradients_errors_and_none_gradients(caplog):
    a, b = tj.Variable([1.0, 2.0]), tj.Variable(3.0)
    opt = keras.optimizers.SGD(1.0)
    with caplog.at_level(logging.WARNING, logger='tracejit'):
        opt.apply_gradients([(tj.constant([1.0, 1.0]), a), (None, b)])
    assert 'Gradients do not exist' in caplog.text and b.numpy() == 3.0
    np.testing.assert_allclose(a.numpy(), [0.0, 1.0])
    with pytest.raises(ValueError, match='No gradients provided'):
        opt.apply_gradients([(None, a), (None, b)])
    with pytest.raises(ValueError, match=r"shape \(\).*'Variable:0' of shape \(2,\)"):
        opt.apply_gradients([(tj.constant(1.0), a)])
    with pytest.raises(TypeError, match='swapped'):
        opt.apply_gradients([(a, tj.constant([1.0, 1.0]))])
    with pytest.raises(ValueError, match='pairs'):
        opt.apply_gradients([a])
    np.testing.assert_allclose(a.numpy(), [0.0, 1.0])


def test_optimizer_names_and_validation():
    assert isinstance(keras.optimizers.get('adam'), keras.optimizers.Adam)
    assert isinstance(keras.optimizers.get('RMSprop'), keras.optimizers.RMSprop)
    sgd = keras.optimizers.SGD()
    assert keras.optimizers.get(sgd) is sgd
    assert keras.optimizers.Adagrad().learning_rate.numpy() == pytest.approx(0.001)
    with pytest.raises(ValueError, match='unknown optimizer'):
        keras.optimizers.get('adamw2')
    with pytest.raises(ValueError, match='momentum'):
        keras.optimizers.SGD(momentum=-1)
    shared = tj.Variable(0.5, trainable=False)
    assert keras.optimizers.Adam(shared).learning_rate is shared


# ------------------------------------------------------------------------------ initializers

def test_initializers_follow_keras_distributions():
    init = keras.initializers
    tj.random.set_seed(3)
    glorot = init.GlorotUniform()((200, 300))
    limit = np.sqrt(6 / 500)
    assert glorot.dtype == np.float32 and np.abs(glorot).max() <= limit
    assert glorot.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    he = init.HeNormal()((400, 300))
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6
    assert init.HeUniform()((400, 30)).max() <= np.sqrt(6 / 400)
    assert init.GlorotNormal()((300, 300)).std() == pytest.approx(np.sqrt(1 / 300), rel=0.03)
    normal = init.RandomNormal(mean=1.0, stddev=0.5)((100000,))
    assert normal.mean() == pytest.approx(1.0, abs=0.01) and normal.std() == pytest.approx(0.5,
                                                                                          rel=0.02)
    uniform = init.RandomUniform(-2, 3)((100000,))
    assert uniform.min() >= -2 and uniform.max() <= 3 and uniform.mean() == pytest.approx(0.5,
                                                                                        abs=0.03)
    assert np.all(init.Zeros()((2, 3)) == 0) and np.all(init.Ones()((2,), 'float64') == 1)
    assert init.Ones()((2,), 'float64').dtype == np.float64
    assert np.all(init.Constant(7)((3,)) == 7)


def test_initializers_are_reproducible():
    tj.random.set_seed(11)
    first = keras.initializers.get('glorot_uniform')((4, 5))
    tj.random.set_seed(11)
    assert np.array_equal(keras.initializers.get('GlorotUniform')((4, 5)), first)
    seeded = keras.initializers.HeNormal(seed=5)
    assert np.array_equal(seeded((3, 3)), seeded((3, 3)))
    with pytest.raises(ValueError, match='unknown initializer'):
        keras.initializers.get('glorot')


# ------------------------------------------------------------------------------ layers

def sigmoid(z):
    return 1 / (1 + np.exp(-z))


ACTIVATIONS = {None: lambda z: z, 'linear': lambda z: z, 'relu': lambda z: np.maximum(z, 0),
               'sigmoid': sigmoid, 'tanh': np.tanh, 'softplus': lambda z: np.log1p(np.exp(z)),
               'softmax': lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)}


@pytest.mark.parametrize('activation', list(ACTIVATIONS), ids=str)
def test_dense_matches_numpy(activation):
    layer = keras.layers.Dense(3, activation=activation, bias_initializer='ones')
    x = np.random.default_rng(0).standard_normal((5, 4))       # float64: cast to float32
    out = layer(x)
    assert out.dtype == tj.float32 and out.shape == (5, 3) and layer.built
    assert layer.kernel.shape == (4, 3) and layer.bias.shape == (3,)
    assert [v.name for v in layer.weights] == [f'{layer.name}/kernel:0', f'{layer.name}/bias:0']
    expected = ACTIVATIONS[activation](x @ layer.kernel.numpy() + 1.0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_dense_options_and_rank3_inputs():
    layer = keras.layers.Dense(2, activation=tj.nn.relu, use_bias=False,
                               kernel_initializer=keras.initializers.Constant(0.5))
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2) - 5
    out = layer(x)
    assert layer.bias is None and len(layer.weights) == 1
    np.testing.assert_allclose(out.numpy(), np.maximum(x @ np.full((2, 2), 0.5), 0))
    with pytest.raises(ValueError, match='unknown activation'):
        keras.layers.Dense(2, activation='swishy')
    with pytest.raises(ValueError, match='positive integer'):
        keras.layers.Dense(0)


def test_wrong_feature_count_names_layer_and_shapes():
    layer = keras.layers.Dense(3, name='probe')
    layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r'"probe".*axis -1.*value 4.*\(2, 5\)'):
        layer(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r'"probe".*min_ndim=2.*ndim=1'):
        layer(np.ones(4, np.float32))


class Block(keras.layers.Layer):
    """A layer with its own weight and two nested layers (one frozen)."""

    def __init__(self):
        super().__init__()
        self.scale = self.add_weight('scale', (), initializer='ones')
        self.first = keras.layers.Dense(4)
        self.frozen = keras.layers.Dense(2, trainable=False)

    def call(self, x):
        return self.frozen(self.first(x)) * self.scale


def test_nested_weights_are_tracked_in_creation_order():
    block = Block()
    assert not block.built and block.weights == [block.scale]
    block(np.ones((3, 5), np.float32))
    assert block.built
    assert block.weights == [block.scale, block.first.kernel, block.first.bias,
                             block.frozen.kernel, block.frozen.bias]
    assert block.trainable_weights == block.weights[:3]
    assert block.non_trainable_weights == block.weights[3:]
    assert block.trainable_variables == block.trainable_weights
    assert block.count_params() == 1 + 5 * 4 + 4 + 4 * 2 + 2
    block.trainable = False
    assert block.trainable_weights == []


def test_activation_flatten_and_dropout():
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(keras.layers.Activation('relu')(x).numpy(), np.maximum(x, 0))
    assert keras.layers.Flatten()(x).shape == (2, 12)
    assert keras.layers.Flatten()(np.ones(3, np.float32)).shape == (3, 1)

    tj.random.set_seed(0)
    dropout = keras.layers.Dropout(0.25)
    ones = np.ones((200, 50), np.float32)
    assert np.array_equal(dropout(ones).numpy(), ones)                 # inference by default
    assert np.array_equal(dropout(ones, training=False).numpy(), ones)
    dropped = dropout(ones, training=True).numpy()
    assert set(np.unique(dropped)) == {0.0, np.float32(1 / 0.75)}
    assert (dropped == 0).mean() == pytest.approx(0.25, abs=0.02)
    # `training` flows from a model to its layers
    model = keras.Sequential([keras.layers.Dropout(0.5)])
    assert (model(ones, training=True).numpy() == 0).any()
    assert np.array_equal(model(ones).numpy(), ones)
    with pytest.raises(ValueError, match='rate'):
        keras.layers.Dropout(1.0)


def test_dropout_compiled_draws_a_new_mask_each_call():
    dropout = keras.layers.Dropout(0.5)
    train = tj.function(lambda x: dropout(x, training=True))
    infer = tj.function(lambda x: dropout(x, training=False))
    x = np.ones((8, 16), np.float32)
    tj.random.set_seed(4)
    first, second = train(x).numpy(), train(x).numpy()
    assert not np.array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 2.0}
    tj.random.set_seed(4)
    assert np.array_equal(train(x).numpy(), first)                    # reproducible
    assert np.array_equal(infer(x).numpy(), x)
    assert train.cache_info()['traces'] == 1


# ------------------------------------------------------------------------------ losses

def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope='module')
def loss_data():
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    return dict(logits=logits, probs=np.exp(np_log_softmax(logits)), labels=labels,
                onehot=np.eye(4)[labels], y=rng.standard_normal((6, 4)),
                binary=(rng.random((6, 4)) < 0.5).astype(np.float64))


def test_regression_losses_match_numpy(loss_data):
    y, p = loss_data['y'], loss_data['logits']
    L = keras.losses
    np.testing.assert_allclose(L.mean_squared_error(y, p).numpy(), ((p - y) ** 2).mean(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(L.mean_absolute_error(y, p).numpy(), np.abs(p - y).mean(-1),
                               rtol=1e-5)
    assert float(L.MeanSquaredError()(y, p)) == pytest.approx(((p - y) ** 2).mean(), rel=1e-5)
    weights = np.arange(6.0)
    weighted = float(L.MeanSquaredError()(y, p, sample_weight=weights))
    assert weighted == pytest.approx((((p - y) ** 2).mean(-1) * weights).mean(), rel=1e-5)
    assert L.MeanSquaredError(reduction='none')(y, p).shape == (6,)
    # (batch,) labels against (batch, 1) predictions are aligned, never broadcast to (b, b)
    col = p[:, :1]
    assert float(L.MeanSquaredError()(y[:, 0], col)) == pytest.approx(
        ((col[:, 0] - y[:, 0]) ** 2).mean(), rel=1e-5)


def test_crossentropies_match_numpy(loss_data):
    d, L = loss_data, keras.losses
    expected_ce = -(d['onehot'] * np_log_softmax(d['logits'])).sum(-1)
    np.testing.assert_allclose(L.categorical_crossentropy(d['onehot'], d['probs']).numpy(),
                               expected_ce, rtol=1e-4)
    np.testing.assert_allclose(
        L.categorical_crossentropy(d['onehot'], d['logits'], from_logits=True).numpy(),
        expected_ce, rtol=1e-5)
    np.testing.assert_allclose(
        L.sparse_categorical_crossentropy(d['labels'], d['probs']).numpy(), expected_ce,
        rtol=1e-4)
    for loss in (L.SparseCategoricalCrossentropy(from_logits=True),
                 L.CategoricalCrossentropy(from_logits=True)):
        labels = d['labels'][:, None] if 'Sparse' in type(loss).__name__ else d['onehot']
        assert float(loss(labels, d['logits'])) == pytest.approx(expected_ce.mean(), rel=1e-5)

    z, t = d['logits'], d['binary']
    expected_bce = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(-1)
    np.testing.assert_allclose(L.binary_crossentropy(t, z, from_logits=True).numpy(),
                               expected_bce, rtol=1e-5)
    np.testing.assert_allclose(L.binary_crossentropy(t, sigmoid(z)).numpy(), expected_bce,
                               rtol=1e-4)
    assert float(L.BinaryCrossentropy()(t, sigmoid(z))) == pytest.approx(expected_bce.mean(),
                                                                         rel=1e-4)


def test_probability_losses_clip_like_keras():
    eps = np.float32(1e-7)
    bce = keras.losses.binary_crossentropy([[1.0, 0.0]], [[0.0, 1.0]]).numpy()
    p = np.clip(np.float32([0.0, 1.0]), eps, 1 - eps)
    expected = -np.mean([np.log(p[0] + eps), np.log(1 - p[1] + eps)])   # finite, not inf
    np.testing.assert_allclose(bce, [expected], rtol=1e-4)
    ce = keras.losses.categorical_crossentropy([[0.0, 1.0]], [[1.0, 0.0]]).numpy()
    np.testing.assert_allclose(ce, [-np.log(eps)], rtol=1e-3)
    big = keras.losses.sparse_categorical_crossentropy([0], [[1e4, -1e4]], from_logits=True)
    assert np.isfinite(big.numpy()).all() and float(big[0]) == 0.0


def test_loss_lookup():
    assert keras.losses.get('mse') is keras.losses.mean_squared_error
    assert isinstance(keras.losses.get('BinaryCrossentropy'), keras.losses.BinaryCrossentropy)
    with pytest.raises(ValueError, match='unknown loss'):
        keras.losses.get('hinge2')


# ------------------------------------------------------------------------------ metrics

def test_metrics_match_numpy_over_several_batches(loss_data):
    d, M = loss_data, keras.metrics
    hits = d['labels'] == d['logits'].argmax(-1)
    sparse = M.SparseCategoricalAccuracy()
    sparse.update_state(d['labels'][:4], d['logits'][:4])
    sparse.update_state(d['labels'][4:, None], d['logits'][4:])
    assert float(sparse.result()) == pytest.approx(hits.mean())
    categorical = M.CategoricalAccuracy()
    assert float(categorical(d['onehot'], d['logits'])) == pytest.approx(hits.mean())
    binary = M.BinaryAccuracy(threshold=0.4)
    expected = ((sigmoid(d['logits']) > 0.4) == d['binary']).mean()
    assert float(binary(d['binary'], sigmoid(d['logits']))) == pytest.approx(expected)
    exact = M.Accuracy()
    assert float(exact([1, 2, 3, 4], [1, 2, 0, 4])) == pytest.approx(0.75)
    mean = M.Mean()
    mean.update_state([1.0, 2.0, 3.0])
    mean.update_state(10.0, sample_weight=3.0)
    assert float(mean.result()) == pytest.approx((6 + 30) / 6)
    mean.reset_state()
    assert float(mean.result()) == 0.0 and mean.count.numpy() == 0
    assert sparse.name == 'sparse_categorical_accuracy' and not sparse.total.trainable


# ------------------------------------------------------------------------------ models

N_FEATURES, N_CLASSES = 4, 3


@pytest.fixture(scope='module')
def data():
    """A learnable 3-class problem: 130 samples, so batches of 32 leave a partial batch of 2."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((130, N_FEATURES)).astype(np.float32)
    true_w = rng.standard_normal((N_FEATURES, N_CLASSES))
    y = (x @ true_w).argmax(-1).astype(np.int32)
    return x, y


def make_model(seed=0, steps_per_execution=1, run_eagerly=False, learning_rate=0.05):
    """The one architecture every fit test uses (so they share compiled kernels)."""
    tj.random.set_seed(seed)
    model = keras.Sequential([keras.layers.Dense(8, activation='relu'),
                              keras.layers.Dense(N_CLASSES)])
    model.build((None, N_FEATURES))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'], steps_per_execution=steps_per_execution,
                  run_eagerly=run_eagerly)
    return model


def same_weights(a, b, rtol=1e-5, atol=1e-6):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def hand_written_step(model):
    """The compiled train step `fit` should be equivalent to (Adam 0.05, logits loss)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(0.05)

    @tj.function
    def step(xb, yb):
        with tj.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return step


def test_fit_converges_and_equals_a_hand_written_compiled_loop(data):
    x, y = data[0][:128], data[1][:128]
    model = make_model(seed=1)
    history = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0)

    reference = make_model(seed=1)
    step = hand_written_step(reference)

    losses = [[float(step(x[i:i + 32], y[i:i + 32])) for i in range(0, 128, 32)]
              for _ in range(6)]
    same_weights(model, reference)
    np.testing.assert_allclose(history.history['loss'], np.mean(losses, axis=1), rtol=1e-5)
    assert history.history['loss'][-1] < 0.5 * history.history['loss'][0]
    assert history.epoch == list(range(6)) and model.history is history
    assert model.optimizer.iterations.numpy() == 24
    logits = model.predict(x)
    accuracy = (logits.argmax(-1) == y).mean()
    assert accuracy > 0.85
    assert history.history['accuracy'][-1] == pytest.approx(accuracy, abs=0.1)


def test_shuffled_fit_equals_a_hand_written_loop_over_the_same_permutations(data):
    """fit's shuffling (one permutation per epoch, drawn from tj.random's seed) and the
    logged epoch values (the metrics' `result()`), against a hand-written loop."""
    from tracejit.keras import training
    x, y = data
    model = make_model(seed=2)
    reference = make_model(seed=2)
    tj.random.set_seed(7)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    for metric in model.metrics:
        assert history.history[metric.name][-1] == float(metric.result())

    tj.random.set_seed(7)
    rng = np.random.default_rng(training._seed_from_tj_random())
    step = hand_written_step(reference)

    for epoch in range(3):
        order = rng.permutation(len(x))
        xs, ys = x[order], y[order]
        losses = [(float(step(xs[i:i + 32], ys[i:i + 32])), len(xs[i:i + 32]))
                  for i in range(0, len(x), 32)]
        expected = sum(l * n for l, n in losses) / len(x)
        assert history.history['loss'][epoch] == pytest.approx(expected, rel=1e-5)
    same_weights(model, reference)


def test_last_partial_batch_retraces_without_compiling(data):
    x, y = data
    model = make_model()
    model.fit(x[:128], y[:128], batch_size=32, epochs=1, verbose=0)
    before = model.train_function.cache_info()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)      # 130 = 4 * 32 + 2
    after = model.train_function.cache_info()
    assert after['traces'] == before['traces'] + 1
    assert after['compiles'] == before['compiles'] and after['disk_hits'] == before['disk_hits']
    assert model.optimizer.iterations.numpy() == 4 + 2 * 5


def test_steps_per_execution_gives_the_same_weights(data):
    """N batches per call run as a loop over the stacked batches: the weights, optimizer
    iterations and logged losses equal one batch per call; a shorter last execution runs the
    full batches left (as Keras does) and the partial batch goes alone; batch hooks run once
    per call, with the first and last batch of it."""
    x, y = data
    one = make_model(seed=2)
    one.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for n, begins, ends in [(2, [0, 2, 4, 6, 8], [1, 3, 5, 7, 8]), (3, [0, 3, 6, 8], [2, 5, 7, 8]),
                            (12, [0, 8], [7, 8])]:
        multi = make_model(seed=2, steps_per_execution=n)
        recorder = Recorder()
        history = multi.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                            callbacks=[recorder])
        same_weights(one, multi)
        assert multi.optimizer.iterations.numpy() == one.optimizer.iterations.numpy() == 18
        assert history.history['loss'] == pytest.approx(one.history.history['loss'], rel=1e-5)
        # 130 samples = 8 full batches of 16 and a partial batch of 2
        calls = [' '.join(c.split()[:2]) for c in recorder.calls
                 if c.startswith('batch_')][:2 * len(begins)]
        assert calls[0::2] == [f'batch_begin {b}' for b in begins]
        assert calls[1::2] == [f'batch_end {b}' for b in ends]
        info = multi._steps.train_multi.cache_info()
        assert info['compiles'] + info['disk_hits'] <= 1   # a shorter last call: a trace only
    source = multi._steps.train_multi.lower(
        np.zeros((12, 16, N_FEATURES), np.float32), np.zeros((12, 16), np.int32), 16.0).source
    kernel = source[source.index('def kernel'):]
    assert 'for ' in kernel and source.count('K.dot(') <= 4 * 2   # the step once, in a loop


def test_a_failed_multi_batch_call_leaves_weights_and_slots_as_before_it():
    """The multi-batch step runs in the Variables' own buffers (no copy in or out); when a
    batch in the middle of a call fails (here a py_function raising at its second batch),
    the weights and optimizer slots are those after the last call that succeeded."""
    calls, armed = [], []

    def check(v):
        calls.append(1)
        if armed and len(calls) == 5:   # the second call's second batch
            raise ValueError('bad batch')
        return v

    class Guard(keras.layers.Layer):
        def call(self, v):
            return tj.py_function(check, [v], tj.float32)

    class Snapshot(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.taken = (batch, self.model.get_weights(),
                          [np.array(v.numpy()) for v in self.model.optimizer.variables()])

    model = keras.Sequential([keras.layers.Dense(4), Guard(), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss='mse', steps_per_execution=3)
    x = np.random.default_rng(0).standard_normal((24, 3)).astype(np.float32)
    model.fit(x, 2.0 * x[:, :1], batch_size=4, epochs=1, verbose=0, shuffle=False)
    calls.clear()
    armed.append(True)
    snapshot = Snapshot()
    with pytest.raises(ValueError, match='bad batch'):
        model.fit(x, 2.0 * x[:, :1], batch_size=4, epochs=1, verbose=0, shuffle=False,
                  callbacks=[snapshot])
    batch, weights, slots = snapshot.taken
    assert batch == 2                    # the first call of three batches ran
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    for variable, want in zip(model.optimizer.variables(), slots):
        np.testing.assert_array_equal(variable.numpy(), want)
    source = model._steps.train_multi.lower(x[:12].reshape(3, 4, 3),
                                            x[:12, :1].reshape(3, 4, 1), 4.0).source
    assert '.copy()' not in source


def test_steps_per_execution_with_a_dataset_groups_batches_of_one_shape(data):
    """A dataset's batches run N per call too: runs of up to N batches of one shape are
    stacked, the partial last batch goes alone; the weights equal one batch per call."""
    x, y = data
    one = make_model(seed=2)
    one.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    multi = make_model(seed=2, steps_per_execution=3)
    recorder = Recorder()
    dataset = tj.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = multi.fit(dataset, epochs=2, verbose=0, callbacks=[recorder])
    same_weights(one, multi)
    assert multi.optimizer.iterations.numpy() == 18
    assert history.history['loss'] == pytest.approx(one.history.history['loss'], rel=1e-5)
    calls = [' '.join(c.split()[:2]) for c in recorder.calls if c.startswith('batch_')][:8]
    assert calls[0::2] == [f'batch_begin {b}' for b in (0, 3, 6, 8)]
    assert calls[1::2] == [f'batch_end {b}' for b in (2, 5, 7, 8)]
    assert multi._steps.train_multi.cache_info()['traces'] >= 1


def test_run_eagerly_matches_compiled_fit(data):
    x, y = data
    compiled = make_model(seed=3)
    compiled.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    eager = make_model(seed=3, run_eagerly=True)
    eager.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    same_weights(compiled, eager)
    assert not isinstance(eager.train_function, tj.Function)


def test_dropout_is_active_only_in_the_training_step(data):
    x, y = data
    tj.random.set_seed(8)
    model = keras.Sequential([keras.layers.Dense(8, activation='relu'),
                              keras.layers.Dropout(0.3), keras.layers.Dense(N_CLASSES)])
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.history['loss'][-1] < history.history['loss'][0]
    assert np.array_equal(model.predict(x), model.predict(x))           # inference: no mask
    assert model.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    W1, b1, W2, b2 = model.get_weights()
    np.testing.assert_allclose(model.predict(x), np.maximum(x @ W1 + b1, 0) @ W2 + b2,
                               rtol=1e-4, atol=1e-5)
    # in training a new mask each step: the same batch gives different losses
    model.reset_metrics()
    state = [v.numpy() for v in model.weights]
    model.optimizer.learning_rate = 0.0
    model.train_function(x[:32], y[:32, None], 32.0)
    first = float(model.loss_tracker.result())
    model.reset_metrics()
    model.train_function(x[:32], y[:32, None], 32.0)
    assert float(model.loss_tracker.result()) != first
    assert all(np.array_equal(u, v.numpy()) for u, v in zip(state, model.weights))


def test_evaluate_and_predict_match_numpy(data):
    x, y = data
    model = make_model(seed=4)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    W1, b1, W2, b2 = model.get_weights()
    logits = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    np.testing.assert_allclose(model.predict(x, batch_size=50), logits, rtol=1e-4, atol=1e-5)
    loss, accuracy = model.evaluate(x, y, batch_size=50, verbose=0)
    expected_loss = -np_log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].mean()
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert accuracy == pytest.approx((logits.argmax(-1) == y).mean())
    assert model.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        {'loss': loss, 'accuracy': accuracy}, rel=1e-5)
    assert model.metrics_names == ['loss', 'accuracy']


def test_verbose_output(data, capsys):
    x, y = data
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ''
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'Epoch 1/2' and lines[2] == 'Epoch 2/2'
    assert lines[1].startswith('5/5 - ') and ' - loss: ' in lines[1] and ' - accuracy: ' in lines[1]
    model.fit(x, y, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith('Epoch 1/1\n') and '5/5 [' in out and 'loss: ' in out


def test_summary(capsys):
    model = make_model()
    model.summary()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'Model: "{model.name}"'
    dense = [line for line in out if '(Dense)' in line]
    assert len(dense) == 2 and '(None, 8)' in dense[0] and dense[0].endswith('40')
    assert '(None, 3)' in dense[1] and dense[1].endswith('27')
    assert 'Total params: 67' in out and 'Trainable params: 67' in out
    with pytest.raises(ValueError, match='not yet been built'):
        keras.Sequential([keras.layers.Dense(2)]).summary()


def test_validation_data_and_split(data):
    x, y = data
    model = make_model()
    history = model.fit(x, y, epochs=2, validation_data=(x[:40], y[:40]), verbose=0)
    assert set(history.history) == {'loss', 'accuracy', 'val_loss', 'val_accuracy'}
    val_loss, _ = model.evaluate(x[:40], y[:40], verbose=0)
    assert history.history['val_loss'][-1] == pytest.approx(val_loss, rel=1e-6)
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert 'val_loss' in history.history


# ------------------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize('case', ['lengths', 'features', 'strings', 'objects', 'nan_x', 'nan_y',
                                  'validation'])
def test_bad_inputs_raise_and_change_nothing(data, case):
    x, y = data
    model = make_model()
    before = model.get_weights()
    bad_x = x.copy()
    bad_x[7, 2] = np.nan
    bad_y = y.astype(np.float32)
    bad_y[3] = np.nan
    cases = {
        'lengths': (ValueError, r'x has 130 samples, y has 129', dict(x=x, y=y[:-1])),
        'features': (ValueError, r'"dense.*value 4.*\(None, 5\)',
                     dict(x=np.ones((130, 5), np.float32), y=y)),
        'strings': (TypeError, 'numeric', dict(x=x.astype(str), y=y)),
        'objects': (TypeError, 'numeric', dict(x=x, y=np.array([None] * 130))),
        'nan_x': (ValueError, r'x contains NaN \(first at index \(7, 2\)\)', dict(x=bad_x, y=y)),
        'nan_y': (ValueError, 'y contains NaN', dict(x=x, y=bad_y)),
        'validation': (ValueError, 'validation_data', dict(x=x, y=y,
                                                           validation_data=(x, y[:5]))),
    }
    error, pattern, kwargs = cases[case]
    with pytest.raises(error, match=pattern):
        model.fit(verbose=0, **kwargs)
    for u, v in zip(before, model.get_weights()):
        assert np.array_equal(u, v)
    assert model.optimizer.iterations.numpy() == 0


def test_wrong_features_in_a_subclassed_model_fail_while_tracing(data):
    x, y = data

    class Wrapped(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = keras.layers.Dense(N_CLASSES)

        def call(self, inputs, training=None):
            return self.inner(inputs)

    model = Wrapped()
    model(x[:2])
    model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r'"dense.*expected axis -1.*value 4'):
        model.fit(np.ones((10, 6), np.float32), y[:10], verbose=0)
    assert all(np.array_equal(u, v) for u, v in zip(before, model.get_weights()))


def test_fit_needs_compile():
    with pytest.raises(RuntimeError, match='compile'):
        keras.Sequential([keras.layers.Dense(1)]).fit(np.ones((2, 1)), np.ones(2))


@pytest.mark.parametrize('option, message', [
    ({'epochs': 1.5}, 'epochs must be a non-negative integer'),
    ({'epochs': -1}, 'epochs must be a non-negative integer'),
    ({'epochs': float('inf')}, 'epochs must be a non-negative integer'),
    ({'epochs': float('nan')}, 'epochs must be a non-negative integer'),
    ({'epochs': '2'}, 'epochs must be a non-negative integer'),
    ({'initial_epoch': -2}, 'initial_epoch must be a non-negative integer'),
    ({'batch_size': 0}, 'batch_size must be a positive integer'),
    ({'batch_size': 2.5}, 'batch_size must be a positive integer'),
    ({'verbose': 5}, "verbose must be 0, 1, 2 or 'auto'"),
])
def test_fit_rejects_bad_options_and_changes_nothing(option, message):
    model = keras.Sequential([keras.layers.Dense(2)])
    model.compile(optimizer='sgd', loss='mse')
    model.build((None, 3))
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), **option)
    assert all(np.array_equal(u, v) for u, v in zip(before, model.get_weights()))
    assert model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), epochs=0,
                     verbose='auto').history == {}
    history = model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32),
                        epochs=np.array(2), batch_size=np.int64(2), verbose=0.0)
    assert len(history.history['loss']) == 2


def test_fit_after_a_failed_first_trace_still_creates_the_optimizer_slots():
    """The first compiled step fails while tracing (labels of the wrong rank), before Adam
    made its slot Variables; the next fit's trace is the first to succeed and may make them."""
    model = keras.Sequential([keras.layers.Dense(3)])
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    with pytest.raises(tj.errors.ShapeError, match=r'labels of shape \(8, 1, 2\)'):
        model.fit(x, np.zeros((8, 1, 2), np.int32), verbose=0)
    history = model.fit(x, np.zeros(8, np.int32), epochs=2, verbose=0)
    assert history.history['loss'][1] < history.history['loss'][0]


# ------------------------------------------------------------------------------ checkpoints

def test_save_load_round_trip_is_atomic(data, tmp_path):
    x, _ = data
    model = make_model(seed=5)
    path = model.save_weights(tmp_path / 'ckpt')
    assert path == str(tmp_path / 'ckpt.npz') and os.listdir(tmp_path) == ['ckpt.npz']
    other = make_model(seed=6)
    predicted = other.predict(x[:8])          # compiled: the kernel holds the weight buffers
    other.load_weights(tmp_path / 'ckpt')
    same_weights(model, other, rtol=0, atol=0)
    assert not np.allclose(other.predict(x[:8]), predicted)
    np.testing.assert_allclose(other.predict(x[:8]), model.predict(x[:8]), rtol=1e-6)
    other.load_weights(tmp_path / 'ckpt.npz')
    model.save_weights(str(tmp_path / 'ckpt'))    # overwrite in place: still one file
    assert os.listdir(tmp_path) == ['ckpt.npz']


def test_load_refuses_mismatched_checkpoints(tmp_path):
    model = make_model(seed=5)
    model.save_weights(tmp_path / 'ckpt')
    tj.random.set_seed(0)
    wider = keras.Sequential([keras.layers.Dense(9, activation='relu'),
                              keras.layers.Dense(N_CLASSES)])
    wider.build((None, N_FEATURES))
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r'weight 0 has shape \(4, 8\).*\(4, 9\).*nothing'):
        wider.load_weights(tmp_path / 'ckpt')
    deeper = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(8),
                               keras.layers.Dense(N_CLASSES)])
    deeper.build((None, N_FEATURES))
    with pytest.raises(ValueError, match='holds 4 weights but .* has 6'):
        deeper.load_weights(tmp_path / 'ckpt')
    assert all(np.array_equal(u, v) for u, v in zip(before, wider.get_weights()))
    with pytest.raises(ValueError, match='no weights yet'):
        keras.Sequential([keras.layers.Dense(8)]).load_weights(tmp_path / 'ckpt')
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / 'missing')


# ------------------------------------------------------------------------------ callbacks

class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append('train_begin')

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f'epoch_begin {epoch}')

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(f'batch_begin {batch}')

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f'batch_end {batch} {sorted(logs)}')

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f'epoch_end {epoch} {sorted(logs)}')

    def on_train_end(self, logs=None):
        self.calls.append('train_end')


def test_callback_hooks_run_in_keras_order(data):
    x, y = data
    recorder = Recorder()
    model = make_model()
    model.fit(x[:64], y[:64], batch_size=32, epochs=2, callbacks=[recorder],
              validation_data=(x[:10], y[:10]), verbose=0)
    batch = ['batch_begin {0}', "batch_end {0} ['accuracy', 'loss']"]
    epoch_end = "epoch_end {0} ['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    expected = ['train_begin']
    for epoch in range(2):
        expected += [f'epoch_begin {epoch}'] + [s.format(b) for b in range(2) for s in batch]
        expected += [epoch_end.format(epoch)]
    assert recorder.calls == expected + ['train_end']
    assert recorder.model is model and recorder.params['steps'] == 2


def test_early_stopping_stops_when_the_monitor_stalls(data):
    x, y = data
    model = make_model()
    model.optimizer.learning_rate = 0.0          # the loss cannot improve (no retrace either)
    stopper = keras.callbacks.EarlyStopping(monitor='loss', patience=2)
    history = model.fit(x, y, epochs=10, shuffle=False, callbacks=[stopper], verbose=0)
    assert len(history.epoch) == 3 and stopper.stopped_epoch == 2 and model.stop_training


class Scripted(keras.callbacks.Callback):
    """Puts a scripted 'score' into the epoch logs and records the weights after each epoch."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs['score'] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def test_early_stopping_restores_the_best_weights(data):
    x, y = data
    model = make_model()
    scripted = Scripted([3.0, 1.0, 2.0, 4.0, 5.0, 6.0])
    stopper = keras.callbacks.EarlyStopping(monitor='score', patience=2,
                                            restore_best_weights=True)
    history = model.fit(x, y, epochs=6, callbacks=[scripted, stopper], verbose=0)
    assert history.history['score'] == [3.0, 1.0, 2.0, 4.0]
    assert stopper.best_epoch == 1
    for u, v in zip(model.get_weights(), scripted.weights[1]):
        assert np.array_equal(u, v)


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at_batch):
        super().__init__()
        self.at_batch = at_batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at_batch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_in_a_callback_keeps_the_weights_of_the_last_step(data):
    x, y = data
    interrupted = make_model(seed=7)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(x, y, batch_size=32, epochs=3, shuffle=False,
                        callbacks=[Interrupt(at_batch=2)], verbose=1)
    reference = make_model(seed=7)
    reference.fit(x[:96], y[:96], batch_size=32, epochs=1, shuffle=False, verbose=0)
    same_weights(interrupted, reference, rtol=0, atol=0)
    assert interrupted.optimizer.iterations.numpy() == 3
    interrupted.fit(x, y, epochs=1, verbose=0)   # and training can go on afterwards

"""Normalisation, activation, reshaping and merge layers against Keras 3 (TensorFlow) fixtures,
tj.nn.moments/batch_normalization against numpy, and the functional API: building, calling,
summaries, configs, weights and a two-input two-output model trained by `fit` (compiled)
against the same model trained by Keras.

Fixtures come from tests/fixtures/make_layers.py (run with TensorFlow); only the last test
compiles a kernel.
"""
import json
import os
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors, keras

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
with open(os.path.join(FIXTURES, 'layers.json')) as f:
    SPECS = {spec['name']: spec for spec in json.load(f)}
ARRAYS = dict(np.load(os.path.join(FIXTURES, 'layers.npz')))
LAYER_CASES = [name for name, spec in SPECS.items() if 'class' in spec]


# ------------------------------------------------------------------------------ nn ops

def test_moments_match_numpy():
    x = np.random.default_rng(0).normal(size=(4, 3, 5)).astype(np.float32)
    for axes, keepdims in (([0], False), ([0, 2], True), (1, False), ([0, 1, 2], False)):
        mean, variance = tj.nn.moments(x, axes, keepdims=keepdims)
        axis = tuple([axes] if isinstance(axes, int) else axes)
        np.testing.assert_allclose(mean.numpy(), x.mean(axis, keepdims=keepdims), atol=1e-6)
        np.testing.assert_allclose(variance.numpy(), x.var(axis, keepdims=keepdims),
                                   rtol=1e-5)
    constant, spread = tj.nn.moments(np.full((3, 2), 7.0, np.float32), [0])
    assert np.all(spread.numpy() == 0) and np.all(constant.numpy() == 7)


def test_moments_gradient_is_the_variance_gradient():
    """stop_gradient(mean) in the variance does not change its gradient: 2 (x - mean) / n."""
    x = tj.Variable(np.array([[1.0, -2.0], [3.0, 0.5], [0.0, 4.0]]))
    with tj.GradientTape() as tape:
        _, variance = tj.nn.moments(x, [0])
        total = tj.reduce_sum(variance)
    xs = x.numpy()
    np.testing.assert_allclose(tape.gradient(total, x).numpy(),
                               2 * (xs - xs.mean(0)) / 3, rtol=1e-12)


def test_batch_normalization_matches_numpy():
    rng = np.random.default_rng(1)
    x, mean, var = rng.normal(size=(5, 3)), rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    offset, scale = rng.normal(size=3), rng.normal(size=3)
    got = tj.nn.batch_normalization(x, mean, var, offset, scale, 1e-3).numpy()
    np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-3) * scale + offset,
                               rtol=1e-12)
    bare = tj.nn.batch_normalization(x, mean, var, None, None, 0.0).numpy()
    np.testing.assert_allclose(bare, (x - mean) / np.sqrt(var), rtol=1e-12)


# ------------------------------------------------------------------------------ layers vs TF

def _fixture(name, key):
    return ARRAYS[f'{name}/{key}']


@pytest.mark.parametrize('name', LAYER_CASES)
def test_layer_outputs_and_gradients_equal_keras(name):
    spec = SPECS[name]
    layer = getattr(keras.layers, spec['class'])(**spec['kwargs'])
    xs = [tj.Variable(_fixture(name, f'x{k}')) for k in range(spec['inputs'])]
    arg = xs if len(xs) > 1 else xs[0]
    layer(arg)
    layer.set_weights([_fixture(name, f'w{k}') for k in range(spec['weights'])])
    call = {} if spec['training'] is None else {'training': spec['training']}
    with tj.GradientTape() as tape:
        out = layer(arg, **call)
        loss = tj.reduce_sum(out * _fixture(name, 'upstream'))
    np.testing.assert_allclose(out.numpy(), _fixture(name, 'out'), rtol=1e-5, atol=1e-5)
    sources = xs + list(layer.trainable_weights)
    for k, grad in enumerate(tape.gradient(loss, sources)):
        np.testing.assert_allclose(grad.numpy(), _fixture(name, f'grad{k}'), rtol=1e-4,
                                   atol=1e-5, err_msg=f'gradient {k}')
    for k, weight in enumerate(layer.weights):    # moving statistics updated as Keras does
        np.testing.assert_allclose(weight.numpy(), _fixture(name, f'after{k}'), rtol=1e-5,
                                   atol=1e-6, err_msg=weight.name)


@pytest.mark.parametrize('name', LAYER_CASES)
def test_from_config_of_get_config_is_the_same_layer(name):
    spec = SPECS[name]
    layer = getattr(keras.layers, spec['class'])(**spec['kwargs'])
    twin = type(layer).from_config(layer.get_config())
    assert twin.get_config() == layer.get_config()
    inputs = [_fixture(name, f'x{k}') for k in range(spec['inputs'])]
    arg = inputs if len(inputs) > 1 else inputs[0]
    layer(arg), twin(arg)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(twin(arg).numpy(), layer(arg).numpy())


def test_batch_normalization_frozen_or_inference_uses_the_moving_statistics():
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(8, 2)).astype(np.float32)
    bn = keras.layers.BatchNormalization()
    inference = bn(x).numpy()
    np.testing.assert_allclose(inference, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    bn.trainable = False                       # Keras 3: a frozen layer runs in inference mode
    np.testing.assert_array_equal(bn(x, training=True).numpy(), inference)
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    bn.trainable = True
    trained = bn(x, training=True).numpy()
    np.testing.assert_allclose(trained.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.01 * x.mean(0), rtol=1e-5)


def test_layer_errors_are_specific():
    with pytest.raises(ValueError, match='consecutive and start from 1'):
        keras.layers.Permute((1, 3))
    with pytest.raises(errors.ShapeError, match='matching shapes except for the concat'):
        keras.layers.Concatenate()([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(ValueError, match='exactly 2 inputs'):
        keras.layers.Subtract()([np.ones(2), np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match='list of inputs'):
        keras.layers.Add()(np.ones((2, 2)))
    with pytest.raises(errors.ShapeError, match='cannot reshape'):
        keras.layers.Reshape((5,))(np.ones((2, 4)))
    with pytest.raises(errors.ShapeError, match='do not broadcast'):
        keras.layers.Multiply()([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match='negative'):
        keras.layers.ReLU(max_value=-1)
    with pytest.raises(ValueError, match='out of bounds'):
        keras.layers.LayerNormalization(axis=3)(np.ones((2, 3)))


def test_leaky_relu_accepts_alpha_with_a_warning_and_names_follow_keras():
    with pytest.warns(UserWarning, match='alpha'):
        layer = keras.layers.LeakyReLU(alpha=0.5)
    assert layer.negative_slope == 0.5 and layer.name.startswith('leaky_re_lu')
    assert keras.layers.ReLU().name.startswith('re_lu')
    np.testing.assert_array_equal(layer(np.array([-2.0, 0.0, 3.0])).numpy(), [-1.0, 0.0, 3.0])


def test_lambda_and_rescaling():
    double = keras.layers.Lambda(lambda x, factor: x * factor, arguments={'factor': 2.0})
    np.testing.assert_array_equal(double(np.array([[1.0, -3.0]])).numpy(), [[2.0, -6.0]])
    seen = []
    flagged = keras.layers.Lambda(lambda x, training=None: seen.append(training) or x)
    flagged(np.ones((1, 1)), training=True)
    assert seen == [True]
    images = np.array([[0, 128, 255]], np.uint8)
    out = keras.layers.Rescaling(1 / 127.5, offset=-1)(images)
    assert out.dtype == tj.float32
    np.testing.assert_allclose(out.numpy(), images / 127.5 - 1, atol=1e-6)


def test_to_categorical_matches_a_numpy_one_hot():
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(keras.utils.to_categorical(labels), np.eye(3)[labels])
    column = keras.utils.to_categorical(labels[:, None], num_classes=4)
    assert column.shape == (4, 4) and column.dtype == np.float64
    assert keras.utils.to_categorical(np.zeros((2, 3), int)).shape == (2, 3, 1)
    with pytest.raises(ValueError, match=r'in \[0, 2\)'):
        keras.utils.to_categorical([0, 2], num_classes=2)
    with pytest.raises(ValueError, match='integer class labels'):
        keras.utils.to_categorical([0.5, 1.0])


# ------------------------------------------------------------------------------ functional API

def two_input_model():
    """The fixture's model: the same layers and names as make_layers.two_input_model."""
    a = keras.Input(shape=(4,), name='a')
    b = keras.Input(shape=(3,), name='b')
    h = keras.layers.Concatenate(name='join')([
        keras.layers.Dense(5, activation='relu', name='dense_a')(a),
        keras.layers.Dense(5, name='dense_b')(b)])
    o1 = keras.layers.Dense(1, name='out1')(keras.layers.BatchNormalization(name='bn')(h))
    o2 = keras.layers.Dense(3, activation='softmax', name='out2')(h)
    return keras.Model([a, b], [o1, o2])


def set_fixture_weights(model, stage):
    for layer in model.layers:
        count = len(layer.weights)
        layer.set_weights([ARRAYS[f'fit/{stage}/{layer.name}/{k}'] for k in range(count)])


def numpy_forward(weights, xa, xb):
    """The two-input model in numpy (inference mode) from {layer name: [arrays]}."""
    relu = lambda v: np.maximum(v, 0)   # noqa: E731
    h = np.concatenate([relu(xa @ weights['dense_a'][0] + weights['dense_a'][1]),
                        xb @ weights['dense_b'][0] + weights['dense_b'][1]], axis=1)
    gamma, beta, mean, var = weights['bn']
    normed = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    logits = h @ weights['out2'][0] + weights['out2'][1]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return normed @ weights['out1'][0] + weights['out1'][1], e / e.sum(1, keepdims=True)


def test_input_and_symbolic_calls():
    x = keras.Input(shape=(None, 4), name='seq')
    assert x.shape == (None, None, 4) and x.dtype == tj.float32
    y = keras.layers.Dense(3)(x)
    assert y.shape == (None, None, 3)
    flat = keras.layers.Reshape((-1,))(keras.Input(shape=(2, 3)))
    assert flat.shape == (None, 6)
    ids = keras.Input(shape=(5,), dtype='int32', batch_size=8)
    assert ids.shape == (8, 5) and ids.dtype == tj.int32
    with pytest.raises(TypeError, match='symbolic'):
        x + 1.0
    with pytest.raises(TypeError, match='symbolic'):
        np.asarray(x)


def test_model_layers_order_names_and_parameter_counts_match_keras():
    model = two_input_model()
    fit = SPECS['fit']
    assert [layer.name for layer in model.layers] == fit['layers']
    assert model.count_params() == fit['params'][0]
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == fit['params'][1]
    assert model.get_layer('bn') is model.layers[5] and model.get_layer(index=-1).name == 'out2'
    assert model.output_names == ['out1', 'out2'] and len(model.inputs) == 2
    with pytest.raises(ValueError, match='No such layer: nope'):
        model.get_layer('nope')
    with pytest.raises(ValueError, match='either a layer name or layer index'):
        model.get_layer()


def test_functional_call_matches_numpy_and_takes_lists_or_dicts():
    model = two_input_model()
    set_fixture_weights(model, 'initial')
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    xa, xb = ARRAYS['fit/xa'], ARRAYS['fit/xb']
    want1, want2 = numpy_forward(weights, xa, xb)
    for inputs in ([xa, xb], (xa, xb), {'a': xa, 'b': xb}):
        out1, out2 = model(inputs)
        np.testing.assert_allclose(out1.numpy(), want1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out2.numpy(), want2, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match='missing'):
        model({'a': xa})
    with pytest.raises(ValueError, match='2 inputs'):
        model([xa])
    with pytest.raises(errors.ShapeError, match=r'Input "b".*expected shape=\(None, 3\), '
                       r'found shape=\(24, 4\)'):
        model([xa, xa])


def test_shared_layers_nested_models_and_dict_outputs():
    shared = keras.layers.Dense(2, name='shared_dense')
    left, right = keras.Input(shape=(3,)), keras.Input(shape=(3,))
    inner = keras.Model(left, shared(left), name='inner')           # a model used as a layer
    diff = keras.layers.Subtract()([inner(right), shared(left)])
    model = keras.Model({'l': left, 'r': right}, {'diff': diff, 'same': shared(right)})
    assert len(model.trainable_weights) == 2                          # one kernel, one bias
    x = np.random.default_rng(3).normal(size=(2, 3)).astype(np.float32)
    out = model({'l': x, 'r': x})
    np.testing.assert_allclose(out['diff'].numpy(), 0.0, atol=1e-6)
    kernel, bias = shared.get_weights()
    np.testing.assert_allclose(out['same'].numpy(), x @ kernel + bias, rtol=1e-5)
    assert model.output_names == ['diff', 'same']


def test_graph_errors():
    a, b = keras.Input(shape=(2,)), keras.Input(shape=(2,))
    total = keras.layers.Add()([a, b])
    with pytest.raises(ValueError, match='Graph disconnected'):
        keras.Model(a, total)
    with pytest.raises(TypeError, match='KerasTensors'):
        keras.Model(a, np.ones(2))
    twin = keras.layers.Dense(1, name='twin')
    with pytest.raises(ValueError, match='used 2 times'):
        keras.Model(a, keras.layers.Add()([twin(a), keras.layers.Dense(1, name='twin')(a)]))


def test_summary_prints_keras_3s_table(capsys):
    model = two_input_model()
    model.summary()
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == 'Model: "' + model.name + '"'
    header = lines[2]
    for title in ('Layer (type)', 'Output Shape', 'Param #', 'Connected to'):
        assert title in header
    row = next(line for line in lines if line.startswith('│ join (Concatenate)'))
    assert '(None, 10)' in row and 'dense_a[0][0],' in row
    row = next(line for line in lines if line.startswith('│ bn '))
    assert '│ (None, 10) ' in row and '│               40 │ join[0][0]' in row
    assert ' Total params: 129 (516.00 B)' in lines
    assert ' Trainable params: 109 (436.00 B)' in lines
    assert ' Non-trainable params: 20 (80.00 B)' in lines
    assert len({len(line) for line in lines[1:-3]}) == 1              # a rectangular table


def test_get_config_round_trips_in_keras_format():
    a = keras.Input(shape=(4,), name='a')
    b = keras.Input(shape=(4,), name='b')
    norm = keras.layers.LayerNormalization(name='norm')
    joined = keras.layers.Concatenate(name='cat')([norm(a), norm(b), keras.layers.Add()([a, b])])
    model = keras.Model([a, b], [keras.layers.BatchNormalization(name='bn')(joined),
                                 keras.layers.Softmax(name='soft')(joined)])
    config = model.get_config()
    assert config['input_layers'] == [['a', 0, 0], ['b', 0, 0]]
    assert config['output_layers'] == [['bn', 0, 0], ['soft', 0, 0]]
    norm_entry = next(e for e in config['layers'] if e['name'] == 'norm')
    assert [n['args'][0]['config']['keras_history'] for n in norm_entry['inbound_nodes']] == \
        [['a', 0, 0], ['b', 0, 0]]
    twin = keras.Model.from_config(config)
    assert type(twin).__name__ == 'Functional' and twin.get_config() == config
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    for got, want in zip(twin([x, 2 * x]), model([x, 2 * x])):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_save_and_load_weights_of_a_functional_model(tmp_path):
    model, fresh = two_input_model(), two_input_model()
    set_fixture_weights(model, 'final')
    path = model.save_weights(str(tmp_path / 'two'))
    fresh.load_weights(path)
    for want, got in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_compile_refuses_mismatched_loss_specs():
    model = two_input_model()
    with pytest.raises(ValueError, match='2 outputs'):
        model.compile('sgd', loss=['mse'])
    with pytest.raises(ValueError, match='not outputs of the model'):
        model.compile('sgd', loss={'out3': 'mse'})
    with pytest.raises(ValueError, match='list of lists'):
        model.compile('sgd', loss='mse', metrics=['mae', 'mae'])


@pytest.mark.compiled
def test_two_input_two_output_fit_equals_keras():
    """SGD, batch 8, 3 steps per epoch, 2 epochs, no shuffling: weights, BatchNormalization's
    moving statistics, per-output logs, evaluate and the predictions as Keras computed them
    (and as numpy computes them from the trained weights)."""
    fit = SPECS['fit']
    model = two_input_model()
    set_fixture_weights(model, 'initial')
    model.compile(keras.optimizers.SGD(0.1), loss=['mse', 'sparse_categorical_crossentropy'],
                  loss_weights=[1.0, 0.5], metrics=[['mae'], ['accuracy']])
    x, y = [ARRAYS['fit/xa'], ARRAYS['fit/xb']], [ARRAYS['fit/y1'], ARRAYS['fit/y2']]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert list(history.history) == list(fit['history'])
    for name, values in fit['history'].items():
        np.testing.assert_allclose(history.history[name], values, rtol=2e-5, err_msg=name)
    for layer in model.layers:
        for k, weight in enumerate(layer.weights):
            np.testing.assert_allclose(weight.numpy(), ARRAYS[f'fit/final/{layer.name}/{k}'],
                                       rtol=1e-4, atol=1e-6, err_msg=weight.name)
    logs = model.evaluate({'a': x[0], 'b': x[1]}, {'out1': y[0], 'out2': y[1]}, verbose=0,
                          return_dict=True)
    assert logs == pytest.approx(fit['evaluate'], rel=2e-5)
    pred1, pred2 = (p.numpy() for p in model(x))     # eager: no third kernel to compile
    np.testing.assert_allclose(pred1, ARRAYS['fit/pred1'], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred2, ARRAYS['fit/pred2'], rtol=1e-4, atol=1e-6)
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    want1, want2 = numpy_forward(weights, *x)                  # the hand-written reference
    np.testing.assert_allclose(pred1, want1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred2, want2, rtol=1e-4, atol=1e-6)


def test_sequential_takes_an_input_first_and_builds_at_once():
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.ReLU()])
    assert model.built and [type(layer).__name__ for layer in model.layers] == [
        'Dense', 'BatchNormalization', 'ReLU']
    assert model.count_params() == 6 * 4 + 4 + 4 * 4
    x = np.random.default_rng(5).normal(size=(3, 6)).astype(np.float32)
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_allclose(model(x).numpy(),
                               np.maximum((x @ kernel + bias) / np.sqrt(1 + 1e-3), 0), rtol=1e-5)
    with pytest.raises(ValueError, match='before the other layers'):
        model.add(keras.Input(shape=(4,)))


def test_dict_losses_weights_and_metrics_name_the_logs_as_keras():
    """Eager steps (run_eagerly) of the fixture model with dict specs: the log names Keras
    uses, outputs without a loss are not trained on, and the loss is the weighted sum."""
    model = two_input_model()
    set_fixture_weights(model, 'initial')
    model.compile('sgd', loss={'out2': 'sparse_categorical_crossentropy'},
                  loss_weights={'out2': 0.25}, metrics={'out1': 'mae', 'out2': ['accuracy']},
                  run_eagerly=True)
    x = {'a': ARRAYS['fit/xa'], 'b': ARRAYS['fit/xb']}
    y = {'out1': ARRAYS['fit/y1'], 'out2': ARRAYS['fit/y2']}
    logs = model.evaluate(x, y, batch_size=24, verbose=0, return_dict=True)
    assert list(logs) == ['loss', 'out1_mae', 'out2_accuracy', 'out2_loss']
    weights = {layer.name: layer.get_weights() for layer in model.layers}
    pred1, pred2 = numpy_forward(weights, x['a'], x['b'])
    labels = ARRAYS['fit/y2'][:, 0]
    cross_entropy = -np.mean(np.log(pred2[np.arange(len(labels)), labels]))
    assert logs['out2_loss'] == pytest.approx(cross_entropy, rel=1e-5)
    assert logs['loss'] == pytest.approx(0.25 * cross_entropy, rel=1e-5)
    assert logs['out1_mae'] == pytest.approx(np.mean(np.abs(pred1 - y['out1'])), rel=1e-5)
    assert logs['out2_accuracy'] == pytest.approx(np.mean(pred2.argmax(1) == labels))
    before = model.get_layer('out1').get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for got, want in zip(model.get_layer('out1').get_weights(), before):
        np.testing.assert_array_equal(got, want)          # out1 has no loss: no gradient


def test_the_training_flag_reaches_layers_of_a_functional_model():
    inputs = keras.Input(shape=(40,))
    dropped = keras.layers.Dropout(0.5, name='drop')(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name='bn')(dropped))
    x = np.ones((6, 40), np.float32)
    np.testing.assert_allclose(model(x).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(model.get_layer('bn').moving_mean.numpy(), 0.0)
    model(x, training=True)                              # dropout active, batch statistics
    moving = model.get_layer('bn').moving_mean.numpy()
    assert np.all(moving >= 0) and np.any(moving != moving[0]) and moving.max() <= 0.02
    # a training=True given at construction holds unless the model's call says otherwise
    always = keras.Model(inputs, keras.layers.Dropout(0.5)(inputs, training=True))
    assert np.any(always(x).numpy() == 0)
    assert not np.any(always(x, training=False).numpy() == 0)

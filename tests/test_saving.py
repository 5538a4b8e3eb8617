"""Saving: tj.train.Checkpoint / CheckpointManager against what TF writes and raises
(tests/fixtures/saving_tf.json, made by make_saving.py), Keras records and `.keras` files,
ModelCheckpoint and CSVLogger, damaged files, and a new process restoring a trained model."""
import csv
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

keras = tj.keras
FIXTURE = json.loads((pathlib.Path(__file__).parent / 'fixtures' / 'saving_tf.json').read_text())
VALUE = '/.ATTRIBUTES/VARIABLE_VALUE'


class Net(tj.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.w = tj.Variable(np.ones((2, 3), np.float32) * scale)
        self.b = tj.Variable(np.zeros(3, np.float32) + scale)
        self.sub = [tj.Variable(1.0 * scale), {'k': tj.Variable(2.0 * scale)}]


def _values(module):
    return [np.array(v) for v in module.variables]


# ----------------------------------------------------------------------------- Checkpoint

def test_module_keys_are_the_ones_tf_writes(tmp_path):
    path = tj.train.Checkpoint(m=Net(), v=tj.Variable(5)).save(str(tmp_path / 'ck'))
    assert [list(e) for e in tj.train.list_variables(path)] == FIXTURE['module_keys']


def test_save_numbers_checkpoints_and_write_does_not(tmp_path):
    ckpt = tj.train.Checkpoint(m=Net())
    prefix = str(tmp_path / 'ck')
    assert [ckpt.save(prefix) for _ in range(2)] == [prefix + '-1', prefix + '-2']
    assert int(ckpt.save_counter.numpy()) == 2
    # TF's Checkpoint.save lists only the latest checkpoint in the state file
    assert (tmp_path / 'checkpoint').read_text().splitlines() == [
        'model_checkpoint_path: "ck-2"', 'all_model_checkpoint_paths: "ck-2"']
    assert ckpt.write(str(tmp_path / 'other')) == str(tmp_path / 'other')
    assert tj.train.latest_checkpoint(str(tmp_path)) == prefix + '-2'
    assert int(ckpt.save_counter.numpy()) == 2
    assert tj.train.latest_checkpoint(str(tmp_path / 'nowhere')) is None


def test_restore_into_new_objects_and_the_assertions(tmp_path):
    path = tj.train.Checkpoint(m=Net(3.0), v=tj.Variable(5)).save(str(tmp_path / 'ck'))
    fresh, v = Net(), tj.Variable(0)
    ckpt = tj.train.Checkpoint(m=fresh, v=v)
    status = ckpt.restore(path).assert_consumed()
    for got, want in zip(_values(fresh), _values(Net(3.0))):
        np.testing.assert_array_equal(got, want)
    assert int(v.numpy()) == 5 and int(ckpt.save_counter.numpy()) == 1
    assert status.expect_partial() is status
    other = tj.train.Checkpoint(m=Net(), w=tj.Variable(1.0)).restore(path)
    with pytest.raises(AssertionError, match='1 Python objects that were not bound'):
        other.assert_existing_objects_matched()
    with pytest.raises(AssertionError, match=r'Unresolved .* v\b'):
        other.assert_consumed()
    # read() does not create save_counter, so the saved count waits until it exists (TF too)
    reader = tj.train.Checkpoint(m=Net(), v=tj.Variable(0))
    status = reader.read(path).assert_existing_objects_matched()
    with pytest.raises(AssertionError, match='save_counter'):
        status.assert_consumed()
    assert int(reader.save_counter.numpy()) == 1
    status.assert_consumed()
    with pytest.raises(AssertionError, match='No checkpoint specified'):
        ckpt.restore(None).assert_consumed()


def test_restoring_a_written_checkpoint_leaves_save_counter_unmatched_as_tf(tmp_path):
    path = tj.train.Checkpoint(v=tj.Variable(np.ones(3, np.float32))).write(str(tmp_path / 'w'))
    status = tj.train.Checkpoint(v=tj.Variable(np.zeros(3, np.float32))).restore(path)
    with pytest.raises(AssertionError, match=r"save_counter:0"):
        status.assert_existing_objects_matched()


def test_bad_objects_and_paths_raise_what_tf_raises(tmp_path):
    with pytest.raises(ValueError, match='was expecting v to be a trackable object'):
        tj.train.Checkpoint(v=3)
    ckpt = tj.train.Checkpoint(v=tj.Variable(1.0))
    with pytest.raises(errors.NotFoundError, match=r"checkpoint suffix \(e.g. the '-1'"):
        ckpt.restore(str(tmp_path / 'zzz'))
    ckpt.save(str(tmp_path / 'ck'))
    with pytest.raises(errors.NotFoundError, match='is a directory'):
        ckpt.restore(str(tmp_path))
    with pytest.raises(errors.NotFoundError, match='Failed to find any matching files'):
        tj.train.list_variables(str(tmp_path / 'nothing'))


def test_list_and_load_variable(tmp_path):
    ckpt = tj.train.Checkpoint(v=tj.Variable(np.arange(3, dtype=np.float32)))
    path = ckpt.save(str(tmp_path / 'ck'))
    for where in (path, str(tmp_path)):   # a directory means its latest checkpoint, as in TF
        np.testing.assert_array_equal(tj.train.load_variable(where, 'v' + VALUE), [0, 1, 2])
    assert tj.train.load_variable(path, 'save_counter' + VALUE) == 1
    assert tj.train.load_variable(path, 'save_counter' + VALUE).dtype == np.int64
    with pytest.raises(errors.NotFoundError, match='Key v not found in checkpoint'):
        tj.train.load_variable(path, 'v')


def _step_eagerly(model, x, y):
    model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)


def _keras_model(unbuilt=False):
    tj.random.set_seed(7)
    first = keras.layers.Dense(3) if unbuilt else keras.layers.Dense(3, input_shape=(4,))
    model = keras.Sequential([first, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), 'mse', run_eagerly=True)
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)


def test_keras_keys_are_tf_keras_names(tmp_path):
    """The names of TF's checkpoint guide: layer_with_weights-N, slots by variable, iter."""
    model = _keras_model()
    _step_eagerly(model, *_data())
    path = tj.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(tmp_path / 'k'))
    keys = [k for k, _ in tj.train.list_variables(path)]
    layer = 'model/layer_with_weights-0/kernel'
    assert layer + VALUE in keys and 'optimizer/iter' + VALUE in keys
    assert 'optimizer/learning_rate' + VALUE in keys
    assert [k for k in keys if k.startswith(layer + '/.OPTIMIZER_SLOT/')] == [
        f'{layer}/.OPTIMIZER_SLOT/optimizer/{slot}{VALUE}' for slot in ('m', 'v')]
    assert len(keys) == 1 + 4 * 3 + 2   # graph, 4 weights with 2 slots each, iter, lr


def test_deferred_restoration_of_weights_and_slots_created_later(tmp_path):
    x, y = _data()
    model = _keras_model()
    _step_eagerly(model, x, y)
    path = tj.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / 'ck'))
    later = _keras_model(unbuilt=True)
    ckpt = tj.train.Checkpoint(model=later, optimizer=later.optimizer)
    status = ckpt.restore(path).assert_existing_objects_matched()
    assert not later.built and int(later.optimizer.iterations.numpy()) == 1
    with pytest.raises(AssertionError, match='layer_with_weights-0/kernel'):
        status.assert_consumed()
    later.build((None, 4))               # weights created now take the saved values
    for got, want in zip(later.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    # the same step on both: slots restored from the checkpoint, not zeros, give equal slots
    for m in (model, later):
        _step_eagerly(m, x, y)
    status.assert_consumed()
    for v, w in zip(later.trainable_weights, model.trainable_weights):
        for slot in ('m', 'v'):
            np.testing.assert_allclose(later.optimizer.get_slot(v, slot).numpy(),
                                       model.optimizer.get_slot(w, slot).numpy(), rtol=1e-6)
    np.testing.assert_allclose(later.predict(x), model.predict(x), rtol=1e-6)


def test_mismatched_values_raise_and_change_nothing(tmp_path):
    path = tj.train.Checkpoint(a=tj.Variable(np.ones(3, np.float32)),
                               b=tj.Variable(np.ones(3, np.float32))).write(str(tmp_path / 'c'))
    a, b = tj.Variable(np.zeros(3, np.float32)), tj.Variable(np.zeros(4, np.float32))
    with pytest.raises(errors.InvalidArgumentError,
                       match=r'incompatible tensor with shape \(3,\) .* shape \(4,\)'):
        tj.train.Checkpoint(a=a, b=b).read(path)
    b = tj.Variable(np.zeros(3, np.int32))
    with pytest.raises(errors.InvalidArgumentError, match='expected dtype int32 does not equal'):
        tj.train.Checkpoint(a=a, b=b).read(path)
    assert np.array(a).tolist() == [0, 0, 0] and np.array(b).tolist() == [0, 0, 0]


@pytest.mark.parametrize('damage', ['truncate_data', 'empty_data', 'truncate_index',
                                    'garbage_index', 'swap_data'])
def test_damaged_files_name_themselves_and_change_nothing(tmp_path, damage):
    ckpt = tj.train.Checkpoint(v=tj.Variable(np.arange(5, dtype=np.float32)))
    path = ckpt.write(str(tmp_path / 'c'))
    data, index = pathlib.Path(path + '.data-00000-of-00001'), pathlib.Path(path + '.index')
    if damage == 'truncate_data':
        data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])
    elif damage == 'empty_data':
        data.write_bytes(b'')
    elif damage == 'truncate_index':
        index.write_bytes(index.read_bytes()[:20])
    elif damage == 'garbage_index':
        index.write_bytes(b'\x00\xff' * 10)
    else:   # a data file from another save beside this index
        tj.train.Checkpoint(v=tj.Variable(np.ones(5, np.float32))).write(str(tmp_path / 'd'))
        data.write_bytes((tmp_path / 'd.data-00000-of-00001').read_bytes())
    target = tj.Variable(np.zeros(5, np.float32))
    damaged = str(index if 'index' in damage else data)
    with pytest.raises(errors.DataLossError, match=damaged.replace('.', r'\.')):
        tj.train.Checkpoint(v=target).read(path)
    assert np.array(target).tolist() == [0] * 5


def test_a_failed_save_keeps_the_old_files_and_the_counter(tmp_path, monkeypatch):
    v = tj.Variable(np.ones(3, np.float32))
    ckpt = tj.train.Checkpoint(v=v)
    first = ckpt.save(str(tmp_path / 'ck'))
    before = sorted(os.listdir(tmp_path))

    def broken(f, **arrays):
        f.write(b'partial')
        raise OSError('disk full')
    monkeypatch.setattr(np, 'savez', broken)
    with pytest.raises(OSError, match='disk full'):
        ckpt.save(str(tmp_path / 'ck'))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == before and int(ckpt.save_counter.numpy()) == 1
    assert tj.train.latest_checkpoint(str(tmp_path)) == first
    tj.train.Checkpoint(v=tj.Variable(np.zeros(3, np.float32))).restore(first).assert_consumed()


def test_manager_keeps_the_newest_and_recovers_them(tmp_path):
    want = FIXTURE['manager']
    v = tj.Variable(np.ones(3, np.float32))
    ckpt = tj.train.Checkpoint(v=v)
    directory = str(tmp_path / 'managed')
    manager = tj.train.CheckpointManager(ckpt, directory, max_to_keep=2)
    assert manager.latest_checkpoint is None and manager.checkpoints == []
    assert [os.path.basename(manager.save()) for _ in range(3)] == want['saved']
    assert sorted(os.listdir(directory)) == want['files']
    assert [os.path.basename(p) for p in manager.checkpoints] == want['checkpoints']
    assert pathlib.Path(directory, 'checkpoint').read_text().splitlines() == want['state']
    assert os.path.basename(manager.save(checkpoint_number=10)) == want['numbered']
    assert int(ckpt.save_counter.numpy()) == want['save_counter_after']
    again = tj.train.CheckpointManager(tj.train.Checkpoint(v=v), directory, max_to_keep=2)
    assert [os.path.basename(p) for p in again.checkpoints] == want['recovered']
    assert again.latest_checkpoint == os.path.join(directory, 'ckpt-10')
    with pytest.raises(ValueError, match='positive integer or `None`'):
        tj.train.CheckpointManager(ckpt, directory, max_to_keep=0)
    v.assign([7.0, 7.0, 7.0])
    assert again.restore_or_initialize() == again.latest_checkpoint
    assert np.array(v).tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- Keras records

@keras.saving.register_keras_serializable(package='Custom')
def my_act(x):
    return x * 2


@keras.saving.register_keras_serializable()
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor


def test_records_of_optimizers_losses_initializers_and_functions_match_keras():
    records = FIXTURE['records']
    ours = {'sgd': keras.optimizers.SGD(0.1, momentum=0.9),
            'scce': keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            'glorot': keras.initializers.GlorotUniform(), 'custom_fn': my_act}
    for name, obj in ours.items():
        record, theirs = keras.saving.serialize_keras_object(obj), records[name]
        if isinstance(theirs, dict) and isinstance(theirs['config'], dict):
            assert {k: record[k] for k in ('module', 'class_name', 'registered_name')} == {
                k: theirs[k] for k in ('module', 'class_name', 'registered_name')}
            shared = set(record['config']) & set(theirs['config']) - {'name', 'learning_rate'}
            assert shared and all(record['config'][k] == theirs['config'][k] for k in shared)
            rebuilt = keras.saving.deserialize_keras_object(theirs)   # Keras's own record
            assert type(rebuilt) is type(obj)
            assert _unnamed(rebuilt.get_config()) == _unnamed(obj.get_config())
        else:
            assert record == theirs
    assert [keras.saving.get_registered_name(Scale),
            keras.saving.get_registered_name(my_act)] == records['registered_names']


def _unnamed(config):
    return {k: v for k, v in config.items() if k != 'name'}


def test_a_model_config_written_by_keras_rebuilds_the_same_architecture():
    config = FIXTURE['keras_file']['config']
    model = keras.saving.deserialize_keras_object(config)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ['Dense', 'Dense', 'Scale', 'Dropout', 'Flatten']
    dense, custom, scale, dropout = model.layers[:4]
    assert dense.units == 3 and dense.activation is keras.activations.relu
    assert custom.activation is my_act and custom.kernel_initializer.stddev == 0.1
    assert custom.kernel_initializer.seed == 3 and scale.factor == 3.0 and dropout.rate == 0.5
    assert model.built and dense.kernel.shape == (4, 3)
    assert type(model.optimizer).__name__ == 'Adam' and model.optimizer.epsilon == 1e-7
    assert np.isclose(float(model.optimizer.learning_rate.numpy()), 0.01)
    assert [type(fn).__name__ for fn in model.compiled_loss.losses] == ['MeanSquaredError']
    assert model.metrics_names == ['loss', 'mae', 'accuracy']


def test_unknown_classes_and_unregistrable_objects_are_refused():
    with pytest.raises(TypeError, match="Could not locate class 'Nope'"):
        keras.saving.deserialize_keras_object({'class_name': 'Nope', 'config': {},
                                               'module': None, 'registered_name': None})
    with pytest.raises(ValueError, match='does not have a get_config'):
        keras.saving.register_keras_serializable()(type('NoConfig', (), {}))
    with pytest.raises(TypeError, match='register it'):
        keras.saving.serialize_keras_object(lambda x: x)
    with pytest.raises(ValueError, match='Keras option kernel_regularizer'):
        keras.saving.deserialize_keras_object({'class_name': 'Dense', 'module': 'keras.layers',
                                               'config': {'units': 2, 'kernel_regularizer': 'l2'}})


@pytest.mark.parametrize('layer', [
    keras.layers.Dense(4, activation='tanh', use_bias=False, name='d'),
    keras.layers.Dense(2, activation=tj.nn.relu, kernel_initializer='he_normal'),
    keras.layers.Activation('sigmoid'), keras.layers.Flatten(name='f'),
    keras.layers.Dropout(0.25, seed=3), Scale(1.5, trainable=False)], ids=lambda x: x.name)
def test_layer_configs_are_json_and_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    assert config['name'] == layer.name and config['trainable'] == layer.trainable
    again = type(layer).from_config(config)
    assert again.get_config() == config and again.name == layer.name


# the arguments without defaults, for every layer of tj.keras.layers that needs some
_REQUIRED_ARGUMENTS = {
    'Activation': ('relu',), 'Conv1D': (2, 3), 'Conv2D': (2, 3), 'Conv2DTranspose': (2, 3),
    'DepthwiseConv2D': (3,), 'Dense': (2,), 'Dropout': (0.5,), 'Embedding': (5, 2),
    'InputLayer': ((3,),), 'Lambda': (tj.nn.relu,), 'Permute': ((2, 1),),
    'RepeatVector': (3,), 'Rescaling': (0.5,), 'Reshape': ((2, -1),),
    'SimpleRNN': (3,), 'LSTM': (3,), 'GRU': (3,), 'SimpleRNNCell': (3,), 'LSTMCell': (3,),
    'GRUCell': (3,), 'RNN': (keras.layers.LSTMCell(2),),
    'StackedRNNCells': ([keras.layers.GRUCell(2), keras.layers.SimpleRNNCell(3)],),
    'Bidirectional': (keras.layers.GRU(2, return_sequences=True),),
    'TimeDistributed': (keras.layers.Dense(2),)}
_LAYER_CLASSES = sorted(name for name, obj in vars(keras.layers).items()
                        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
                        and obj.__name__ == name)


@pytest.mark.parametrize('name', _LAYER_CLASSES)
def test_every_layer_class_round_trips_its_config_and_record(name):
    """Each layer class of tj.keras.layers (new ones included: the list is read from the
    module) rebuilds from its config and from its JSON record, found by class name."""
    cls = getattr(keras.layers, name)
    layer = cls(*_REQUIRED_ARGUMENTS.get(name, ()))
    config = layer.get_config()
    assert {'name', 'dtype'} <= set(config)   # and trainable, but in Keras's InputLayer
    assert cls.from_config(config).get_config() == config
    record = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    assert record['class_name'] == name and record['module'] == 'keras.layers'
    rebuilt = keras.saving.deserialize_keras_object(record)
    assert type(rebuilt) is cls and rebuilt.name == layer.name
    assert json.loads(json.dumps(keras.saving.serialize_keras_object(rebuilt))) == record


def test_lambda_records_name_their_function():
    twice = keras.saving.register_keras_serializable(package='Test')(lambda x: x * 2)
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    for function, name, expected in ((tj.nn.tanh, 'tanh', np.tanh(x)),
                                     (keras.activations.relu, 'relu', np.maximum(x, 0)),
                                     (twice, 'Test><lambda>', 2 * x)):
        record = keras.saving.serialize_keras_object(keras.layers.Lambda(function))
        saved = record['config']['function']
        assert (saved if isinstance(saved, str) else saved['config']) == name
        rebuilt = keras.saving.deserialize_keras_object(json.loads(json.dumps(record)))
        np.testing.assert_allclose(rebuilt(x).numpy(), expected, rtol=1e-6)
    with pytest.raises(TypeError, match='register it'):
        keras.saving.serialize_keras_object(keras.layers.Lambda(lambda x: x + 1))


@pytest.mark.parametrize('obj', [
    keras.initializers.Constant(0.5), keras.initializers.RandomUniform(-1, 1, seed=2),
    keras.initializers.TruncatedNormal(0.0, 2.0), keras.initializers.HeUniform(seed=1),
    keras.initializers.VarianceScaling(2.0, 'fan_out', 'uniform'),
    keras.optimizers.Adam(0.5, beta_1=0.8), keras.optimizers.RMSprop(momentum=0.5),
    keras.optimizers.Adagrad(initial_accumulator_value=0.2), keras.optimizers.SGD(nesterov=True),
    keras.losses.BinaryCrossentropy(from_logits=True), keras.losses.CategoricalCrossentropy(),
    keras.losses.MeanAbsoluteError(reduction='sum'), keras.metrics.BinaryAccuracy(threshold=0.3)],
    ids=lambda x: type(x).__name__)
def test_object_records_round_trip(obj):
    record = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    again = keras.saving.deserialize_keras_object(record)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()


# ----------------------------------------------------------------------------- .keras files

def _compiled_model(run_eagerly=True):
    tj.random.set_seed(3)
    model = keras.Sequential([keras.layers.Dense(5, activation=tj.nn.relu, input_shape=(4,)),
                              Scale(0.5), keras.layers.Dense(1, activation=my_act)])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.MeanSquaredError(),
                  metrics=['mae'], run_eagerly=run_eagerly)
    return model


def test_model_save_and_load_model_continue_identically(tmp_path):
    x, y = _data()
    model = _compiled_model()
    _step_eagerly(model, x, y)
    path = str(tmp_path / 'm.keras')
    model.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(['metadata.json', 'config.json',
                                               'model.weights.npz'])
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 1
    for m in (model, loaded):
        m.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    bare = keras.models.load_model(path, compile=False)
    assert bare.optimizer is None and bare.compiled_loss is None


def _two_headed_model():
    """Two inputs through one shared Dense, summed; a regression head and a softmax head."""
    tj.random.set_seed(5)
    a, b = keras.Input((3,), name='a'), keras.Input((3,), name='b')
    shared = keras.layers.Dense(4, activation='relu', name='shared')
    hidden = keras.layers.Add(name='sum')([shared(a), shared(b)])
    outputs = [keras.layers.Dense(1, name='o1')(hidden),
               keras.layers.Dense(2, activation='softmax', name='o2')(hidden)]
    model = keras.Model([a, b], outputs, name='two_headed')
    model.compile(keras.optimizers.Adam(0.02),
                  loss={'o1': 'mse', 'o2': 'categorical_crossentropy'},
                  loss_weights={'o1': 0.5, 'o2': 2.0},
                  metrics={'o1': ['mae'], 'o2': ['accuracy']}, run_eagerly=True)
    return model


def _two_headed_numpy(weights, a, b):
    kernel, bias, k1, b1, k2, b2 = weights
    hidden = np.maximum(a @ kernel + bias, 0) + np.maximum(b @ kernel + bias, 0)
    logits = hidden @ k2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return hidden @ k1 + b1, e / e.sum(axis=1, keepdims=True)


def test_a_functional_model_with_two_inputs_and_outputs_saves_and_loads(tmp_path):
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(6, 3)).astype(np.float32) for _ in range(2))
    y = [rng.normal(size=(6, 1)).astype(np.float32),
         np.eye(2, dtype=np.float32)[rng.integers(0, 2, 6)]]
    model = _two_headed_model()
    model.fit([a, b], y, epochs=1, batch_size=6, verbose=0)
    config = model.get_config()
    assert [layer['class_name'] for layer in config['layers']] == [
        'InputLayer', 'InputLayer', 'Dense', 'Add', 'Dense', 'Dense']
    assert len(config['layers'][2]['inbound_nodes']) == 2          # the shared layer's calls
    assert config['input_layers'] == [['a', 0, 0], ['b', 0, 0]]
    assert config['output_layers'] == [['o1', 0, 0], ['o2', 0, 0]]
    path = str(tmp_path / 'f.keras')
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.name == 'two_headed'
    assert loaded.get_config() == config
    assert loaded.get_compile_config() == model.get_compile_config()
    assert loaded.get_compile_config()['loss_weights'] == {'o1': 0.5, 'o2': 2.0}
    assert int(loaded.optimizer.iterations.numpy()) == 1
    for got, want in zip(loaded.predict([a, b], verbose=0),
                         _two_headed_numpy(model.get_weights(), a, b)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for m in (model, loaded):
        m.fit([a, b], y, epochs=2, batch_size=3, shuffle=False, verbose=0)
    for got, want in zip(loaded.predict([a, b], verbose=0), model.predict([a, b], verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    logs, loaded_logs = (m.evaluate([a, b], y, verbose=0, return_dict=True)
                         for m in (model, loaded))
    assert sorted(logs) == ['loss', 'o1_loss', 'o1_mae', 'o2_accuracy', 'o2_loss']
    assert loaded_logs == pytest.approx(logs)
    keys = [k for k, _ in tj.train.list_variables(
        tj.train.Checkpoint(model=loaded).write(str(tmp_path / 'ck')))]
    assert 'model/layer_with_weights-0/kernel' + VALUE in keys      # the shared Dense
    assert 'model/layer-2/kernel' + VALUE not in keys               # each weight once


def test_load_model_needs_custom_objects_for_unregistered_classes(tmp_path):
    class Shift(keras.layers.Layer):
        def __init__(self, by=1.0, **kwargs):
            super().__init__(**kwargs)
            self.by = by

        def call(self, x):
            return x + self.by
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,)), Shift(4.0)])
    path = str(tmp_path / 's.keras')
    model.save(path)
    with pytest.raises(TypeError, match="Could not locate class 'Shift'"):
        keras.models.load_model(path)
    loaded = keras.models.load_model(path, custom_objects={'Shift': Shift})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_model_files_are_checked(tmp_path):
    model = _compiled_model()
    with pytest.raises(ValueError, match='Invalid filepath extension for saving'):
        model.save(str(tmp_path / 'm.h5'))
    path = tmp_path / 'm.keras'
    model.save(str(path))
    with pytest.raises(FileExistsError):
        model.save(str(path), overwrite=False)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(errors.DataLossError, match=str(path).replace('.', r'\.')):
        keras.models.load_model(str(path))
    with pytest.raises(ValueError, match='File not found'):
        keras.models.load_model(str(tmp_path / 'none.keras'))


def test_model_checkpoint_and_csv_logger(tmp_path):
    x, y = _data()
    model = _compiled_model()
    logger = str(tmp_path / 'log.csv')
    history = model.fit(x, y, epochs=4, batch_size=4, verbose=0, shuffle=False,
                        validation_data=(x[:4], y[:4]), callbacks=[
                            keras.callbacks.ModelCheckpoint(str(tmp_path / 'w.{epoch:02d}.keras')),
                            keras.callbacks.ModelCheckpoint(
                                str(tmp_path / 'best.{epoch}.keras'), monitor='val_loss',
                                save_best_only=True),
                            keras.callbacks.ModelCheckpoint(str(tmp_path / 'weights'),
                                                            save_weights_only=True),
                            keras.callbacks.CSVLogger(logger)])
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith('w.')] == [f'w.0{i}.keras' for i in (1, 2, 3, 4)]
    val, best, improved = history.history['val_loss'], np.inf, []
    for epoch, value in enumerate(val, 1):
        if value < best:
            best, improved = value, improved + [f'best.{epoch}.keras']
    assert [n for n in names if n.startswith('best.')] == sorted(improved)
    last = keras.models.load_model(str(tmp_path / 'w.04.keras'))
    np.testing.assert_array_equal(last.predict(x), model.predict(x))
    with open(logger, newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['epoch', 'loss', 'mae', 'val_loss', 'val_mae']
    for epoch, row in enumerate(rows[1:]):
        assert int(row[0]) == epoch
        for name, cell in zip(rows[0][1:], row[1:]):
            assert float(cell) == pytest.approx(history.history[name][epoch], rel=1e-6)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.CSVLogger(logger,
                                                                              append=True)])
    with open(logger, newline='') as f:
        rows = list(csv.reader(f))
    assert len(rows) == 6 and rows[-1][0] == '0' and rows[-1][3:] == ['NA', 'NA']
    semicolons = str(tmp_path / 'semi.csv')
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.CSVLogger(semicolons, ';')])
    assert pathlib.Path(semicolons).read_text().splitlines()[0] == 'epoch;loss;mae'
    with pytest.raises(ValueError, match='Invalid filepath extension'):
        keras.callbacks.ModelCheckpoint(str(tmp_path / 'x.h5'))


# ----------------------------------------------------------------------------- a new process

_RESTORE = textwrap.dedent('''
    import sys
    import numpy as np
    import tracejit as tj
    from test_saving import build_walkthrough_model
    directory = sys.argv[1]
    x = np.load(directory + '/x.npy')
    model = build_walkthrough_model()
    optimizer = tj.keras.optimizers.SGD(0.05)
    ckpt = tj.train.Checkpoint(model=model, optimizer=optimizer)
    ckpt.restore(tj.train.latest_checkpoint(directory + '/ckpts')).assert_consumed()
    loaded = tj.keras.models.load_model(directory + '/model.keras')
    np.savez(directory + '/out.npz', checkpoint=model(x).numpy(), keras=loaded.predict(x),
             iterations=optimizer.iterations.numpy())
''')


def build_walkthrough_model():
    """The custom training walkthrough's model (a new process builds it the same way)."""
    return keras.Sequential([keras.layers.Dense(10, activation=tj.nn.relu, input_shape=(4,)),
                             keras.layers.Dense(10, activation=tj.nn.relu),
                             keras.layers.Dense(3)])


@pytest.mark.compiled
def test_the_custom_training_walkthrough_restores_in_a_new_process(tmp_path):
    """CSV -> make_csv_dataset -> map -> a tj.function GradientTape loop -> Checkpoint
    (CheckpointManager) and fit -> model.save; a new process restores both and predicts the
    same outputs."""
    from test_data import _write_iris
    _write_iris(tmp_path / 'iris.csv')
    ds = tj.data.experimental.make_csv_dataset(str(tmp_path / 'iris.csv'), 32,
                                               label_name='species', num_epochs=1,
                                               shuffle_seed=0)
    train = ds.map(lambda features, labels: (tj.stack(list(features.values()), axis=1), labels))
    tj.random.set_seed(1)
    model, optimizer = build_walkthrough_model(), keras.optimizers.SGD(0.05)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tj.function
    def train_step(x, y):
        with tj.GradientTape() as tape:
            loss = loss_object(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    manager = tj.train.CheckpointManager(tj.train.Checkpoint(model=model, optimizer=optimizer),
                                         str(tmp_path / 'ckpts'), max_to_keep=2)
    for epoch in range(20):
        for x, y in train:
            train_step(x, y)
        manager.save()
    fitted = build_walkthrough_model()
    fitted.compile(keras.optimizers.Adam(0.01), loss_object, metrics=['accuracy'],
                   run_eagerly=True)   # the tape loop above is the compiled half
    history = fitted.fit(train, epochs=20, verbose=0)
    assert history.history['accuracy'][-1] > 0.8
    fitted.save(str(tmp_path / 'model.keras'))
    x = np.concatenate([b[0].numpy() for b in train])
    np.save(tmp_path / 'x.npy', x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(pathlib.Path(tj.__file__).parent.parent), str(pathlib.Path(__file__).parent)]))
    subprocess.run([sys.executable, '-c', _RESTORE, str(tmp_path)], check=True, env=env,
                   timeout=300)
    out = np.load(tmp_path / 'out.npz')
    np.testing.assert_array_equal(out['checkpoint'], model(x).numpy())
    np.testing.assert_array_equal(out['keras'], fitted.predict(x))
    assert int(out['iterations']) == int(optimizer.iterations.numpy()) > 0


@pytest.mark.compiled
def test_a_compiled_step_sees_restored_values_without_retracing(tmp_path):
    net = Net(2.0)
    path = tj.train.Checkpoint(net=net).write(str(tmp_path / 'c'))
    net.w.assign(np.zeros((2, 3), np.float32))
    double = tj.function(lambda: net.w * 2.0)
    np.testing.assert_array_equal(double().numpy(), np.zeros((2, 3)))
    tj.train.Checkpoint(net=net).read(path).assert_consumed()
    np.testing.assert_array_equal(double().numpy(), np.full((2, 3), 4.0))
    assert double.cache_info()['traces'] == 1
    with pytest.raises(errors.InvalidArgumentError, match='runs eagerly'):
        tj.function(lambda: tj.train.Checkpoint(net=net).write(str(tmp_path / 'd')))()

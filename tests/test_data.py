"""tj.data.Dataset against numpy written here and TensorFlow's documented tf.data behaviour;
Keras fit/evaluate/predict on datasets against the same calls on arrays."""
import collections
import threading
import warnings

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

Dataset = tj.data.Dataset


def _values(ds):
    return list(ds.as_numpy_iterator())


# ----------------------------------------------------------------------------- sources

def test_slices_of_a_tuple_a_dict_and_lists():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ds = Dataset.from_tensor_slices((x, y))
    got = _values(ds)
    assert len(got) == 6 and int(ds.cardinality()) == 6 and len(ds) == 6
    for i, (xi, yi) in enumerate(got):
        np.testing.assert_array_equal(xi, x[i])
        assert yi == y[i] and isinstance(yi, np.integer)
    first = next(iter(ds))
    assert isinstance(first[0], tj.Tensor) and first[0].shape == (2,)
    assert ds.element_spec == (tj.TensorSpec((2,), tj.float32), tj.TensorSpec((), tj.int64))
    d = Dataset.from_tensor_slices({'a': [1, 2, 3], 'b': [[1.5], [2.5], [3.5]]})
    third = _values(d)[2]
    assert sorted(third) == ['a', 'b'] and third['a'] == 3 and third['b'].tolist() == [3.5]
    assert d.element_spec['a'].dtype == tj.int32 and d.element_spec['b'].dtype == tj.float32
    # a list is one tensor (sliced), as in TF; a namedtuple keeps its type
    assert _values(Dataset.from_tensor_slices([[1, 2], [3, 4]]))[1].tolist() == [3, 4]
    Point = collections.namedtuple('Point', 'x y')
    p = _values(Dataset.from_tensor_slices(Point(np.arange(2), np.arange(2) * 10)))[1]
    assert isinstance(p, Point) and (p.x, p.y) == (1, 10)


def test_slices_refuse_mismatched_sizes_and_scalars():
    with pytest.raises(errors.InvalidArgumentError, match='same size in their first dimension'):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(2)))
    with pytest.raises(errors.InvalidArgumentError, match='rank >= 1'):
        Dataset.from_tensor_slices(np.float32(1.0))


def test_from_tensors_range_zip_concatenate_enumerate():
    assert [v.tolist() for v in _values(Dataset.from_tensors([1, 2]))] == [[1, 2]]
    assert _values(Dataset.range(5)) == [0, 1, 2, 3, 4]
    assert _values(Dataset.range(2, 9, 3)) == [2, 5, 8]
    assert _values(Dataset.range(3, dtype=tj.int32))[0].dtype == np.int32
    assert int(Dataset.range(10, 0, -2).cardinality()) == 5
    z = Dataset.zip((Dataset.range(3), Dataset.range(10, 20)))
    assert _values(z) == [(0, 10), (1, 11), (2, 12)] and int(z.cardinality()) == 3
    zd = Dataset.zip({'a': Dataset.range(2), 'b': Dataset.range(5, 7)})
    assert _values(zd) == [{'a': 0, 'b': 5}, {'a': 1, 'b': 6}]
    c = Dataset.range(2).concatenate(Dataset.range(7, 9))
    assert _values(c) == [0, 1, 7, 8] and int(c.cardinality()) == 4
    assert _values(Dataset.range(3).enumerate(start=5)) == [(5, 0), (6, 1), (7, 2)]


def test_from_generator_checks_the_signature():
    def gen(n):
        for k in range(1, n + 1):
            yield np.arange(k), k * 0.5
    sig = (tj.TensorSpec([None], tj.int64), tj.TensorSpec([], tj.float32))
    ds = Dataset.from_generator(gen, args=(3,), output_signature=sig)
    got = _values(ds)
    assert [a.tolist() for a, _ in got] == [[0], [0, 1], [0, 1, 2]]
    assert [b for _, b in got] == [0.5, 1.0, 1.5] and got[0][1].dtype == np.float32
    assert int(ds.cardinality()) == tj.data.UNKNOWN_CARDINALITY and ds.element_spec == sig
    assert len(_values(ds)) == 3                       # the generator runs again each time
    bad_shape = Dataset.from_generator(lambda: iter([np.zeros((2, 2))]),
                                       output_signature=tj.TensorSpec([None], tj.float32))
    with pytest.raises(errors.InvalidArgumentError, match=r"shape \(2, 2\)"):
        _values(bad_shape)
    bad_type = Dataset.from_generator(lambda: iter([np.zeros(2)]),
                                      output_signature=tj.TensorSpec([2], tj.int32))
    with pytest.raises(errors.InvalidArgumentError, match='float64 value'):
        _values(bad_type)
    with pytest.raises(TypeError, match='output_signature'):
        Dataset.from_generator(lambda: iter([]))


# ----------------------------------------------------------------------------- batching

def test_batch_with_and_without_the_remainder():
    x = np.arange(14).reshape(7, 2)
    ds = Dataset.from_tensor_slices(x)
    got = _values(ds.batch(3))
    assert [b.tolist() for b in got] == [x[0:3].tolist(), x[3:6].tolist(), x[6:].tolist()]
    assert int(ds.batch(3).cardinality()) == 3
    assert int(ds.batch(3, drop_remainder=True).cardinality()) == 2
    assert len(_values(ds.batch(3, drop_remainder=True))) == 2
    assert ds.batch(3).element_spec == tj.TensorSpec((None, 2), tj.int64)
    assert ds.batch(3, drop_remainder=True).element_spec == tj.TensorSpec((3, 2), tj.int64)
    # the element path (not rows of arrays) gives the same batches
    assert [b.tolist() for b in _values(ds.map(lambda v: v).batch(3))] == \
        [b.tolist() for b in got]
    with pytest.raises(errors.InvalidArgumentError, match='positive integer'):
        ds.batch(0)


def test_batch_of_different_shapes_names_the_component():
    ds = Dataset.from_generator(lambda: iter([np.zeros(2), np.zeros(3)]),
                                output_signature=tj.TensorSpec([None], tj.float64))
    with pytest.raises(errors.InvalidArgumentError, match=r'component 0: \(2,\) vs \(3,\)'):
        _values(ds.batch(2))


def test_padded_batch_pads_to_the_longest_or_the_given_shape():
    ds = Dataset.from_generator(lambda: (np.arange(1, k + 1) for k in (1, 3, 2)),
                                output_signature=tj.TensorSpec([None], tj.int64))
    got = _values(ds.padded_batch(2))
    assert got[0].tolist() == [[1, 0, 0], [1, 2, 3]] and got[1].tolist() == [[1, 2]]
    fixed = _values(ds.padded_batch(3, padded_shapes=[4], padding_values=-1))
    assert fixed[0].tolist() == [[1, -1, -1, -1], [1, 2, 3, -1], [1, 2, -1, -1]]
    with pytest.raises(errors.InvalidArgumentError, match='does not fit'):
        _values(ds.padded_batch(3, padded_shapes=[2]))
    with pytest.raises(errors.InvalidArgumentError, match='cannot be padded'):
        _values(ds.padded_batch(3, padded_shapes=[2, 2]))
    assert ds.padded_batch(2, padded_shapes=[4]).element_spec == \
        tj.TensorSpec([None, 4], tj.int64)
    assert ds.padded_batch(2, drop_remainder=True).element_spec == \
        tj.TensorSpec([2, None], tj.int64)


def test_unbatch_undoes_batch():
    x = np.arange(10).reshape(5, 2)
    again = _values(Dataset.from_tensor_slices(x).batch(2).unbatch())
    np.testing.assert_array_equal(np.stack(again), x)


# ----------------------------------------------------------------------------- order

def test_shuffle_with_a_full_buffer_is_a_new_permutation_each_epoch():
    ds = Dataset.range(50).shuffle(50, seed=7)
    first, second = _values(ds), _values(ds)
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != list(range(50)) and first != second
    same = Dataset.range(50).shuffle(50, seed=7, reshuffle_each_iteration=False)
    assert _values(same) == _values(same)
    assert _values(Dataset.range(50).shuffle(50, seed=7)) == first   # the seed reproduces it
    batches = _values(Dataset.from_tensor_slices(np.arange(50)).shuffle(64, seed=3).batch(8))
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))


def test_shuffle_with_a_small_buffer_moves_elements_only_so_far():
    """TF's buffered shuffle: output i comes from the first i + buffer_size elements."""
    for buffer in (1, 4):
        out = _values(Dataset.range(40).shuffle(buffer, seed=1))
        assert sorted(out) == list(range(40))
        assert all(v < i + buffer for i, v in enumerate(out))
    assert _values(Dataset.range(5).shuffle(1)) == [0, 1, 2, 3, 4]


def test_repeat_take_skip_and_their_cardinalities():
    ds = Dataset.range(3)
    assert _values(ds.repeat(2)) == [0, 1, 2, 0, 1, 2] and int(ds.repeat(2).cardinality()) == 6
    assert int(ds.repeat().cardinality()) == tj.data.INFINITE_CARDINALITY
    assert _values(ds.repeat().take(7)) == [0, 1, 2, 0, 1, 2, 0]
    assert int(ds.repeat().take(7).cardinality()) == 7
    assert _values(Dataset.range(0).repeat()) == []
    assert _values(ds.skip(1)) == [1, 2] and int(ds.skip(5).cardinality()) == 0
    assert _values(ds.take(-1)) == [0, 1, 2] and _values(ds.skip(-1)) == []
    with pytest.raises(TypeError, match='infinite'):
        len(ds.repeat())


def test_cache_replays_the_first_complete_pass():
    calls = []

    def gen():
        calls.append(1)
        yield from range(3)
    ds = Dataset.from_generator(gen, output_signature=tj.TensorSpec([], tj.int64)).cache()
    list(zip(range(2), ds.as_numpy_iterator()))           # a partial pass is not kept
    assert _values(ds) == [0, 1, 2] and _values(ds) == [0, 1, 2]
    assert len(calls) == 2
    with pytest.raises(NotImplementedError, match='in memory'):
        ds.cache('/tmp/file')


def test_prefetch_yields_the_same_elements_and_raises_the_sources_errors():
    assert _values(Dataset.range(20).prefetch(tj.data.AUTOTUNE)) == list(range(20))

    def broken():
        yield 1
        raise RuntimeError('the source broke')
    ds = Dataset.from_generator(broken, output_signature=tj.TensorSpec([], tj.int64))
    with pytest.raises(RuntimeError, match='the source broke'):
        _values(ds.prefetch(2))
    before = threading.active_count()
    for _ in zip(range(2), Dataset.range(10 ** 6).prefetch(1).as_numpy_iterator()):
        pass
    it = Dataset.range(2).prefetch(1).as_numpy_iterator()    # the reader leaves at the end
    next(it)
    del it
    it = ds.prefetch(1).as_numpy_iterator()                  # ... or before the source raises
    next(it)
    del it
    for _ in range(100):                                  # the producers stop once abandoned
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= before


# ----------------------------------------------------------------------------- functions

@pytest.mark.compiled
def test_map_is_traced_once_and_unpacks_tuples():
    traces = []

    def scale(x, y):
        traces.append(1)                                   # a Python side effect: trace time
        return x * 2.0, y + 1
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    y = np.arange(4)
    ds = Dataset.from_tensor_slices((x, y)).map(scale)
    got = _values(ds)
    assert len(traces) == 1
    np.testing.assert_array_equal(np.stack([a for a, _ in got]), x * 2)
    assert [b for _, b in got] == [1, 2, 3, 4]
    assert ds.element_spec == (tj.TensorSpec((2,), tj.float32), tj.TensorSpec((), tj.int64))
    d = Dataset.from_tensor_slices({'v': x}).map(lambda e: {'s': tj.reduce_sum(e['v'])})
    assert [e['s'] for e in _values(d)] == [1.0, 5.0, 9.0, 13.0]


@pytest.mark.compiled
def test_filter_keeps_elements_whose_predicate_is_true():
    ds = Dataset.range(10).filter(lambda v: v % 3 == 0)
    assert _values(ds) == [0, 3, 6, 9]
    assert int(ds.cardinality()) == tj.data.UNKNOWN_CARDINALITY
    with pytest.raises(errors.InvalidArgumentError, match='scalar bool'):
        _values(Dataset.range(3).filter(lambda v: v * 2))


def test_tensor_spec():
    spec = tj.TensorSpec([None, 3], tj.float32, name='x')
    assert spec.is_compatible_with(np.zeros((5, 3), np.float32))
    assert not spec.is_compatible_with(np.zeros((5, 4), np.float32))
    assert not spec.is_compatible_with(np.zeros((5, 3), np.float64))
    assert repr(spec) == "TensorSpec(shape=(None, 3), dtype=tj.float32, name='x')"
    assert tj.TensorSpec([2], tj.int32).most_specific_common_supertype(
        tj.TensorSpec([3], tj.int32)) == tj.TensorSpec([None], tj.int32)


# ----------------------------------------------------------------------------- Keras

def _model():
    tj.random.set_seed(0)
    model = tj.keras.Sequential([tj.keras.layers.Dense(3, activation='relu'),
                                 tj.keras.layers.Dense(1)])
    model.compile(optimizer=tj.keras.optimizers.SGD(0.05), loss='mse', metrics=['mae'])
    return model


def _regression(n=96):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]


@pytest.mark.compiled
def test_fit_evaluate_predict_on_a_dataset_equal_the_array_calls():
    x, y = _regression()
    arrays = _model()      # built (weights drawn) by its fit, before the next model is made
    arrays.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
               validation_data=(x[:32], y[:32]))
    ds = Dataset.from_tensor_slices((x, y)).batch(16)
    data = _model()
    history = data.fit(ds, epochs=3, verbose=0,
                       validation_data=Dataset.from_tensor_slices((x[:32], y[:32])).batch(16))
    for a, b in zip(arrays.get_weights(), data.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history['val_loss'] == arrays.history.history['val_loss']
    assert data.evaluate(ds, verbose=0) == arrays.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_array_equal(data.predict(ds), arrays.predict(x, batch_size=16))
    np.testing.assert_array_equal(data.predict(ds.map(lambda a, b: a)), data.predict(x))


@pytest.mark.compiled
def test_steps_per_epoch_continues_one_iterator_across_epochs():
    """Two epochs of 3 steps over a repeated 6-batch dataset are one pass over the data."""
    x, y = _regression()
    one_pass = _model()
    one_pass.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    ds = Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    stepped = _model()
    stepped.fit(ds, epochs=2, steps_per_epoch=3, verbose=0)
    for a, b in zip(one_pass.get_weights(), stepped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    short = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        history = short.fit(Dataset.from_tensor_slices((x, y)).batch(48), epochs=3,
                            steps_per_epoch=3, verbose=0)
    assert any('ran out of data after 2 of 3' in str(w.message) for w in caught)
    assert len(history.history['loss']) == 1


@pytest.mark.compiled
def test_fit_on_a_dataset_refuses_what_keras_refuses_and_changes_nothing():
    x, y = _regression()
    model = _model()
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)
    before = model.get_weights()
    ds = Dataset.from_tensor_slices((x, y)).batch(16)
    cases = [(dict(x=ds, y=y), 'y must be None'), (dict(x=ds, batch_size=8), 'batch_size must'),
             (dict(x=ds.repeat()), 'steps_per_epoch'),
             (dict(x=Dataset.from_tensor_slices(x).batch(8)), 'expected an .x, y. pair'),
             (dict(x=ds, validation_split=0.2), 'validation_split')]
    for kwargs, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            model.fit(epochs=1, verbose=0, **kwargs)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        model.fit(Dataset.from_tensor_slices((bad, y)).batch(96), epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- CSV

def _write_iris(path, rows=90):
    rng = np.random.default_rng(0)
    lines = ['sepal_length,sepal_width,petal_length,petal_width,species']
    for i in range(rows):
        s = i % 3
        v = rng.normal([5 + s, 3, 1.5 + 2 * s, 0.2 + 0.9 * s], 0.2)
        lines.append(','.join(f'{x:.2f}' for x in v) + f',{s}')
    path.write_text('\n'.join(lines) + '\n')
    return np.array([[float(f) for f in line.split(',')] for line in lines[1:]])


def test_make_csv_dataset_reads_columns_in_order_with_their_types(tmp_path):
    path = tmp_path / 'iris.csv'
    table = _write_iris(path, rows=10)
    ds = tj.data.experimental.make_csv_dataset(str(path), 4, label_name='species',
                                               num_epochs=1, shuffle=False)
    batches = _values(ds)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    features, labels = batches[0]
    assert list(features) == ['sepal_length', 'sepal_width', 'petal_length', 'petal_width']
    assert labels.dtype == np.int32 and features['sepal_width'].dtype == np.float32
    np.testing.assert_allclose(np.concatenate([b[0]['petal_length'] for b in batches]),
                               table[:, 2], rtol=1e-6)
    assert np.concatenate([b[1] for b in batches]).tolist() == table[:, 4].astype(int).tolist()
    twice = tj.data.experimental.make_csv_dataset(str(path), 5, label_name='species',
                                                  num_epochs=2, shuffle_seed=1)
    labels = np.concatenate([b[1] for b in _values(twice)])
    assert sorted(labels.tolist()) == sorted(table[:, 4].astype(int).tolist() * 2)
    picked = tj.data.experimental.make_csv_dataset(
        str(path), 10, select_columns=['petal_width', 'species'], num_epochs=1, shuffle=False)
    assert list(_values(picked)[0]) == ['petal_width', 'species']


def test_make_csv_dataset_without_a_header_and_with_bad_rows(tmp_path):
    path = tmp_path / 'plain.csv'
    path.write_text('1,2.5\n3,\n')
    with pytest.raises(errors.InvalidArgumentError, match="line 2: column 'b' is empty"):
        tj.data.experimental.make_csv_dataset(str(path), 2, column_names=['a', 'b'],
                                              header=False)
    ds = tj.data.experimental.make_csv_dataset(str(path), 2, column_names=['a', 'b'],
                                               header=False, column_defaults=[0, -1.0],
                                               num_epochs=1, shuffle=False)
    batch = _values(ds)[0]
    assert batch['a'].tolist() == [1, 3] and batch['b'].tolist() == [2.5, -1.0]
    (tmp_path / 'short.csv').write_text('a,b\n1,2\n3\n')
    with pytest.raises(errors.InvalidArgumentError, match='line 3: 1 fields, expected 2'):
        tj.data.experimental.make_csv_dataset(str(tmp_path / 'short.csv'), 2)
    with pytest.raises(ValueError, match="no column 'label'"):
        tj.data.experimental.make_csv_dataset(str(path), 2, column_names=['a', 'b'],
                                              header=False, column_defaults=[0, 0.0],
                                              label_name='label')
    with pytest.raises(errors.InvalidArgumentError, match='no file matches'):
        tj.data.experimental.make_csv_dataset(str(tmp_path / 'missing*.csv'), 2)


@pytest.mark.compiled
def test_the_custom_training_walkthrough_pattern(tmp_path):
    """CSV -> make_csv_dataset -> map(pack features) -> fit -> predict; the saved weights give
    a new model the same predictions."""
    path = tmp_path / 'iris.csv'
    _write_iris(path)
    ds = tj.data.experimental.make_csv_dataset(str(path), 32, label_name='species',
                                               num_epochs=1, shuffle_seed=0)

    def pack_features_vector(features, labels):
        return tj.stack(list(features.values()), axis=1), labels
    train = ds.map(pack_features_vector)

    def build():
        tj.random.set_seed(1)
        model = tj.keras.Sequential([tj.keras.layers.Dense(10, activation=tj.nn.relu),
                                     tj.keras.layers.Dense(3)])
        model.compile(optimizer=tj.keras.optimizers.SGD(0.05), metrics=['accuracy'],
                      loss=tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model
    model = build()
    history = model.fit(train, epochs=150, verbose=0)
    assert history.history['accuracy'][-1] > 0.9
    x, y = next(iter(train))
    model.save_weights(str(tmp_path / 'w.npz'))
    restored = build()
    restored.build((None, 4))
    restored.load_weights(str(tmp_path / 'w.npz'))
    np.testing.assert_array_equal(restored.predict(x.numpy()), model.predict(x.numpy()))


# ----------------------------------------------------------------------------- edge cases

def _generator(values, spec=tj.TensorSpec([], tj.int64)):
    return Dataset.from_generator(lambda: iter(values), output_signature=spec)


def test_cardinalities_follow_tf_for_unknown_and_infinite_inputs():
    unknown = _generator([1, 2])
    assert int(Dataset.zip((Dataset.range(5), unknown)).cardinality()) == \
        tj.data.UNKNOWN_CARDINALITY
    assert int(Dataset.zip((Dataset.range(5), Dataset.range(3).repeat())).cardinality()) == 5
    assert int(unknown.repeat().cardinality()) == tj.data.INFINITE_CARDINALITY
    assert int(unknown.repeat(0).cardinality()) == 0 and _values(unknown.repeat(0)) == []
    assert int(Dataset.range(3).repeat().filter(lambda v: v > 0).cardinality()) == \
        tj.data.UNKNOWN_CARDINALITY
    assert _values(Dataset.zip(Dataset.range(2))) == [0, 1]
    with pytest.raises(ValueError, match='at least one'):
        Dataset.zip(())


def test_take_reads_no_element_past_its_count():
    def gen():
        yield 1
        raise RuntimeError('read one too many')
    ds = Dataset.from_generator(gen, output_signature=tj.TensorSpec([], tj.int64))
    assert _values(ds.take(1)) == [1] and _values(ds.take(0)) == []


def test_from_generator_with_output_types_and_shapes():
    ds = Dataset.from_generator(lambda: iter([1.0, 2.0]), output_types=tj.float64)
    assert _values(ds) == [1.0, 2.0] and ds.element_spec == tj.TensorSpec(None, tj.float64)
    pairs = Dataset.from_generator(lambda: iter([([1, 2], 0.5)]),
                                   output_types=(tj.int64, tj.float32),
                                   output_shapes=([2], []))
    (a, b), = _values(pairs)
    assert a.tolist() == [1, 2] and b == np.float32(0.5)
    with pytest.raises(ValueError, match='2 output_shapes for 1'):
        Dataset.from_generator(lambda: iter([]), output_types=(tj.int64,),
                               output_shapes=([2], []))


def test_concatenate_refuses_different_element_types():
    with pytest.raises(TypeError, match='different element types'):
        Dataset.range(2).concatenate(Dataset.from_tensors(np.float32(1.5)))
    both = Dataset.from_tensors([1, 2]).concatenate(Dataset.from_tensors([3, 4, 5]))
    assert both.element_spec == tj.TensorSpec([None], tj.int32)


def test_shuffle_without_a_seed_follows_the_global_seed():
    tj.random.set_seed(4)
    first = _values(Dataset.range(30).shuffle(30))
    tj.random.set_seed(4)
    assert _values(Dataset.range(30).shuffle(30)) == first


@pytest.mark.compiled
def test_map_returning_a_list_gives_a_tuple():
    ds = Dataset.range(2).map(lambda x: [x, tj.cast(x, tj.float32) * 1.5])
    assert _values(ds) == [(0, 0.0), (1, 1.5)]
    assert _values(ds)[1][0].dtype == np.int64


@pytest.mark.compiled
def test_keras_on_datasets_at_the_edges():
    x, y = _regression(64)
    ds = Dataset.from_tensor_slices((x, y)).batch(16)        # 4 batches
    model = _model()
    history = model.fit(ds, epochs=3, steps_per_epoch=4, verbose=0)
    assert len(history.history['loss']) == 3 and min(history.history['loss']) > 0
    arrays = _model()
    arrays.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(arrays.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)    # 3 full passes, as on arrays
    with pytest.raises(ValueError, match='no batches'):
        model.fit(ds.take(0), epochs=1, verbose=0)
    with pytest.raises(ValueError, match='no batches'):
        model.fit(ds.filter(lambda a, b: False), epochs=1, verbose=0)
    with pytest.raises(ValueError, match='pass steps'):
        model.evaluate(ds.repeat(), verbose=0)
    with pytest.raises(ValueError, match='pass steps'):
        model.predict(ds.repeat())
    with pytest.raises(ValueError, match='pass validation_steps'):
        model.fit(ds, epochs=1, verbose=0, validation_data=ds.repeat())
    with pytest.raises(ValueError, match='steps must'):
        model.evaluate(ds, steps=0, verbose=0)
    assert len(model.predict(ds.repeat(), steps=2)) == 32
    on_arrays = model.fit(x, y, epochs=1, verbose=0, validation_data=ds)   # a dataset as
    assert 'val_loss' in on_arrays.history                                # validation data
    assert on_arrays.history['val_loss'][0] == pytest.approx(
        model.evaluate(ds, verbose=0)[0], rel=1e-6)

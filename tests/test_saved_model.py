"""tj.saved_model: the IR's JSON form (irjson.py) round-trips graphs exactly, corrupt files are
named, and a new process with none of the model's Python code loads a trained MLP, predicts
what the saving process predicts and continues training with the loaded step function."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors, ir, irjson

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MLP(tj.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.layers = [{'w': tj.Variable(rng.normal(size=(4, 8)).astype(np.float32), name='w1'),
                        'b': tj.Variable(np.zeros(8, np.float32), name='b1')},
                       {'w': tj.Variable(rng.normal(size=(8, 1)).astype(np.float32), name='w2'),
                        'b': tj.Variable(np.zeros(1, np.float32), name='b2')}]
        self.steps = tj.Variable(0, trainable=False, name='steps')

    @tj.function(input_signature=[tj.TensorSpec([None, 4], tj.float32)])
    def predict(self, x):
        hidden = tj.nn.relu(tj.matmul(x, self.layers[0]['w']) + self.layers[0]['b'])
        return tj.matmul(hidden, self.layers[1]['w']) + self.layers[1]['b']

    @tj.function
    def train_step(self, x, y, learning_rate):
        params = self.trainable_variables
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(self.predict(x) - y))
        for v, g in zip(params, tape.gradient(loss, params)):
            v.assign_sub(learning_rate * g)
        self.steps.assign_add(1)
        return {'loss': loss, 'steps': self.steps.value()}


def data():
    x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    return x, np.sin(x[:, :1]) * 2


def traced_graph():
    w = tj.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name='w')

    @tj.function
    def f(x, s):
        y = tj.reduce_sum(tj.exp(tj.matmul(x, w) * s), axis=1) - np.float32(np.inf)
        w.assign(w * 0.5)
        return tj.transpose(tj.reshape(tj.concat([y, y], 0), [2, -1])), tj.argmax(y)
    return f.trace(np.ones((4, 2), np.float32), 0.25).graph, w


def test_graph_json_round_trip_is_exact():
    graph, w = traced_graph()
    data = json.loads(json.dumps(irjson.encode_graph(graph, lambda v: 0)))
    back = irjson.decode_graph(data, [w])
    assert str(back) == str(graph)
    args = [np.random.default_rng(2).normal(size=(4, 2)).astype(np.float32), 0.25]
    expected, got = ir.evaluate(graph, args, [w.numpy()]), ir.evaluate(back, args, [w.numpy()])
    for e, g in zip(expected[0] + expected[1], got[0] + got[1]):
        np.testing.assert_array_equal(e, g)
        assert e.dtype == g.dtype


def test_control_flow_sub_graphs_round_trip():
    @tj.function
    def f(x, n):
        total = tj.while_loop(lambda i, t: i < n, lambda i, t: (i + 1, t + x * 2.0),
                              (tj.constant(0), tj.zeros_like(x)))[1]
        return tj.cond(tj.reduce_sum(total) > 0, lambda: total, lambda: -total)
    graph = f.trace(np.ones(3, np.float32), np.int32(4)).graph
    assert {node.prim.name for node in graph.nodes} >= {'while', 'cond'}
    back = irjson.decode_graph(json.loads(json.dumps(irjson.encode_graph(graph, id))), [])
    assert str(back) == str(graph)
    for x in (np.float32([1, -2, 3]), np.float32([-1, -2, -3])):
        total = 8 * x                     # four steps adding 2x
        expected = total if total.sum() > 0 else -total
        np.testing.assert_array_equal(ir.evaluate(back, [x, np.int32(4)], [])[0][0], expected)


def test_unstorable_values_are_refused_naming_them():
    with pytest.raises(irjson.SerializationError, match=r"parameter 'fn'.*function"):
        irjson.encode_value(lambda x: x, "parameter 'fn'")
    for value in ((1, [2.5, None]), {'a': np.float32(3)}, float('-inf'), np.dtype('int64'),
                  tj.TensorSpec([None, 2], tj.int32, 'x')):
        assert repr(irjson.decode_value(json.loads(json.dumps(
            irjson.encode_value(value, 'v'))))) == repr(value)

    class Holder(tj.Module):
        @tj.function
        def f(self, x, option):
            return x
    holder = Holder()
    holder.f.get_concrete_function(tj.TensorSpec([2]), object())
    with pytest.raises(irjson.SerializationError, match="function 'f', argument 'option'"):
        tj.saved_model.save(holder, 'unused-directory')
    assert not os.path.exists('unused-directory')


def saved_mlp(path):
    model = MLP()
    model.predict.get_concrete_function()     # traced for its signature, nothing compiled
    model.train_step.get_concrete_function(tj.TensorSpec([16, 4]), tj.TensorSpec([16, 1]), 0.1)
    tj.saved_model.save(model, str(path), signatures=model.predict)
    return model


def test_corrupt_or_missing_files_are_named(tmp_path):
    path = tmp_path / 'model'
    saved_mlp(path)
    assert sorted(os.listdir(path)) == ['saved_model.json', 'variables.npz']  # no temp files
    loaded = tj.saved_model.load(str(path))
    assert [v.name for v in loaded.trainable_variables] == ['b1:0', 'w1:0', 'b2:0', 'w2:0']
    assert [v.name for v in loaded.non_trainable_variables] == ['steps:0']
    npz = path / 'variables.npz'
    npz.write_bytes(npz.read_bytes()[:40])
    with pytest.raises(errors.DataLossError, match=r'variables\.npz is corrupt'):
        tj.saved_model.load(str(path))
    meta = path / 'saved_model.json'
    meta.write_text('{"format": "tracejit.saved_model/1", "variables": [{"pa')
    with pytest.raises(errors.DataLossError, match=r'saved_model\.json is corrupt'):
        tj.saved_model.load(str(path))
    with pytest.raises(errors.DataLossError, match=r'nowhere.saved_model\.json does not exist'):
        tj.saved_model.load(str(tmp_path / 'nowhere'))


LOAD_AND_TRAIN = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tracejit as tj
    path, x_file, out_file = sys.argv[1:]
    x = np.load(x_file)
    model = tj.saved_model.load(path)
    out = {'predict': model.predict(x['x']).numpy().tolist(),
           'serving': model.signatures['serving_default'](x=x['x'])['output_0'].numpy().tolist()}
    step = model.train_step(x['x'], x['y'], 0.1)
    out['loss'] = float(step['loss'])
    out['steps'] = int(step['steps'])
    out['after'] = model.predict(x['x']).numpy().tolist()
    out['variables'] = [v.numpy().tolist() for v in model.trainable_variables]
    out['unseen_size'] = model.predict(x['x'][:5]).numpy().tolist()
    out['signature'] = repr(model.predict.concrete_functions[0].structured_input_signature)
    try:
        model.predict(np.ones((3, 5), np.float32))
    except ValueError as e:
        out['error'] = str(e).split('.')[0]
    json.dump(out, open(out_file, 'w'))
''')


@pytest.mark.compiled
def test_a_new_process_loads_a_trained_module_predicts_and_keeps_training(tmp_path):
    x, y = data()
    model = MLP()
    for _ in range(3):
        model.train_step(x, y, 0.1)
    model.predict(x)                       # the size the new process predicts at
    path = tmp_path / 'mlp'
    tj.saved_model.save(model, str(path), signatures=model.predict)
    expected_predict = model.predict(x).numpy()
    step = model.train_step(x, y, 0.1)     # what the loaded step must do next
    np.savez(tmp_path / 'x.npz', x=x, y=y)
    script = tmp_path / 'load.py'
    script.write_text(LOAD_AND_TRAIN)
    env = dict(os.environ, PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, str(script), str(path), str(tmp_path / 'x.npz'),
                          str(tmp_path / 'out.json')], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads((tmp_path / 'out.json').read_text())
    np.testing.assert_array_equal(np.float32(out['predict']), expected_predict)
    np.testing.assert_array_equal(np.float32(out['serving']), expected_predict)
    assert out['loss'] == pytest.approx(float(step['loss']), rel=1e-6)
    assert out['steps'] == int(step['steps']) == 4
    np.testing.assert_allclose(np.float32(out['after']), model.predict(x).numpy(), rtol=1e-5)
    for got, variable in zip(out['variables'], model.trainable_variables):
        np.testing.assert_allclose(np.float32(got), variable.numpy(), rtol=1e-5, atol=1e-7)
    assert out['error'].startswith('Could not find matching concrete function')
    assert out['signature'] == repr(model.predict.concrete_functions[0].structured_input_signature)
    assert 'None, 4' in out['signature']
    # a size never called before saving: the stored IR holds for any size (checked at save)
    np.testing.assert_allclose(np.float32(out['unseen_size']), model.predict(x[:5]).numpy(),
                               rtol=1e-6)


def test_only_ir_that_holds_for_every_size_runs_unseen_sizes(tmp_path):
    class Stats(tj.Module):
        @tj.function(input_signature=[tj.TensorSpec([None], tj.float32)])
        def doubled(self, x):
            return x * 2.0

        @tj.function(input_signature=[tj.TensorSpec([None], tj.float32)])
        def mean(self, x):        # 1/size is a constant of the IR: it depends on the size
            return tj.reduce_mean(x)
    tj.saved_model.save(Stats(), str(tmp_path))
    meta = json.loads((tmp_path / 'saved_model.json').read_text())
    assert [c['size_free'] for c in meta['functions']['doubled']] == [True]
    assert [c['size_free'] for c in meta['functions']['mean']] == [False]
    loaded = tj.saved_model.load(str(tmp_path))
    with pytest.raises(errors.InvalidArgumentError, match=r'traced for input shapes \[\(2,\)\]'):
        loaded.mean(np.ones(5, np.float32))    # refused before anything compiles

"""The examples run with small settings: output, results, plots."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
SMALL = ['--epochs', '3', '--samples', '200', '--steps', '3']
EPOCH_LINE = re.compile(r'^Epoch +(\d+): W=(-?\d+\.\d\d) b=(-?\d+\.\d\d), loss=(\d+\.\d{5})$')


def load_example(name):
    spec = importlib.util.spec_from_file_location(f'example_{name}',
                                                  os.path.join(EXAMPLES, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def linear_regression():
    return load_example('linear_regression')


def has_matplotlib():
    return importlib.util.find_spec('matplotlib') is not None


def test_linear_regression_output(linear_regression, tmp_path, capsys):
    result = linear_regression.main(SMALL + ['--out', str(tmp_path / 'plots')])
    out = capsys.readouterr().out
    lines = out.splitlines()

    epoch_lines = [line for line in lines if line.startswith('Epoch')]
    assert len(epoch_lines) == 6   # 3 eager + 3 compiled
    for line in epoch_lines:
        assert EPOCH_LINE.match(line), line
    assert epoch_lines[0].startswith('Epoch  0: W=5.00 b=0.00, loss=')
    assert [int(EPOCH_LINE.match(line).group(1)) for line in epoch_lines[:3]] == [0, 1, 2]
    # the compiled run prints the same log (up to float32 rounding in the last printed digit)
    eager_log = [[float(v) for v in EPOCH_LINE.match(line).groups()] for line in epoch_lines[:3]]
    compiled_log = [[float(v) for v in EPOCH_LINE.match(line).groups()]
                    for line in epoch_lines[3:]]
    np.testing.assert_allclose(compiled_log, eager_log, rtol=0, atol=1.1e-2)
    assert compiled_log[0][:3] == [0, 5.0, 0.0]

    assert result['max_difference'] < 1e-6
    assert result['compiled_losses'] == pytest.approx(result['losses'], rel=1e-6)
    assert result['compiled_Ws'] == pytest.approx(result['Ws'], rel=1e-6)
    assert result['traces'] == 1   # one trace for the first call, the epochs and the timing
    assert len(result['Ws']) == 4 and len(result['losses']) == 3
    assert result['losses'][0] > result['losses'][1] > result['losses'][2]
    assert result['eager_steps_per_s'] > 0 and result['compiled_steps_per_s'] > 0

    assert re.search(r'^  eager: +[\d,]+ steps/s$', out, re.M)
    assert re.search(r'^  compiled: +[\d,]+ steps/s$', out, re.M)
    assert re.search(r'^  speed-up: \d+\.\dx$', out, re.M)
    assert re.search(r'^first call \(trace, then (interpret while the kernel compiles|load the '
                     r'kernel from the disk cache)\): [\d.]+ s;', out, re.M)
    assert 'kernel ready after' in out

    if has_matplotlib():
        assert result['plots'] and all(os.path.getsize(p) > 0 for p in result['plots'])
        for path in result['plots']:
            with open(path, 'rb') as f:
                assert f.read(8) == b'\x89PNG\r\n\x1a\n'
            assert f'wrote {path}' in out
    else:
        assert result['plots'] is None
        assert 'skipped plotting' in out
        assert not (tmp_path / 'plots').exists()


def test_linear_regression_without_matplotlib(linear_regression, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)   # import matplotlib -> ImportError
    result = linear_regression.main(['--epochs', '1', '--steps', '1', '--samples', '50',
                                     '--out', str(tmp_path)])
    assert result['plots'] is None
    assert 'matplotlib is not installed: skipped plotting' in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_linear_regression_converges(linear_regression, capsys):
    result = linear_regression.main(['--epochs', '60', '--steps', '1', '--out', ''])
    assert abs(result['Ws'][-1] - 3.0) < 0.15 and abs(result['bs'][-1] - 2.0) < 0.15
    assert result['compiled_Ws'][-1] == pytest.approx(result['Ws'][-1], abs=1e-5)
    assert len([line for line in capsys.readouterr().out.splitlines()
                if line.startswith('Epoch')]) == 120


def test_linear_regression_rejects_bad_arguments(linear_regression):
    with pytest.raises(SystemExit):
        linear_regression.main(['--epochs', '0'])


def test_linear_regression_as_a_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, 'linear_regression.py'), '--epochs', '2',
         '--samples', '100', '--steps', '2', '--out', str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'Epoch  1: W=' in proc.stdout and 'speed-up:' in proc.stdout


# ------------------------------------------------------------------------------- tf1_graphs

def test_tf1_graphs_walks_the_tutorial(tmp_path, capsys):
    tf1_graphs = load_example('tf1_graphs')
    result = tf1_graphs.main(['--steps', '80', '--out', str(tmp_path / 'plots')])
    out = capsys.readouterr().out

    assert result['operations'] == (['Const', 'Const_1', 'Add'], pytest.approx(4.554))
    assert result['distance'] == 5.0
    assert result['per_session'] == (43, 42)
    assert result['gradients'] == {'d eqn/db': [2], 'd eqn/d[a,b]': [1, 2],
                                   'd eqn2/d[a,b]': [7, 6], 'd (eqn+eqn2)/d[a,b]': [8, 8]}
    x_final = result['x_final']
    for method in ('by hand', 'tf.gradients', 'GradientDescentOptimizer'):
        assert x_final[method] == pytest.approx(5 * 0.8 ** 100, rel=1e-4)
    assert -0.1 < x_final['AdamOptimizer'] < 0   # Adam overshoots, as the tutorial says

    hospital = result['hospital']
    (train_X, train_y), _, _ = tf1_graphs.make_hospital_data(0)
    X = train_X.astype(np.float32).astype(np.float64)
    y = train_y.astype(np.float32).astype(np.float64)
    m = b = 0.0
    for i in range(80):   # the same algorithm in numpy: batches of 100 in order
        k = (i % 8) * 100
        err = X[k:k + 100] * m + b - y[k:k + 100]
        m, b = m - 0.0005 * np.mean(2 * err * X[k:k + 100]), b - 0.0005 * np.mean(2 * err)
    assert hospital['m'] == pytest.approx(m, rel=1e-5)
    assert hospital['b'] == pytest.approx(b, rel=1e-5)
    assert len(hospital['epoch_train_losses']) == len(hospital['epoch_valid_losses']) == 10
    assert hospital['epoch_valid_losses'][-1] < hospital['epoch_valid_losses'][0]
    assert hospital['cache_info']['plans'] == 4   # initializer, step, validation, test
    assert hospital['us_per_run'] > 0
    assert 'Iter 0: training loss = ' in out and ' us per run, ' in out
    assert "You must feed a value for placeholder tensor 'Placeholder'" in out
    if has_matplotlib():
        assert os.path.exists(result['plot'])
    else:
        assert result['plot'] is None and 'skipped plotting' in out


# ------------------------------------------------------------------------------- seed_models

def test_seed_models_output(capsys):
    seed_models = load_example('seed_models')
    result = seed_models.main(['--steps', '300'])
    out = capsys.readouterr().out
    assert 'custom layer output: [[' in out and 'Sequential output: [[' in out
    assert 'IdentityModel, isidentity=True:  [[1. 2.]]' in out
    assert result['layer_error'] < 1e-6 and result['sequential_params'] == 9
    np.testing.assert_array_equal(result['identity_identity'], [[1, 2]])
    activate, identity = result['identity_compiled']
    np.testing.assert_allclose(activate, result['identity_activate'], rtol=1e-6)
    np.testing.assert_array_equal(identity, [[1, 2]])
    assert 'compiled with the flag static: 2 traces' in out
    # x_k = x_f + (x_0 - x_f) (1 - 2 lr)^k for L = (x - x_f)^2
    expected = 4 + (result['x0'] - 4) * (1 - 2 * 1e-2) ** np.arange(1, 301)
    np.testing.assert_allclose(result['sgd_by_hand'], expected, rtol=1e-5)
    np.testing.assert_allclose(result['sgd_minimize'], result['sgd_by_hand'], rtol=1e-6)
    assert result['iterations'] == 300
    assert re.search(r'^  SGD\.minimize: +x = \d\.\d{6} \(300 iterations\)$', out, re.M)


def test_seed_models_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, 'seed_models.py'), '--steps',
                           '5'], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'GradientTape loop: x = ' in proc.stdout and '(5 iterations)' in proc.stdout


# ------------------------------------------------------------------------------- keras_linear

def test_keras_linear_output(tmp_path, capsys):
    keras_linear = load_example('keras_linear')
    result = keras_linear.main(['--epochs', '5', '--verbose', '2', '--checkpoint',
                                str(tmp_path / 'ckpt'), '--out', str(tmp_path / 'plots')])
    out = capsys.readouterr().out
    fit_log = out[out.index('compile + fit:'):].splitlines()[1:11]
    assert fit_log[0::2] == [f'Epoch {e}/5' for e in range(1, 6)]
    losses = result['history']['loss']
    for line, value in zip(fit_log[1::2], losses):
        assert re.fullmatch(rf'1/1 - \d+s - loss: {value:.4f}', line), line
    # fit logs the loss before each step; the hand-written loop prints it after
    assert losses == pytest.approx([result['start_loss']] + result['loop_losses'][:-1],
                                   rel=1e-5)
    assert (result['W'], result['b']) == pytest.approx((result['loop_W'], result['loop_b']),
                                                       rel=1e-5)
    assert result['restored'] == (result['W'], result['b'])
    assert result['checkpoint'] == str(tmp_path / 'ckpt.npz')
    assert os.path.exists(result['checkpoint'])
    assert result['cache_info']['traces'] == 1
    if has_matplotlib():
        assert os.path.getsize(result['plot']) > 0 and f'wrote {result["plot"]}' in out
    else:
        assert result['plot'] is None and 'skipped plotting' in out


def test_keras_linear_as_a_script_saves_keras_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, 'keras_linear.py'), '--epochs',
                           '2', '--out', ''], capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'Epoch 2/2' in proc.stdout and '1/1 [' in proc.stdout and 'loss: ' in proc.stdout
    assert os.listdir(tmp_path) == ['keras_checkpoint.npz']


def test_digits_mlp_reaches_95_percent_and_beats_numpy(capsys):
    result = load_example('digits_mlp').main(['--epochs', '30', '--out', ''])
    out = capsys.readouterr().out
    assert result['accuracy'] >= 0.95
    assert re.search(r'Epoch 30/30\n12/12 - .*loss: \d+\.\d{4} - accuracy: \d\.\d{4}', out)
    assert re.search(r'-> \d+\.\d+x faster', out)


def test_distributed_digits_runs_alone_and_learns(capsys, tmp_path):
    import tracejit as tj
    try:
        accuracy = load_example('distributed_digits').main(
            ['--epochs', '3', '--out', str(tmp_path / 'digits.npz')])
    finally:
        tj.distribute.shutdown()   # the example's init() joined a group of one; later tests start alone
    assert not tj.distribute.is_initialized()
    assert accuracy > 0.85, capsys.readouterr().out
    assert 'test accuracy' in capsys.readouterr().out
    assert (tmp_path / 'digits.npz').exists()

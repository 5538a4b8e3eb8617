"""The examples run with small settings (DESIGN.md section 6): output, results, plots."""
import importlib.util
import os
import re
import subprocess
import sys

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
    assert epoch_lines[:3] == epoch_lines[3:]   # compiled follows the eager trajectory
    assert [int(EPOCH_LINE.match(line).group(1)) for line in epoch_lines[:3]] == [0, 1, 2]

    assert result['max_difference'] < 1e-6
    assert result['traces'] == 1   # one trace for the first call, the epochs and the timing
    assert len(result['Ws']) == 4 and len(result['losses']) == 3
    assert result['losses'][0] > result['losses'][1] > result['losses'][2]
    assert result['eager_steps_per_s'] > 0 and result['compiled_steps_per_s'] > 0

    assert re.search(r'^  eager: +[\d,]+ steps/s$', out, re.M)
    assert re.search(r'^  compiled: +[\d,]+ steps/s$', out, re.M)
    assert re.search(r'^  speed-up: \d+\.\dx$', out, re.M)
    assert 'first call (trace + compile):' in out

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

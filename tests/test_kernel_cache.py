"""A warm disk cache loads kernels without Numba's registry refresh (backend/kernel_cache.py):
a fresh process runs a cached serial kernel, a parallel one and one with an argument range check
(a helper called from Python) without importing Numba's compiler registries, with the numbers
numpy gives, and still compiles a new kernel after them."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PROCESS = textwrap.dedent('''
    import json, sys, numpy as np, tracejit as tj
    # modules only Numba's registry refresh imports (a kernel's environment may import others)
    REFRESH_ONLY = ('numba.typed.typeddict', 'numba.np.polynomial.polynomial_core',
                    'numba.np.random.generator_methods')
    small = tj.Variable(np.linspace(-1, 1, 6).astype(np.float32))
    big = tj.Variable(np.linspace(-2, 2, 1 << 17).astype(np.float32))   # a parallel loop

    def sgd_step(v):
        @tj.function
        def step(x):
            with tj.GradientTape() as tape:
                loss = tj.reduce_sum(tj.nn.softplus(v * x))
            v.assign_sub(0.5 * tape.gradient(loss, v))
            return loss
        return step

    table = tj.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))

    @tj.function
    def pick(ids):   # a range guard on ids: a helper called from Python checks it
        return tj.reduce_sum(tj.gather(table, ids))

    steps = [sgd_step(small), sgd_step(big)]
    losses = [float(s(np.float32(2.0))) for s in steps]
    picked = float(pick(np.array([3, 0, 3], np.int32)))
    result = dict(losses=losses, picked=picked, infos=[s.cache_info() for s in steps + [pick]],
                  registries_loaded=any(name in sys.modules for name in REFRESH_ONLY),
                  small=small.numpy().tolist(), big_head=big.numpy()[:5].tolist(),
                  big_tail=big.numpy()[-5:].tolist())
    if sys.argv[1] == 'compile-after':
        new = tj.function(lambda x: tj.reduce_sum(tj.tanh(small * x)))
        result['new'] = float(new(np.float32(3.0)))
        result['new_info'] = new.cache_info()
    print(json.dumps(result))
''')


def _run(cache_dir, mode):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir), TRACEJIT_BACKGROUND_COMPILE='0')
    out = subprocess.run([sys.executable, '-c', PROCESS, mode], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _expected(v0):
    """softplus(2v) summed, then v - 0.5 * 2 sigmoid(2v), in float64."""
    z = 2.0 * v0
    return np.logaddexp(0.0, z).sum(), v0 - 1.0 / (1.0 + np.exp(-z))


@pytest.mark.compiled
def test_a_warm_process_loads_serial_and_parallel_kernels_without_the_refresh(tmp_path):
    cold = _run(tmp_path, 'plain')
    warm = _run(tmp_path, 'compile-after')
    assert cold['registries_loaded']                     # compiling imports them
    assert not warm['registries_loaded']
    assert [(i['compiles'], i['disk_hits']) for i in warm['infos']] == [(0, 1)] * 3
    small0 = np.linspace(-1, 1, 6).astype(np.float32).astype(np.float64)
    big0 = np.linspace(-2, 2, 1 << 17).astype(np.float32).astype(np.float64)
    for result in (cold, warm):
        for loss, v0 in zip(result['losses'], (small0, big0)):
            assert loss == pytest.approx(_expected(v0)[0], rel=1e-5)
        np.testing.assert_allclose(result['small'], _expected(small0)[1], rtol=1e-6, atol=1e-7)
        big = _expected(big0)[1]
        np.testing.assert_allclose(result['big_head'], big[:5], rtol=1e-6)
        np.testing.assert_allclose(result['big_tail'], big[-5:], rtol=1e-6)
    assert warm['losses'] == cold['losses'] and warm['small'] == cold['small']
    assert cold['picked'] == warm['picked'] == 2 * (9 + 10 + 11) + (0 + 1 + 2)
    # a kernel compiled after the light loads: Numba's compiler refreshes what it needs
    assert warm['new_info']['compiles'] == 1
    assert warm['new'] == pytest.approx(np.tanh(3.0 * _expected(small0)[1]).sum(), rel=1e-5)

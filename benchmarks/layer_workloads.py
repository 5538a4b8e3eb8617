"""W8 (mnist_convnet) and W9 (embedding bag) for the runner: the steps that conv.py and
w9_embedding.py build, wrapped as the runner's Bench objects (they have no numpy reference, so
`--check` skips them). W8's floor is timed as one more implementation, taking turns with them."""
from . import conv
from . import w9_embedding as w9
from .workloads import Bench

W9_OPTIMIZERS = {'tracejit': 'Adam', 'tracejit LazyAdam': 'LazyAdam', 'tracejit SGD': 'SGD'}


def _bench(step, sync=lambda: None):
    return Bench(step, params=dict, sync=sync)


def w8_benches(impls):
    """{'floor': the conv GEMMs in numpy, impl: its step} for the implementations W8 has."""
    x, y, params = conv.w8_problem()
    benches = {'floor': _bench(conv.w8_floor())}
    benches.update({name: _bench(conv.STEPS[name](x, y, params)) for name in impls
                    if name in conv.STEPS})
    return benches


def w9_benches(impls):
    """{'jax': dense Adam, 'tracejit': dense-equivalent Adam, 'tracejit LazyAdam',
    'tracejit SGD'}, all from the same weights and batches."""
    ids, labels, init = w9.make_data()
    benches = {}
    if 'jax' in impls:
        benches['jax'] = _bench(*w9.jax_step(ids, labels, init))
    if 'tracejit' in impls:
        for name, optimizer in W9_OPTIMIZERS.items():
            benches[name] = _bench(*w9.tracejit_step(ids, labels, init, optimizer))
    return benches


WORKLOADS = {
    'W8': ('mnist_convnet without dropout, batch (128, 28, 28, 1), Adam', w8_benches),
    'W9': (f'Embedding({w9.VOCAB}, {w9.DIM}) bag of {w9.BATCH}x{w9.LENGTH} Zipf ids, '
           'Dense(1), BCE', w9_benches),
}

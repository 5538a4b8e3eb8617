"""Whole scripts, timed from process start to their last step: what a user waits for.

    python -m benchmarks.scripts                  # E2 and E3: tracejit, JAX, PyTorch; 3 warm runs
    python -m benchmarks.scripts --repeats 5 --scripts E2

Each script runs in a fresh `python -c` process, timed from outside (interpreter start-up and
imports included). tracejit runs first against a new, empty `TRACEJIT_CACHE_DIR` (cold: it
compiles), then `--repeats` times against the same directory (warm: it loads the kernels); JAX
has no disk cache by default, so its first run is its cold figure and the median of the rest
its warm one. A cold tracejit run exits before the processes compiling its kernels for the
disk cache; the next script starts once they are done (on the same machine they would slow
it down). PyTorch (eager, when installed) is timed the same way. The implementations take
turns run by run.

- E2: seed 001's hospital-visits loop (tracejit.compat.v1 graph and Session vs a jitted JAX
  step), 5000 SGD steps on batches of 100, each step's loss fetched. Targets: warm <= 0.4x JAX,
  cold <= 0.6x JAX.
- E3: the digits MLP (64-128-10, relu, Adam), 30 epochs of batch 128, then test accuracy
  (Keras `fit` vs a jitted JAX step over the same shuffled batches). Target: warm <= 0.4x JAX.

Processes run with Python's default bytecode caching (`isolated.user_environment`), as a
user's shell has it. tracejit's E2 also reports its first training `sess.run` (trace, then load or compile); target
for a warm cache: within 0.15 s. Each script's *floor* is a process that does only its imports
and data preparation and gets Numba ready to load compiled code: a warm run cannot go below it.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import textwrap

from benchmarks.isolated import user_environment, wait_for_compile_processes

RESULT = 'RESULT '

HOSPITAL_DATA = '''
rng = np.random.RandomState(0)
temps = rng.normal(55, 20, 1000)
visits = 1000 - 5 * temps + rng.normal(0, 100, 1000)
train_x = ((temps - temps.mean()) / temps.std())[:800].astype(np.float32)
train_y = visits[:800].astype(np.float32)
'''

E2_TRACEJIT = '''
import time
import numpy as np
import tracejit.compat.v1 as tf
''' + HOSPITAL_DATA + '''
X, y = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
m, b = tf.Variable(0.), tf.Variable(0.)
loss = tf.reduce_mean(tf.squared_difference(X * m + b, y))
train = tf.train.GradientDescentOptimizer(0.0005).minimize(loss)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for i in range(5000):
        k = i % 8
        start = time.perf_counter()
        _, l, m_value, b_value = sess.run([train, loss, m, b], feed_dict={
            X: train_x[k * 100:(k + 1) * 100], y: train_y[k * 100:(k + 1) * 100]})
        if i == 0:
            first_call = time.perf_counter() - start
print('RESULT ' + json.dumps(dict(m=float(m_value), b=float(b_value), first_call=first_call)))
'''

E2_JAX = '''
import numpy as np
import jax
import jax.numpy as jnp
''' + HOSPITAL_DATA + '''

def loss_fn(params, x, y):
    m, b = params
    return jnp.mean((x * m + b - y) ** 2)


@jax.jit
def step(params, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    return tuple(p - 0.0005 * g for p, g in zip(params, grads)), loss


params = (jnp.float32(0.0), jnp.float32(0.0))
for i in range(5000):
    k = i % 8
    params, l = step(params, train_x[k * 100:(k + 1) * 100], train_y[k * 100:(k + 1) * 100])
    l = float(l)
print('RESULT ' + json.dumps(dict(m=float(params[0]), b=float(params[1]))))
'''

DIGITS_DATA = '''
from sklearn.datasets import load_digits
digits = load_digits()
x = (digits.data / 16.0).astype(np.float32)
labels = digits.target.astype(np.int32)
order = np.random.default_rng(0).permutation(len(x))
cut = int(0.8 * len(x))
x_train, y_train = x[order[:cut]], labels[order[:cut]]
x_test, y_test = x[order[cut:]], labels[order[cut:]]
'''

E3_TRACEJIT = '''
import numpy as np
import tracejit as tf
''' + DIGITS_DATA + '''
tf.random.set_seed(0)
model = tf.keras.Sequential([tf.keras.layers.Dense(128, activation='relu'),
                             tf.keras.layers.Dense(10)])
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.fit(x_train, y_train, batch_size=128, epochs=30, verbose=0)
accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
print('RESULT ' + json.dumps(dict(accuracy=accuracy)))
'''

E3_JAX = '''
import numpy as np
import jax
import jax.numpy as jnp
''' + DIGITS_DATA + '''
rng = np.random.default_rng(0)


def glorot(fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return jnp.asarray(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))


params = [glorot(64, 128), jnp.zeros(128), glorot(128, 10), jnp.zeros(10)]


def loss_fn(params, x, labels):
    h = jax.nn.relu(x @ params[0] + params[1])
    logp = jax.nn.log_softmax(h @ params[2] + params[3], axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


@jax.jit
def step(params, state, x, labels):
    grads = jax.grad(loss_fn)(params, x, labels)
    t, ms, vs = state
    t = t + 1
    lr_t = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    ms = [0.9 * m + 0.1 * g for m, g in zip(ms, grads)]
    vs = [0.999 * v + 0.001 * g * g for v, g in zip(vs, grads)]
    params = [p - lr_t * m / (jnp.sqrt(v) + 1e-7) for p, m, v in zip(params, ms, vs)]
    return params, (t, ms, vs)


state = (jnp.float32(0.0), [jnp.zeros_like(p) for p in params],
         [jnp.zeros_like(p) for p in params])
for epoch in range(30):
    order = rng.permutation(len(x_train))
    for start in range(0, len(x_train), 128):
        batch = order[start:start + 128]
        params, state = step(params, state, x_train[batch], y_train[batch])
logits = jax.nn.relu(x_test @ params[0] + params[1]) @ params[2] + params[3]
accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == y_test))
print('RESULT ' + json.dumps(dict(accuracy=accuracy)))
'''

E2_TORCH = '''
import numpy as np
import torch
''' + HOSPITAL_DATA + '''
m = torch.zeros((), requires_grad=True)
b = torch.zeros((), requires_grad=True)
optimizer = torch.optim.SGD([m, b], lr=0.0005)
xs, ys = torch.from_numpy(train_x), torch.from_numpy(train_y)
for i in range(5000):
    k = i % 8
    optimizer.zero_grad()
    loss = torch.mean((xs[k * 100:(k + 1) * 100] * m + b - ys[k * 100:(k + 1) * 100]) ** 2)
    loss.backward()
    optimizer.step()
    l = float(loss)
print('RESULT ' + json.dumps(dict(m=float(m), b=float(b))))
'''

E3_TORCH = '''
import numpy as np
import torch
''' + DIGITS_DATA + '''
torch.manual_seed(0)
rng = np.random.default_rng(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
for epoch in range(30):
    order = torch.from_numpy(rng.permutation(len(x_train)))
    for start in range(0, len(x_train), 128):
        batch = order[start:start + 128]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xs[batch]), ys[batch]).backward()
        optimizer.step()
with torch.no_grad():
    logits = model(torch.from_numpy(x_test)).numpy()
accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
print('RESULT ' + json.dumps(dict(accuracy=accuracy)))
'''

NUMBA_READY = """
from numba.core.registry import cpu_target
from numba.core.runtime import rtsys
rtsys.initialize(cpu_target.target_context)   # what loading a cached kernel initialises
print('RESULT {}')
"""

# the floor of a warm tracejit run: the script's imports and data, and Numba ready to load code
FLOORS = {'E2': 'import numpy as np\nimport tracejit.compat.v1\n' + HOSPITAL_DATA + NUMBA_READY,
          'E3': 'import numpy as np\nimport tracejit\n' + DIGITS_DATA + NUMBA_READY}

SCRIPTS = {'E2': {'tracejit': E2_TRACEJIT, 'jax': E2_JAX, 'torch': E2_TORCH},
           'E3': {'tracejit': E3_TRACEJIT, 'jax': E3_JAX, 'torch': E3_TORCH}}
TARGETS = {('E2', 'warm'): 0.4, ('E2', 'cold'): 0.6, ('E3', 'warm'): 0.4}
FIRST_CALL_TARGET = 0.15


def run_script(source, cache_dir):
    """(seconds from process start to exit, the script's RESULT dict)."""
    env = user_environment(TRACEJIT_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, '-c', 'import json\n' + textwrap.dedent(source)],
                         env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f'script failed:\n{out.stderr[-3000:]}')
    line = next(l for l in out.stdout.splitlines() if l.startswith(RESULT))
    return seconds, json.loads(line[len(RESULT):])


def available(impl):
    try:
        __import__(impl)
        return True
    except ImportError:
        return False


def measure(name, impls, repeats):
    """{impl: {'cold': s, 'warm': [s, ...], 'results': [dict, ...]}}, with 'floor' for the
    floor script (its runs are all 'warm')."""
    runs = {impl: {'warm': [], 'results': []} for impl in impls + ['floor']}
    with tempfile.TemporaryDirectory(prefix='tracejit-scripts-') as cache_dir:
        for k in range(repeats + 1):
            for impl in impls + ['floor']:
                source = FLOORS[name] if impl == 'floor' else SCRIPTS[name][impl]
                seconds, result = run_script(source, cache_dir)
                if impl == 'tracejit':
                    wait_for_compile_processes()
                runs[impl]['results'].append(result)
                if k == 0:
                    runs[impl]['cold'] = seconds
                else:
                    runs[impl]['warm'].append(seconds)
    return runs


def report(name, runs):
    jax = runs.get('jax')
    floor = statistics.median(runs.pop('floor')['warm'])
    print(f'{name} floor of a warm tracejit run (imports, data, Numba ready): {floor:.2f} s')
    for impl, r in runs.items():
        warm = statistics.median(r['warm'])
        line = f'{name} {impl:9s} cold {r["cold"]:6.2f} s   warm {warm:6.2f} s (median of ' \
               f'{len(r["warm"])}: {", ".join(f"{s:.2f}" for s in r["warm"])})'
        if jax is not None and impl == 'tracejit':
            for mode, mine, theirs in (('cold', r['cold'], jax['cold']),
                                       ('warm', warm, statistics.median(jax['warm']))):
                target = TARGETS.get((name, mode))
                verdict = '' if target is None else \
                    f' (target <= {target}x: {"met" if mine / theirs <= target else "not met"})'
                line += f'\n    {mode}: {mine / theirs:.2f}x JAX{verdict}'
                if 'torch' in runs:
                    torch = runs['torch']
                    other = torch['cold'] if mode == 'cold' else statistics.median(torch['warm'])
                    line += f', {mine / other:.2f}x PyTorch'
            line += f'\n    warm floor: {floor / statistics.median(jax["warm"]):.2f}x JAX'
        if 'first_call' in r['results'][-1]:
            first = statistics.median(x['first_call'] for x in r['results'][1:])
            verdict = 'met' if first <= FIRST_CALL_TARGET else 'not met'
            line += (f'\n    first sess.run with a warm cache: {first:.3f} s (target <= '
                     f'{FIRST_CALL_TARGET} s: {verdict})')
        print(line)
        print(f'    result of the last run: {r["results"][-1]}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scripts', default='E2,E3', help='comma-separated subset of E2,E3')
    parser.add_argument('--repeats', type=int, default=3, help='warm runs per implementation')
    args = parser.parse_args(argv)
    impls = [impl for impl in ('tracejit', 'jax', 'torch') if available(impl)]
    for name in args.scripts.split(','):
        report(name, measure(name, impls, args.repeats))


if __name__ == '__main__':
    main()

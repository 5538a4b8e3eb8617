"""The seed tutorials' eager cells run as one script each, with only the import line changed.

`test_seeds.py` copies the tutorials into test functions and instruments them (histories of the
loss, a `compiled` switch). This file checks the stronger promise of the README: the tutorial code
itself, cell after cell as the notebook runs it, plots included, works when
`import tensorflow as tf` (or seed 000's `import tensorflow.compat.v1 as tf`, which TensorFlow 2
runs eagerly) becomes `import tracejit as tf`. The scripts below are the seeds' code cells in
order; the text is the tutorials' own, with the notebook indentation restored where the source
lost it. Changes, and nothing else: the import line (substituted at run time, so the text below
still reads `tensorflow`); in seed 003 the typo `tf.constnat` (an AttributeError in TensorFlow
too) and the `mitdeeplearning` import (a course helper only its Keras cell uses); the Keras cells
are in `test_seeds_keras.py`.

After a script runs, its variables and printed log are checked against numpy: the same data
trained by full-batch gradient descent on mean((W*x + b - y)^2) in float64.

Plots go to matplotlib's Agg backend when matplotlib is installed; without it (the test extra
does not install it) a stand-in `matplotlib.pyplot` converts every plotted argument with
`np.asarray`, which is what plotting a tensor needs.
"""
import importlib.util
import re
import sys
import types
import warnings

import numpy as np
import pytest

import tracejit as tj

from test_seeds import least_squares, numpy_linear_fit

TF_IMPORTS = ('import tensorflow.compat.v1 as tf', 'import tensorflow as tf')


# ------------------------------------------------------------------------------- the scripts

SEED_000 = '''\
import tensorflow.compat.v1 as tf

# Using python state
x = tf.zeros([10, 10])
x += 2  # This is equivalent to x = x + 2, which does not mutate the original
# value of x
print(x)

v = tf.Variable(1.0)
assert v.numpy() == 1.0
# Re-assign the value
v.assign(3.0)
assert v.numpy() == 3.0
# Use `v` in a TensorFlow operation like tf.square() and reassign
v.assign(tf.square(v))
assert v.numpy() == 9.0

class Model(object):
  def __init__(self):
    # Initialize variable to (5.0, 0.0)
    # In practice, these should be initialized to random values.
    self.W = tf.Variable(5.0)
    self.b = tf.Variable(0.0)

  def __call__(self, x):
    return self.W * x + self.b

model = Model()

assert model(3.0).numpy() == 15.0

def loss(predicted_y, desired_y):
  return tf.reduce_mean(tf.square(predicted_y - desired_y))

TRUE_W = 3.0
TRUE_b = 2.0
NUM_EXAMPLES = 1000

inputs = tf.random_normal(shape=[NUM_EXAMPLES])
noise = tf.random_normal(shape=[NUM_EXAMPLES])
outputs = inputs * TRUE_W + TRUE_b + noise

import matplotlib.pyplot as plt

plt.scatter(inputs, outputs, c='b')
plt.scatter(inputs, model(inputs), c='r')
plt.show()

print('Current loss: '),
print(loss(model(inputs), outputs).numpy())

def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  dW, db = t.gradient(current_loss, [model.W, model.b])
  model.W.assign_sub(learning_rate * dW)
  model.b.assign_sub(learning_rate * db)

model = Model()

# Collect the history of W-values and b-values to plot later
Ws, bs = [], []
epochs = range(10)
for epoch in epochs:
  Ws.append(model.W.numpy())
  bs.append(model.b.numpy())
  current_loss = loss(model(inputs), outputs)
  train(model, inputs, outputs, learning_rate=0.1)
  print('Epoch %2d: W=%1.2f b=%1.2f, loss=%2.5f' %
        (epoch, Ws[-1], bs[-1], current_loss))

# Let's plot it all
plt.plot(epochs, Ws, 'r',
         epochs, bs, 'b')
plt.plot([TRUE_W] * len(epochs), 'r--',
         [TRUE_b] * len(epochs), 'b--')
plt.legend(['W', 'b', 'true W', 'true_b'])
plt.show()
'''

SEED_003 = '''\
import tensorflow as tf
import numpy as np
import matplotlib.pyplot as plt

sport = tf.constant("Tennis", tf.string) # 0-d
numbers = tf.constant([3.141, 1.414, 2.718], tf.float64) # 1-d
matrix = tf.constant([[1, 2, 3], [4, 5, 6]], tf.float64) # 2-d
images = tf.zeros([10, 256, 256, 3]) # 4-d
assert tf.rank(images).numpy() == 4
assert tf.shape(images).numpy().tolist() == [10, 256, 256, 3]
# slicing to access subtensors within a higher-rank Tensor
row_vector = matrix[1] # [4. 5. 6.]
column_vector = matrix[:,2] # [3. 6.]
scalar = matrix[1, 2] # 6.0

a = tf.constant(15)
b = tf.constant(61)
c1 = tf.add(a, b)
c2 = a + b # tf provides overrided "+" operation
print(c1, c2)

def func(a, b):
  c = tf.add(a, b)
  d = tf.subtract(b, 1)
  e = tf.multiply(c, d)
  return e

a, b = 1.5, 2.5
e_out = func(a, b)
print(e_out) # a single scalar value

x = tf.Variable(3.0)
with tf.GradientTape() as tape:
  y = x * x
dy_dx = tape.gradient(y, x)
assert dy_dx.numpy() == 6.0

x = tf.Variable([tf.random.normal([1])])
print("Initializing x = {}".format(x.numpy()))
learning_rate = 1e-2
history = []
x_f = 4
# We will run SGD for a number of iterations. At each iteration, we compute the loss,
# compute the derivative of the loss with respect to x, and perform the SGD update.
for i in range(500):
  with tf.GradientTape() as tape:
    loss = tf.pow(x - x_f, 2)
    # answer: (x - x_f)**2
  # loss minimization using gradient tape
  grad = tape.gradient(loss, x) # compute the derivative of the loss with respect to x
  new_x = x - learning_rate*grad # sgd update
  x.assign(new_x) # update the value of x
  history.append(x.numpy()[0])

plt.plot(history)
plt.plot([0, 500], [x_f, x_f])
plt.legend(('Predicted', 'True'))
plt.xlabel('Iteration')
plt.ylabel('x value')
'''

SEED_004 = '''\
import tensorflow as tf

import matplotlib.pyplot as plt

colors = plt.rcParams['axes.prop_cycle'].by_key()['color']

# The actual line
TRUE_W = 3.0
TRUE_B = 2.0

NUM_EXAMPLES = 201

# A vector of random x values
x = tf.linspace(-2,2, NUM_EXAMPLES)
x = tf.cast(x, tf.float32)

def f(x):
  return x * TRUE_W + TRUE_B

# Generate some noise
noise = tf.random.normal(shape=[NUM_EXAMPLES])

# Calculate y
y = f(x) + noise

# Plot all the data
plt.plot(x, y, '.')
plt.show()

class MyModel(tf.Module):
  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    # Initialize the weights to `5.0` and the bias to `0.0`
    # In practice, these should be randomly initialized
    self.w = tf.Variable(5.0)
    self.b = tf.Variable(0.0)

  def __call__(self, x):
    return self.w * x + self.b

model = MyModel()

# List the variables tf.modules's built-in variable aggregation.
print("Variables:", model.variables)

# Verify the model works
assert model(3.0).numpy() == 15.0

# This computes a single loss value for an entire batch
def loss(target_y, predicted_y):
  return tf.reduce_mean(tf.square(target_y - predicted_y))

plt.plot(x, y, '.', label="Data")
plt.plot(x, f(x), label="Ground truth")
plt.plot(x, model(x), label="Predictions")
plt.legend()
plt.show()

print(f"Current loss: {loss(y, model(x)).numpy()}")
# print("Current loss: %1.6f" % loss(y, model(x)).numpy())

# Given a callable model, inputs, outputs, and a learning rate...
def train(model, x, y, learning_rate):

  with tf.GradientTape() as t:
    # Trainable variables are automatically tracked by GradientTape
    current_loss = loss(y, model(x))

  # Use GradientTape to calculate the gradients with respect to W and b
  dw, db = t.gradient(current_loss, [model.w, model.b])

  # Subtract the gradient scaled by the learning rate
  model.w.assign_sub(learning_rate * dw)
  model.b.assign_sub(learning_rate * db)

model = MyModel()

# Collect the history of W-values and b-values to plot later
weights = []
biases = []
epochs = range(10)

# Define a training loop
def report(model, loss):
  return f"W = {model.w.numpy():1.2f}, b = {model.b.numpy():1.2f}, loss={loss:2.5f}"


def training_loop(model, x, y):

  for epoch in epochs:
    # Update the model with the single giant batch
    train(model, x, y, learning_rate=0.1)

    # Track this before I update
    weights.append(model.w.numpy())
    biases.append(model.b.numpy())
    current_loss = loss(y, model(x))

    print(f"Epoch {epoch:2d}:")
    print("    ", report(model, current_loss))

current_loss = loss(y, model(x))

print(f"Starting:")
print("    ", report(model, current_loss))

training_loop(model, x, y)

plt.plot(epochs, weights, label='Weights', color=colors[0])
plt.plot(epochs, [TRUE_W] * len(epochs), '--',
         label = "True weight", color=colors[0])

plt.plot(epochs, biases, label='bias', color=colors[1])
plt.plot(epochs, [TRUE_B] * len(epochs), "--",
         label="True bias", color=colors[1])

plt.legend()
plt.show()

plt.plot(x, y, '.', label="Data")
plt.plot(x, f(x), label="Ground truth")
plt.plot(x, model(x), label="Predictions")
plt.legend()
plt.show()

print("Current loss: %1.6f" % loss(model(x), y).numpy())
'''


# ------------------------------------------------------------------------------- running them

class _PlotStandIn(types.ModuleType):
    """`matplotlib.pyplot` without matplotlib: records each call's arguments as numpy arrays."""

    def __init__(self):
        super().__init__('matplotlib.pyplot')
        cycle = types.SimpleNamespace(by_key=lambda: {'color': ['C0', 'C1', 'C2']})
        self.rcParams = {'axes.prop_cycle': cycle}
        self.calls = []

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)

        def call(*args, **kwargs):
            arrays = [a if isinstance(a, str) else np.asarray(a, dtype=np.float64) for a in args
                      if not isinstance(a, (tuple, list)) or not all(isinstance(s, str) for s in a)]
            self.calls.append((name, arrays, kwargs))
        return call


# matplotlib is an optional extra: the Agg variant runs where it is installed (examples extra)
_BACKENDS = (['matplotlib'] if importlib.util.find_spec('matplotlib') else []) + ['no matplotlib']


@pytest.fixture(params=_BACKENDS)
def plots(request, monkeypatch):
    """Where the scripts' plots go: matplotlib's Agg backend (when installed), or the stand-in
    (as in an environment without matplotlib). Yields the stand-in, or None."""
    if request.param == 'matplotlib':
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='.*non-interactive.*')
                yield None
        finally:
            plt.close('all')
        return
    stand_in = _PlotStandIn()
    package = types.ModuleType('matplotlib')
    package.pyplot = stand_in
    monkeypatch.setitem(sys.modules, 'matplotlib', package)
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', stand_in)
    yield stand_in


def run_script(source, capsys, seed=0):
    """Run a seed script with its TensorFlow import replaced by `import tracejit as tf`.

    Returns (the script's globals, its printed lines). The random seed is set before the script
    runs: the tutorials draw their data from the global generator.
    """
    lines = source.splitlines()
    imports = [i for i, line in enumerate(lines) if line in TF_IMPORTS]
    assert len(imports) == 1, 'a seed script imports TensorFlow exactly once'
    lines[imports[0]] = 'import tracejit as tf'
    script = '\n'.join(lines) + '\n'
    assert script.count('tensorflow') == 0 and script.count('tracejit') == 1
    tj.random.set_seed(seed)
    namespace = {'__name__': '__seed__'}
    capsys.readouterr()
    exec(compile(script, '<seed script>', 'exec'), namespace)
    return namespace, capsys.readouterr().out.splitlines()


def _first_plot(stand_in, name='plot'):
    """The arrays of the first `name` call the stand-in recorded."""
    return next(arrays for called, arrays, _ in stand_in.calls if called == name)


def _losses_at(x, y, Ws, bs):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return np.array([np.mean((W * x + b - y) ** 2) for W, b in zip(Ws, bs)])


# ------------------------------------------------------------------------------- the tests

EPOCH_000 = re.compile(r'^Epoch +(\d+): W=(-?\d\.\d\d) b=(-?\d\.\d\d), loss=(\d+\.\d{5})$')


def test_seed000_script(plots, capsys):
    ns, out = run_script(SEED_000, capsys)
    assert ns['x'].shape == (10, 10) and ns['x'].dtype == tj.float32
    np.testing.assert_array_equal(ns['x'].numpy(), np.full((10, 10), 2.0, np.float32))
    assert ns['v'].numpy() == 9.0
    assert out[0].startswith('tj.Tensor([[2., 2.,')

    inputs, outputs = ns['inputs'].numpy(), ns['outputs'].numpy()
    assert inputs.shape == (1000,) and inputs.dtype == np.float32
    np.testing.assert_allclose(outputs, inputs * 3.0 + 2.0 + ns['noise'].numpy(), rtol=1e-6)
    Ws, bs, losses = numpy_linear_fit(inputs, outputs, 5.0, 0.0, 0.1, 10)

    start = out.index('Current loss: ')
    assert float(out[start + 1]) == pytest.approx(losses[0], rel=1e-5)
    epoch_lines = out[start + 2:]
    assert len(epoch_lines) == 10
    for epoch, line in enumerate(epoch_lines):
        match = EPOCH_000.match(line)
        assert match, line
        assert int(match.group(1)) == epoch
        assert float(match.group(2)) == pytest.approx(Ws[epoch], abs=0.0051)
        assert float(match.group(3)) == pytest.approx(bs[epoch], abs=0.0051)
        assert float(match.group(4)) == pytest.approx(losses[epoch], rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(ns['Ws'], Ws[:10], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ns['bs'], bs[:10], rtol=1e-5, atol=1e-5)
    model = ns['model']
    np.testing.assert_allclose([model.W.numpy(), model.b.numpy()], [Ws[10], bs[10]], rtol=1e-5)
    # gradient descent heads for the least-squares line, which lies near W=3, b=2
    W_ls, b_ls = least_squares(inputs, outputs)
    assert abs(model.W.numpy() - W_ls) < abs(5.0 - W_ls) / 4
    assert abs(model.b.numpy() - b_ls) < abs(0.0 - b_ls) / 4
    assert abs(W_ls - 3.0) < 0.15 and abs(b_ls - 2.0) < 0.15
    if plots is not None:   # the tensors plotted as arrays: data, then the model's predictions
        scatters = [arrays for name, arrays, _ in plots.calls if name == 'scatter']
        np.testing.assert_array_equal(scatters[0][1], outputs)
        np.testing.assert_allclose(scatters[1][1], 5.0 * inputs, rtol=1e-6)


def test_seed003_script(plots, capsys):
    ns, out = run_script(SEED_003, capsys)
    assert ns['sport'].shape == () and tj.rank(ns['sport']).numpy() == 0
    np.testing.assert_array_equal(ns['numbers'].numpy(), np.array([3.141, 1.414, 2.718]))
    assert ns['numbers'].dtype == tj.float64 and ns['matrix'].dtype == tj.float64
    matrix = np.array([[1, 2, 3], [4, 5, 6]], np.float64)
    for name, expected in (('row_vector', matrix[1]), ('column_vector', matrix[:, 2]),
                           ('scalar', matrix[1, 2])):
        value = ns[name]
        assert value.shape == np.shape(expected) and value.dtype == tj.float64, name
        np.testing.assert_array_equal(value.numpy(), expected)

    assert ns['c1'].numpy() == 76 and ns['c2'].numpy() == 76 and ns['c1'].dtype == tj.int32
    assert out[0] == 'tj.Tensor(76, shape=(), dtype=int32) tj.Tensor(76, shape=(), dtype=int32)'
    assert ns['e_out'].numpy() == (1.5 + 2.5) * (2.5 - 1)
    assert out[1] == 'tj.Tensor(6.0, shape=(), dtype=float32)'
    assert ns['dy_dx'].numpy() == 6.0

    # SGD on (x - x_f)^2 from the printed starting point: x <- x - lr * 2 (x - x_f)
    match = re.match(r'^Initializing x = \[\[(\S+)\]\]$', out[2])
    assert match, out[2]
    assert ns['x'].shape == (1, 1) and ns['x'].dtype == tj.float32
    x, expected = float(np.float32(match.group(1))), []
    for _ in range(500):
        x = x - 1e-2 * 2 * (x - 4)
        expected.append([x])
    history = np.array(ns['history'])
    assert history.shape == (500, 1)
    np.testing.assert_allclose(history, expected, rtol=1e-5, atol=1e-5)
    assert abs(history[-1, 0] - 4) < 1e-3
    if plots is not None:
        np.testing.assert_array_equal(_first_plot(plots)[0], history)


# the seed's own printout of `model.variables`, with TensorFlow's `tf.` prefix
SEED_004_VARIABLES = ("Variables: (<tf.Variable 'Variable:0' shape=() dtype=float32, numpy=0.0>, "
                      "<tf.Variable 'Variable:0' shape=() dtype=float32, numpy=5.0>)")
REPORT_004 = re.compile(r'^     W = (-?\d\.\d\d), b = (-?\d\.\d\d), loss=(\d+\.\d{5})$')


def test_seed004_script(plots, capsys):
    ns, out = run_script(SEED_004, capsys)
    x, y = ns['x'].numpy(), ns['y'].numpy()
    assert x.dtype == np.float32 and x.shape == (201,) and y.shape == (201,)
    np.testing.assert_allclose(x, np.linspace(-2, 2, 201), atol=1e-6)
    np.testing.assert_allclose(y, x * 3.0 + 2.0 + ns['noise'].numpy(), rtol=1e-6, atol=1e-6)
    Ws, bs, losses = numpy_linear_fit(x, y, 5.0, 0.0, 0.1, 10)

    assert out[0] == SEED_004_VARIABLES.replace('tf.Variable', 'tj.Variable')
    match = re.match(r'^Current loss: (\S+)$', out[1])
    assert match and float(match.group(1)) == pytest.approx(losses[0], rel=1e-5)
    assert out[2] == 'Starting:'
    assert out[3] == '     W = 5.00, b = 0.00, loss=%2.5f' % losses[0]
    body = out[4:-1]
    assert len(body) == 20
    for epoch in range(10):
        assert body[2 * epoch] == f'Epoch {epoch:2d}:'
        match = REPORT_004.match(body[2 * epoch + 1])
        assert match, body[2 * epoch + 1]
        W, b, current = map(float, match.groups())
        assert W == pytest.approx(Ws[epoch + 1], abs=0.0051)
        assert b == pytest.approx(bs[epoch + 1], abs=0.0051)
        assert current == pytest.approx(losses[epoch + 1], rel=1e-5, abs=1e-5)
    assert out[-1] == 'Current loss: %1.6f' % ns['loss'](ns['model'](ns['x']), ns['y']).numpy()
    assert float(out[-1].split()[-1]) == pytest.approx(losses[10], rel=1e-5)
    np.testing.assert_allclose(ns['weights'], Ws[1:], rtol=1e-5)
    np.testing.assert_allclose(ns['biases'], bs[1:], rtol=1e-5, atol=1e-6)
    assert all(np.diff(_losses_at(x, y, ns['weights'], ns['biases'])) < 0)
    if plots is not None:
        data_x, data_y, _ = _first_plot(plots)
        np.testing.assert_array_equal(data_x, x)
        np.testing.assert_array_equal(data_y, y)

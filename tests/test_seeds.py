"""The seed tutorials' eager code, run with `import tracejit as tf` and nothing else changed.

Each test copies a tutorial's cells as literally as possible (seed file in the test's name, see
the tutorials this project answers to): seed 000 (TF1 custom training basics), 002 (the
same tutorial in R, ported: 20 epochs, loss printed per epoch), 003 (tensors, ops, GradientTape,
SGD on (x - x_f)^2) and 004 (tf.Module and the basic training loop). Only obvious typos in the
seed text are fixed (`tf.constnat`). Plotting, `mdl` and the Keras parts are left out (they belong
to the Keras issue).

Every hand-written training loop is checked three ways: its printed log (format), convergence
toward W=3, b=2, and a numpy implementation of the same algorithm on the same data (to ~1e-5).
Each seed's `train` step is then wrapped with `tf.function` and must follow the same trajectory
as eager (to 1e-6) with a single trace.
"""
import re

import numpy as np
import pytest

import tracejit as tf


# ------------------------------------------------------------------------------- helpers

def numpy_linear_fit(x, y, W, b, learning_rate, steps):
    """The seeds' algorithm in float64 numpy: full-batch gradient descent on mean((W*x+b-y)^2).

    Returns (Ws, bs, losses), each of length steps + 1: the parameters before step k and the loss
    at those parameters (index `steps` is after the last update).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    Ws, bs, losses = [], [], []
    for _ in range(steps + 1):
        err = W * x + b - y
        Ws.append(W)
        bs.append(b)
        losses.append(np.mean(err ** 2))
        dW, db = np.mean(2 * err * x), np.mean(2 * err)
        W, b = W - learning_rate * dW, b - learning_rate * db
    return np.array(Ws), np.array(bs), np.array(losses)


def least_squares(x, y):
    """(W, b) minimising the mean squared error exactly."""
    W, b = np.polyfit(np.asarray(x, np.float64), np.asarray(y, np.float64), 1)
    return W, b


def assert_close(actual, expected, tol):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=tol)


# ------------------------------------------------------------------------------- seed 000

def test_seed000_python_state(capsys):
    # Using python state
    x = tf.zeros([10, 10])
    x += 2  # This is equivalent to x = x + 2, which does not mutate the original
    # value of x
    print(x)

    assert isinstance(x, tf.Tensor)
    assert x.shape == (10, 10) and x.dtype == tf.float32
    assert np.all(x.numpy() == 2.0)
    out = capsys.readouterr().out
    assert out.startswith('tj.Tensor([[2., 2.,') and 'shape=(10, 10), dtype=float32' in out


def test_seed000_variables():
    v = tf.Variable(1.0)
    assert v.numpy() == 1.0
    # Re-assign the value
    v.assign(3.0)
    assert v.numpy() == 3.0
    # Use `v` in a TensorFlow operation like tf.square() and reassign
    v.assign(tf.square(v))
    assert v.numpy() == 9.0

    assert v.dtype == tf.float32 and v.shape == ()
    assert repr(v) == "<tj.Variable 'Variable:0' shape=() dtype=float32, numpy=9.0>"


class Model(object):
    """Seed 000's model (module level so that the training tests can share it)."""

    def __init__(self):
        # Initialize variable to (5.0, 0.0)
        # In practice, these should be initialized to random values.
        self.W = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def __call__(self, x):
        return self.W * x + self.b


def loss(predicted_y, desired_y):
    return tf.reduce_mean(tf.square(predicted_y - desired_y))


def test_seed000_model():
    model = Model()
    assert model(3.0).numpy() == 15.0
    assert model(3.0).dtype == tf.float32


def run_seed000(compiled=False, seed=0):
    """Seed 000's data and training cells; `compiled` wraps `train` with tf.function."""
    tf.random.set_seed(seed)
    TRUE_W = 3.0
    TRUE_b = 2.0
    NUM_EXAMPLES = 1000

    inputs = tf.random_normal(shape=[NUM_EXAMPLES])
    noise = tf.random_normal(shape=[NUM_EXAMPLES])
    outputs = inputs * TRUE_W + TRUE_b + noise

    model = Model()
    print('Current loss: '),
    print(loss(model(inputs), outputs).numpy())

    def train(model, inputs, outputs, learning_rate):
        with tf.GradientTape() as t:
            current_loss = loss(model(inputs), outputs)
        dW, db = t.gradient(current_loss, [model.W, model.b])
        model.W.assign_sub(learning_rate * dW)
        model.b.assign_sub(learning_rate * db)

    if compiled:
        train = tf.function(train)

    model = Model()

    # Collect the history of W-values and b-values to plot later
    Ws, bs = [], []
    losses = []
    epochs = range(10)
    for epoch in epochs:
        Ws.append(model.W.numpy())
        bs.append(model.b.numpy())
        current_loss = loss(model(inputs), outputs)
        losses.append(current_loss.numpy())
        train(model, inputs, outputs, learning_rate=0.1)
        print('Epoch %2d: W=%1.2f b=%1.2f, loss=%2.5f' %
              (epoch, Ws[-1], bs[-1], current_loss))

    return dict(inputs=inputs, outputs=outputs, noise=noise, model=model, train=train,
                Ws=np.array(Ws), bs=np.array(bs), losses=np.array(losses))


EPOCH_LINE_000 = re.compile(r'^Epoch +(\d+): W=(\d\.\d\d) b=(-?\d\.\d\d), loss=(\d+\.\d{5})$')


def test_seed000_training_log(capsys):
    run = run_seed000()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'Current loss: '
    assert float(lines[1]) == pytest.approx(float(run['losses'][0]), rel=1e-6)
    epoch_lines = lines[2:]
    assert len(epoch_lines) == 10
    for epoch, (line, W, b, current) in enumerate(zip(epoch_lines, run['Ws'], run['bs'],
                                                      run['losses'])):
        match = EPOCH_LINE_000.match(line)
        assert match, line
        assert int(match.group(1)) == epoch
        assert match.group(2) == '%1.2f' % W and match.group(3) == '%1.2f' % b
        assert match.group(4) == '%2.5f' % current
    assert epoch_lines[0].startswith('Epoch  0: W=5.00 b=0.00, loss=')
    assert epoch_lines[9].startswith('Epoch  9: ')


def test_seed000_converges_toward_true_parameters():
    run = run_seed000()
    model, losses = run['model'], run['losses']
    assert all(np.diff(losses) < 0), losses
    W_err = np.abs(np.append(run['Ws'], model.W.numpy()) - 3.0)
    b_err = np.abs(np.append(run['bs'], model.b.numpy()) - 2.0)
    assert all(np.diff(W_err) < 0) and all(np.diff(b_err) < 0)
    assert W_err[-1] < 0.4 and b_err[-1] < 0.4   # from 2.0 each after 10 epochs
    # keep training: the seed's step reaches the least-squares solution, which is near (3, 2)
    for _ in range(90):
        run['train'](model, run['inputs'], run['outputs'], learning_rate=0.1)
    W_ls, b_ls = least_squares(run['inputs'], run['outputs'])
    assert model.W.numpy() == pytest.approx(W_ls, abs=1e-4)
    assert model.b.numpy() == pytest.approx(b_ls, abs=1e-4)
    assert abs(model.W.numpy() - 3.0) < 0.15 and abs(model.b.numpy() - 2.0) < 0.15


def test_seed000_matches_numpy_reference():
    run = run_seed000()
    Ws, bs, losses = numpy_linear_fit(run['inputs'], run['outputs'], 5.0, 0.0, 0.1, 10)
    assert_close(run['Ws'], Ws[:10], 1e-5)
    assert_close(run['bs'], bs[:10], 1e-5)
    assert_close(run['losses'], losses[:10], 1e-5)
    assert_close([run['model'].W.numpy(), run['model'].b.numpy()], [Ws[10], bs[10]], 1e-5)


def test_seed000_compiled_train_matches_eager():
    eager = run_seed000(compiled=False, seed=3)
    compiled = run_seed000(compiled=True, seed=3)
    np.testing.assert_array_equal(eager['inputs'].numpy(), compiled['inputs'].numpy())
    for key in ('Ws', 'bs', 'losses'):
        assert_close(compiled[key], eager[key], 1e-6)
    assert_close([compiled['model'].W.numpy(), compiled['model'].b.numpy()],
                 [eager['model'].W.numpy(), eager['model'].b.numpy()], 1e-6)
    info = compiled['train'].cache_info()
    assert info['traces'] == 1, info


# ------------------------------------------------------------------------------- seed 002 (R)

class RModel:
    """Seed 002's R6 class `Model` (fields W and b, method `call`)."""

    def __init__(self):
        self.W = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def call(self, x):
        return self.W * x + self.b


def run_seed002(compiled=False, seed=1):
    """Seed 002 ported from R: `train` returns the loss, 20 epochs, `cat(glue(...), "\\n")`."""
    tf.random.set_seed(seed)
    model = RModel()
    assert model.call(3).numpy() == 15.0   # model$call(3): tf.Tensor(15.0, shape=(), dtype=float32)

    def loss(y_pred, y_true):
        return tf.reduce_mean(tf.square(y_pred - y_true))

    TRUE_W = 3.0
    TRUE_b = 2.0
    NUM_EXAMPLES = 1000

    inputs = tf.random.normal(shape=[NUM_EXAMPLES])
    noise = tf.random.normal(shape=[NUM_EXAMPLES])
    outputs = inputs * TRUE_W + TRUE_b + noise

    def train(model, inputs, outputs, learning_rate):
        with tf.GradientTape() as t:
            current_loss = loss(model.call(inputs), outputs)
        d = t.gradient(current_loss, [model.W, model.b])
        model.W.assign_sub(learning_rate * d[0])
        model.b.assign_sub(learning_rate * d[1])
        return current_loss

    if compiled:
        train = tf.function(train)

    model = RModel()
    Ws, bs, losses = [], [], []
    for epoch in range(1, 20 + 1):   # seq_len(20)
        Ws.append(float(model.W.numpy()))
        bs.append(float(model.b.numpy()))
        current_loss = train(model, inputs, outputs, learning_rate=0.1)
        losses.append(float(current_loss))
        print(f'Epoch: {epoch}, Loss: {float(current_loss)}', '')
    return dict(inputs=inputs, outputs=outputs, model=model, train=train,
                Ws=np.array(Ws), bs=np.array(bs), losses=np.array(losses))


def test_seed002_r_training_log(capsys):
    run = run_seed002()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20
    for epoch, (line, current) in enumerate(zip(lines, run['losses']), start=1):
        match = re.match(r'^Epoch: (\d+), Loss: (\d+\.\d+) $', line)
        assert match, line
        assert int(match.group(1)) == epoch
        assert float(match.group(2)) == current
    losses = run['losses']
    assert all(np.diff(losses) < 0)
    # 20 epochs bring the loss to within a few percent of the least-squares minimum (~noise var.)
    W_ls, b_ls = least_squares(run['inputs'], run['outputs'])
    best = np.mean((W_ls * run['inputs'].numpy().astype(np.float64) + b_ls
                    - run['outputs'].numpy()) ** 2)
    assert losses[0] > 5 * best
    assert losses[-1] == pytest.approx(best, rel=0.03)
    assert abs(run['model'].W.numpy() - 3.0) < 0.15 and abs(run['model'].b.numpy() - 2.0) < 0.15


def test_seed002_matches_numpy_reference():
    run = run_seed002()
    Ws, bs, losses = numpy_linear_fit(run['inputs'], run['outputs'], 5.0, 0.0, 0.1, 20)
    assert_close(run['Ws'], Ws[:20], 1e-5)
    assert_close(run['bs'], bs[:20], 1e-5)
    assert_close(run['losses'], losses[:20], 1e-5)
    assert_close([run['model'].W.numpy(), run['model'].b.numpy()], [Ws[20], bs[20]], 1e-5)


def test_seed002_compiled_train_matches_eager(capsys):
    eager = run_seed002(compiled=False, seed=4)
    compiled = run_seed002(compiled=True, seed=4)
    for key in ('Ws', 'bs', 'losses'):
        assert_close(compiled[key], eager[key], 1e-6)
    assert compiled['train'].cache_info()['traces'] == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 40 and all(line.startswith('Epoch: ') for line in lines)


# ------------------------------------------------------------------------------- seed 003

def test_seed003_tensors():
    sport = tf.constant("Tennis", tf.string)  # 0-d
    numbers = tf.constant([3.141, 1.414, 2.718], tf.float64)  # 1-d
    matrix = tf.constant([[1, 2, 3], [4, 5, 6]], tf.float64)  # 2-d  (seed: tf.constnat)
    images = tf.zeros([10, 256, 256, 3])  # 4-d
    assert tf.rank(images).numpy() == 4
    assert tf.shape(images).numpy().tolist() == [10, 256, 256, 3]
    # slicing to access subtensors within a higher-rank Tensor
    row_vector = matrix[1]  # [4. 5. 6.]
    column_vector = matrix[:, 2]  # [3. 6.]
    scalar = matrix[1, 2]  # 6.0

    assert sport.numpy() == b'Tennis' and sport.shape == () and tf.rank(sport).numpy() == 0
    assert numbers.dtype == tf.float64 and tf.rank(numbers).numpy() == 1
    assert numbers.numpy().tolist() == [3.141, 1.414, 2.718]
    assert matrix.dtype == tf.float64 and tf.rank(matrix).numpy() == 2
    assert tf.shape(matrix).numpy().tolist() == [2, 3]
    assert images.dtype == tf.float32
    assert row_vector.numpy().tolist() == [4., 5., 6.] and row_vector.shape == (3,)
    assert column_vector.numpy().tolist() == [3., 6.] and column_vector.shape == (2,)
    assert scalar.numpy() == 6.0 and scalar.shape == () and scalar.dtype == tf.float64


def test_seed003_computations(capsys):
    a = tf.constant(15)
    b = tf.constant(61)
    c1 = tf.add(a, b)
    c2 = a + b  # tf provides overrided "+" operation
    print(c1, c2)

    def func(a, b):
        c = tf.add(a, b)
        d = tf.subtract(b, 1)
        e = tf.multiply(c, d)
        return e

    a, b = 1.5, 2.5
    e_out = func(a, b)
    print(e_out)  # a single scalar value

    assert c1.numpy() == 76 and c2.numpy() == 76 and c1.dtype == tf.int32
    assert e_out.numpy() == 6.0 and e_out.shape == () and e_out.dtype == tf.float32
    out = capsys.readouterr().out.splitlines()
    assert out == ['tj.Tensor(76, shape=(), dtype=int32) tj.Tensor(76, shape=(), dtype=int32)',
                   'tj.Tensor(6.0, shape=(), dtype=float32)']


def test_seed003_operators_match_ops():
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    b = tf.constant([[5.0, 6.0], [7.0, 8.0]])
    for op, fn in ((lambda x, y: x + y, tf.add), (lambda x, y: x - y, tf.subtract),
                   (lambda x, y: x * y, tf.multiply)):
        np.testing.assert_array_equal(op(a, b).numpy(), fn(a, b).numpy())
    np.testing.assert_array_equal((a - b).numpy(), a.numpy() - b.numpy())
    np.testing.assert_array_equal(tf.multiply(a, 2).numpy(), a.numpy() * 2)
    assert tf.multiply(a, 2).dtype == tf.float32   # weak Python scalar keeps float32


def test_seed003_gradient_of_x_squared():
    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = x * x
    dy_dx = tape.gradient(y, x)
    assert dy_dx.numpy() == 6.0


def test_seed003_persistent_tape():
    x = tf.constant(3.0)
    with tf.GradientTape(persistent=True) as g:
        g.watch(x)
        y = x * x
        z = y * y
    dz_dx = g.gradient(z, x)  # 108.0 (4*x^3 at x = 3)
    dy_dx = g.gradient(y, x)  # 6.0
    del g  # Drop the reference to the tape
    assert dz_dx.numpy() == 108.0
    assert dy_dx.numpy() == 6.0

    x = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match='persistent'):
        tape.gradient(y, x)


def run_seed003_sgd(step=None, seed=2):
    """Seed 003's SGD on (x - x_f)^2; `step` optionally replaces the loop body (compiled run)."""
    tf.random.set_seed(seed)
    x = tf.Variable([tf.random.normal([1])])
    print("Initializing x = {}".format(x.numpy()))
    x0 = float(x.numpy()[0, 0])
    learning_rate = 1e-2
    history = []
    x_f = 4

    # We will run SGD for a number of iterations. At each iteration, we compute the loss,
    # compute the derivative of the loss with respect to x, and perform the SGD update.
    for i in range(500):
        if step is not None:
            step(x, x_f, learning_rate)
            history.append(x.numpy()[0])
            continue
        with tf.GradientTape() as tape:
            loss = tf.pow(x - x_f, 2)
            # answer: (x - x_f)**2
        # loss minimization using gradient tape
        grad = tape.gradient(loss, x)  # compute the derivative of the loss with respect to x
        new_x = x - learning_rate * grad  # sgd update
        x.assign(new_x)  # update the value of x
        history.append(x.numpy()[0])
    return x, x0, history


def test_seed003_sgd_finds_x_f(capsys):
    x, x0, history = run_seed003_sgd()
    assert x.shape == (1, 1) and x.dtype == tf.float32
    assert len(history) == 500 and history[-1].shape == (1,)
    assert abs(history[-1][0] - 4) < 1e-3
    assert capsys.readouterr().out.startswith('Initializing x = [[')
    # numpy reference: x <- x - lr * 2 (x - x_f)
    ref, expected = x0, []
    for _ in range(500):
        ref = ref - 1e-2 * 2 * (ref - 4)
        expected.append(ref)
    assert_close([h[0] for h in history], expected, 1e-5)


def test_seed003_sgd_compiled_matches_eager():
    @tf.function
    def sgd_step(x, x_f, learning_rate):
        with tf.GradientTape() as tape:
            loss = tf.pow(x - x_f, 2)
        grad = tape.gradient(loss, x)
        new_x = x - learning_rate * grad
        x.assign(new_x)

    _, _, eager = run_seed003_sgd(seed=5)
    _, _, compiled = run_seed003_sgd(step=sgd_step, seed=5)
    assert_close(compiled, eager, 1e-6)
    assert sgd_step.cache_info()['traces'] == 1


# ------------------------------------------------------------------------------- seed 004

class MyModel(tf.Module):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Initialize the weights to `5.0` and the bias to `0.0`
        # In practice, these should be randomly initialized
        self.w = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def __call__(self, x):
        return self.w * x + self.b


def seed004_data(seed=0):
    tf.random.set_seed(seed)
    # The actual line
    TRUE_W = 3.0
    TRUE_B = 2.0

    NUM_EXAMPLES = 201

    # A vector of random x values
    x = tf.linspace(-2, 2, NUM_EXAMPLES)
    x = tf.cast(x, tf.float32)

    def f(x):
        return x * TRUE_W + TRUE_B

    # Generate some noise
    noise = tf.random.normal(shape=[NUM_EXAMPLES])

    # Calculate y
    y = f(x) + noise
    return x, y, f


def test_seed004_data():
    x, y, f = seed004_data()
    assert x.dtype == tf.float32 and x.shape == (201,) and y.shape == (201,)
    np.testing.assert_allclose(x.numpy(), np.linspace(-2, 2, 201), atol=1e-6)
    assert x[0].numpy() == -2.0 and x[-1].numpy() == 2.0 and x[100].numpy() == 0.0
    assert x.shape[0] == 201
    noise = (y - f(x)).numpy()
    assert abs(noise.mean()) < 0.3 and 0.7 < noise.std() < 1.3


def test_seed004_module(capsys):
    model = MyModel()

    # List the variables tf.modules's built-in variable aggregation.
    print("Variables:", model.variables)

    # Verify the model works
    assert model(3.0).numpy() == 15.0

    # sorted by attribute name, as TensorFlow prints them: b (0.0) then w (5.0)
    assert model.variables[0] is model.b and model.variables[1] is model.w
    assert model.trainable_variables == model.variables
    assert capsys.readouterr().out == (
        "Variables: (<tj.Variable 'Variable:0' shape=() dtype=float32, numpy=0.0>, "
        "<tj.Variable 'Variable:0' shape=() dtype=float32, numpy=5.0>)\n")
    assert model.name == 'my_model'


def loss004(target_y, predicted_y):
    # This computes a single loss value for an entire batch
    return tf.reduce_mean(tf.square(target_y - predicted_y))


def run_seed004(compiled=False, seed=0):
    """Seed 004's training cells; `compiled` wraps `train` with tf.function."""
    x, y, f = seed004_data(seed)
    loss = loss004
    model = MyModel()
    print(f"Current loss: {loss(y, model(x)).numpy()}")

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

    if compiled:
        train = tf.function(train)

    model = MyModel()

    # Collect the history of W-values and b-values to plot later
    weights = []
    biases = []
    losses = []
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
            losses.append(current_loss.numpy())

            print(f"Epoch {epoch:2d}:")
            print("    ", report(model, current_loss))

    current_loss = loss(y, model(x))

    print(f"Starting:")
    print("    ", report(model, current_loss))

    training_loop(model, x, y)

    print("Current loss: %1.6f" % loss(model(x), y).numpy())
    return dict(x=x, y=y, model=model, train=train, start_loss=current_loss.numpy(),
                weights=np.array(weights), biases=np.array(biases), losses=np.array(losses))


def test_seed004_training_log(capsys):
    run = run_seed004()
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r'^Current loss: \d+\.\d+$', lines[0])
    assert lines[1] == 'Starting:'
    assert lines[2] == '     W = 5.00, b = 0.00, loss=%2.5f' % run['start_loss']
    body = lines[3:-1]
    assert len(body) == 20
    for epoch in range(10):
        header, report = body[2 * epoch], body[2 * epoch + 1]
        assert header == f'Epoch {epoch:2d}:'
        match = re.match(r'^     W = (\d\.\d\d), b = (-?\d\.\d\d), loss=(\d+\.\d{5})$', report)
        assert match, report
        assert match.groups() == ('%1.2f' % run['weights'][epoch], '%1.2f' % run['biases'][epoch],
                                  '%2.5f' % run['losses'][epoch])
    assert lines[-1] == 'Current loss: %1.6f' % run['losses'][-1]


def test_seed004_converges_and_matches_numpy_reference():
    run = run_seed004()
    Ws, bs, losses = numpy_linear_fit(run['x'], run['y'], 5.0, 0.0, 0.1, 10)
    assert_close(run['weights'], Ws[1:], 1e-5)
    assert_close(run['biases'], bs[1:], 1e-5)
    assert_close(run['losses'], losses[1:], 1e-5)
    assert run['start_loss'] == pytest.approx(losses[0], rel=1e-5)
    assert all(np.diff(run['losses']) < 0)
    assert abs(run['weights'][-1] - 3.0) < 0.4 and abs(run['biases'][-1] - 2.0) < 0.5


def test_seed004_compiled_train_matches_eager(capsys):
    eager = run_seed004(compiled=False, seed=6)
    compiled = run_seed004(compiled=True, seed=6)
    for key in ('weights', 'biases', 'losses'):
        assert_close(compiled[key], eager[key], 1e-6)
    assert compiled['train'].cache_info()['traces'] == 1
    out = capsys.readouterr().out.split('Current loss: ')
    assert len(out) == 5   # initial and final loss, eager then compiled
    assert float(out[4]) == pytest.approx(float(out[2]), rel=1e-5, abs=2e-6)


def test_seed004_compiled_train_graph_updates_both_variables():
    x, y, _ = seed004_data()
    model = MyModel()

    @tf.function
    def train(model, x, y, learning_rate):
        with tf.GradientTape() as t:
            current_loss = loss004(y, model(x))
        dw, db = t.gradient(current_loss, [model.w, model.b])
        model.w.assign_sub(learning_rate * dw)
        model.b.assign_sub(learning_rate * db)

    graph = train.trace(model, x, y, 0.1).graph
    assert len(graph.updates) == 2
    assert {id(v) for v, _ in graph.updates} == {id(model.w), id(model.b)}
    assert model.w.numpy() == 5.0 and model.b.numpy() == 0.0   # tracing does not run the step
    text = str(graph)
    assert 'reduce_sum' in text

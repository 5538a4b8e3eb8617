"""TensorFlow 1 graphs and sessions with tracejit: the "slow, thorough introduction" tutorial.

Only the import differs from TF1 code: `import tracejit.compat.v1 as tf`. The script walks the
tutorial: inspecting a graph (operations, names, inputs and outputs), constants and
placeholders fed through `feed_dict`, Variables that live per session, `tf.gradients`, the
minimisation of x^2 four ways (by hand, with tf.gradients, GradientDescentOptimizer, Adam) and
the hospital-visits mini-batch linear regression: 1000 synthetic (temperature, visits) samples
split 800/100/100 into training, validation and test sets, batches of 100, 5000 steps.
Each `sess.run` is one call of a step compiled once; the script reports its cost.

    python examples/tf1_graphs.py                    # 5000 steps, plot under out/
    python examples/tf1_graphs.py --steps 500 --out /tmp/plots

The plot (losses per epoch, data and fitted line) needs matplotlib; without it the script says
so and skips it.
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import tracejit.compat.v1 as tf
except ImportError:  # running from a checkout without installing: use the checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    import tracejit.compat.v1 as tf
import tracejit  # noqa: E402 (for config.block_until_compiled, outside the tutorial's code)

BATCH_SIZE = 100
LEARNING_RATE = 0.0005


def section(title):
    print(f'\n=== {title} ===')


def inspect_graph():
    """Constants and an addition: what the graph holds before anything runs."""
    section('graph inspection')
    tf.reset_default_graph()
    g = tf.get_default_graph()
    const_tensor = tf.constant(3.14)
    another_const_tensor = tf.constant(1.414)
    sum_tensor = tf.add(const_tensor, another_const_tensor)
    for op in g.get_operations():
        print(f'{op.name:8s} type={op.type:6s} inputs={[t.name for t in op.inputs]} '
              f'outputs={[t.name for t in op.outputs]}')
    with tf.Session() as sess:
        fetched = sess.run({'a': const_tensor, 'b': another_const_tensor,
                            '[a,b,a+b]': [const_tensor, another_const_tensor, sum_tensor]})
    print('nested fetch:', fetched)
    return [op.name for op in g.get_operations()], float(fetched['[a,b,a+b]'][2])


def placeholders():
    """One graph, many inputs: scalars, vectors and matrices fed to the same addition."""
    section('placeholders and feed_dict')
    tf.reset_default_graph()
    a = tf.placeholder(tf.float32)
    b = tf.placeholder(tf.float32)
    flexible_sum_tensor = tf.add(a, b)
    distance_from_origin = tf.sqrt((a * a) + (b * b))
    print(flexible_sum_tensor, distance_from_origin)
    with tf.Session() as sess:
        for feed in ({a: 1., b: 2.}, {a: [1.], b: [2.]},
                     {a: [[1., 2.], [3., 4.]], b: [[5., 6.], [7., 8.]]}):
            print('a + b =', sess.run(flexible_sum_tensor, feed_dict=feed).tolist())
        distance = sess.run(distance_from_origin, feed_dict={a: 3., b: 4.})
        print('distance from origin of (3, 4):', distance)
        try:
            sess.run(distance_from_origin)
        except tf.errors.InvalidArgumentError as e:
            print('without a feed:', e)
    return float(distance)


def variables_per_session():
    """Two sessions, one Variable: each session holds (and initialises) its own value."""
    section('variables live in sessions')
    tf.reset_default_graph()
    g = tf.get_default_graph()
    x = tf.Variable(42)
    for op in g.get_operations():
        print(f'{op.name:22s} {op.type:10s} {len(op.inputs)} inputs, {len(op.outputs)} output')
    sess, sess2 = tf.Session(), tf.Session()
    sess.run(x.initializer)
    increment = x.assign_add(1)
    sess.run(increment)
    try:
        sess2.run(x)
    except tf.errors.FailedPreconditionError as e:
        print('sess2 before its initializer:', e)
    sess2.run(x.initializer)
    values = int(sess.run(x)), int(sess2.run(x))
    print('x in sess, sess2:', values)
    sess.close()
    sess2.close()
    return values


def gradients():
    """tf.gradients: partial derivatives as graph operations, summed over several ys."""
    section('tf.gradients')
    tf.reset_default_graph()
    a = tf.constant(5, name='a')
    b = tf.constant(7, name='b')
    eqn = a + 2 * b
    eqn2 = a * b + b
    with tf.Session() as sess:
        results = {'d eqn/db': sess.run(tf.gradients(eqn, b)),
                   'd eqn/d[a,b]': sess.run(tf.gradients(eqn, [a, b])),
                   'd eqn2/d[a,b]': sess.run(tf.gradients(eqn2, [a, b])),
                   'd (eqn+eqn2)/d[a,b]': sess.run(tf.gradients([eqn, eqn2], [a, b]))}
    for name, value in results.items():
        print(f'{name:20s} {[int(v) for v in value]}')
    return {k: [int(v) for v in value] for k, value in results.items()}


def minimise_x_squared(method, iterations=100, step_size=0.1):
    """Gradient descent on x^2 from x = 5; returns the final x."""
    tf.reset_default_graph()
    x = tf.Variable(5.0)
    loss = x * x
    if method == 'by hand':
        train = tf.assign(x, x - 2. * x * step_size)
    elif method == 'tf.gradients':
        train = tf.assign(x, x - tf.gradients(loss, x)[0] * step_size)
    elif method == 'GradientDescentOptimizer':
        train = tf.train.GradientDescentOptimizer(learning_rate=step_size).minimize(loss)
    else:
        train = tf.train.AdamOptimizer(learning_rate=step_size).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for i in range(iterations):
            fetched = sess.run({'x': x, 'loss': loss, 'train': train})
        final = float(sess.run(x))
    print(f'{method:25s} x: 5.0 -> {final:.6g} (last loss fetched {fetched["loss"]:.3g})')
    return final


def make_hospital_data(seed, samples=1000):
    """Temperatures ~ N(55, 20); visits = 1000 - 5 * temperature + N(0, 100) noise."""
    rng = np.random.RandomState(seed)
    temps = rng.normal(55, 20, samples)
    hosp_visits = 1000 - 5 * temps + rng.normal(0, 100, samples)
    normalized_temps = (temps - np.mean(temps)) / np.std(temps)
    train = normalized_temps[:800], hosp_visits[:800]
    valid = normalized_temps[800:900], hosp_visits[800:900]
    test = normalized_temps[900:], hosp_visits[900:]
    return train, valid, test


def batch_generator(X, y, batch_size):
    total_batches = len(X) // batch_size
    current_batch = 0
    while True:
        start = batch_size * current_batch
        yield X[start:start + batch_size], y[start:start + batch_size]
        current_batch = (current_batch + 1) % total_batches


def linear_model_graph(tf, learning_rate=LEARNING_RATE):
    """The tutorial's graph (In [70]-[73]) in the current default graph, built with the given
    `tf` module (benchmarks/session_loop.py builds it with TensorFlow too): returns X, y, m, b,
    avg_loss, train_one_step and init_all_vars."""
    X = tf.placeholder(tf.float32)
    y = tf.placeholder(tf.float32)
    m = tf.Variable(0.)
    b = tf.Variable(0.)
    predicted_y = X * m + b
    avg_loss = tf.reduce_mean(tf.squared_difference(predicted_y, y))
    train_one_step = tf.train.GradientDescentOptimizer(learning_rate=learning_rate).minimize(
        avg_loss)
    return X, y, m, b, avg_loss, train_one_step, tf.global_variables_initializer()


def hospital_visits(steps, seed):
    """The tutorial's mini-batch linear regression; per-epoch losses and the run cost."""
    section(f'hospital visits: {steps} steps of mini-batch gradient descent')
    (train_X, train_y), (valid_X, valid_y), (test_X, test_y) = make_hospital_data(seed)
    tf.reset_default_graph()
    X, y, m, b, avg_loss, train_one_step, init_all_vars = linear_model_graph(tf)

    batches_per_epoch = len(train_X) // BATCH_SIZE
    training_generator = batch_generator(train_X, train_y, BATCH_SIZE)
    epoch_train, epoch_valid, batch_losses = [], [], []
    run_seconds = first_run = 0.0   # the first run traces and compiles (or loads) the step
    with tf.Session() as sess:
        sess.run(init_all_vars)
        for i in range(steps):
            X_batch, y_batch = next(training_generator)
            start = time.perf_counter()
            _, loss, m_pred, b_pred = sess.run([train_one_step, avg_loss, m, b],
                                               feed_dict={X: X_batch, y: y_batch})
            if i == 0:
                first_run = time.perf_counter() - start
            else:
                run_seconds += time.perf_counter() - start
            batch_losses.append(float(loss))
            if (i + 1) % batches_per_epoch == 0:
                epoch_train.append(float(np.mean(batch_losses)))
                epoch_valid.append(float(sess.run(avg_loss, {X: valid_X, y: valid_y})))
                batch_losses = []
            if i % 500 == 0:
                valid_loss = sess.run(avg_loss, feed_dict={X: valid_X, y: valid_y})
                print(f'Iter {i}: training loss = {loss}, validation loss = {valid_loss}, '
                      f'm={m_pred}, b={b_pred}')
            if i == 0:  # time compiled runs only: wait for the kernels compiling meanwhile
                tracejit.config.block_until_compiled()
        m_pred, b_pred, test_loss = sess.run([m, b, avg_loss], {X: test_X, y: test_y})
        cache = sess.cache_info()
    print(f'm: {m_pred}, b: {b_pred}, test loss: {test_loss}')
    slope, intercept = np.polyfit(train_X, train_y, 1)
    print(f'least squares on the training set: m={slope:.3f}, b={intercept:.3f}')
    us_per_run = run_seconds / max(steps - 1, 1) * 1e6
    print(f'first training run (trace; compiled in the background): {first_run:.2f} s; then '
          f'{us_per_run:.1f} us per run, {run_seconds:.3f} s for {steps - 1} runs '
          f'(compiled steps: {cache["plans"]}, traces: {cache["traces"]})')
    return dict(m=float(m_pred), b=float(b_pred), test_loss=float(test_loss),
                epoch_train_losses=epoch_train, epoch_valid_losses=epoch_valid,
                least_squares=(float(slope), float(intercept)), us_per_run=us_per_run,
                run_seconds=run_seconds, first_run=first_run, cache_info=cache,
                data=(train_X, train_y))


def plot(out_dir, result):
    """A PNG of the per-epoch losses and of the fitted line; returns its path, or None."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: skipped plotting '
              "(pip install -e '.[examples]' to get the plot)")
        return None
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'tf1_hospital_visits.png')
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(result['epoch_train_losses']) + 1)
    left.plot(epochs, result['epoch_train_losses'], label='training')
    left.plot(epochs, result['epoch_valid_losses'], label='validation')
    left.set_yscale('log')
    left.set_xlabel('epoch')
    left.set_title('mean squared error per epoch')
    left.legend()
    x, y = result['data']
    right.plot(x, y, 'o', markersize=2, label='data')
    grid = np.linspace(x.min(), x.max(), 2)
    right.plot(grid, result['m'] * grid + result['b'], 'r', label='fitted line')
    right.set_xlabel('normalised temperature')
    right.set_ylabel('hospital visits')
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f'wrote {path}')
    return path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=5000,
                        help='training steps of the hospital-visits regression (default 5000)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic data')
    parser.add_argument('--out', default='out',
                        help="directory for the plot (default out/; '' for none)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = {'operations': inspect_graph(), 'distance': placeholders(),
              'per_session': variables_per_session(), 'gradients': gradients()}
    section('minimising x^2 from x = 5 (100 iterations)')
    result['x_final'] = {method: minimise_x_squared(method) for method in (
        'by hand', 'tf.gradients', 'GradientDescentOptimizer', 'AdamOptimizer')}
    result['hospital'] = hospital_visits(args.steps, args.seed)
    result['plot'] = plot(args.out, result['hospital']) if args.out else None
    return result


if __name__ == '__main__':
    main()

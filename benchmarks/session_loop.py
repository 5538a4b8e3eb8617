"""Per-`sess.run` cost of seed 001's hospital-visits loop: tracejit.compat.v1 vs TensorFlow.

    python -m benchmarks.session_loop                 # 5 repeats of the 5000-run loop
    python -m benchmarks.session_loop --repeats 3 --impls tracejit

The loop is the tutorial's (In [65]-[74]): 1000 (temperature, visits) samples, normalised
temperatures, an 800-sample training set, a generator slicing consecutive batches of 100,
`X * m + b`, `reduce_mean(squared_difference)`, `GradientDescentOptimizer(0.0005).minimize`, and
5000 iterations of `sess.run([train_one_step, avg_loss, m, b], feed_dict={X: ..., y: ...})`.
The whole loop (batch generator included, the tutorial's every-500th validation run left out)
is timed after one warm-up run of the same loop in the same session, and reported as µs per
`sess.run`; the figure is the median over the repeats, the implementations taking turns.
TensorFlow runs `tf.compat.v1` with eager execution disabled (graph mode, as the tutorial).
Both end at the same slope and intercept (checked against each other when both run).
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

STEPS = 5000
ALL_IMPLS = ['tracejit', 'tensorflow']


def tutorial():
    """examples/tf1_graphs.py, which holds the tutorial's data, batch generator and graph."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples',
                        'tf1_graphs.py')
    spec = importlib.util.spec_from_file_location('tf1_graphs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name):
    if name == 'tracejit':
        import tracejit.compat.v1 as tf
        return tf, 'tracejit ' + getattr(sys.modules['tracejit'], '__version__', '')
    import tensorflow
    tf = tensorflow.compat.v1
    tf.disable_eager_execution()
    return tf, 'tensorflow ' + tensorflow.__version__


def make_loop(tf, example, train_X, train_y):
    """Builds the tutorial's graph in a new graph and session; returns (run(steps), close)."""
    graph = tf.Graph()
    with graph.as_default():
        X, y, m, b, avg_loss, train_one_step, init_all_vars = example.linear_model_graph(tf)
    sess = tf.Session(graph=graph)
    sess.run(init_all_vars)

    def run(steps):
        sess.run(init_all_vars)
        training_generator = example.batch_generator(train_X, train_y, batch_size=100)
        start = time.perf_counter()
        for i in range(steps):
            X_batch, y_batch = next(training_generator)
            feed_dict = {X: X_batch, y: y_batch}
            _, loss, m_pred, b_pred = sess.run([train_one_step, avg_loss, m, b],
                                               feed_dict=feed_dict)
        return time.perf_counter() - start, (float(m_pred), float(b_pred))
    return run, sess.close


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--impls', default=','.join(ALL_IMPLS))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    example = tutorial()
    (train_X, train_y), _, _ = example.make_hospital_data(seed=1)
    loops, results = {}, {}
    for name in args.impls.split(','):
        try:
            tf, version = load(name)
        except ImportError as exc:
            print(f'{name}: skipped ({exc})')
            continue
        run, close = make_loop(tf, example, train_X, train_y)
        run(STEPS)                                  # warm-up: compile, caches
        if name == 'tracejit':
            sys.modules['tracejit'].config.block_until_compiled()   # time compiled runs only
        loops[name] = (run, close)
        results[name] = []
        print(f'{name}: {version}')
    finals = {}
    for _ in range(args.repeats):
        for name, (run, _) in loops.items():
            time.sleep(0.2)
            seconds, finals[name] = run(STEPS)
            results[name].append(seconds / STEPS * 1e6)
    for _, close in loops.values():
        close()
    for name, (m, b) in finals.items():
        print(f'{name}: after {STEPS} runs m = {m:.4f}, b = {b:.4f}')
    if len(finals) == 2:
        (m1, b1), (m2, b2) = finals.values()
        assert abs(m1 - m2) <= 1e-3 * abs(m2) and abs(b1 - b2) <= 1e-3 * abs(b2), finals
    base = statistics.median(results['tracejit']) if 'tracejit' in results else None
    print(f'\n{"impl":12s} {"us/run":>8s} {"min":>8s} {"x tracejit":>10s}')
    for name, values in results.items():
        med = statistics.median(values)
        ratio = f'{med / base:10.1f}' if base else ''
        print(f'{name:12s} {med:8.1f} {min(values):8.1f} {ratio}')
    return results


if __name__ == '__main__':
    if __package__ in (None, ''):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()

"""Per-batch cost of Keras-style `model.fit` against the hand-written compiled W3 step.

    python -m benchmarks.fit_vs_step                 # 7 repeats of 10 epochs each
    python -m benchmarks.fit_vs_step --repeats 3 --epochs 5 --impls step,fit,torch

W3's model (sklearn digits, MLP 64-128(relu)-10, sparse softmax cross-entropy from logits, Adam
lr 1e-3 / eps 1e-7, batch 128) trained four ways in one process, from the same initial weights
(`benchmarks.workloads.make_w3`), on the first 11 * 128 = 1408 training rows so every batch is
full:

- `step`: the hand-written compiled step of `benchmarks/tracejit_workloads.py` (`make_mlp`), fed
  consecutive batches sliced from numpy arrays (what `benchmarks.run` times for W3); one epoch is
  11 calls.
- `fit`, `fit+acc`: `tj.keras.Sequential([Dense(128, 'relu'), Dense(10)])` compiled with
  `Adam(1e-3, epsilon=1e-7)` and `SparseCategoricalCrossentropy(from_logits=True)` (`fit+acc`
  also tracks `metrics=['accuracy']`), trained with `model.fit(x, y, batch_size=128,
  epochs=E, verbose=0)`: shuffling, slicing, the loss tracker and the epoch bookkeeping are
  included.
- `fit-spe12`: `fit` with `steps_per_execution=12`, so each epoch's 11 batches are one native
  call (a scan over the stacked batches). Before the timed runs, the wall time of a first
  one-epoch fit (trace, compile in the foreground, one epoch; imports excluded) is printed for
  `steps_per_execution` 1 and 12: the median of `--compile-repeats` runs, each in a fresh
  process with a fresh kernel cache (nothing compiled before, in memory or on disk). After the
  timed runs, its floor: the scan kernel's per-batch time when one call runs 110 batches (the
  per-call costs spread thin), as a ratio to `fit`'s per-batch time; `fit-spe12` cannot go below
  it however small the per-call cost becomes.
- `torch`: the usual PyTorch loop: `nn.Sequential(Linear, ReLU, Linear)`, `torch.optim.Adam(lr=1e-3,
  eps=1e-7)`, `nn.CrossEntropyLoss`, a `randperm` per epoch and index-selected batches.
- `tf-keras`: the same model with TensorFlow's Keras (when TensorFlow is installed), `fit`
  with its defaults (`verbose=0`).

Per-batch time = one epoch's wall time / 11. For the fits an epoch is timed from
`on_epoch_begin` to `on_epoch_end` of a callback (so the one-off set-up of each `fit` call is not
counted; it is reported separately as `fit call`, the whole `fit(epochs=E)` call / (E * 11)).
Implementations take turns block by block (one block = E epochs), each block after a 0.2 s pause;
the figure is the median over all timed epochs, with the spread (half the inter-quartile range).
First a correctness check: one unshuffled `fit` epoch must give the weights of 11 hand-written
steps on the same batches.
"""
import argparse
import os
import statistics
import sys
import time


def _default_threads():
    cores = str(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else os.cpu_count())
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(var, cores)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


_default_threads()   # before numpy (and its BLAS) is imported

import numpy as np  # noqa: E402

if __package__ in (None, ''):   # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.workloads import ADAM, cycling_feed, make_w3  # noqa: E402

BATCH = 128
ALL_IMPLS = ['step', 'fit', 'fit+acc', 'fit-spe12', 'torch', 'tf-keras']


def training_rows(problem):
    n = len(problem.extra['x_train']) // BATCH * BATCH
    return problem.extra['x_train'][:n], problem.extra['y_train'][:n]


# ------------------------------------------------------------------------------ implementations
# Each factory returns run(epochs) -> (list of per-epoch seconds, whole-call seconds or None).

def make_step(problem):
    from benchmarks import tracejit_workloads
    x, y = training_rows(problem)
    bench = tracejit_workloads.make_mlp(problem, cycling_feed(x, y, BATCH))
    batches = len(x) // BATCH

    def run(epochs):
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            for _ in range(batches):
                bench.step()
            times.append(time.perf_counter() - start)
        return times, None
    return run, bench


def tj_model(problem, metrics=None, steps_per_execution=1):
    import tracejit as tj
    model = tj.keras.Sequential([tj.keras.layers.Dense(128, activation='relu'),
                                 tj.keras.layers.Dense(10)])
    model.build((None, 64))
    model.set_weights([problem.init[k] for k in ('W1', 'b1', 'W2', 'b2')])
    model.compile(optimizer=tj.keras.optimizers.Adam(learning_rate=ADAM['lr'],
                                                     epsilon=ADAM['eps']),
                  loss=tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics, steps_per_execution=steps_per_execution)
    return model


def epoch_timer(base):
    """A Keras callback (subclass of `base`) recording each epoch's wall time."""
    class EpochTimer(base):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
    return EpochTimer()


def fit_runner(model, x, y, callback_base):
    def run(epochs):
        timer = epoch_timer(callback_base)
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[timer])
        return timer.times, time.perf_counter() - start
    return run


def make_fit(problem, metrics=None, steps_per_execution=1):
    import tracejit as tj
    x, y = training_rows(problem)
    model = tj_model(problem, metrics, steps_per_execution)
    return fit_runner(model, x, y, tj.keras.callbacks.Callback), None


def first_epoch_seconds(steps_per_execution):
    """Wall time of a first one-epoch fit compiling in the foreground: the trace and Numba
    compile of its steps, plus one epoch (run in a fresh process, see `compile_seconds`)."""
    import tracejit as tj
    tj.config.compile_in_background = False
    x, y = training_rows(make_w3())
    model = tj_model(make_w3(), steps_per_execution=steps_per_execution)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return time.perf_counter() - start


def compile_seconds(steps_per_execution, repeats):
    """Median of `first_epoch_seconds` over `repeats` fresh processes, each with an empty
    kernel cache directory: nothing compiled before, in memory or on disk."""
    import subprocess
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ('from benchmarks.fit_vs_step import first_epoch_seconds; '
            f'print(first_epoch_seconds({steps_per_execution}))')
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix='tj-fit-bench-') as cache:
            env = dict(os.environ, TRACEJIT_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, '-c', code], cwd=root, env=env, check=True,
                                 capture_output=True, text=True).stdout
        times.append(float(out.split()[-1]))
    return statistics.median(times)


def scan_floor_us(problem, calls=5, stacked=110):
    """The steps_per_execution kernel's per-batch time with `stacked` batches per call (the
    training rows repeated): the per-batch cost left when per-call costs are spread thin."""
    x, y = training_rows(problem)
    reps = -(-stacked * BATCH // len(x))
    xs = np.concatenate([x] * reps)[:stacked * BATCH].reshape(stacked, BATCH, -1)
    ys = np.concatenate([y] * reps)[:stacked * BATCH].reshape(stacked, BATCH)
    model = tj_model(problem, steps_per_execution=stacked)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)   # builds the multi-batch step
    step = model._steps.train_multi
    step(xs, ys, float(BATCH))
    import tracejit as tj
    tj.config.block_until_compiled()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step(xs, ys, float(BATCH))
        times.append(time.perf_counter() - start)
    return statistics.median(times) / stacked * 1e6


def make_torch(problem):
    import torch
    x, y = training_rows(problem)
    X, Y = torch.from_numpy(x), torch.from_numpy(y).long()
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    with torch.no_grad():
        for layer, (w, b) in zip((model[0], model[2]), (('W1', 'b1'), ('W2', 'b2'))):
            layer.weight.copy_(torch.from_numpy(problem.init[w].T.copy()))
            layer.bias.copy_(torch.from_numpy(problem.init[b]))
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM['lr'], eps=ADAM['eps'])
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(x)

    def run(epochs):
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            perm = torch.randperm(n)
            for i in range(0, n, BATCH):
                idx = perm[i:i + BATCH]
                optimizer.zero_grad()
                loss = loss_fn(model(X[idx]), Y[idx])
                loss.backward()
                optimizer.step()
            times.append(time.perf_counter() - start)
        return times, None
    return run, None


def make_tf_keras(problem):
    import tensorflow as tf
    x, y = training_rows(problem)
    model = tf.keras.Sequential([tf.keras.Input((64,)),
                                 tf.keras.layers.Dense(128, activation='relu'),
                                 tf.keras.layers.Dense(10)])
    model.set_weights([problem.init[k] for k in ('W1', 'b1', 'W2', 'b2')])
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=ADAM['lr'],
                                                     epsilon=ADAM['eps']),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return fit_runner(model, x, y, tf.keras.callbacks.Callback), None


FACTORIES = {'step': make_step, 'fit': make_fit,
             'fit+acc': lambda p: make_fit(p, metrics=['accuracy']),
             'fit-spe12': lambda p: make_fit(p, steps_per_execution=12),
             'torch': make_torch, 'tf-keras': make_tf_keras}
VERSIONS = {'torch': 'torch', 'tf-keras': 'tensorflow'}
TRACEJIT_IMPLS = ('step', 'fit', 'fit+acc', 'fit-spe12')


# ------------------------------------------------------------------------------ check, main

def check(problem):
    """One unshuffled fit epoch == 11 hand-written steps on the same batches (same maths)."""
    x, y = training_rows(problem)
    _, bench = make_step(problem)
    for _ in range(len(x) // BATCH):
        bench.step()
    model = tj_model(problem)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    expected = bench.params()
    for name, value in zip(('W1', 'b1', 'W2', 'b2'), model.get_weights()):
        np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-6,
                                   err_msg=f'fit and the hand-written step differ in {name}')
    print('check: one unshuffled fit epoch gives the weights of 11 hand-written steps '
          '(rtol 1e-4)')


def median_and_spread(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    med = statistics.median(values)
    return med, (q[2] - q[0]) / 2 / med


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7, help='timed blocks per implementation')
    parser.add_argument('--epochs', type=int, default=10, help='epochs per block')
    parser.add_argument('--impls', default=','.join(ALL_IMPLS),
                        help=f'comma-separated subset of {",".join(ALL_IMPLS)}')
    parser.add_argument('--compile-repeats', type=int, default=3,
                        help='fresh processes per first-epoch compile time')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    problem = make_w3()
    batches = len(training_rows(problem)[0]) // BATCH
    print(f'W3 model, {batches} batches of {BATCH} per epoch; {args.repeats} blocks of '
          f'{args.epochs} epochs per implementation; cores '
          f'{len(os.sched_getaffinity(0))}; numpy {np.__version__}')
    check(problem)
    spe = 'fit-spe12' in args.impls.split(',')
    if spe:
        one = compile_seconds(1, args.compile_repeats)
        twelve = compile_seconds(12, args.compile_repeats)
        print(f'first fit epoch, compiling (fresh process and cache, median of '
              f'{args.compile_repeats}): steps_per_execution=1 {one:.2f} s, =12 {twelve:.2f} s '
              f'({twelve / one:.2f}x, target <= 1.2x)')
    runners = {}
    for name in args.impls.split(','):
        try:
            run, _ = FACTORIES[name](problem)
            run(2)                          # warm-up: trace, compile (or load), first epochs
            if name in TRACEJIT_IMPLS:
                import tracejit
                tracejit.config.block_until_compiled()   # time compiled steps only
        except ImportError as exc:
            print(f'{name}: skipped ({exc})')
            continue
        runners[name] = run
        module = VERSIONS.get(name)
        if module:
            print(f'{name}: {module} {sys.modules[module].__version__}')
    epochs = {name: [] for name in runners}
    calls = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            time.sleep(0.2)
            times, whole = run(args.epochs)
            epochs[name].extend(times)
            if whole is not None:
                calls[name].append(whole / (args.epochs * batches))
    step_us = statistics.median(epochs['step']) / batches * 1e6 if 'step' in epochs else None
    print(f'\n{"impl":10s} {"us/batch":>9s} {"spread":>7s} {"x step":>7s} {"fit call":>9s}')
    for name in runners:
        med, spread = median_and_spread([t / batches * 1e6 for t in epochs[name]])
        ratio = f'{med / step_us:7.2f}' if step_us else ' ' * 7
        call = f'{statistics.median(calls[name]) * 1e6:9.1f}' if calls[name] else ' ' * 9
        print(f'{name:10s} {med:9.1f} {spread:6.1%} {ratio} {call}')
    if spe and 'fit' in epochs:
        fit_us = statistics.median(epochs['fit']) / batches * 1e6
        spe_us = statistics.median(epochs['fit-spe12']) / batches * 1e6
        floor = scan_floor_us(problem)
        print(f'\nfit-spe12 / fit = {spe_us / fit_us:.2f} (target <= 0.9); floor: the scan '
              f'kernel alone, 110 batches per call, {floor:.1f} us/batch = '
              f'{floor / fit_us:.2f}x fit')
    return epochs


if __name__ == '__main__':
    main()

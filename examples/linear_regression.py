"""Linear regression the way the TensorFlow "custom training basics" tutorial teaches it.

A model f(x) = x * W + b with two Variables, synthetic data from W = 3, b = 2 plus Gaussian
noise, and a hand-written GradientTape training step (full batch, plain gradient descent).
The step is run twice: eagerly (every op runs numpy right away) and compiled with `@tj.function`
(traced once into an IR graph, forward + gradient + update, then run as one call per step).
Both runs must follow the same trajectory; the script then times both and prints the speed-up.

    python examples/linear_regression.py                 # 10 epochs, plots under out/
    python examples/linear_regression.py --epochs 20 --out /tmp/plots --steps 2000

Plots (W and b per epoch, data and fitted line) need matplotlib (`pip install -e '.[examples]'`);
without it the script says so and skips them.
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import tracejit as tj
except ImportError:  # running from a checkout without installing: use the checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    import tracejit as tj

TRUE_W = 3.0
TRUE_b = 2.0


class Model(object):
    def __init__(self):
        # Initialize variable to (5.0, 0.0)
        # In practice, these should be initialized to random values.
        self.W = tj.Variable(5.0)
        self.b = tj.Variable(0.0)

    def __call__(self, x):
        return self.W * x + self.b


def loss(predicted_y, desired_y):
    return tj.reduce_mean(tj.square(predicted_y - desired_y))


def train(model, inputs, outputs, learning_rate):
    """One step of gradient descent, written by hand with a GradientTape."""
    with tj.GradientTape() as t:
        current_loss = loss(model(inputs), outputs)
    dW, db = t.gradient(current_loss, [model.W, model.b])
    model.W.assign_sub(learning_rate * dW)
    model.b.assign_sub(learning_rate * db)
    return current_loss


@tj.function
def train_compiled(model, inputs, outputs, learning_rate):
    """The same step, compiled: traced once, then one call per step updates W and b in place."""
    with tj.GradientTape() as t:
        current_loss = loss(model(inputs), outputs)
    dW, db = t.gradient(current_loss, [model.W, model.b])
    model.W.assign_sub(learning_rate * dW)
    model.b.assign_sub(learning_rate * db)
    return current_loss


def make_data(num_examples, seed):
    tj.random.set_seed(seed)
    inputs = tj.random.normal(shape=[num_examples])
    noise = tj.random.normal(shape=[num_examples])
    outputs = inputs * TRUE_W + TRUE_b + noise
    return inputs, outputs


def fit(step, model, inputs, outputs, epochs, learning_rate, log=True):
    """The tutorial's loop: record W, b and the loss before each step, print one line per epoch."""
    Ws, bs, losses = [], [], []
    for epoch in range(epochs):
        Ws.append(float(model.W.numpy()))
        bs.append(float(model.b.numpy()))
        current_loss = step(model, inputs, outputs, learning_rate)
        losses.append(float(current_loss))
        if log:
            print('Epoch %2d: W=%1.2f b=%1.2f, loss=%2.5f' % (epoch, Ws[-1], bs[-1], losses[-1]))
    Ws.append(float(model.W.numpy()))
    bs.append(float(model.b.numpy()))
    return Ws, bs, losses


def _relative_difference(a, b):
    """max |a - b| / max(|b|, 1): float32 rounding differs a little between eager and compiled."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


def steps_per_second(step, model, inputs, outputs, learning_rate, steps):
    """Median rate over 5 blocks of `steps` steps (after one warm-up step); trains `model` on."""
    step(model, inputs, outputs, learning_rate)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(steps):
            step(model, inputs, outputs, learning_rate)
        rates.append(steps / max(time.perf_counter() - start, 1e-9))
    return float(np.median(rates))


def plot(out_dir, Ws, bs, inputs, outputs, model):
    """PNG plots of W/b per epoch and of the fitted line; returns the paths, or None."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: skipped plotting '
              "(pip install -e '.[examples]' to get the plots)")
        return None
    os.makedirs(out_dir, exist_ok=True)
    epochs = range(len(Ws))
    paths = [os.path.join(out_dir, 'linear_regression_params.png'),
             os.path.join(out_dir, 'linear_regression_fit.png')]

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, Ws, 'r', epochs, bs, 'b')
    ax.plot([TRUE_W] * len(epochs), 'r--', [TRUE_b] * len(epochs), 'b--')
    ax.legend(['W', 'b', 'true W', 'true b'])
    ax.set_xlabel('epoch')
    ax.set_title('W and b per epoch')
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.asarray(inputs)
    ax.scatter(x, np.asarray(outputs), c='b', s=4, label='data')
    ax.scatter(x, np.asarray(model(inputs)), c='r', s=4, label='model')
    ax.legend()
    ax.set_title('data and fitted line')
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    for path in paths:
        print(f'wrote {path}')
    return paths


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=10, help='training epochs (default 10)')
    parser.add_argument('--samples', type=int, default=1000, help='data points (default 1000)')
    parser.add_argument('--learning-rate', type=float, default=0.1)
    parser.add_argument('--steps', type=int, default=200,
                        help='steps per timed block for the eager/compiled timing (default 200)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='out',
                        help='directory for the PNG plots (default out/); "" for no plots')
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.samples < 2 or args.steps < 1:
        parser.error('--epochs and --steps must be >= 1 and --samples >= 2')
    return args


def main(argv=None):
    """Run the example; returns a dict of the results (used by the tests)."""
    args = parse_args(argv)
    inputs, outputs = make_data(args.samples, args.seed)
    print(f'Data: {args.samples} samples of y = {TRUE_W} * x + {TRUE_b} + noise')

    print('\nEager training (hand-written GradientTape step):')
    model = Model()
    print('Current loss: %1.5f' % loss(model(inputs), outputs).numpy())
    Ws, bs, losses = fit(train, model, inputs, outputs, args.epochs, args.learning_rate)
    print(f'Final: W={Ws[-1]:.4f} b={bs[-1]:.4f}  (true W={TRUE_W} b={TRUE_b})')

    print('\nCompiled training (the same step under @tj.function):')
    before = train_compiled.cache_info()
    compiled_model = Model()
    start = time.perf_counter()
    train_compiled(compiled_model, inputs, outputs, args.learning_rate)  # trace, start compiling
    first_call = time.perf_counter() - start
    train_compiled.block_until_compiled()
    kernel_ready = time.perf_counter() - start
    compiled_model.W.assign(5.0)  # back to the initial values: the first call took a step
    compiled_model.b.assign(0.0)
    cWs, cbs, closses = fit(train_compiled, compiled_model, inputs, outputs, args.epochs,
                            args.learning_rate)
    difference = max(_relative_difference(cWs, Ws), _relative_difference(cbs, bs),
                     _relative_difference(closses, losses))
    print(f'Final: W={cWs[-1]:.4f} b={cbs[-1]:.4f}  '
          f'max relative difference compiled vs eager: {difference:.1e}')
    info = {k: v - before[k] for k, v in train_compiled.cache_info().items()}
    how = ('trace, then load the kernel from the disk cache' if info['disk_hits'] else
           'trace, then interpret while the kernel compiles')
    print(f'first call ({how}): {first_call:.3f} s; kernel ready after {kernel_ready:.3f} s; '
          f'traces={info["traces"]} compiles={info["compiles"]} disk hits={info["disk_hits"]}')

    print(f'\nSpeed ({args.samples} samples, median of 5 blocks of {args.steps} steps):')
    eager_rate = steps_per_second(train, Model(), inputs, outputs, args.learning_rate,
                                  args.steps)
    compiled_rate = steps_per_second(train_compiled, compiled_model, inputs, outputs,
                                     args.learning_rate, args.steps)
    traces = train_compiled.cache_info()['traces'] - before['traces']
    print(f'  eager:    {eager_rate:12,.0f} steps/s')
    print(f'  compiled: {compiled_rate:12,.0f} steps/s')
    print(f'  speed-up: {compiled_rate / eager_rate:.1f}x')

    paths = None
    if args.out:
        print()
        paths = plot(args.out, Ws, bs, inputs, outputs, model)
    return dict(Ws=Ws, bs=bs, losses=losses, compiled_Ws=cWs, compiled_bs=cbs,
                compiled_losses=closses, max_difference=float(difference),
                eager_steps_per_s=eager_rate, compiled_steps_per_s=compiled_rate,
                traces=traces, plots=paths)


if __name__ == '__main__':
    main()

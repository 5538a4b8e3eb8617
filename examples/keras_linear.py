"""The linear model of the "Basic training loops" tutorial (seed 004), the Keras way.

Data: y = 3x + 2 + noise on 201 points of linspace(-2, 2). A subclassed `tj.keras.Model`
with two Variables (W = 5, b = 0) is first trained by the tutorial's hand-written loop (one
full-batch GradientTape step per epoch), then a fresh one with `compile(SGD(0.1), MSE)` and
`fit(x, y, epochs=10, batch_size=1000)`: one compiled step per epoch, logged per epoch like
Keras. Keras logs the loss computed during each step, i.e. before its update, so fit's log is
the hand-written loop's log (the loss after each step) shifted by one epoch. The weights are
then saved with `save_weights` and read back into a new model.

    python examples/keras_linear.py                      # 10 epochs, plot under out/
    python examples/keras_linear.py --epochs 20 --verbose 2 --out /tmp/plots

The plot (loss per epoch, data and fitted line) needs matplotlib; without it the script says
so and skips it.
"""
import argparse
import os
import sys

import numpy as np

try:
    import tracejit as tj
except ImportError:  # running from a checkout without installing: use the checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    import tracejit as tj

TRUE_W = 3.0
TRUE_B = 2.0


class MyModelKeras(tj.keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Initialize the weights to `5.0` and the bias to `0.0`
        self.w = tj.Variable(5.0)
        self.b = tj.Variable(0.0)

    def call(self, x):
        return self.w * x + self.b


def make_data(num_examples, seed):
    tj.random.set_seed(seed)
    x = tj.cast(tj.linspace(-2, 2, num_examples), tj.float32)
    noise = tj.random.normal(shape=[num_examples])
    return x, x * TRUE_W + TRUE_B + noise


def loss(target_y, predicted_y):
    return tj.reduce_mean(tj.square(target_y - predicted_y))


def hand_written_loop(model, x, y, epochs, learning_rate):
    """The tutorial's loop on the Keras model; prints W, b and the loss after each epoch's step
    and returns the loss before training and those after each step."""
    start_loss = float(loss(y, model(x)))
    print(f'Starting: W = {model.w.numpy():1.2f}, b = {model.b.numpy():1.2f}, '
          f'loss={start_loss:2.5f}')
    losses = []
    for epoch in range(epochs):
        with tj.GradientTape() as t:
            current_loss = loss(y, model(x))
        dw, db = t.gradient(current_loss, [model.w, model.b])
        model.w.assign_sub(learning_rate * dw)
        model.b.assign_sub(learning_rate * db)
        losses.append(float(loss(y, model(x))))
        print(f'Epoch {epoch:2d}: W = {model.w.numpy():1.2f}, b = {model.b.numpy():1.2f}, '
              f'loss={losses[-1]:2.5f}')
    return start_loss, losses


def plot(out_dir, history, x, y, model):
    """A PNG of fit's loss per epoch and of the fitted line; returns its path, or None."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: skipped plotting '
              "(pip install -e '.[examples]' to get the plot)")
        return None
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'keras_linear.png')
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(range(1, len(history['loss']) + 1), history['loss'], 'o-')
    left.set_xlabel('epoch')
    left.set_title('fit: loss per epoch')
    right.plot(np.asarray(x), np.asarray(y), '.', label='data')
    right.plot(np.asarray(x), np.asarray(model(x)), label='model')
    right.legend()
    right.set_title('data and fitted line')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f'wrote {path}')
    return path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=10, help='training epochs (default 10)')
    parser.add_argument('--samples', type=int, default=201, help='data points (default 201)')
    parser.add_argument('--learning-rate', type=float, default=0.1)
    parser.add_argument('--verbose', type=int, default=1, choices=(0, 1, 2),
                        help="fit's log: 1 progress bar (default), 2 one line per epoch")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--checkpoint', default='keras_checkpoint',
                        help='where save_weights writes (".npz" is added)')
    parser.add_argument('--out', default='out',
                        help='directory for the PNG plot (default out/); "" for no plot')
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.samples < 2:
        parser.error('--epochs must be >= 1 and --samples >= 2')
    return args


def main(argv=None):
    """Run the example; returns a dict of the results (used by the tests)."""
    args = parse_args(argv)
    x, y = make_data(args.samples, args.seed)

    print('Hand-written training loop on a Keras model:')
    loop_model = MyModelKeras()
    start_loss, loop_losses = hand_written_loop(loop_model, x, y, args.epochs,
                                                args.learning_rate)

    print('\ncompile + fit:')
    keras_model = MyModelKeras()
    keras_model.compile(run_eagerly=False,
                        optimizer=tj.keras.optimizers.SGD(learning_rate=args.learning_rate),
                        loss=tj.keras.losses.mean_squared_error)
    history = keras_model.fit(x, y, epochs=args.epochs, batch_size=1000, verbose=args.verbose)
    W, b = float(keras_model.w.numpy()), float(keras_model.b.numpy())
    info = keras_model.train_function.cache_info()
    print(f'fit: W = {W:.4f}, b = {b:.4f}; traces={info["traces"]} compiles={info["compiles"]} '
          f'disk hits={info["disk_hits"]}')

    path = keras_model.save_weights(args.checkpoint)
    restored = MyModelKeras()
    restored.load_weights(args.checkpoint)
    print(f'saved the weights to {path} and loaded them into a new model: '
          f'W = {restored.w.numpy():.4f}, b = {restored.b.numpy():.4f}')

    plot_path = plot(args.out, history.history, x, y, keras_model) if args.out else None
    return dict(history=history.history, start_loss=start_loss, loop_losses=loop_losses, W=W,
                b=b,
                loop_W=float(loop_model.w.numpy()), loop_b=float(loop_model.b.numpy()),
                restored=(float(restored.w.numpy()), float(restored.b.numpy())),
                checkpoint=path, cache_info=info, plot=plot_path)


if __name__ == '__main__':
    main()

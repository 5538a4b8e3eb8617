"""An MLP on scikit-learn's bundled digits (8x8 images, 10 classes), trained with Keras `fit`.

The model is 64 -> 128 relu -> 10 with softmax cross-entropy and Adam, batch 128. `fit` compiles
the whole train step (forward, loss, gradients, Adam update, metrics) into one Numba kernel. The
same network and optimizer written in plain numpy, with hand-written gradients, is trained for
the same number of epochs on the same batches as the speed reference.

    python examples/digits_mlp.py                   # 30 epochs, plot under out/
    python examples/digits_mlp.py --epochs 5 --out ''
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

HIDDEN, CLASSES, BATCH = 128, 10, 128
ADAM = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def load_digits(seed):
    """Digits scaled to [0, 1] and split 80/20 with a seeded permutation."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def build_model():
    model = tj.keras.Sequential([tj.keras.layers.Dense(HIDDEN, activation='relu'),
                                 tj.keras.layers.Dense(CLASSES)])
    model.compile(optimizer=tj.keras.optimizers.Adam(**ADAM),
                  loss=tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    return model


class NumpyMLP:
    """The same network and Adam update with hand-written gradients, as the speed reference."""

    def __init__(self, rng):
        limit1, limit2 = np.sqrt(6 / (64 + HIDDEN)), np.sqrt(6 / (HIDDEN + CLASSES))
        self.params = [rng.uniform(-limit1, limit1, (64, HIDDEN)).astype(np.float32),
                       np.zeros(HIDDEN, np.float32),
                       rng.uniform(-limit2, limit2, (HIDDEN, CLASSES)).astype(np.float32),
                       np.zeros(CLASSES, np.float32)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, x, y):
        w1, b1, w2, b2 = self.params
        h = np.maximum(x @ w1 + b1, 0)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        d = p / len(y)
        dh = (d @ w2.T) * (h > 0)
        grads = [x.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]
        self.t += 1
        lr = ADAM['learning_rate'] * np.sqrt(1 - ADAM['beta_2'] ** self.t) / (
            1 - ADAM['beta_1'] ** self.t)
        for param, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (1 - ADAM['beta_1']) * (g - m)
            v += (1 - ADAM['beta_2']) * (g * g - v)
            param -= lr * m / (np.sqrt(v) + ADAM['epsilon'])

    def accuracy(self, x, y):
        w1, b1, w2, b2 = self.params
        return float(np.mean(np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1) == y))


def train_numpy(x, y, epochs, seed):
    model = NumpyMLP(np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            batch = order[i:i + BATCH]
            model.step(x[batch], y[batch])
    return model, time.perf_counter() - start


def plot(history, out):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: skipped plotting')
        return
    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history['loss'], label='training loss')
    ax.plot(history['val_loss'], label='test loss')
    ax.set_xlabel('epoch')
    ax.legend()
    path = os.path.join(out, 'digits_mlp_loss.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f'wrote {path}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='out', help="folder for the plot ('' for none)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error('--epochs must be at least 1')

    x_train, y_train, x_test, y_test = load_digits(args.seed)
    tj.random.set_seed(args.seed)
    model = build_model()
    print(f'digits: {len(x_train)} training and {len(x_test)} test images; '
          f'MLP 64-{HIDDEN}-{CLASSES}, Adam, batch {BATCH}')
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=BATCH, epochs=1, verbose=2,
              validation_data=(x_test, y_test))
    first_epoch = time.perf_counter() - start
    tj.config.block_until_compiled()   # time the later epochs on the compiled step only
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=BATCH, epochs=args.epochs, verbose=2,
                        validation_data=(x_test, y_test), initial_epoch=1) \
        if args.epochs > 1 else None
    compiled = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)

    reference, numpy_seconds = train_numpy(x_train, y_train, args.epochs, args.seed)
    steps = -(-len(x_train) // BATCH)
    print(f'\ntest accuracy: tracejit {accuracy:.4f}, numpy reference '
          f'{reference.accuracy(x_test, y_test):.4f}')
    print('first epoch (trace; steps interpreted until the kernel is compiled): '
          f'{first_epoch:.2f} s')
    if args.epochs > 1:
        per_epoch = compiled / (args.epochs - 1)
        numpy_epoch = numpy_seconds / args.epochs
        print(f'per epoch ({steps} steps, validation included): tracejit fit '
              f'{per_epoch * 1e3:.1f} ms, numpy training loop {numpy_epoch * 1e3:.1f} ms '
              f'-> {numpy_epoch / per_epoch:.1f}x faster')
    if args.out and history is not None:
        plot(history.history, args.out)
    return {'accuracy': accuracy, 'first_epoch_s': first_epoch, 'numpy_s': numpy_seconds,
            'fit_s': compiled}


if __name__ == '__main__':
    main()

"""Convolution workloads: `python -m benchmarks.conv [--repeats N] [--quick] [--digits-epochs E]`.

W8: keras-io's mnist_convnet without dropout, Conv2D(32, 3, relu) -> MaxPool 2 -> Conv2D(64, 3,
relu) -> MaxPool 2 -> Flatten -> Dense(10), softmax cross-entropy, Adam, on one fixed random
batch (128, 28, 28, 1). tracejit (Keras layers, one compiled step), JAX (lax.conv, jit) and
PyTorch eager (nn.Conv2d / MaxPool2d / Linear, autograd, Keras's Adam formula in place, every core
as intra-op threads) start from the same weights; the floor is the step's convolution GEMMs
(im2col shapes: two forward, two filter gradients, one input gradient) run by numpy on
preallocated operands. Implementations take turns block by block; medians of `repeats` blocks.

Digits CNN: Conv2D(16, 3, same, relu) -> MaxPool 2 -> Conv2D(32, 3, same, relu) -> Flatten ->
Dense(10) on scikit-learn's 8x8 digits (W3's split), trained with `fit` (Adam, batch 32); prints
the test accuracy (the target is >= 0.97) and the wall time of `fit`.
"""
import argparse
import math
import os
import statistics
import sys
import time

# PyTorch's idle OpenMP threads sleep instead of spinning (as benchmarks.run sets): spinning,
# they slowed the other implementations' two-thread BLAS products several times over
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

if __package__ in (None, ''):   # run as `python benchmarks/conv.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import workloads as wl  # noqa: E402

BATCH, CLASSES = 128, 10
LEARNING_RATE, DIGITS_BATCH = 3e-3, 32   # the digits CNN
LAYERS = [('conv', (3, 3, 1, 32)), ('pool', None), ('conv', (3, 3, 32, 64)), ('pool', None),
          ('dense', (1600, CLASSES))]


def w8_problem():
    """Fixed batch, labels and glorot-uniform weights (zero biases), shared by every impl."""
    rng = np.random.default_rng(wl.SEED + 8)
    x = rng.uniform(0, 1, (BATCH, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH).astype(np.int32)
    params = []
    for kind, shape in LAYERS:
        if shape is None:
            continue
        fan_in, fan_out = (np.prod(shape[:-1]), shape[0] * shape[1] * shape[3]) \
            if kind == 'conv' else shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params += [rng.uniform(-limit, limit, shape).astype(np.float32),
                   np.zeros(shape[-1], np.float32)]
    return x, y, params


def w8_floor():
    """Seconds of the step's convolution GEMMs through numpy (im2col operands preallocated)."""
    rng = np.random.default_rng(1)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    rows1, rows2 = BATCH * 26 * 26, BATCH * 11 * 11
    p1, d1, p2, d2, w2 = arr(rows1, 9), arr(rows1, 32), arr(rows2, 288), arr(rows2, 64), \
        arr(288, 64)
    gemms = [(p1, arr(9, 32)), (p1.T, d1), (p2, w2), (p2.T, d2), (d2, w2.T)]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in gemms]

    def run():
        for (a, b), out in zip(gemms, outs):
            np.matmul(a, b, out=out)
    return run


def tracejit_w8(x, y, params):
    import tracejit as tj
    layers = tj.keras.layers
    model = tj.keras.Sequential([
        layers.Conv2D(32, 3, activation='relu'), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation='relu'), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(CLASSES)])
    model(x[:1])
    model.set_weights(params)
    optimizer = tj.keras.optimizers.Adam(1e-3)
    loss_fn = tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tj.function
    def step(images, labels):
        with tj.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    step(x, y)
    step.block_until_compiled()   # time the native kernel, not the interpreter meanwhile
    return lambda: step(x, y)


def jax_w8(x, y, params):
    import jax
    import jax.numpy as jnp
    from benchmarks.jax_workloads import adam_update

    def loss_fn(p, images, labels):
        h = images
        for w, b in ((p[0], p[1]), (p[2], p[3])):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), 'VALID',
                                             dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
            h = jax.nn.relu(h + b)
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                      'VALID')
        logits = h.reshape(h.shape[0], -1) @ p[4] + p[5]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    @jax.jit
    def update(p, state, images, labels):
        loss, grads = jax.value_and_grad(loss_fn)(p, images, labels)
        p, state = adam_update(p, grads, state)
        return p, state, loss

    carry = [[jnp.asarray(v) for v in params]]
    carry.append((jnp.zeros((), jnp.float32), [jnp.zeros_like(v) for v in carry[0]],
                  [jnp.zeros_like(v) for v in carry[0]]))
    xs, ys = jnp.asarray(x), jnp.asarray(y)

    def step():
        carry[0], carry[1], loss = update(carry[0], carry[1], xs, ys)
        loss.block_until_ready()
    return step


def torch_w8(x, y, params):
    import torch
    from benchmarks.run import usable_cores
    from benchmarks.torch_workloads import KerasAdam
    torch.set_num_threads(usable_cores())
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, CLASSES))
    conv1, conv2, dense = model[0], model[3], model[7]
    # Keras's layouts: HWIO filters become OIHW; the dense kernel's rows follow Keras's NHWC
    # flattening (h, w, c), PyTorch's Flatten of NCHW is (c, h, w)
    dense_rows = params[4].reshape(5, 5, 64, CLASSES).transpose(2, 0, 1, 3).reshape(1600, -1)
    with torch.no_grad():
        for layer, (w, b) in ((conv1, (params[0].transpose(3, 2, 0, 1), params[1])),
                              (conv2, (params[2].transpose(3, 2, 0, 1), params[3])),
                              (dense, (dense_rows.T, params[5]))):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(b))
    optimizer = KerasAdam(list(model.parameters()))
    loss_fn = nn.CrossEntropyLoss()
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y).long()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss
    return step


STEPS = {'tracejit': tracejit_w8, 'jax': jax_w8, 'torch': torch_w8}


def _block(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def run_w8(repeats, impls):
    x, y, params = w8_problem()
    steps = {'floor': w8_floor()}
    for name in impls:
        try:
            steps[name] = STEPS[name](x, y, params)
        except ImportError as exc:
            print(f'  {name}: skipped ({exc})')
    for fn in steps.values():
        for _ in range(3):   # compile and warm up
            fn()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            time.sleep(0.2)   # let another library's idle BLAS threads stop spinning
            fn()
            times[name].append(_block(fn, 5))
    medians = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    print('W8 mnist_convnet (no dropout), batch 128, Adam: median ms/step')
    for name, ms in medians.items():
        print(f'  {name:9s} {ms:8.2f} ms')
    if 'tracejit' in medians:
        refs = {k: v for k, v in medians.items() if k not in ('tracejit', 'floor')}
        if refs:
            best = min(refs, key=refs.get)
            print(f'  tracejit / fastest reference ({best}): '
                  f'{medians["tracejit"] / refs[best]:.2f} (target <= 0.8)')
        print(f'  tracejit / floor: {medians["tracejit"] / medians["floor"]:.2f} (target <= 1.4)')
    return medians


def digits_cnn(epochs=15, seed=wl.SEED, verbose=0):
    """(test accuracy, seconds of fit) of the digits CNN trained with Keras fit."""
    import tracejit as tj
    x_tr, y_tr, x_te, y_te = wl.load_digits_split()
    x_tr, x_te = x_tr.reshape(-1, 8, 8, 1), x_te.reshape(-1, 8, 8, 1)
    tj.random.set_seed(seed)
    layers = tj.keras.layers
    model = tj.keras.Sequential([
        layers.Conv2D(16, 3, padding='same', activation='relu'), layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding='same', activation='relu'), layers.Flatten(),
        layers.Dense(CLASSES)])
    model.compile(tj.keras.optimizers.Adam(LEARNING_RATE),
                  tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, batch_size=DIGITS_BATCH, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - t0
    predictions = np.argmax(model.predict(x_te, verbose=0), axis=-1)
    return float(np.mean(predictions == y_te)), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=11)
    parser.add_argument('--quick', action='store_true', help='3 repeats, 5 digits epochs')
    parser.add_argument('--impls', default=','.join(STEPS))
    parser.add_argument('--digits-epochs', type=int, default=15)
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    run_w8(repeats, args.impls.split(','))
    accuracy, seconds = digits_cnn(5 if args.quick else args.digits_epochs)
    print(f'digits CNN: test accuracy {accuracy:.4f} (target >= 0.97), fit {seconds:.2f} s')


if __name__ == '__main__':
    main()

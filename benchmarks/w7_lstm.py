"""W7: an LSTM over the digits, the workload of recurrent layers.

sklearn digits (W3's split and shuffling) as 8 timesteps of 8 features (each image row, /16)
-> LSTM(64) -> Dense(10) -> sparse softmax cross-entropy (from logits), Adam (W3's settings),
batch 128. tracejit runs the model as a Keras user writes it (layers, GradientTape and
`apply_gradients` in one `tj.function`); JAX runs the same recurrence as a lax.scan inside one
jit; PyTorch (when installed) nn.LSTM. All start from the same weights (Keras's initializers).

    python -m benchmarks.w7_lstm [--repeats 9] [--epochs 30]

Prints the median µs/step over `repeats` timed blocks per implementation (steady state, taken
in turns as in w9_embedding.py), each implementation's test accuracy after `epochs` shuffled
epochs, two floors (the step's matrix products alone, timed in this run with numpy's BLAS and
with the product tracejit's compiled step calls), tracejit's ratio to the faster of JAX and
PyTorch with its target (<= 0.4x), and whether the target lies above the lower floor.
"""
import argparse
import importlib.util

import numpy as np

from .w9_embedding import time_block  # noqa: E402
from .workloads import ADAM, SEED, cycling_feed, epoch_feed, load_digits_split

UNITS, CLASSES, STEPS, FEATURES, BATCH, TARGET = 64, 10, 8, 8, 128, 0.4


def make_init(seed=SEED + 7):
    """Keras's LSTM initialisation: Glorot-uniform kernels, an orthogonal recurrent kernel,
    the forget gate's bias 1."""
    rng = np.random.default_rng(seed)

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
    q, r = np.linalg.qr(rng.standard_normal((4 * UNITS, UNITS)))
    bias = np.zeros(4 * UNITS, np.float32)
    bias[UNITS:2 * UNITS] = 1.0
    return {'kernel': glorot(FEATURES, 4 * UNITS),
            'recurrent': (q * np.sign(np.diag(r))).T.astype(np.float32), 'bias': bias,
            'dense_kernel': glorot(UNITS, CLASSES), 'dense_bias': np.zeros(CLASSES, np.float32)}


def sequences(x):
    return np.ascontiguousarray(x.reshape(-1, STEPS, FEATURES))


def tracejit_model(init):
    import tracejit as tj
    keras = tj.keras
    lstm, dense = keras.layers.LSTM(UNITS), keras.layers.Dense(CLASSES)
    dense(lstm(np.zeros((1, STEPS, FEATURES), np.float32)))
    lstm.set_weights([init['kernel'], init['recurrent'], init['bias']])
    dense.set_weights([init['dense_kernel'], init['dense_bias']])
    optimizer = keras.optimizers.Adam(ADAM['lr'], epsilon=ADAM['eps'])
    variables = lstm.trainable_weights + dense.trainable_weights

    @tj.function
    def train_step(x, y):
        with tj.GradientTape() as tape:
            logits = dense(lstm(x))
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    predict = tj.function(lambda x: tj.argmax(dense(lstm(x)), axis=1))

    def step(x, y):
        train_step(x, y)
    step.ready = train_step.block_until_compiled   # the first call may compile in background
    return step, lambda: None, lambda x: np.asarray(predict(x))


def jax_model(init):
    import jax
    import jax.numpy as jnp

    from .jax_workloads import adam_update

    def logits_of(params, x):
        kernel, recurrent, bias, dense_kernel, dense_bias = params
        xw = jnp.einsum('btf,fg->tbg', x, kernel) + bias

        def cell(carry, row):
            h, c = carry
            z = row + h @ recurrent
            i, f, g, o = jnp.split(z, 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None
        zeros = jnp.zeros((x.shape[0], UNITS), x.dtype)
        (h, _), _ = jax.lax.scan(cell, (zeros, zeros), xw)
        return h @ dense_kernel + dense_bias

    def loss_fn(params, x, y):
        logp = jax.nn.log_softmax(logits_of(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params, opt_state = adam_update(params, grads, opt_state)
        return params, opt_state, loss

    update = jax.jit(update, donate_argnums=(0, 1))
    predict = jax.jit(lambda params, x: jnp.argmax(logits_of(params, x), axis=1))
    params = [jnp.asarray(init[k]) for k in ('kernel', 'recurrent', 'bias', 'dense_kernel',
                                             'dense_bias')]
    box = [(params, (jnp.zeros((), jnp.float32), [jnp.zeros_like(p) for p in params],
                     [jnp.zeros_like(p) for p in params]))]

    def step(x, y):
        params, opt_state, _ = update(*box[0], x, y)
        box[0] = (params, opt_state)
    return step, lambda: jax.block_until_ready(box[0]), \
        lambda x: np.asarray(predict(box[0][0], x))


def torch_model(init):
    import torch
    torch.set_num_threads(1)
    lstm, dense = torch.nn.LSTM(FEATURES, UNITS, batch_first=True), torch.nn.Linear(UNITS,
                                                                                   CLASSES)
    with torch.no_grad():   # Keras's layouts, transposed; PyTorch's gate order is Keras's
        lstm.weight_ih_l0.copy_(torch.from_numpy(init['kernel'].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(init['recurrent'].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(init['bias']))
        lstm.bias_hh_l0.zero_()
        dense.weight.copy_(torch.from_numpy(init['dense_kernel'].T.copy()))
        dense.bias.copy_(torch.from_numpy(init['dense_bias']))
    params = list(lstm.parameters()) + list(dense.parameters())
    optimizer = torch.optim.Adam(params, lr=ADAM['lr'], eps=ADAM['eps'])
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        out, _ = lstm(torch.from_numpy(x))
        loss_fn(dense(out[:, -1]), torch.from_numpy(y).long()).backward()
        optimizer.step()

    def predict(x):
        with torch.no_grad():
            return dense(lstm(torch.from_numpy(x))[0][:, -1]).argmax(1).numpy()
    return step, lambda: None, predict


def floor_operands(seed=0):
    """Random operands of the step's matrix products, in the layouts the compiled step has
    them: x @ W over all rows; per step h @ U and dz @ U^T (each needs the step before; the
    compiled step transposes U once, before its loop); both kernels' gradients as one product
    over every step each (the stacked h and x read transposed); the dense layer's three."""
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return rng.random(shape, np.float32)
    ops = dict(x=rand(BATCH * STEPS, FEATURES), w=rand(FEATURES, 4 * UNITS),
               u=rand(UNITS, 4 * UNITS), h=rand(BATCH, UNITS), dz=rand(BATCH, 4 * UNITS),
               dzs=rand(BATCH * STEPS, 4 * UNITS), hs=rand(BATCH * STEPS, UNITS),
               dk=rand(UNITS, CLASSES), dy=rand(BATCH, CLASSES))
    ops['ut'] = np.ascontiguousarray(ops['u'].T)
    return ops


def _numpy_products(ops, repeats):
    """The products with numpy's `@` (OpenBLAS, with its default threads), `repeats` times."""
    x, w, u, h, dz, dzs, hs, dk, dy = (ops[k] for k in 'x w u h dz dzs hs dk dy'.split())
    for _ in range(repeats):
        x @ w
        for _ in range(STEPS):
            h @ u
            dz @ u.T
        hs.T @ dzs
        x.T @ dzs
        h @ dk
        h.T @ dy
        dy @ dk.T


def _tracejit_products():
    """The same products through the product the compiled step calls (backend kernels.dot:
    gemm's register tiles for these shapes, one thread), in one Numba function."""
    import numba

    from tracejit.backend import kernels as K

    @numba.njit(nogil=True)
    def products(x, w, ut, u, h, dz, dzs, hs, dk, dy, repeats):
        kept = np.float32(0)   # reads every result, so none is optimised away
        for _ in range(repeats):
            kept += K.dot(x, w)[0, 0]
            for _ in range(STEPS):
                kept += K.dot(h, u)[0, 0]
                kept += K.dot(dz, ut)[0, 0]
            kept += K.dot(hs.T, dzs)[0, 0]
            kept += K.dot(x.T, dzs)[0, 0]
            kept += K.dot(h, dk)[0, 0]
            kept += K.dot(h.T, dy)[0, 0]
            kept += K.dot(dy, dk.T)[0, 0]
        return kept

    def run(ops, repeats):
        products(*(ops[k] for k in 'x w ut u h dz dzs hs dk dy'.split()), repeats)
    return run


def gemm_floor(products, repeats=200):
    """Median µs of one step's matrix products alone, `products(ops, n)` running them n times."""
    import time
    ops = floor_operands()
    products(ops, 1)
    times = []
    for _ in range(9):
        start = time.perf_counter()
        products(ops, repeats)
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return float(np.median(times))


def accuracy(make, init, data, epochs):
    x_tr, y_tr, x_te, y_te = data
    step, sync, predict = make(init)
    feed = epoch_feed(x_tr, y_tr, BATCH)
    for _ in range(epochs * -(-len(x_tr) // BATCH)):
        step(*feed())
    sync()
    return float(np.mean(predict(x_te) == y_te))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--epochs', type=int, default=30)
    args = parser.parse_args(argv)
    x_tr, y_tr, x_te, y_te = load_digits_split()
    data = (sequences(x_tr), y_tr, sequences(x_te), y_te)
    init = make_init()
    makers = {'tracejit': tracejit_model, 'jax (lax.scan)': jax_model}
    if importlib.util.find_spec('torch') is not None:
        makers['torch nn.LSTM'] = torch_model
    steps = {}
    for name, make in makers.items():
        step, sync, _ = make(init)
        feed = cycling_feed(data[0], data[1], BATCH)
        step(*feed())
        getattr(step, 'ready', sync)()
        steps[name] = (lambda step=step, feed=feed: step(*feed()), sync)
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, (step, sync) in steps.items():
            times[name].append(time_block(step, sync)[0])
    floors = {'numpy GEMM floor': gemm_floor(_numpy_products),
              'tracejit GEMM floor': gemm_floor(_tracejit_products())}
    medians = {name: float(np.median(values)) for name, values in times.items()}
    anchor = min(v for k, v in medians.items() if k != 'tracejit')
    print(f'W7: digits as {STEPS}x{FEATURES} sequences -> LSTM({UNITS}) -> Dense({CLASSES}), '
          f'Adam, batch {BATCH}; median of {args.repeats} blocks; {args.epochs} epochs')
    print(f'{"implementation":18} {"us/step":>9} {"spread":>7} {"x best":>7} {"accuracy":>9}')
    for name, values in times.items():
        spread = (np.percentile(values, 75) - np.percentile(values, 25)) / 2 / medians[name]
        acc = accuracy(makers[name], init, data, args.epochs)
        print(f'{name:18} {medians[name]:9.0f} {spread:6.0%} {medians[name] / anchor:7.2f} '
              f'{acc:9.3f}')
    ratio = medians['tracejit'] / anchor
    for name, floor in floors.items():
        print(f'{name:18} {floor:9.0f} {"":7} {floor / anchor:7.2f}')
    print(f'tracejit / faster reference = {ratio:.2f} (target <= {TARGET}: '
          f'{"ok" if ratio <= TARGET else "MISSED"})')
    name, floor = min(floors.items(), key=lambda item: item[1])
    reachable = TARGET * anchor >= floor
    print(f'target {TARGET * anchor:.0f} us, lower floor {floor:.0f} ({name}): '
          f'{"reachable in principle" if reachable else "not reachable here"}; tracejit '
          f'spends {medians["tracejit"] - floor:.0f} us/step beyond that floor')


if __name__ == '__main__':
    main()

"""W9: an embedding bag classifier, the workload of sparse gradients.

Embedding(20000, 64) on batches of 128 sequences of 100 Zipf-distributed token ids -> mean over
the sequence -> Dense(1) -> sigmoid binary cross-entropy (from logits). JAX takes the dense
gradient of the table and runs dense Adam; tracejit runs the same model as a Keras user writes
it (layers, GradientTape, `apply_gradients` in one `tj.function`) with Adam (dense-equivalent:
the IndexedSlices gradient is made dense), LazyAdam (only the rows seen) and SGD (lr 0.1, rows
seen). All start from the same weights and cycle through the same 8 batches.

    python -m benchmarks.w9_embedding [--repeats 9]

Prints the median µs/step over `repeats` timed blocks per implementation (blocks taken in
turns, each at least 50 ms of consecutive steps after a 0.2 s pause: see README.md) and each
tracejit variant's ratio to JAX with its target (Adam <= 0.8x, LazyAdam and SGD <= 0.15x).
"""
import argparse
import time

import numpy as np

from .workloads import ADAM

VOCAB, DIM, BATCH, LENGTH, BATCHES, SEED = 20000, 64, 128, 100, 8, 0
TARGETS = {'tracejit Adam': 0.8, 'tracejit LazyAdam': 0.15, 'tracejit SGD': 0.15}


def make_data(seed=SEED):
    """Zipf(1.2) token ids folded into the vocabulary, labels 0/1, initial weights."""
    rng = np.random.default_rng(seed)
    ids = ((rng.zipf(1.2, size=(BATCHES, BATCH, LENGTH)) - 1) % VOCAB).astype(np.int32)
    labels = rng.integers(0, 2, size=(BATCHES, BATCH, 1)).astype(np.float32)
    init = {'embeddings': rng.uniform(-0.05, 0.05, (VOCAB, DIM)).astype(np.float32),
            'kernel': rng.uniform(-0.3, 0.3, (DIM, 1)).astype(np.float32),
            'bias': np.zeros(1, np.float32)}
    return ids, labels, init


def cycling(ids, labels):
    state = [0]

    def feed():
        k = state[0] = (state[0] + 1) % len(ids)
        return ids[k], labels[k]
    return feed


def jax_step(ids, labels, init):
    import jax
    import jax.numpy as jnp

    from .jax_workloads import adam_update

    def loss_fn(params, x, y):
        table, kernel, bias = params
        logits = jnp.mean(jnp.take(table, x, axis=0), axis=1) @ kernel + bias
        return jnp.mean(jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits))))

    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params, opt_state = adam_update(params, grads, opt_state)
        return params, opt_state, loss

    update = jax.jit(update, donate_argnums=(0, 1))
    params = [jnp.asarray(init[k]) for k in ('embeddings', 'kernel', 'bias')]
    box = [(params, (jnp.zeros((), jnp.float32), [jnp.zeros_like(p) for p in params],
                     [jnp.zeros_like(p) for p in params]))]
    feed = cycling(ids, labels)

    def step():
        params, opt_state, loss = update(*box[0], *feed())
        box[0] = (params, opt_state)
        return loss
    return step, lambda: jax.block_until_ready(box[0])


def tracejit_step(ids, labels, init, optimizer_name):
    import tracejit as tj
    keras = tj.keras
    embedding = keras.layers.Embedding(VOCAB, DIM)
    dense = keras.layers.Dense(1)
    embedding(ids[0])
    dense(np.zeros((1, DIM), np.float32))
    embedding.embeddings.assign(init['embeddings'])
    dense.kernel.assign(init['kernel'])
    dense.bias.assign(init['bias'])
    optimizer = {'Adam': lambda: keras.optimizers.Adam(ADAM['lr']),
                 'LazyAdam': lambda: keras.optimizers.LazyAdam(ADAM['lr']),
                 'SGD': lambda: keras.optimizers.SGD(0.1)}[optimizer_name]()
    variables = [embedding.embeddings, dense.kernel, dense.bias]

    @tj.function
    def train_step(x, y):
        with tj.GradientTape() as tape:
            logits = dense(tj.reduce_mean(embedding(x), axis=1))
            loss = tj.reduce_mean(tj.nn.sigmoid_cross_entropy_with_logits(labels=y,
                                                                           logits=logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    feed = cycling(ids, labels)
    train_step(*feed())
    train_step.block_until_compiled()
    return lambda: train_step(*feed()), lambda: None


def time_block(step, sync, min_seconds=0.05):
    """µs per step over consecutive steps lasting at least `min_seconds`."""
    n = 1
    while True:
        time.sleep(0.2)
        step()
        sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / n * 1e6, n
        n *= 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=9)
    args = parser.parse_args(argv)
    ids, labels, init = make_data()
    steps = {'jax (dense Adam)': jax_step(ids, labels, init)}
    for name in ('Adam', 'LazyAdam', 'SGD'):
        steps[f'tracejit {name}'] = tracejit_step(ids, labels, init, name)
    for step, sync in steps.values():
        for _ in range(3):
            step()
        sync()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, (step, sync) in steps.items():
            times[name].append(time_block(step, sync)[0])
    jax_median = float(np.median(times['jax (dense Adam)']))
    unique = np.mean([len(np.unique(batch)) for batch in ids])
    print(f'W9: {BATCH}x{LENGTH} Zipf(1.2) ids ({unique:.0f} distinct per batch on average) '
          f'into Embedding({VOCAB}, {DIM}); median of {args.repeats} blocks')
    print(f'{"implementation":24} {"us/step":>9} {"spread":>7} {"x JAX":>6} {"target":>7}')
    for name, values in times.items():
        median = float(np.median(values))
        spread = (np.percentile(values, 75) - np.percentile(values, 25)) / 2 / median
        target = TARGETS.get(name)
        verdict = '' if target is None else \
            f'<= {target:.2f} {"ok" if median / jax_median <= target else "MISSED"}'
        print(f'{name:24} {median:9.0f} {spread:6.0%} {median / jax_median:6.2f} {verdict:>7}')


if __name__ == '__main__':
    main()

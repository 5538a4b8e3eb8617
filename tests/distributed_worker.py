"""One process of the distributed tests (test_distribute.py starts it with `mpiexec -n 2`).

`python distributed_worker.py SCENARIO OUT_DIR`: `train` writes rank<r>.npz with what the test
compares; `killed` and `stopped` make rank 1 die or leave early while rank 0 keeps training.
"""
import os
import re
import signal
import sys

import numpy as np

import tracejit as tj

hvd = tj.distribute
Slices = tj.IndexedSlices


def mlp(seed):
    rng = np.random.default_rng(seed)
    return [tj.Variable(rng.normal(size=(5, 7)).astype(np.float32), name='w1'),
            tj.Variable(np.zeros(7, np.float32), name='b1'),
            tj.Variable(rng.normal(size=(7, 1)).astype(np.float32), name='w2')]


def loss_of(params, x, y):
    w1, b1, w2 = params
    return tj.reduce_mean(tj.square(tj.matmul(tj.tanh(tj.matmul(x, w1) + b1), w2) - y))


def data():
    rng = np.random.default_rng(7)
    return (rng.normal(size=(16, 5)).astype(np.float32),
            rng.normal(size=(16, 1)).astype(np.float32))


def custom_training(results, steps=3):
    """Each rank trains on its half of every batch of 8 with DistributedGradientTape + Adam;
    the reference trains one copy on the whole batches in this process, without MPI."""
    x, y = data()
    rank, size = hvd.rank(), hvd.size()
    params = mlp(seed=100 + rank)             # different on each rank until the broadcast
    hvd.broadcast_variables(params, root_rank=0)
    reference = [tj.Variable(p.numpy()) for p in params]
    optimizer, ref_optimizer = tj.keras.optimizers.Adam(0.05), tj.keras.optimizers.Adam(0.05)

    @tj.function
    def step(x, y):
        with tj.GradientTape() as tape:
            loss = loss_of(params, x, y)
        tape = hvd.DistributedGradientTape(tape)
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    @tj.function
    def ref_step(x, y):
        with tj.GradientTape() as tape:
            loss = loss_of(reference, x, y)
        ref_optimizer.apply_gradients(zip(tape.gradient(loss, reference), reference))

    for k in range(steps):
        batch = slice(8 * (k % 2), 8 * (k % 2) + 8)
        mine = slice(batch.start + 4 * rank, batch.start + 4 * rank + 4)
        step(x[mine], y[mine])
        ref_step(x[batch], y[batch])
    source = step.lower(x[:4], y[:4]).source
    results['allreduce_calls'] = source.count('K.allreduce_sum')
    results['mpi_calls_in_kernel'] = source.count('allreduce_sum32(') + source.count(
        'allreduce_sum64(')
    # packed in place: no concatenate; both weight gradients computed in the fusion buffer
    results['concatenates'] = source.count('np.concatenate')
    results['gradients_in_buffer'] = len(re.findall(r'K\.dot_into\(.*fb0\[', source))
    for i, (p, r) in enumerate(zip(params, reference)):
        results[f'param{i}'], results[f'ref{i}'] = p.numpy(), r.numpy()
    assert size == 2


def embedding_training(results, steps=2):
    """An embedding table's gradient is IndexedSlices: allgathered across ranks, applied row
    by row by SGD; the reference trains on both ranks' ids in one process."""
    rank = hvd.rank()
    ids = np.array([[1, 4, 4], [7, 1, 0], [2, 2, 9], [4, 8, 3]], np.int32)
    y = np.array([[1.0], [-1.0], [0.5], [2.0]], np.float32)
    table = tj.Variable(np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3))
    reference = tj.Variable(table.numpy())
    optimizer, ref_optimizer = tj.keras.optimizers.SGD(0.3), tj.keras.optimizers.SGD(0.3)

    def loss_of(variable, ids, y):
        rows = tj.gather(variable, ids)
        return tj.reduce_mean(tj.square(tj.reduce_sum(rows, axis=[1, 2])[:, None] - y))

    @tj.function
    def step(ids, y):
        with hvd.DistributedGradientTape() as tape:
            loss = loss_of(table, ids, y)
        grad, = tape.gradient(loss, [table])
        optimizer.apply_gradients([(grad, table)])
        return isinstance(grad, tj.IndexedSlices)

    @tj.function
    def ref_step(ids, y):
        with tj.GradientTape() as tape:
            loss = loss_of(reference, ids, y)
        ref_optimizer.apply_gradients([(tape.gradient(loss, reference), reference)])
    for _ in range(steps):
        results['embedding_sparse'] = bool(step(ids[2 * rank:2 * rank + 2],
                                                y[2 * rank:2 * rank + 2]))
        ref_step(ids, y)
    results['embedding'], results['ref_embedding'] = table.numpy(), reference.numpy()


def collectives(results):
    rank = hvd.rank()
    results['eager_sum'] = hvd.allreduce(np.array([1.0, rank], np.float32), op=hvd.Sum).numpy()
    results['eager_mean'] = hvd.allreduce(np.array([2.0 * rank]), op=hvd.Average).numpy()
    results['gather_uneven'] = hvd.allgather(np.full((rank + 1, 2), rank, np.int64)).numpy()
    results['bcast'] = hvd.broadcast(np.array([rank + 5.0]), root_rank=1).numpy()
    local = Slices(np.full((2, 3), rank + 1.0, np.float32), np.array([rank, 3]), (4, 3))
    gathered = hvd.allreduce(local, op=hvd.Average)
    results['sparse_values'], results['sparse_indices'] = gathered.values.numpy(), \
        gathered.indices.numpy()

    @tj.function
    def traced(v, i, x):
        s = hvd.allreduce(Slices(v, i, (4, 3)), op=hvd.Sum)
        return s.values, s.indices, hvd.allgather(x), hvd.broadcast(x, 0)
    first = traced(local.values, local.indices, np.full(3, rank + 1.0))
    traced(local.values * 0, local.indices, np.zeros(3))  # reuses the step's fusion buffers
    values, indices, gathered_x, bcast_x = first   # results of the first call, unchanged
    results['traced_sparse_values'], results['traced_sparse_indices'] = values.numpy(), \
        indices.numpy()
    results['traced_gather'], results['traced_bcast'] = gathered_x.numpy(), bcast_x.numpy()
    variables = mlp(seed=1) + ([tj.Variable(np.zeros(2), name='extra')] if rank == 1 else [])
    try:
        hvd.broadcast_variables(variables, root_rank=0)
    except tj.errors.InvalidArgumentError as e:
        results['mismatch'] = str(e)


def keras_fit(results):
    """fit on this rank's shard with DistributedOptimizer and the callbacks; the reference
    fits one model on batches made of both shards' batches."""
    x, y = data()
    rank = hvd.rank()

    def model(seed):
        tj.random.set_seed(seed)
        m = tj.keras.Sequential([tj.keras.layers.Dense(4, activation='tanh'),
                                 tj.keras.layers.Dense(1)])
        m.build((None, 5))
        return m
    distributed, reference = model(10 + rank), model(10)
    distributed.compile(optimizer=hvd.DistributedOptimizer(tj.keras.optimizers.SGD(0.1, 0.9)),
                        loss='mse')
    reference.compile(optimizer=tj.keras.optimizers.SGD(0.1, 0.9), loss='mse')
    shards = [slice(0, 8), slice(8, 16)]
    history = distributed.fit(x[shards[rank]], y[shards[rank]], batch_size=4, epochs=2,
                              shuffle=False, verbose=1,
                              callbacks=[hvd.BroadcastGlobalVariablesCallback(0),
                                         hvd.MetricAverageCallback()])
    order = np.concatenate([np.r_[0:4, 8:12], np.r_[4:8, 12:16]])
    ref_history = reference.fit(x[order], y[order], batch_size=8, epochs=2, shuffle=False,
                                verbose=0)
    results['fit_loss'], results['ref_fit_loss'] = history.history['loss'], \
        ref_history.history['loss']
    for i, (w, r) in enumerate(zip(distributed.get_weights(), reference.get_weights())):
        results[f'fit{i}'], results[f'ref_fit{i}'] = w, r


def failing(scenario):
    """Rank 1 dies (SIGKILL) or returns after one step; rank 0 goes on stepping."""
    x, y = data()
    params = mlp(seed=0)
    optimizer = hvd.DistributedOptimizer(tj.keras.optimizers.SGD(0.1))

    @tj.function
    def step(x, y):
        optimizer.minimize(lambda: loss_of(params, x, y), params)
    for k in range(50):
        step(x[:4], y[:4])
        if hvd.rank() == 1 and k == 1:
            if scenario == 'killed':
                os.kill(os.getpid(), signal.SIGKILL)
            return
    print('rank 0 finished without noticing', flush=True)


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    hvd.init()
    if scenario != 'train':
        failing(scenario)
        return
    results = {'cma_threshold': os.environ.get('MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD')}
    custom_training(results)
    embedding_training(results)
    collectives(results)
    keras_fit(results)
    np.savez(os.path.join(out, f'rank{hvd.rank()}.npz'), **results)


if __name__ == '__main__':
    main()

"""Data-parallel Keras training on MPI: the digits MLP, one shard of the data per process.

    mpiexec -n 2 python examples/distributed_digits.py      # 2 processes on this machine
    mpiexec -f hosts -n 8 python examples/distributed_digits.py   # across machines
    python examples/distributed_digits.py                    # one process, no MPI needed

Each process trains on every size()-th training example; DistributedOptimizer averages the
gradients inside each compiled step (one MPI call per step), BroadcastGlobalVariablesCallback
starts every process from rank 0's weights and MetricAverageCallback averages the epoch's
logs. Only rank 0 shows progress, evaluates and saves the weights. The learning rate is scaled
by the number of processes, as Horovod suggests, since the global batch grows with it.
Needs scikit-learn (the data) and, for more than one process, `pip install
"tracejit[distributed]"`.
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

hvd = tj.distribute


def load_digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], digits.target[order].astype(np.int32)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--out', default=None, help='where rank 0 saves the weights (.npz)')
    args = parser.parse_args(argv)
    try:
        hvd.init()
    except tj.errors.UnavailableError as e:
        print(f'training in one process: {e}')
    x_train, y_train, x_test, y_test = load_digits()
    shard = slice(hvd.rank(), None, hvd.size())
    tj.random.set_seed(hvd.rank())   # different initial weights: the callback makes them equal
    model = tj.keras.Sequential([tj.keras.layers.Dense(64, activation='relu'),
                                 tj.keras.layers.Dense(10)])
    optimizer = hvd.DistributedOptimizer(tj.keras.optimizers.Adam(0.005 * hvd.size()))
    model.compile(optimizer=optimizer, metrics=['accuracy'],
                  loss=tj.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train[shard], y_train[shard], batch_size=args.batch_size, epochs=args.epochs,
              verbose=2, callbacks=[hvd.BroadcastGlobalVariablesCallback(0),
                                    hvd.MetricAverageCallback()])
    if hvd.rank() != 0:
        return None
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f'{hvd.size()} process(es): test loss {loss:.4f}, test accuracy {accuracy:.4f}')
    if args.out:
        model.save_weights(args.out)
    return accuracy


if __name__ == '__main__':
    main()

"""Workload definitions: data generation, the numpy reference implementation, and the floors.

A *problem* (`Problem`) holds everything an implementation needs to build one training step:
initial parameters (float32, never mutated: factories copy them), hyper-parameters, and a way to
make a *feed* — a zero-argument callable returning the next `(x, y)` batch as numpy arrays.
Every implementation module (this one for numpy, `jax_workloads`, `torch_workloads`,
`tracejit_workloads`) exposes `FACTORIES = {kind: make(problem, feed) -> Bench}` for the three
kinds of model ('linreg', 'mlp', 'elementwise'), so W1/W2 and W3/W4 share one model each.

Only numpy is imported here (scikit-learn lazily, for W3), so child processes stay light.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

SEED = 0
IMPL_MODULES = {'numpy': 'benchmarks.workloads', 'jax': 'benchmarks.jax_workloads',
                'torch': 'benchmarks.torch_workloads',
                'tracejit': 'benchmarks.tracejit_workloads'}
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)   # TF2 Keras defaults (eps 1e-7)
W5_SIZE = 2 ** 20


class SkipWorkload(Exception):
    """Raised when a workload cannot run here (e.g. scikit-learn missing for W3)."""


@dataclass
class Bench:
    """One built training step: `step()` runs one step; `params()` reads parameters back."""
    step: Callable[[], object]
    params: Callable[[], dict]
    sync: Callable[[], None] = lambda: None      # wait for asynchronous work (JAX)
    ready: Callable[[], None] = lambda: None     # wait until compiling in the background is done


@dataclass
class Problem:
    """A workload's data, initial parameters and hyper-parameters."""
    name: str
    title: str
    kind: str                         # 'linreg' | 'mlp' | 'elementwise'
    init: dict                        # name -> float32 array (canonical parameter order)
    new_feed: Callable[[], Callable]  # fresh feed: () -> (x, y) numpy batch
    lr: float
    fixed_data: bool = False          # the feed returns the same arrays every call
    loop_steps: Optional[int] = None  # time this many consecutive steps as one block (W2)
    check_steps: int = 3
    floor: Optional[Callable[[], tuple]] = None   # () -> (µs, description)
    extra: dict = field(default_factory=dict)     # e.g. the W3 test set


def adam_lr_t(t):
    """Keras Adam step size at step t (1-based): lr * sqrt(1 - b2^t) / (1 - b1^t)."""
    return ADAM['lr'] * math.sqrt(1.0 - ADAM['beta2'] ** t) / (1.0 - ADAM['beta1'] ** t)


def convert_feed(problem, feed, convert):
    """Wrap `feed` so batches are converted with `convert(x, y)`: once if the data is fixed."""
    if problem.fixed_data:
        batch = convert(*feed())
        return lambda: batch
    return lambda: convert(*feed())


# ---------------------------------------------------------------------------------------------
# Feeds

def fixed_feed(x, y):
    """The whole data set as one batch, every step (W1, W4, W5)."""
    return lambda: (x, y)


def cycling_feed(x, y, batch):
    """Consecutive full batches sliced from numpy arrays, wrapping around (the seed's generator)."""
    n_batches = len(x) // batch
    state = [0]

    def feed():
        start = state[0] * batch
        state[0] = (state[0] + 1) % n_batches
        return x[start:start + batch], y[start:start + batch]
    return feed


def epoch_feed(x, y, batch, seed=SEED):
    """Shuffled epochs including the last partial batch (for training to accuracy)."""
    def batches():
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(len(x))
            xs, ys = x[order], y[order]
            for start in range(0, len(x), batch):
                yield xs[start:start + batch], ys[start:start + batch]
    it = batches()
    return lambda: next(it)


# ---------------------------------------------------------------------------------------------
# Problems

def _f32(*arrays):
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def _glorot_mlp(sizes, rng):
    """Glorot-uniform weights and zero biases for a dense stack, named W1, b1, W2, b2, ..."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params[f'W{i}'] = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
        params[f'b{i}'] = np.zeros(fan_out, np.float32)
    return params


def make_w1(quick=False):
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(1000)
    x, y = _f32(x, 3.0 * x + 2.0 + rng.standard_normal(1000))
    return Problem('W1', 'linear regression, 1000 samples, SGD', 'linreg',
                   init={'W': np.array(5.0, np.float32), 'b': np.array(0.0, np.float32)},
                   new_feed=lambda: fixed_feed(x, y), lr=0.1, fixed_data=True, check_steps=5)


def make_w2(quick=False):
    rng = np.random.default_rng(SEED + 2)
    x = rng.uniform(-10.0, 35.0, 800)
    x, y = _f32(x, 2.5 * x + 40.0 + rng.normal(0.0, 10.0, 800))
    return Problem('W2', 'hospital visits, 800 samples, batches of 100 sliced per step, SGD',
                   'linreg', init={'W': np.array(0.0, np.float32), 'b': np.array(0.0, np.float32)},
                   new_feed=lambda: cycling_feed(x, y, 100), lr=5e-4,
                   loop_steps=500 if quick else 5000, check_steps=20)


def load_digits_split(seed=SEED):
    """sklearn digits scaled by 1/16, seeded 80/20 split -> (x_train, y_train, x_test, y_test)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise SkipWorkload(f'scikit-learn is not installed ({exc})') from None
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = math.ceil(0.2 * len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def make_w3(quick=False, split=None):
    x_tr, y_tr, x_te, y_te = split if split is not None else load_digits_split()
    batch = 128
    return Problem('W3', 'digits MLP 64-128-10, batch 128, Adam', 'mlp',
                   init=_glorot_mlp([64, 128, 10], np.random.default_rng(SEED + 3)),
                   new_feed=lambda: cycling_feed(x_tr, y_tr, batch), lr=ADAM['lr'], check_steps=5,
                   floor=lambda: gemm_floor(batch, [64, 128, 10]),
                   extra=dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, batch=batch,
                              epochs=5 if quick else 30))


def make_w4(quick=False):
    rng = np.random.default_rng(SEED + 4)
    batch, sizes = 256, [784, 512, 512, 10]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    return Problem('W4', 'MLP 784-512-512-10, batch 256, Adam', 'mlp',
                   init=_glorot_mlp(sizes, rng), new_feed=lambda: fixed_feed(x, y),
                   lr=ADAM['lr'], fixed_data=True, check_steps=3,
                   floor=lambda: gemm_floor(batch, sizes))


def make_w5(quick=False):
    rng = np.random.default_rng(SEED + 5)
    n = W5_SIZE
    x = rng.standard_normal(n).astype(np.float32)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    return Problem('W5', 'elementwise, 2^20 per-element params, SGD', 'elementwise',
                   init={'a': np.ones(n, np.float32), 'b': np.zeros(n, np.float32)},
                   new_feed=lambda: fixed_feed(x, y), lr=0.1, fixed_data=True, check_steps=3,
                   floor=lambda: bandwidth_floor(6 * 4 * n))


PROBLEMS = {'W1': make_w1, 'W2': make_w2, 'W3': make_w3, 'W4': make_w4, 'W5': make_w5}


# ---------------------------------------------------------------------------------------------
# Numpy reference implementation (hand-written gradients)

def make_linreg(problem, feed):
    """y_hat = W*x + b, MSE, SGD; W and b are 0-d float32 arrays updated in place."""
    W, b = (problem.init[k].copy() for k in ('W', 'b'))
    lr = np.float32(problem.lr)

    def step():
        x, y = feed()
        r = W * x + b - y
        loss = np.mean(r * r)
        W[...] -= lr * (2 * np.mean(r * x))
        b[...] -= lr * (2 * np.mean(r))
        return loss
    return Bench(step, lambda: {'W': W.copy(), 'b': b.copy()})


class NumpyAdam:
    """Keras Adam: m, v moments; var -= lr_t * m / (sqrt(v) + eps), updated in place."""

    def __init__(self, params):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def update(self, params, grads):
        self.t += 1
        lr_t = adam_lr_t(self.t)
        b1, b2, eps = ADAM['beta1'], ADAM['beta2'], ADAM['eps']
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= lr_t * m / (np.sqrt(v) + eps)


def mlp_forward(params, x):
    """Dense stack with relu between layers; returns the activations [x, h1, ..., logits]."""
    acts = [x]
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = acts[-1] @ params[2 * i] + params[2 * i + 1]
        acts.append(np.maximum(z, 0) if i < n_layers - 1 else z)
    return acts


def make_mlp(problem, feed):
    """Relu MLP, mean sparse softmax cross-entropy, Adam; gradients written by hand."""
    names = list(problem.init)
    params = [problem.init[k].copy() for k in names]
    opt = NumpyAdam(params)
    n_layers = len(params) // 2

    def step():
        x, labels = feed()
        acts = mlp_forward(params, x)
        rows = np.arange(len(labels))
        shifted = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1))
        loss = np.mean(lse - shifted[rows, labels])
        d = np.exp(shifted - lse[:, None])          # softmax
        d[rows, labels] -= 1
        d /= len(labels)
        grads = [None] * len(params)
        for i in reversed(range(n_layers)):
            grads[2 * i] = acts[i].T @ d
            grads[2 * i + 1] = d.sum(axis=0)
            if i > 0:
                d = (d @ params[2 * i].T) * (acts[i] > 0)
        opt.update(params, grads)
        return loss
    return Bench(step, lambda: {k: p.copy() for k, p in zip(names, params)})


def make_elementwise(problem, feed):
    """z = a*x + b; loss = mean(softplus(-y z) + 0.1 tanh(z)^2) + 0.01 mean(a^2 + b^2); SGD."""
    a, b = problem.init['a'].copy(), problem.init['b'].copy()
    lr = np.float32(problem.lr)
    inv_n = np.float32(1.0 / a.size)

    def step():
        x, y = feed()
        z = a * x + b
        u = -y * z
        sp = np.logaddexp(np.float32(0), u)               # softplus(u)
        t = np.tanh(z)
        loss = np.mean(sp + 0.1 * t * t) + 0.01 * np.mean(a * a + b * b)
        sig = np.exp(u - sp)                               # sigmoid(u) = softplus'(u)
        dz = (0.2 * t * (1 - t * t) - y * sig) * inv_n
        reg = 0.02 * inv_n
        a[...] -= lr * (dz * x + reg * a)
        b[...] -= lr * (dz + reg * b)
        return loss
    return Bench(step, lambda: {'a': a.copy(), 'b': b.copy()})


FACTORIES = {'linreg': make_linreg, 'mlp': make_mlp, 'elementwise': make_elementwise}


def mlp_accuracy(params, x, y):
    """Test accuracy of an MLP given its parameters dict (W1, b1, ...)."""
    logits = mlp_forward([np.asarray(p, np.float32) for p in params.values()], x)[-1]
    return float(np.mean(np.argmax(logits, axis=1) == y))


# ---------------------------------------------------------------------------------------------
# Floors

def best_time(fn, repeats=20, min_block_s=0.01):
    """Best-of-`repeats` seconds per call of fn (blocks of calls at least min_block_s long)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_block_s or n >= 1 << 20:
            break
        n *= 2
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def gemm_floor(batch, sizes):
    """µs of the step's GEMMs through numpy: forward L, backward 2L-1 (no gradient for x)."""
    rng = np.random.default_rng(1)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    gemms = []                                          # (a, b, out) with out = a @ b
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        x, w, d = arr(batch, k), arr(k, n), arr(batch, n)
        gemms.append((x, w, np.empty((batch, n), np.float32)))         # forward
        gemms.append((x.T, d, np.empty((k, n), np.float32)))           # dW = x.T @ d
        if i > 0:
            gemms.append((d, w.T, np.empty((batch, k), np.float32)))   # dx = d @ W.T

    def run():
        for a, b, out in gemms:
            np.matmul(a, b, out=out)
    us = best_time(run) * 1e6
    return us, f'{len(gemms)} numpy GEMMs'


_BANDWIDTH = []


def memory_bandwidth(nbytes=256 << 20):
    """Bytes/s of a large np.copyto (bytes read + written), best of a few; cached."""
    if not _BANDWIDTH:
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        seconds = best_time(lambda: np.copyto(dst, src), repeats=5, min_block_s=0)
        _BANDWIDTH.append(2 * nbytes / seconds)
    return _BANDWIDTH[0]


def bandwidth_floor(nbytes):
    """µs to move `nbytes` once at the measured copy bandwidth."""
    bw = memory_bandwidth()
    return nbytes / bw * 1e6, f'{nbytes / 2**20:.0f} MiB at {bw / 1e9:.1f} GB/s'

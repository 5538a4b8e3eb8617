"""tracejit implementation, written against the public API only.

Each workload is the way the seed tutorials write a training step: `tj.Variable`s for parameters,
a `@tj.function` step with a `tj.GradientTape`, and `assign`/`assign_sub` updates, so the whole
step (forward, gradient, update) compiles into one native kernel. Adam is written by hand with
Variables for its slots (no dependency on `tj.keras`). Batches are passed as numpy arrays.
The first steps run on the interpreter while the kernel compiles in the background; timed
runs wait for it (`Bench.ready`), W6 measures the first step as a user sees it.

Importing this module raises ImportError when tracejit (or a name used here) is missing, so the
runner skips the implementation with that message.
"""
import numpy as np

import tracejit as tj

from .workloads import ADAM, Bench

_REQUIRED = ('Variable', 'function', 'GradientTape', 'reduce_mean', 'square', 'sqrt', 'pow',
             'tanh', 'matmul', 'nn.relu', 'nn.softplus',
             'nn.sparse_softmax_cross_entropy_with_logits')


def _check_api():
    for dotted in _REQUIRED:
        obj = tj
        for part in dotted.split('.'):
            if not hasattr(obj, part):
                raise ImportError(f'tracejit has no tj.{dotted} yet')
            obj = getattr(obj, part)


_check_api()
VERSION = getattr(tj, '__version__', 'unknown')


def _bench(step_fn, feed, variables):
    """Shared driver: step_fn(x, y) is the compiled step; variables: name -> tj.Variable."""
    def step():
        return step_fn(*feed())
    return Bench(step, lambda: {k: np.array(v.numpy(), np.float32) for k, v in variables.items()},
                 ready=step_fn.block_until_compiled)


def _variables(problem):
    return {k: tj.Variable(v.copy(), name=k) for k, v in problem.init.items()}


def _sgd_step(loss_fn, variables, lr):
    """A compiled SGD step: loss_fn(x, y) reads the Variables; returns the loss."""
    var_list = list(variables.values())

    @tj.function
    def train_step(x, y):
        with tj.GradientTape() as tape:
            loss = loss_fn(x, y)
        grads = tape.gradient(loss, var_list)
        for var, grad in zip(var_list, grads):
            var.assign_sub(lr * grad)
        return loss
    return train_step


def make_linreg(problem, feed):
    v = _variables(problem)
    W, b = v['W'], v['b']

    def loss_fn(x, y):
        return tj.reduce_mean(tj.square(W * x + b - y))
    return _bench(_sgd_step(loss_fn, v, problem.lr), feed, v)


def make_elementwise(problem, feed):
    v = _variables(problem)
    a, b = v['a'], v['b']

    def loss_fn(x, y):
        z = a * x + b
        per_elem = tj.nn.softplus(-y * z) + 0.1 * tj.square(tj.tanh(z))
        return tj.reduce_mean(per_elem) + 0.01 * tj.reduce_mean(a * a + b * b)
    return _bench(_sgd_step(loss_fn, v, problem.lr), feed, v)


class Adam:
    """Keras Adam with Variables for its slots and step count, updated with `assign`."""

    def __init__(self, var_list):
        zeros = [np.zeros(var.shape, np.float32) for var in var_list]
        self.m = [tj.Variable(z, trainable=False) for z in zeros]
        self.v = [tj.Variable(z.copy(), trainable=False) for z in zeros]
        self.t = tj.Variable(np.float32(0.0), trainable=False)

    def apply_gradients(self, grads, var_list):
        b1, b2, eps = ADAM['beta1'], ADAM['beta2'], ADAM['eps']
        t = self.t + 1.0
        self.t.assign(t)
        lr_t = ADAM['lr'] * tj.sqrt(1.0 - tj.pow(b2, t)) / (1.0 - tj.pow(b1, t))
        for var, g, m, v in zip(var_list, grads, self.m, self.v):
            m_new = b1 * m + (1.0 - b1) * g
            v_new = b2 * v + (1.0 - b2) * tj.square(g)
            m.assign(m_new)
            v.assign(v_new)
            var.assign_sub(lr_t * m_new / (tj.sqrt(v_new) + eps))


def mlp_logits(var_list, x):
    """Relu MLP forward: var_list = [W1, b1, W2, b2, ...]."""
    h = x
    for i in range(0, len(var_list), 2):
        h = tj.matmul(h, var_list[i]) + var_list[i + 1]
        if i + 2 < len(var_list):
            h = tj.nn.relu(h)
    return h


def make_mlp(problem, feed):
    v = _variables(problem)
    var_list = list(v.values())
    opt = Adam(var_list)

    @tj.function
    def train_step(x, labels):
        with tj.GradientTape() as tape:
            logits = mlp_logits(var_list, x)
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits))
        grads = tape.gradient(loss, var_list)
        opt.apply_gradients(grads, var_list)
        return loss
    return _bench(train_step, feed, v)


FACTORIES = {'linreg': make_linreg, 'mlp': make_mlp, 'elementwise': make_elementwise}

"""JAX implementation: each training step is one `jax.jit` (params in, params out).

Parameters and optimizer state live as device arrays between steps; arrays that the step replaces
are donated (`donate_argnums`) so XLA can update them in place. Fixed data sets are put on the
device once; streamed batches (W2, W3) are passed as numpy arrays, as a user would.
Importing this module fails when JAX is not installed; the runner then skips it.
"""
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .workloads import ADAM, Bench, convert_feed

# Donation of tiny scalars is sometimes declined by XLA on CPU; that is harmless.
warnings.filterwarnings('ignore', message='Some donated buffers were not usable')

VERSION = jax.__version__


def _device_feed(problem, feed):
    if problem.fixed_data:
        return convert_feed(problem, feed, lambda x, y: (jnp.asarray(x), jnp.asarray(y)))
    return feed


def _bench(problem, feed, update, state, param_names):
    """Shared driver: state = (params, opt_state); `update(params, opt_state, x, y)` is jitted."""
    feed = _device_feed(problem, feed)
    box = [state]

    def step():
        x, y = feed()
        params, opt_state, loss = update(*box[0], x, y)
        box[0] = (params, opt_state)
        return loss

    def read_params():
        return {k: np.asarray(p) for k, p in zip(param_names, box[0][0])}
    return Bench(step, read_params, sync=lambda: jax.block_until_ready(box[0]))


def _sgd(loss_fn, lr):
    """A jitted SGD step over a list of parameters (opt_state unused)."""
    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return [p - lr * g for p, g in zip(params, grads)], opt_state, loss
    return jax.jit(update, donate_argnums=(0,))


def make_linreg(problem, feed):
    def loss_fn(params, x, y):
        W, b = params
        return jnp.mean(jnp.square(W * x + b - y))
    init = [jnp.asarray(problem.init[k]) for k in ('W', 'b')]
    return _bench(problem, feed, _sgd(loss_fn, problem.lr), (init, None), ['W', 'b'])


def make_elementwise(problem, feed):
    def loss_fn(params, x, y):
        a, b = params
        z = a * x + b
        per_elem = jax.nn.softplus(-y * z) + 0.1 * jnp.square(jnp.tanh(z))
        return jnp.mean(per_elem) + 0.01 * jnp.mean(a * a + b * b)
    init = [jnp.asarray(problem.init[k]) for k in ('a', 'b')]
    return _bench(problem, feed, _sgd(loss_fn, problem.lr), (init, None), ['a', 'b'])


def mlp_loss(params, x, labels):
    """Relu MLP + mean sparse softmax cross-entropy."""
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = jax.nn.relu(h)
    logp = jax.nn.log_softmax(h, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def adam_update(params, grads, opt_state):
    """Keras Adam: lr_t = lr sqrt(1-b2^t)/(1-b1^t); var -= lr_t m / (sqrt(v) + eps)."""
    t, ms, vs = opt_state
    b1, b2, eps = ADAM['beta1'], ADAM['beta2'], ADAM['eps']
    t = t + 1
    lr_t = ADAM['lr'] * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads)]
    vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, grads)]
    params = [p - lr_t * m / (jnp.sqrt(v) + eps) for p, m, v in zip(params, ms, vs)]
    return params, (t, ms, vs)


def _mlp_update(params, opt_state, x, labels):
    loss, grads = jax.value_and_grad(mlp_loss)(params, x, labels)
    params, opt_state = adam_update(params, grads, opt_state)
    return params, opt_state, loss


_mlp_step = jax.jit(_mlp_update, donate_argnums=(0, 1))


def make_mlp(problem, feed):
    names = list(problem.init)
    params = [jnp.asarray(problem.init[k]) for k in names]
    opt_state = (jnp.zeros((), jnp.float32),
                 [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params])
    return _bench(problem, feed, _mlp_step, (params, opt_state), names)


FACTORIES = {'linreg': make_linreg, 'mlp': make_mlp, 'elementwise': make_elementwise}

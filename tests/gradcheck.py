"""Gradient checking against central finite differences in float64 (autograd's `check_grads`).

`check_grads(fun, args, order=2)` checks tracejit's reverse-mode gradients of `fun` (a function
of tracejit tensors returning one tensor of any shape) at the float64 arrays `args`:

- first order: the VJP with a random output cotangent `u` is compared with finite differences
  of `sum(u * fun(x))`, element by element when the inputs are small (`full_max`), else along
  random directions;
- second order: the VJP itself, as a function of `x` (its result flattened and concatenated), is
  checked the same way, which differentiates the gradient computation (nested tapes, or
  `tj.grad` of `tj.grad`).

Each `mode` computes the gradients differently: 'tape' (eager GradientTape, nested for higher
orders), 'grad' (`tj.grad`, composed for higher orders) and 'function' (GradientTape inside
`tj.function`, so the gradient graph runs through the compiled-function path).

Finite differences use a 4-point central stencil, so with step 1e-4 the truncation error is
~1e-16 and the rounding error ~1e-12: inputs must stay more than 2 steps away from kinks.
"""
import numpy as np

import tracejit as tj

MODES = ('tape', 'grad', 'function')


def check_grads(fun, args, order=2, modes=('tape', 'grad'), eps=1e-4, rtol=1e-5, atol=1e-6,
                full_max=32, directions=3, seed=0, name=None):
    """Assert that the gradients of `fun` at `args` match finite differences up to `order`."""
    args = [np.asarray(a) for a in args]
    for i, a in enumerate(args):
        assert a.dtype == np.float64, f'check_grads needs float64 inputs; argument {i} is {a.dtype}'
    name = name or getattr(fun, '__name__', 'fun')
    for mode in modes:
        assert mode in MODES, mode
        _check(fun, args, order, mode, dict(eps=eps, rtol=rtol, atol=atol, full_max=full_max,
                                            directions=directions),
               np.random.default_rng(seed), f'{name} [{mode}]')


def _check(fun, args, order, mode, tol, rng, label, level=1):
    if order < 1:
        return
    out = evaluate(fun, args)
    u = rng.standard_normal(out.shape)
    grads = _analytic_vjp(fun, args, u, mode)
    _compare_with_fd(fun, args, u, grads, tol, rng, f'{label}, derivative of order {level}')
    if order > 1:
        inner = 'grad' if mode == 'grad' else 'tape'

        def vjp_of_fun(*ts):
            return _flat_concat(vjp(fun, ts, u, inner))

        _check(vjp_of_fun, args, order - 1, mode, tol, rng, label, level + 1)


# ----------------------------------------------------------------------------- tracejit side

def evaluate(fun, args):
    """`fun` run eagerly on float64 tensors, as a float64 numpy array."""
    out = fun(*[tj.constant(a) for a in args])
    return np.asarray(out, dtype=np.float64)


def vjp(fun, ts, u, mode):
    """Gradients of sum(u * fun(*ts)) with respect to each of `ts`, as tracejit values.

    Differentiable itself when called under an outer tape or `tj.grad` (higher orders).
    """
    ts = list(ts)
    if mode == 'grad':
        def scalar(*xs):
            return tj.reduce_sum(tj.multiply(fun(*xs), u))
        return list(tj.grad(scalar, argnums=tuple(range(len(ts))))(*ts))
    with tj.GradientTape() as tape:
        tape.watch(ts)
        out = fun(*ts)
    return tape.gradient(out, ts, output_gradients=tj.constant(u.astype(np.float64)),
                         unconnected_gradients='zero')


def _analytic_vjp(fun, args, u, mode):
    if mode == 'function':
        grads = tj.function(lambda *xs: vjp(fun, xs, u, 'tape'))(*args)
    else:
        grads = vjp(fun, [tj.constant(a) for a in args], u, mode)
    out = []
    for g, a in zip(grads, args):
        g = np.asarray(g)
        assert g.shape == a.shape, f'gradient of shape {g.shape} for an input of shape {a.shape}'
        assert g.dtype == a.dtype, f'gradient of dtype {g.dtype} for an input of dtype {a.dtype}'
        out.append(g.astype(np.float64))
    return out


def _flat_concat(values):
    flat = [tj.reshape(v, (-1,)) for v in values]
    return flat[0] if len(flat) == 1 else tj.concat(flat, axis=0)


# ----------------------------------------------------------------------------- numeric side

def numeric_directional(fun, args, directions, u, eps):
    """d/dt sum(u * fun(args + t * directions)) at t = 0, by a 4-point central stencil."""
    def at(t):
        return float(np.sum(u * evaluate(fun, [a + t * d for a, d in zip(args, directions)])))
    return (-at(2 * eps) + 8 * at(eps) - 8 * at(-eps) + at(-2 * eps)) / (12 * eps)


def numeric_gradient(fun, args, u, eps):
    """The full gradient of sum(u * fun(args)), one element at a time."""
    grads = []
    for i, a in enumerate(args):
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            directions = [np.zeros(b.shape) for b in args]
            directions[i][idx] = 1.0
            g[idx] = numeric_directional(fun, args, directions, u, eps)
        grads.append(g)
    return grads


def _compare_with_fd(fun, args, u, grads, tol, rng, label):
    eps, rtol, atol = tol['eps'], tol['rtol'], tol['atol']
    if sum(a.size for a in args) <= tol['full_max']:
        numeric = numeric_gradient(fun, args, u, eps)
        for i, (g, n) in enumerate(zip(grads, numeric)):
            bad = np.abs(g - n) > atol + rtol * np.abs(n)
            if bad.any():
                at = np.unravel_index(np.argmax(np.abs(g - n)), g.shape) if g.ndim else ()
                raise AssertionError(
                    f'{label}: gradient of argument {i} (shape {args[i].shape}) differs from '
                    f'finite differences at {int(bad.sum())} of {bad.size} elements; worst at '
                    f'{at}: analytic {g[at]!r} vs numeric {n[at]!r}\n'
                    f'analytic:\n{g}\nnumeric:\n{n}\ninput:\n{args[i]}')
        return
    for k in range(tol['directions']):
        directions = [rng.standard_normal(a.shape) for a in args]
        numeric = numeric_directional(fun, args, directions, u, eps)
        analytic = float(sum(np.sum(g * d) for g, d in zip(grads, directions)))
        scale = max(abs(numeric), 1.0)
        if abs(analytic - numeric) > atol * scale + rtol * abs(numeric):
            raise AssertionError(
                f'{label}: directional derivative along random direction {k} differs from '
                f'finite differences: analytic {analytic!r} vs numeric {numeric!r} '
                f'(input shapes {[a.shape for a in args]})')

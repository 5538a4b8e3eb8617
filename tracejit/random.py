"""tj.random: a counter-based generator whose state is a Variable.

Every draw reads the state as its key and advances it, so inside a compiled step the key is
state of the trace: each step gets a fresh mask or sample, and `set_seed` makes whole runs
reproducible. Eager and compiled draws use the same splitmix64 stream, so they agree bitwise.
"""
import math
import os

import numpy as np

from . import dtypes, errors, ops, primitives as P
from .tracing import bind
from .variables import Variable

_generator = []


def _state():
    if not _generator:
        seed = int.from_bytes(os.urandom(8), 'little') >> 1
        _generator.append(Variable(np.int64(seed), trainable=False, name='random_state'))
    return _generator[0]


def set_seed(seed):
    """Make every following draw (eager and compiled) reproducible."""
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f'set_seed needs an int, got {type(seed).__name__}')
    _state().assign(np.int64(int(seed) * 1_000_003 % 2**62))


def _next_key():
    state = _state()
    key = state.value()
    state.assign_add(1)
    return key


def _shape(shape):
    return ops._shape_arg(shape)


def uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None, name=None):
    dtype = dtypes.as_np_dtype(dtype)
    if dtype.kind != 'f':
        raise errors.DTypeError(errors.at_user_line(
            f'tj.random.uniform supports float dtypes, got {dtype.name}'))
    u = bind(P.REGISTRY['random_uniform'], _next_key(), shape=_shape(shape), dtype=dtype)
    maxval = 1.0 if maxval is None else maxval
    if (isinstance(minval, (int, float)) and isinstance(maxval, (int, float))
            and (minval, maxval) == (0, 1.0)):
        return u
    return ops.add(ops.multiply(u, ops.subtract(maxval, minval)), minval)


def normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Box-Muller transform of two uniform draws."""
    u1 = uniform(shape, dtype=dtype)
    u2 = uniform(shape, dtype=dtype)
    radius = ops.sqrt(ops.multiply(-2.0, ops.log(ops.subtract(1.0, u1))))
    z = ops.multiply(radius, ops.cos(ops.multiply(u2, 2 * math.pi)))
    return ops.add(ops.multiply(z, stddev), mean)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal draws outside two standard deviations are folded back inside (clipped)."""
    z = ops.clip_by_value(normal(shape, dtype=dtype), -2.0, 2.0)
    return ops.add(ops.multiply(z, stddev), mean)

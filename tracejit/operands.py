"""Operands: what every op does to its arguments before it binds a primitive.

A tensor-like argument becomes a Tensor, Tracer or numpy array; Python scalars stay scalars and
are weakly typed (JAX's rule: `x * 0.5` keeps x's float32). Ops, layers, losses and autodiff all
read arguments through these few functions.
"""
import numpy as np

from . import dtypes, errors, primitives
from .tracing import Tracer, as_operand, bind

SCALARS = (bool, int, float, np.generic)


def is_weak(x):
    """Whether `x` takes the dtype of what it meets (a Python scalar, or a traced one)."""
    return isinstance(x, SCALARS) or (isinstance(x, Tracer) and x.weak)


def dtype_of(x):
    if isinstance(x, SCALARS):
        return dtypes.python_scalar_dtype(x.item() if isinstance(x, np.generic) else x)
    return np.dtype(x.dtype.np if isinstance(x.dtype, dtypes.DType) else x.dtype)


def operand(x, what='operand'):
    """Anything tensor-like -> Tensor/Tracer/ndarray; Python scalars stay scalars (weak)."""
    if isinstance(x, SCALARS):
        return x
    if x is None:
        raise TypeError(errors.at_user_line(f'{what} is None; expected a tensor or number'))
    return as_operand(x, what)


def cast_to(x, dtype):
    """`x` as an operand of exactly `dtype` (casting tensors, materialising scalars)."""
    if isinstance(x, SCALARS):
        return np.asarray(x, dtype=dtype)
    if dtype_of(x) == dtype:
        return x
    if isinstance(x, np.ndarray):
        return x.astype(dtype)
    return bind(primitives.REGISTRY['convert'], x, dtype=np.dtype(dtype))

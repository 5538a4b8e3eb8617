"""tracejit: write training steps like TensorFlow or JAX; each step compiles to one Numba kernel.

    import tracejit as tj

    @tj.function
    def train_step(x, y):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(model(x) - y))
        ...
"""
import os as _os

newaxis = None  # tensor[tj.newaxis] inserts an axis, as numpy's None

# OpenMP threads must sleep, not spin, between parallel loops: spinning threads starve the BLAS
# threads of the next matmul (measured 6x slower). Must be set before Numba loads OpenMP.
_os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from . import config, data, debugging, dtypes, errors, image, nn, random, strings  # noqa: F401
from . import summary  # noqa: F401
from . import linalg, math  # noqa: F401
from . import autograph, train  # noqa: F401
from .autodiff import (GradientTape, UnconnectedGradients, custom_gradient, grad,  # noqa: F401
                       gradients, value_and_grad)
from .debug import graph_to_dot  # noqa: F401
from .indexed_slices import IndexedSlices  # noqa: F401
from .scatter import (scatter_nd, tensor_scatter_nd_add, tensor_scatter_nd_max,  # noqa: F401
                      tensor_scatter_nd_min, tensor_scatter_nd_sub, tensor_scatter_nd_update)
from .dtypes import (DType, as_dtype, bool_ as bool, float32, float64,  # noqa: F401,A004
                     int32, int64, string)
from .function import Function, function, jit  # noqa: F401
from .control import (cond, foldl, foldr, map_fn, scan, switch_case,  # noqa: F401
                      while_loop)
from . import control_grads  # noqa: F401 (registers the control-flow nodes' VJP rules)
from . import lax  # noqa: F401
from .tensor_array import TensorArray  # noqa: F401
from .ops import (  # noqa: F401
    abs, add, argmax, argmin, broadcast_to, cast, clip_by_value, concat, constant,
    convert_to_tensor, cos, divide, equal, exp, expand_dims, fill, floor, gather, greater,
    greater_equal, identity, less, less_equal, linspace, log, log1p, logical_and, logical_not,
    logical_or, matmul, maximum, minimum, multiply, negative, not_equal, one_hot, ones,
    ones_like, pow, range, rank, reduce_logsumexp, reduce_max, reduce_mean, reduce_min,
    reduce_sum, reshape, rsqrt, shape, sigmoid, sign, sin, size, sqrt, square,
    squared_difference, squeeze, stack, stop_gradient, subtract, tanh, tile, transpose, where,
    zeros, zeros_like)
from .random import normal as random_normal, uniform as random_uniform  # noqa: F401
from .config import device  # noqa: F401
from .spec import TensorSpec  # noqa: F401
from .tracing import init_scope  # noqa: F401
from .printing import print_ as print  # noqa: F401,A004
from .pyfunc import numpy_function, py_function  # noqa: F401
from .tensor import Tensor  # noqa: F401
from .variables import Module, Variable  # noqa: F401
from . import keras  # noqa: F401
from . import distribute  # noqa: F401 (after keras: its callbacks are Keras callbacks)
from . import saved_model  # noqa: F401

__version__ = '0.1.0'

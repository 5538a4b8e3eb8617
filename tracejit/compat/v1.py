"""TensorFlow 1 graphs and sessions over tracejit: `import tracejit.compat.v1 as tf`.

Graph building is a persistent tracing context over the same IR that `tj.function` records
(`graph.py`); `Session.run` replays the operations its fetches need into a `tj.function`,
compiled once per fetch set and feed signature, then run as one native call (`session.py`).
Variables live per session. `ConfigProto` is accepted and has no effect: everything runs on
the CPU through Numba.
"""
from .. import errors  # noqa: F401 (tf.errors.InvalidArgumentError, FailedPreconditionError)
from ..dtypes import (  # noqa: F401
    DType, as_dtype, bool_ as bool, float32, float64, int32, int64, string)
from . import nn, train  # noqa: F401
from .graph import (  # noqa: F401
    Graph, Operation, Tensor, TensorShape, constant, get_default_graph, get_default_session,
    reset_default_graph)
from .graph_ops import (  # noqa: F401
    abs, add, argmax, argmin, broadcast_to, cast, clip_by_value, concat, convert_to_tensor, cos,
    divide, equal, exp, expand_dims, fill, floor, floordiv, gather, gradients, greater,
    greater_equal, group, identity, less, less_equal, linspace, log, log1p, logical_and,
    logical_not, logical_or, matmul, maximum, minimum, multiply, negative, no_op, not_equal,
    one_hot, ones, ones_like, placeholder, pow, random_normal, random_uniform, range, rank,
    reciprocal, reduce_logsumexp, reduce_max, reduce_mean, reduce_min, reduce_sum, reshape,
    rsqrt, set_random_seed, shape, sigmoid, sign, sin, size, sqrt, square, squared_difference,
    squeeze, stack, stop_gradient, subtract, tanh, tile, transpose, truediv, truncated_normal,
    where, zeros, zeros_like)
from .session import ConfigProto, GPUOptions, InteractiveSession, Session  # noqa: F401
from .variables import (  # noqa: F401
    Variable, assign, assign_add, assign_sub, global_variables, global_variables_initializer,
    initialize_all_variables, local_variables, local_variables_initializer, trainable_variables,
    variables_initializer)
from .variables import scatter_add, scatter_sub, scatter_update  # noqa: F401
from ..indexed_slices import IndexedSlices  # noqa: F401
from ..scatter import (scatter_nd, tensor_scatter_nd_add, tensor_scatter_nd_update)  # noqa: F401

double = float64

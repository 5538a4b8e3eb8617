"""tj.math: TensorFlow's math namespace (the elementwise and reduction ops)."""
from .ops import (  # noqa: F401
    abs, add, argmax, argmin, cos, divide, equal, exp, floor, floordiv, floormod, greater,
    greater_equal, is_finite, less, less_equal, log, log1p, logical_and, logical_not,
    logical_or, maximum, minimum, mod, multiply, negative, not_equal, pow, reciprocal,
    reduce_logsumexp, reduce_max, reduce_mean, reduce_min, reduce_sum, rsqrt, sigmoid, sign,
    sin, softplus, sqrt, square, squared_difference, subtract, tanh)

"""TF1 op functions: tracejit's ops, each call recorded as one Operation with TF's type and name.

`wrap` turns a tracejit op into its graph version; the table below is the whole mapping. Only
placeholders, gradients and the control ops (`group`, `no_op`) need more than that.
"""
import functools

from .. import autodiff, dtypes, ops, random as tj_random
from .graph import PROBE, TensorShape, _Operators, constant, get_default_graph, make_op


def wrap(op_type, fn, default_name=None, operands=('x',)):
    """The graph version of tracejit op `fn`: each call adds one Operation of type `op_type`."""
    @functools.wraps(fn)
    def op(*args, name=None, **kwargs):
        return make_op(op_type, fn, args, kwargs, name=name, default_name=default_name,
                       operands=operands)
    return op


def _tf1_reduction(fn):
    """Accept TF1's deprecated `reduction_indices=` and `keep_dims=` spellings."""
    @functools.wraps(fn)
    def reduce(input_tensor, axis=None, keepdims=None, reduction_indices=None, keep_dims=None):
        axis = reduction_indices if axis is None else axis
        return fn(input_tensor, axis, bool(keepdims or keep_dims))
    return reduce


_XY = ('x', 'y')

add = wrap('Add', ops.add, operands=_XY)
subtract = wrap('Sub', ops.subtract, operands=_XY)
multiply = wrap('Mul', ops.multiply, operands=_XY)
divide = wrap('RealDiv', ops.divide, 'truediv', operands=_XY)
truediv = divide
floordiv = wrap('FloorDiv', ops.floordiv, operands=_XY)
maximum = wrap('Maximum', ops.maximum, operands=_XY)
minimum = wrap('Minimum', ops.minimum, operands=_XY)
pow = wrap('Pow', ops.pow, operands=_XY)  # noqa: A001 (TensorFlow's name)
squared_difference = wrap('SquaredDifference', ops.squared_difference, operands=_XY)
equal = wrap('Equal', ops.equal, operands=_XY)
not_equal = wrap('NotEqual', ops.not_equal, operands=_XY)
less = wrap('Less', ops.less, operands=_XY)
less_equal = wrap('LessEqual', ops.less_equal, operands=_XY)
greater = wrap('Greater', ops.greater, operands=_XY)
greater_equal = wrap('GreaterEqual', ops.greater_equal, operands=_XY)
logical_and = wrap('LogicalAnd', ops.logical_and, operands=_XY)
logical_or = wrap('LogicalOr', ops.logical_or, operands=_XY)
logical_not = wrap('LogicalNot', ops.logical_not)
negative = wrap('Neg', ops.negative)
abs = wrap('Abs', ops.abs)  # noqa: A001
sign = wrap('Sign', ops.sign)
square = wrap('Square', ops.square)
sqrt = wrap('Sqrt', ops.sqrt)
rsqrt = wrap('Rsqrt', ops.rsqrt)
exp = wrap('Exp', ops.exp)
log = wrap('Log', ops.log)
log1p = wrap('Log1p', ops.log1p)
sin = wrap('Sin', ops.sin)
cos = wrap('Cos', ops.cos)
tanh = wrap('Tanh', ops.tanh)
sigmoid = wrap('Sigmoid', ops.sigmoid)
floor = wrap('Floor', ops.floor)
reciprocal = wrap('Reciprocal', ops.reciprocal)
clip_by_value = wrap('ClipByValue', ops.clip_by_value, 'clip_by_value', operands=('t',))
where = wrap('Select', ops.where, operands=('condition', 'x', 'y'))
cast = wrap('Cast', ops.cast)
identity = wrap('Identity', ops.identity, operands=('input',))
stop_gradient = wrap('StopGradient', ops.stop_gradient, operands=('input',))
reduce_sum = wrap('Sum', _tf1_reduction(ops.reduce_sum), operands=('input',))
reduce_mean = wrap('Mean', _tf1_reduction(ops.reduce_mean), operands=('input',))
reduce_max = wrap('Max', _tf1_reduction(ops.reduce_max), operands=('input',))
reduce_min = wrap('Min', _tf1_reduction(ops.reduce_min), operands=('input',))
reduce_logsumexp = wrap('ReduceLogSumExp', _tf1_reduction(ops.reduce_logsumexp),
                        operands=('input',))
argmax = wrap('ArgMax', ops.argmax, operands=('input',))
argmin = wrap('ArgMin', ops.argmin, operands=('input',))
matmul = wrap('MatMul', ops.matmul, operands=('a', 'b'))
transpose = wrap('Transpose', ops.transpose, operands=('a',))
reshape = wrap('Reshape', ops.reshape, operands=('tensor',))
expand_dims = wrap('ExpandDims', ops.expand_dims, operands=('input',))
squeeze = wrap('Squeeze', ops.squeeze, operands=('input',))
broadcast_to = wrap('BroadcastTo', ops.broadcast_to, operands=('input',))
tile = wrap('Tile', ops.tile, operands=('input',))
concat = wrap('ConcatV2', ops.concat, 'concat', operands=())
stack = wrap('Pack', ops.stack, 'stack', operands=())
gather = wrap('GatherV2', ops.gather, operands=('params',))
one_hot = wrap('OneHot', ops.one_hot, operands=('indices',))
shape = wrap('Shape', ops.shape, operands=('input',))
size = wrap('Size', ops.size, operands=('input',))
rank = wrap('Rank', ops.rank, operands=('input',))
zeros = wrap('Fill', ops.zeros, 'zeros', operands=())
ones = wrap('Fill', ops.ones, 'ones', operands=())
fill = wrap('Fill', ops.fill, operands=())
zeros_like = wrap('ZerosLike', ops.zeros_like, operands=('tensor',))
ones_like = wrap('OnesLike', ops.ones_like, operands=('tensor',))
linspace = wrap('LinSpace', ops.linspace, operands=())
range = wrap('Range', ops.range, operands=())  # noqa: A001
random_normal = wrap('RandomStandardNormal', tj_random.normal, 'random_normal', operands=())
random_uniform = wrap('RandomUniform', tj_random.uniform, 'random_uniform', operands=())
truncated_normal = wrap('TruncatedNormal', tj_random.truncated_normal, 'truncated_normal',
                        operands=())

def set_random_seed(seed):
    """Make the random ops' draws reproducible (one generator, shared by all sessions)."""
    tj_random.set_seed(seed)


def convert_to_tensor(value, dtype=None, name=None):
    """Tensors pass through (cast when `dtype` differs); Variables give their read tensor."""
    if isinstance(value, _Operators):
        value = value._graph_tensor()
        return cast(value, dtype, name=name) if dtype is not None and value.dtype != dtype \
            else value
    return constant(value, dtype, name=name or 'Const')


# -------------------------------------------------------------------------------- placeholders

def placeholder(dtype, shape=None, name=None):
    """A value fed at run time. Unknown dimensions (None) or rank (shape=None) take the size of
    each feed; the compiled step is shape-generic, so a new size costs a trace, not a compile."""
    graph = get_default_graph()
    static = shape if isinstance(shape, TensorShape) else TensorShape(
        [shape] if isinstance(shape, int) else shape)
    dtype = dtypes.as_dtype(dtypes.canonical(dtypes.as_np_dtype(dtype), 'placeholder'))
    probe = (PROBE,) if static.dims is None else tuple(PROBE if d is None else d
                                                        for d in static.dims)
    out = make_op('Placeholder', lambda: graph._trace.new_input(probe, dtype.np), name=name,
                  graph=graph)
    out._partial = not static.is_fully_defined()
    out._unknown_rank = static.dims is None
    return out


# -------------------------------------------------------------------------------- gradients

def gradients(ys, xs, grad_ys=None, name='gradients', colocate_gradients_with_ops=False,
              gate_gradients=False, aggregation_method=None, stop_gradients=None,
              unconnected_gradients='none'):
    """d(sum of ys)/dx for each x in `xs` (a list; None where x does not reach ys).

    One Operation of type SymbolicGradient: replayed, it runs tracejit's graph-mode reverse
    mode over the values it was given, so the gradient compiles together with the forward."""
    ys, xs = _as_list(ys), _as_list(xs)
    grad_ys = None if grad_ys is None else _as_list(grad_ys)

    def symbolic_gradient(ys, xs, grad_ys):
        return autodiff.gradients(ys, xs, grad_ys, unconnected_gradients=unconnected_gradients)
    return make_op('SymbolicGradient', symbolic_gradient, (ys, xs, grad_ys), name=name,
                   multi=True)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


# -------------------------------------------------------------------------------- control

def no_op(name=None):
    """An operation that does nothing (useful as a target for control inputs)."""
    return make_op('NoOp', tuple, name=name)


def group(*inputs, name=None):
    """One NoOp that runs all of `inputs` (Operations or Tensors) when it runs."""
    graph = inputs[0].graph if inputs else get_default_graph()
    return make_op('NoOp', tuple, name=name, default_name='group_deps', control_inputs=inputs,
                   graph=graph)

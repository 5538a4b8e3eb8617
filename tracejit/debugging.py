"""`tj.debugging`: TensorFlow's run-time checks, eagerly and inside compiled steps.

Value checks (`check_numerics`, `assert_equal`, `assert_less`, ...) raise InvalidArgumentError
as TensorFlow's do. On concrete values they check at once (also while tracing: a check that
must fail fails at trace time, as TF's static checks). On traced values the condition is
computed in the compiled step and a guarded host call (callbacks.py) raises when it does not
hold: while it holds the step never leaves native code, and when it raises, the step's
Variable updates are undone. Shapes and dtypes are static in tracejit, so `assert_rank`,
`assert_shapes` and `assert_type` always check while tracing (ValueError / TypeError, as TF).
"""
import numpy as np

from . import callbacks, dtypes, errors, ops, printing, tracing
from .tracing import Tracer


def _constant(value):
    """The numpy value of a Tensor, array or a trace's constant; None for a traced value."""
    value = tracing.as_operand(value)
    if isinstance(value, Tracer):
        return value.trace.graph.consts.get(value.var)
    return np.asarray(value._value if hasattr(value, '_value') else value)


def _all(condition):
    return ops.equal(ops.reduce_sum(ops.cast(ops.logical_not(condition), dtypes.int32)), 0)


def _require(condition_of, data, describe):
    """Raise InvalidArgumentError(describe(*numpy data)) unless `condition_of(*data)` (a bool
    tensor) holds everywhere: now for concrete data, else each time the compiled step runs."""
    values = [_constant(d) for d in data]
    if all(v is not None for v in values):
        with tracing.init_scope():
            holds = bool(_all(condition_of(*values)).numpy())
        if not holds:
            raise errors.InvalidArgumentError(errors.at_user_line(describe(*values)))
        return

    def fail(arrays):
        raise errors.InvalidArgumentError(describe(*(np.asarray(a) for a in arrays[1:])))
    operands = [tracing.as_operand(x) for x in data]
    callbacks.emit(tracing.current_trace(),
                   callbacks.HostCall(fail, name='assert', guarded=True),
                   [_all(condition_of(*operands)), *operands])


def _head(value, summarize):
    flat = value.reshape(-1)
    count = flat.size if summarize is None or summarize < 0 else min(summarize, flat.size)
    return count, printing.summarize_value(flat[:count], -1)


def _failure(message, condition, summarize, **values):
    """TF's text for a failed check: the message, the condition, then each value's head."""
    heads = [(label, *_head(v, summarize)) for label, v in values.items()]
    return (f'{message + chr(10) if message else ""}Condition {condition} did not hold.'
            + ''.join(f'\nFirst {n} elements of {label}:\n{text}' for label, n, text in heads))


def _comparison(symbol, op):
    def check(x, y, message=None, summarize=None, name=None):
        x, y = tracing.as_operand(x), tracing.as_operand(y)
        _require(op, [x, y], lambda xv, yv: _failure(message, f'x {symbol} y', summarize,
                                                     x=xv, y=yv))
    check.__name__ = f'assert_{op.__name__}'
    check.__doc__ = f'Raise InvalidArgumentError unless x {symbol} y everywhere (broadcast).'
    return check


assert_equal = _comparison('==', ops.equal)
assert_none_equal = _comparison('!=', ops.not_equal)
assert_less = _comparison('<', ops.less)
assert_less_equal = _comparison('<=', ops.less_equal)
assert_greater = _comparison('>', ops.greater)
assert_greater_equal = _comparison('>=', ops.greater_equal)


def _sign_check(symbol, op):
    def check(x, message=None, summarize=None, name=None):
        x = tracing.as_operand(x)
        _require(lambda v: op(v, ops.zeros_like(v)), [x],
                 lambda xv: _failure(message, f'x {symbol} 0', summarize, x=xv))
    check.__doc__ = f'Raise InvalidArgumentError unless x {symbol} 0 everywhere.'
    return check


assert_non_negative = _sign_check('>=', ops.greater_equal)
assert_positive = _sign_check('>', ops.greater)
assert_negative = _sign_check('<', ops.less)
assert_non_positive = _sign_check('<=', ops.less_equal)


def assert_near(x, y, rtol=None, atol=None, message=None, summarize=None, name=None):
    """|x - y| <= atol + rtol * |y| everywhere; tolerances default to 10 * the dtype's eps."""
    x, y = tracing.as_operand(x), tracing.as_operand(y)
    eps = 10 * np.finfo(dtypes.as_np_dtype(x.dtype)).eps
    rtol, atol = eps if rtol is None else rtol, eps if atol is None else atol

    def describe(xv, yv):
        _, tx = _head(xv, summarize)
        _, ty = _head(yv, summarize)
        return (f'{message + chr(10) if message else ""}x and y not equal to tolerance '
                f'rtol = {rtol}, atol = {atol}\nx (shape={xv.shape} dtype={xv.dtype}) = '
                f'{tx}\ny (shape={yv.shape} dtype={yv.dtype}) = {ty}')
    _require(lambda a, b: ops.less_equal(ops.abs(a - b), atol + rtol * ops.abs(b)), [x, y],
             describe)


def _numerics_text(message, value):
    nan, inf = bool(np.isnan(value).any()), bool(np.isinf(value).any())
    what = 'Inf and NaN' if nan and inf else 'NaN' if nan else 'Inf'
    return f'{message} : Tensor had {what} values'


def check_numerics(tensor, message, name=None):
    """`tensor` itself, after raising InvalidArgumentError if it holds a NaN or an Inf."""
    x = tracing.as_operand(tensor)
    if dtypes.as_np_dtype(x.dtype).kind != 'f':
        raise errors.DTypeError(errors.at_user_line(
            f'check_numerics needs a floating-point tensor, got {dtypes.as_dtype(x.dtype).name}'))
    _require(ops.is_finite, [x], lambda v: _numerics_text(message, v))
    return x


def assert_all_finite(t, msg, name=None, x=None, message=None):
    """check_numerics under its other name (tf.debugging.assert_all_finite)."""
    return check_numerics(t if x is None else x, msg if message is None else message)


def assert_rank(x, rank, message=None, name=None):
    x = tracing.as_operand(x)
    if len(x.shape) != int(rank):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{message + " " if message else ""}Tensor must have rank {int(rank)}.  Received '
            f'rank {len(x.shape)}, shape {tuple(x.shape)}'))


def assert_type(tensor, tf_type, message=None, name=None):
    dtype = dtypes.as_dtype(tracing.as_operand(tensor).dtype)
    if dtype != dtypes.as_dtype(tf_type):
        raise TypeError(errors.at_user_line(
            f'{message + " " if message else ""}tensor must be of type '
            f'tj.{dtypes.as_dtype(tf_type).name}; got tj.{dtype.name}'))


def assert_shapes(shapes, data=None, summarize=None, message=None, name=None):
    """Each (tensor, shape) pair: ints fix a size, equal names must be equal sizes, None
    (or '.') is any size, a leading '*' or '...' any number of leading axes."""
    sizes = {}
    for tensor, spec in (shapes.items() if isinstance(shapes, dict) else shapes):
        shape = tuple(tracing.as_operand(tensor).shape)
        spec = list(spec)
        if spec and spec[0] in ('*', '...'):
            spec = spec[1:]
            shape = shape[len(shape) - len(spec):] if len(shape) >= len(spec) else shape
        if len(shape) != len(spec):
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'{message + " " if message else ""}Tensor of shape {shape} must have rank '
                f'{len(spec)}'))
        for axis, (dim, want) in enumerate(zip(shape, spec)):
            want = sizes.setdefault(want, dim) if isinstance(want, str) and want != '.' else want
            if want is not None and want != '.' and dim != int(want):
                raise errors.InvalidArgumentError(errors.at_user_line(
                    f'{message + " " if message else ""}Tensor of shape {shape} dimension '
                    f'{axis} must have size {int(want)}.  Received size {dim}'))


def set_log_device_placement(enabled):
    """Accepted for TensorFlow code; every op runs on the CPU, so there is nothing to log."""

"""String tensors (`tj.string`) and `tj.strings`: eager only, as values beside the numeric
program. Like TensorFlow's they hold bytes (`tj.constant('abc').numpy() == b'abc'`, text
encoded as UTF-8). Inside a compiled function they are constants of the trace (computed while
tracing); kernels compute with numbers only, so arguments of string dtype are refused.
"""
import numpy as np

from . import dtypes, errors
from .tensor import Tensor, TensorOps


def is_text(value):
    """Whether `value` is string data: str/bytes, a nest of lists of them, a numpy string
    array, or a string Tensor."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, Tensor):
        return value._value.dtype.kind in 'SU'
    if isinstance(value, np.ndarray):
        return value.dtype.kind in 'SU'
    return isinstance(value, (str, bytes, np.str_, np.bytes_))


def as_bytes(value):
    """A numpy bytes array of string data (text encoded as UTF-8)."""
    if isinstance(value, Tensor):
        value = value._value
    array = np.asarray(value)
    if array.dtype.kind == 'U':
        array = np.char.encode(array, 'utf-8')
    if array.dtype.kind != 'S':
        raise errors.DTypeError(errors.at_user_line(
            f'expected string data, got {array.dtype.name}'))
    return array


def constant(value, shape=None):
    array = as_bytes(value)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        array = np.full(shape, array) if array.size == 1 else array.reshape(shape)
    return Tensor(array)


def _both_strings(x, y, op):
    if not (is_text(x) and is_text(y)):
        other = y if is_text(x) else x
        kind = getattr(other, 'dtype', type(other).__name__)
        raise errors.DTypeError(errors.at_user_line(
            f'{op}: cannot compare a string tensor with {kind}; both operands must be strings'))
    return as_bytes(x), as_bytes(y)


def equal(x, y):
    a, b = _both_strings(x, y, 'equal')
    return Tensor(np.asarray(a == b))


def not_equal(x, y):
    a, b = _both_strings(x, y, 'not_equal')
    return Tensor(np.asarray(a != b))


def _strings_of(value):
    if isinstance(value, TensorOps) and not isinstance(value, Tensor):
        raise errors.UnimplementedError(errors.at_user_line(
            'tj.strings ops run eagerly on string data; a traced numeric value cannot be '
            'used here'))
    return as_bytes(value)


def length(input, unit='BYTE', name=None):  # noqa: A002 (TensorFlow's argument name)
    """Length in bytes (unit='BYTE') or Unicode code points (unit='UTF8_CHAR'), int32."""
    data = _strings_of(input)
    if unit == 'UTF8_CHAR':
        return Tensor(np.vectorize(lambda s: len(s.decode('utf-8')), otypes=[np.int32])(data))
    if unit != 'BYTE':
        raise errors.InvalidArgumentError(f"unit must be 'BYTE' or 'UTF8_CHAR', got {unit!r}")
    return Tensor(np.char.str_len(data).astype(np.int32))


def lower(input, encoding='', name=None):  # noqa: A002
    return Tensor(np.char.lower(_strings_of(input)))


def upper(input, encoding='', name=None):  # noqa: A002
    return Tensor(np.char.upper(_strings_of(input)))


def join(inputs, separator='', name=None):
    """Element-wise concatenation of string tensors (broadcast), with `separator` between."""
    parts = [_strings_of(x) for x in inputs]
    sep = separator.encode('utf-8') if isinstance(separator, str) else separator
    out = parts[0]
    for part in parts[1:]:
        out = np.char.add(np.char.add(out, sep), part)
    return Tensor(np.asarray(out))


def to_number(string_tensor, out_type=dtypes.float32, name=None):
    """Parse numbers; a string that is not one raises InvalidArgumentError, as in TF."""
    data, np_type = _strings_of(string_tensor), dtypes.as_np_dtype(out_type)
    try:
        return Tensor(np.vectorize(lambda s: np_type.type(s.decode('utf-8')),
                                   otypes=[np_type])(data))
    except ValueError as e:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'StringToNumberOp could not correctly convert string: {e}')) from None

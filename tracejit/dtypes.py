"""Data types, type promotion and weakly typed Python scalars.

Internally every value carries a plain `numpy.dtype`; the public `tj.float32` & co are `DType`
objects that compare equal to the numpy dtype, its type and its name, so user code may mix them.

Promotion follows JAX rather than numpy: bool < int32 < int64 < float32 < float64, an integer
meeting a float becomes that float (int64 + float32 -> float32), and a *weak* operand (a Python
scalar, or a traced Python float) takes the other operand's dtype, so `x * 0.5` keeps float32.
"""
import numpy as np

from . import errors


class DType:
    """A tensor element type, TensorFlow style (`.name`, `.as_numpy_dtype`, `.is_floating`)."""

    __slots__ = ('np',)

    def __init__(self, np_dtype):
        self.np = np.dtype(np_dtype)

    name = property(lambda self: self.np.name)
    dtype = property(lambda self: self.np)  # numpy accepts tj.float32 wherever a dtype goes
    as_numpy_dtype = property(lambda self: self.np.type)
    is_floating = property(lambda self: self.np.kind == 'f')
    is_integer = property(lambda self: self.np.kind in 'iu')
    is_bool = property(lambda self: self.np.kind == 'b')

    def __eq__(self, other):
        try:
            return self.np == as_np_dtype(other)
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self.np)

    def __repr__(self):
        return f'tj.{self.name}'


float32 = DType(np.float32)
float64 = DType(np.float64)
int32 = DType(np.int32)
int64 = DType(np.int64)
bool_ = DType(np.bool_)
string = DType(np.str_)

DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_INT = np.dtype(np.int32)
SUPPORTED = {np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_)}
_RANK = {np.dtype(np.bool_): 0, np.dtype(np.int32): 1, np.dtype(np.int64): 2,
         np.dtype(np.float32): 3, np.dtype(np.float64): 4}
_NAMES = {'float32': float32, 'float64': float64, 'int32': int32, 'int64': int64,
          'bool': bool_, 'string': string, 'double': float64, 'float': float32}


def as_np_dtype(dtype):
    """Any dtype spelling (DType, numpy dtype or type, name) -> numpy dtype."""
    if isinstance(dtype, DType):
        return dtype.np
    if isinstance(dtype, str) and dtype in _NAMES:
        return _NAMES[dtype].np
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f'{dtype!r} is not a dtype; use tj.float32, tj.int32, tj.bool ...') from None


def as_dtype(dtype):
    """Any dtype spelling -> the public DType object."""
    np_dtype = as_np_dtype(dtype)
    for public in (float32, float64, int32, int64, bool_):
        if public.np == np_dtype:
            return public
    if np_dtype.kind in 'US':
        return string
    return DType(np_dtype)


def canonical(np_dtype, what='value'):
    """Map numpy dtypes onto the supported set (int8 -> int32, uint8 -> int32, float16 -> float32).

    Unsigned integers go to a signed type that holds all their values (uint32 -> int64), except
    uint64, whose values above 2**63 - 1 `to_canonical` refuses. Object, string and complex data
    is refused with a TypeError that names `what`.
    """
    np_dtype = np.dtype(np_dtype)
    if np_dtype in SUPPORTED:
        return np_dtype
    if np_dtype.kind in 'iu':
        wide = np_dtype.itemsize > 4 or (np_dtype.kind == 'u' and np_dtype.itemsize == 4)
        return np.dtype(np.int64) if wide else np.dtype(np.int32)
    if np_dtype.kind == 'f':
        return np.dtype(np.float64) if np_dtype.itemsize > 8 else np.dtype(np.float32)
    raise errors.DTypeError(
        f'{what} has dtype {np_dtype} which tracejit cannot compute with; '
        'convert it to a numeric array (float32, float64, int32, int64 or bool) first')


def to_canonical(array, what='value'):
    """`array` converted to its canonical dtype, never wrapping a value into a negative one."""
    dtype = canonical(array.dtype, what)
    if array.dtype == dtype:
        return array
    if array.dtype.kind == 'u' and array.size and array.max() > np.iinfo(dtype).max:
        raise errors.DTypeError(
            f'{what} holds {array.dtype} values up to {array.max()}, above {np.iinfo(dtype).max}, '
            f'the largest {dtype} (the widest integer type tracejit computes with); convert it '
            'to float64 or to smaller values first')
    return array.astype(dtype)


def is_float(np_dtype):
    return np.dtype(np_dtype).kind == 'f'


def is_int(np_dtype):
    return np.dtype(np_dtype).kind in 'iu'


def python_scalar_dtype(value):
    """The dtype a Python scalar gets when nothing else decides it."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, int):
        return DEFAULT_INT
    if isinstance(value, float):
        return DEFAULT_FLOAT
    raise TypeError(f'{value!r} is not a number')


def promote(a, b):
    """Result dtype of a binary op on (dtype, weak) pairs; returns (dtype, weak)."""
    (da, wa), (db, wb) = a, b
    if wa and not wb:
        return _weak_into(da, db), False
    if wb and not wa:
        return _weak_into(db, da), False
    winner = da if _RANK[da] >= _RANK[db] else db
    return winner, wa and wb


def _weak_into(weak, strong):
    """A weak scalar meets a strong dtype: it adopts it unless it would lose its kind."""
    kinds = 'bif'
    if kinds.index(_kind(weak)) > kinds.index(_kind(strong)):
        return DEFAULT_FLOAT if _kind(weak) == 'f' else DEFAULT_INT
    return strong


def _kind(np_dtype):
    return 'i' if np_dtype.kind == 'u' else np_dtype.kind


def result_type(*pairs):
    """Fold `promote` over any number of (dtype, weak) pairs."""
    out = pairs[0]
    for pair in pairs[1:]:
        out = promote(out, pair)
    return out

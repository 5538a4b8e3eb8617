"""`Variable` (mutable state, read like a tensor) and `Module` (finds its Variables recursively).

A Variable owns one contiguous numpy buffer. Eager reads return a copy (tensors are immutable);
inside a trace a read is a state input of the graph, and `assign*` rebinds the Variable's value
in program order; compiled kernels then write the final value into the buffer in place.
"""
import itertools
import re
import threading

import numpy as np

from . import dtypes, errors, operands, tracing
from .tensor import Tensor, TensorOps, _np_repr

class Variable(TensorOps):
    """TensorFlow-style variable: `assign`, `assign_add`, `assign_sub`, `numpy`, usable as a
    tensor."""

    _ids = itertools.count()

    def __init__(self, initial_value=None, trainable=True, name=None, dtype=None, shape=None):
        if initial_value is None:
            raise errors.InvalidArgumentError(errors.at_user_line(
                'tj.Variable needs an initial_value'))
        trace = tracing.current_trace()
        if trace is not None and not trace.allow_new_variables:
            raise errors.InvalidArgumentError(errors.at_user_line(
                'a compiled function created a Variable on a call other than its first; create '
                'Variables once (in __init__, build(), or on the first call) and reuse them'))
        if callable(initial_value):
            initial_value = initial_value()
        if isinstance(initial_value, tracing.Tracer):
            initial_value = initial_value.trace.concrete(initial_value)
        if isinstance(initial_value, TensorOps):
            initial_value = np.asarray(initial_value.numpy())
        array = tracing.to_array(initial_value, 'initial_value', dtype)
        self._buf = np.array(array, order='C', copy=True)
        self.trainable = bool(trainable)
        self._base_name = name or 'Variable'
        self.name = f'{self._base_name}:0'  # eager TensorFlow does not uniquify names
        self._id = next(Variable._ids)
        self._lock = threading.RLock()  # held by every eager update and every kernel writing it

    @property
    def buffer(self):
        """The live array holding the value: compiled steps and the interpreter update it in
        place, and its identity never changes (kernels are built around it). Not for users."""
        return self._buf

    shape = property(lambda self: self._buf.shape)
    dtype = property(lambda self: dtypes.as_dtype(self._buf.dtype))
    weak = False

    def value(self):
        """The current value as a tensor (a traced state read inside a compiled function)."""
        trace = tracing.current_trace()
        out = trace.read_variable(self) if trace is not None else Tensor(self._buf.copy())
        for tape in tracing.active_tapes():
            tape.on_variable_read(self, out)
        return out

    read_value = value

    def numpy(self):
        trace = tracing.current_trace()
        if trace is not None:
            return self.value().numpy()
        value = self._buf.copy()
        return value[()] if value.ndim == 0 else value

    def __array__(self, dtype=None, copy=None):
        value = self._buf.copy()
        return value if dtype is None else value.astype(dtype)

    def assign(self, value, use_locking=None, name=None, read_value=True):
        trace = tracing.current_trace()
        value = self._checked(value)
        if trace is not None:
            trace.assign_variable(self, value)
        else:
            with self._lock:
                np.copyto(self._buf, np.asarray(value))
        return self

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        with self._lock:  # read, add and write as one update: threads never lose one
            return self.assign(self.value() + delta)

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        with self._lock:
            return self.assign(self.value() - delta)

    def _checked(self, value):
        """The new value as an operand of this Variable's shape and dtype, or a clear error."""
        if isinstance(value, Variable):
            value = value.value()
        if isinstance(value, (list, tuple)):
            value = self._python_data(value)
        operand = operands.operand(value, 'value')
        shape = tuple(getattr(operand, 'shape', ()))
        if shape != self.shape:
            raise errors.ShapeError(errors.at_user_line(
                f'cannot assign a value of shape {shape} to Variable {self.name!r} '
                f'of shape {self.shape}'))
        value_dtype = operands.dtype_of(operand)
        if value_dtype != self._buf.dtype:
            float_array = (value_dtype.kind == self._buf.dtype.kind == 'f'
                           and isinstance(operand, np.ndarray))
            if not operands.is_weak(operand) and not float_array:
                raise errors.DTypeError(errors.at_user_line(
                    f'cannot assign a {value_dtype.name} value to Variable {self.name!r} of dtype '
                    f'{self._buf.dtype.name}; cast it with tj.cast first'))
            operand = operands.cast_to(operand, self._buf.dtype)
        return operand

    def _python_data(self, value):
        """A Python list as this Variable's dtype, as TF converts it: ints become floats, but
        floats never silently become ints."""
        array = tracing.to_array(value, 'value')
        target = self._buf.dtype
        if array.dtype.kind == 'f' and target.kind in 'iub':
            raise errors.DTypeError(errors.at_user_line(
                f'cannot assign a list of floats to Variable {self.name!r} of dtype '
                f'{target.name}'))
        return array.astype(target)

    def __repr__(self):
        if tracing.current_trace() is not None:
            return f"<tj.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>"
        return (f"<tj.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}, "
                f'numpy={_np_repr(self._buf)}>')

    def __format__(self, spec):
        return format(self.numpy(), spec)

    def __bool__(self):
        return bool(self.value())

    def __float__(self):
        return float(self.value())

    def __int__(self):
        return int(self.value())

    def __index__(self):
        return self.value().__index__()


def update_locks(variables):
    """The locks of `variables`, each once, in creation order: a step that takes the locks of
    all the Variables it writes in this one global order never deadlocks with another."""
    unique = {v._id: v for v in variables}
    return tuple(unique[i]._lock for i in sorted(unique))


class Module:
    """Like tf.Module: `variables`, `trainable_variables` and `submodules`, found recursively
    through attributes (sorted by name), lists, tuples and dicts."""

    def __init__(self, name=None):
        cls_name = re.sub(r'(?<!^)(?=[A-Z])', '_', type(self).__name__).lower()
        self._name = name or cls_name

    @property
    def name(self):
        return getattr(self, '_name', type(self).__name__.lower())

    @property
    def variables(self):
        return tuple(_walk(self, Variable))

    @property
    def trainable_variables(self):
        return tuple(v for v in self.variables if v.trainable)

    @property
    def non_trainable_variables(self):
        return tuple(v for v in self.variables if not v.trainable)

    @property
    def submodules(self):
        return tuple(_walk(self, Module))


def _walk(root, kind):
    """Objects of `kind` reachable from `root` (excluded), depth first, each once."""
    seen, out = {id(root)}, []

    def visit(obj):
        if isinstance(obj, (Tensor, np.ndarray, str, bytes, int, float)) or obj is None:
            return
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, kind):
            out.append(obj)
        if isinstance(obj, Variable):
            return
        if isinstance(obj, dict):
            for key in sorted(obj, key=str):
                visit(obj[key])
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, Module):
            children(obj)

    def children(module):
        for key in sorted(vars(module)):
            visit(vars(module)[key])

    children(root)
    return out

"""Binding primitives: run them eagerly with numpy, or record them into the active trace's graph.

A `Trace` owns a `Graph` under construction. While one is active, ops on its `Tracer`s append
nodes, Variable reads become state inputs and `assign` rebinds the Variable's current value
(program order). Every bound op is also offered to the active gradient tapes, which is how the
same code differentiates eagerly and inside compiled functions.
"""
import contextlib
import os
import threading

import numpy as np

from . import dtypes, errors, ir
from .tensor import Tensor, TensorOps, _uids



class _ThreadState(threading.local):
    """The traces and gradient tapes of one thread, as in TensorFlow: while one thread traces,
    another thread's ops stay eager and its tapes record only its own ops."""

    def __init__(self):
        self.traces = []
        self.tapes = []


_state = _ThreadState()

# Traces and tapes entered and not yet left, in all threads together (read it, never write it:
# see count_entered). While it is 0 no thread is busy, which a compiled call sees without
# reading thread-local state. It may count high (a tape left from another thread), never low:
# every thread's own entries are in it.
entered = 0
_entered_lock = threading.Lock()


def count_entered(delta):
    """Counts a trace or tape made active (+1) or inactive (-1) in this thread's lists."""
    global entered
    with _entered_lock:
        entered += delta


def _unlock_in_child():
    """A child forked while another thread counted must not inherit the lock held."""
    global _entered_lock
    _entered_lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


def active_tapes():
    """This thread's recording GradientTapes (innermost last). A tape added to this list
    or removed from it is counted with count_entered."""
    return _state.tapes


def busy():
    """Whether this thread is tracing or recording on a tape (compiled calls then inline)."""
    return entered != 0 and bool(_state.traces or _state.tapes)


class Tracer(TensorOps):
    """A symbolic value inside a trace: an SSA `ir.Var` plus the trace it belongs to."""

    __slots__ = ('trace', 'var', '_uid')

    def __init__(self, trace, var):
        self.trace, self.var = trace, var
        self._uid = next(_uids)

    shape = property(lambda self: self.var.shape)
    dtype = property(lambda self: dtypes.as_dtype(self.var.dtype))
    weak = property(lambda self: self.var.weak)

    def _concrete(self, what):
        raise errors.ConcretizationError(errors.at_user_line(
            f'{what} needs a concrete value, but this is a traced value '
            f'({self.var.type_str()}) inside a compiled function. Python control flow cannot '
            'depend on traced values: use tj.where(cond, x, y) or tj.cond(pred, true_fn, false_fn) '
            'for data-dependent choices, or pass the value as a static argument '
            '(a Python bool/int, or static_argnums=...)'))

    def __bool__(self): self._concrete('Python bool() (an if/while/and/or on a tensor)')
    def __float__(self): self._concrete('float()')
    def __int__(self): self._concrete('int()')
    def __index__(self): self._concrete('Using a tensor as a Python index')
    def numpy(self): self._concrete('.numpy()')
    def __array__(self, dtype=None, copy=None): self._concrete('Converting to a numpy array')

    def __repr__(self):
        return f'<tj.Tensor (traced): shape={self.shape}, dtype={self.dtype.name}>'


class Trace:
    """A graph being recorded. Used as a context manager that makes it the current trace."""

    parent = None   # the enclosing trace of a sub-graph being recorded (subtrace.SubTrace)

    def __init__(self, allow_new_variables=True):
        self.allow_new_variables = allow_new_variables
        self.graph = ir.Graph()
        self.active = False
        self.current = {}        # id(Variable) -> (Variable, Var holding its current value)
        self.guards = []         # (input position, low, high, message): see require_in_range
        self._const_vars = {}    # id(Tensor) -> (Tensor, Var) so a captured tensor is one const

    def __enter__(self):
        self.active = True
        count_entered(1)
        _state.traces.append(self)
        return self

    def __exit__(self, *exc):
        _state.traces.remove(self)
        count_entered(-1)
        self.active = False

    def new_input(self, shape, dtype, weak=False):
        var = ir.Var(shape, dtype, weak)
        self.graph.inputs.append(var)
        return Tracer(self, var)

    def to_var(self, value):
        """The graph value for an operand: a tracer's var, or a constant for eager data."""
        if isinstance(value, Tracer):
            if value.trace is not self:
                raise errors.InaccessibleTensorError(errors.at_user_line(
                    'a traced value escaped from another compiled function or graph and cannot '
                    'be used here; return it from that function instead of storing it'))
            return value.var
        if isinstance(value, Tensor):
            entry = self._const_vars.get(id(value))
            if entry is None:
                entry = self._const_vars[id(value)] = (value, self.graph.add_const(value._value))
            return entry[1]
        return self.graph.add_const(value)

    def emit(self, prim, args, params):
        in_vars = [self.to_var(a) for a in args]
        out_avals = prim.check(*in_vars, **params)
        outs = [ir.Var(*aval) for aval in out_avals]
        self.graph.nodes.append(ir.Node(prim, in_vars, params, outs, errors.user_line()))
        return [Tracer(self, v) for v in outs]

    def read_variable(self, variable):
        entry = self.current.get(id(variable))
        if entry is None:
            var = ir.Var(variable.shape, variable.dtype.np)
            self.graph.state.append((variable, var))
            entry = self.current[id(variable)] = (variable, var)
        return Tracer(self, entry[1])

    def assign_variable(self, variable, value):
        # a written Variable is also state, so unassigned paths keep it
        self.read_variable(variable)
        self.current[id(variable)] = (variable, self.to_var(value))

    def records_eager_ops(self):
        """Whether ops on eager tensors are recorded here instead of run: in a branch or loop
        body of eager code, where tapes see the sub-graph's inputs only (subtrace.py)."""
        return False

    def encloses(self, other):
        """Whether `other` is a trace this one is nested in (a branch or loop body being
        recorded inside it, see subtrace.py): values of `other` are then captured here."""
        trace = self.parent
        while trace is not None:
            if trace is other:
                return True
            trace = trace.parent
        return False

    def concrete(self, tracer):
        """Evaluate a traced value that depends only on constants and Variables' current values
        (how a Variable created inside a trace gets its initial value)."""
        producers = self.graph.producers()
        env = dict(self.graph.consts)
        env.update({var: variable.buffer for variable, var in self.graph.state})
        needed, stack = [], [tracer.var]
        while stack:
            var = stack.pop()
            if var in env or var in needed:
                continue
            if var not in producers:
                raise errors.ConcretizationError(errors.at_user_line(
                    'this value depends on the arguments of a compiled function, so it has no '
                    'concrete value while tracing (e.g. a Variable initialised from an input); '
                    'initialise it from constants or shapes instead'))
            needed.append(var)
            stack.extend(producers[var].inputs)
        for node in self.graph.nodes:
            if any(out in needed for out in node.outputs):
                results = node.prim.run(*(env[v] for v in node.inputs), **node.params)
                env.update(zip(node.outputs, results))
        return env[tracer.var]

    def finish(self, outputs):
        """Seal the graph with its outputs and the final value of every assigned Variable."""
        g = self.graph
        g.outputs = [self.to_var(o) for o in outputs]
        initial = {id(variable): var for variable, var in g.state}
        g.updates = [(variable, var) for key, (variable, var) in self.current.items()
                     if initial.get(key) is not var]
        return g


def current_trace():
    traces = _state.traces
    return traces[-1] if traces else None


@contextlib.contextmanager
def init_scope():
    """Run the block eagerly, outside any trace and unseen by gradient tapes (TensorFlow's
    init_scope): how initial values of Variables created while tracing are computed."""
    traces, tapes = list(_state.traces), list(_state.tapes)
    _state.traces[:], _state.tapes[:] = [], []
    try:
        yield
    finally:
        _state.traces[:], _state.tapes[:] = traces, tapes


def bind(prim, *args, **params):
    """Apply a primitive to operands (Tensor, Tracer or numpy arrays) eagerly or into a trace."""
    trace = None
    for a in args:
        if isinstance(a, Tracer):
            trace = a.trace
            if not trace.active:
                raise errors.LeakedTensorError(errors.at_user_line(
                    'a traced value was used after its compiled function finished tracing; '
                    'return it from the function instead of keeping a reference to it'))
            innermost = current_trace()
            if innermost is not trace and innermost is not None and innermost.encloses(trace):
                trace = innermost   # a value closed over by a branch or loop body
            break
    if trace is None and any(isinstance(a, Tensor) for a in args):
        innermost = current_trace()
        if innermost is not None and innermost.records_eager_ops():
            trace = innermost
    if trace is None:
        values = [a._value if isinstance(a, Tensor) else a for a in args]
        prim.check(*(ir.Var(v.shape, v.dtype) for v in values), **params)
        outs = [Tensor(r) for r in prim.run(*values, **params)]
    else:
        outs = trace.emit(prim, args, params)
    for tape in _state.tapes:
        tape.record(prim, args, params, outs)
    return outs[0] if len(outs) == 1 else outs


_CONVERSIONS = {}  # type -> function returning a Tensor or Tracer (see register_conversion)


def register_conversion(cls, convert):
    """Make `convert(value)` the tensor of every `cls` passed to an op (TF's
    register_tensor_conversion_function): how IndexedSlices convert to dense."""
    _CONVERSIONS[cls] = convert


def as_operand(value, what='value'):
    """Tensor, Tracer or numpy array for any tensor-like input; Variables are read."""
    if isinstance(value, (Tensor, Tracer)):
        return value
    if isinstance(value, TensorOps):  # the other kind of tensor: a Variable
        return value.value()
    if type(value) in _CONVERSIONS:
        return converted(value)
    return to_array(value, what)


def converted(value):
    """The tensor of a value of a registered type (see register_conversion), else `value`."""
    convert = _CONVERSIONS.get(type(value))
    return value if convert is None else convert(value)


def to_array(value, what='value', dtype=None):
    """A numpy array of a supported dtype; lists of tensors are read element by element."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, TensorOps) for v in _flat(value)):
        value = _materialise(value)
    if dtype is not None:
        array = np.asarray(value, dtype=dtypes.as_np_dtype(dtype))
    else:
        array = np.asarray(value)
        if (array.dtype == np.float64 and not isinstance(value, (np.ndarray, TensorOps))
                and _has_python_float(value)):   # a float64 Tensor keeps its dtype
            array = array.astype(dtypes.DEFAULT_FLOAT)
        elif array.dtype == np.int64 and not isinstance(value, (np.ndarray, np.generic)):
            array = array.astype(dtypes.DEFAULT_INT) if _fits_int32(array) else array
    array = dtypes.to_canonical(array, what)
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _flat(value):
    for v in value:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _materialise(value):
    if isinstance(value, (list, tuple)):
        return [_materialise(v) for v in value]
    if isinstance(value, TensorOps):
        return np.asarray(value.numpy())
    return value


def _has_python_float(value):
    if isinstance(value, (list, tuple)):
        return any(_has_python_float(v) for v in value)
    return not isinstance(value, np.generic) or isinstance(value, np.float32)


def _fits_int32(array):
    return array.size == 0 or (array.min() >= -2**31 and array.max() < 2**31)


def check_in_range(values, low, high, message):
    """Raise InvalidArgumentError(message, with the values' span) at the user's line unless
    every value lies in [low, high) (NaN does not)."""
    values = np.asarray(values)
    if values.size and not (values.min() >= low and values.max() < high):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{message}; got values from {values.min()} to {values.max()}'))


def in_branch():
    """Whether a branch or loop body is being recorded (a sub-graph, see subtrace.py). It may
    not run, or run with other values, so indices there are not range-checked before the call:
    the kernel checks a gather's indices when it runs it."""
    trace = current_trace()
    return trace is not None and trace.parent is not None


def require_in_range(value, low, high, message):
    """Indices and labels must lie in [low, high): a concrete `value` is checked now; a traced
    one that is an argument (or a reshape/cast of one), which is how they arrive, is checked by
    every call before it runs (the trace's guards). Computed values are not checked here (the
    kernel's own bounds check covers gathers), nor anything inside a branch or loop body."""
    if in_branch():
        return
    if isinstance(value, Tracer):
        position = value.trace.graph.input_position(value.var)
        if position is not None:
            value.trace.guards.append((position, low, high, message))
    elif isinstance(value, (Tensor, np.ndarray)):
        check_in_range(value, low, high, message)

"""Calls back into Python from a compiled step: the side effects of tj.print, py_function and
the run-time assertions.

A `HostCall` is the Python side of one `host_call` node: it declares its outputs' shapes and
dtypes (the IR's shapes are static) and checks that what the function returns matches them.
Generated kernels reach it by its token through `backend.hostcalls.invoke` inside a Numba
object-mode block; the token is passed in the kernel's integer constants, so kernels that
differ only in what they call back share one compiled kernel (and its disk cache entry).

Order: input 0 of every host call is the previous host call's first output in the same trace
(a constant before the first one), so the calls run in program order however the backend
groups the rest, and the passes never drop, merge or fold them (passes.py).
"""
import itertools
import weakref

import numpy as np

from . import errors
from .passes import has_effects
from .operands import dtype_of
from .primitives import REGISTRY
from .backend.hostcalls import register
from .tracing import Tracer

_last_call = weakref.WeakKeyDictionary()   # Trace -> first output of its latest host call
STATUS = (((), np.dtype(np.int64)),)       # the one output of a call that returns nothing


class HostCall:
    """`fn(list of numpy operands) -> list of outputs`, declared by `out_avals` [(shape, dtype)].
    With `guarded`, operand 0 is a bool scalar and `fn` runs only when it is False (assertions:
    the kernel then skips the call back entirely while the condition holds)."""

    def __init__(self, fn, out_avals=STATUS, name='host_call', guarded=False):
        self.fn, self.name, self.guarded = fn, name, guarded
        self.out_avals = tuple((tuple(shape), np.dtype(dtype)) for shape, dtype in out_avals)
        self.token = register(self)
        self.operand_dtypes = ()

    def __call__(self, operands):
        # a kernel hands 0-d operands over as Python scalars: give them back their dtypes
        operands = [np.asarray(v, dtype) if dtype is not None and np.ndim(v) == 0 else v
                    for v, dtype in itertools.zip_longest(operands, self.operand_dtypes)]
        if self.guarded and bool(operands[0]):
            return [np.zeros(shape, dtype) for shape, dtype in self.out_avals]
        results = self.fn(operands)
        if self.out_avals == STATUS and results is None:
            return [np.zeros((), np.int64)]
        return [self._checked(k, r) for k, r in enumerate(results)]

    def _checked(self, k, result):
        shape, dtype = self.out_avals[k]
        array = np.asarray(result, dtype, order='C')
        if array.shape != shape:
            raise errors.InvalidArgumentError(
                f'{self.name} returned an output {k} of shape {array.shape}, but the compiled '
                f'step was traced for shape {shape}; declare the shape it returns with '
                'Tout=tj.TensorSpec(shape, dtype)')
        return array

    def __str__(self):
        return self.name


def emit(trace, call, operands):
    """Record `call(operands)` in `trace` after its previous host call; the output tracers.
    In a branch or loop body (a sub-trace) the first call follows the enclosing level's last
    one (captured into the body, so the control-flow node depends on it); on the enclosing
    level, a call after such a body follows the control-flow node holding it."""
    order = _last_call.get(trace)
    if order is None and getattr(trace, 'parent', None) is not None:
        order = _enclosing_order(trace.parent)
    if trace in _bodies_with_calls:
        order = _after_bodies(trace, order)
    order = np.zeros((), np.int64) if order is None else order
    call.operand_dtypes = tuple(dtype_of(o) if hasattr(o, 'dtype') else None for o in operands)
    outs = trace.emit(REGISTRY['host_call'], [order, *operands], {'call': call})
    _last_call[trace] = outs[0]
    level = getattr(trace, 'parent', None)
    while level is not None:
        _bodies_with_calls.add(level)
        level = getattr(level, 'parent', None)
    return outs


_bodies_with_calls = weakref.WeakSet()   # traces whose control-flow nodes may hold host calls


def _enclosing_order(trace):
    while trace is not None:
        if trace in _last_call:
            return _last_call[trace]
        trace = getattr(trace, 'parent', None)
    return None


def _after_bodies(trace, order):
    """The first output of the latest node after `order`'s call that holds host calls in its
    sub-graphs (a cond or loop), else `order`."""
    last = order.var if isinstance(order, Tracer) else None
    for node in reversed(trace.graph.nodes):
        if last is not None and last in node.outputs:
            break
        if node.outputs and node.prim.kind != 'host' and has_effects(node):
            return Tracer(trace, node.outputs[0])
    return order

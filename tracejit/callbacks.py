"""Calls back into Python from a compiled step: the side effects of tj.print, py_function and
the run-time assertions.

A `HostCall` is the Python side of one `host_call` node: it declares its outputs' shapes and
dtypes (the IR's shapes are static) and checks that what the function returns matches them.
Generated kernels reach it through `invoke(token, operands)` inside a Numba object-mode block;
the token is passed in the kernel's integer constants, so kernels that differ only in what they
call back share one compiled kernel (and its disk cache entry).

Order: input 0 of every host call is the previous host call's first output in the same trace
(a constant before the first one), so the calls run in program order however the backend
groups the rest, and the passes never drop, merge or fold them (passes.py).
"""
import itertools
import weakref

import numpy as np

from . import errors
from .primitives import REGISTRY

_tokens = itertools.count(1)
_calls = weakref.WeakValueDictionary()     # token -> HostCall; graphs keep them alive
_last_call = weakref.WeakKeyDictionary()   # Trace -> first output of its latest host call
STATUS = (((), np.dtype(np.int64)),)       # the one output of a call that returns nothing


class HostCall:
    """`fn(list of numpy operands) -> list of outputs`, declared by `out_avals` [(shape, dtype)].
    With `guarded`, operand 0 is a bool scalar and `fn` runs only when it is False (assertions:
    the kernel then skips the call back entirely while the condition holds)."""

    def __init__(self, fn, out_avals=STATUS, name='host_call', guarded=False):
        self.fn, self.name, self.guarded = fn, name, guarded
        self.out_avals = tuple((tuple(shape), np.dtype(dtype)) for shape, dtype in out_avals)
        self.token = next(_tokens)
        _calls[self.token] = self

    def __call__(self, operands):
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


def invoke(token, operands):
    """Run host call `token` on a kernel's operands (the order input first, unused); the
    outputs as object mode wants them: C-contiguous arrays of the declared dtypes, Python
    scalars for 0-d outputs."""
    results = _calls[token](list(operands[1:]))
    return tuple(r if r.ndim else r[()] for r in results)


def emit(trace, call, operands):
    """Record `call(operands)` in `trace` after its previous host call; the output tracers."""
    if trace.branches:
        raise errors.UnimplementedError(errors.at_user_line(
            f'{call.name} inside a traced tj.cond branch: both branches of a traced cond are '
            'computed, so its side effect would happen whichever branch is taken; call it '
            'outside the cond, or make the condition a Python value'))
    order = _last_call.get(trace)
    order = np.zeros((), np.int64) if order is None else order
    outs = trace.emit(REGISTRY['host_call'], [order, *operands], {'call': call})
    _last_call[trace] = outs[0]
    return outs

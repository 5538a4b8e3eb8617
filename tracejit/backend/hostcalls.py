"""Code for `host_call` nodes: a Numba object-mode block that calls back into Python.

The block passes the node's operands (input 0 only orders the call, see callbacks.py) to
`K.host_invoke` with the call's token, read from the integer constants so that the source names
no particular call, and declares each output's Numba type. A guarded call (an assertion) sits
under `if not condition:`, so while the condition holds the step never leaves native code.
Steps without host calls contain no object-mode code at all.
"""
import numpy as np

from .blocks import np_type

_NUMBA_NAMES = {'bool': 'boolean'}


def numba_type(var):
    """The object-mode type annotation of a C-contiguous value of `var`'s type."""
    scalar = _NUMBA_NAMES.get(var.dtype.name, var.dtype.name)
    if var.ndim == 0:
        return scalar
    return f'{scalar}[{", ".join([":"] * (var.ndim - 1) + ["::1"])}]'


def unrelated_dims(node):
    """A host call's outputs have the shapes it declares, tied to no operand's axes."""
    return ()


def host_call(cg, node, name):
    call = node.params['call']
    names = [name] + [cg.fresh() for _ in node.outputs[1:]]
    for var, out in zip(node.outputs, names):
        if var.shape == ():
            cg.scalar[var] = out
        else:
            cg.names[var] = out
    token = cg.const_scalar(np.asarray(call.token, np.int64))
    operands = ''.join(f'{cg.ref(v)}, ' for v in node.inputs[1:])
    depth = 1
    if call.guarded:  # outputs of a guarded call are 0-d placeholders while it does not run
        for var, out in zip(node.outputs, names):
            cg.emit(f'{out} = {np_type(var.dtype)}(0)', defines=(out,))
        cg.emit(f'if not {cg.ref(node.inputs[1])}:')
        depth = 2
    types = ', '.join(f"{out}='{numba_type(var)}'" for var, out in zip(node.outputs, names))
    cg.emit(f'with numba.objmode({types}):', depth)
    cg.emit(f'{", ".join(names)}, = K.host_invoke({token}, ({operands}))', depth + 1,
            tuple(names))

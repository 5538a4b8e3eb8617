"""Code for `host_call` nodes: a Numba object-mode block that calls back into Python.

The block passes the node's operands (input 0 only orders the call, see callbacks.py) to
`K.host_invoke` with the call's token, read from the integer constants so that the source names
no particular call, and declares each output's Numba type. A guarded call (an assertion) sits
under `if not condition:`, so while the condition holds the step never leaves native code.
Steps without host calls contain no object-mode code at all.
"""
import itertools
import weakref

import numpy as np

from .blocks import np_type

_tokens = itertools.count(1)
_calls = weakref.WeakValueDictionary()     # token -> callbacks.HostCall; graphs keep them alive


def register(call):
    """A new token for `call` (a callbacks.HostCall), for kernels to name it by."""
    token = next(_tokens)
    _calls[token] = call
    return token


def invoke(token, operands):
    """Run host call `token` on a kernel's operands (the order input first, unused); the
    outputs as object mode wants them: C-contiguous arrays of the declared dtypes, Python
    scalars for 0-d outputs."""
    results = _calls[token](list(operands[1:]))
    return tuple(r if r.ndim else r[()] for r in results)

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
    # the order input goes in too: Numba refuses annotations of values nothing reads after
    # the block, so every output but those nothing reads is read, the order ones included
    operands = ''.join(f'{cg.ref(v)}, ' for v in node.inputs)
    read = [(var, out) for var, out in zip(node.outputs, names) if cg.readers.get(var)]
    targets = [out if cg.readers.get(var) else '_' for var, out in zip(node.outputs, names)]
    start = len(cg.block)
    depth = 1
    if call.guarded:  # outputs of a guarded call are 0-d placeholders while it does not run
        for var, out in read:
            cg.emit(f'{out} = {np_type(var.dtype)}(0)', defines=(out,))
        cg.emit(f'if not {cg.ref(node.inputs[1])}:')
        depth = 2
    types = ', '.join(f"{out}='{numba_type(var)}'" for var, out in read)
    cg.emit(f'with numba.objmode({types}):', depth)
    cg.emit(f'{", ".join(targets)}, = K.host_invoke({token}, ({operands}))', depth + 1,
            tuple(out for _, out in read))
    # a helper function of its own: Numba miscompiles a kernel body holding an object-mode
    # block after a conditional one ("Instruction does not dominate all uses")
    cg.extract_helper(start, [out for _, out in read])

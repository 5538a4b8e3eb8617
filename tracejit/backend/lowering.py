"""What each primitive needs from the backend, declared in one table.

A node is lowered one of two ways. *Looped* nodes (elementwise ops, sources, broadcasts) are
computed element by element inside a fused loop, as the text `expression` returns; *called*
nodes (BLAS matmuls, layout ops, gathers) are emitted on their own by `emit` (calls.py). A sum,
max or min reduction fuses into the loop of its operand, combining with `accumulate`, and is
called when it has nothing to loop over. `dims` unites the axes the primitive forces equal
(dims.py). `needs_index`: the expression reads the loop's multi-dimensional index, so its loop
cannot be flattened. `checks_indices`: the kernel checks the indices (input 1) and raises for
one out of range. `writes_base`: for each output, the position of the input it is with some
rows changed, which the codegen may write into that input's Variable buffer in place.
`raises`: the node may raise for any reason (a call back into Python).

An entry is found by the primitive's name, else by its kind: a new elementwise primitive needs
nothing here, since its registry template is its expression.
"""
import numpy as np

from . import calls, control, dims, hostcalls
from .blocks import np_type


class Lowering:
    """`views`: the result may be a view of operand 0's buffer (a read of it reads that
    buffer, so an in-place update of the operand must wait for it)."""

    def __init__(self, dims=None, expression=None, emit=None, accumulate=None,
                 needs_index=False, checks_indices=False, writes_base=(), raises=False,
                 views=False):
        self.dims, self.expression, self.emit = dims, expression, emit
        self.accumulate, self.needs_index = accumulate, needs_index
        self.checks_indices, self.writes_base, self.raises = checks_indices, writes_base, raises
        self.views = views

    @property
    def looped(self):
        return self.expression is not None


def template(node, operands, index, flat_index):
    """The registry's codegen template: {0}, {1}.. are the operands, {bits} '32' or '64' (the
    float width of the first operand), {dtype} the type named by the `dtype` parameter or the
    output's. Non-bool results are cast to the output type."""
    out = node.outputs[0]
    dtype = node.inputs[0].dtype if node.inputs else out.dtype
    bits = '32' if dtype == np.float32 else '64'
    expr = node.prim.codegen.format(*operands, bits=bits, dtype=np_type(node.params.get(
        'dtype', out.dtype)))
    return expr if out.dtype == np.bool_ else f'{np_type(out.dtype)}({expr})'


def _broadcast(node, operands, index, flat_index):
    return operands[0]  # the loop's indexing already repeats the operand


def _iota(node, operands, index, flat_index):
    return f'{np_type(node.outputs[0].dtype)}({index[node.params["axis"]]})'


def _random_uniform(node, operands, index, flat_index):
    bits = '32' if node.outputs[0].dtype == np.float32 else '64'
    return f'K.uniform{bits}({operands[0]}, {flat_index})'


BY_KIND = {'elementwise': Lowering(dims.aligned, template)}

BY_NAME = {
    'broadcast_to': Lowering(dims.aligned, _broadcast),
    'iota': Lowering(expression=_iota, needs_index=True),
    'random_uniform': Lowering(expression=_random_uniform),
    'reduce_sum': Lowering(dims.reduced, emit=calls.identity, accumulate='sum'),
    'reduce_max': Lowering(dims.reduced, emit=calls.identity, accumulate='max'),
    'reduce_min': Lowering(dims.reduced, emit=calls.identity, accumulate='min'),
    'argmax': Lowering(dims.reduced, emit=calls.argreduce(largest=True)),
    'argmin': Lowering(dims.reduced, emit=calls.argreduce(largest=False)),
    'matmul': Lowering(dims.matmul, emit=calls.matmul),
    'matmul_epilogue': Lowering(dims.matmul_epilogue, emit=calls.matmul_epilogue),
    'reshape': Lowering(dims.reshape, emit=calls.reshape, views=True),
    'transpose': Lowering(dims.transpose, emit=calls.transpose, views=True),
    'slice': Lowering(dims.full_slices, emit=calls.slice_, views=True),
    'unslice': Lowering(dims.full_slices, emit=calls.unslice),
    'concat': Lowering(dims.concat, emit=calls.concat),
    'gather': Lowering(dims.gather, emit=calls.gather, checks_indices=True),
    'gather_sum': Lowering(dims.gather_sum, emit=calls.gather_sum, checks_indices=True),
    'scatter_add': Lowering(dims.scatter_add, emit=calls.scatter_add),
    'log_softmax': Lowering(dims.aligned, emit=calls.log_softmax),
    'allreduce_sum': Lowering(dims.aligned, emit=calls.allreduce_sum),
    'im2col': Lowering(dims.batch_and_channels, emit=calls.im2col),
    'col2im': Lowering(dims.batch_and_channels, emit=calls.col2im),
    'matmul_col2im': Lowering(dims.matmul_col2im, emit=calls.matmul_col2im),
    'pool_grad_matmul': Lowering(dims.pool_grad_matmul, emit=calls.pool_grad_matmul),
    'pool_argmax': Lowering(dims.batch_and_channels, emit=calls.pool('pool_argmax')),
    'max_pool': Lowering(dims.batch_and_channels, emit=calls.pool('max_pool')),
    'max_pool_grad': Lowering(dims.pool_grad, emit=calls.max_pool_grad),
    'scatter_rows': Lowering(dims.scatter_rows, emit=calls.scatter_rows, checks_indices=True,
                             writes_base=(0,)),
    'sum_duplicates': Lowering(dims.sum_duplicates, emit=calls.sum_duplicates),
    'accumulate_rows': Lowering(dims.accumulate_rows, emit=calls.accumulate_rows,
                                checks_indices=True, writes_base=(0,)),
    'lazy_adam_rows': Lowering(dims.lazy_adam_rows, emit=calls.lazy_adam_rows,
                               checks_indices=True, writes_base=(0, 2, 3)),
    'host_call': Lowering(hostcalls.unrelated_dims, emit=hostcalls.host_call, raises=True),
    # control flow: sub-graphs emitted in place (control.py)
    'cond': Lowering(dims.independent, emit=control.cond),
    'while': Lowering(dims.independent, emit=control.while_loop),
    'scan': Lowering(dims.independent, emit=control.scan),
}


def lowering_of(prim):
    """The primitive's entry: by name, else by kind; KeyError names a primitive with neither."""
    entry = BY_NAME.get(prim.name) or BY_KIND.get(prim.kind)
    if entry is None:
        raise KeyError(f'primitive {prim.name!r} (kind {prim.kind!r}) has no lowering')
    return entry


def dims_rule(node):
    return lowering_of(node.prim).dims


def expression(node, operands, index, flat_index):
    """The text of a looped node's value, given its operands' texts and the loop index."""
    return lowering_of(node.prim).expression(node, operands, index, flat_index)

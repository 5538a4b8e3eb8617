"""Tensor fusion in place: each allreduce over other processes reduces a persistent buffer.

The buffer is an array argument of the kernel, allocated once per trace, so a step allocates
no array the size of its gradients: a fresh multi-MB array costs a page fault per 4 KiB page
whenever the allocator has handed the memory back to the system (W4's 2.5 MiB of gradients,
packed then received: 1300 faults, about 5 ms a step, fifteen times the MPI call). The concat
feeding the allreduce packs the gradients into it, a matmul's gradient is computed straight
into its slot (so it is not copied), MPI reduces the buffer in place and the optimizer reads
its slices. Values viewing the buffer are copied when they leave the kernel (Codegen.epilogue):
the next step overwrites it.
"""
import numpy as np

from .blocks import mark


class FusionBuffer:
    """One allreduce's buffer. `name`: the kernel parameter; `array`: what is passed for it;
    `pieces`: (value, offset) per value packed into it, in order; `by_concat`: the concat
    producing the allreduce's operand packs them (else the allreduce copies its operand)."""

    def __init__(self, name, array, pieces, by_concat):
        self.name, self.array, self.pieces, self.by_concat = name, array, pieces, by_concat

    def slot(self, cg, var, offset):
        """The expression for `var`'s place in the buffer, in `var`'s shape."""
        size = _size(var)
        return f'{self.name}[{offset}:{offset + size}].reshape({cg.shape(var)})'

    def pack(self, cg, sources):
        """Copy into the buffer every piece not already computed there. `sources`: the value
        each piece was computed as (its operand when it is a reshape of one)."""
        for var, offset in self.pieces:
            source = sources.get(var)
            if source is not None and cg.names.get(source) == self.slot(cg, source, offset):
                continue
            size = _size(var)
            array = _array(cg, var)
            cg.emit(f'K.copy_into({self.name}[{offset}:{offset + size}], '
                    f'np.ascontiguousarray({array}).reshape({size}))')


def _size(var):
    return int(np.prod(var.shape, dtype=np.int64))


def _array(cg, var):
    if var.shape == ():
        return f'np.full(1, {cg.ref(var)}, np.{np.dtype(var.dtype).name})'
    return cg.ref(var)


def plan(cg):
    """({allreduce operand: FusionBuffer}, {piece: the value it is a reshape of}) for the
    graph's allreduces over other processes. Sets `cg.out_target` of each matmul whose only
    use is to be packed, so it computes its result in its slot."""
    producers = cg.graph.producers()
    group_of = {id(node): g.index for g in cg.plan.groups for node in g.nodes}

    def only_reader(var, node):   # the node's group is the only one using var itself
        return cg.direct_readers.get(var, set()) == {group_of[id(node)]}
    buffers, sources = {}, {}
    for node in cg.graph.nodes:
        if node.prim.name != 'allreduce_sum' or node.params['comm'] == 0:
            continue
        x = node.inputs[0]
        concat = producers.get(x)
        by_concat = (concat is not None and concat.prim.name == 'concat'
                     and only_reader(x, node) and all(v.ndim == 1 for v in concat.inputs)
                     and len(set(concat.inputs)) == len(concat.inputs))
        parts = concat.inputs if by_concat else [x]
        offsets = np.cumsum([0] + [_size(v) for v in parts])
        name = mark(f'fb{len(buffers)}')
        pieces = [(v, int(o)) for v, o in zip(parts, offsets)]
        buffer = FusionBuffer(name, np.zeros(int(offsets[-1]), x.dtype), pieces, by_concat)
        buffers[x] = buffer
        for var, offset in pieces if by_concat else ():
            source = _matmul_source(producers, var, concat, only_reader)
            if source is not None:
                sources[var] = source
                cg.out_target[source] = buffer.slot(cg, source, offset)
    return buffers, sources


def _matmul_source(producers, var, concat, only_reader):
    """The matmul result `var` reshapes (or is), when packing is its only use."""
    reshape = producers.get(var)
    if reshape is None or not only_reader(var, concat):
        return None
    source = var
    if reshape.prim.name == 'reshape':
        source = reshape.inputs[0]
        if not only_reader(source, reshape):
            return None
    made_by = producers.get(source)
    if made_by is None or made_by.prim.name != 'matmul' or source.ndim != 2:
        return None
    return source

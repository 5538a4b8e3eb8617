"""Code for the nodes lowered on their own (`call` groups): BLAS matmuls and layout ops.

Each emitter writes statements that bind the node's output to `name`. Axis-generic ops view
their operand as (before, axis, after) so one helper in `kernels.py` serves every rank.
"""
import numpy as np

from . import mpi_library
from .blocks import FLOATS, INTS, np_type


def _slice_text(cg, slices, var):
    parts = []
    for k, ((start, stop, step), n) in enumerate(zip(slices, var.shape)):
        stop_text = '' if stop < 0 else cg.dim(var, k) if stop == n else str(stop)
        parts.append(f'{start}:{stop_text}:{step}')
    return ', '.join(parts)


def _three(cg, var, axis, span=1):
    """Sizes (before, axis extent, after) of `var` around axes [axis, axis + span)."""
    before = cg.size(var, range(axis))
    middle = cg.size(var, range(axis, axis + span))
    after = cg.size(var, range(axis + span, var.ndim))
    return before, middle, after


def _as_array(cg, var):
    """An expression for `var` as an array (0-d scalars become a 1-element array)."""
    if var.shape == ():
        return f'np.full(1, {cg.ref(var)}, {np_type(var.dtype)})'
    return cg.ref(var)


def _finish(cg, out, name, array):
    if out.shape == ():
        cg.emit(f'{name} = {array}.reshape(1)[0]')
    else:
        cg.emit(f'{name} = {array}.reshape({cg.shape(out)})')


def matmul(cg, node, name):
    a, b = node.inputs
    out = node.outputs[0]
    ta = '.T' if node.params['transpose_a'] else ''
    tb = '.T' if node.params['transpose_b'] else ''
    dot = 'dot' if out.dtype.kind == 'f' else 'dot_loops'
    target = cg.out_target.get(out)
    if out.ndim == 2 and dot == 'dot' and target is not None:   # a loop body's result buffer
        cg.emit(f'K.dot_into({cg.ref(a)}{ta}, {cg.ref(b)}{tb}, {target})')
        cg.names[out] = target
        return
    if out.ndim == 2:
        cg.emit(f'{name} = K.{dot}({cg.ref(a)}{ta}, {cg.ref(b)}{tb})')
        return
    batch = cg.size(out, range(out.ndim - 2))
    a3 = f'{cg.ref(a)}.reshape(({batch}, {cg.dim(a, -2)}, {cg.dim(a, -1)}))'
    b3 = f'{cg.ref(b)}.reshape(({batch}, {cg.dim(b, -2)}, {cg.dim(b, -1)}))'
    m, n = cg.dim(out, -2), cg.dim(out, -1)
    tmp_a, tmp_b, out3 = cg.fresh('m'), cg.fresh('m'), cg.fresh('m')
    cg.emit(f'{tmp_a} = {a3}')
    cg.emit(f'{tmp_b} = {b3}')
    cg.emit(f'{out3} = np.empty(({batch}, {m}, {n}), {np_type(out.dtype)})')
    cg.emit(f'for ib in range({batch}):')
    if dot == 'dot':
        cg.emit(f'K.dot_into({tmp_a}[ib]{ta}, {tmp_b}[ib]{tb}, {out3}[ib])', 2)
    else:
        cg.emit(f'{out3}[ib] = K.dot_loops({tmp_a}[ib]{ta}, {tmp_b}[ib]{tb})', 2)
    _finish(cg, out, name, out3)


def matmul_epilogue(cg, node, name):
    """A product with its epilogue (gemm.EPILOGUES) through K's helper for it."""
    a, b, extra = node.inputs
    out = node.outputs[0]
    ta = '.T' if node.params['transpose_a'] else ''
    tb = '.T' if node.params['transpose_b'] else ''
    epilogue = node.params['epilogue']
    helper, flag = ('dot_relu_mask_into', '') if epilogue == 'relu_mask' else (
        'dot_bias_into', f', {epilogue == "bias_relu"}')
    cg.emit(f'{name} = np.empty({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'K.{helper}({cg.ref(a)}{ta}, {cg.ref(b)}{tb}, '
            f'np.ascontiguousarray({cg.ref(extra)}), {name}{flag})')


def reshape(cg, node, name):
    x, out = node.inputs[0], node.outputs[0]
    if x.shape == ():
        cg.emit(f'{name} = np.full({cg.shape(out)}, {cg.ref(x)}, {np_type(x.dtype)})')
    elif out.shape == ():
        cg.emit(f'{name} = {cg.ref(x)}.reshape(1)[0]')
    else:
        cg.emit(f'{name} = np.ascontiguousarray({cg.ref(x)}).reshape({cg.shape(out)})')


def transpose(cg, node, name):
    perm = node.params['perm']
    cg.emit(f'{name} = np.ascontiguousarray(np.transpose({cg.ref(node.inputs[0])}, {perm}))')


def slice_(cg, node, name):
    x = node.inputs[0]
    if cg.defer_slice(node):
        return
    text = _slice_text(cg, node.params['slices'], x)
    cg.emit(f'{name} = np.ascontiguousarray({cg.ref(x)}[{text}])')


def unslice(cg, node, name):
    u, out = node.inputs[0], node.outputs[0]
    text = _slice_text(cg, node.params['slices'], out)
    cg.emit(f'{name} = np.zeros({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'{name}[{text}] = {cg.ref(u)}')


def concat(cg, node, name):
    out, axis = node.outputs[0], node.params['axis']
    buffer = cg.fusion_buffers.get(out)
    if buffer is not None and buffer.by_concat:   # packing an allreduce's fusion buffer
        buffer.pack(cg, cg.packed_sources)
        cg.emit(f'{name} = {buffer.name}')
        return
    target = cg.out_target.get(out)
    if target is None:
        parts = ''.join(f'{cg.ref(v)}, ' for v in node.inputs)
        cg.emit(f'{name} = np.concatenate(({parts}), axis={axis})')
        return
    # a loop body's result buffer (a stacked row, say): the parts are written straight into
    # it, each as (before, its columns) of one (before, all columns) view
    before = cg.size(out, range(axis))
    parts = ''.join(f'np.ascontiguousarray({cg.ref(v)}).reshape(({before}, '
                    f'{cg.size(v, range(axis, v.ndim))})), ' for v in node.inputs)
    cg.emit(f'K.concat_into(({parts}), {target}.reshape(({before}, '
            f'{cg.size(out, range(axis, out.ndim))})))')
    cg.names[out] = target


def gather(cg, node, name):
    x, idx = node.inputs
    out, axis = node.outputs[0], node.params['axis']
    before, n, after = _three(cg, x, axis)
    k = cg.size(idx)
    out3 = cg.fresh('g')
    cg.emit(f'{out3} = np.empty(({before}, {k}, {after}), {np_type(out.dtype)})')
    cg.emit(f'K.gather3(np.ascontiguousarray({cg.ref(x)}).reshape(({before}, {n}, {after})), '
            f'{_as_array(cg, idx)}.reshape({k}), {out3})')
    _finish(cg, out, name, out3)


def gather_sum(cg, node, name):
    x, idx = node.inputs
    out = node.outputs[0]
    bags, row = cg.size(idx, range(idx.ndim - 1)), cg.size(x, range(1, x.ndim))
    out2 = cg.fresh('g')
    cg.emit(f'{out2} = np.empty(({bags}, {row}), {np_type(out.dtype)})')
    cg.emit(f'K.gather_sum2(np.ascontiguousarray({cg.ref(x)}).reshape(({cg.dim(x, 0)}, {row})), '
            f'np.ascontiguousarray({cg.ref(idx)}).reshape(({bags}, {cg.dim(idx, idx.ndim - 1)})), '
            f'{out2})')
    _finish(cg, out, name, out2)


def scatter_add(cg, node, name):
    u, idx = node.inputs
    out, axis = node.outputs[0], node.params['axis']
    before, k, after = _three(cg, u, axis, idx.ndim)
    size = cg.dim(out, axis)
    out3 = cg.fresh('g')
    cg.emit(f'{out3} = np.zeros(({before}, {size}, {after}), {np_type(out.dtype)})')
    cg.emit(f'K.scatter_add3({_as_array(cg, u)}.reshape(({before}, {k}, {after})), '
            f'{_as_array(cg, idx)}.reshape({k}), {out3})')
    _finish(cg, out, name, out3)


def argreduce(largest):
    def emit(cg, node, name):
        x, out, axis = node.inputs[0], node.outputs[0], node.params['axis']
        before, n, after = _three(cg, x, axis)
        out2 = cg.fresh('g')
        cg.emit(f'{out2} = np.empty(({before}, {after}), np.int64)')
        cg.emit(f'K.argreduce3(np.ascontiguousarray({cg.ref(x)}).reshape(({before}, {n}, '
                f'{after})), {out2}, {largest})')
        _finish(cg, out, name, out2)
    return emit


def log_softmax(cg, node, name):
    x, out = node.inputs[0], node.outputs[0]
    rows, cols = cg.size(x, range(x.ndim - 1)), cg.dim(x, -1)
    out2 = cg.fresh('g')
    cg.emit(f'{out2} = np.empty(({rows}, {cols}), {np_type(out.dtype)})')
    helper = 'log_softmax_rows32' if x.dtype == np.float32 else 'log_softmax_rows'
    cg.emit(f'K.{helper}(np.ascontiguousarray({cg.ref(x)}).reshape(({rows}, {cols})), {out2})')
    _finish(cg, out, name, out2)


def identity(cg, node, name):
    """A reduction over no axes of a 0-d value."""
    cg.emit(f'{name} = {cg.ref(node.inputs[0])}')



def allreduce_sum(cg, node, name):
    """The sum over MPI processes, by mpi_kernels.allreduce_sum from inside the kernel, in
    place in the operand's persistent fusion buffer (fusion_buffers.py). The library's function
    pointers, the handles and the deadline are per-process constants read from `ic`/`fc`, so
    the source stays the same in every process (communicator 0: this process alone, a copy)."""
    x, out = node.inputs[0], node.outputs[0]
    if node.params['comm'] == 0:
        recv = cg.fresh('m')
        cg.emit(f'{recv} = np.ascontiguousarray({_as_array(cg, x)}).reshape({cg.size(x)}).copy()')
        _finish(cg, out, name, recv)
        return
    buffer = cg.fusion_buffers[x]
    if not buffer.by_concat:
        buffer.pack(cg, {})
    base = len(cg.iconsts)
    cg.iconsts.extend(mpi_library.function_addresses() + mpi_library.sum_handles(out.dtype)
                      + [node.params['comm']])
    cg.fconsts.append(node.params['timeout'])
    fns, handles = f'{INTS}[{base}:{base + 5}]', f'{INTS}[{base + 5}:{base + 8}]'
    cg.emit(f'K.allreduce_sum{mpi_library.handle_bits()}({buffer.name}, {fns}, {handles}, '
            f'{FLOATS}[{len(cg.fconsts) - 1}])')
    cg.buffer_views.add(out)
    _finish(cg, out, name, buffer.name)


def _window_args(node):
    """The literal stride, dilation and SAME-flag arguments of a window helper."""
    p = node.params
    dilations = p.get('dilations', (1, 1))
    return (f'{p["strides"][0]}, {p["strides"][1]}, {dilations[0]}, {dilations[1]}, '
            f'{p["padding"] == "SAME"}')


def im2col(cg, node, name):
    x, out = node.inputs[0], node.outputs[0]
    cg.emit(f'{name} = np.empty({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'K.im2col(np.ascontiguousarray({cg.ref(x)}), {name}, {_window_args(node)})')


def col2im(cg, node, name):
    u, out = node.inputs[0], node.outputs[0]
    cg.emit(f'{name} = np.zeros({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'K.col2im(np.ascontiguousarray({cg.ref(u)}), {name}, {_window_args(node)})')


def matmul_col2im(cg, node, name):
    a, b = node.inputs
    out = node.outputs[0]
    (kh, kw), tb = node.params['ksize'], '.T' if node.params['transpose_b'] else ''
    cg.emit(f'{name} = np.zeros({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'K.dot_col2im(np.ascontiguousarray({cg.ref(a)}), {cg.ref(b)}{tb}, {name}, {kh}, '
            f'{kw}, {_window_args(node)})')


def pool_grad_matmul(cg, node, name):
    a, ct, x = node.inputs
    out = node.outputs[0]
    (kh, kw), (sh, sw) = node.params['ksize'], node.params['strides']
    cg.emit(f'{name} = np.zeros({cg.shape(out)}, {np_type(out.dtype)})')
    cg.emit(f'K.pool_grad_dot(np.ascontiguousarray({cg.ref(a)}), '
            f'np.ascontiguousarray({cg.ref(ct)}), np.ascontiguousarray({cg.ref(x)}), {name}, '
            f'{kh}, {kw}, {sh}, {sw}, {node.params["padding"] == "SAME"})')


def pool(helper):
    """max_pool (the window maxima) or pool_argmax (their flat indices) through `K.<helper>`."""
    def emit(cg, node, name):
        x, out = node.inputs[0], node.outputs[0]
        (kh, kw), (sh, sw) = node.params['ksize'], node.params['strides']
        cg.emit(f'{name} = np.empty({cg.shape(out)}, {np_type(out.dtype)})')
        cg.emit(f'K.{helper}(np.ascontiguousarray({cg.ref(x)}), {name}, {kh}, {kw}, {sh}, {sw}, '
                f'{node.params["padding"] == "SAME"})')
    return emit


def max_pool_grad(cg, node, name):
    ct, x = node.inputs
    (kh, kw), (sh, sw) = node.params['ksize'], node.params['strides']
    cg.emit(f'{name} = np.empty({cg.shape(node.outputs[0])}, '
            f'{np_type(node.outputs[0].dtype)})')
    cg.emit(f'K.max_pool_grad(np.ascontiguousarray({cg.ref(ct)}), '
            f'np.ascontiguousarray({cg.ref(x)}), {name}, {kh}, {kw}, {sh}, {sw}, '
            f'{node.params["padding"] == "SAME"})')


SCATTER_MODES = {'update': 0, 'add': 1, 'max': 2, 'min': 3}  # kernels.scatter_rows2's codes


def scatter_rows(cg, node, name):
    """Rows written into a copy of the base, or into the Variable's own buffer when the
    codegen found that legal (cg.inplace: nothing reads the old value afterwards)."""
    base, idx, upd = node.inputs
    depth = node.params['depth']
    rows, row = cg.size(base, range(depth)), cg.size(base, range(depth, base.ndim))
    k = cg.size(idx)
    target = cg.inplace.get(node.outputs[0])
    cg.emit(f'{name} = {target}' if target is not None else f'{name} = {cg.ref(base)}.copy()')
    cg.emit(f'K.scatter_rows2({name}.reshape(({rows}, {row})), {cg.ref(idx)}.reshape({k}), '
            f'np.ascontiguousarray({cg.ref(upd)}).reshape(({k}, {row})), '
            f'{SCATTER_MODES[node.params["mode"]]})')


def _row_table(cg, base, out, name):
    """`out` (`base` with rows changed) viewed as (rows, row): the Variable's own buffer when
    the codegen found that legal (cg.inplace), else a copy of `base`."""
    target = cg.inplace.get(out)
    cg.emit(f'{name} = {target}' if target is not None else f'{name} = {cg.ref(base)}.copy()')
    return f'{name}.reshape(({cg.size(base, range(1))}, {cg.size(base, range(1, base.ndim))}))'


def _rows_of(cg, value, like):
    return (f'np.ascontiguousarray({cg.ref(value)}).reshape(({cg.size(value, range(1))}, '
            f'{cg.size(like, range(1, like.ndim))}))')


def _repeat(cg, idx, values):
    """How many indices share each row of values, read from the sizes at run time (a literal
    would make a new kernel for each sequence length)."""
    rows = cg.size(values, range(1))
    return f'{cg.size(idx)} // max(1, {rows})'


def accumulate_rows(cg, node, name):
    base, idx, values, scale = node.inputs
    table = _row_table(cg, base, node.outputs[0], name)
    cg.emit(f'K.accumulate_rows2({table}, {cg.ref(idx)}.reshape({cg.size(idx)}), '
            f'{_rows_of(cg, values, base)}, {_repeat(cg, idx, values)}, '
            f'{np_type(base.dtype)}({node.params["decay"]!r}), {cg.ref(scale)}, '
            f'{node.params["power"]})')


def lazy_adam_rows(cg, node, name):
    var, idx, m, v, values, lr = node.inputs
    kind = np_type(var.dtype)
    tables = []
    for k, (base, out) in enumerate(zip((var, m, v), node.outputs)):
        table = name if k == 0 else cg.fresh()
        cg.names[out] = table
        tables.append(_row_table(cg, base, out, table))
    b1, b2 = node.params['beta_1'], node.params['beta_2']
    cg.emit(f'K.lazy_adam_rows2({", ".join(tables)}, {cg.ref(idx)}.reshape({cg.size(idx)}), '
            f'{_rows_of(cg, values, var)}, {_repeat(cg, idx, values)}, {kind}({b1!r}), '
            f'{kind}({1.0 - b1!r}), {kind}({b2!r}), {kind}({1.0 - b2!r}), {cg.ref(lr)}, '
            f'{kind}({node.params["epsilon"]!r}))')


def sum_duplicates(cg, node, name):
    u, idx = node.inputs
    out = node.outputs[0]
    k, row = cg.size(u, range(1)), cg.size(u, range(1, u.ndim))
    out2 = cg.fresh('g')
    cg.emit(f'{out2} = np.empty(({k}, {row}), {np_type(out.dtype)})')
    cg.emit(f'K.sum_duplicates2(np.ascontiguousarray({cg.ref(u)}).reshape(({k}, {row})), '
            f'{cg.ref(idx)}.reshape({k}), {out2})')
    _finish(cg, out, name, out2)

"""Intrinsics for the row-wise work of embedding tables: rows summed in vector registers, rows
added in place, rows prefetched.

`sum_rows` adds up the rows an index list picks with the partial sums held in registers for the
whole list. Written as a Numba loop, the sums live in memory (the output may alias the table, so
LLVM cannot keep them in registers) and every added row costs a store and a reload of each
vector: W9's bag sums (128 sequences of 100 ids, 64 float32 columns) took ~100 us that way,
~60 us this way. The lanes add in the list's order from zero: bitwise the loop's sums.

`add_row` is out[s] += x[r] as whole-register loads and stores, without the alias checks and
remainder loop that a vectorised Numba loop runs for every row: the scatter of W9's 12,800
gradient rows into their ~3,260 sums fell from ~80 to ~60 us (zero fill included).

`prefetch_row_for_write` asks for a row's cache lines ahead of use: the sparse optimizers visit
their distinct rows in an order no hardware prefetcher can guess.
"""
import llvmlite.ir as ir
import numba
from numba import types
from numba.extending import intrinsic, overload

from .gemm import VECTOR_BYTES, declare

SUM_VECTORS = 4        # accumulators: a 64-column float32 row in one pass
CHUNK_BYTES = SUM_VECTORS * VECTOR_BYTES
LINE_BYTES = 64
_i1, _i8, _i32, _i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)


def _row_pointer(builder, arr, row, col_bytes):
    """The byte address of arr[row] plus col_bytes (2-D array, any row stride)."""
    row_stride = builder.extract_value(arr.strides, 0)
    data = builder.bitcast(arr.data, _i8.as_pointer())
    return builder.gep(data, [builder.add(builder.mul(row, row_stride), col_bytes)])


def _masked_ops(context, builder, dtype):
    """(vector type, lanes, alignment, masked load, masked store) for one register of dtype."""
    scalar = context.get_value_type(dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vec = ir.VectorType(scalar, lanes)
    vptr, mask_type = vec.as_pointer(), ir.VectorType(_i1, lanes)
    suffix = f'v{lanes}f{itemsize * 8}'
    mload = declare(builder.module, f'llvm.masked.load.{suffix}.p0', vec,
                     [vptr, _i32, mask_type, vec])
    mstore = declare(builder.module, f'llvm.masked.store.{suffix}.p0', ir.VoidType(),
                      [vec, vptr, _i32, mask_type])
    return vec, lanes, _i32(itemsize), mload, mstore


def _vector_at(builder, address, v, vec):
    """The v-th register-sized vector from byte address `address`."""
    return builder.bitcast(builder.gep(address, [_i64(v * VECTOR_BYTES)]), vec.as_pointer())


def _is_table(x):
    return isinstance(x, types.Array) and x.ndim == 2 and x.dtype in (types.float32,
                                                                       types.float64)


def _lane_mask(builder, count, lanes):
    """The <lanes x i1> mask of the first `count` lanes (clamped to 0..lanes), made from an
    integer: vector compares rematerialised in the loop cost more than its adds."""
    count = builder.select(builder.icmp_signed('<', count, _i64(0)), _i64(0), count)
    count = builder.select(builder.icmp_signed('>', count, _i64(lanes)), _i64(lanes), count)
    bits = builder.sub(builder.shl(_i64(1), count), _i64(1))
    return builder.bitcast(builder.trunc(bits, ir.IntType(lanes)), ir.VectorType(_i1, lanes))


@intrinsic
def _sum_chunk(typingctx, x, index, start, stop, c0, cols, out):
    """out[c0:c0+cols] = x[index[start], c0:c0+cols] + ... + x[index[stop-1], c0:c0+cols],
    added in that order from zero; a negative index counts from the end (already range-checked).
    x: 2-D with unit-stride rows; index: 1-D integers; out: 1-D, unit stride, x's dtype;
    cols <= CHUNK_BYTES // itemsize."""
    if not (_is_table(x) and isinstance(out, types.Array) and out.ndim == 1
            and out.dtype == x.dtype and isinstance(index, types.Array) and index.ndim == 1
            and isinstance(index.dtype, types.Integer)):
        return None
    sig = types.void(x, index, types.intp, types.intp, types.intp, types.intp, out)

    def codegen(context, builder, signature, args):
        vec, lanes, align, mload, mstore = _masked_ops(context, builder, x.dtype)
        x_arr, index_arr, out_arr = (context.make_array(t)(context, builder, v) for t, v in
                                     zip((x, index, out), (args[0], args[1], args[6])))
        start, stop, c0, cols = args[2:6]
        rows = builder.extract_value(x_arr.shape, 0)
        index_stride = builder.extract_value(index_arr.strides, 0)
        index_data = builder.bitcast(index_arr.data, _i8.as_pointer())
        index_type = context.get_value_type(index.dtype)
        masks = [_lane_mask(builder, builder.sub(cols, _i64(v * lanes)), lanes)
                 for v in range(SUM_VECTORS)]
        zero = ir.Constant(vec, [0.0] * lanes)
        col_bytes = builder.mul(c0, _i64(VECTOR_BYTES // lanes))

        entry = builder.block
        header = builder.append_basic_block('sum_rows.header')
        body = builder.append_basic_block('sum_rows.body')
        done = builder.append_basic_block('sum_rows.done')
        builder.branch(header)
        builder.position_at_end(header)
        p = builder.phi(_i64)
        p.add_incoming(start, entry)
        acc = [builder.phi(vec) for _ in range(SUM_VECTORS)]
        for phi in acc:
            phi.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed('<', p, stop), body, done)

        builder.position_at_end(body)
        slot = builder.gep(index_data, [builder.mul(p, index_stride)])
        k = builder.load(builder.bitcast(slot, index_type.as_pointer()))
        k = builder.sext(k, _i64) if index.dtype.signed else builder.zext(k, _i64)
        k = builder.select(builder.icmp_signed('<', k, _i64(0)), builder.add(k, rows), k)
        row = _row_pointer(builder, x_arr, k, col_bytes)
        for v in range(SUM_VECTORS):
            loaded = builder.call(mload, [_vector_at(builder, row, v, vec), align, masks[v], zero])
            acc[v].add_incoming(builder.fadd(acc[v], loaded), body)
        p.add_incoming(builder.add(p, _i64(1)), body)
        builder.branch(header)

        builder.position_at_end(done)
        target = builder.gep(builder.bitcast(out_arr.data, _i8.as_pointer()), [col_bytes])
        for v in range(SUM_VECTORS):
            builder.call(mstore, [acc[v], _vector_at(builder, target, v, vec), align, masks[v]])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _add_chunk(typingctx, x, r, out, s, c0, cols):
    """out[s, c0:c0+cols] += x[r, c0:c0+cols]. x, out: 2-D, unit-stride rows, one dtype;
    cols <= CHUNK_BYTES // itemsize. Whole chunks use plain loads and stores: a masked store
    does not forward to the next load of the row, and a scatter of sums reloads its hot rows at
    once."""
    if not (_is_table(x) and _is_table(out) and out.dtype == x.dtype):
        return None
    sig = types.void(x, types.intp, out, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        vec, lanes, align, mload, mstore = _masked_ops(context, builder, x.dtype)
        x_arr, out_arr = (context.make_array(t)(context, builder, v)
                          for t, v in ((x, args[0]), (out, args[2])))
        r, s, c0, cols = args[1], args[3], args[4], args[5]
        col_bytes = builder.mul(c0, _i64(VECTOR_BYTES // lanes))
        source = _row_pointer(builder, x_arr, r, col_bytes)
        target = _row_pointer(builder, out_arr, s, col_bytes)
        zero = ir.Constant(vec, [0.0] * lanes)
        full = builder.icmp_signed('==', cols, _i64(SUM_VECTORS * lanes))
        with builder.if_else(full) as (whole, part):
            with whole:
                for v in range(SUM_VECTORS):
                    old = builder.load(_vector_at(builder, target, v, vec), align=align.constant)
                    new = builder.load(_vector_at(builder, source, v, vec), align=align.constant)
                    builder.store(builder.fadd(old, new), _vector_at(builder, target, v, vec),
                                  align=align.constant)
            with part:
                for v in range(SUM_VECTORS):
                    mask = _lane_mask(builder, builder.sub(cols, _i64(v * lanes)), lanes)
                    old = builder.call(mload, [_vector_at(builder, target, v, vec), align, mask,
                                               zero])
                    new = builder.call(mload, [_vector_at(builder, source, v, vec), align, mask,
                                               zero])
                    builder.call(mstore, [builder.fadd(old, new),
                                          _vector_at(builder, target, v, vec), align, mask])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _prefetch_line(typingctx, x, row, offset):
    """Prefetch, for writing, the cache line holding byte `offset` of x[row] (2-D array)."""
    if not (isinstance(x, types.Array) and x.ndim == 2):
        return None
    sig = types.void(x, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        arr = context.make_array(x)(context, builder, args[0])
        prefetch = declare(builder.module, 'llvm.prefetch.p0', ir.VoidType(),
                            [_i8.as_pointer(), _i32, _i32, _i32])
        # write, keep in all cache levels, data
        builder.call(prefetch, [_row_pointer(builder, arr, args[1], args[2]), _i32(1), _i32(3),
                                _i32(1)])
        return context.get_dummy_value()
    return sig, codegen


_jit = numba.njit(inline='always', error_model='numpy')


@_jit
def _check_rows(x):
    """The intrinsics step through a row one element size at a time."""
    if x.shape[-1] > 1 and x.strides[-1] != x.itemsize:
        raise ValueError('rowops: rows must be unit-stride')


def _in_registers(x, out):
    """Whether the intrinsics serve these arrays' types (float tables); others take a loop."""
    return _is_table(x) and out.dtype == x.dtype


def sum_rows(x, index, start, stop, out):
    """out[:] = x[index[start]] + ... + x[index[stop - 1]], added in that order from zero (a
    negative index counts from the end; indices already range-checked). x: 2-D, unit-stride
    rows; out: 1-D, unit stride, x's dtype. For compiled code only."""
    raise NotImplementedError('rowops.sum_rows is called from compiled code')


@overload(sum_rows, inline='always')
def _sum_rows(x, index, start, stop, out):
    if not _in_registers(x, out):
        def loop(x, index, start, stop, out):
            n = x.shape[0]
            out[:] = 0
            for p in range(start, stop):
                k = index[p]
                row = x[k + n if k < 0 else k]
                for c in range(x.shape[1]):
                    out[c] += row[c]
        return loop

    def in_registers(x, index, start, stop, out):
        _check_rows(x)
        _check_rows(out)
        m, chunk = x.shape[1], CHUNK_BYTES // x.itemsize
        if m == chunk:  # a constant chunk: the masks fold away
            _sum_chunk(x, index, start, stop, 0, chunk, out)
        else:
            for c0 in range(0, m, chunk):
                _sum_chunk(x, index, start, stop, c0, min(chunk, m - c0), out)
    return in_registers


def add_row(x, r, out, s):
    """out[s] += x[r] (2-D, unit-stride rows, one dtype; r and s in range). For compiled code
    only."""
    raise NotImplementedError('rowops.add_row is called from compiled code')


@overload(add_row, inline='always')
def _add_row(x, r, out, s):
    if not _in_registers(x, out):
        def loop(x, r, out, s):
            for c in range(x.shape[1]):
                out[s, c] += x[r, c]
        return loop

    def in_registers(x, r, out, s):
        _check_rows(x)
        _check_rows(out)
        m, chunk = x.shape[1], CHUNK_BYTES // x.itemsize
        if m == chunk:
            _add_chunk(x, r, out, s, 0, chunk)
        else:
            for c0 in range(0, m, chunk):
                _add_chunk(x, r, out, s, c0, min(chunk, m - c0))
    return in_registers


@_jit
def prefetch_row_for_write(x, row):
    """Prefetch every cache line of x[row] (2-D, unit-stride rows) for writing."""
    for offset in range(0, x.shape[1] * x.itemsize, LINE_BYTES):
        _prefetch_line(x, row, offset)

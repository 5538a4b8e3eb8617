"""A register-tiled matrix product for the small products a training step is made of.

OpenBLAS reaches ~72% of this machine's FMA peak on a 256x512x512 product but ~50% on the
128x64x128 ones of a small MLP or an LSTM cell, where its packing and blocking cost as much as
the arithmetic. `gemm_into` skips both: each tile of `rows` x `vectors` SIMD vectors of the
output is summed in registers over the whole inner axis (rows * vectors accumulators, one FMA
each per step), reading the left operand's elements as broadcasts at any strides and the right
operand's rows as vector loads. Measured single-threaded (us, numpy's OpenBLAS alongside):
x@W 128x64x128 15.0 (20.3), x.T@d 17.7 (18.8), d@W.T 128x10x128 3.9 (4.4). A last column panel
of at most one vector runs in tiles one vector wide (half the FMAs of a masked two-vector tile):
an MLP's logits 128x128x10 2.8 us against OpenBLAS's 5.8, their weight gradient (x.T @ d) 3.1
against 8.8. Tiles are up to 12 rows high,
so a short output is one pass over the operands at any inner length: a convolution's filter
gradient (9 x 86528) @ (86528 x 32) took 0.48 ms against 0.96 in two passes of 8-row tiles.

The tile is an intrinsic: Numba has no vector type, and written as loops the accumulators would
live in memory (the output may alias the operands, so LLVM cannot keep them in registers).
"""
import llvmlite.ir as ir
import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

VECTOR_BYTES = 64          # one AVX-512 register; LLVM splits it on narrower machines
TILE_ROWS = 12             # rows x TILE_VECTORS accumulators: 24 of the 32 vector registers
TILE_VECTORS = 2
# Rows of `a` that pass through every column panel before the next rows: re-read from L1/L2,
# not from memory once per panel. W8's (15488 x 64) @ (64 x 288), nine panels: 4.4 ms against
# 5.5 panel by panel (768-row blocks: 5.0); (15488 x 288) @ (288 x 64): 4.2 against 4.4.
BLOCK_ROWS = 8 * TILE_ROWS
# One or two rows are matrix-vector products, where OpenBLAS reads the right operand row by row
# and gemm by panels two vectors wide: (1 x 256) @ (256 x 1024) 12.8 us against gemm's 21.6.
MIN_ROWS = 3
# One column is a matrix-vector product too: 128x128x1 0.95 us in OpenBLAS against 2.7 here.
MIN_COLS = 2
_i32, _i64 = ir.IntType(32), ir.IntType(64)


def declare(module, name, ret, args):
    """The LLVM function `name` (an intrinsic such as llvm.fma.v16f32) declared in module once."""
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, ir.FunctionType(ret, args), name=name)


def _no_unroll(module):
    """A new loop ID asking LLVM not to unroll the loop: a tile's body is already rows x
    vectors FMAs long, and unrolling every height doubled the IR (and the compile time) of
    each product for nothing. A loop ID is a node whose first operand is itself."""
    disable = module.add_metadata([ir.MetaDataString(module, 'llvm.loop.unroll.disable')])
    loop_id = ir.values.MDValue(module, [disable], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, disable)
    return loop_id


def _splat(builder, value, lanes):
    vector = builder.insert_element(ir.Constant(ir.VectorType(value.type, lanes), ir.Undefined),
                                    value, _i32(0))
    return builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(_i32, lanes),
                                                              [0] * lanes))


def _tile_intrinsic(vectors, epilogue=None):
    """tile(a, b, out, extra, i0, j0, cols, rows): out[i0:i0+rows, j0:j0+cols] = a[i0:i0+rows]
    @ b[:, j0:j0+cols] for 1 <= rows <= TILE_ROWS and cols <= vectors * lanes, b's, out's and
    extra's rows unit-stride, with `epilogue` applied to the accumulators before they are
    stored (see EPILOGUES; `extra` is its operand, unread without one). Each height is its own
    loop (rows x vectors accumulators), chosen by a switch."""
    @intrinsic
    def tile(typingctx, a, b, out, extra, i0, j0, cols, rows):
        if not (a.dtype == b.dtype == out.dtype == extra.dtype
                and a.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(a, b, out, extra, types.intp, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            scalar = context.get_value_type(a.dtype)
            lanes = VECTOR_BYTES // context.get_abi_sizeof(scalar)
            vec = ir.VectorType(scalar, lanes)
            vptr, mask_type = vec.as_pointer(), ir.VectorType(ir.IntType(1), lanes)
            suffix = f'v{lanes}f{context.get_abi_sizeof(scalar) * 8}'
            mload = declare(builder.module, f'llvm.masked.load.{suffix}.p0', vec,
                             [vptr, _i32, mask_type, vec])
            mstore = declare(builder.module, f'llvm.masked.store.{suffix}.p0', ir.VoidType(),
                              [vec, vptr, _i32, mask_type])
            fma = declare(builder.module, f'llvm.fma.{suffix}', vec, [vec, vec, vec])
            arrays = [context.make_array(t)(context, builder, v)
                      for t, v in zip(signature.args[:4], args[:4])]
            a_arr, b_arr, out_arr, extra_arr = arrays
            i0, j0, cols, rows = args[4:]
            inner = builder.extract_value(a_arr.shape, 1)
            a_row, a_col = (builder.extract_value(a_arr.strides, d) for d in (0, 1))
            b_row = builder.extract_value(b_arr.strides, 0)
            out_row = builder.extract_value(out_arr.strides, 0)
            extra_row = builder.extract_value(extra_arr.strides, 0)
            byte = ir.IntType(8).as_pointer()
            a_data, b_data, out_data, extra_data = (builder.bitcast(x.data, byte) for x in arrays)
            itemsize = _i64(context.get_abi_sizeof(scalar))
            col_bytes = builder.mul(j0, itemsize)
            cols_splat = _splat(builder, cols, lanes)
            masks = [builder.icmp_signed('<', ir.Constant(ir.VectorType(_i64, lanes),
                                                          [v * lanes + i for i in range(lanes)]),
                                         cols_splat) for v in range(vectors)]
            zero = ir.Constant(vec, [0.0] * lanes)
            align = _i32(context.get_abi_sizeof(scalar))

            def vector_at(base, offset, v):
                address = builder.gep(base, [builder.add(offset, _i64(v * VECTOR_BYTES))])
                return builder.bitcast(address, vptr)

            def operands(r):
                """The epilogue's operand vectors for row i0 + r (a bias: any row)."""
                offset = col_bytes if epilogue != 'relu_mask' else builder.add(
                    builder.mul(builder.add(i0, _i64(r)), extra_row), col_bytes)
                return [builder.call(mload, [vector_at(extra_data, offset, v), align,
                                             masks[v], zero]) for v in range(vectors)]

            def finished(acc, operand):
                """An accumulator after the epilogue, given its operand vector."""
                if epilogue is None:
                    return acc
                if epilogue == 'relu_mask':   # relu's gradient: 0 where its output is not > 0
                    return builder.select(builder.fcmp_ordered('>', operand, zero), acc, zero)
                acc = builder.fadd(acc, operand)
                if epilogue == 'bias_relu':   # np.maximum(x, 0): NaN stays NaN
                    return builder.select(builder.fcmp_ordered('<', acc, zero), zero, acc)
                return acc

            def height(count, finish):
                """The loop for a tile of `count` rows, from the current block to `finish`."""
                entry = builder.block
                header = builder.append_basic_block(f'tile{count}.header')
                body = builder.append_basic_block(f'tile{count}.body')
                done = builder.append_basic_block(f'tile{count}.done')
                builder.branch(header)
                builder.position_at_end(header)
                k = builder.phi(_i64)
                k.add_incoming(_i64(0), entry)
                acc = [[builder.phi(vec) for _ in range(vectors)] for _ in range(count)]
                for row in acc:
                    for phi in row:
                        phi.add_incoming(zero, entry)
                builder.cbranch(builder.icmp_signed('<', k, inner), body, done)

                builder.position_at_end(body)
                b_offset = builder.add(builder.mul(k, b_row), col_bytes)
                b_vectors = [builder.call(mload, [vector_at(b_data, b_offset, v), align,
                                                  masks[v], zero]) for v in range(vectors)]
                a_k = builder.mul(k, a_col)
                for r in range(count):
                    a_offset = builder.add(builder.mul(builder.add(i0, _i64(r)), a_row), a_k)
                    address = builder.bitcast(builder.gep(a_data, [a_offset]),
                                              scalar.as_pointer())
                    a_splat = _splat(builder, builder.load(address), lanes)
                    for v in range(vectors):
                        acc[r][v].add_incoming(
                            builder.call(fma, [a_splat, b_vectors[v], acc[r][v]]), body)
                k.add_incoming(builder.add(k, _i64(1)), body)
                builder.branch(header).set_metadata('llvm.loop', _no_unroll(builder.module))

                builder.position_at_end(done)
                # a bias row is loaded once per tile (the stores may alias it: LLVM would not
                # merge its loads); a mask has a row per output row
                bias = operands(0) if epilogue in ('bias', 'bias_relu') else None
                for r in range(count):
                    out_offset = builder.add(builder.mul(builder.add(i0, _i64(r)), out_row),
                                             col_bytes)
                    row = bias or (operands(r) if epilogue else [None] * vectors)
                    for v in range(vectors):
                        builder.call(mstore, [finished(acc[r][v], row[v]),
                                              vector_at(out_data, out_offset, v), align,
                                              masks[v]])
                builder.branch(finish)

            finish = builder.append_basic_block('tile.finish')
            switch = builder.switch(rows, finish)
            for count in range(1, TILE_ROWS + 1):
                case = builder.append_basic_block(f'tile{count}')
                switch.add_case(_i64(count), case)
                builder.position_at_end(case)
                height(count, finish)
            builder.position_at_end(finish)
            return context.get_dummy_value()
        return sig, codegen
    return tile


_jit = numba.njit(inline='always', error_model='numpy')


@_jit
def _lanes(a):
    return VECTOR_BYTES // a.itemsize


@_jit
def one_pass(out):
    """Whether the output is one tile high, so gemm_into reads each operand once: a streaming
    product such as a convolution's filter gradient, (9 x 86528) @ (86528 x 32)."""
    return out.shape[0] <= TILE_ROWS


@_jit
def suits(a, b, out):
    """Whether gemm_into beats BLAS on one thread on it: at least MIN_ROWS rows and MIN_COLS
    columns, unit-stride output rows (the operands may have any strides). A tile re-reads its
    column panel of b (inner x two vectors) once per tile of rows, from L1 up to its 48 KiB
    ((128 x 384) @ (384 x 128) 83 us against OpenBLAS's 99), from L2 past it, which still
    wins: an LSTM's recurrent-kernel gradient (64 x 1024) @ (1024 x 256) 163 us against 366,
    (512 x 768) @ (768 x 512) 2.0 ms against 3.5, logits 128x1600x10 33 us against 117.
    (Panels passed in L1-sized stretches of the inner axis took 148 us there but 4% more on
    short products such as 128x64x256.) Products big enough for two BLAS threads are the
    caller's to send there."""
    return out.shape[0] >= MIN_ROWS and b.shape[1] >= MIN_COLS and (
        out.strides[1] == out.itemsize)


def _tiles_with(epilogue):
    """The tiling loop over tiles that apply `epilogue`: blocks of BLOCK_ROWS rows in turn,
    each through every column panel, so the block of `a` stays in L2 while its panels pass."""
    wide, narrow = _tile_intrinsic(TILE_VECTORS, epilogue), _tile_intrinsic(1, epilogue)

    @_jit
    def tiles(a, b, out, extra):
        m, n = out.shape
        width = TILE_VECTORS * _lanes(a)
        for first in range(0, m, BLOCK_ROWS):
            last = min(m, first + BLOCK_ROWS)
            for j0 in range(0, n, width):
                cols = min(width, n - j0)
                narrow_panel = cols <= _lanes(a)
                for i0 in range(first, last, TILE_ROWS):
                    if narrow_panel:
                        narrow(a, b, out, extra, i0, j0, cols, min(TILE_ROWS, last - i0))
                    else:
                        wide(a, b, out, extra, i0, j0, cols, min(TILE_ROWS, last - i0))
    return tiles


# What a product may do to its result in registers before storing it (`bias_into`,
# `bias_relu_into`, `relu_mask_into`): add a row of biases, add it and apply relu (a Dense
# layer's forward pass), or keep the entries where a relu's output is positive (its gradient).
# The pass over the result each would take alone cost a third of W3's first product (128x64x128
# 11.8 us, with its bias and relu loop 16.5, fused 12.0) and twice W8's first convolution's
# (86528x9x32 524 us, 1,533 with the loop, 511 fused).
EPILOGUES = ('bias', 'bias_relu', 'relu_mask')
_tiles = _tiles_with(None)
_tiles_bias, _tiles_bias_relu, _tiles_relu_mask = (_tiles_with(e) for e in EPILOGUES)


@_jit
def _right_rows(b):
    """b with unit-stride rows: a transpose is copied (a k x n copy against the m x k x n
    product)."""
    if b.shape[1] > 1 and b.strides[1] != b.itemsize:
        return np.ascontiguousarray(b)
    return b


@_jit
def gemm_into(a, b, out):
    """out = a @ b (2-D, one dtype, float32 or float64; out does not overlap a or b). One call
    of the tiling loop: each call emits every tile height again (the helpers inline), and a
    kernel's three products were 4.2 MB of LLVM IR."""
    _tiles(a, _right_rows(b), out, out)


@_jit
def bias_into(a, b, bias, out):
    """out = a @ b + bias (bias 1-D, one entry per column, unit stride)."""
    _tiles_bias(a, _right_rows(b), out, bias)


@_jit
def bias_relu_into(a, b, bias, out):
    """out = relu(a @ b + bias)."""
    _tiles_bias_relu(a, _right_rows(b), out, bias)


@_jit
def relu_mask_into(a, b, y, out):
    """out = where(y > 0, a @ b, 0), y of out's shape with unit-stride rows."""
    _tiles_relu_mask(a, _right_rows(b), out, y)

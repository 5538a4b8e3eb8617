"""Hand-written Numba helpers that generated kernels call for the ops that are not loops over
one iteration space: matmuls, copies, gathers, scatters, arg-reductions and the random stream.

They are compiled once per type signature and cached on disk (`cache=True`), so a new kernel
does not pay again for `np.dot`'s or slice assignment's heavy implementations. Axis-generic ops
work on a (before, axis, after) 3-D view of a contiguous array, so one compiled helper serves
every rank; generated code reshapes around the call.
"""
import ctypes
import glob
import importlib.util
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import literal_unroll, types

from . import helper_cache  # noqa: F401 (before any cache=True function)
from .hostcalls import invoke as host_invoke  # noqa: F401 (kernels' object-mode blocks call it)
from . import gemm, rowops
from .fastmath import exp32, log32
from .fpflags import FASTMATH
from .mpi_kernels import allreduce_sum32, allreduce_sum64  # noqa: F401 (kernels call K.*)

_jit = numba.njit(inline='always', error_model='numpy')
# fastmath set explicitly: Numba gives a callee that leaves it unset the flags of the kernel that
# compiles it first, so a helper's results (and its disk-cache entry) depended on which caller
# came first in the process
_cached = numba.njit(cache=True, error_model='numpy', nogil=True, fastmath=False)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@_jit
def random_bits(key, index):
    """splitmix64 of (key * gamma + index): the same stream as primitives.random_bits."""
    z = np.uint64(key) * _GAMMA + np.uint64(index)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@_jit
def uniform32(key, index):
    return np.float32(random_bits(key, index) >> np.uint64(40)) * np.float32(2.0 ** -24)


@_jit
def uniform64(key, index):
    return np.float64(random_bits(key, index) >> np.uint64(11)) * 2.0 ** -53


# Matrix products below this many multiply-adds run on one BLAS thread. Two threads save ~15% on
# a quiet machine at 1M, but when another process holds the second core OpenBLAS's threads wait
# for each other and small products get 5-40x slower (measured at 0.1M-1M multiply-adds).
SINGLE_THREAD_GEMM = 1 << 22
# So do products with fewer outputs than this whose sums are at most SINGLE_THREAD_SUM long: a
# loop's weight gradient summed over every step at once, (64 x 1024) @ (1024 x 256), took about
# 360 us on one thread or two on a quiet machine, but 5,200 on two and 940 on one with the other
# core busy. Longer sums gain from two threads: a convolution's filter gradient, (288 x 15488)
# @ (15488 x 64), 3.4 ms on two threads against 6.5 on one (quiet).
SINGLE_THREAD_OUTPUTS = 1 << 16
SINGLE_THREAD_SUM = 4096
# And so do products whose sums are at most SINGLE_THREAD_INNER long, at any size: each output
# costs a few multiply-adds, so one core streams them nearly as fast as two, while with the other
# core busy two BLAS threads took 20 ms (median) for W8's first convolution, (86528 x 9) @
# (9 x 32), against 0.8 on one thread in gemm's tiles (quiet: 0.59 against 0.57).
SINGLE_THREAD_INNER = 16


def _blas_thread_symbols():
    """Point the symbols `tracejit_blas_get_threads` / `tracejit_blas_set_threads` at scipy's
    OpenBLAS thread count (the BLAS that Numba's np.dot calls; the setting is process-wide).
    Kernels link them by name, so they stay cacheable on disk. Without scipy's OpenBLAS,
    libc functions of the same signatures stand in: a count of 1, a setter with no effect."""
    libc = ctypes.CDLL(None)
    get, set_ = libc.getpagesize, libc.abs   # stand-ins: the count is never 1, set is a no-op
    spec = importlib.util.find_spec('scipy')
    if spec is not None and spec.origin:
        root = os.path.dirname(os.path.dirname(spec.origin))
        for path in sorted(glob.glob(os.path.join(root, 'scipy.libs', 'libscipy_openblas*'))):
            lib = ctypes.CDLL(path)
            if hasattr(lib, 'scipy_openblas_get_num_threads') and hasattr(
                    lib, 'scipy_openblas_set_num_threads'):
                get, set_ = lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads
                break
    for name, fn in (('tracejit_blas_get_threads', get), ('tracejit_blas_set_threads', set_)):
        llvm.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
    return (types.ExternalFunction('tracejit_blas_get_threads', types.int32()),
            types.ExternalFunction('tracejit_blas_set_threads', types.void(types.int32)))


_blas_get_threads, _blas_set_threads = _blas_thread_symbols()


@_jit
def _small_gemm(a, b):
    """Whether a @ b runs on one thread (see SINGLE_THREAD_GEMM and the rules after it)."""
    outputs = a.shape[0] * b.shape[1]
    return outputs * a.shape[1] < SINGLE_THREAD_GEMM or a.shape[1] <= SINGLE_THREAD_INNER or (
        outputs < SINGLE_THREAD_OUTPUTS and a.shape[1] <= SINGLE_THREAD_SUM)


@_jit
def _single_blas_thread():
    """Drop to one BLAS thread; returns the count to restore, or 0 when there is nothing to
    restore (already one thread, e.g. under threadpoolctl or while another kernel's small
    product runs: then this one never resets the count another thread lowered)."""
    threads = _blas_get_threads()
    if threads <= 1:
        return 0
    _blas_set_threads(1)
    return threads


@_jit
def _restore_blas_threads(threads):
    if threads > 1:
        _blas_set_threads(threads)


@_cached
def dot(a, b):
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    dot_into(a, b, out)
    return out


@_cached
def dot_loops(a, b):
    """Integer matmul (BLAS has none): a plain triple loop."""
    out = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            for j in range(b.shape[1]):
                out[i, j] += a[i, k] * b[k, j]
    return out


@_jit
def _tiled(a, b, out):
    """Whether a @ b runs in gemm's register tiles: a small product (one thread) that suits
    them, or one a tile high at any size (one pass over the operands: the filter gradient
    (9 x 86528) @ (86528 x 32) took 0.70 ms against 1.54 on two BLAS threads, quiet)."""
    return (_small_gemm(a, b) or gemm.one_pass(out)) and gemm.suits(a, b, out)


@_jit
def _blas_into(a, b, out):
    """out = a @ b through BLAS, small products on one of its threads."""
    if _small_gemm(a, b):
        previous = _single_blas_thread()
        np.dot(a, b, out)
        _restore_blas_threads(previous)
    else:
        np.dot(a, b, out)


@_cached
def dot_into(a, b, out):
    """out = a @ b, in gemm's tiles or through BLAS."""
    if _tiled(a, b, out):
        gemm.gemm_into(a, b, out)
    else:
        _blas_into(a, b, out)


# A product and what alone reads its result (gemm.EPILOGUES), in one pass where gemm's tiles
# take the product; after BLAS, one pass over the result.
@_cached
def dot_bias_into(a, b, bias, out, relu):
    """out = a @ b + bias, then relu if `relu`."""
    if _tiled(a, b, out):
        if relu:
            gemm.bias_relu_into(a, b, bias, out)
        else:
            gemm.bias_into(a, b, bias, out)
        return
    _blas_into(a, b, out)
    for i in range(out.shape[0]):
        row = out[i]
        for j in range(row.shape[0]):
            biased = row[j] + bias[j]
            row[j] = np.maximum(biased, 0) if relu else biased


@_cached
def dot_relu_mask_into(a, b, y, out):
    """out = where(y > 0, a @ b, 0): relu's gradient applied to a product (y its output)."""
    if _tiled(a, b, out):
        gemm.relu_mask_into(a, b, y, out)
    else:
        _blas_into(a, b, out)
        for i in range(out.shape[0]):
            row, kept = out[i], y[i]
            for j in range(row.shape[0]):
                if not kept[j] > 0:
                    row[j] = 0


@_cached
def concat_into(parts, out):
    """The 2-D parts side by side in `out` (rows, their columns summed): a concatenation
    written into a buffer the caller owns, with no array of its own."""
    start = 0
    for part in literal_unroll(parts):   # the parts may differ in type (read-only ones)
        for r in range(part.shape[0]):
            row, target = part[r], out[r, start:]   # zero-based indices vectorise
            for c in range(row.shape[0]):
                target[c] = row[c]
        start += part.shape[1]


@_cached
def copy_into(dst, src):
    """dst[:] = src for 1-D arrays, without slice assignment's costly error formatting."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@_cached
def log_softmax_rows(x, out):
    """out = x - max - log(sum(exp(x - max))) per row; the shift is 0 where max is not finite."""
    for r in range(x.shape[0]):
        peak = _row_peak(x, r)
        total = 0.0
        for c in range(x.shape[1]):
            total += np.exp(np.float64(x[r, c] - peak))
        shift = np.log(total)
        for c in range(x.shape[1]):
            out[r, c] = (x[r, c] - peak) - shift
    return out


@numba.njit(cache=True, nogil=True, error_model='numpy', fastmath=FASTMATH)
def log_softmax_rows32(x, out):
    """The float32 version, with the vectorisable exp32/log32 and a float64 row sum. Rows are
    often shorter than a vector (10 classes), so exp32 runs as one flat loop over the shifted
    rows and log32 as one loop over the row sums (vectorised across rows: ~2x faster at
    128 x 10 than per-row calls). The row maximum skips NaNs: a NaN makes its row's sum, hence
    the whole row, NaN anyway. `out` is C-contiguous."""
    rows, cols = x.shape
    for r in range(rows):
        peak = np.float32(-np.inf)
        for c in range(cols):
            v = x[r, c]
            peak = v if v > peak else peak
        shift = peak if np.isfinite(peak) else np.float32(0.0)
        for c in range(cols):
            out[r, c] = x[r, c] - shift
    shifted = out.reshape(rows * cols)
    e = np.empty(rows * cols, np.float32)
    for i in range(rows * cols):
        e[i] = exp32(shifted[i])
    log_totals = np.empty(rows, np.float32)
    for r in range(rows):
        total = 0.0
        for c in range(cols):
            total += e[r * cols + c]
        log_totals[r] = np.float32(total)
    for r in range(rows):
        log_totals[r] = log32(log_totals[r])
    for r in range(rows):
        for c in range(cols):
            out[r, c] -= log_totals[r]
    return out


@_jit
def _row_peak(x, r):
    """The row's maximum (NaN if any is NaN), or 0 where that is not finite."""
    peak = -np.inf
    for c in range(x.shape[1]):
        v = x[r, c]
        peak = v if (v > peak or v != v) else peak
    return peak if np.isfinite(peak) else 0.0


@_cached
def all_in_range(values, low, high):
    """Whether every value lies in [low, high) (argument range checks of compiled steps).
    Branch-free, so it vectorises: returning at the first bad value took 5.7 us for W9's 12,800
    ids against 1.7."""
    ok = True
    for v in values.flat:
        ok &= (low <= v) & (v < high)  # NaN fails too
    return ok


@_cached
def gather3(x, idx, out):
    """out[a, j, b] = x[a, idx[j], b] for x viewed as (before, n, after). Indices that are
    arguments were range-checked before the call; computed ones are checked here."""
    n = x.shape[1]
    for j in range(idx.shape[0]):
        if idx[j] < -n or idx[j] >= n:
            raise IndexError('gather: an index computed inside the compiled step is out of range')
    for a in range(x.shape[0]):
        for j in range(idx.shape[0]):
            k = idx[j]
            k = k + n if k < 0 else k
            for b in range(x.shape[2]):
                out[a, j, b] = x[a, k, b]
    return out


GATHER_SUM_BLOCK = 32  # rows added in the table's dtype before each float64 step


@_cached
def gather_sum2(x, idx, out):
    """out[b] = the sum over l of x[idx[b, l]] for x as (rows, row), never materialising the
    gathered rows. Blocks of GATHER_SUM_BLOCK rows add up in x's dtype, in registers
    (rowops.sum_rows), blocks in float64: converting every element to float64 halved the speed
    (float32 embeddings of width 64), and 32-row float32 partials stay within ~2e-7 of the
    float64 sum."""
    n, m = x.shape
    bags, length = idx.shape
    if not all_in_range(idx, -n, n):
        raise IndexError('gather: an index computed inside the compiled step is out of range')
    flat = idx.reshape(bags * length)
    acc = np.empty(m, np.float64)
    part = np.empty(m, x.dtype)
    for b in range(bags):
        acc[:] = 0.0
        end = (b + 1) * length
        for start in range(b * length, end, GATHER_SUM_BLOCK):
            rowops.sum_rows(x, flat, start, min(end, start + GATHER_SUM_BLOCK), part)
            for c in range(m):
                acc[c] += part[c]
        for c in range(m):
            out[b, c] = acc[c]
    return out


@_cached
def scatter_add3(u, idx, out):
    """out[a, idx[j], b] += u[a, j, b]; `out` starts zeroed."""
    n = out.shape[1]
    for a in range(u.shape[0]):
        for j in range(idx.shape[0]):
            k = idx[j]
            k = k + n if k < 0 else k
            for b in range(u.shape[2]):
                out[a, k, b] += u[a, j, b]
    return out


@_cached
def argreduce3(x, out, largest):
    """First index of the max (or min) along axis 1 of (before, n, after); NaN wins, as numpy."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            best, where = x[a, 0, b], 0
            for k in range(1, x.shape[1]):
                v = x[a, k, b]
                if best != best:
                    break
                if v != v or (v > best if largest else v < best):
                    best, where = v, k
            out[a, b] = where
    return out


# ---------------------------------------------------------------------------- windows
# NHWC convolution windows on flat views: for one output position and one window row, the
# taps of a window that lies inside the image are kw * C contiguous elements (undilated), copied
# as one run; taps over the padding are zeros. Sizes come from the arrays, pads from the sizes.

@_jit
def _pad_before(size, out, k, stride, dilation, same):
    """TF's SAME padding before an axis (0 for VALID), from the input and output sizes."""
    if not same:
        return 0
    return max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0) // 2


@_jit
def _move(img, at, cols, to, count, to_cols):
    """Copy `count` image elements into the columns (im2col) or add them back (col2im). The
    loops index zero-based views: an offset index (`at + t`) would be checked for negative
    wraparound at every element, which keeps LLVM from vectorising (7x slower copies)."""
    pixels, taps = img[at:at + count], cols[to:to + count]
    if to_cols:
        for t in range(count):
            taps[t] = pixels[t]
    else:
        for t in range(count):
            pixels[t] += taps[t]


@_jit
def _window_rows(img, cols, shape, sizes, sh, sw, dh, dw, same, to_cols):
    """Walk every window row of an NHWC image `shape` and (oh, ow, kh, kw) `sizes`, moving its
    taps between the flat image and the flat columns; `to_cols` (a literal at both callers, so
    the branches fold away once inlined) also zeroes the columns' taps over the padding."""
    n, h, w, c = shape
    oh, ow, kh, kw = sizes
    top, left = _pad_before(h, oh, kh, sh, dh, same), _pad_before(w, ow, kw, sw, dw, same)
    run = kw * c
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for p in range(kh):
                    o = (((b * oh + i) * ow + j) * kh + p) * run
                    r = i * sh + p * dh - top
                    s0 = j * sw - left
                    if r < 0 or r >= h:
                        if to_cols:
                            cols[o:o + run] = 0
                    elif dw == 1 and s0 >= 0 and s0 + kw <= w:
                        _move(img, ((b * h + r) * w + s0) * c, cols, o, run, to_cols)
                    else:
                        for q in range(kw):
                            s = s0 + q * dw
                            if 0 <= s < w:
                                _move(img, ((b * h + r) * w + s) * c, cols, o + q * c, c,
                                      to_cols)
                            elif to_cols:
                                cols[o + q * c:o + q * c + c] = 0


@_cached
def im2col(x, out, sh, sw, dh, dw, same):
    """out[b, i, j, p, q, :] = x[b, i*sh + p*dh - top, j*sw + q*dw - left, :] (0 outside)."""
    _window_rows(x.reshape(x.size), out.reshape(out.size), x.shape, out.shape[1:5],
                 sh, sw, dh, dw, same, True)
    return out


@_cached
def col2im(u, out, sh, sw, dh, dw, same):
    """The transpose of im2col: out (zeroed by the caller) += each window at its place."""
    _window_rows(out.reshape(out.size), u.reshape(u.size), out.shape, u.shape[1:5],
                 sh, sw, dh, dw, same, False)
    return out


# Bytes of an intermediate that the blocked window ops (dot_col2im, pool_grad_dot) make at a
# time, a few images of it: about half of a core's L2, so its consumer reads each block from
# cache, not memory. W8's (15488 x 64) @ (64 x 288) product (17.8 MB) went to memory and came
# back: 7.2 ms with its col2im (one thread), 5.6 in blocks of 4 to 32 images; its first pooling
# gradient (11 MB) and the filter gradient reading it, 2.9 ms, 1.8 in blocks.
IMAGE_BLOCK_BYTES = 1 << 20


@_jit
def _windows_along(size, k, stride, dilation, same):
    """How many windows fit along an axis of `size` (TF's SAME and VALID rules)."""
    if same:
        return (size + stride - 1) // stride
    return (size - (k - 1) * dilation - 1) // stride + 1


@_cached
def dot_col2im(a, b, out, kh, kw, sh, sw, dh, dw, same):
    """out (N, H, W, C), zeroed by the caller, += col2im of (a @ b) viewed as (N, OH, OW, KH,
    KW, C) windows: a convolution's input gradient (or a transposed convolution). The product
    is made a few images at a time (IMAGE_BLOCK_BYTES), each block added back before the next,
    so the (N * OH * OW, KH * KW * C) product never goes through memory whole. Blocks go
    through gemm's tiles where they suit, on one thread: two-thread BLAS calls in a loop wait
    for each other whenever another process holds the second core (W8's blocks, with one core
    busy elsewhere: 36 ms median on two BLAS threads, 18 on one, 2.9 in gemm; the unblocked
    product and col2im 16)."""
    n, h, w, c = out.shape
    oh, ow = _windows_along(h, kh, sh, dh, same), _windows_along(w, kw, sw, dw, same)
    per_image = oh * ow
    b = np.ascontiguousarray(b)
    images = max(1, IMAGE_BLOCK_BYTES // (per_image * b.shape[1] * b.itemsize))
    block = np.empty((min(n, images) * per_image, b.shape[1]), out.dtype)
    for first in range(0, n, images):
        last = min(n, first + images)
        rows, part = block[:(last - first) * per_image], a[first * per_image:last * per_image]
        if gemm.suits(part, b, rows):
            gemm.gemm_into(part, b, rows)
        else:
            dot_into(part, b, rows)
        col2im(rows.reshape((last - first, oh, ow, kh, kw, c)), out[first:last],
               sh, sw, dh, dw, same)
    return out


@_jit
def _window_range(i, stride, k, before, size):
    """[first, last) taps of window i that lie inside an axis of `size`."""
    start = i * stride - before
    return max(start, 0) - start, min(start + k, size) - start


@_jit
def _window_peaks(xp, corner, first, rows, cols, w, peak, best):
    """peak[t], best[t] = the first maximum of channel t over one window's taps inside the
    image and its pixel (row of `xp`, the image as (pixels, channels)), replaced only by a
    strictly larger value: TF's MaxPoolGrad rule, so a NaN first tap stays and later NaNs
    are skipped. Selects, not branches, over rows of a 2-D view: the channel loop vectorises
    (slices or offset flat indices per tap cost 2-4x)."""
    for t in range(xp.shape[1]):
        peak[t] = xp[first, t]
        best[t] = first
    for p in range(rows[0], rows[1]):
        for q in range(cols[0], cols[1]):
            src = corner + p * w + q
            if src != first:
                for t in range(xp.shape[1]):
                    v = xp[src, t]
                    take = peak[t] < v
                    peak[t] = v if take else peak[t]
                    best[t] = src if take else best[t]


@_jit
def _pool_walk(x, oh, ow, kh, kw, sh, sw, same, values, index, ct, grad, mode):
    """Every window's first maximum (_window_peaks), used per `mode` (a literal at each
    caller, so the other branches fold away): 0 writes the maxima into `values`, 1 their flat
    indices into `index`, 2 adds the windows' cotangents `ct` there into `grad` (zeroed
    before: one scattered add per channel, cheaper than a select over every tap), 3 writes
    every tap of the window into `grad`, the cotangent at the maximum and zero elsewhere
    (for windows that do not overlap: no zero fill of `grad` first, one pass over it).
    `values`, `index` and `ct` are (N * OH * OW, C), `grad` (N * H * W, C)."""
    n, h, w, c = x.shape
    top, left = _pad_before(h, oh, kh, sh, 1, same), _pad_before(w, ow, kw, sw, 1, same)
    xp = x.reshape((n * h * w, c))
    peak, best = np.empty(c, x.dtype), np.empty(c, np.int64)
    zero = np.zeros(1, grad.dtype)[0]
    for b in range(n):
        for i in range(oh):
            rows = _window_range(i, sh, kh, top, h)
            for j in range(ow):
                cols = _window_range(j, sw, kw, left, w)
                o = (b * oh + i) * ow + j
                corner = (b * h + i * sh - top) * w + j * sw - left
                if kh == 2 and kw == 2 and rows == (0, 2) and cols == (0, 2):
                    _pool_2x2(xp, corner, w, o, values, index, ct, grad, mode, best, zero)
                    continue
                first = corner + rows[0] * w + cols[0]
                _window_peaks(xp, corner, first, rows, cols, w, peak, best)
                if mode == 0:
                    for t in range(c):
                        values[o, t] = peak[t]
                elif mode == 1:
                    for t in range(c):
                        index[o, t] = best[t] * c + t
                elif mode == 2:
                    for t in range(c):
                        grad[best[t], t] += ct[o, t]
                else:
                    _write_window(grad, ct, o, corner, rows, cols, w, best, zero)


@_jit
def _pool_2x2(xp, corner, w, o, values, index, ct, grad, mode, best, zero):
    """_pool_walk's work for one 2 x 2 window inside the image (max pooling's usual window)
    with its taps unrolled, so the channel loop vectorises with the maximum and its tap in
    registers (W8's first pooling: 0.3 ms instead of 1.6 through _window_peaks). The same
    first-maximum rule: a tap replaces the maximum only when strictly larger. The gradient
    modes place the cotangent in a second loop, over the taps kept in `best`."""
    c = xp.shape[1]
    for t in range(c):
        peak, tap = xp[corner, t], 0
        v = xp[corner + 1, t]
        take = peak < v
        peak, tap = (v if take else peak), (1 if take else tap)
        v = xp[corner + w, t]
        take = peak < v
        peak, tap = (v if take else peak), (2 if take else tap)
        v = xp[corner + w + 1, t]
        take = peak < v
        peak, tap = (v if take else peak), (3 if take else tap)
        if mode == 0:
            values[o, t] = peak
        elif mode == 1:
            index[o, t] = (corner + (tap & 1) + (tap >> 1) * w) * c + t
        else:
            best[t] = tap
    if mode >= 2:
        for k in range(4):
            pixel = corner + (k & 1) + (k >> 1) * w
            for t in range(c):
                g = ct[o, t] if best[t] == k else zero
                if mode == 2:
                    grad[pixel, t] += g
                else:
                    grad[pixel, t] = g


@_jit
def _write_window(grad, ct, o, corner, rows, cols, w, best, zero):
    """grad[pixel, t] = ct[o, t] at each channel's maximum `best[t]`, `zero` at the window's
    other taps inside the image (a select per tap: the channel loop vectorises)."""
    for p in range(rows[0], rows[1]):
        for q in range(cols[0], cols[1]):
            src = corner + p * w + q
            for t in range(grad.shape[1]):
                grad[src, t] = ct[o, t] if best[t] == src else zero


@_jit
def _covered(size, out, k, stride, before):
    """Which positions of an axis of `size` lie in some window."""
    inside = np.zeros(size, np.bool_)
    for o in range(out):
        first, last = _window_range(o, stride, k, before, size)
        inside[o * stride - before + first:o * stride - before + last] = True
    return inside


@_jit
def _zero_outside_windows(grad, shape, out_hw, kh, kw, sh, sw, same):
    """Zero the pixels of `grad` (N * H * W, C) that no window covers (with strides larger
    than the window, or the last rows and columns that VALID windows leave out)."""
    n, h, w, c = shape
    rows = _covered(h, out_hw[0], kh, sh, _pad_before(h, out_hw[0], kh, sh, 1, same))
    cols = _covered(w, out_hw[1], kw, sw, _pad_before(w, out_hw[1], kw, sw, 1, same))
    for b in range(n):
        for r in range(h):
            for s in range(w):
                if not (rows[r] and cols[s]):
                    for t in range(c):
                        grad[(b * h + r) * w + s, t] = 0


@_jit
def _pixels(a):
    """An NHWC array as (pixels, channels)."""
    return a.reshape((a.size // a.shape[3], a.shape[3]))


@_cached
def pool_argmax(x, out, kh, kw, sh, sw, same):
    """out[b, i, j, ch] = flat index into x of the first maximum of the window (row-major
    window order, replaced only by a strictly larger value: TF's MaxPoolGrad rule)."""
    unused = np.empty((0, 0), x.dtype)
    _pool_walk(x, out.shape[1], out.shape[2], kh, kw, sh, sw, same, unused, _pixels(out),
               unused, unused, 1)
    return out


@_cached
def max_pool(x, out, kh, kw, sh, sw, same):
    """out[b, i, j, ch] = the window's maximum by pool_argmax's rule (so NaNs as TF's)."""
    unused = np.empty((0, 0), x.dtype)
    _pool_walk(x, out.shape[1], out.shape[2], kh, kw, sh, sw, same, _pixels(out),
               np.empty((0, 0), np.int64), unused, unused, 0)
    return out


@_cached
def max_pool_grad(ct, x, out, kh, kw, sh, sw, same):
    """out (x's shape) = each window's cotangent at its first maximum, zero elsewhere:
    pool_argmax and the scatter in one pass, without the index array. Windows that do not
    overlap write their taps whole, so only the pixels outside every window are zeroed
    first; overlapping ones add into a zeroed `out`."""
    unused, grad = np.empty((0, 0), x.dtype), _pixels(out)
    oh, ow = ct.shape[1], ct.shape[2]
    index = np.empty((0, 0), np.int64)
    if sh >= kh and sw >= kw:
        _zero_outside_windows(grad, x.shape, (oh, ow), kh, kw, sh, sw, same)
        _pool_walk(x, oh, ow, kh, kw, sh, sw, same, unused, index, _pixels(ct), grad, 3)
    else:
        grad[:] = 0
        _pool_walk(x, oh, ow, kh, kw, sh, sw, same, unused, index, _pixels(ct), grad, 2)
    return out


@_cached
def pool_grad_dot(a, ct, x, out, kh, kw, sh, sw, same):
    """out (zeroed by the caller) += a.T @ max_pool_grad(ct, x) as (N * H * W, C) rows: the
    filter gradient of a convolution behind max pooling, with a its (N * H * W, K) windows. The
    pooling gradient is made a few images at a time (IMAGE_BLOCK_BYTES) and multiplied while
    in cache; the blocks' products add up in order."""
    n, h, w, c = x.shape
    per_image = h * w
    images = max(1, IMAGE_BLOCK_BYTES // (per_image * c * x.itemsize))
    block = np.empty((min(n, images), h, w, c), x.dtype)
    part = np.empty(out.shape, out.dtype)
    for first in range(0, n, images):
        last = min(n, first + images)
        grad = block[:last - first]
        max_pool_grad(ct[first:last], x[first:last], grad, kh, kw, sh, sw, same)
        rows = grad.reshape(((last - first) * per_image, c))
        dot_into(a[first * per_image:last * per_image].T, rows, part)
        for i in range(out.shape[0]):
            for j in range(c):
                out[i, j] += part[i, j]
    return out


# -- row scatters (Variable.scatter_*, sparse optimizer updates) and duplicate sums


@_cached
def scatter_rows2(out, idx, u, mode):
    """out[idx[j], :] (set | add | max | min: mode 0-3) u[j, :] in order of j, for `out` as
    (rows, row). Every index is checked before the first write: a bad one changes nothing."""
    n, m = out.shape
    for j in range(idx.shape[0]):
        if idx[j] < 0 or idx[j] >= n:
            raise IndexError('scatter: an index computed inside the compiled step is out of range')
    for j in range(idx.shape[0]):
        k = idx[j]
        if mode == 0:
            for b in range(m):
                out[k, b] = u[j, b]
        elif mode == 1:
            for b in range(m):
                out[k, b] += u[j, b]
        else:
            for b in range(m):
                x, y = out[k, b], u[j, b]
                take = (y > x if mode == 2 else y < x) or y != y
                out[k, b] = y if take else x
    return out


@_jit
def _distinct_slots(idx):
    """(slot, count): slot[j] in [0, count) numbers the distinct values of idx. A table over
    the span of the indices finds them, or a sort when the span is much larger than idx."""
    k = idx.shape[0]
    slot = np.empty(k, np.int64)
    lo, hi = idx.min(), idx.max()
    count = 0
    if hi - lo > 8 * k + 4096:
        order = np.argsort(idx, kind='mergesort')
        for p in range(k):
            if p > 0 and idx[order[p]] != idx[order[p - 1]]:
                count += 1
            slot[order[p]] = count
        return slot, count + 1
    slot_of = np.full(hi - lo + 1, -1, np.int64)
    for j in range(k):
        s = slot_of[idx[j] - lo]
        if s < 0:
            s = slot_of[idx[j] - lo] = count
            count += 1
        slot[j] = s
    return slot, count


@_jit
def _slot_sums(u, repeat, slot, count):
    """sums[s] = the rows u[j // repeat] with slot[j] == s added in order of j (from zero, as
    numpy's add.at): one row per distinct index, a buffer small enough to stay in cache. Rows
    are added in registers (rowops.add_row); starting each row at its first index instead of
    zero-filling cost more than the fill (a mask applied to every add)."""
    sums = np.zeros((count, u.shape[1]), u.dtype)
    row, left = 0, repeat
    for j in range(slot.shape[0]):
        rowops.add_row(u, row, sums, slot[j])
        left -= 1
        if left == 0:   # row = j // repeat, without a division per index
            row, left = row + 1, repeat
    return sums


@_jit
def _checked_distinct(idx, n):
    """(slot, count, row of each slot) for indices that must lie in [0, n), numbered in order
    of first appearance; any index out of range raises before anything is written. Branch-free:
    whether an index is new is unpredictable (a quarter of them in W9), and mispredicted
    branches cost more than the loop's other work."""
    k = idx.shape[0]
    bad = 0
    for j in range(k):
        bad += (idx[j] < 0) | (idx[j] >= n)
    if bad:
        raise IndexError('scatter: an index computed inside the compiled step is out of range')
    row_of = np.empty(k + 1, np.int64)
    if n > 8 * k + 4096:  # a table much larger than the batch: sort rather than fill a map
        slot, count = _distinct_slots(idx)
        for j in range(k):
            row_of[slot[j]] = idx[j]
        return slot, count, row_of
    slot_of = np.full(n, -1, np.int64)
    slot = np.empty(k, np.int64)
    count = 0
    for j in range(k):
        r = idx[j]
        s = slot_of[r]
        new = s < 0
        s = count if new else s
        slot_of[r] = s
        slot[j] = s
        row_of[count] = r
        count += new
    return slot, count, row_of


@_cached
def sum_duplicates2(u, idx, out):
    """out[j] = the sum of the rows u[j'] with idx[j'] == idx[j], added in order of j'."""
    k, m = u.shape
    if k == 0:
        return out
    slot, count = _distinct_slots(idx)
    sums = _slot_sums(u, 1, slot, count)
    for j in range(k):
        row, total = out[j], sums[slot[j]]
        for b in range(m):
            row[b] = total[b]
    return out


# Rows the sparse optimizers ask for ahead of the one they update: the distinct rows come in
# order of first appearance, scattered over the tables. On W9 it took LazyAdam's row pass from
# ~314 to ~285 us and SGD's from ~161 to ~157 (2, 4 and 8 rows ahead alike, 16 a little slower).
PREFETCH_AHEAD = 4


@_cached
def accumulate_rows2(out, idx, u, repeat, decay, scale, power):
    """For each distinct r = idx[j]: out[r] = decay * out[r] + scale * S**power (power 1, 2),
    S the sum of the rows u[j // repeat] of r. One pass over the distinct rows."""
    if idx.shape[0] == 0:
        return out
    slot, count, row_of = _checked_distinct(idx, out.shape[0])
    sums = _slot_sums(u, repeat, slot, count)
    m = out.shape[1]
    for s in range(count):
        if s + PREFETCH_AHEAD < count:
            rowops.prefetch_row_for_write(out, row_of[s + PREFETCH_AHEAD])
        row, total = out[row_of[s]], sums[s]
        if power == 2:
            for b in range(m):
                row[b] = decay * row[b] + scale * (total[b] * total[b])
        else:
            for b in range(m):
                row[b] = decay * row[b] + scale * total[b]
    return out


@_cached
def lazy_adam_rows2(var, m, v, idx, u, repeat, b1, k1, b2, k2, lr, epsilon):
    """For each distinct r = idx[j], with S the sum of the rows u[j // repeat] of r:
    m[r] = b1 m[r] + k1 S; v[r] = b2 v[r] + k2 S^2; var[r] -= lr m[r] / (sqrt(v[r]) + epsilon).
    One pass over the distinct rows, the three tables' rows together."""
    if idx.shape[0] == 0:
        return
    slot, count, row_of = _checked_distinct(idx, var.shape[0])
    sums = _slot_sums(u, repeat, slot, count)
    width = var.shape[1]
    for s in range(count):
        if s + PREFETCH_AHEAD < count:
            ahead = row_of[s + PREFETCH_AHEAD]
            rowops.prefetch_row_for_write(var, ahead)
            rowops.prefetch_row_for_write(m, ahead)
            rowops.prefetch_row_for_write(v, ahead)
        r = row_of[s]
        w, mr, vr, g = var[r], m[r], v[r], sums[s]
        for b in range(width):
            mb = b1 * mr[b] + k1 * g[b]
            vb = b2 * vr[b] + k2 * (g[b] * g[b])
            mr[b] = mb
            vr[b] = vb
            w[b] = w[b] - lr * mb / (np.sqrt(vb) + epsilon)

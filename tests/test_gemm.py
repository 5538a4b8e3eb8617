"""The register-tiled product (backend/gemm.py) against a float64 numpy product written here:
every tile shape (full and partial rows and columns), empty and length-1 axes, operands in any
layout (transposes, strided slices), a strided output, both dtypes, and special values."""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tracejit.backend import gemm, kernels as K

RNG = np.random.default_rng(0)


def reference(a, b):
    return (a.astype(np.float64) @ b.astype(np.float64))


def close(got, a, b):
    want = reference(a, b)
    tol = 1e-5 if got.dtype == np.float32 else 1e-12
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + 1.0
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= tol * scale)


def layouts(x):
    """x as C, F and a strided view with the same values."""
    wide = np.zeros((x.shape[0], 2 * x.shape[1] + 1), x.dtype)
    wide[:, 1::2] = x
    return [x, np.asfortranarray(x), wide[:, 1::2]]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('m,k,n', list(itertools.product([1, 7, 11, 12, 13, 25], [0, 1, 5, 64],
                                                         [2, 10, 16, 17, 32, 33, 47, 64, 100])))
def test_gemm_into_equals_numpy(m, k, n, dtype):
    a = RNG.standard_normal((m, k)).astype(dtype)
    b = RNG.standard_normal((k, n)).astype(dtype)
    for left, right in itertools.product(layouts(a), layouts(b)):
        out = np.full((m, n), np.nan, dtype)
        gemm.gemm_into(left, right, out)
        close(out, a, b)


@pytest.mark.parametrize('m', range(1, gemm.TILE_ROWS + 1))
def test_every_tile_height(m):
    a = RNG.standard_normal((m, 19)).astype(np.float32)
    b = RNG.standard_normal((19, 45)).astype(np.float32)
    out = np.full((m, 45), np.nan, np.float32)
    gemm.gemm_into(a, b, out)
    close(out, a, b)


@pytest.mark.parametrize('m', [gemm.BLOCK_ROWS - 1, gemm.BLOCK_ROWS + 13, 2 * gemm.BLOCK_ROWS + 5])
def test_blocks_of_rows_through_every_panel(m):
    """Row blocks (the last one partial, its last tile too) times four column panels."""
    a = RNG.standard_normal((m, 33)).astype(np.float32)
    b = RNG.standard_normal((33, 100)).astype(np.float32)
    for left, right in itertools.product(layouts(a), layouts(b)):
        out = np.full((m, 100), np.nan, np.float32)
        gemm.gemm_into(left, right, out)
        close(out, a, b)


@pytest.mark.parametrize('m', [1, 9, gemm.TILE_ROWS])
def test_one_pass_over_a_long_inner_axis(m):
    """A filter gradient's layout: im2col columns transposed (F-ordered) times the cotangent,
    summed over 20000 positions; one tile high, so each panel is read once."""
    cols = RNG.uniform(-1, 1, (20000, m)).astype(np.float32)
    dy = RNG.uniform(-1, 1, (20000, 40)).astype(np.float32)
    out = np.full((m, 40), np.nan, np.float32)
    assert gemm.one_pass(out) and gemm.suits(cols.T, dy, out) == (m >= gemm.MIN_ROWS)
    gemm.gemm_into(cols.T, dy, out)
    want = reference(cols.T, dy)
    scale = np.abs(cols.T).astype(np.float64) @ np.abs(dy).astype(np.float64)
    assert np.all(np.abs(out - want) <= 1e-4 * scale)   # float32 sums of 20000 terms
    K.dot_into(cols.T, dy, out)
    assert np.all(np.abs(out - want) <= 1e-4 * scale)


def test_only_the_output_block_is_written():
    a, b = RNG.standard_normal((9, 5)).astype(np.float32), RNG.standard_normal((5, 40)).astype(
        np.float32)
    canvas = np.full((11, 45), 7.0, np.float32)
    out = canvas[1:10, 2:42]                       # rows of stride 45, unit-stride columns
    gemm.gemm_into(a, b, out)
    close(out, a, b)
    outside = np.ones(canvas.shape, bool)
    outside[1:10, 2:42] = False
    assert np.all(canvas[outside] == 7.0)


def test_empty_rows_and_columns():
    for m, n in ((0, 40), (3, 0)):
        a = np.ones((m, 4), np.float32)
        out = np.empty((m, n), np.float32)
        gemm.gemm_into(a, np.ones((4, n), np.float32), out)
        assert out.shape == (m, n)


def test_special_values_propagate_as_in_numpy():
    a = np.ones((gemm.TILE_ROWS + 2, 3), np.float32)
    a[0, 0], a[1, 1], a[2, 2] = np.inf, np.nan, -np.inf
    a[-1, 0], a[-2, 1] = -np.inf, np.inf           # in the partial tile below the full one
    b = np.ones((3, 32), np.float32)
    b[:, 5] = 0.0                                  # inf * 0 = nan
    out = np.empty(a.shape[:1] + (32,), np.float32)
    gemm.gemm_into(a, b, out)
    with np.errstate(invalid='ignore'):
        np.testing.assert_array_equal(out, a @ b)


@pytest.mark.parametrize('k', [385, 1024, 1500])
@pytest.mark.parametrize('n', [3 * 32 - 3, 10])
def test_panels_deeper_than_l1(k, n):
    """Column panels past L1's size (k x two vectors of float32), in row blocks with a partial
    last tile and a partial last panel (or one narrow panel), the left operand transposed as a
    recurrent kernel's gradient reads it; so does K.dot_into, which sends it to gemm (a small
    product)."""
    m = gemm.BLOCK_ROWS + 5
    a = RNG.standard_normal((k, m)).astype(np.float32).T
    b = RNG.standard_normal((k, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    gemm.gemm_into(a, b, out)
    close(out, a, b)
    assert K._small_gemm(a, b) and gemm.suits(a, b, out)
    out[:] = np.nan
    K.dot_into(a, b, out)
    close(out, a, b)


def test_suits_sends_vectors_short_and_strided_outputs_to_blas():
    a32 = np.ones((128, 64), np.float32)
    assert gemm.suits(a32, np.ones((64, 128), np.float32), np.empty((128, 128), np.float32))
    assert gemm.suits(a32, np.ones((64, 10), np.float32), np.empty((128, 10), np.float32))
    assert not gemm.suits(a32, np.ones((64, 1), np.float32), np.empty((128, 1), np.float32))
    long_inner = np.ones((128, 1024), np.float32)                 # panels re-read from L2
    assert gemm.suits(long_inner, np.ones((1024, 128), np.float32),
                      np.empty((128, 128), np.float32))
    assert gemm.suits(long_inner, np.ones((1024, 10), np.float32),
                      np.empty((128, 10), np.float32))
    strided = np.empty((128, 256), np.float32)[:, ::2]
    assert not gemm.suits(a32, np.ones((64, 128), np.float32), strided)
    row = np.ones((gemm.MIN_ROWS - 1, 256), np.float32)       # matrix-vector products
    assert not gemm.suits(row, np.ones((256, 1024), np.float32),
                          np.empty((gemm.MIN_ROWS - 1, 1024), np.float32))
    a64 = np.ones((128, 64))
    assert gemm.suits(a64, np.ones((64, 16)), np.empty((128, 16)))   # 2 vectors of 8 lanes


@given(st.integers(1, 40), st.integers(0, 70), st.integers(1, 90), st.booleans(), st.booleans())
def test_kernels_dot_equals_numpy(m, k, n, transpose_a, transpose_b):
    a = RNG.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = RNG.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32)
    left, right = (a.T if transpose_a else a), (b.T if transpose_b else b)
    close(K.dot(left, right), left, right)
    out = np.empty((m, n), np.float32)
    K.dot_into(left, right, out)
    close(out, left, right)


@pytest.mark.parametrize('k', [1, 9, K.SINGLE_THREAD_INNER])
def test_kernels_dot_into_big_products_of_short_sums(k):
    """A first convolution's forward product, im2col columns (positions x taps) @ filters:
    big, with sums of a few terms, so one thread (gemm) computes it."""
    cols = RNG.standard_normal((20000, k)).astype(np.float32)
    filters = RNG.standard_normal((k, 40)).astype(np.float32)
    assert K._small_gemm(cols, filters) and gemm.suits(cols, filters, np.empty((20000, 40),
                                                                              np.float32))
    out = np.full((20000, 40), np.nan, np.float32)
    K.dot_into(cols, filters, out)
    close(out, cols, filters)


def epilogue_reference(a, b, extra, epilogue):
    """numpy's product in float64 with the epilogue written out: NaN stays NaN under relu and
    is masked by a NaN (or non-positive) relu output."""
    product = reference(a, b)
    if epilogue == 'relu_mask':
        return np.where(extra > 0, product, 0.0)
    biased = product + extra
    return np.where(biased < 0, 0.0, biased) if epilogue == 'bias_relu' else biased


EPILOGUE_HELPERS = {
    'bias': (gemm.bias_into, lambda a, b, bias, out: K.dot_bias_into(a, b, bias, out, False)),
    'bias_relu': (gemm.bias_relu_into,
                  lambda a, b, bias, out: K.dot_bias_into(a, b, bias, out, True)),
    'relu_mask': (gemm.relu_mask_into, K.dot_relu_mask_into)}


def epilogue_operand(epilogue, m, n, dtype):
    """A bias row, or a relu output with exact zeros, for an (m, n) product."""
    if epilogue == 'relu_mask':
        return np.maximum(RNG.integers(-2, 3, (m, n)), 0).astype(dtype)
    return RNG.integers(-3, 4, n).astype(dtype)


@pytest.mark.parametrize('epilogue', gemm.EPILOGUES)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('m,n', [(1, 2), (gemm.TILE_ROWS + 1, 17), (gemm.BLOCK_ROWS + 13, 100),
                                 (7, 33), (3, 1)])
def test_epilogues_equal_numpy_in_tiles_and_after_blas(epilogue, dtype, m, n):
    """Every tile height and panel width (a narrow last panel, a partial row block), operands
    in every layout; integer values, so relu's ties at 0 are exact. K's helper gives the same
    whether gemm's tiles take the product or BLAS does (one row, one column, or forced)."""
    k = 5
    a = RNG.integers(-2, 3, (m, k)).astype(dtype)
    b = RNG.integers(-2, 3, (k, n)).astype(dtype)
    extra = epilogue_operand(epilogue, m, n, dtype)
    want = epilogue_reference(a, b, extra, epilogue)
    assert (want == 0).any() or m * n < 4
    tiled, helper = EPILOGUE_HELPERS[epilogue]
    for left, right in itertools.product(layouts(a), layouts(b)):
        out = np.full((m, n), np.nan, dtype)
        if n >= gemm.MIN_COLS:
            tiled(left, right, extra, out)
            np.testing.assert_array_equal(out, want)
        out[:] = np.nan
        helper(left, right, extra, out)
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize('epilogue', gemm.EPILOGUES)
def test_epilogues_of_big_products_through_blas(epilogue):
    """A product too big for one thread goes to BLAS, then one pass applies the epilogue."""
    a = RNG.integers(-2, 3, (300, 40)).astype(np.float32)
    b = RNG.integers(-2, 3, (40, 700)).astype(np.float32)
    assert not K._small_gemm(a, b)
    extra = epilogue_operand(epilogue, 300, 700, np.float32)
    out = np.full((300, 700), np.nan, np.float32)
    EPILOGUE_HELPERS[epilogue][1](a, b, extra, out)
    np.testing.assert_array_equal(out, epilogue_reference(a, b, extra, epilogue))


@pytest.mark.parametrize('epilogue', gemm.EPILOGUES)
@pytest.mark.parametrize('rows', [gemm.TILE_ROWS + 2, 2])   # tiles, and BLAS (too few rows)
def test_epilogues_keep_special_values_as_numpy(epilogue, rows):
    """inf, -inf and NaN in the product: relu keeps NaN and inf, makes -inf 0; a mask keeps an
    entry only where the relu output is > 0 (not where it is 0, -0.0 or NaN), NaN or not."""
    a = np.ones((rows, 3), np.float32)
    a[0, 0], a[1, 1] = np.inf, np.nan
    a[-1, 0] = -np.inf
    b = np.ones((3, 32), np.float32)
    b[:, 5] = 0.0                                  # inf * 0 = nan
    extra = epilogue_operand(epilogue, rows, 32, np.float32)
    if epilogue == 'relu_mask':
        extra[:, :4] = [np.nan, -0.0, 0.0, np.inf]
    else:
        extra[:3] = [np.nan, -np.inf, np.inf]
    out = np.empty((rows, 32), np.float32)
    EPILOGUE_HELPERS[epilogue][1](a, b, extra, out)
    with np.errstate(invalid='ignore'):
        np.testing.assert_array_equal(out, epilogue_reference(a, b, extra, epilogue))

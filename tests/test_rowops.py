"""The row intrinsics (backend/rowops.py) and the helpers built on them (the bag sum
gather_sum2, the sparse optimizers' row passes accumulate_rows2 and lazy_adam_rows2, and the
range check of indices) against numpy written here, bitwise: every width around the register
chunk (64 float32 or 32 float64 columns), float and integer tables, negative and repeated
indices, a single index, all indices equal, empty lists, special values, a table large enough
for the sorted path of the distinct rows."""
import numba
import numpy as np
import pytest

from tracejit.backend import kernels as K, rowops

RNG = np.random.default_rng(0)
sum_rows = numba.njit(lambda x, index, start, stop, out: rowops.sum_rows(x, index, start, stop,
                                                                         out))
add_row = numba.njit(lambda x, r, out, s: rowops.add_row(x, r, out, s))
WIDTHS = [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 130]
DTYPES = [np.float32, np.float64, np.int32]       # integer tables take the plain loops


def table(rows, width, dtype):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(-1000, 1000, (rows, width)).astype(dtype)
    x = RNG.standard_normal((rows, width)).astype(dtype)
    x[0, :4] = [np.inf, -np.inf, np.nan, -0.0][:width]
    return x


def same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def sequential_sum(x, index, dtype):
    """The rows added one after another from zero, in x's dtype (numpy adds lane by lane)."""
    total = np.zeros(x.shape[1], dtype)
    for i in index:
        total = total + x[i]
    return total


# ---------------------------------------------------------------------------- intrinsics

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('width', WIDTHS)
def test_sum_rows_adds_in_list_order_from_zero(width, dtype):
    x = table(9, width, dtype)
    index = np.array([3, -1, 0, 3, 3, 8, -9, 5], np.int64)
    out = np.full(width, 7.0, dtype)
    for start, stop in [(0, 8), (2, 3), (4, 4), (1, 7)]:
        sum_rows(x, index, start, stop, out)
        same_bits(out, sequential_sum(x, index[start:stop], dtype))


def test_sum_rows_of_nothing_is_plus_zero_and_minus_zero_rows_add_to_plus_zero():
    x = np.full((2, 20), -0.0, np.float32)
    out = np.full(20, np.nan, np.float32)
    sum_rows(x, np.array([0, 1], np.int32), 0, 0, out)
    same_bits(out, np.zeros(20, np.float32))
    sum_rows(x, np.array([0, 1], np.int32), 0, 2, out)
    same_bits(out, np.zeros(20, np.float32))      # 0 + -0 + -0 = +0, as in numpy


def test_sum_rows_reads_strided_tables_and_index_lists_of_any_integer_type():
    wide = table(12, 40, np.float32)
    x = wide[::3, 5:35]                             # rows 120 elements apart, unit stride in a row
    index = np.array([2, 0, 3, 3, 1, 0], np.int16)[::2]
    out = np.empty(30, np.float32)
    sum_rows(x, index, 0, 3, out)
    same_bits(out, sequential_sum(x, index, np.float32))
    with pytest.raises(ValueError, match='unit-stride'):
        sum_rows(wide[:, ::2], index, 0, 3, np.empty(20, np.float32))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('width', WIDTHS)
def test_add_row_adds_one_row_into_another(width, dtype):
    x, out = table(4, width, dtype), table(3, width, dtype)
    want = out.copy()
    for r, s in [(1, 2), (0, 0), (3, 2)]:
        want[s] = want[s] + x[r]
        add_row(x, r, out, s)
    same_bits(out, want)
    doubled = x.copy()
    add_row(doubled, 2, doubled, 2)            # the same row as operand and target
    same_bits(doubled[2], x[2] + x[2])
    if width > 1 and dtype != np.int32:          # the registers' path needs unit-stride rows
        with pytest.raises(ValueError, match='unit-stride'):
            add_row(x, 0, np.zeros((3, 2 * width), dtype)[:, ::2], 0)


def test_prefetching_a_row_changes_nothing():
    x = table(5, 70, np.float32)
    before = x.copy()
    for row in range(5):
        rowops.prefetch_row_for_write(x, row)
    same_bits(x, before)


# ---------------------------------------------------------------------------- helpers

def bag_sums(x, idx):
    """gather_sum2's rule: 32-row blocks summed in x's dtype, the blocks in float64."""
    out = np.empty((idx.shape[0], x.shape[1]), x.dtype)
    for b, bag in enumerate(idx):
        total = np.zeros(x.shape[1])
        for start in range(0, len(bag), K.GATHER_SUM_BLOCK):
            total += sequential_sum(x, bag[start:start + K.GATHER_SUM_BLOCK], x.dtype)
        out[b] = total
    return out


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('width', [1, 33, 64, 65])
@pytest.mark.parametrize('length', [0, 1, 31, 32, 33, 100])
def test_gather_sum2_equals_blocked_sums(length, width, dtype):
    x = table(50, width, dtype)
    idx = RNG.integers(-50, 50, size=(3, length))
    idx[1] = 7                                              # one bag of a single id repeated
    out = np.empty((3, width), dtype)
    K.gather_sum2(x, idx, out)
    same_bits(out, bag_sums(x, idx))
    for bad in (50, -51):
        idx[2, -1:] = bad
        if length:
            with pytest.raises(IndexError, match='out of range'):
                K.gather_sum2(x, idx, out)


def slot_sums(values, idx, repeat):
    """{row: the values of its indices added in order of index from zero}."""
    sums = {}
    for j, r in enumerate(idx):
        sums[r] = sums.get(r, np.zeros(values.shape[1], values.dtype)) + values[j // repeat]
    return sums


ID_LISTS = {
    'ties': np.array([4, 1, 4, 4, 0, 1, 9, 4], np.int32),
    'single': np.array([6], np.int32),
    'all equal': np.full(12, 3, np.int32),
    'distinct': np.arange(10, dtype=np.int32)[::-1].copy(),
}


@pytest.mark.parametrize('repeat', [1, 2])
@pytest.mark.parametrize('ids', ID_LISTS.values(), ids=ID_LISTS.keys())
@pytest.mark.parametrize('width', [5, 64, 70])
def test_lazy_adam_rows2_updates_the_rows_seen_as_numpy_float32(width, ids, repeat):
    f32 = np.float32
    b1, k1, b2, k2, lr, eps = f32(0.9), f32(0.1), f32(0.999), f32(0.001), f32(0.01), f32(1e-7)
    var, m, v = table(10, width, f32), table(10, width, f32) * f32(0.1), table(10, width, f32)
    v = np.abs(v)
    idx = np.repeat(ids, repeat)
    values = table(len(ids), width, f32)
    want = [var.copy(), m.copy(), v.copy()]
    with np.errstate(invalid='ignore'):             # inf / inf in the special values' row
        for r, g in slot_sums(values, idx, repeat).items():
            want[1][r] = b1 * want[1][r] + k1 * g
            want[2][r] = b2 * want[2][r] + k2 * (g * g)
            want[0][r] = want[0][r] - lr * want[1][r] / (np.sqrt(want[2][r]) + eps)
    K.lazy_adam_rows2(var, m, v, idx, values, repeat, b1, k1, b2, k2, lr, eps)
    for got, expected in zip((var, m, v), want):
        same_bits(got, expected)                  # the rows never seen included


@pytest.mark.parametrize('power', [1, 2])
@pytest.mark.parametrize('ids', ID_LISTS.values(), ids=ID_LISTS.keys())
def test_accumulate_rows2_updates_the_rows_seen_as_numpy(ids, power):
    decay, scale = np.float32(0.5), np.float32(-0.25)
    out = table(10, 67, np.float32)
    values = table(len(ids), 67, np.float32)
    want = out.copy()
    for r, total in slot_sums(values, ids, 1).items():
        want[r] = decay * want[r] + scale * (total * total if power == 2 else total)
    K.accumulate_rows2(out, ids, values, 1, decay, scale, power)
    same_bits(out, want)


def test_row_passes_on_a_table_far_larger_than_the_ids_take_the_sorted_path():
    """n > 8k + 4096 numbers the distinct rows by a sort instead of a table over the rows."""
    n = 200_000
    idx = np.array([199_999, 5, 199_999, 70_000, 5, 5], np.int64)
    values = table(3, 16, np.float32)
    out = np.zeros((n, 16), np.float32)
    K.accumulate_rows2(out, idx, values, 2, np.float32(1.0), np.float32(1.0), 1)
    want = np.zeros_like(out)
    for r, total in slot_sums(values, idx, 2).items():
        want[r] = np.float32(1.0) * want[r] + np.float32(1.0) * total
    same_bits(out, want)


def test_row_passes_raise_on_a_bad_index_before_writing_and_ignore_an_empty_batch():
    f32 = np.float32
    var, m, v = (table(6, 8, f32) for _ in range(3))
    before = [a.copy() for a in (var, m, v)]
    values = table(3, 8, f32)
    for bad in (6, -1):
        with pytest.raises(IndexError, match='out of range'):
            K.lazy_adam_rows2(var, m, v, np.array([1, bad, 2], np.int32), values, 1, f32(0.9),
                              f32(0.1), f32(0.999), f32(0.001), f32(0.01), f32(1e-7))
        with pytest.raises(IndexError, match='out of range'):
            K.accumulate_rows2(var, np.array([1, 2, bad], np.int32), values, 1, f32(1), f32(1), 1)
    K.lazy_adam_rows2(var, m, v, np.zeros(0, np.int32), values[:0], 1, f32(0.9), f32(0.1),
                      f32(0.999), f32(0.001), f32(0.01), f32(1e-7))
    K.accumulate_rows2(var, np.zeros(0, np.int32), values[:0], 1, f32(1), f32(1), 1)
    for got, want in zip((var, m, v), before):
        same_bits(got, want)


def test_sum_duplicates2_gives_every_index_the_sum_of_its_rows():
    idx = ID_LISTS['ties']
    u = table(len(idx), 65, np.float32)
    out = np.empty_like(u)
    K.sum_duplicates2(u, idx, out)
    sums = slot_sums(u, idx, 1)
    same_bits(out, np.stack([sums[r] for r in idx]))


def test_all_in_range_checks_every_value_against_both_bounds():
    ids = np.array([[0, 5], [9, 3]], np.int32)
    assert K.all_in_range(ids, 0, 10) and K.all_in_range(ids[:, ::-1], 0, 10)
    assert not K.all_in_range(ids, 0, 9) and not K.all_in_range(ids, 1, 10)
    assert K.all_in_range(np.zeros((0, 3), np.int64), 0, 0)
    values = np.array([0.5, 1.5, np.nan])
    assert K.all_in_range(values[:2], 0.0, 2.0) and not K.all_in_range(values, 0.0, 2.0)


def test_the_helpers_take_no_flags_from_the_kernel_that_compiles_them():
    # Numba passes a caller's fastmath on to a callee that leaves it unset: compiled first from a
    # fastmath kernel, lazy_adam_rows2 contracted b1 * m + k1 * g into an FMA, 1 ulp off the
    # bitwise tests above when they ran after a LazyAdam step (and its disk-cache entry kept it)
    import numba
    from numba.core.caching import FunctionCache
    helpers = {name: f for name, f in vars(K).items()
               if isinstance(f, numba.core.registry.CPUDispatcher)
               and isinstance(f._cache, FunctionCache)}
    assert {'lazy_adam_rows2', 'accumulate_rows2', 'gather_sum2', 'dot_into'} <= set(helpers)
    assert [name for name, f in helpers.items() if 'fastmath' not in f.targetoptions] == []

"""Accuracy, special values and vectorisation of tracejit.backend.fastmath.

Each function runs inside a compiled njit loop (as generated kernels call
it), once with the kernels' flags (fastmath without nnan/ninf,
error_model='numpy') and once with Numba's defaults, and is compared with a
higher-precision numpy reference: float64 for the float32 functions,
longdouble for the float64 ones.
"""
import functools
import re

import numpy as np
import pytest
from numba import njit

from tracejit.backend import fastmath
from tracejit.backend.fpflags import FASTMATH

NAMES = ["exp", "log", "log1p", "tanh", "sigmoid", "softplus"]
KERNEL_FLAGS = dict(fastmath=FASTMATH,
                    error_model="numpy")
CALLERS = {"kernel_flags": KERNEL_FLAGS, "numba_defaults": {}}
# Max relative error, and the absolute floor for subnormal results (one
# unit in the last place of the smallest subnormal).
RTOL = {np.float32: 2.5e-7, np.float64: 1e-14}
SUBNORMAL = {np.float32: 2.0 ** -149, np.float64: 2.0 ** -1074}
REF_DTYPE = {np.float32: np.float64, np.float64: np.longdouble}


@functools.cache
def compiled_loop(name, dtype, caller):
    funcs = (fastmath.FLOAT32_FUNCS if dtype is np.float32
             else fastmath.FLOAT64_FUNCS)
    fn = funcs[name]

    @njit(**CALLERS[caller])
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])
    return loop


def run(name, dtype, x, caller="kernel_flags"):
    x = np.ascontiguousarray(x, dtype=dtype)
    out = np.empty_like(x)
    compiled_loop(name, dtype, caller)(x, out)
    return out


def reference(name, x):
    """The function in higher precision, with the same stable formulas."""
    x = x.astype(REF_DTYPE[x.dtype.type])
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1, e) / (1 + e)
        if name == "softplus":
            return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        return getattr(np, name)(x)


def special_values(dtype):
    info = np.finfo(dtype)
    tiny, big = info.smallest_subnormal, info.max
    exp_max = np.log(big.astype(np.float64))          # overflow edge
    exp_min = np.log(float(tiny)) - np.log(2.0)       # underflow edge
    edges = [np.nan, np.inf, 1.0, 2.0, 0.5, 1e-30, 1e-300, tiny, 2 * tiny,
             info.smallest_normal, big, exp_max, exp_min,
             np.log(float(info.smallest_normal)), 0.625, 9.0, 20.0]
    vals = np.array(edges, dtype=np.float64).astype(dtype)
    vals = np.concatenate([vals, -vals, [dtype(0), -dtype(0)]])
    vals = np.concatenate([vals, [dtype(-1)]])        # log1p's pole
    with np.errstate(over="ignore"):                  # and all neighbours
        return np.concatenate([vals, np.nextafter(vals, dtype(np.inf)),
                               np.nextafter(vals, dtype(-np.inf))])


def sample_inputs(dtype):
    rng = np.random.default_rng(1234)
    min_exp = -40 if dtype is np.float32 else -310
    logs = np.logspace(min_exp, 4, 20_000)
    int_t = np.uint32 if dtype is np.float32 else np.uint64
    max_bits = np.array(np.inf, dtype).view(int_t)
    random_bits = rng.integers(0, max_bits, 50_000, dtype=int_t,
                               endpoint=False).view(dtype)
    parts = [logs, -logs, np.linspace(-20, 20, 40_001),
             np.linspace(-1, 1, 20_001), 1 + np.linspace(-1e-3, 1e-3, 2001),
             random_bits, -random_bits]
    parts = [p.astype(dtype) for p in parts] + [special_values(dtype)]
    return np.concatenate(parts)


def check_close(name, dtype, x, out):
    ref = reference(name, x)
    with np.errstate(over="ignore"):
        expected = ref.astype(dtype)                  # rounded reference
    nonfinite = ~np.isfinite(expected)
    same = (out == expected) | (np.isnan(out) & np.isnan(expected))
    bad = nonfinite & ~same
    assert not bad.any(), (f"{name}: inf/nan mismatch at x={x[bad][:5]}: "
                           f"got {out[bad][:5]}, want {expected[bad][:5]}")
    fin = ~nonfinite
    err = np.abs(out[fin].astype(ref.dtype) - ref[fin])
    allowed = RTOL[dtype] * np.abs(ref[fin]) + SUBNORMAL[dtype]
    ratio = np.where(np.isfinite(err), err / allowed, np.inf)
    worst = int(np.argmax(ratio))
    assert ratio[worst] <= 1, (
        f"{name}: error {float(err[worst]):.3g} at x={x[fin][worst]!r} "
        f"(got {out[fin][worst]!r}, want {float(ref[fin][worst])!r})")


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_accuracy(name, dtype, caller):
    x = sample_inputs(dtype)
    check_close(name, dtype, x, run(name, dtype, x, caller))


NAN = np.nan
INF = np.inf
EXACT_CASES = [
    ("exp", -INF, 0.0), ("exp", INF, INF), ("exp", NAN, NAN),
    ("exp", 0.0, 1.0), ("exp", 1000.0, INF), ("exp", -1000.0, 0.0),
    ("log", 0.0, -INF), ("log", -0.0, -INF), ("log", -1.0, NAN),
    ("log", INF, INF), ("log", -INF, NAN), ("log", 1.0, 0.0),
    ("log1p", -1.0, -INF), ("log1p", -2.0, NAN), ("log1p", INF, INF),
    ("log1p", 1e-30, 1e-30), ("log1p", -1e-30, -1e-30),
    ("tanh", INF, 1.0), ("tanh", -INF, -1.0), ("tanh", 1e-30, 1e-30),
    ("tanh", -1e-30, -1e-30), ("tanh", 0.0, 0.0),
    ("sigmoid", INF, 1.0), ("sigmoid", -INF, 0.0), ("sigmoid", 0.0, 0.5),
    ("softplus", INF, INF), ("softplus", -INF, 0.0),
    ("softplus", 1000.0, 1000.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,x,want", EXACT_CASES)
def test_exact_special_values(name, x, want, dtype):
    got = run(name, dtype, [x])[0]
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert got == dtype(want), (name, x, got)
    for x_nan in (NAN, -NAN):
        assert np.isnan(run(name, dtype, [x_nan])[0])


@pytest.mark.parametrize("name", NAMES)
def test_float32_loop_vectorises_without_float64(name):
    loop = compiled_loop(name, np.float32, "kernel_flags")
    run(name, np.float32, [1.0])
    ir = loop.inspect_llvm(loop.signatures[0])
    assert re.search(r"<(4|8|16) x float>", ir), f"{name} did not vectorise"
    assert "double" not in ir, f"{name} promotes to float64"


def test_tables_cover_every_op_for_both_dtypes():
    assert set(fastmath.FLOAT32_FUNCS) == set(fastmath.FLOAT64_FUNCS)
    assert set(fastmath.FLOAT32_FUNCS) == set(NAMES)


def test_each_function_inlines_twice_into_one_loop():
    # Numba's IR inliner has failed when one function was inlined twice into
    # the same caller (e.g. with scalar `.view`); generated kernels do that.
    # softplus32 inlines exp32, log1p32 and log32; the others inline exp32.
    names = ["softplus", "softplus", "tanh", "sigmoid", "exp"]
    calls = " + ".join(f"f.{fastmath.FLOAT32_FUNCS[name].__name__}(x[i])"
                       for name in names)
    namespace = {"f": fastmath}
    exec(f"def twice(x, out):\n"
         f"    for i in range(x.size):\n"
         f"        out[i] = {calls}\n", namespace)
    loop = njit(**KERNEL_FLAGS)(namespace["twice"])
    x = np.array([-3.0, 0.25, 0.5, 2.0], np.float32)
    out = np.empty_like(x)
    loop(x, out)
    want = sum(run(name, np.float32, x).astype(np.float64) for name in names)
    np.testing.assert_allclose(out, want, rtol=1e-6)

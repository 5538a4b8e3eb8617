"""Vectorisable transcendental functions for generated Numba kernels.

Why this module exists: this machine's LLVM has no SVML, so ``np.exp``,
``np.tanh`` or ``np.log1p`` inside ``@njit`` code are scalar libm calls that
block loop vectorisation (exp 2.1 ns/element vs numpy's 0.5; tanh 17.6;
log1p 15.6).  The float32 functions below are written as plain arithmetic
(Cody-Waite range reduction, minimax polynomials, integer bit tricks through
a bitcast intrinsic, and branch-free selects) so LLVM turns a loop
that calls them into SIMD code (AVX2 or AVX-512, whatever the CPU has):
0.2-0.6 ns/element at <= 2e-7 relative error.  They propagate NaN and treat +-Inf, zeros, denormals,
overflow and underflow as numpy does.

The float64 functions call numpy's own (libm) versions -- correct, not fast
-- except that ``sigmoid64``/``softplus64`` use overflow-free formulations.

Every function is a scalar ``@njit(inline='always')`` function: Numba
inlines it into the caller's IR, where it is compiled with the *caller's*
fastmath flags (so a loop calling it vectorises; left to LLVM's inliner,
softplus32 was not inlined and ran 15x slower).  Callers must not enable
``nnan``/``ninf`` (the NaN/Inf handling relies on them).  Operations whose
rounding order matters, and all divisions, go through ``_strict_*`` /
``_div`` intrinsics that fast-math cannot reassociate and that carry no
``error_model='python'`` zero check, so results and vectorisation do not
depend on the caller's error model.  The float32 functions accept float32
arguments only: a float64 argument (e.g. ``exp32(2.0 * x)``) fails to type,
so emit ``np.float32`` constants.

``__all__`` lists what kernels call (compiler.py imports these names into every kernel
module); ``FLOAT32_FUNCS`` / ``FLOAT64_FUNCS`` map each function's name to its implementation,
for the tests and benchmarks.
"""
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .fpflags import FASTMATH

__all__ = [
    "exp32", "log32", "log1p32", "tanh32", "sigmoid32", "softplus32",
    "exp64", "log64", "log1p64", "tanh64", "sigmoid64", "softplus64",
]

_jit = njit(inline="always", fastmath=FASTMATH, error_model="numpy")

_f = np.float32
_ZERO, _HALF, _ONE, _TWO = _f(0.0), _f(0.5), _f(1.0), _f(2.0)
_INF, _NAN = _f(np.inf), _f(np.nan)
_FLT_MIN = _f(2.0 ** -126)          # smallest normal float32
_TWO23 = _f(2.0 ** 23)              # rescales denormals to normals in log
_TWO24 = _f(2.0 ** 24)              # log1p(x) == log(x) to float32 above it
_LOG2E = _f(1.4426950408889634)
_LN2_HI = _f(0.693359375)           # 9 significant bits: n * _LN2_HI is exact
_LN2_LO = _f(-2.12194440e-4)        # ln 2 - _LN2_HI
# exp(x) is 0 below _EXP_LO and +inf above _EXP_HI in float32; clamping
# keeps the integer exponent in range (and out of int conversion overflow).
_EXP_LO, _EXP_HI = _f(-104.0), _f(89.0)
_EXP_NEG_LO = _f(-87.0)              # exp(-87) = 1.6e-38: the smallest normals
_SQRT_HALF_BITS = 0x3F3504F3        # float32 bits of sqrt(0.5)
_MANT_BITS = 23
_EXP_BIAS = 127
_SQRT2_M1 = _f(0.41421356)         # sqrt(2) - 1: where softplus's log1p splits
_TANH_SMALL = _f(0.625)             # polynomial below, exp formula above

# Minimax coefficients (Cephes single precision), highest degree first.
# exp(r) = 1 + r + r^2 * P(r) on |r| <= ln(2)/2
_EXP_P = (_f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3),
          _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1))
# log(1 + f) = f - f^2/2 + f^3 * P(f) on sqrt(0.5) - 1 <= f < sqrt(2) - 1
_LOG_P = (_f(7.0376836292e-2), _f(-1.1514610310e-1), _f(1.1676998740e-1),
          _f(-1.2420140846e-1), _f(1.4249322787e-1), _f(-1.6668057665e-1),
          _f(2.0000714765e-1), _f(-2.4999993993e-1), _f(3.3333331174e-1))
# tanh(x) = x + x^3 * P(x^2) on |x| < 0.625
_TANH_P = (_f(-5.70498872745e-3), _f(2.06390887954e-2),
           _f(-5.37397155531e-2), _f(1.33314422036e-1),
           _f(-3.33332819422e-1))


# --- intrinsics -------------------------------------------------------------

def _strict_binop(opname):
    """An intrinsic for one IEEE operation that the caller's flags leave alone.

    Numba adds the caller's fast-math flags only to float instructions that
    have none; tagging this one with ``nsz`` alone (harmless for these
    operations) keeps it from being reassociated or contracted, so e.g. ``(1 + x) - 1`` is not
    simplified to ``x``.  An intrinsic division also skips the zero check
    of ``error_model='python'``, which would raise on x/0 and block
    vectorisation.  All of them still vectorise.
    """
    @intrinsic
    def strict(typingctx, a, b):
        if not isinstance(a, types.Float) or a != b:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, opname)(*args, flags=("nsz",))
        return a(a, b), codegen
    return strict


_strict_add = _strict_binop("fadd")
_strict_sub = _strict_binop("fsub")
_strict_mul = _strict_binop("fmul")
_div = _strict_binop("fdiv")


@intrinsic
def _bitcast(typingctx, value, to):
    """Reinterpret a 32-bit scalar's bits as ``to`` (np.int32 / np.float32).

    Used instead of ``scalar.view(dtype)``, which Numba's feature check
    rejects once a function using it is inlined twice into one caller.
    """
    target = to.instance_type if isinstance(to, types.NumberClass) else None
    if target is None or value.bitwidth != 32 or target.bitwidth != 32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(target))
    return target(value, to), codegen


# --- float32 building blocks -------------------------------------------------

@_jit
def _horner(c, x):
    """Evaluate the polynomial with coefficients ``c`` (highest first)."""
    acc = c[0]
    for k in range(1, len(c)):
        acc = acc * x + c[k]
    return acc


@_jit
def _pow2(k):
    """2.0**k as float32 for integer -126 <= k <= 127, built from its bits."""
    return _bitcast(np.int32((k + _EXP_BIAS) << _MANT_BITS), np.float32)


@_jit
def _exp_reduce(x):
    """Split exp(x) = 2**n * (1 + p); returns (n, p = expm1(r)), |r| <= ln2/2.

    NaN is clamped like -inf here (int conversion of NaN is undefined in
    LLVM); callers restore it with a final select.
    """
    xc = x if x > _EXP_LO else _EXP_LO
    xc = xc if xc < _EXP_HI else _EXP_HI
    nf = np.floor(xc * _LOG2E + _HALF)
    r = _strict_sub(_strict_sub(xc, nf * _LN2_HI), nf * _LN2_LO)
    return np.int32(nf), r + r * r * _horner(_EXP_P, r)


@_jit
def _scale_pow2(y, n):
    """y * 2**n for -150 <= n <= 128, as two exact power-of-two factors so
    the product overflows to inf / underflows through denormals correctly."""
    half = n >> 1
    return _strict_mul(_strict_mul(y, _pow2(half)), _pow2(n - half))


# --- float32 public functions ----------------------------------------------

@_jit
def exp32(x):
    n, p = _exp_reduce(x)
    y = _scale_pow2(_strict_add(_ONE, p), n)
    return y if x == x else x


@_jit
def log32(x):
    # Denormals are rescaled to normals so the exponent field is meaningful.
    tiny = x < _FLT_MIN
    bits = _bitcast(x * _TWO23 if tiny else x, np.int32)
    # Exponent k such that m = x / 2**k lies in [sqrt(0.5), sqrt(2)).
    k = (bits - _SQRT_HALF_BITS) >> _MANT_BITS
    m = _bitcast(np.int32(bits - (k << _MANT_BITS)), np.float32)
    kf = np.float32(k) - (_f(_MANT_BITS) if tiny else _ZERO)
    f = m - _ONE                                    # exact (Sterbenz)
    z = f * f
    tail = f * z * _horner(_LOG_P, f) - _HALF * z + kf * _LN2_LO
    y = _strict_add(_strict_add(f, tail), kf * _LN2_HI)
    y = y if x < _INF else x                        # +inf, NaN
    y = y if x >= _ZERO else _NAN                   # negative
    return y if x != _ZERO else -_INF


@_jit
def log1p32(x):
    """log(u) + (x - (u - 1)) / u with u = 1 + x: the second term restores
    what rounding u lost, so tiny x gives exactly x."""
    u = _strict_add(_ONE, x)
    log_u = log32(u)
    y = log_u + _div(_strict_sub(x, _strict_sub(u, _ONE)), u)
    # Keep log(u) where the correction is 0/0 or inf-inf (u = 0, u = inf)
    # or meaningless (u - 1 inexact above 2**24).
    return y if (u < _TWO24) & (u != _ZERO) else log_u


@_jit
def _exp_nonpositive(x):
    """exp(x) for x <= 0, not NaN: clamped at -87 (whose exp is still normal), so one power
    of two scales it and no overflow or denormal path is needed; below -87 callers no longer
    depend on the exact value (tanh32 rounds to +-1 from |x| = 9)."""
    xc = x if x > _EXP_NEG_LO else _EXP_NEG_LO
    nf = np.floor(xc * _LOG2E + _HALF)
    r = _strict_sub(_strict_sub(xc, nf * _LN2_HI), nf * _LN2_LO)
    p = r + r * r * _horner(_EXP_P, r)
    return _strict_mul(_strict_add(_ONE, p), _pow2(np.int32(nf)))


@_jit
def tanh32(x):
    """A polynomial for |x| < 0.625, else (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 0.29]."""
    ax = abs(x)
    small = x + x * (x * x) * _horner(_TANH_P, x * x)
    e = _exp_nonpositive(-_TWO * ax)
    big = _div(_ONE - e, _ONE + e)
    big = big if x >= _ZERO else -big
    big = big if x == x else x
    return small if ax < _TANH_SMALL else big


@_jit
def sigmoid32(x):
    """1 / (1 + exp(-x)) via e = exp(-|x|), which never overflows."""
    e = exp32(-abs(x))
    return _div(_ONE if x >= _ZERO else e, _ONE + e)


@_jit
def softplus32(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(e) with e = exp(-|x|) in (0, 1].

    log1p is specialised to that range: 1 + e = 2**k * (1 + f) with f = e
    (k = 0) or f = e/2 - 1/2 (k = 1), both exact or within 2**-26, so no
    rounding of 1 + e needs correcting (no division, no bit tricks): 2.5x
    faster than the general log1p32, and exactly e for tiny e.
    """
    e = exp32(-abs(x))
    big = e >= _SQRT2_M1
    f = e * _HALF - _HALF if big else e
    kf = _ONE if big else _ZERO
    z = f * f
    tail = f * z * _horner(_LOG_P, f) - _HALF * z + kf * _LN2_LO
    log1p_e = _strict_add(_strict_add(f, tail), kf * _LN2_HI)
    return (x if x > _ZERO else _ZERO) + log1p_e


# --- float64: numpy's libm versions (correct, not vectorised) ---------------

@_jit
def exp64(x):
    return np.exp(x)


@_jit
def log64(x):
    return np.log(x)


@_jit
def log1p64(x):
    return np.log1p(x)


@_jit
def tanh64(x):
    return np.tanh(x)


@_jit
def sigmoid64(x):
    e = np.exp(-abs(x))
    return _div(1.0 if x >= 0.0 else e, 1.0 + e)


@_jit
def softplus64(x):
    return (x if x > 0.0 else 0.0) + np.log1p(np.exp(-abs(x)))


FLOAT32_FUNCS = {
    "exp": exp32, "log": log32, "log1p": log1p32,
    "tanh": tanh32, "sigmoid": sigmoid32, "softplus": softplus32,
}
FLOAT64_FUNCS = {
    "exp": exp64, "log": log64, "log1p": log1p64,
    "tanh": tanh64, "sigmoid": sigmoid64, "softplus": softplus64,
}

"""The floating-point contract every generated kernel and fastmath helper is compiled under.

Allowed: reassociation and contraction (reductions vectorise, a*b+c becomes an FMA) and
ignoring the sign of zero. Never `nnan`/`ninf`: NaN and Inf must propagate. Never `arcp`:
it lets LLVM replace 1/sqrt(x) and x/sqrt(y) by the rsqrt estimate plus a Newton step, which
gives NaN at 0 and inf and -inf at denormals (eager numpy gives inf, 0 and a large finite value).

Kept free of Numba so that lowering a graph does not wait for Numba to import.
"""
FASTMATH = {'reassoc', 'contract', 'nsz'}  # a set: Numba refuses a frozenset


def fastmath_source():
    """FASTMATH as a Python literal with a fixed order (generated source is hashed for the
    cache)."""
    return '{' + ', '.join(repr(flag) for flag in sorted(FASTMATH)) + '}'

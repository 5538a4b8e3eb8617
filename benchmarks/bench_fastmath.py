"""ns/element of tracejit.backend.fastmath vs numpy ufuncs and libm-in-njit.

For each function, over 2**20 elements (float32 by default; ``--float64``
for the float64 variants), times the median of repeated calls of:
  numpy     -- numpy's ufunc (scipy.special.expit for sigmoid,
               np.logaddexp(0, x) for softplus), writing into ``out=``
  njit+libm -- an njit loop calling np.exp / np.log1p / ... per element
  fastmath  -- an njit loop calling the fastmath function
All loops use fastmath=fpflags.FASTMATH and
error_model='numpy', as generated kernels do.  The ``vec`` column is the
widest ``<N x float>`` vector type in the fastmath loop's LLVM IR (1: not
vectorised; for float64, libm calls inside a vector loop stay scalar).

Run: PYTHONPATH=. python3 benchmarks/bench_fastmath.py [--float64]
"""
import argparse
import re
import sys
import time

import numpy as np
import scipy.special
from numba import njit

from tracejit.backend import fastmath
from tracejit.backend.fpflags import FASTMATH

N = 2 ** 20
FLAGS = dict(fastmath=FASTMATH,
             error_model="numpy")


@njit(**FLAGS)
def _libm_sigmoid(x):
    return 1 / (1 + np.exp(-x))


@njit(**FLAGS)
def _libm_softplus(x):
    return max(x, 0) + np.log1p(np.exp(-abs(x)))


NUMPY = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p,
    "tanh": np.tanh, "sigmoid": scipy.special.expit,
    "softplus": lambda x, out: np.logaddexp(0, x, out=out),
}
LIBM = {
    "exp": njit(**FLAGS)(lambda x: np.exp(x)),
    "log": njit(**FLAGS)(lambda x: np.log(x)),
    "log1p": njit(**FLAGS)(lambda x: np.log1p(x)),
    "tanh": njit(**FLAGS)(lambda x: np.tanh(x)),
    "sigmoid": _libm_sigmoid,
    "softplus": _libm_softplus,
}
INPUT_RANGE = {"log": (1e-3, 100.0), "log1p": (-0.9, 100.0)}  # else +-10


def make_loop(fn):
    @njit(**FLAGS)
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])
    return loop


def median_ns(call, repeats):
    call()  # warm-up (and compile)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / N * 1e9


def vector_width(loop):
    ir = loop.inspect_llvm(loop.signatures[0])
    widths = [int(w) for w in re.findall(r"<(\d+) x (?:float|double)>", ir)]
    return max(widths, default=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    dtype = np.float64 if args.float64 else np.float32
    funcs = fastmath.FLOAT64_FUNCS if args.float64 else fastmath.FLOAT32_FUNCS
    rng = np.random.default_rng(0)

    print(f"{N} {np.dtype(dtype).name} elements, ns/element "
          f"(median of {args.repeats})")
    print(f"{'function':10s} {'numpy':>7s} {'njit+libm':>10s} "
          f"{'fastmath':>9s} {'vec':>4s} {'vs numpy':>9s} {'vs libm':>8s}")
    for name, fn in funcs.items():
        lo, hi = INPUT_RANGE.get(name, (-10.0, 10.0))
        x = rng.uniform(lo, hi, N).astype(dtype)
        out = np.empty_like(x)
        fast, libm = make_loop(fn), make_loop(LIBM[name])
        t_np = median_ns(lambda: NUMPY[name](x, out=out), args.repeats)
        t_libm = median_ns(lambda: libm(x, out), args.repeats)
        t_fast = median_ns(lambda: fast(x, out), args.repeats)
        print(f"{name:10s} {t_np:7.2f} {t_libm:10.2f} {t_fast:9.2f} "
              f"{vector_width(fast):4d} {t_np / t_fast:8.1f}x "
              f"{t_libm / t_fast:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

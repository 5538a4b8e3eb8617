"""W8's matrix products one by one: `python -m benchmarks.gemm_shapes [--rounds N] [--calls N]`.

Each product of W8's step (five convolution products, three dense ones) in the layout its
generated kernel passes to `K.dot` (im2col columns C-ordered, their transposes F-ordered,
`W.T` a transposed view), run by numpy (its OpenBLAS, all threads), by Numba's `np.dot`
(scipy's OpenBLAS) on one and on two threads, by `gemm.gemm_into`, and by `K.dot_into` (the
policy a kernel follows). Implementations take turns round by round, with a pause before each
(an OpenBLAS busy-waits ~0.1 s after a call); a round times `calls` calls and keeps the best.
`--calls 1` times each product cold, as a step meets it (after the pause, W8's first product
took 1.5 ms in gemm against 0.5 called again at once).
Prints the best and the median round in microseconds, and how many cores other processes kept
busy meanwhile: two-thread BLAS suffers far more from a busy second core than one thread.
"""
import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ''):   # run as `python benchmarks/gemm_shapes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.run import BackgroundMeter  # noqa: E402
from tracejit.backend import gemm, kernels as K  # noqa: E402

BATCH = 128
ROWS1, ROWS2 = BATCH * 26 * 26, BATCH * 11 * 11   # im2col rows of the two convolutions


def w8_products():
    """[(name, a, b)] in the layouts of W8's kernel."""
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    cols1, dy1, cols2, dy2, w2 = arr(ROWS1, 9), arr(ROWS1, 32), arr(ROWS2, 288), \
        arr(ROWS2, 64), arr(288, 64)
    flat, dense, g = arr(BATCH, 1600), arr(1600, 10), arr(BATCH, 10)
    return [('conv1 cols @ W', cols1, arr(9, 32)), ('conv1 cols.T @ dy', cols1.T, dy1),
            ('conv2 cols @ W', cols2, w2), ('conv2 cols.T @ dy', cols2.T, dy2),
            ('conv2 dy @ W.T', dy2, w2.T), ('dense x @ W', flat, dense),
            ('dense g @ W.T', g, dense.T), ('dense x.T @ g', flat.T, g)]


@numba.njit(nogil=True)
def blas_on(a, b, out, threads):
    """Numba's np.dot (scipy's OpenBLAS) on `threads` threads, the count restored after."""
    before = K._blas_get_threads()
    K._blas_set_threads(threads)
    np.dot(a, b, out)
    K._blas_set_threads(before)


def implementations():
    return {'numpy': lambda a, b, out: np.matmul(a, b, out=out),
            'blas 1': lambda a, b, out: blas_on(a, b, out, 1),
            'blas 2': lambda a, b, out: blas_on(a, b, out, 2),
            'gemm': gemm.gemm_into,
            'K.dot_into': K.dot_into}


def measure(rounds, calls):
    impls = implementations()
    table = []
    for name, a, b in w8_products():
        out = np.empty((a.shape[0], b.shape[1]), np.float32)
        for fn in impls.values():   # compile, and check against float64
            fn(a, b, out)
            want = a.astype(np.float64) @ b.astype(np.float64)
            assert np.allclose(out, want, rtol=1e-3, atol=1e-3), name
        times = {impl: [] for impl in impls}
        with BackgroundMeter() as meter:
            for _ in range(rounds):
                for impl, fn in impls.items():
                    time.sleep(0.15)
                    best = float('inf')
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        fn(a, b, out)
                        best = min(best, time.perf_counter() - t0)
                    times[impl].append(best)
        table.append((name, a.shape, b.shape[1], times, meter.cores))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--calls', type=int, default=5)
    options = parser.parse_args(argv)
    table = measure(options.rounds, options.calls)
    impls = list(table[0][3])
    print(f'{"product":20} {"m x k x n":>18} ' + ' '.join(f'{i:>15}' for i in impls)
          + '  bg cores')
    print(f'{"":39} ' + ' '.join(f'{"best / median":>15}' for _ in impls))
    for name, (m, k), n, times, busy in table:
        cells = ' '.join(f'{min(t) * 1e6:7.0f}/{statistics.median(t) * 1e6:<7.0f}'
                         for t in times.values())
        print(f'{name:20} {f"{m}x{k}x{n}":>18} {cells}  {busy:.2f}')


if __name__ == '__main__':
    main()

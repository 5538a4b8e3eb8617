"""Compile time and step time of a recurrent step written as a native loop (tj.scan) against the
same step unrolled by a Python loop, for several sequence lengths, in one process run.

    python -m benchmarks.control_flow [--lengths 4,16,64] [--repeats 7]

A fresh cache directory per kernel makes every first call a Numba compile. The scan's kernel
source is the same for every length (one compile for all); the unrolled kernel grows with it.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _step(tj, length, unrolled):
    w = tj.Variable(np.full((16, 16), 0.05, np.float32))

    @tj.function
    def step(xs):
        with tj.GradientTape() as tape:
            if unrolled:
                h = tj.zeros((8, 16))
                for t in range(length):
                    h = tj.tanh(tj.matmul(h, w) + xs[t])
                last = h
            else:
                hs = tj.scan(lambda h, x: tj.tanh(tj.matmul(h, w) + x), xs,
                             initializer=tj.zeros((8, 16)))
                last = hs[-1]
            loss = tj.reduce_mean(last * last)
        w.assign_sub(0.1 * tape.gradient(loss, w))
        return loss
    return step


def _median_us(fn, arg, repeats, n=200):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn(arg)
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--lengths', default='4,16,64')
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args()
    os.environ['TRACEJIT_BACKGROUND_COMPILE'] = '0'
    import tracejit as tj
    tj.config.compile_in_background = False
    print(f'{"length":>6} {"kind":>9} {"compile s":>10} {"us/step":>9}')
    for length in (int(n) for n in args.lengths.split(',')):
        xs = np.random.default_rng(0).normal(size=(length, 8, 16)).astype(np.float32)
        for unrolled in (False, True):
            os.environ['TRACEJIT_CACHE_DIR'] = tempfile.mkdtemp(prefix='tj-control-bench-')
            step = _step(tj, length, unrolled)
            start = time.perf_counter()
            step(xs)
            compile_s = time.perf_counter() - start
            us = _median_us(step, xs, args.repeats)
            kind = 'unrolled' if unrolled else 'scan'
            print(f'{length:>6} {kind:>9} {compile_s:>10.2f} {us:>9.1f}')


if __name__ == '__main__':
    main()

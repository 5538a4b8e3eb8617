"""Cost of calls back into Python from a compiled step (tj.print, a passing assertion,
numpy_function), against the same step without them, in one process.

    python -m benchmarks.bench_host_calls [--repeats 7]

The step is an SGD update of a linear model on 1000 samples (W1's shape). Each variant runs in
blocks of N steps taking turns; the table gives the median microseconds per step and the ratio
to the plain step. A step without host calls compiles to the same kernel source as before host
calls existed (no object-mode code), so its cost is unchanged by construction; the plain row
measures it next to the others.
"""
import argparse
import contextlib
import io
import sys
import time

import numpy as np

import tracejit as tj


def _variants():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000).astype(np.float32)
    y = (3 * x + 2 + rng.normal(size=1000) * 0.1).astype(np.float32)

    def make(extra):
        w, b = tj.Variable(0.0), tj.Variable(0.0)

        @tj.function
        def step(x, y):
            with tj.GradientTape() as tape:
                loss = tj.reduce_mean(tj.square(w * x + b - y))
            gw, gb = tape.gradient(loss, [w, b])
            w.assign_sub(0.01 * gw)
            b.assign_sub(0.01 * gb)
            extra(loss, x)
            return loss
        return step

    def nothing(loss, x):
        return None

    def printing(loss, x):
        tj.print('loss', loss)

    def asserting(loss, x):
        tj.debugging.assert_non_negative(loss)

    def numpy_call(loss, x):
        tj.numpy_function(lambda a: a, [x], tj.float32)

    return (x, y), [('plain', make(nothing)), ('tj.print', make(printing)),
                    ('assert (passing)', make(asserting)), ('numpy_function', make(numpy_call))]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--steps', type=int, default=2000)
    args = parser.parse_args(argv)
    tj.config.compile_in_background = False
    data, variants = _variants()
    sink = io.StringIO()
    times = {name: [] for name, _ in variants}
    with contextlib.redirect_stderr(sink):
        for _, step in variants:
            step(*data)                      # trace and compile
        for _ in range(args.repeats):
            for name, step in variants:
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(*data)
                times[name].append((time.perf_counter() - start) / args.steps * 1e6)
                sink.seek(0)
                sink.truncate()
    plain = float(np.median(times['plain']))
    print(f'{"variant":<20} {"us/step":>9} {"vs plain":>9}   ({args.repeats} x {args.steps} steps)')
    for name, _ in variants:
        median = float(np.median(times[name]))
        print(f'{name:<20} {median:9.2f} {median / plain:8.2f}x')
    source = variants[0][1].lower(*data).source
    print('plain kernel has object-mode code:', 'objmode' in source, file=sys.stdout)


if __name__ == '__main__':
    main()

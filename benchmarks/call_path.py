"""Where the time of a compiled step's call goes when the kernel itself is tiny (W1, W2).

    python -m benchmarks.call_path [--blocks 25] [--steps 20000]

W1's step (`tracejit_workloads.make_linreg`: 1000 samples, scalar W and b, MSE, SGD) called on
the same arrays, peeled layer by layer:

- `step(x, y)`: what a user's loop pays (the call specialised to the entry, see fast_call.py);
- `fast key`: the same call through the key of its positional arguments and the entry it
  selects (what a call unlike the last one pays, and every call paid before fast_call.py);
- `execute`: the entry run without any argument checks (locks, Kernel.run, output Tensor);
- `dispatcher`: Numba's dispatcher called with the kernel's arguments (it types them again);
- `entry point`: the compiled entry point with the same arguments: the floor of one native call
  with this many arguments (unboxing them included).

Then W2's loop step (a batch of 100 sliced from numpy arrays each call) next to the slicing
alone. Each figure is ns per call: the best and the median of `--blocks` blocks of `--steps`
calls (the best is the steadier one on a shared machine).
"""
import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ''):   # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import tracejit_workloads  # noqa: E402

function_module = sys.modules['tracejit.function']   # `tracejit.function` is the decorator
from benchmarks.workloads import make_w1, make_w2  # noqa: E402


def _timed(fn, blocks, steps):
    """(best, median) ns per call over `blocks` blocks of `steps` calls."""
    per_call = []
    for _ in range(blocks):
        start = time.perf_counter_ns()
        for _ in range(steps):
            fn()
        per_call.append((time.perf_counter_ns() - start) / steps)
    return min(per_call), statistics.median(per_call)


def _ready_step(problem):
    """(the compiled step, its feed) after warm-up steps, with the kernel compiled."""
    feed = problem.new_feed()
    bench = tracejit_workloads.make_linreg(problem, feed)
    bench.step()
    bench.ready()
    for _ in range(3):
        bench.step()
    return bench.ready.__self__, feed


def w1_layers():
    """[(name, zero-argument callable)] for W1, outermost first."""
    step, feed = _ready_step(make_w1())
    x, y = feed()
    entry = next(iter(step._cache.values()))
    kernel = getattr(entry.executable, 'kernel', entry.executable)
    tail, native = kernel.tail, kernel.direct_entry([x, y])

    def keyed():
        key, dynamic = function_module._fast_key((x, y))
        return step._execute(step._fast[key], dynamic)
    return [('step(x, y)', lambda: step(x, y)),
            ('fast key', keyed),
            ('execute', lambda: step._execute(entry, [x, y])),
            ('dispatcher', lambda: kernel.fn(x, y, *tail)),
            ('entry point', lambda: native(x, y, *tail))]


def w2_layers():
    step, feed = _ready_step(make_w2())
    return [('W2 step(*feed())', lambda: step(*feed())), ('W2 feed() alone', feed)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--blocks', type=int, default=25)
    parser.add_argument('--steps', type=int, default=20000)
    args = parser.parse_args(argv)
    print(f'load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores')
    print(f'{"call":<20} {"best ns":>8} {"median ns":>10}')
    for name, fn in w1_layers() + w2_layers():
        best, median = _timed(fn, args.blocks, args.steps)
        print(f'{name:<20} {best:>8.0f} {median:>10.0f}')


if __name__ == '__main__':
    main()

"""Benchmark runner: `python -m benchmarks.run [--workloads W1,W3] [--repeats N] [--quick]
[--impls numpy,jax] [--check] [--memory] [--end-to-end]`.

Runs workloads W1-W5, W8 and W9 for every available implementation in this process and prints
µs/step (median over repeats of a block of consecutive steps), ratios vs JAX and numpy, and the
floors;
W6 (compile latency) and `--memory` (peak RSS) use fresh subprocesses (see `isolated.py`);
`--end-to-end` then times whole scripts from process start (E2, E3: see `scripts.py`).
`--check` instead runs a few steps of each implementation from identical parameters and data and
asserts that the parameters agree with the numpy reference to 1e-4 relative.
"""
import argparse
import importlib
import math
import os
import statistics
import sys
import time


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def _default_threads():
    """Use every core we may run on, unless the user chose otherwise; never force one thread.
    Idle OpenMP threads sleep instead of spinning: four libraries' thread pools share this
    process, and one library's spinning threads would otherwise slow whichever runs next."""
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(var, str(usable_cores()))
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


_default_threads()   # before numpy (and its BLAS) is imported

if __package__ in (None, ''):   # run as `python benchmarks/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import layer_workloads  # noqa: E402
from benchmarks import workloads as wl  # noqa: E402

ALL_WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W8', 'W9']
CHECK_RTOL = 1e-4


def load_impls(names):
    """Import each implementation module; an unavailable one is reported and skipped."""
    impls = {}
    for name in names:
        try:
            impls[name] = importlib.import_module(wl.IMPL_MODULES[name])
        except Exception as exc:   # ImportError, or a half-written package raising anything
            print(f'[skip] {name}: {type(exc).__name__}: {exc}')
    return impls


def build(impl, problem, feed=None):
    return impl.FACTORIES[problem.kind](problem, feed or problem.new_feed())


# ---------------------------------------------------------------------------------------------
# Timing

class BackgroundMeter:
    """Context manager: average number of cores *other* processes kept busy meanwhile.

    Machine-wide busy CPU time (/proc/stat) minus this process's own CPU time (all threads and
    waited-for children), over the wall time. On a shared 2-core machine one busy neighbour slows
    threaded BLAS up to ~10x, so every measurement reports it.
    """
    THRESHOLD = 0.3
    cores = None                               # None: not measurable here (no /proc/stat)

    @staticmethod
    def _machine_busy_s():
        with open('/proc/stat') as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf('SC_CLK_TCK')  # minus idle, iowait

    @staticmethod
    def _own_s():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self):
        try:
            self._start = (self._machine_busy_s(), self._own_s(), time.perf_counter())
        except (OSError, ValueError):
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            busy0, own0, t0 = self._start
            others = (self._machine_busy_s() - busy0) - (self._own_s() - own0)
            self.cores = max(others, 0.0) / max(time.perf_counter() - t0, 1e-9)

    @property
    def noisy(self):
        return self.cores is not None and self.cores > self.THRESHOLD

    def describe(self):
        if self.cores is None:
            return 'unknown'
        warn = '  (other processes were busy: timings unreliable)' if self.noisy else ''
        return f'{self.cores:.2f} of {os.cpu_count()} cores{warn}'


def time_steps(bench, n):
    """Seconds for n consecutive steps, synchronised at the end."""
    step = bench.step
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    bench.sync()
    return time.perf_counter() - t0


SETTLE_S = 0.2


def settle(bench):
    """Pause, then one untimed step: let other libraries' spinning threads go to sleep.

    numpy and scipy (hence Numba's np.dot) each load their own OpenBLAS, whose idle threads
    busy-wait for ~0.1 s after a call; right after another implementation ran, both pools would
    fight over the 2 cores (measured: numpy and tracejit each up to 2x slower).
    """
    time.sleep(SETTLE_S)
    time_steps(bench, 1)


def block_size(bench, min_block_s, loop_steps=None, warmup=3):
    """Warm up (this includes JIT compilation), then choose the steps per timed block. Steps
    after the kernel is ready warm up too: the first native call may still load or compile a
    helper (the range check of a guarded step), and a slow first block would make every block
    one step long."""
    settle(bench)
    time_steps(bench, warmup)
    bench.ready()
    time_steps(bench, warmup)
    if loop_steps:
        return loop_steps
    n = 1                                  # grow the block until it is long enough to time
    while time_steps(bench, n) < min_block_s and n < 1 << 20:
        n *= 2
    return n


def time_interleaved(benches, repeats, min_block_s, loop_steps=None):
    """{name: (per-step seconds of each block, steps per block)}.

    Implementations take turns block by block (each block after `settle`), so a burst from a
    neighbouring process hits all of them alike instead of spoiling one implementation's result.
    """
    benches = dict(benches)
    sizes, samples = {}, {name: [] for name in benches}
    for r in range(-1, repeats):
        for name, bench in list(benches.items()):
            try:
                if r < 0:
                    sizes[name] = block_size(bench, min_block_s, loop_steps)
                else:
                    settle(bench)
                    samples[name].append(time_steps(bench, sizes[name]) / sizes[name])
            except Exception as exc:           # report, and carry on with the others
                print(f'  {name}: FAILED while timing: {type(exc).__name__}: {exc}')
                del benches[name]
    return {name: (samples[name], sizes[name]) for name in benches}


def summarize(samples):
    """(median, relative inter-quartile half-range) of per-step times, in µs."""
    us = sorted(s * 1e6 for s in samples)
    med = statistics.median(us)
    if len(us) >= 4:
        q1, _, q3 = statistics.quantiles(us, n=4)
        spread = (q3 - q1) / 2 / med
    else:
        spread = (us[-1] - us[0]) / 2 / med
    return med, spread


# ---------------------------------------------------------------------------------------------
# Table printing

def summarized(workload, timed, width):
    """{impl: (median, spread, repeats, steps per block)} of `timed`, each printed as it goes."""
    results = {}
    for impl, (samples, n) in timed.items():
        med, spread = summarize(samples)
        results[impl] = (med, spread, len(samples), n)
        print(f'  {workload} {impl:{width}s} {fmt_us(med):>10s} µs/step  (±{spread:.0%}, '
              f'{len(samples)} x {n} steps)', flush=True)
    return results


def fmt_us(us):
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return '-'
    return f'{us:,.1f}' if us < 100 else f'{us:,.0f}'


def fmt_ratio(a, b):
    return f'{a / b:.2f}x' if a and b else '-'


def print_table(headers, rows, title=None):
    if title:
        print(f'\n{title}')
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = '  '.join('{:>%d}' % w for w in widths)
    print(line.format(*headers))
    print('  '.join('-' * w for w in widths))
    for row in rows:
        print(line.format(*[str(c) for c in row]))


# ---------------------------------------------------------------------------------------------
# Modes

def run_timings(problem, impls, args):
    """Time every implementation on one problem -> {impl: (median µs, spread, repeats, n)}."""
    benches = {}
    for name, impl in impls.items():
        try:
            benches[name] = build(impl, problem)
            benches[name].step()           # fail here, not halfway through the timing
        except Exception as exc:
            print(f'  {problem.name} {name}: FAILED {type(exc).__name__}: {exc}')
    min_block = 0.01 if args.quick else 0.05
    timed = time_interleaved(benches, args.repeats, min_block, problem.loop_steps)
    return summarized(problem.name, timed, 8)


def timing_rows(workload, results, floor, meter):
    rows = []
    base_np, base_jax = (results.get(k, (None,))[0] for k in ('numpy', 'jax'))
    background = '-' if meter.cores is None else f'{meter.cores:.2f}' + ('!' if meter.noisy else '')
    for name, (med, spread, reps, n) in results.items():
        rows.append([workload, name, fmt_us(med), f'±{spread:.0%}', f'{reps}x{n}',
                     fmt_ratio(med, base_np), fmt_ratio(med, base_jax),
                     fmt_us(floor[0]) if floor else '-',
                     fmt_ratio(med, floor[0]) if floor else '-', background])
    return rows


# tracejit's steady-state targets: (workload, tracejit variant, reference, most time /
# reference allowed); 'fastest' is the fastest other library that ran (numpy aside)
TARGETS = [('W1', 'tracejit', 'jax', 0.25), ('W2', 'tracejit', 'jax', 0.25),
           ('W3', 'tracejit', 'jax', 0.6), ('W3', 'tracejit', 'floor', 1.3),
           ('W4', 'tracejit', 'jax', 0.8), ('W5', 'tracejit', 'floor', 1.1),
           ('W8', 'tracejit', 'fastest', 0.8), ('W8', 'tracejit', 'floor', 1.4),
           ('W9', 'tracejit', 'jax', 0.8), ('W9', 'tracejit LazyAdam', 'jax', 0.15),
           ('W9', 'tracejit SGD', 'jax', 0.15)]


def reference_time(results, floor, reference):
    """(name, median µs) of the reference a target compares with, or (name, None)."""
    if reference == 'floor':
        return reference, floor[0] if floor else None
    if reference == 'fastest':
        others = {k: v[0] for k, v in results.items()
                  if not k.startswith('tracejit') and k != 'numpy'}
        best = min(others, key=others.get, default=None)
        return (best, others[best]) if best else (reference, None)
    return reference, results.get(reference, (None,))[0]


def target_rows(measured):
    """One row per target whose workload ran: {workload: (results, floor)} -> table rows."""
    rows = []
    for workload, variant, reference, target in TARGETS:
        if workload not in measured:
            continue
        results, floor = measured[workload]
        mine = results.get(variant, (None,))[0]
        name, theirs = reference_time(results, floor, reference)
        if mine is None or theirs is None:
            continue
        ratio = mine / theirs
        rows.append([workload, variant, name, f'{ratio:.2f}x', f'<= {target}x',
                     'met' if ratio <= target else 'not met'])
    return rows


def train_accuracy(problem, impls):
    """W3: train each implementation for `epochs` shuffled epochs, report test accuracy."""
    ex = problem.extra
    steps = ex['epochs'] * math.ceil(len(ex['x_train']) / ex['batch'])
    accs = {}
    for name, impl in impls.items():
        try:
            bench = build(impl, problem, wl.epoch_feed(ex['x_train'], ex['y_train'], ex['batch']))
            for _ in range(steps):
                bench.step()
            bench.sync()
            accs[name] = wl.mlp_accuracy(bench.params(), ex['x_test'], ex['y_test'])
        except Exception as exc:
            print(f'  W3 accuracy {name}: FAILED {type(exc).__name__}: {exc}')
    return accs, ex['epochs']


def run_check(problem, impls):
    """Run check_steps steps per implementation; compare parameters with numpy. -> rows, ok."""
    k = problem.check_steps

    def params_after(impl):
        bench = build(impl, problem)
        for _ in range(k):
            bench.step()
        bench.sync()
        return bench.params()
    ref = params_after(impls['numpy'])
    rows, ok = [], True
    for name, impl in impls.items():
        if name == 'numpy':
            continue
        try:
            got = params_after(impl)
            errs = {p: relative_error(got[p], ref[p]) for p in ref}
        except Exception as exc:
            rows.append([problem.name, name, k, '-', '-', f'ERROR {type(exc).__name__}: {exc}'])
            ok = False
            continue
        worst = max(errs, key=errs.get)
        passed = errs[worst] <= CHECK_RTOL
        ok &= passed
        rows.append([problem.name, name, k, f'{errs[worst]:.1e}', worst,
                     'PASS' if passed else 'FAIL'])
    return rows, ok


def relative_error(got, ref):
    """max |got - ref| / max |ref| (the parameter's scale), NaN-aware."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return math.inf
    err = float(np.max(np.abs(got - ref)))
    return err / max(float(np.max(np.abs(ref))), 1e-30) if not math.isnan(err) else math.inf


# ---------------------------------------------------------------------------------------------

def run_layer_workload(name, impls, args):
    """W8/W9 (layer_workloads): build, time in turns, and split off the floor when there is
    one -> (results as run_timings', floor as a Problem's, the meter)."""
    title, make = layer_workloads.WORKLOADS[name]
    print(f'{name}: {title}', flush=True)
    with BackgroundMeter() as meter:
        try:
            benches = make(impls)
        except ImportError as exc:
            print(f'  {name}: FAILED to build: {exc}')
            benches = {}
        timed = time_interleaved(benches, args.repeats, 0.01 if args.quick else 0.05)
    results = summarized(name, timed, 18)
    floor = results.pop('floor', None)
    floor = (floor[0], 'its conv GEMMs through numpy') if floor else None
    print(f'  {name} background CPU use: {meter.describe()}')
    return results, floor, meter


def environment_report(impls):
    """One line per fact: cores, thread settings and the versions of each implementation."""
    lines = [f'python {sys.version.split()[0]}, numpy {np.__version__}, '
             f'cores available {usable_cores()}',
             load_report('start')]
    env = ', '.join(f'{k}={os.environ[k]}' for k in
                    ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                     'NUMBA_NUM_THREADS', 'XLA_FLAGS', 'OMP_WAIT_POLICY') if k in os.environ)
    lines.append(f'thread env: {env}')
    try:
        from threadpoolctl import threadpool_info
        pools = {f"{p['internal_api']}": p['num_threads'] for p in threadpool_info()}
        lines.append(f'native thread pools: {pools}')
    except ImportError:
        pass
    for name, mod in impls.items():
        if name == 'numpy':
            continue
        extra = ''
        if name == 'torch':
            extra = f' (intra-op threads {mod.torch.get_num_threads()})'
        if name == 'tracejit':
            import numba
            extra = f' (numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads)'
        lines.append(f'{name} {mod.VERSION}{extra}')
    return lines


def load_report(when, seconds=1.0):
    """Cores kept busy by other processes while we sleep for a second."""
    with BackgroundMeter() as meter:
        time.sleep(seconds)
    return f'background CPU use at {when}: {meter.describe()}'


def parse_args(argv):
    p = argparse.ArgumentParser(prog='python -m benchmarks.run', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workloads', default=','.join(ALL_WORKLOADS),
                   help='comma-separated subset of W1..W6, W8, W9 (default: all)')
    p.add_argument('--impls', default=','.join(wl.IMPL_MODULES),
                   help='comma-separated subset of numpy,jax,torch,tracejit (default: all)')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed blocks per measurement (default 11, 3 with --quick)')
    p.add_argument('--quick', action='store_true', help='fewer repeats, shorter blocks and loops')
    p.add_argument('--check', action='store_true',
                   help='check every implementation against numpy instead of timing')
    p.add_argument('--memory', action='store_true',
                   help='also measure peak RSS of W4 and W5 in a subprocess per implementation')
    p.add_argument('--end-to-end', action='store_true',
                   help='also time whole scripts from process start, cold and warm cache '
                        '(E2, E3: benchmarks/scripts.py)')
    args = p.parse_args(argv)
    args.workloads = [w.strip().upper() for w in args.workloads.split(',') if w.strip()]
    args.impls = [i.strip() for i in args.impls.split(',') if i.strip()]
    bad = [w for w in args.workloads if w not in ALL_WORKLOADS] + \
          [i for i in args.impls if i not in wl.IMPL_MODULES]
    if bad:
        p.error(f'unknown workload/implementation: {", ".join(bad)}')
    if 'numpy' not in args.impls:
        args.impls.insert(0, 'numpy')           # the reference is always needed
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    return args


def main(argv=None):
    args = parse_args(argv)
    impls = load_impls(args.impls)
    print('\n'.join(environment_report(impls)))
    rows, check_rows, all_ok, accuracies, measured = [], [], True, {}, {}
    for name in (w for w in args.workloads if w in wl.PROBLEMS):
        try:
            problem = wl.PROBLEMS[name](quick=args.quick)
        except wl.SkipWorkload as exc:
            print(f'[skip] {name}: {exc}')
            continue
        print(f'{name}: {problem.title}', flush=True)
        if args.check:
            r, ok = run_check(problem, impls)
            check_rows += r
            all_ok &= ok
            continue
        with BackgroundMeter() as meter:
            results = run_timings(problem, impls, args)
            time.sleep(SETTLE_S)
            floor = problem.floor() if problem.floor else None
        rows += timing_rows(name, results, floor, meter)
        measured[name] = (results, floor)
        if floor:
            print(f'  {name} floor: {fmt_us(floor[0])} µs ({floor[1]})')
        print(f'  {name} background CPU use: {meter.describe()}')
        if name == 'W3':
            accuracies = train_accuracy(problem, impls)

    for name in (w for w in args.workloads if w in layer_workloads.WORKLOADS and not args.check):
        results, floor, meter = run_layer_workload(name, impls, args)
        rows += timing_rows(name, results, floor, meter)
        measured[name] = (results, floor)

    if args.check:
        print_table(['workload', 'impl', 'steps', 'max rel err', 'param', 'result'], check_rows,
                    f'Check vs numpy (tolerance {CHECK_RTOL:g} of each parameter\'s max |value|)')
        if not check_rows:
            print('(nothing to compare: only numpy is available)')
        return 0 if all_ok else 1

    if rows:
        print_table(['workload', 'impl', 'µs/step', 'spread', 'repeats', 'vs numpy', 'vs jax',
                     'floor µs', 'vs floor', 'bg cores'], rows,
                    'µs per training step (median over repeats x steps; spread = half IQR; '
                    'ratio = time / time of numpy, jax or the floor;\n'
                    'bg cores = cores other processes kept busy meanwhile, ! = unreliable)')
    targets = target_rows(measured)
    if targets:
        print_table(['workload', 'variant', 'vs', 'ratio', 'target', ''], targets,
                    'tracejit against its steady-state targets (this run)')
    if accuracies:
        accs, epochs = accuracies
        print(f'\nW3 test accuracy after {epochs} epochs: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in accs.items()))
        if accs.get('numpy', 1.0) < 0.96 and epochs >= 30:
            print('  WARNING: numpy reference accuracy below 0.96')

    from benchmarks import isolated
    if 'W6' in args.workloads:
        isolated.report_latency(impls, args)
    if args.memory:
        isolated.report_memory(impls, args)
    if args.end_to_end:
        from benchmarks import scripts
        scripts.main([])
    print('\n' + load_report('end'))
    return 0


if __name__ == '__main__':
    sys.exit(main())

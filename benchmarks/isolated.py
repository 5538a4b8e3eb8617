"""Measurements that need a fresh process: W6 compile latency and `--memory` peak RSS.

The parent (`report_latency`, `report_memory`) starts `python -c "...child_main(spec)"` once per
implementation and measurement; the child prints one `RESULT {json}` line. tracejit runs twice
against the same new, empty `TRACEJIT_CACHE_DIR`: cold (compiles) then warm (loads from disk).
"""
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import workloads as wl

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_PREFIX = 'RESULT '


# ---------------------------------------------------------------------------------------------
# Child side

def child_main(spec_json):
    """Entry point of the child process; prints RESULT {json}."""
    spec = json.loads(spec_json)
    out = _child_latency(spec) if spec['mode'] == 'latency' else _child_memory(spec)
    print(RESULT_PREFIX + json.dumps(out), flush=True)


def _build(impl_name, problem, feed):
    impl = importlib.import_module(wl.IMPL_MODULES[impl_name])
    return impl.FACTORIES[problem.kind](problem, feed)


def _child_latency(spec):
    """First W3 step (full batch), then the first step on the leftover partial batch."""
    data = np.load(spec['data'])
    split = tuple(data[k] for k in ('x_train', 'y_train', 'x_test', 'y_test'))
    problem = wl.make_w3(split=split)
    x, y, batch = split[0], split[1], problem.extra['batch']
    left = len(x) % batch
    batches = iter([(x[:batch], y[:batch]), (x[len(x) - left:], y[len(y) - left:])])
    bench = _build(spec['impl'], problem, lambda: next(batches))
    bench.step()
    bench.sync()
    first_end = time.time()
    t0 = time.perf_counter()
    bench.step()
    bench.sync()
    return dict(first_end=first_end, partial_s=time.perf_counter() - t0, leftover=left)


def _max_rss_mib():
    """Peak RSS of this process in MiB.

    Linux keeps ru_maxrss across execve, so a child forked from a big parent reports the
    parent's size; VmHWM (the high-water mark of this address space) starts afresh at exec.
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def _child_memory(spec):
    """Peak RSS after imports + data, and after building and running `steps` steps."""
    problem = wl.PROBLEMS[spec['workload']]()
    importlib.import_module(wl.IMPL_MODULES[spec['impl']])
    base = _max_rss_mib()
    bench = _build(spec['impl'], problem, problem.new_feed())
    for _ in range(spec['steps']):
        bench.step()
    bench.sync()
    return dict(base_mib=base, peak_mib=_max_rss_mib())


# ---------------------------------------------------------------------------------------------
# Parent side

def user_environment(**extra):
    """This process's environment as a user's shell has it, plus `extra`: Python writes and
    reuses bytecode caches. Under PYTHONDONTWRITEBYTECODE every process would compile
    tracejit's sources again (about 0.3 s of each start), while installed packages such as JAX
    ship theirs compiled."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}
    env.update(extra)
    return env


def wait_for_compile_processes(timeout=600):
    """Until no tracejit compile process is left: a cold run exits before the processes that
    compile its kernels for the disk cache, and the next script must not share the machine
    with them (nor a warm run find their entries unfinished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _compile_processes():
        time.sleep(0.1)


def _compile_processes():
    """How many processes run tracejit.backend.compile_process (0 where /proc is missing)."""
    count = 0
    for pid in os.listdir('/proc') if os.path.isdir('/proc') else ():
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                count += b'tracejit.backend.compile_process' in f.read()
        except OSError:   # not a process, or one that has just ended
            pass
    return count


def run_child(spec, env_extra):
    """Run one child -> (wall-clock time just before it started, its result dict)."""
    env = user_environment(**env_extra)
    code = f'from benchmarks.isolated import child_main; child_main({json.dumps(spec)!r})'
    t0 = time.time()
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX) and proc.returncode == 0:
            return t0, json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f'child exited {proc.returncode}: ' + ' | '.join(tail))


def each_variant(impls, run_one):
    """{label: run_one(impl, env)}; tracejit twice on one fresh cache dir: cold, then warm."""
    out = {}
    for name in impls:
        variants = [(name, {})]
        tmp = None
        if name == 'tracejit':
            tmp = tempfile.TemporaryDirectory(prefix='tracejit-bench-cache-')
            env = {'TRACEJIT_CACHE_DIR': tmp.name}
            variants = [('tracejit cold', env), ('tracejit warm', env)]
        for label, env in variants:
            try:
                out[label] = run_one(name, env)
            except Exception as exc:
                out[label] = exc
            if tmp:
                wait_for_compile_processes()
        if tmp:
            tmp.cleanup()
    return out


def _collect(impls, repeats, run_one):
    """Repeat each_variant; -> {label: list of results or the first exception}."""
    collected = {}
    for _ in range(repeats):
        for label, res in each_variant(impls, run_one).items():
            if isinstance(res, Exception):
                collected[label] = res
            elif not isinstance(collected.get(label), Exception):
                collected.setdefault(label, []).append(res)
    return collected


def report_latency(impls, args):
    """W6: ms from a fresh process start to the end of the first W3 step; partial batch step."""
    from benchmarks.run import BackgroundMeter, print_table
    try:
        split = wl.load_digits_split()
    except wl.SkipWorkload as exc:
        print(f'[skip] W6: {exc}')
        return
    repeats = 1 if args.quick else min(args.repeats, 3)
    with tempfile.TemporaryDirectory(prefix='bench-digits-') as tmp:
        path = os.path.join(tmp, 'digits.npz')
        np.savez(path, **dict(zip(('x_train', 'y_train', 'x_test', 'y_test'), split)))

        def run_one(name, env):
            t0, res = run_child(dict(mode='latency', impl=name, data=path), env)
            return (res['first_end'] - t0) * 1e3, res['partial_s'] * 1e3, res['leftover']
        print('W6: compile latency (fresh subprocess per measurement)', flush=True)
        with BackgroundMeter() as meter:
            collected = _collect(impls, repeats, run_one)
    rows = []
    for label, res in collected.items():
        if isinstance(res, Exception):
            rows.append(['W6', label, 'ERROR', str(res)[:80], '-'])
            continue
        first = statistics.median(r[0] for r in res)
        partial = statistics.median(r[1] for r in res)
        rows.append(['W6', label, f'{first:,.0f}', f'{partial:,.1f} (batch {res[0][2]})',
                     len(res)])
    print_table(['workload', 'impl', 'start->1st step ms', 'partial batch 1st step ms',
                 'repeats'], rows,
                'W6 compile latency: process start to end of first W3 step; then the first step '
                'on the leftover partial batch (medians)')
    print(f'W6 background CPU use: {meter.describe()}')


def report_memory(impls, args):
    """Peak RSS (MiB) of W4 and W5 per implementation, each in its own process."""
    from benchmarks.run import print_table
    steps = 5 if args.quick else 20
    rows = []
    for workload in ('W4', 'W5'):
        print(f'memory: {workload}', flush=True)

        def run_one(name, env):
            return run_child(dict(mode='memory', impl=name, workload=workload, steps=steps),
                             env)[1]
        for label, res in each_variant(impls, run_one).items():
            if isinstance(res, Exception):
                rows.append([workload, label, 'ERROR', str(res)[:80], '-'])
                continue
            rows.append([workload, label, f"{res['base_mib']:.0f}", f"{res['peak_mib']:.0f}",
                         f"{res['peak_mib'] - res['base_mib']:.0f}"])
    print_table(['workload', 'impl', 'after imports+data MiB', 'peak MiB', 'delta MiB'], rows,
                f'Peak RSS (VmHWM) per fresh process: build the step and run {steps} steps')

"""Where a compiled step's time goes:
`python -m benchmarks.profile_step [--repeats N] [--workload w3|w7|w8|w9-adam|w9-lazyadam|w9-sgd]`.

`profile(kernel, args)` reruns a compiled step's generated kernel as Python, statement by
statement (each call into a Numba loop or helper still runs native), and returns the median
seconds of every statement over `repeats` runs. The Python between statements adds about a
microsecond each, so regions of a few microseconds read high. The kernel updates its Variables
in place on every run, as the step would.
"""
import argparse
import ast
import os
import statistics
import sys
import time

if __package__ in (None, ''):   # run as `python benchmarks/profile_step.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def capture(step, *args):
    """(Kernel, its full argument tuple) of one call of the compiled `step` on `args`."""
    from tracejit.backend import runtime
    seen = []
    original = runtime.Kernel.run

    def run(self, call_args):
        seen.append((self, tuple(self._unbox_scalars(list(call_args))) + self.tail))
        return original(self, call_args)
    runtime.Kernel.run = run
    try:
        step(*args)
    finally:
        runtime.Kernel.run = original
    if not seen:
        raise RuntimeError('the step ran no compiled kernel (still compiling, or interpreted)')
    return seen[-1]


def _timed_kernel(source):
    """The module's `kernel` turned into a Python function that appends (statement index,
    seconds) pairs to its `_times` global; the loops it calls stay Numba functions. The
    statements in the body of a top-level `for` or `while` (the kernel's scans and while loops)
    are timed too, summed over the iterations: they are listed after their loop, indented."""
    tree = ast.parse(source)
    [kernel] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'kernel']
    kernel.decorator_list = []
    statements, nested = [], []

    def timed(statement, label):
        index = len(statements)
        statements.append(label)
        if isinstance(statement, (ast.Return, ast.Break, ast.Continue)):
            return [statement]
        start = ast.parse(f'_t{index} = _clock()').body
        stop = ast.parse(f'_times.append(({index}, _clock() - _t{index}))').body
        return start + [statement] + stop
    body = []
    for statement in kernel.body:
        body += timed(statement, ast.unparse(statement))
        if isinstance(statement, (ast.For, ast.While)):
            nested.append(statement)
    for loop in nested:
        loop.body = [line for inner in loop.body
                     for line in timed(inner, '    ' + ast.unparse(inner))]
    kernel.body = body
    return ast.unparse(ast.fix_missing_locations(tree)), statements


def profile(kernel, args, repeats=11):
    """[(median seconds, statement source)] of every statement of `kernel`'s generated source,
    in program order (a loop's body statements after the loop, summed over its iterations)."""
    from tracejit.backend import compiler
    text, statements = _timed_kernel(compiler.module_text(kernel.lowered.source, cache=False))
    times = []
    namespace = {'_clock': time.perf_counter, '_times': times}
    exec(compile(text, '<profiled kernel>', 'exec'), namespace)
    runs = []
    for _ in range(repeats + 1):   # the first run compiles the loops
        times.clear()
        namespace['kernel'](*args)
        run = {}
        for index, seconds in times:
            run[index] = run.get(index, 0.0) + seconds
        runs.append(run)
    return [(statistics.median(run.get(i, 0.0) for run in runs[1:]), s)
            for i, s in enumerate(statements)]


def step_seconds(step, repeats=11):
    """Median seconds of one call of the compiled step, for comparison with the total."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(rows, step_time=None, threshold=20e-6):
    """Print the statements above `threshold` seconds, the total (of the top-level statements),
    and the step's own time."""
    total = sum(seconds for seconds, statement in rows if not statement.startswith(' '))
    for seconds, statement in rows:
        if seconds >= threshold:
            print(f'{seconds * 1e6:9.0f} us  {statement.splitlines()[0][:110]}')
    print(f'{total * 1e6:9.0f} us  total')
    if step_time is not None:
        print(f'{step_time * 1e6:9.0f} us  the compiled step')


def _w3():
    from benchmarks import tracejit_workloads, workloads
    problem = workloads.make_w3()
    bench = tracejit_workloads.make_mlp(problem, problem.new_feed())
    bench.step()
    bench.ready()
    return bench.step


def _w7():
    from benchmarks import w7_lstm
    from benchmarks.workloads import load_digits_split
    x, y = load_digits_split()[:2]
    step = w7_lstm.tracejit_model(w7_lstm.make_init())[0]
    batch = w7_lstm.sequences(x[:w7_lstm.BATCH]), y[:w7_lstm.BATCH]
    step(*batch)
    step.ready()
    return lambda: step(*batch)


def _w8():
    from benchmarks import conv
    return conv.tracejit_w8(*conv.w8_problem())


def _w9(optimizer):
    def build():
        from benchmarks import w9_embedding
        step, _ = w9_embedding.tracejit_step(*w9_embedding.make_data(), optimizer)
        return step
    return build


WORKLOADS = {'w3': _w3, 'w7': _w7, 'w8': _w8, 'w9-adam': _w9('Adam'), 'w9-lazyadam': _w9('LazyAdam'),
             'w9-sgd': _w9('SGD')}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=11)
    parser.add_argument('--workload', choices=sorted(WORKLOADS), default='w8')
    options = parser.parse_args(argv)
    step = WORKLOADS[options.workload]()
    rows = profile(*capture(step), repeats=options.repeats)
    report(rows, step_seconds(step, options.repeats))


if __name__ == '__main__':
    main()

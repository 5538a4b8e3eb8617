"""Turn an optimised graph into something that runs: one compiled Numba kernel per graph, or
the numpy interpreter (the tests' reference, what runs the steps while a kernel compiles in the
background, and the executable of an empty graph), wrapped in argument range checks."""
import sys

import numpy as np

from .. import ir
from ..tracing import check_in_range


class Interpreted:
    """Runs a graph with the primitives' numpy rules; Variable updates are written at the end,
    so a failure leaves every Variable unchanged."""

    def __init__(self, graph):
        self.graph, self.frees = graph, ir.last_uses(graph)

    def run(self, args):
        graph = self.graph
        outs, updates = ir.evaluate(graph, args, [v.buffer for v, _ in graph.state],
                                    self.frees)
        outs = [np.array(o) for o in outs]  # never hand out a Variable's live buffer
        # an update may be (a view of) another Variable's old buffer, as in a swap: copy all
        # of them before writing any
        updates = [np.array(u) for u in updates]
        for (variable, _), value in zip(graph.updates, updates):
            variable.buffer[...] = value
        return outs


class Guarded:
    """Checks that arguments lie in their ranges (see tracing.require_in_range) before running
    the step, so a bad index or label raises at the user's call and writes nothing."""

    def __init__(self, executable, guards):
        self.executable, self.guards = executable, guards

    def __getattr__(self, name):  # wait(), interpreted_runs, ... of the wrapped executable
        return getattr(self.executable, name)

    def run(self, args):
        native = getattr(self.executable, 'native', False)
        for position, low, high, message in self.guards:
            value = args[position]
            # the native check passes in ~0.3 us instead of numpy's ~3; numpy explains failures
            if not (native and type(value) is np.ndarray
                    and native_in_range()(value, low, high)):
                check_in_range(value, low, high, message)
        return self.executable.run(args)


def native_in_range():
    """kernels.all_in_range, imported on first use: only once a kernel runs (Numba is loaded
    by then), never on the path that lowers a graph. Called from Python, it loads from the disk
    cache as kernels do (kernel_cache.py)."""
    global _all_in_range
    if _all_in_range is None:
        from .kernel_cache import load_without_refresh
        from .kernels import all_in_range
        _all_in_range = load_without_refresh(all_in_range)
    return _all_in_range


_all_in_range = None


def lower_graph(graph):
    """The generated source and per-trace values (`.source`, `.plan`) for a graph."""
    from .codegen import generate
    return generate(graph)


def compile_graph(graph, on_compiled=None, guards=(), in_background=False, show_source=False):
    """(executable, how) where how is 'compiled', 'disk', 'memory', 'interpreted', or
    'background' (with `in_background`: compiling in a thread while the interpreter runs the
    steps; `on_compiled(how)` is called when it is done). `guards`: argument range checks, see
    tracing.require_in_range. `show_source` prints the generated kernel to stderr."""
    checked = frozenset(position for position, *_ in guards)
    executable, how = _executable(graph, on_compiled, checked, in_background, show_source)
    return (Guarded(executable, guards) if guards else executable), how


def _executable(graph, on_compiled, checked, in_background, show_source):
    if not graph.nodes and not graph.updates:
        return Interpreted(graph), 'interpreted'
    from . import compiler
    from .runtime import Kernel, call_tail, scalar_positions, unbox_scalars
    lowered = lower_graph(graph)
    if show_source:
        refusals = ''.join(f'{name} not fused into group {group}: {reason}\n'
                           for name, group, reason in lowered.plan.refusals)
        print(f'--- fusion refusals ---\n{refusals}--- generated kernel ---\n{lowered.source}',
              file=sys.stderr)
    fn = compiler.in_memory(lowered.source)
    if fn is not None:
        return Kernel(fn, lowered, graph, checked), 'memory'
    # a kernel compiled on disk loads on this thread: interpreted steps would hold the GIL and
    # slow the loading thread down, so a warm-cache run interpreted thousands of steps
    if in_background and not compiler.on_disk(lowered.source):
        from .tiered import Tiered

        def build_kernel():
            fn, how = compiler.load(lowered.source, lowered.parallel)
            return Kernel(fn, lowered, graph, checked), how

        def compile_job(args):
            values = unbox_scalars(list(args), scalar_positions(graph))
            return compiler.write_entry(lowered.source), (*values, *call_tail(graph, lowered))
        return Tiered(Interpreted(graph), build_kernel, on_compiled, compile_job), 'background'
    fn, how = compiler.load(lowered.source, lowered.parallel)
    return Kernel(fn, lowered, graph, checked), how

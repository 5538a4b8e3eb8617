"""Turn an optimised graph into something that runs: one compiled Numba kernel per graph, or
the numpy interpreter (the tests' reference, and the fallback for an empty graph)."""
import sys

import numpy as np

from .. import config, ir
from ..config import debug_level


class Interpreted:
    """Runs a graph with the primitives' numpy rules; Variable updates are written at the end,
    so a failure leaves every Variable unchanged."""

    def __init__(self, graph):
        self.graph = graph

    def run(self, args):
        graph = self.graph
        outs, updates = ir.evaluate(graph, args, [v._buf for v, _ in graph.state])
        outs = [np.array(o) for o in outs]  # never hand out a Variable's live buffer
        for (variable, _), value in zip(graph.updates, updates):
            variable._buf[...] = value
        return outs


def lower_graph(graph):
    """The generated source and per-trace values (`.source`, `.plan`) for a graph."""
    from .codegen import generate
    return generate(graph)


def compile_graph(graph, on_compiled=None):
    """(executable, how) where how is 'compiled', 'disk', 'memory', 'interpreted', or
    'background' (compiling in a thread; `on_compiled(how)` is called when it is done)."""
    if not graph.nodes and not graph.updates:
        return Interpreted(graph), 'interpreted'
    from . import compiler
    from .runtime import Kernel
    lowered = lower_graph(graph)
    if debug_level() >= 2:
        print(f'--- generated kernel ---\n{lowered.source}', file=sys.stderr)
    fn = compiler.in_memory(lowered.source)
    if fn is not None:
        return Kernel(fn, lowered, graph), 'memory'
    if config.compile_in_background:
        from .tiered import Tiered

        def build_kernel():
            fn, how = compiler.load(lowered.source)
            return Kernel(fn, lowered, graph), how
        return Tiered(Interpreted(graph), build_kernel, on_compiled), 'background'
    fn, how = compiler.load(lowered.source)
    return Kernel(fn, lowered, graph), how

"""Turn an optimised graph into something that runs: the compiled Numba kernel or, where the
backend cannot compile a graph, the numpy interpreter (which is also the tests' reference)."""
from .. import ir


class Interpreted:
    """Runs a graph with the primitives' numpy rules; Variable updates are written at the end,
    so a failure leaves every Variable unchanged."""

    def __init__(self, graph):
        self.graph = graph

    def run(self, args, state, graph):
        outs, updates = ir.evaluate(graph, args, state)
        for (variable, _), value in zip(graph.updates, updates):
            variable._buf[...] = value
        return outs


def compile_graph(graph):
    """(executable, how) where how is 'compiled', 'disk', 'memory' or 'interpreted'."""
    return Interpreted(graph), 'interpreted'


def lower_graph(graph):
    raise NotImplementedError('the Numba backend is not available yet')

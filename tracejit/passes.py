"""Graph rewrites, each a pure `Graph -> Graph` function, run in the order of `PIPELINE`."""
import os
import sys

from . import ir


def dead_code_elimination(graph):
    """Drop nodes whose outputs reach neither an output nor a Variable update."""
    live = set(graph.outputs) | {v for _, v in graph.updates}
    kept = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    out = _copy(graph)
    out.nodes = kept[::-1]
    out.consts = {v: c for v, c in graph.consts.items() if v in live}
    return out


def _copy(graph):
    out = ir.Graph()
    out.inputs, out.state, out.consts = list(graph.inputs), list(graph.state), dict(graph.consts)
    out.nodes, out.outputs, out.updates = list(graph.nodes), list(graph.outputs), list(graph.updates)
    return out


PIPELINE = [('dce', dead_code_elimination)]


def optimize(graph, pipeline=None):
    """Run the pass pipeline; TRACEJIT_DEBUG=1 prints the graph after each pass."""
    debug = os.environ.get('TRACEJIT_DEBUG', '0') >= '1'
    for name, rewrite in pipeline or PIPELINE:
        graph = rewrite(graph)
        if debug:
            print(f'--- after {name} ---\n{graph}', file=sys.stderr)
    return graph

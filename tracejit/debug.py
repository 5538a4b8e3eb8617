"""Debugging aids: `debug_nans` checking and Graphviz export of graphs.

With `debug_nans=True` a compiled step snapshots the Variables it updates, runs, and if any
output or update holds a NaN or Inf it restores the snapshot and replays the graph op by op with
the numpy interpreter to name the first op that produced one, with the user's source line.
"""
import numpy as np

from . import ir


def _bad(value):
    value = np.asarray(value)
    return value.dtype.kind == 'f' and not np.all(np.isfinite(value))


def run_checked(executable, graph, args, names):
    """Run `executable`; on a NaN/Inf restore the Variables and raise FloatingPointError.
    `names`: the user's name of each graph input."""
    for name, var, value in zip(names, graph.inputs, args, strict=True):
        if _bad(value):
            raise FloatingPointError(f'debug_nans: argument {name!r} ({var.type_str()}) '
                                     'contains NaN or Inf before the step ran')
    snapshot = [(v, v.buffer.copy()) for v, _ in graph.updates]
    outs = executable.run(list(args))
    if not any(_bad(o) for o in outs) and not any(_bad(v.buffer) for v, _ in graph.updates):
        return outs
    for variable, saved in snapshot:
        np.copyto(variable.buffer, saved)
    raise FloatingPointError(_first_bad_node(graph, args))


def _first_bad_node(graph, args):
    env = dict(graph.consts)
    env.update((v, np.asarray(a, v.dtype)) for v, a in zip(graph.inputs, args))
    env.update((var, variable.buffer) for variable, var in graph.state)
    for node in graph.nodes:
        results = node.prim.run(*(env[v] for v in node.inputs), **node.params)
        env.update(zip(node.outputs, results))
        if any(_bad(r) for r in results) and not any(_bad(env[v]) for v in node.inputs):
            where = f' at {node.where}' if node.where else ''
            return (f'debug_nans: {node.prim.name} produced NaN or Inf{where} '
                    f'(inputs: {", ".join(v.type_str() for v in node.inputs)}); '
                    'the Variables were left unchanged')
    return 'debug_nans: the compiled step produced NaN or Inf; the Variables were left unchanged'


def graph_to_dot(graph):
    """Graphviz text for a graph: inputs and state as boxes, ops as ellipses."""
    printer = ir.GraphPrinter(graph)
    lines = ['digraph tracejit {', '  rankdir=TB;']
    for var in graph.inputs:
        lines.append(f'  "{printer.name(var)}" [shape=box, label="{printer.decl(var)}"];')
    for variable, var in graph.state:
        label = f'{getattr(variable, "name", "Variable")}\\n{var.type_str()}'
        lines.append(f'  "{printer.name(var)}" [shape=box, style=rounded, label="{label}"];')
    for k, node in enumerate(graph.nodes):
        node_id = f'op{k}'
        lines.append(f'  {node_id} [label="{node.prim.name}"];')
        for v in node.inputs:
            lines.append(f'  "{printer.name(v)}" -> {node_id};')
        for v in node.outputs:
            lines.append(f'  {node_id} -> "{printer.name(v)}";')
            lines.append(f'  "{printer.name(v)}" [shape=plaintext, label="{printer.decl(v)}"];')
    for k, v in enumerate(graph.outputs):
        lines.append(f'  "{printer.name(v)}" -> out{k}; '
                     f'out{k} [shape=doublecircle, label="out{k}"];')
    lines.append('}')
    return '\n'.join(lines)

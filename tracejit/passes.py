"""Graph rewrites, each a pure `Graph -> Graph` function, run in the order of `PIPELINE`.

Autodiff emits naive IR (multiplications by a seed of one, reshapes that change nothing,
transposes feeding matmuls); these passes clean it up so the backend sees the essential work.
TRACEJIT_DEBUG=1 prints the graph after each pass. Every pass also rewrites the sub-graphs of
control-flow nodes (`into_subgraphs`), each on its own: nothing moves into or out of a branch or
loop body, so a gather or a division of an untaken branch never runs.
"""
import functools
import sys

import numpy as np

from . import ir
from .config import debug_level
from .primitives import REGISTRY

FOLD_MAX_SIZE = 1 << 16  # fold constants up to this many elements, never expanding ones


def _copy(graph):
    out = ir.Graph()
    out.inputs, out.state, out.consts = list(graph.inputs), list(graph.state), dict(graph.consts)
    out.nodes, out.outputs = list(graph.nodes), list(graph.outputs)
    out.updates = list(graph.updates)
    return out


def rewrite(graph, rule):
    """Apply `rule(node, new_graph) -> Var | dict | None` to each node in order; a Var replaces
    the node's (single) output everywhere after it, a dict {output: Var} replaces the node by
    what the rule appended to `new_graph`."""
    out = _copy(graph)
    out.nodes, subst = [], {}
    for node in graph.nodes:
        node = ir.Node(node.prim, [subst.get(v, v) for v in node.inputs], node.params,
                       node.outputs, node.where)
        replacement = rule(node, out)
        if isinstance(replacement, dict):   # the rule emitted the node's replacement itself
            subst.update(replacement)
        elif replacement is None or replacement is node.outputs[0]:
            out.nodes.append(node)
        else:
            subst[node.outputs[0]] = replacement
    out.outputs = [subst.get(v, v) for v in graph.outputs]
    initial = {id(variable): var for variable, var in graph.state}
    out.updates = [(variable, subst.get(v, v)) for variable, v in graph.updates
                   if subst.get(v, v) is not initial[id(variable)]]
    return out


def _const(graph, var):
    return graph.consts.get(var)


def _same_type(a, b):
    return a.shape == b.shape and a.dtype == b.dtype


def into_subgraphs(rewrite_pass):
    """The pass, applied to the sub-graphs of control-flow nodes (innermost first) too."""
    @functools.wraps(rewrite_pass)
    def run(graph):
        return rewrite_pass(_map_subgraphs(graph, run))
    return run


def _map_subgraphs(graph, fn):
    nodes, changed = [], False
    for node in graph.nodes:
        new = _node_subgraphs(node, fn)
        changed |= new is not node
        nodes.append(new)
    if not changed:
        return graph
    out = _copy(graph)
    out.nodes = nodes
    return out


def _node_subgraphs(node, fn):
    """The node with `fn` applied to each graph its params hold (the node itself if none)."""
    params = {}
    for key, value in node.params.items():
        if isinstance(value, ir.Graph):
            params[key] = fn(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, ir.Graph) for v in value):
            params[key] = tuple(fn(v) for v in value)
    if not params:
        return node
    return ir.Node(node.prim, node.inputs, dict(node.params, **params), node.outputs, node.where)


# -------------------------------------------------------------------------------- passes

def has_effects(node):
    """Host calls (tj.print, py_function, assertions) run for their side effects, and so does
    a control-flow node whose sub-graphs hold one."""
    return node.prim.kind == 'host' or any(
        has_effects(n) for graph in ir.subgraphs(node) for n in graph.nodes)


@into_subgraphs
def dead_code_elimination(graph):
    """Drop nodes whose outputs reach neither an output nor a Variable update, unless they
    have side effects; a control-flow node loses the outputs nothing reads and then the inputs
    its sub-graphs no longer read."""
    live = set(graph.outputs) | {v for _, v in graph.updates}
    kept = []
    for node in reversed(graph.nodes):
        used = [out in live for out in node.outputs]
        if any(used) or has_effects(node):
            if node.prim.kind == 'control' and any(used):
                node = node.prim.prune_outputs(node, used)
                node = node.prim.prune_inputs(_node_subgraphs(node, dead_code_elimination))
            kept.append(node)
            live.update(node.inputs)
    out = _copy(graph)
    out.nodes = kept[::-1]
    out.consts = {v: c for v, c in graph.consts.items() if v in live}
    return out


@into_subgraphs
def constant_folding(graph):
    """Evaluate nodes whose operands are all constants (unless that would expand data)."""
    def rule(node, out):
        values = [_const(out, v) for v in node.inputs]
        if not node.inputs or any(v is None for v in values) or node.prim.kind in (
                'source', 'collective', 'control') or has_effects(node):
            return None
        result = node.outputs[0]
        if result.size > FOLD_MAX_SIZE or result.size > max(v.size for v in values):
            return None
        try:
            value = node.prim.run(*values, **node.params)[0]
        except IndexError:   # a bad gather fails when (and only if) the step runs it
            return None
        return out.add_const(value)
    return rewrite(graph, rule)


def _is_constant(graph, var, value):
    c = _const(graph, var)
    return c is not None and c.size > 0 and bool(np.all(c == value))


@into_subgraphs
def algebraic_simplification(graph):
    """x*1, x+0, x-0, x/1, --x, no-op reshapes/broadcasts, reshape chains, double transposes,
    transposes folded into matmul flags, sum(broadcast(x)) as a multiplication, and sums of
    adjacent unslices as one."""
    producers = {}

    def rule(node, out):
        start = len(out.nodes)
        replacement = _simplify(node, out, producers)
        for made in [node] + out.nodes[start:]:
            for v in made.outputs:
                producers[v] = made
        return replacement
    return rewrite(graph, rule)


_IDENTITY_OPERAND = {'mul': (1, (0, 1)), 'add': (0, (0, 1)), 'sub': (0, (1,)), 'div': (1, (1,))}


def _simplify(node, out, producers):
    name, ins, result = node.prim.name, node.inputs, node.outputs[0]
    if name in _IDENTITY_OPERAND:
        neutral, positions = _IDENTITY_OPERAND[name]
        for pos in positions:
            other = ins[1 - pos]
            if _is_constant(out, ins[pos], neutral) and _same_type(other, result):
                return other
    if (name in ('reshape', 'broadcast_to') and _same_type(ins[0], result)
            or name in ('stop_gradient', 'fresh_read')):
        return ins[0]
    source = producers.get(ins[0]) if ins else None
    if name == 'broadcast_to' and ins[0].shape != () and ins[0].size == 1:
        return _emit(out, 'broadcast_to', [_scalar_of(ins[0], source, out)], **node.params)
    if name == 'neg' and source is not None and source.prim.name == 'neg':
        return source.inputs[0]
    if name == 'reshape' and source is not None and source.prim.name == 'reshape':
        return _emit(out, 'reshape', [source.inputs[0]], shape=result.shape)
    if name == 'transpose' and source is not None and source.prim.name == 'transpose':
        perm = tuple(source.params['perm'][p] for p in node.params['perm'])
        if perm == tuple(range(len(perm))):
            return source.inputs[0]
        return _emit(out, 'transpose', [source.inputs[0]], perm=perm)
    if name == 'matmul':
        return _fold_matmul_transposes(node, out, producers)
    if name == 'reduce_sum' and source is not None and source.prim.name == 'broadcast_to':
        return _sum_of_broadcast(node, source, out)
    if name == 'add' and _same_type(ins[0], ins[1]) and _same_type(ins[0], result):
        for x, y in (ins, ins[::-1]):
            if _made_by(producers, y, 'unslice'):
                merged = _add_unslice(x, y, out, producers)
                if merged is not None:
                    return merged
    return None


def _made_by(producers, var, name):
    node = producers.get(var)
    return node is not None and node.prim.name == name


def _add_unslice(x, u, graph, producers):
    """x + u for an unslice `u` when x is (or is a sum holding) an unslice adjacent to u along
    one axis: the two become one unslice of their concatenation. The gradient of gates split
    from one array (an LSTM's z) is then one concat, not a zero-filled pad per gate summed."""
    if _made_by(producers, x, 'unslice'):
        return _join_unslices(producers[x], producers[u], graph, producers)
    if not _made_by(producers, x, 'add'):
        return None
    for p, q in (producers[x].inputs, producers[x].inputs[::-1]):
        if _made_by(producers, q, 'unslice'):
            joined = _join_unslices(producers[q], producers[u], graph, producers)
            if joined is None:
                continue
            merged = _add_unslice(p, joined, graph, producers) \
                if _made_by(producers, joined, 'unslice') else None
            return merged if merged is not None else _emit_known(graph, producers, 'add',
                                                                 [p, joined])
    return None


def _join_unslices(a, b, graph, producers):
    """unslice(concat(parts)) for unslices a and b of one shape whose slices differ on one
    axis, where they touch (step 1); the concat alone when it fills the whole shape."""
    sa, sb, shape = a.params['slices'], b.params['slices'], a.params['shape']
    if shape != b.params['shape'] or any(s[2] != 1 or s[0] < 0 or s[1] < s[0]
                                         for s in sa + sb):
        return None
    differ = [k for k, (p, q) in enumerate(zip(sa, sb)) if p != q]
    if len(differ) != 1:
        return None
    axis = differ[0]
    if sa[axis][0] > sb[axis][0]:
        a, b, sa, sb = b, a, sb, sa
    if sa[axis][1] != sb[axis][0]:
        return None
    parts = []
    for part in (a.inputs[0], b.inputs[0]):   # one concat for many parts
        source = producers.get(part)
        joined = source is not None and source.prim.name == 'concat' \
            and source.params['axis'] == axis
        parts += list(source.inputs) if joined else [part]
    whole = _emit_known(graph, producers, 'concat', parts, axis=axis)
    slices = tuple((sa[axis][0], sb[axis][1], 1) if k == axis else s for k, s in enumerate(sa))
    if all(s == (0, n, 1) for s, n in zip(slices, shape)):
        return whole
    return _emit_known(graph, producers, 'unslice', [whole], shape=shape, slices=slices)


def _emit_known(graph, producers, name, inputs, **params):
    """_emit, recording the node as its output's producer at once (later rewrites of the same
    node look at it)."""
    var = _emit(graph, name, inputs, **params)
    producers[var] = graph.nodes[-1]
    return var


def _scalar_of(var, source, graph):
    """The 0-d value inside a one-element value (a reshape of a scalar, or a constant)."""
    if source is not None and source.prim.name == 'reshape' and source.inputs[0].shape == ():
        return source.inputs[0]
    if var in graph.consts:
        return graph.add_const(graph.consts[var].reshape(()))
    return _emit(graph, 'reshape', [var], shape=())


def _swaps_last_two(node):
    perm = node.params['perm']
    n = len(perm)
    return n >= 2 and perm == tuple(range(n - 2)) + (n - 1, n - 2)


def _fold_matmul_transposes(node, out, producers):
    ins, params, changed = list(node.inputs), dict(node.params), False
    for i, flag in ((0, 'transpose_a'), (1, 'transpose_b')):
        source = producers.get(ins[i])
        if source is not None and source.prim.name == 'transpose' and _swaps_last_two(source):
            ins[i], params[flag], changed = source.inputs[0], not params[flag], True
    return _emit(out, 'matmul', ins, **params) if changed else None


def _sum_of_broadcast(node, source, out):
    """sum over axes that were only broadcast = the operand times the number of copies."""
    x, axes, result = source.inputs[0], node.params['axes'], node.outputs[0]
    full = source.params['shape']
    lead = len(full) - len(x.shape)
    padded = (1,) * lead + x.shape
    if any(padded[a] != 1 for a in axes) or x.dtype.kind != 'f':
        return None
    copies = int(np.prod([full[a] for a in axes]))
    kept = tuple(d for i, d in enumerate(padded) if i not in axes)
    base = x if kept == x.shape else _emit(out, 'reshape', [x], shape=kept)
    if base.shape != result.shape:
        base = _emit(out, 'broadcast_to', [base], shape=result.shape)
    return _emit(out, 'mul', [base, out.add_const(np.asarray(copies, x.dtype))])


@into_subgraphs
def embedding_bags(graph):
    """reduce_sum over the last index axis of a gather along axis 0 (a sum or mean of looked-up
    rows) becomes one gather_sum, which adds the rows as it reads them, when nothing else reads
    the gathered rows."""
    uses = _use_counts(graph)
    producers = {}

    def rule(node, out):
        source = producers.get(node.inputs[0]) if node.inputs else None
        replacement = None
        if node.prim.name == 'reduce_sum' and source is not None \
                and source.prim.name == 'gather' and source.params['axis'] == 0 \
                and uses[source.outputs[0]] == 1 and source.inputs[1].ndim >= 1 \
                and tuple(node.params['axes']) == (source.inputs[1].ndim - 1,) \
                and source.inputs[0].dtype.kind == 'f':
            replacement = _emit(out, 'gather_sum', source.inputs)
        for v in node.outputs:
            producers[v] = node
        return replacement
    return rewrite(graph, rule)


@into_subgraphs
def pooled_relu_gradients(graph):
    """Relu's gradient behind max pooling works at the pooled size:
    select(r > 0, max_pool_grad(ct, r), 0) = max_pool_grad(select(p > 0, ct, 0), r) for
    r = relu(a), with p = max_pool(r), which the forward pass already computed. Each window's
    cotangent lands on its first maximum, which is positive exactly where `a` is (a NaN fails
    both tests), so the full-size mask is neither stored nor read. And a sum over the spatial
    axes of max_pool_grad(ct, x) is the same sum of ct (each window places its cotangent once,
    on a pixel inside the image), so a bias gradient reads the pooled array too."""
    producers, pooled = {}, {}

    def rule(node, out):
        start = len(out.nodes)
        replacement = _pooled_relu_gradient(node, out, producers, pooled)
        for made in [node] + out.nodes[start:]:
            for v in made.outputs:
                producers[v] = made
            if made.prim.name == 'max_pool':
                pooled.setdefault(_window_key(made), made.outputs[0])
        return replacement
    return rewrite(graph, rule)


def _window_key(node):
    """max_pool(x) and max_pool_grad(ct, x) over the same windows of x share a key."""
    return id(node.inputs[-1]), tuple(sorted(node.params.items()))


def _pooled_relu_gradient(node, out, producers, pooled):
    ins = node.inputs
    source = producers.get(ins[0]) if ins else None
    if node.prim.name == 'reduce_sum':
        if source is not None and source.prim.name == 'max_pool_grad' \
                and {1, 2} <= set(node.params['axes']):
            return _emit(out, 'reduce_sum', [source.inputs[0]], **node.params)
        return None
    grad = producers.get(ins[1]) if len(ins) == 3 else None
    if node.prim.name != 'select' or source is None or source.prim.name != 'gt' \
            or grad is None or grad.prim.name != 'max_pool_grad' \
            or not _same_type(node.outputs[0], grad.outputs[0]):
        return None
    (r, threshold), (ct, x), zero = source.inputs, grad.inputs, ins[2]
    activation = producers.get(x)
    if activation is None or activation.prim.name != 'relu' or r is not x \
            or threshold.shape != () or zero.shape != () \
            or not (_is_constant(out, threshold, 0) and _is_constant(out, zero, 0)):
        return None
    peaks = pooled.get(_window_key(grad))
    if peaks is None:
        peaks = _emit(out, 'max_pool', [x], **grad.params)
    kept = _emit(out, 'select', [_emit(out, 'gt', [peaks, threshold]), ct, zero])
    return _emit(out, 'max_pool_grad', [kept, x], **grad.params)


@into_subgraphs
def products_into_images(graph):
    """col2im of a matrix product's rows that nothing else reads, col2im(reshape(a @ b)) (a
    convolution's input gradient, a transposed convolution), becomes one matmul_col2im, which
    makes the product a few images at a time and adds each block back while it is in cache."""
    uses = _use_counts(graph)
    producers = {}

    def rule(node, out):
        replacement = None
        if node.prim.name == 'col2im':
            product = _product_rows(node.inputs[0], producers, uses)
            if product is not None:
                a, b, transpose_b = product
                replacement = _emit(out, 'matmul_col2im', [a, b], transpose_b=transpose_b,
                                    **node.params)
        for v in node.outputs:
            producers[v] = node
        return replacement
    return rewrite(graph, rule)


def _product_rows(var, producers, uses):
    """(a, b, transpose_b) when `var` is reshape(a @ b) of float matrices, a not transposed,
    and nothing else reads the product or the reshape; else None."""
    shaped = producers.get(var)
    if shaped is None or shaped.prim.name != 'reshape' or uses[var] != 1:
        return None
    product = producers.get(shaped.inputs[0])
    if product is None or product.prim.name != 'matmul' or uses[shaped.inputs[0]] != 1 \
            or product.params['transpose_a'] or product.outputs[0].ndim != 2 \
            or product.outputs[0].dtype.kind != 'f':
        return None
    a, b = product.inputs
    return a, b, product.params['transpose_b']


@into_subgraphs
def pool_gradient_products(graph):
    """a.T @ reshape(max_pool_grad(ct, x)) where nothing else reads the pooling gradient (the
    filter gradient of a convolution whose input needs none, behind max pooling) becomes one
    pool_grad_matmul, which makes the gradient a few images at a time and multiplies each
    block while it is in cache."""
    uses = _use_counts(graph)
    producers = {}

    def rule(node, out):
        replacement = None
        if node.prim.name == 'matmul' and node.params['transpose_a'] \
                and not node.params['transpose_b'] and node.outputs[0].ndim == 2:
            a, rows = node.inputs
            grad = _pool_gradient_rows(rows, producers, uses)
            if grad is not None and a.dtype == rows.dtype:
                replacement = _emit(out, 'pool_grad_matmul', [a, *grad.inputs], **grad.params)
        for v in node.outputs:
            producers[v] = node
        return replacement
    return rewrite(graph, rule)


def _pool_gradient_rows(var, producers, uses):
    """The max_pool_grad node when `var` is its float output as (pixels, channels) rows and
    nothing else reads either; else None."""
    shaped = producers.get(var)
    if shaped is None or shaped.prim.name != 'reshape' or uses[var] != 1:
        return None
    grad = producers.get(shaped.inputs[0])
    if grad is None or grad.prim.name != 'max_pool_grad' or uses[shaped.inputs[0]] != 1 \
            or var.dtype.kind != 'f' or var.shape[1] != grad.outputs[0].shape[3]:
        return None
    return grad


@into_subgraphs
def product_epilogues(graph):
    """A float matrix product and the elementwise work that alone reads it become one
    matmul_epilogue, applied to the product in registers before it is stored (gemm.EPILOGUES):
    relu(p + bias) and p + bias for a bias along the columns (a Dense layer; p may be reshaped
    first, as a convolution's rows are), and select(y > 0, p, 0) (relu's gradient of the
    product that makes the cotangent)."""
    uses, readers = _use_counts(graph), _readers(graph)
    producers = {}

    def rule(node, out):
        replacement = _with_epilogue(node, out, producers, uses, readers)
        for v in node.outputs:
            producers[v] = node
        return replacement
    return rewrite(graph, rule)


def _with_epilogue(node, out, producers, uses, readers):
    name, result = node.prim.name, node.outputs[0]
    if name == 'add':
        reading = readers.get(result, [])
        if uses[result] == 1 and len(reading) == 1 and reading[0].prim.name == 'relu':
            return None   # fused at the relu
        return _biased_product(node, out, producers, uses, 'bias')
    if name == 'relu':
        biased = producers.get(node.inputs[0])
        if biased is None or biased.prim.name != 'add' or uses[node.inputs[0]] != 1:
            return None
        return _biased_product(biased, out, producers, uses, 'bias_relu')
    if name != 'select':
        return None
    mask, product, zero = node.inputs
    test = producers.get(mask)
    made = _sole_product(product, producers, uses)
    if made is None or test is None or test.prim.name != 'gt' or not _is_constant(out, zero, 0):
        return None
    y, threshold = test.inputs
    if not (_is_constant(out, threshold, 0) and _same_type(y, result)
            and _same_type(product, result)):
        return None
    return _emit(out, 'matmul_epilogue', [*made.inputs, y], epilogue='relu_mask', **made.params)


def _biased_product(add, out, producers, uses, epilogue):
    """matmul_epilogue of `add` = product + bias (either order; the product perhaps reshaped
    with its columns kept last), reshaped as the add's output; None when it is not that."""
    result = add.outputs[0]
    for rows, bias in (add.inputs, add.inputs[::-1]):
        shaped = producers.get(rows)
        reshaped = shaped is not None and shaped.prim.name == 'reshape' and uses[rows] == 1
        made = _sole_product(shaped.inputs[0] if reshaped else rows, producers, uses)
        if made is None or not _same_type(rows, result) or bias.shape != result.shape[-1:] \
                or bias.dtype != result.dtype or result.shape[-1:] != made.outputs[0].shape[1:]:
            continue
        fused = _emit(out, 'matmul_epilogue', [*made.inputs, bias], epilogue=epilogue,
                      **made.params)
        return _emit(out, 'reshape', [fused], shape=result.shape) if reshaped else fused
    return None


def _sole_product(var, producers, uses):
    """The matmul node making `var`, a float32/float64 matrix nothing else reads; else None."""
    made = producers.get(var)
    if made is None or made.prim.name != 'matmul' or uses[var] != 1 or var.ndim != 2 \
            or var.dtype not in (np.float32, np.float64):
        return None
    return made


def _readers(graph):
    """The nodes that read each value."""
    readers = {}
    for node in graph.nodes:
        for var in node.inputs:
            readers.setdefault(var, []).append(node)
    return readers


def _use_counts(graph):
    """How many times each value is read: by nodes, as an output, as a Variable's update."""
    uses = {}
    for var in [v for n in graph.nodes for v in n.inputs] + list(graph.outputs) + [
            v for _, v in graph.updates]:
        uses[var] = uses.get(var, 0) + 1
    return uses


# sparse row updates: the position of the input holding one value row per index
ROW_VALUES = {'accumulate_rows': 2, 'lazy_adam_rows': 4}


@into_subgraphs
def row_repeats(graph):
    """A row update whose values are a gradient broadcast over looked-up rows (a mean or sum
    over a sequence of embeddings: reshape(broadcast_to(x, (B, L, ..)), (B * L, ..)) with x
    of shape (B, 1, ..)) reads the unbroadcast x with `repeat` L, so the (B * L, ..) copy is
    never made."""
    producers = {}

    def rule(node, out):
        position = ROW_VALUES.get(node.prim.name)
        found = None if position is None or node.params['repeat'] != 1 else \
            _repeated_rows(node.inputs[position], producers)
        if found is not None:   # the node is rewrite's copy: change its operand and params
            x, shape, repeat = found
            node.inputs[position] = _emit(out, 'reshape', [x], shape=shape)
            node.params = dict(node.params, repeat=repeat)
        for v in node.outputs:
            producers[v] = node
        return None
    return rewrite(graph, rule)


def _repeated_rows(var, producers):
    """(x, (B, ..), L) when `var` is x of shape (B, 1, ..) broadcast to (B, L, ..) and
    flattened to (B * L, ..); else None."""
    flat = producers.get(var)
    spread = flat is not None and flat.prim.name == 'reshape' and producers.get(flat.inputs[0])
    if not spread or spread.prim.name != 'broadcast_to':
        return None
    x, full = spread.inputs[0], tuple(spread.params['shape'])
    if len(full) < 2 or full[1] < 1 or x.shape != (full[0], 1) + full[2:] \
            or var.shape != (full[0] * full[1],) + full[2:]:
        return None
    return x, (full[0],) + full[2:], full[1]


@into_subgraphs
def hoist_scan_accumulations(graph):
    """A scan carry that only sums one matmul per iteration, `acc + op(a_i) @ op(b_i)` (the
    gradient of a loop's weights, such as an RNN's recurrent kernel), becomes ONE matmul after
    the loop over the a_i and b_i stacked per iteration: a GEMM `length` times as tall instead
    of `length` small ones, and no carry. The sum's order changes (within rounding)."""
    def rule(node, out):
        if node.prim.name != 'scan':
            return None
        found = _accumulations(node)
        return _hoist(node, found, out) if found else None
    return rewrite(graph, rule)


def _accumulations(node):
    """{carry position: (add, matmul)} for the scan's carries whose next value is `carry +
    matmul` (2-D float operands that change per iteration), which nothing else in the body
    reads."""
    body, num_consts = node.params['body'], node.params['num_consts']
    uses, producers = _use_counts(body), body.producers()
    varying = _varying(body, num_consts)
    found = {}
    for k in range(node.params['num_carry']):
        acc, total = body.inputs[num_consts + k], body.outputs[k]
        add = producers.get(total)
        if add is None or add.prim.name != 'add' or acc not in add.inputs \
                or uses.get(acc) != 1 or uses[total] != 1 or not _same_type(acc, total):
            continue
        term = add.inputs[1] if add.inputs[0] is acc else add.inputs[0]
        dot = producers.get(term)
        if dot is not None and dot.prim.name == 'matmul' and uses[term] == 1 \
                and _same_type(term, acc) and acc.dtype.kind == 'f' \
                and all(v.ndim == 2 and v in varying for v in dot.inputs):
            found[k] = (add, dot)
    return found


def _varying(body, num_consts):
    """The body's values that depend on the carry or the scanned rows."""
    varying = set(body.inputs[num_consts:])
    for node in body.nodes:
        if any(v in varying for v in node.inputs):
            varying.update(node.outputs)
    return varying


def _hoist(node, found, out):
    """Emit the scan without the carries `found` (their matmuls' operands stacked as extra
    outputs, or read from the scanned inputs) and one matmul per carry after it; returns the
    substitution of the scan's outputs."""
    params, body = node.params, node.params['body']
    num_consts, num_carry = params['num_consts'], params['num_carry']
    split = num_consts + num_carry
    stacked = dict(zip(body.inputs[split:], node.inputs[split:]))   # body value -> all rows
    stacked.update(zip(body.outputs[num_carry:], node.outputs[num_carry:]))
    extra = []
    for _, dot in found.values():
        for v in dot.inputs:
            if v not in stacked:
                stacked[v] = ir.Var((params['length'],) + v.shape, v.dtype, v.weak)
                extra.append(v)
    kept = [k for k in range(num_carry) if k not in found]
    removed = {id(n) for pair in found.values() for n in pair}
    dropped = {body.inputs[num_consts + k] for k in found}
    new_body = ir.Graph()
    new_body.inputs = [v for v in body.inputs if v not in dropped]
    new_body.consts = dict(body.consts)
    new_body.nodes = [n for n in body.nodes if id(n) not in removed]
    new_body.outputs = [body.outputs[k] for k in kept] + body.outputs[num_carry:] + extra
    inputs = node.inputs[:num_consts] + [node.inputs[num_consts + k] for k in kept] \
        + node.inputs[split:]
    outputs = [node.outputs[k] for k in kept] + node.outputs[num_carry:] + [
        stacked[v] for v in extra]
    out.nodes.append(ir.Node(node.prim, inputs, dict(params, body=new_body,
                                                     num_carry=len(kept)), outputs, node.where))
    subst = {}
    for k, (_, dot) in found.items():
        (a, b), flags = dot.inputs, dot.params
        total = _emit(out, 'matmul', [_iterations_along(out, stacked[a], flags['transpose_a']),
                                      _iterations_along(out, stacked[b],
                                                        not flags['transpose_b'])], **flags)
        init = node.inputs[num_consts + k]
        subst[node.outputs[k]] = total if _is_zeros(out, init) else _emit(out, 'add',
                                                                          [init, total])
    return subst


@into_subgraphs
def slices_before_elementwise(graph):
    """An elementwise result that only slices read, blocks that do not overlap, is computed
    per block from the same blocks of its operands instead: slice(add(p, q)) = add(slice(p),
    slice(q)), and on through operands that only this op reads. Nothing is computed twice,
    and the block's ops join the loop that reads the block, which reads the operands' blocks
    in place (an LSTM cell's gate pre-activations, xw + h @ U, are summed in the loop of the
    gates, not in a loop of their own)."""
    users = {}
    for node in graph.nodes:
        for v in node.inputs:
            users.setdefault(v, []).append(node)
    ends = set(graph.outputs) | {v for _, v in graph.updates}
    producers = graph.producers()

    def splittable(v, readers_ok):
        """v's producer, if v is an elementwise result whose readers pass `readers_ok` and
        whose array operands have its shape (no broadcasting)."""
        source = producers.get(v)
        if source is None or source.prim.kind != 'elementwise' or len(source.outputs) != 1 \
                or v in ends or not readers_ok(users[v]) \
                or any(u.shape not in ((), v.shape) for u in source.inputs):
            return None
        return source

    def per_block(out, source, params, blocks):
        """`source` (an elementwise node) over its operands' blocks `params`; `blocks`: the
        blocks made so far for this slice, each once."""
        operands = []
        for u in source.inputs:
            if u.shape != () and u not in blocks:
                inner = splittable(u, lambda readers: all(r is source for r in readers))
                blocks[u] = _emit(out, 'slice', [u], **params) if inner is None else \
                    per_block(out, inner, params, blocks)
            operands.append(blocks.get(u, u))
        return _emit(out, source.prim.name, operands, **source.params)

    def rule(node, out):
        if node.prim.name != 'slice':
            return None
        whole = node.inputs[0]
        source = splittable(whole, lambda readers: _disjoint(readers, whole))
        return None if source is None else per_block(out, source, node.params, {})
    return rewrite(graph, rule)


def _disjoint(readers, whole):
    """Whether the readers are unit-step slices of `whole` whose blocks pairwise share no
    element."""
    if any(r.prim.name != 'slice' or r.inputs[0] is not whole for r in readers):
        return False
    boxes = [r.params['slices'] for r in readers]
    if any(step != 1 for box in boxes for _, _, step in box):
        return False
    return all(any(a_stop <= b_start or b_stop <= a_start
                   for (a_start, a_stop, _), (b_start, b_stop, _) in zip(a, b))
               for k, a in enumerate(boxes) for b in boxes[k + 1:])


_LOOP_BODIES = {'scan': ('body',), 'while': ('body_graph', 'cond_graph')}


@into_subgraphs
def transpose_loop_constants(graph):
    """A loop constant that a body's matmul reads transposed on the right (`dz @ U.T`, an RNN's
    backward step through its recurrent kernel) is transposed once before the loop and passed
    as another constant: a product needs its right operand's rows unit-stride and would copy
    the transpose on every iteration. A transpose cannot fail, so it may run before a loop that
    runs zero times."""
    def rule(node, out):
        keys = _LOOP_BODIES.get(node.prim.name)
        if keys is None:
            return None
        num_consts = node.params['num_consts']
        body = node.params[keys[0]]
        constants = set(body.inputs[:num_consts])
        transposed = {}   # body constant -> its transpose, a new body input
        for n in body.nodes:
            b = n.inputs[1] if n.prim.name == 'matmul' else None
            if b in constants and b.ndim == 2 and n.params['transpose_b'] \
                    and b not in transposed:
                transposed[b] = ir.Var(b.shape[::-1], b.dtype, b.weak)
        if not transposed:
            return None
        outer = [_emit(out, 'transpose', [node.inputs[body.inputs.index(b)]], perm=(1, 0))
                 for b in transposed]
        params = dict(node.params, num_consts=num_consts + len(transposed))
        params[keys[0]] = _with_constants(body, num_consts, list(transposed.values()), transposed)
        for key in keys[1:]:   # a while loop's condition takes them too, and ignores them
            params[key] = _with_constants(node.params[key], num_consts, [
                ir.Var(t.shape, t.dtype, t.weak) for t in transposed.values()], {})
        out.nodes.append(ir.Node(node.prim, node.inputs[:num_consts] + outer
                                 + node.inputs[num_consts:], params, node.outputs, node.where))
        return {}   # the node is replaced by the one appended, with the same outputs
    return rewrite(graph, rule)


def _with_constants(graph, num_consts, extra, transposed):
    """`graph` (a loop body or condition) taking the inputs `extra` after its first
    `num_consts`, its matmuls reading `transposed[b]` in place of the constant b transposed."""
    new = _copy(graph)
    new.inputs = graph.inputs[:num_consts] + extra + graph.inputs[num_consts:]
    new.nodes = []
    for n in graph.nodes:
        if n.prim.name == 'matmul' and n.inputs[1] in transposed and n.params['transpose_b']:
            n = ir.Node(n.prim, [n.inputs[0], transposed[n.inputs[1]]],
                        dict(n.params, transpose_b=False), n.outputs, n.where)
        new.nodes.append(n)
    return new


def _iterations_along(graph, stacked, contract_rows):
    """A matmul operand stacked per iteration, (length, r, c), as one 2-D operand whose
    contracted axis runs over the iterations, then over the operand's own contracted axis
    (its rows, or its columns)."""
    length, rows, cols = stacked.shape
    if contract_rows:
        return _emit(graph, 'reshape', [stacked], shape=(length * rows, cols))
    moved = _emit(graph, 'transpose', [stacked], perm=(1, 0, 2))
    return _emit(graph, 'reshape', [moved], shape=(rows, length * cols))


def _is_zeros(graph, var):
    """Whether `var` is a constant of zeros or a broadcast of one."""
    node = graph.producers().get(var)
    if node is not None and node.prim.name == 'broadcast_to':
        var = node.inputs[0]
    return _is_constant(graph, var, 0)


def _emit(graph, name, inputs, **params):
    prim = REGISTRY[name]
    (shape, dtype, weak), = prim.check(*inputs, **params)
    var = ir.Var(shape, dtype, weak)
    graph.nodes.append(ir.Node(prim, inputs, params, [var]))
    return var


@into_subgraphs
def common_subexpression_elimination(graph):
    """One node per (primitive, operands, params). Constants are never merged by value: two
    equal constants today may differ for another batch size, and the kernel source must not."""
    seen = {}

    def rule(node, out):
        if node.prim.name == 'random_uniform' or node.prim.kind == 'control' \
                or len(node.outputs) > 1 or has_effects(node):
            return None   # a fresh draw each time; several outputs (merged only as one node)
        key = (node.prim.name, tuple(id(v) for v in node.inputs),
               tuple(sorted((k, _hashable(p)) for k, p in node.params.items())))
        if key in seen:
            return seen[key]
        seen[key] = node.outputs[0]
        return None
    return rewrite(graph, rule)


def _hashable(value):
    return value.str if isinstance(value, np.dtype) else value


PIPELINE = [
    ('fold', constant_folding),
    ('simplify', algebraic_simplification),
    ('row_repeats', row_repeats),
    ('embedding_bags', embedding_bags),
    ('pooled_relu_gradients', pooled_relu_gradients),
    ('cse', common_subexpression_elimination),
    ('simplify2', algebraic_simplification),
    ('slices_before_elementwise', slices_before_elementwise),
    ('hoist_accumulations', hoist_scan_accumulations),
    ('transpose_loop_constants', transpose_loop_constants),
    ('fold2', constant_folding),
    ('dce', dead_code_elimination),
    # after dce: they fuse a product with what alone reads it (a dead input gradient reads too)
    ('products_into_images', products_into_images),
    ('pool_gradient_products', pool_gradient_products),
    ('product_epilogues', product_epilogues),
    ('dce2', dead_code_elimination),
]


def optimize(graph, pipeline=None):
    """Run the pass pipeline; TRACEJIT_DEBUG=1 prints the graph after each pass."""
    debug = debug_level() >= 1
    for name, rewrite_pass in pipeline or PIPELINE:
        graph = rewrite_pass(graph)
        if debug:
            print(f'--- after {name} ---\n{graph}', file=sys.stderr)
    return graph

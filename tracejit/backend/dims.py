"""Symbolic dimensions: which axes of a graph must have the same size, whatever the input sizes.

Generated code reads every size from a `dims` array, one slot per class of axes that the
primitives' rules force to be equal (an elementwise op's output axis and its operands' axes,
a matmul's inner axes, ...). Classes follow the graph's structure, not the sizes, so a batch of
128 flowing next to a hidden layer of 128 still gets its own slot, and the last partial batch of
an epoch produces exactly the same source (and reuses the compiled kernel). Size-1 axes are
structural (broadcasting) and stay literal.

The rules below, one per way a primitive ties axes together, are named in lowering.py's table.
"""


class DimClasses:
    """`rule_of(node)`: the node's rule below (lowering.dims_rule), or None."""

    def __init__(self, graph, rule_of):
        self.parent = {}
        for var in self._vars(graph):
            for k in range(var.ndim):
                self.parent[(var, k)] = (var, k)
        for node in graph.nodes:
            rule = rule_of(node)
            if rule is not None:
                for a, b in rule(node):
                    self.union(a, b)
        self.slots = {}
        for var in self._vars(graph):
            for k in range(var.ndim):
                if var.shape[k] != 1:
                    self.slots.setdefault(self.find((var, k)), (len(self.slots), var.shape[k]))

    @staticmethod
    def _vars(graph):
        yield from graph.inputs
        yield from (v for _, v in graph.state)
        yield from graph.consts
        for node in graph.nodes:
            yield from node.outputs

    def find(self, key):
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a, b):
        (va, ka), (vb, kb) = a, b
        if va.shape[ka] != 1 and va.shape[ka] == vb.shape[kb]:
            self.parent[self.find(a)] = self.find(b)

    def slot(self, var, axis):
        """'1' for a size-1 axis, else the name of its size slot ('d3')."""
        axis %= var.ndim
        if var.shape[axis] == 1:
            return '1'
        return f'd{self.slots[self.find((var, axis))][0]}'

    def signature(self, var):
        """The symbolic shape of `var`: equal signatures mean equal shapes for every input size."""
        return tuple(self.slot(var, k) for k in range(var.ndim))

    def sizes(self):
        """The dims array values, in slot order."""
        return [size for _, size in sorted(self.slots.values())]


def aligned(node):
    out = node.outputs[0]
    for var in node.inputs:
        lead = out.ndim - var.ndim
        for k in range(var.ndim):
            yield (out, lead + k), (var, k)


def reduced(node):
    x, out = node.inputs[0], node.outputs[0]
    axes = node.params.get('axes', (node.params.get('axis'),))
    kept = [k for k in range(x.ndim) if k not in axes]
    for j, k in enumerate(kept):
        yield (out, j), (x, k)


def matmul(node):
    a, b = node.inputs[:2]
    out = node.outputs[0]
    m_a, k_a = (-1, -2) if node.params['transpose_a'] else (-2, -1)
    k_b, n_b = (-1, -2) if node.params['transpose_b'] else (-2, -1)
    yield (out, out.ndim - 2), (a, a.ndim + m_a)
    yield (out, out.ndim - 1), (b, b.ndim + n_b)
    yield (a, a.ndim + k_a), (b, b.ndim + k_b)
    for k in range(out.ndim - 2):
        yield (out, k), (a, k)
        yield (out, k), (b, k)


def matmul_epilogue(node):
    """A 2-D matmul's axes; a bias runs along the columns, a mask has the output's shape."""
    yield from matmul(node)
    out, extra = node.outputs[0], node.inputs[2]
    for k in range(extra.ndim):
        yield (extra, k), (out, out.ndim - extra.ndim + k)


def transpose(node):
    for k, p in enumerate(node.params['perm']):
        yield (node.outputs[0], k), (node.inputs[0], p)


def reshape(node):
    """Axes matched from the front and from the back while sizes agree (1s skipped)."""
    x, out = node.inputs[0], node.outputs[0]
    for order in (range, lambda n: range(n - 1, -1, -1)):
        xs = [k for k in order(x.ndim) if x.shape[k] != 1]
        os = [k for k in order(out.ndim) if out.shape[k] != 1]
        for i, j in zip(xs, os):
            if x.shape[i] != out.shape[j]:
                break
            yield (out, j), (x, i)


def full_slices(node):
    x = node.inputs[0]
    out = node.outputs[0]
    for k, (start, stop, step) in enumerate(node.params['slices']):
        if (start, stop, step) == (0, max(x.shape[k], out.shape[k]), 1):
            yield (out, k), (x, k)


def concat(node):
    out, axis = node.outputs[0], node.params['axis']
    for var in node.inputs:
        for k in range(out.ndim):
            if k != axis:
                yield (out, k), (var, k)


def gather(node):
    x, idx = node.inputs
    out, axis = node.outputs[0], node.params['axis']
    for k in range(axis):
        yield (out, k), (x, k)
    for k in range(idx.ndim):
        yield (out, axis + k), (idx, k)
    for k in range(axis + 1, x.ndim):
        yield (out, k - 1 + idx.ndim), (x, k)


def gather_sum(node):
    x, idx = node.inputs
    out = node.outputs[0]
    for k in range(idx.ndim - 1):
        yield (out, k), (idx, k)
    for k in range(1, x.ndim):
        yield (out, idx.ndim - 2 + k), (x, k)


def scatter_add(node):
    u, idx = node.inputs
    out, axis = node.outputs[0], node.params['axis']
    for k in range(axis):
        yield (out, k), (u, k)
    for k in range(idx.ndim):
        yield (u, axis + k), (idx, k)
    for k in range(axis + 1, out.ndim):
        yield (out, k), (u, k - 1 + idx.ndim)



def batch_and_channels(node):
    """Window ops (im2col, col2im, pool_argmax) keep the NHWC batch and channel axes."""
    x, out = node.inputs[0], node.outputs[0]
    yield (out, 0), (x, 0)
    yield (out, out.ndim - 1), (x, x.ndim - 1)


def matmul_col2im(node):
    """The product's inner axes, as a matmul's."""
    a, b = node.inputs
    yield (a, 1), (b, 1 if node.params['transpose_b'] else 0)


def pool_grad_matmul(node):
    """One row of the left operand per pixel; the product's columns are the channels."""
    (a, ct, x), out = node.inputs, node.outputs[0]
    yield (out, 0), (a, 1)
    yield (out, 1), (x, 3)
    yield (ct, 0), (x, 0)
    yield (ct, 3), (x, 3)


def pool_grad(node):
    """max_pool_grad's output has the image's shape and the cotangent's batch and channels."""
    (ct, x), out = node.inputs, node.outputs[0]
    for k in range(out.ndim):
        yield (out, k), (x, k)
    yield (ct, 0), (x, 0)
    yield (ct, 3), (x, 3)


def scatter_rows(node):
    base, idx, upd = node.inputs
    out, depth = node.outputs[0], node.params['depth']
    for k in range(out.ndim):
        yield (out, k), (base, k)
    yield (upd, 0), (idx, 0)
    for k in range(depth, base.ndim):
        yield (upd, 1 + k - depth), (base, k)


def sum_duplicates(node):
    u, idx = node.inputs
    for k in range(u.ndim):
        yield (node.outputs[0], k), (u, k)
    yield (u, 0), (idx, 0)
def independent(node):
    """No axes tied: a control-flow node's sub-graphs have dims of their own."""
    return ()


def accumulate_rows(node):
    base, idx, values, _ = node.inputs
    for k in range(base.ndim):
        yield (node.outputs[0], k), (base, k)
    if node.params['repeat'] == 1:
        yield (values, 0), (idx, 0)
    for k in range(1, base.ndim):
        yield (values, k), (base, k)


def lazy_adam_rows(node):
    var, idx, m, v, values, _ = node.inputs
    for k in range(var.ndim):
        for other in (m, v, *node.outputs):
            yield (other, k), (var, k)
    if node.params['repeat'] == 1:
        yield (values, 0), (idx, 0)
    for k in range(1, var.ndim):
        yield (values, k), (var, k)

"""Partition a graph into groups that each become one piece of the kernel.

- `loop`: a loop nest over one iteration space (shape). Elementwise nodes whose output has that
  shape are computed as scalars inside it (no intermediate arrays); reductions of values of that
  shape accumulate inside it, so loss, gradients and updates can share one pass over memory.
- `scalar`: straight-line code on 0-d values.
- `call`: one node lowered on its own (matmul via BLAS, layout ops, gathers).

Legality (`can_fuse`) is separate from preference (`score`): a node joins the legal group that
produces most of its operands. Every refusal is recorded with a reason for tests and debugging.
"""
from .dims import DimClasses
from .lowering import dims_rule, lowering_of


class Group:
    """Nodes emitted together. `space` is the loop shape (loops) or () (scalar groups)."""

    def __init__(self, kind, space, signature, index):
        self.kind, self.space, self.signature, self.index = kind, tuple(space), signature, index
        self.members = []        # elementwise nodes, in graph order
        self.reductions = []     # reduction nodes accumulated in this loop
        self.deps = set()        # indices of groups this one reads from

    @property
    def nodes(self):
        return self.members + self.reductions

    def __repr__(self):
        names = ' '.join(n.prim.name for n in self.nodes)
        return f'Group#{self.index}({self.kind} {self.space}: {names})'


class Plan:
    """Groups in a valid emission order, plus the reasons fusion was refused."""

    def __init__(self, graph, groups, refusals):
        self.graph, self.groups, self.refusals = graph, groups, refusals

    def loops(self):
        return [g for g in self.groups if g.kind == 'loop']

    def __repr__(self):
        return '\n'.join(map(repr, self.groups))


def _is_elementwise(node):
    return lowering_of(node.prim).looped


def _fusible_reduction(node):
    return lowering_of(node.prim).accumulate is not None


class Partitioner:
    def __init__(self, graph, dims):
        self.graph, self.dims = graph, dims
        self.groups = []
        self.group_of = {}       # Var -> Group that produces it
        self.refusals = []

    def run(self):
        for node in self.graph.nodes:
            self.place(node)
        return Plan(self.graph, self.ordered(), self.refusals)

    # -- placement -------------------------------------------------------------------------

    def place(self, node):
        if node.outputs[0].shape == () and _is_elementwise(node):
            self.join_best(node, 'scalar', node.outputs[0], 'members')
        elif _is_elementwise(node):
            self.join_best(node, 'loop', node.outputs[0], 'members')
        elif _fusible_reduction(node) and node.inputs[0].shape != ():
            self.join_best(node, 'loop', node.inputs[0], 'reductions')
        else:
            self.add(self.new_group('call', node.outputs[0]), node, 'members')

    def join_best(self, node, kind, space_var, role):
        """Join the best legal group over the same symbolic iteration space, or start one."""
        signature = self.dims.signature(space_var)
        candidates = []
        for group in self.groups:
            if group.kind != kind or group.signature != signature:
                continue
            ok, reason = self.can_fuse(node, group)
            if ok:
                candidates.append((self.score(node, group), group.index, group))
            else:
                self.refusals.append((node.prim.name, group.index, reason))
        group = max(candidates, key=lambda c: c[:2])[2] if candidates else \
            self.new_group(kind, space_var)
        self.add(group, node, role)

    def can_fuse(self, node, group):
        """(legal, reason): joining must not read a reduction of the same loop or make a cycle;
        straight-line scalar code must not be delayed behind work it does not need (it may
        feed a loop that runs earlier)."""
        if group.kind == 'scalar':
            needed = {self.group_of[v].index for v in node.inputs if v in self.group_of}
            extra = [d for d in group.deps
                     if d not in needed and not any(self.depends_on(self.groups[n], self.groups[d])
                                                    for n in needed)]
            if extra:
                return False, f'would wait for group {extra[0]}, which it does not need'
        for var in node.inputs:
            producer = self.group_of.get(var)
            if producer is None:
                continue
            if producer is group:
                if any(var in r.outputs for r in group.reductions):
                    return False, 'reads a reduction computed by this loop'
            elif self.depends_on(producer, group):
                return False, f'an operand comes from group {producer.index}, which needs this loop'
        return True, ''

    def score(self, node, group):
        """Operand bytes this group already holds (saved memory traffic)."""
        return sum(v.size * v.dtype.itemsize for v in node.inputs if self.group_of.get(v) is group)

    def depends_on(self, group, target):
        stack, seen = [group], set()
        while stack:
            g = stack.pop()
            if g is target:
                return True
            if g.index in seen:
                continue
            seen.add(g.index)
            stack.extend(self.groups[i] for i in g.deps)
        return False

    def new_group(self, kind, space_var):
        group = Group(kind, space_var.shape, self.dims.signature(space_var), len(self.groups))
        self.groups.append(group)
        return group

    def add(self, group, node, role):
        getattr(group, role).append(node)
        for var in node.inputs:
            producer = self.group_of.get(var)
            if producer is not None and producer is not group:
                group.deps.add(producer.index)
        for var in node.outputs:
            self.group_of[var] = group

    # -- ordering --------------------------------------------------------------------------

    def ordered(self):
        """Groups in dependency order (creation order among independent groups)."""
        done, out = set(), []

        def visit(group):
            if group.index in done:
                return
            done.add(group.index)
            for dep in sorted(group.deps):
                visit(self.groups[dep])
            out.append(group)

        for group in self.groups:
            visit(group)
        return out


def partition(graph, dims=None):
    return Partitioner(graph, dims or DimClasses(graph, dims_rule)).run()

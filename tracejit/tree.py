"""Pytrees: nested tuples, lists, dicts and namedtuples flattened into leaves and a structure.

The structure (`TreeDef`) is hashable, so it can be part of a compiled function's cache key.
Dict keys are sorted, as in JAX, so two dicts with the same keys always flatten the same way;
an OrderedDict keeps its insertion order (as JAX and TF do). `None` is an empty subtree.
"""
import collections


class TreeDef:
    """The shape of a pytree without its leaves: kind, metadata and children."""

    __slots__ = ('kind', 'meta', 'children', 'num_leaves', '_hash')

    def __init__(self, kind, meta, children):
        self.kind, self.meta, self.children = kind, meta, tuple(children)
        self.num_leaves = 1 if kind == 'leaf' else sum(c.num_leaves for c in self.children)
        self._hash = hash((kind, meta, self.children))

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self._hash == other._hash
                and (self.kind, self.meta, self.children)
                == (other.kind, other.meta, other.children))

    def __hash__(self):
        return self._hash

    def __repr__(self):
        if self.kind == 'leaf':
            return '*'
        if self.kind == 'none':
            return 'None'
        inner = ', '.join(map(repr, self.children))
        return {'tuple': f'({inner})', 'list': f'[{inner}]'}.get(self.kind, f'{self.kind}({inner})')


LEAF = TreeDef('leaf', None, ())


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), '_fields')


def flatten(tree, is_leaf=None):
    """Return (leaves, treedef)."""
    leaves = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def _flatten(tree, leaves, is_leaf):
    if is_leaf is not None and is_leaf(tree):
        leaves.append(tree)
        return LEAF
    if tree is None:
        return TreeDef('none', None, ())
    if _is_namedtuple(tree):
        return TreeDef('namedtuple', type(tree), [_flatten(c, leaves, is_leaf) for c in tree])
    if type(tree) in (tuple, list):
        return TreeDef(type(tree).__name__, None, [_flatten(c, leaves, is_leaf) for c in tree])
    if isinstance(tree, dict):
        # a dict's leaves in sorted key order (JAX, TF); an OrderedDict keeps its own order
        keys = list(tree) if isinstance(tree, collections.OrderedDict) else \
            sorted(tree, key=_sort_key)
        return TreeDef(('dict', type(tree)), tuple(keys),
                       [_flatten(tree[k], leaves, is_leaf) for k in keys])
    leaves.append(tree)
    return LEAF


def _sort_key(key):
    return (type(key).__name__, key) if not isinstance(key, str) else ('', key)


def unflatten(treedef, leaves):
    """Inverse of `flatten`."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    return out


def _unflatten(treedef, it):
    kind = treedef.kind
    if kind == 'leaf':
        return next(it)
    if kind == 'none':
        return None
    children = [_unflatten(c, it) for c in treedef.children]
    if kind == 'tuple':
        return tuple(children)
    if kind == 'list':
        return children
    if kind == 'namedtuple':
        return treedef.meta(*children)
    return kind[1](zip(treedef.meta, children))


def tree_map(fn, tree, *rest, is_leaf=None):
    """Apply `fn` leaf-wise over one or more trees of the same structure."""
    leaves, treedef = flatten(tree, is_leaf)
    others = [flatten(r, is_leaf)[0] for r in rest]
    return unflatten(treedef, [fn(*args) for args in zip(leaves, *others)])


def leaves(tree, is_leaf=None):
    return flatten(tree, is_leaf)[0]

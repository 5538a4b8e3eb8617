"""Static analysis for the AutoGraph transform, on one function's body: the names a block
assigns, the names it reads, and which names are live after and inside each `if`, `while` and
`for` (TensorFlow's activity and liveness analyses).

A converted statement's state is the names it assigns that are read later (live after it) or
read inside it before being assigned (live on entry): only those flow in and out of a branch or
loop. Reads are counted conservatively (any load anywhere, nested functions included), so a
name is never wrongly dropped; what is assigned counts plain names, names whose item is stored
(`a[i] = x`) and lists mutated by a method (`ys.append(y)`), whose growth in a tensor loop is
then reported.
"""
import ast

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)
MUTATORS = frozenset({'append', 'extend', 'insert', 'pop', 'remove', 'clear', 'update',
                      'setdefault'})


class _Assigned(ast.NodeVisitor):
    """Names a statement binds in its own scope (nested scopes contribute only their name)."""

    def __init__(self, mutations):
        self.names, self.mutations = set(), mutations

    def visit_Name(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.names.add(node.id)

    def visit_FunctionDef(self, node):
        self.names.add(node.name)
        for child in node.decorator_list + node.args.defaults + node.args.kw_defaults:
            if child is not None:
                self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self.names.add(node.name)
        for child in node.decorator_list + node.bases:
            self.visit(child)

    def visit_Lambda(self, node):
        for child in node.args.defaults:
            self.visit(child)

    def _comprehension(self, node):
        self.visit(node.generators[0].iter)   # the only part evaluated in this scope

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name != '*':
                self.names.add((alias.asname or alias.name).split('.')[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node):
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Call) and ast.unparse(func.func) == 'ag__.converted':
            func = func.args[0]   # `ys.append` as converted code calls it
        if (self.mutations and isinstance(func, ast.Attribute) and func.attr in MUTATORS
                and isinstance(func.value, ast.Name)):
            self.names.add(func.value.id)
        self.generic_visit(node)

    def visit_Subscript(self, node):
        if self.mutations and isinstance(node.ctx, ast.Store) and isinstance(node.value,
                                                                             ast.Name):
            self.names.add(node.value.id)
        self.generic_visit(node)


def assigned(stmts, mutations=True):
    """The names the statements bind (with `mutations`, also the names of lists or dicts they
    change in place)."""
    visitor = _Assigned(mutations)
    for stmt in stmts:
        visitor.visit(stmt)
    return visitor.names


def reads(node):
    """Every name the node loads, nested functions included (`x += 1` loads x)."""
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
            found.add(child.id)
        elif isinstance(child, ast.AugAssign) and isinstance(child.target, ast.Name):
            found.add(child.target.id)
    return found


def declared(stmts):
    """Names declared `global` or `nonlocal` in the function: never branch or loop state."""
    found = set()
    for stmt in stmts:
        for child in ast.walk(stmt):
            if isinstance(child, (ast.Global, ast.Nonlocal)):
                found.update(child.names)
    return found


def annotate(stmts, live_out=frozenset()):
    """Set `ag_live_out` (live after) and `ag_live_in` (live on entry of the branches, or at
    the loop head) on every If, While and For of the block; returns the names live before."""
    return _block(stmts, set(live_out))


def _block(stmts, live):
    for stmt in reversed(stmts):
        live = _stmt(stmt, live)
    return live


def _stmt(stmt, out):
    if isinstance(stmt, ast.If):
        stmt.ag_live_out = set(out)
        stmt.ag_live_in = _block(stmt.body, out) | _block(stmt.orelse, out)
        return reads(stmt.test) | stmt.ag_live_in
    if isinstance(stmt, (ast.While, ast.For)):
        return _loop(stmt, out)
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return _block(stmt.body, out) | set().union(*(reads(i) for i in stmt.items))
    if isinstance(stmt, ast.Try):
        after = _block(stmt.finalbody, out)
        after |= _block(stmt.orelse, after)
        handlers = set().union(*(_block(h.body, after) | reads(h) for h in stmt.handlers))
        return _block(stmt.body, after | handlers) | handlers | after
    if isinstance(stmt, (ast.Return, ast.Raise)):
        return reads(stmt)
    if isinstance(stmt, SCOPES):
        return (out - {stmt.name}) | reads(stmt)
    return (out - assigned([stmt], mutations=False)) | reads(stmt)


def _loop(stmt, out):
    """The loop head's live names, iterated to a fixed point (the body's end flows to it)."""
    is_for = isinstance(stmt, ast.For)
    after = out | _block(stmt.orelse, out)
    test = getattr(stmt, 'ag_extra_test', None) if is_for else stmt.test
    head = after | (reads(test) if test is not None else set())
    killed = assigned([stmt.target], mutations=False) if is_for else set()
    while True:
        new = head | (_block(stmt.body, head) - killed)
        if new == head:
            break
        head = new
    stmt.ag_live_out, stmt.ag_live_in = set(out), head
    return head | (reads(stmt.iter) if is_for else set())

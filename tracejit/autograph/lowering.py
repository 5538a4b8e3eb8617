"""Lowering `return`, `break` and `continue` into flags, as TensorFlow's AutoGraph does, so
that the control-flow conversion sees only structured `if`s and loops.

`break` in a loop becomes `break_N = True`; the statements after it in the body are guarded by
`if not break_N:`, the loop keeps going only while `not break_N`, and a loop's `else` runs
after it when it did not break. `continue` becomes `continue_N = True` with the rest of the
body guarded. A `return` inside an `if` or a loop becomes `do_return = True; retval_ = value`;
everything after it is guarded by `if not do_return:`, every enclosing loop stops on it, and
the function ends with `return ag__.retval(retval_)`. On Python values the guards are plain
Python `if`s, so the function behaves exactly as written.
"""
import ast

from .analysis import SCOPES

_LOOPS = (ast.For, ast.While)


def _name(id_, store=False):
    return ast.Name(id=id_, ctx=ast.Store() if store else ast.Load())


def _set(flag, value):
    return ast.Assign(targets=[_name(flag, True)], value=ast.Constant(value))


def _not(flag):
    return ast.UnaryOp(op=ast.Not(), operand=_name(flag))


def _walk_scope(node):
    """The node's descendants in its own scope (not inside nested functions or classes)."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, SCOPES):
            yield child
            yield from _walk_scope(child)


def _sets(stmt, flag):
    return any(isinstance(n, ast.Name) and n.id == flag and isinstance(n.ctx, ast.Store)
               for n in [stmt, *_walk_scope(stmt)])


def _blocks(stmt):
    """The statement lists nested directly in a compound statement."""
    names = ('body', 'orelse', 'finalbody')
    blocks = [getattr(stmt, n) for n in names if isinstance(getattr(stmt, n, None), list)]
    return blocks + [h.body for h in getattr(stmt, 'handlers', ())]


def _always_sets(stmts, flag):
    """Whether the block sets `flag` on every path (a lowered jump at its top level, or an
    `if` that does so in both branches)."""
    for stmt in stmts:
        if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == flag and stmt.value.value is True):
            return True
        if isinstance(stmt, ast.If) and _always_sets(stmt.body, flag) and _always_sets(
                stmt.orelse, flag):
            return True
    return False


def guard(stmts, flag):
    """The block with whatever follows a statement that may set `flag` run only while it is
    not set (nested blocks too). After an `if` one of whose branches always sets it, the rest
    moves into the other branch (as TensorFlow), so a tensor `if` that returns in one branch
    and falls through to a `return` defines the return value on both paths."""
    out = []
    for i, stmt in enumerate(stmts):
        if not isinstance(stmt, SCOPES):
            for block in _blocks(stmt):
                block[:] = guard(block, flag)
        out.append(stmt)
        rest = stmts[i + 1:]
        if rest and isinstance(stmt, ast.If) and _always_sets(stmt.body, flag):
            stmt.orelse = guard(stmt.orelse + rest, flag)
            break
        if rest and isinstance(stmt, ast.If) and _always_sets(stmt.orelse, flag):
            stmt.body = guard(stmt.body + rest, flag)
            break
        if rest and _sets(stmt, flag):
            out.append(ast.copy_location(ast.If(test=_not(flag), body=guard(rest, flag),
                                                orelse=[]), rest[0]))
            break
    return out


def _replace(stmts, kind, make, into_loops):
    """Replace each `kind` statement of the block (in nested blocks of this scope; inside
    nested loops only when `into_loops`) by the statements `make(stmt)`; whatever follows one
    in its block is dead and dropped. Returns whether any was replaced."""
    found = False
    for i, stmt in enumerate(stmts):
        if isinstance(stmt, kind):
            stmts[i:] = [ast.copy_location(s, stmt) for s in make(stmt)]
            return True
        if isinstance(stmt, SCOPES) or (isinstance(stmt, _LOOPS) and not into_loops):
            continue
        for block in _blocks(stmt):
            found = _replace(block, kind, make, into_loops) or found
    return found


def _stop_loops(stmts, flag):
    """Make every loop of the block that sets `flag` stop once it is set."""
    for stmt in stmts:
        if isinstance(stmt, SCOPES):
            continue
        if isinstance(stmt, _LOOPS) and _sets(stmt, flag):
            _add_exit_test(stmt, flag)
        for block in _blocks(stmt):
            _stop_loops(block, flag)


def _add_exit_test(loop, flag):
    if isinstance(loop, ast.While):
        loop.test = ast.BoolOp(op=ast.And(), values=[_not(flag), loop.test])
        return
    old = getattr(loop, 'ag_extra_test', None)
    loop.ag_extra_test = _not(flag) if old is None else ast.BoolOp(
        op=ast.And(), values=[_not(flag), old])


def lower_returns(fn):
    """Rewrite the returns of FunctionDef `fn` when one is inside a compound statement."""
    nested = any(isinstance(n, ast.Return) for stmt in fn.body if not isinstance(stmt, SCOPES)
                 for n in _walk_scope(stmt))   # a return inside a compound statement
    if not nested:
        return

    def make(stmt):
        value = stmt.value if stmt.value is not None else ast.Constant(None)
        return [ast.Assign(targets=[_name('retval_', True)], value=value),
                _set('do_return', True)]
    _replace(fn.body, ast.Return, make, into_loops=True)
    _stop_loops(fn.body, 'do_return')
    undefined = ast.Call(func=ast.Attribute(value=_name('ag__'), attr='UndefinedReturnValue',
                                            ctx=ast.Load()), args=[], keywords=[])
    retval = ast.Call(func=ast.Attribute(value=_name('ag__'), attr='retval', ctx=ast.Load()),
                      args=[_name('retval_')], keywords=[])
    fn.body = ([_set('do_return', False),
                ast.Assign(targets=[_name('retval_', True)], value=undefined)]
               + guard(fn.body, 'do_return') + [ast.Return(value=retval)])


def lower_loop_jumps(stmts, counter):
    """Rewrite `break` and `continue` of every loop in the block (nested loops too);
    `counter` numbers the flags. Returns the new block (a loop's `else` follows the loop)."""
    out = []
    for stmt in stmts:
        if isinstance(stmt, SCOPES):
            out.append(stmt)
            continue
        for block in _blocks(stmt):
            block[:] = lower_loop_jumps(block, counter)
        out.extend(_lower_loop(stmt, counter) if isinstance(stmt, _LOOPS) else [stmt])
    return out


def _lower_loop(loop, counter):
    n = next(counter)
    cont, brk = f'continue_{n}', f'break_{n}'
    if _replace(loop.body, ast.Continue, lambda s: [_set(cont, True)], into_loops=False):
        loop.body = [_set(cont, False)] + guard(loop.body, cont)
    before, after = [], []
    if _replace(loop.body, ast.Break, lambda s: [_set(brk, True)], into_loops=False):
        loop.body = guard(loop.body, brk)
        _add_exit_test(loop, brk)
        before = [ast.copy_location(_set(brk, False), loop)]
        if loop.orelse:
            after = [ast.copy_location(ast.If(test=_not(brk), body=loop.orelse, orelse=[]),
                                       loop.orelse[0])]
    else:
        after = loop.orelse
    loop.orelse = []
    return before + [loop] + after

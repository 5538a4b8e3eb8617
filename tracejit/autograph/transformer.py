"""The AST transform: a FunctionDef's `if`/`while`/`for` become calls of the operators on
nested functions over the statement's state, `and`/`or`/`not` and `x if c else y` become
operator calls, and every call goes through `ag__.converted` (recursive conversion).

Every generated node keeps the original statement's line, so tracebacks and
errors.at_user_line point at the user's file and line.
"""
import ast
import copy
import itertools

from . import analysis, lowering

AG = 'ag__'


def _name(id_, store=False):
    return ast.Name(id=id_, ctx=ast.Store() if store else ast.Load())


def _ag(attr):
    return ast.Attribute(value=_name(AG), attr=attr, ctx=ast.Load())


def _call(func, *args):
    return ast.Call(func=func, args=list(args), keywords=[])


def _lambda(body):
    args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                         kwarg=None, defaults=[])
    return ast.Lambda(args=args, body=body)


def function_def(name, params, body):
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params], vararg=None,
                         kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    return ast.FunctionDef(name=name, args=args, body=body or [ast.Pass()],
                           decorator_list=[], returns=None, type_params=[])


def _params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return set(names + [x.arg for x in (a.vararg, a.kwarg) if x is not None])


class _Expressions(ast.NodeTransformer):
    """and/or/not, conditional expressions and calls, anywhere in the function."""

    def __init__(self, super_args):
        self.super_args = super_args

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        op = 'and_' if isinstance(node.op, ast.And) else 'or_'
        out = node.values[-1]
        for value in reversed(node.values[:-1]):
            out = _call(_ag(op), _lambda(value), _lambda(out))
        return ast.copy_location(out, node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.copy_location(_call(_ag('not_'), node.operand), node)
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return ast.copy_location(_call(_ag('if_exp'), node.test, _lambda(node.body),
                                       _lambda(node.orelse)), node)

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id == 'super' and not node.args:
            node.args = [_name(a) for a in self.super_args]
            return node
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id == AG):
            node.func = ast.copy_location(_call(_ag('converted'), func), func)
        return node


class _Statements:
    """Converts one function's control-flow statements (after returns/breaks are lowered)."""

    def __init__(self, fn, counter, expressions):
        self.counter, self.expressions = counter, expressions
        self.fixed = analysis.declared(fn.body)   # global/nonlocal: never state
        self.globals = {n for s in ast.walk(fn) if isinstance(s, ast.Global) for n in s.names}
        self.bound = set()   # names the nested functions assign: bound up front
        self.generated = set()   # the nested functions' own names

    def block(self, stmts):
        return [new for stmt in stmts for new in self.stmt(stmt)]

    def stmt(self, stmt):
        if isinstance(stmt, ast.If):
            return self._if(stmt)
        if isinstance(stmt, ast.While):
            return self._while(stmt)
        if isinstance(stmt, ast.For):
            return self._for(stmt)
        if isinstance(stmt, analysis.SCOPES):
            return [stmt]
        for field in ('body', 'orelse', 'finalbody'):
            if isinstance(getattr(stmt, field, None), list):
                setattr(stmt, field, self.block(getattr(stmt, field)))
        for handler in getattr(stmt, 'handlers', ()):
            handler.body = self.block(handler.body)
        return [stmt]

    def _body_fn(self, name, stmts, params=()):
        inner = self.block(stmts)
        self.generated.add(name)
        names = sorted(analysis.assigned(inner, mutations=False) - self.globals - set(params)
                       - self.generated)
        self.bound.update(names)
        decl = []
        if names:
            decl.append(ast.Nonlocal(names=names))
        used_globals = sorted(self.globals & analysis.assigned(inner, mutations=False))
        if used_globals:
            decl.append(ast.Global(names=used_globals))
        return function_def(name, params, decl + inner)

    def _state_fns(self, n, names):
        getter = function_def(f'get_state_{n}', [], [ast.Return(value=ast.Tuple(
            elts=[_name(x) for x in names], ctx=ast.Load()))])
        self.generated.update((getter.name, f'set_state_{n}'))
        target = ast.Tuple(elts=[_name(x, True) for x in names], ctx=ast.Store())
        setter = function_def(f'set_state_{n}', ['vars_'],
                      ([ast.Nonlocal(names=list(names))] if names else [])
                      + [ast.Assign(targets=[target], value=_name('vars_'))])
        self.bound.update(names)
        return getter, setter

    def _state(self, stmt, assigned):
        live = stmt.ag_live_out | stmt.ag_live_in
        return sorted((assigned & live) - self.fixed)

    def _emit(self, stmt, defs, op, args, options=None):
        names = tuple(ast.Constant(x) for x in args.pop())
        call = _call(_ag(op), *args, ast.Tuple(elts=list(names), ctx=ast.Load()))
        if options is not None:
            call.keywords = [ast.keyword(arg='options', value=options)]
        out = defs + [ast.Expr(value=call)]
        for node in out:
            _locate(node, stmt)
        return out

    def _if(self, stmt):
        n = next(self.counter)
        names = self._state(stmt, analysis.assigned(stmt.body + stmt.orelse))
        body = self._body_fn(f'if_body_{n}', stmt.body)
        orelse = self._body_fn(f'else_body_{n}', stmt.orelse)
        getter, setter = self._state_fns(n, names)
        return self._emit(stmt, [getter, setter, body, orelse], 'if_stmt',
                          [stmt.test, _name(body.name), _name(orelse.name), _name(getter.name),
                           _name(setter.name), names])

    def _while(self, stmt):
        n = next(self.counter)
        names = self._state(stmt, analysis.assigned(stmt.body))
        body = self._body_fn(f'loop_body_{n}', stmt.body)
        getter, setter = self._state_fns(n, names)
        test = function_def(f'loop_test_{n}', [], [ast.Return(value=stmt.test)])
        self.generated.add(test.name)
        return self._emit(stmt, [getter, setter, test, body], 'while_stmt',
                          [_name(test.name), _name(body.name), _name(getter.name),
                           _name(setter.name), names], _loop_options(stmt.body))

    def _for(self, stmt):
        n = next(self.counter)
        target_names = analysis.assigned([stmt.target], mutations=False)
        names = self._state(stmt, analysis.assigned(stmt.body) | target_names)
        assign = ast.copy_location(ast.Assign(targets=[stmt.target],
                                              value=_name(f'itr_{n}')), stmt)
        body = self._body_fn(f'loop_body_{n}', [assign] + stmt.body, params=[f'itr_{n}'])
        getter, setter = self._state_fns(n, names)
        extra = getattr(stmt, 'ag_extra_test', None)
        extra = ast.Constant(None) if extra is None else _lambda(self.expressions.visit(extra))
        return self._emit(stmt, [getter, setter, body], 'for_stmt',
                          [_range_call(stmt.iter), extra, _name(body.name), _name(getter.name),
                           _name(setter.name), names], _loop_options(stmt.body))


def _locate(node, stmt):
    """Give the generated nodes the line of the statement's header (not its whole span, so a
    traceback through the operator call shows the `if`/`for`/`while` line)."""
    for child in ast.walk(node):
        if getattr(child, 'lineno', None) is None and 'lineno' in child._attributes:
            child.lineno = child.end_lineno = stmt.lineno
            child.col_offset, child.end_col_offset = stmt.col_offset, stmt.col_offset + 1


def _loop_options(body):
    """The keywords of `set_loop_options(...)` calls at the top of a loop's body, as one dict
    evaluated before the loop (as TensorFlow's converter reads them); None without any."""
    keywords = []
    for stmt in body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        func = call.func if isinstance(call, ast.Call) else None
        if isinstance(func, ast.Call) and ast.unparse(func.func) == f'{AG}.converted':
            func = func.args[0]
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
        if name == 'set_loop_options':
            keywords.extend(call.keywords)
    if not keywords:
        return None
    return ast.Dict(keys=[ast.Constant(k.arg) for k in keywords],
                    values=[copy.deepcopy(k.value) for k in keywords])


def _range_call(node):
    """`range(a, b)` / `tj.range(a, b)` as a loop iterable become `ag__.range_(range, a, b)`,
    so a traced bound makes a tensor loop instead of failing in range()."""
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Call) and ast.unparse(func.func) == f'{AG}.converted':
        func = func.args[0]
    is_range = (isinstance(func, ast.Name) and func.id == 'range') or (
        isinstance(func, ast.Attribute) and func.attr == 'range')
    if not is_range or node.keywords or not 1 <= len(node.args) <= 3:
        return node
    return ast.copy_location(_call(_ag('range_'), func, *node.args), node)


def convert_function(fn, super_args=()):
    """Convert FunctionDef `fn` in place (nested functions too)."""
    counter = itertools.count(1)
    defs = [n for n in ast.walk(fn) if isinstance(n, ast.FunctionDef)]
    for node in defs:
        lowering.lower_returns(node)
        node.body = lowering.lower_loop_jumps(node.body, counter)
    expressions = _Expressions(super_args)
    expressions.visit(fn)
    for node in reversed(defs):   # inner functions first
        _convert_def(node, counter, expressions)
    ast.fix_missing_locations(fn)
    return fn


def _convert_def(fn, counter, expressions):
    analysis.annotate(fn.body)
    statements = _Statements(fn, counter, expressions)
    body = statements.block(fn.body)
    skip = _params(fn) | statements.fixed | statements.generated
    init = [ast.copy_location(ast.Assign(targets=[_name(x, True)], value=_call(
        _ag('Undefined'), ast.Constant(x))), fn.body[0]) for x in sorted(statements.bound - skip)]
    fn.body = init + body

"""The runtime operators converted code calls (TensorFlow's autograph.operators): each decides
at trace time whether its statement is Python control flow (a Python condition or iterable:
run as written) or tensor control flow (a traced condition or iterable: tj.cond or
tj.while_loop over the statement's state)."""
import numpy as np

from .. import control, dtypes, errors, ops, subtrace
from ..tensor import TensorOps
from ..tracing import Tracer


class Undefined:
    """The value of a name not yet assigned when a converted statement starts."""

    __slots__ = ('name',)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f'<undefined {self.name}>'

    def __getattr__(self, attr):
        raise UnboundLocalError(f"local variable {self.name!r} referenced before assignment")


class UndefinedReturnValue:
    """`retval_` before a lowered `return` ran: the function returns None."""


def retval(value):
    return None if isinstance(value, UndefinedReturnValue) else value


def is_tensor(value):
    return isinstance(value, Tracer)


# -------------------------------------------------------------------------- expressions

def and_(a, b):
    """`a and b`: a logical_and when `a` is traced (both sides are evaluated), else Python's."""
    a = a()
    if is_tensor(a):
        return ops.logical_and(a, b())
    return a and b()


def or_(a, b):
    a = a()
    if is_tensor(a):
        return ops.logical_or(a, b())
    return a or b()


def not_(a):
    return ops.logical_not(a) if is_tensor(a) else not a


def if_exp(cond, if_true, if_false):
    """`x if cond else y`: a tj.cond when `cond` is traced."""
    if is_tensor(cond):
        return control.cond(_as_bool(cond, 'the condition of a conditional expression'),
                            if_true, if_false)
    return if_true() if cond else if_false()


def _as_bool(cond, what):
    if tuple(cond.shape) != ():
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{what} must be a scalar, got shape {list(cond.shape)}; reduce it (tj.reduce_all, '
            f'tj.reduce_any) first'))
    return cond if np.dtype(cond.dtype.np) == np.bool_ else ops.cast(cond, dtypes.bool)


# -------------------------------------------------------------------------- statements

def _check_defined(values, names, what):
    for value, name in zip(values, names):
        if isinstance(value, Undefined):
            raise errors.InvalidArgumentError(errors.at_user_line(what.format(name=name)))


def _check_tensors(values, names, where):
    for value, name in zip(values, names):
        if isinstance(value, (list, dict)):
            raise errors.InvalidArgumentError(errors.at_user_line(
                f'{name!r} is a Python {type(value).__name__} changed {where}; a tensor loop '
                f'or branch cannot grow Python containers: use tj.TensorArray (write, then '
                f'stack) instead'))


def if_stmt(cond, body, orelse, get_state, set_state, names):
    """An `if`: Python's when `cond` is not traced, else one tj.cond over the names `names`
    (those the branches assign and the code after reads)."""
    if not is_tensor(cond):
        if cond:
            body()
        else:
            orelse()
        return
    cond = _as_bool(cond, 'the condition of an if statement')
    init = _return_placeholders(get_state(), body, orelse, get_state, set_state)
    first = []   # the else branch's values (tj.cond traces it first)

    def branch(fn, which):
        def run():
            set_state(init)
            fn()
            out = get_state()
            _check_defined(out, names, f"'{{name}}' must also be initialized in the {which} "
                           f"branch (it is used after a tensor if statement)")
            _check_tensors(out, names, 'in a tensor if statement')
            if first:
                _check_same(first[0], out, names, "'{name}' is {old} in the else branch but "
                            "{new} in the if branch; both branches must give it one dtype "
                            "and shape")
            first.append(out)
            return tuple(out)
        return run
    set_state(control.cond(cond, branch(body, 'if'), branch(orelse, 'else')))


def _type(value):
    value = value if isinstance(value, TensorOps) else ops.convert_to_tensor(value)
    return np.dtype(value.dtype.np).name, tuple(value.shape)


def _check_same(before, after, names, what):
    """Name the variable whose dtype or shape a branch or loop body changes (TensorFlow's
    message), rather than its position among the state."""
    for old, new, name in zip(before, after, names):
        (old_dtype, old_shape), (new_dtype, new_shape) = _type(old), _type(new)
        if old_dtype != new_dtype or old_shape != new_shape:
            raise errors.InvalidArgumentError(errors.at_user_line(what.format(
                name=name, old=f'{old_dtype}{list(old_shape)}',
                new=f'{new_dtype}{list(new_shape)}')))


_LOOP_CHANGE = ("'{name}' is {old} before the tensor loop but {new} after one iteration; "
                "loop variables keep their dtype and shape (cast it, or give it its final "
                "shape before the loop)")


def _return_placeholders(init, body, orelse, get_state, set_state):
    """The state with the return value not yet set (a `return` in one branch only, the other
    path returning later) replaced by zeros of the type the returning branch gives it, as
    TensorFlow's placeholder: the value is never returned, `do_return` says so."""
    missing = [k for k, v in enumerate(init) if isinstance(v, UndefinedReturnValue)]
    if not missing:
        return init
    found = {}
    for fn in (body, orelse):
        returned = []

        def probe(fn=fn):
            set_state(init)
            fn()
            out = get_state()
            returned[:] = [k for k in missing if isinstance(out[k], TensorOps)]
            return [out[k] for k in returned]
        rec = subtrace.record(probe, [], 'an if statement')
        for k, var in zip(returned, rec.graph.outputs):
            found.setdefault(k, ops.zeros(var.shape, dtypes.as_dtype(var.dtype)))
    set_state(init)
    return tuple(found.get(k, v) for k, v in enumerate(init))


def _loop_state(get_state, names):
    init = get_state()
    if any(isinstance(v, UndefinedReturnValue) for v in init):
        raise errors.UnimplementedError(errors.at_user_line(
            'return inside a tensor loop: keep the result in a variable, `break`, and return '
            'it after the loop'))
    _check_defined(init, names, "'{name}' must be defined before a tensor loop that assigns "
                   "it (give it an initial value before the loop)")
    _check_tensors(init, names, 'in a tensor loop')
    return tuple(init)


def set_loop_options(parallel_iterations=None, swap_memory=None, maximum_iterations=None,
                     shape_invariants=None):
    """TensorFlow's tf.autograph.experimental.set_loop_options: called first in the body of a
    loop that becomes a tensor loop, it sets that loop's options (AutoGraph reads its
    arguments before the loop; the call itself does nothing). `maximum_iterations` bounds the
    loop, which makes a `while` differentiable; the other options are TensorFlow's memory and
    parallelism hints, with nothing to do here."""


def _maximum_iterations(options):
    options = options or {}
    if options.get('shape_invariants') is not None:
        raise errors.UnimplementedError(errors.at_user_line(
            'set_loop_options(shape_invariants=...): compiled loops keep each loop variable\'s '
            'shape; give it its final shape before the loop'))
    limit = options.get('maximum_iterations')
    if is_tensor(limit):
        return ops.cast(limit, dtypes.int32)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 0):
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'set_loop_options: maximum_iterations must be a non-negative integer, got '
            f'{limit!r}'))
    return None if limit is None else int(limit)


def while_stmt(test, body, get_state, set_state, names, options=None):
    """A `while`: Python's while the test is not traced, else one tj.while_loop (bounded by
    set_loop_options' maximum_iterations)."""
    cond = test()
    if not is_tensor(cond):
        while cond:
            body()
            cond = test()
            if is_tensor(cond):
                raise errors.InvalidArgumentError(errors.at_user_line(
                    'a while loop test became a tensor after a Python iteration; make it a '
                    'tensor before the loop (tj.constant) so the whole loop is traced'))
        return
    init = _loop_state(get_state, names)

    def loop_cond(*state):
        set_state(state)
        return _as_bool(test(), 'the condition of a while loop')

    def loop_body(*state):
        set_state(state)
        body()
        out = tuple(get_state())
        _check_same(init, out, names, _LOOP_CHANGE)
        return out
    limit = _maximum_iterations(options)
    set_state(control.while_loop(loop_cond, loop_body, init, maximum_iterations=limit) if init
              else _stateless(loop_cond, loop_body, limit))


def _stateless(loop_cond, loop_body, limit):
    """A loop without state still runs (its Variable assignments): carry a dummy counter."""
    control.while_loop(lambda i: loop_cond(), lambda i: (loop_body(), i + 1)[1],
                       (ops.constant(0, dtypes.int32),), maximum_iterations=limit)
    return ()


class TensorRange:
    """`range(...)`/`tj.range(...)` as a for loop's iterable: Python's range unless a bound is
    traced or it is tj.range (TensorFlow makes a while_loop of `for i in tf.range(n)`)."""

    def __init__(self, start, limit, delta, tensor):
        self.start, self.limit, self.delta, self.tensor = start, limit, delta, tensor


def range_(fn, *args):
    """The iterable of `for ... in fn(*args)` when fn is range or tj.range."""
    traced = any(is_tensor(a) for a in args)
    if not traced and fn is range:
        return range(*args)
    start, limit, delta = (0, args[0], 1) if len(args) == 1 else (tuple(args) + (1,))[:3]
    return TensorRange(start, limit, delta, traced or fn is not range)


def for_stmt(iterated, extra_test, body, get_state, set_state, names, options=None):
    """A `for`: Python's over a Python iterable, else a tj.while_loop over the range or over
    the leading axis of the tensor (a scan when nothing stops it early). `extra_test` (from
    `break`/`return`) and set_loop_options' maximum_iterations stop the loop."""
    limit = _maximum_iterations(options)
    if isinstance(iterated, TensorRange):
        return _for_range(iterated, extra_test, body, get_state, set_state, names, limit)
    if is_tensor(iterated):
        if not iterated.shape:
            raise errors.InvalidArgumentError(errors.at_user_line(
                'cannot iterate over a scalar tensor'))
        n = int(iterated.shape[0])
        if extra_test is None and not is_tensor(limit):
            return _scan(iterated if limit is None or limit >= n else iterated[:limit], body,
                         get_state, set_state, names)
        return _while_range(0, n, 1, extra_test, body, get_state, set_state, names,
                            lambda i: ops.gather(iterated, i), _bound(n, limit))
    for item in iterated:
        if extra_test is not None and not _python_test(extra_test):
            break
        body(item)


def _python_test(extra_test):
    ok = extra_test()
    if is_tensor(ok):
        raise errors.InvalidArgumentError(errors.at_user_line(
            'break or return under a tensor condition inside a loop over a Python iterable; '
            'iterate a tensor or tj.range instead so the whole loop is traced'))
    return ok


def _bound(count, limit):
    """The smaller of two iteration bounds (either may be None or traced)."""
    if count is None or limit is None:
        return limit if count is None else count
    if is_tensor(count) or is_tensor(limit):
        return ops.minimum(count, limit)
    return min(count, limit)


def _for_range(r, extra_test, body, get_state, set_state, names, limit):
    if not r.tensor:
        for i in range(r.start, r.limit, r.delta):
            if extra_test is not None and not _python_test(extra_test):
                break
            body(i)
        return
    bounds = [ops.cast(b, dtypes.int32) if is_tensor(b) else b
              for b in (r.start, r.limit, r.delta)]
    if not any(is_tensor(b) for b in bounds + [limit]) and extra_test is None:
        indices = np.arange(*bounds, dtype=np.int32)[:limit]
        return _scan(ops.constant(indices), body, get_state, set_state, names)
    _while_range(*bounds, extra_test, body, get_state, set_state, names, count=limit)


def _scan(xs, body, get_state, set_state, names):
    """A loop over the rows of `xs` without break: one scan (differentiable)."""
    init = _loop_state(get_state, names)
    if not int(xs.shape[0]):
        return

    def step(carry, rows):
        set_state(carry)
        body(rows[0])
        out = list(get_state())
        _check_same(init, out, names, _LOOP_CHANGE)
        return out, []
    final, _ = control.scan_flat(step, list(init), [xs], what='a tensor for loop')
    set_state(final)


def _while_range(start, limit, delta, extra_test, body, get_state, set_state, names,
                 item=lambda i: i, count=None):
    """A loop over `range(start, limit, delta)` that may stop early: one tj.while_loop."""
    init = _loop_state(get_state, names)

    def loop_cond(i, *state):
        set_state(state)
        going = ops.where(delta > 0, i < limit, i > limit) if is_tensor(delta) else (
            i < limit if delta > 0 else i > limit)
        if extra_test is not None:
            going = ops.logical_and(going, extra_test())
        return going

    def loop_body(i, *state):
        set_state(state)
        body(item(i))
        out = tuple(get_state())
        _check_same(init, out, names, _LOOP_CHANGE)
        return (i + delta,) + out
    first = start if is_tensor(start) else ops.constant(start, dtypes.int32)
    out = control.while_loop(loop_cond, loop_body, (first,) + init, maximum_iterations=count)
    set_state(out[1:])

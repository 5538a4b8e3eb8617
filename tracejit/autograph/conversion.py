"""Conversion policy and caching: which functions are converted (user code; not tracejit,
numpy, the standard library or installed packages, as TensorFlow's allow-list), how the
converted code object is built once per code object, and bound to the original's globals,
closure cells and defaults, so it behaves as the original function."""
import ast
import contextlib
import functools
import inspect
import os
import sysconfig
import textwrap
import threading
import types
import warnings
import weakref

from . import operators, transformer

AG = transformer.AG
_NO_CONVERT = '__tj_do_not_convert__'
_LIBRARY_DIRS = tuple({os.path.abspath(p) + os.sep for p in (
    sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['purelib'],
    sysconfig.get_paths()['platlib'], os.path.dirname(os.path.dirname(__file__)))})
_codes = {}                                   # code object -> converted code (or None)
_functions = weakref.WeakKeyDictionary()      # function -> converted function
_warned = set()
_namespace = None
_status = threading.local()   # .off: inside a tj.function(autograph=False) trace


@contextlib.contextmanager
def enabled(on):
    """Turn recursive conversion on or off while a function traces (TensorFlow's control
    status context), so autograph=False also leaves the Keras layers it calls unconverted."""
    saved, _status.off = getattr(_status, 'off', False), not on
    try:
        yield
    finally:
        _status.off = saved


def in_trace(f):
    """`f` converted when a trace with AutoGraph on is running (how Keras layers call their
    `call`), else `f`."""
    from ..tracing import current_trace
    if current_trace() is None or getattr(_status, 'off', False):
        return f
    return converted(f)


def do_not_convert(func=None):
    """Decorator: run `func` as written even when called from converted code."""
    if func is None:
        return do_not_convert

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    setattr(wrapper, _NO_CONVERT, True)
    return wrapper


def is_library(fn):
    """Whether `fn` belongs to tracejit, the standard library or an installed package."""
    filename = os.path.abspath(fn.__code__.co_filename)
    return filename.startswith(_LIBRARY_DIRS) or (fn.__module__ or '').split('.')[0] in (
        'tracejit', 'numpy', 'tensorflow', 'keras', 'jax')


def converted(f):
    """The callable converted code calls in place of `f`: its conversion for user functions
    and methods, `f` itself for everything else."""
    if getattr(_status, 'off', False):
        return f
    if isinstance(f, types.FunctionType):
        out = _functions.get(f)
        return out if out is not None else convert(f)
    if isinstance(f, types.MethodType) and isinstance(f.__func__, types.FunctionType):
        func = converted(f.__func__)
        return f if func is f.__func__ else types.MethodType(func, f.__self__)
    call = getattr(type(f), '__call__', None)
    if not isinstance(f, type) and isinstance(call, types.FunctionType):
        func = converted(call)   # a callable object: its __call__, as TensorFlow converts it
        return f if func is call else types.MethodType(func, f)
    return f


def convert(f):
    """`f` converted (cached per function); `f` itself where it is not converted."""
    if isinstance(f, types.MethodType):
        return converted(f)
    if not isinstance(f, types.FunctionType):
        return f
    out = _functions.get(f)
    if out is None:
        out = _convert(f)
        _functions[f] = out
    return out


def _convert(f):
    code = f.__code__
    if (getattr(f, _NO_CONVERT, False) or is_library(f) or f.__name__ == '<lambda>'
            or AG in code.co_freevars   # defined inside converted code: converted with it
            or code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE
                                | inspect.CO_ASYNC_GENERATOR)):
        return f
    if code not in _codes:
        _codes[code] = _convert_code(f)
    new_code = _codes[code]
    if new_code is None:
        return f
    cells = dict(zip(code.co_freevars, f.__closure__ or ()))
    closure = tuple(types.CellType(_operators()) if name == AG else cells[name]
                    for name in new_code.co_freevars)
    out = types.FunctionType(new_code, f.__globals__, f.__name__, f.__defaults__, closure)
    out.__kwdefaults__ = f.__kwdefaults__
    functools.update_wrapper(out, f)
    out.__tj_converted__ = True
    return out


def _operators():
    """The `ag__` namespace of converted code: the operators and `converted`."""
    global _namespace
    if _namespace is None:
        public = {k: v for k, v in vars(operators).items() if not k.startswith('__')}
        _namespace = types.SimpleNamespace(**public, converted=converted)
    return _namespace


def parse(f):
    """The FunctionDef of `f` with the original file's line numbers, or None (with a one-time
    warning, as TensorFlow) where its source is unavailable."""
    try:
        source = textwrap.dedent(inspect.getsource(f))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError) as exc:
        if f.__code__ not in _warned:
            _warned.add(f.__code__)
            warnings.warn(f'AutoGraph could not convert {f.__qualname__} (its source is '
                          f'unavailable: {exc}); it runs unconverted, so Python control flow '
                          f'on tensors in it fails', stacklevel=4)
        return None
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef) or node.name != f.__name__:
        return None
    ast.increment_lineno(tree, f.__code__.co_firstlineno - 1)
    node.decorator_list = []
    return node


def converted_def(f):
    """The converted FunctionDef of `f`, or None."""
    node = parse(f)
    if node is None:
        return None
    return transformer.convert_function(node, _super_args(f, node))


def _super_args(f, node):
    """`super()` in converted code needs its class and instance spelled out."""
    if '__class__' not in f.__code__.co_freevars or not node.args.args:
        return ()
    return ('__class__', node.args.args[0].arg)


def _convert_code(f):
    node = converted_def(f)
    if node is None:
        return None
    freevars = list(f.__code__.co_freevars) + [AG]
    factory = transformer.function_def('ag__factory', freevars, [node, ast.Return(
        value=ast.Name(id=node.name, ctx=ast.Load()))])
    module = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(module)
    ast.copy_location(factory, node)
    code = compile(module, f.__code__.co_filename, 'exec')
    factory_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    return next(c for c in factory_code.co_consts
                if isinstance(c, types.CodeType) and c.co_name == f.__name__)


def to_code(f):
    """The converted source of `f` (TensorFlow's tf.autograph.to_code)."""
    f = getattr(f, '__wrapped__', f) if not isinstance(f, types.FunctionType) else f
    f = getattr(f, '__func__', f)
    node = converted_def(f)
    if node is None:
        raise ValueError(f'cannot convert {f!r}: its source is unavailable')
    return ast.unparse(node) + '\n'

"""The call of one cached entry, specialised to the arguments of a training loop.

A loop calls its step with arguments of the same types, shapes and dtypes every time. For such
a call `tj.function` skips the cache key altogether: one generated Python function checks each
argument against what the entry was built for (straight-line code, no per-call lists) and, when
the kernel is compiled and needs nothing around its call (serial, unable to fail half-way),
calls its native entry point with the Variables' buffers and constants already in place.
Labels and indices that the step range-checks are checked natively first; one out of range
takes the general execution, which raises the error naming it before anything is written.

An argument that does not fit returns `MISSED` and the call takes the general path, which sees
every change: a new dtype, shape, rank, static value or object retraces as before, and a
read-only or non-contiguous array is copied there. Only arrays of the kernel's own argument
types (dtype, rank, C layout, aligned, writeable) get past the checks, which is what makes
skipping Numba's dispatch safe.
"""
import numpy as np

from .errors import generated_filename
from .tensor import Tensor

MISSED = object()

# numpy's NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE (ndarraytypes.h):
# what a kernel argument's array needs, read from `flags.num` in one attribute access
KERNEL_ARRAY_FLAGS = 0x0001 | 0x0100 | 0x0400


def specialised_call(function, entry, args):
    """A function of the positional-argument tuple running `entry` for calls like `args` (which
    function._fast_key accepted, so each is an array, Tensor, float, int, bool, str, None or an
    object keyed by identity), or None while the entry's kernel is compiling or not compiled
    yet."""
    kernel, guards = _direct_kernel(entry)
    if kernel is _NOT_READY:
        return None
    env = {'MISSED': MISSED, 'ndarray': np.ndarray, 'Tensor': Tensor, 'array': np.array,
           'FLAGS': KERNEL_ARRAY_FLAGS, 'function': function}
    names = [f'a{i}' for i in range(len(args))]
    unpacked = ''.join(name + ', ' for name in names) or '() '
    lines = ['    try:', f'        {unpacked}= args',
             '    except ValueError:   # another number of arguments', '        return MISSED']
    traced = []
    for name, value in zip(names, args):
        traced += _check(lines, env, name, value)
    lines.append('    function._calls += 1')
    # typed from these arguments: a later call gets past the checks only with the same types
    native = kernel.direct_entry([value for _, value in traced]) if kernel is not None else None
    general = f'return execute(entry, [{", ".join(name for name, _ in traced)}])'
    env['execute'], env['entry'] = function._execute, entry
    if native is not None and guards and not _range_checks(lines, env, guards, traced, general):
        native = None
    if native is None:   # the general execution: it unboxes and boxes as it needs
        lines.append(f'    {general}')
    else:
        env['run'] = native
        passed = [f'{name}[()]' if type(value) is np.ndarray and value.ndim == 0
                  else name for name, value in traced]   # 0-d arrays go in as scalars
        call = f'run({", ".join(passed + [_constant(env, "t", t) for t in kernel.tail])})'
        lines += _locked(env, entry.locks, f'r = {call}')
        lines.append(f'    return {_outputs(env, entry.result, kernel)}')
    source = 'def call(args):\n' + '\n'.join(lines) + '\n'
    exec(compile(source, generated_filename(f'call of {function.__name__}'), 'exec'), env)
    return env['call']


_NOT_READY = object()


def _direct_kernel(entry):
    """(the entry's Kernel when its call may skip the general execution, None when it may not
    (the interpreter), _NOT_READY while it compiles; the range guards of its arguments)."""
    from .backend import Guarded
    from .backend.runtime import Kernel   # loaded by then: the entry has run its step
    from .backend.tiered import Tiered
    executable, guards = entry.executable, ()
    if type(executable) is Guarded:
        executable, guards = executable.executable, executable.guards
    if type(executable) is Tiered:
        executable = executable.kernel
        if executable is None:
            return _NOT_READY, guards
    if type(executable) is not Kernel:
        return None, guards
    return (executable if executable.checked else _NOT_READY), guards


def _range_checks(lines, env, guards, traced, general):
    """Appends the native range check of each guarded argument (labels, indices): one out of
    range takes the general execution, which raises the error that names it. False, appending
    nothing, when a guarded value is not an array (the general execution checks it)."""
    from .backend import native_in_range
    checks = []
    for position, low, high, _ in guards:
        name, value = traced[position]
        if type(value) is not np.ndarray:
            return False
        checks.append(f'not in_range({name}, {_constant(env, "low", low)}, '
                      f'{_constant(env, "high", high)})')
    env['in_range'] = native_in_range()
    lines += [f'    if {" or ".join(checks)}:', f'        {general}']
    return True


def _locked(env, locks, statement):
    """`statement` with the locks of the Variables the step writes held around it, so the
    step's updates are atomic with respect to other threads (see variables.update_locks)."""
    names = [_constant(env, 'lock', lock) for lock in locks]
    if not names:
        return [f'    {statement}']
    return ([f'    {name}.acquire()' for name in names] + ['    try:', f'        {statement}',
            '    finally:'] + [f'        {name}.release()' for name in reversed(names)])


def _check(lines, env, name, value):
    """Appends the lines returning MISSED unless argument `name` fits `value`'s kind; returns
    [(name, the value as the kernel gets it)] for a traced value, [] for a static one."""
    kind = type(value)
    if kind is Tensor:
        lines += [f'    if type({name}) is not Tensor:', '        return MISSED',
                  f'    {name} = {name}._value']
        value, kind = value._value, np.ndarray
    if kind is np.ndarray:
        dtype, shape = _constant(env, 'dtype', value.dtype), _constant(env, 'shape', value.shape)
        lines += [f'    if type({name}) is not ndarray or {name}.dtype is not {dtype} or '
                  f'{name}.shape != {shape} or {name}.flags.num & FLAGS != FLAGS:',
                  '        return MISSED']
        return [(name, value)]
    if kind is float:
        lines += [f'    if type({name}) is not float:', '        return MISSED']
        return [(name, value)]
    if value is None:
        lines += [f'    if {name} is not None:', '        return MISSED']
    elif kind in (int, bool, str):
        lines += [f'    if type({name}) is not {_constant(env, "type", kind)} or '
                  f'{name} != {_constant(env, "value", value)}:', '        return MISSED']
    else:   # keyed by identity: the entry keeps the object alive
        lines += [f'    if {name} is not {_constant(env, "obj", value)}:', '        return MISSED']
    return []


def _outputs(env, result, kernel):
    """The expression of the function's return value from the kernel's results `r`."""
    if result.returns_one_tensor and len(kernel.out_dtypes) == 1:   # `return loss`
        dtype, scalar = kernel.out_dtypes[0]
        if scalar:   # Numba returns 0-d results as Python scalars
            return f'Tensor(array(r[0], {_constant(env, "dtype", dtype)}))'
        return 'Tensor(r[0])'
    env['build'] = result.build_outputs
    if kernel.scalar_outputs:
        env['box'] = kernel.box_outputs
        return 'build(box(r))'
    return 'build(r)'


def _constant(env, prefix, value):
    """The name under which the generated code reads `value`."""
    name = f'{prefix}{len(env)}'
    env[name] = value
    return name

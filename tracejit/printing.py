"""`tj.print`: TensorFlow's tf.print, eagerly and from compiled steps at run time.

Outside a trace it writes at once. Inside one it records a host call (callbacks.py), so every
run of the compiled step writes, in program order with the other host calls; the values it
prints are the ones the program computed at that point (a print after an `assign` shows the
new value). Python's own `print` of a traced value runs once, while tracing, as in TensorFlow.

The text is TensorFlow's: the inputs joined by `sep`, Python values as `pprint.pformat` writes
them (a str as itself), and each tensor as TF's `SummarizeValue(summarize, print_v2=True)`
writes it (`[1 2 3]`, the first and last `summarize` entries of each axis around `...`, floats
with the fewest of 6/9 (float32) or 15/17 (float64) significant digits that read back exactly).
"""
import collections
import pprint
import sys

import numpy as np

from . import callbacks, tracing
from .tensor import TensorOps

_STREAMS = ('stdout', 'stderr')


def print_(*inputs, output_stream=None, summarize=3, sep=' ', end='\n', name=None, **kwargs):
    """Print `inputs` (tensors, Variables and Python values, in any nest); see the module."""
    if kwargs:
        raise ValueError(f'Unrecognized keyword arguments for tj.print: {sorted(kwargs)}')
    stream = _stream_name(output_stream)
    summarize = 3 if summarize is None else int(summarize)
    pieces, tensors = _template(inputs, sep)
    trace = tracing.current_trace()
    if trace is None:
        _write(stream, _render(pieces, [np.asarray(_eager(t)) for t in tensors], summarize) + end)
        return None
    operands = [tracing.as_operand(t) for t in tensors]
    # string tensors are constants of the trace (kernels hold numbers): rendered from here
    fixed = {k: x._value for k, x in enumerate(operands) if getattr(x, '_value', None) is not None
             and x._value.dtype.kind in 'SU'}
    traced = [x for k, x in enumerate(operands) if k not in fixed]
    # a traced Python float prints as the float32 tensor TensorFlow makes of it
    kinds = [fixed.get(k, getattr(x, 'weak', False)) for k, x in enumerate(operands)]

    def write(values):
        values = iter(values)
        arrays = [kind if isinstance(kind, np.ndarray) else
                  np.asarray(next(values), np.float32 if kind else None) for kind in kinds]
        _write(stream, _render(pieces, arrays, summarize) + end)
    callbacks.emit(trace, callbacks.HostCall(write, name='print'), traced)
    return None


# ---------------------------------------------------------------------------- template

def _is_tensor(x):
    return isinstance(x, TensorOps)


def _template(inputs, sep):
    """(text pieces, tensors): the printed text is pieces[0] t0 pieces[1] t1 ... (TF's
    print_v2 template, with a placeholder that the Python values do not contain)."""
    structure = [_map(lambda x: '' if _is_tensor(x) else x, _sorted(i)) for i in inputs]
    free_text = ' '.join(pprint.pformat(x) for x in structure)
    placeholder, width = '{}', 1
    while placeholder in free_text:
        placeholder, width = '{' + '_' * width + '}', width + 1
    templates, tensors = [], []
    for item in inputs:
        item = _sorted(item)

        def mark(x):
            if _is_tensor(x):
                tensors.append(x)
                return placeholder
            return x
        marked = _map(mark, item)
        templates.append(item if isinstance(item, str) else pprint.pformat(marked))
    template = sep.join(templates).replace(f"'{placeholder}'", placeholder)
    return template.split(placeholder), tensors


def _sorted(item):
    """OrderedDicts by key, as TF's nest flattens them (pformat sorts plain dicts itself)."""
    if isinstance(item, collections.OrderedDict):
        return collections.OrderedDict(sorted(item.items()))
    return item


def _map(fn, x):
    """`fn` over the leaves of a nest of lists, tuples, namedtuples and dicts."""
    if isinstance(x, dict):
        return type(x)((k, _map(fn, v)) for k, v in sorted(x.items()))
    if isinstance(x, tuple) and hasattr(x, '_fields'):
        return type(x)(*(_map(fn, v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, v) for v in x)
    return fn(x)


def _eager(tensor):
    value = tracing.as_operand(tensor)
    return value._value if hasattr(value, '_value') else value


def _render(pieces, values, summarize):
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:]):
        out.append(summarize_value(value, summarize))
        out.append(piece)
    return ''.join(out)


# ---------------------------------------------------------------------------- streams

def _stream_name(stream):
    """'stdout', 'stderr' (looked up when printing, so redirections apply) or 'file://...'."""
    if stream is None or stream is sys.stderr or stream is sys.__stderr__:
        return 'stderr'
    if stream is sys.stdout or stream is sys.__stdout__:
        return 'stdout'
    if isinstance(stream, str) and stream.startswith('file://'):
        return stream
    raise ValueError(f'Unsupported output stream, logging level, or file.{stream!r}. Supported '
                     "streams are sys.stdout, sys.stderr, or a file path prefixed by 'file://'")


def _write(stream, text):
    if stream in _STREAMS:
        getattr(sys, stream).write(text)
        return
    with open(stream[len('file://'):], 'a', encoding='utf-8') as f:
        f.write(text)


# ---------------------------------------------------------------------------- tensors

def summarize_value(value, summarize=3):
    """TensorFlow's text of a tensor's value (Tensor::SummarizeValue with print_v2)."""
    value = np.asarray(value)
    if value.dtype.kind in 'US' and value.ndim == 0:
        return _text(value[()])
    count = value.size
    limit = count if summarize < 0 else min(summarize, count)
    if value.dtype == np.bool_ and limit == 0:
        return ''
    fmt = _element_format(value.dtype)
    flat = value.reshape(-1)
    if value.ndim == 0:
        return ' '.join(fmt(flat[i]) for i in range(limit)) + ('...' if count > limit else '')
    out = []
    _print_dim(out, 0, value.shape, limit, flat, 0, fmt)
    return ''.join(out)


def _print_dim(out, dim, shape, ends, flat, start, fmt):
    """TF's PrintOneDimV2: `ends` entries from each end of every axis, '...' between."""
    if dim == len(shape):
        out.append(fmt(flat[start]))
        return
    out.append('[')
    count = shape[dim]
    stride = int(np.prod(shape[dim + 1:], dtype=np.int64))
    for i in range(min(ends, count)):
        if i > 0:
            _spacing(out, dim, len(shape))
        _print_dim(out, dim + 1, shape, ends, flat, start + stride * i, fmt)
    if count > 2 * ends:
        _spacing(out, dim, len(shape))
        out.append('...')
    for i in range(max(ends, count - ends), count):
        _spacing(out, dim, len(shape))
        _print_dim(out, dim + 1, shape, ends, flat, start + stride * i, fmt)
    out.append(']')


def _spacing(out, dim, ndim):
    if dim == ndim - 1:
        out.append(' ')
    else:
        out.append('\n' * (ndim - dim - 1) + ' ' * (dim + 1))


def _element_format(dtype):
    if dtype == np.float32:
        return lambda v: _shortest(v, 6, 9, np.float32)
    if dtype.kind == 'f':
        return lambda v: _shortest(v, 15, 17, np.float64)
    if dtype == np.bool_:
        return lambda v: '1' if v else '0'
    if dtype.kind in 'US':
        return lambda v: '"' + _text(v).encode('unicode_escape').decode('ascii').replace(
            '"', '\\"') + '"'
    return lambda v: str(int(v))


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def _shortest(value, digits, more_digits, np_type):
    """C's %.{digits}g when it reads back as the same value, else %.{more_digits}g (TF's
    FloatToBuffer / DoubleToBuffer)."""
    value = float(value)
    if value != value:
        return '-nan' if np.signbit(value) else 'nan'
    text = f'%.{digits}g' % value
    return text if np_type(float(text)) == np_type(value) else f'%.{more_digits}g' % value


"""`tj.summary`: tf.summary's writer API, writing JSON lines instead of TensorBoard events.

TensorBoard's event files are length-prefixed, CRC-checked protocol buffers; writing them
would need protobuf and TensorBoard's schemas. tracejit writes one JSON object per line to
`<logdir>/summaries.jsonl`, readable with `json` or `pandas.read_json(path, lines=True)`:

    {"wall_time": 1.7e9, "step": 3, "tag": "loss", "kind": "scalar", "value": 0.25}
    {... "kind": "histogram", "buckets": [[left, right, count], ...]}   (TF's 30 equal buckets)
    {... "kind": "text", "value": "a note"}

As in TensorFlow, `scalar`/`histogram`/`text` write only under a default writer
(`with writer.as_default():` or `writer.set_as_default()`) and return whether they did; the
step is the `step` argument, else the writer's default step, else
`tj.summary.experimental.set_step`'s, and a missing one raises ValueError. Inside a compiled
function they write every time the step runs (a host call, see callbacks.py), with the values
and step of that run; the writer is the one that was the default while tracing.
"""
import contextlib
import json
import os
import threading
import time

import numpy as np

from . import callbacks, errors, tracing
from .tensor import TensorOps

FILE_NAME = 'summaries.jsonl'
DEFAULT_BUCKETS = 30
_state = threading.local()   # .writers: the default-writer stack of this thread
_global = {'writer': None, 'step': None}


class SummaryWriter:
    """Appends summaries to `<logdir>/summaries.jsonl` (one write per line)."""

    def __init__(self, logdir):
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)
        self.path = os.path.join(self.logdir, FILE_NAME)
        self.step = None
        self._lock = threading.Lock()
        self.closed = False

    @contextlib.contextmanager
    def as_default(self, step=None):
        stack = _writers()
        stack.append((self, step))
        try:
            yield self
        finally:
            stack.pop()
            self.flush()

    def set_as_default(self, step=None):
        _global['writer'] = (self, step)

    def init(self):
        return None

    def flush(self):
        return None   # every record is written when it is made

    def close(self):
        self.closed = True

    def write(self, record):
        if self.closed:
            raise errors.FailedPreconditionError(f'the summary writer of {self.logdir!r} is '
                                                 'closed')
        line = json.dumps(record, allow_nan=True) + '\n'
        with self._lock, open(self.path, 'a', encoding='utf-8') as f:
            f.write(line)


def create_file_writer(logdir, max_queue=None, flush_millis=None, filename_suffix=None,
                       name=None, experimental_trackable=False):
    return SummaryWriter(logdir)


def create_noop_writer():
    return _NoopWriter()


class _NoopWriter(SummaryWriter):
    def __init__(self):  # no directory: nothing of SummaryWriter's set-up applies
        self.step, self.closed = None, False

    def write(self, record):
        return None


def _writers():
    if not hasattr(_state, 'writers'):
        _state.writers = []
    return _state.writers


def _default():
    """(writer, its default step) or None."""
    stack = _writers()
    return stack[-1] if stack else _global['writer']


class experimental:  # noqa: N801 (tf.summary.experimental)
    @staticmethod
    def set_step(step):
        _global['step'] = step

    @staticmethod
    def get_step():
        return _global['step']


def _record(name, kind, data, step, describe):
    """Write (now, or from the compiled step each time it runs) one summary; True when a
    default writer exists."""
    default = _default()
    if default is None:
        return False
    writer, writer_step = default
    step = next((s for s in (step, writer_step, _global['step']) if s is not None), None)
    if step is None:
        raise ValueError('No step set. Please specify one either through the `step` argument '
                         'or through tj.summary.experimental.set_step()')
    operands = [tracing.as_operand(x) if isinstance(x, TensorOps) else np.asarray(x)
                for x in (data, step)]

    def write(values):
        value, step_value = (np.asarray(v) for v in values)
        writer.write(dict({'wall_time': time.time(), 'step': int(step_value), 'tag': name,
                           'kind': kind}, **describe(value)))
    trace = tracing.current_trace()
    if trace is None:
        write([_value(x) for x in operands])
    else:
        callbacks.emit(trace, callbacks.HostCall(write, name=f'summary.{kind}'), operands)
    return True


def _value(x):
    return x._value if hasattr(x, '_value') else x


def scalar(name, data, step=None, description=None):
    return _record(name, 'scalar', data, step, lambda v: {'value': float(v)})


def text(name, data, step=None, description=None):
    if not (isinstance(data, str) or getattr(data, 'dtype', None) is not None
            and np.dtype(_value(data).dtype).kind in 'SU'):
        raise errors.DTypeError(errors.at_user_line('summary.text needs string data'))
    value = _value(data) if not isinstance(data, str) else np.asarray(data.encode('utf-8'))
    text_of = value.item().decode('utf-8') if value.dtype.kind == 'S' else str(value.item())
    return _record(name, 'text', np.zeros((), np.int32), step, lambda v: {'value': text_of})


def histogram(name, data, step=None, buckets=None, description=None):
    return _record(name, 'histogram', data, step,
                   lambda v: {'buckets': histogram_buckets(v, buckets or DEFAULT_BUCKETS)})


def histogram_buckets(values, count=DEFAULT_BUCKETS):
    """[[left, right, count]]: `count` equal buckets over [min, max] (TF's summary.histogram;
    one bucket of width 0 when all values are equal, none for no values)."""
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    if low == high:
        return [[low, high, int(values.size)]]
    edges = np.linspace(low, high, count + 1)
    counts, _ = np.histogram(values, bins=edges)
    return [[float(a), float(b), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts)]

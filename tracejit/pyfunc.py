"""`tj.py_function` and `tj.numpy_function`: Python code inside a compiled step, at run time.

Eagerly they call `func` at once (py_function on Tensors, so outer tapes record what it does;
numpy_function on numpy arrays). Inside a trace they record a host call (callbacks.py) that
runs `func` eagerly every time the step runs, in program order with prints and assertions.

Shapes: TensorFlow leaves the outputs' shapes unknown; tracejit's compiled steps have static
shapes, so each output's shape comes from its `Tout` entry: a `tj.TensorSpec(shape, dtype)`
with every size given, or a plain dtype, which means "the shape of the first input" (a scalar
when there are no inputs). An output of another shape raises InvalidArgumentError naming the
function when the step runs, and asks for a TensorSpec.

Gradients: py_function is differentiable as in TensorFlow. The forward call records `func`
on a GradientTape; the gradient is another host call that asks that tape for the inputs'
gradients (zeros for inputs `func` did not use, where TensorFlow gives None). numpy_function
has no gradient. An exception raised in `func` propagates as itself, with its traceback, and
the step's Variable updates are undone.
"""
import threading

import numpy as np

from . import autodiff, callbacks, dtypes, errors, tracing, tree
from .spec import TensorSpec
from .tensor import Tensor


def py_function(func, inp, Tout, name=None):  # noqa: N803 (TensorFlow's argument name)
    """Call `func(*Tensors)` (see the module docstring); returns what Tout describes."""
    return _call(func, inp, Tout, name or 'py_function', tensors=True)


def numpy_function(func, inp, Tout, stateful=True, name=None):  # noqa: N803
    """Call `func(*numpy arrays)`; not differentiable. Always kept in the step (stateful)."""
    return _call(func, inp, Tout, name or 'numpy_function', tensors=False)


def _call(func, inp, tout, name, tensors):
    inputs = [tracing.as_operand(x) for x in (inp if isinstance(inp, (list, tuple)) else [inp])]
    specs = _specs(tout)
    label = f'{name}({getattr(func, "__name__", "func")})'
    if tracing.current_trace() is None:
        args = inputs if tensors else [np.array(_value(x)) for x in inputs]
        args = [Tensor(x) if isinstance(x, np.ndarray) and tensors else x for x in args]
        results = _outputs(func(*args), specs, label, keep_tensors=tensors)
    else:
        results = _traced(func, inputs, specs, label, tensors)
    return _structure(tout, results)


def _value(x):
    return x._value if isinstance(x, Tensor) else x


class _Specs(list):
    """[dtype or TensorSpec] of the outputs; `many`: Tout was a list (results come in one)."""
    many = False


def _specs(tout):
    specs = _Specs()
    if tout is None:
        return specs
    specs.many = isinstance(tout, (list, tuple))
    specs.extend(t if isinstance(t, TensorSpec) else dtypes.as_dtype(t)
                 for t in (tout if specs.many else [tout]))
    return specs


def _structure(tout, results):
    if tout is None:
        return None
    return list(results) if isinstance(tout, (list, tuple)) else results[0]


def _outputs(result, specs, label, keep_tensors=False):
    """`func`'s result as one value per spec, of the spec's dtype (Tensors kept, for tapes).
    A list Tout wants a list or tuple back; a single one wants the value itself."""
    if not specs:
        return []
    values = list(result) if specs.many and isinstance(result, (list, tuple)) else [result]
    if len(values) != len(specs):
        raise errors.InvalidArgumentError(
            f'{label} returned {len(values)} values, but Tout declares {len(specs)}')
    out = []
    for k, (value, spec) in enumerate(zip(values, specs)):
        dtype = (spec.dtype if isinstance(spec, TensorSpec) else spec).np
        value_dtype = getattr(value, 'dtype', None)
        if value_dtype is not None and dtypes.as_np_dtype(value_dtype) != dtype:
            raise errors.InvalidArgumentError(
                f'{k}-th value returned by {label} is {dtypes.as_np_dtype(value_dtype).name}, '
                f'but Tout expects {dtype.name}')
        if keep_tensors and isinstance(value, Tensor):
            out.append(value)
        else:
            out.append(Tensor(np.asarray(tracing.to_array(value, label), dtype)))
    return out


def _out_avals(specs, inputs, label):
    avals = []
    for spec in specs:
        if isinstance(spec, TensorSpec):
            if spec.shape is None or None in spec.shape:
                raise errors.UnimplementedError(errors.at_user_line(
                    f'{label} inside a compiled function: Tout {spec} must give every size, '
                    'since compiled steps have static shapes'))
            avals.append((spec.shape, spec.dtype.np))
        else:
            avals.append((tuple(inputs[0].shape) if inputs else (), spec.np))
    return avals or list(callbacks.STATUS)


class _Forward:
    """The host side of one traced call: runs `func` eagerly, on a tape when its gradient
    may be asked for (the tape is kept, per thread, for the backward call)."""

    def __init__(self, func, specs, label, tensors, record):
        self.func, self.specs, self.label = func, specs, label
        self.tensors, self.record = tensors, record
        self.saved = threading.local()

    def __call__(self, values):
        with tracing.init_scope():
            args = [Tensor(np.array(v)) if self.tensors else np.array(v) for v in values]
            if not self.record:
                return [r._value for r in _outputs(self.func(*args), self.specs, self.label)]
            with autodiff.GradientTape(persistent=True) as tape:
                tape.watch([a for a in args if a.dtype.is_floating])
                results = _outputs(self.func(*args), self.specs, self.label, keep_tensors=True)
            self.saved.value = (tape, args, results)
            return [r._value for r in results]

    def backward(self, cts):
        tape, args, results = self.saved.value
        with tracing.init_scope():
            floats = [a for a in args if a.dtype.is_floating]
            grads = tape.gradient(results, floats, output_gradients=[Tensor(np.array(c))
                                                                     for c in cts])
        return [np.zeros(a.shape, a.dtype.np) if g is None else np.asarray(g)
                for a, g in zip(floats, grads)]


def _traced(func, inputs, specs, label, tensors):
    trace = tracing.current_trace()
    out_avals = _out_avals(specs, inputs, label)
    record = tensors and bool(specs) and bool(tracing.active_tapes())
    forward = _Forward(func, specs, label, tensors, record)
    call = callbacks.HostCall(forward, out_avals, label)
    if not forward.record:
        outs = callbacks.emit(trace, call, inputs)
        return outs if specs else []

    floats = [x for x in inputs if dtypes.is_float(x.dtype.np)]

    @autodiff.custom_gradient
    def differentiable(*xs):
        outs = callbacks.emit(trace, call, list(xs))

        def grad(*cts):
            backward = callbacks.HostCall(lambda values: forward.backward(values),
                                          [(x.shape, x.dtype.np) for x in floats],
                                          f'{label} gradient')
            grads = iter(callbacks.emit(trace, backward, list(cts)))
            return [next(grads) if dtypes.is_float(x.dtype.np) else None for x in xs]
        return tuple(outs), grad
    return list(tree.leaves(differentiable(*inputs)))

"""Calling a compiled kernel: argument marshalling kept to a few hundred nanoseconds.

Everything that does not change between calls (state buffers, dims, constants) is packed into
one tuple when the kernel is built; a call only adds the traced inputs. Variable buffers keep
their identity for life (assignments copy into them), which is what makes that packing valid.
"""
import warnings

import numpy as np

from .. import errors, ir
from . import compiler, heap
from .lowering import lowering_of
from .parallel import launch_lock

# Kernels are nogil; their object-mode blocks (calls back into Python) take the GIL back, as
# intended, and Numba warns about each of them. A filter for that one message, installed once:
# `warnings.catch_warnings` around a compile is not thread-safe, and background compiles would
# lose other warnings to it.
warnings.filterwarnings('ignore', message='Code running in object mode')


def call_tail(graph, lowered):
    """What every call of the graph's kernel passes after its inputs: the state buffers, dims
    and constants."""
    state = tuple(v.buffer.reshape(1) if var.shape == () else v.buffer
                  for v, var in graph.state)
    return state + (lowered.dims, lowered.fconsts, lowered.iconsts) + tuple(
        lowered.array_consts)


def scalar_positions(graph):
    return [i for i, v in enumerate(graph.inputs) if v.shape == ()]


def unbox_scalars(args, positions):
    """0-d inputs are passed as scalars (in place in the `args` list)."""
    for i in positions:
        if type(args[i]) is np.ndarray:
            args[i] = args[i][()]
    return args


class Kernel:
    """A compiled step: `run(inputs)` returns the outputs as numpy arrays."""

    native = True

    def __init__(self, fn, lowered, graph, checked_inputs=frozenset()):
        heap.keep_freed_memory()   # the kernel's temporaries reuse the heap, call after call
        self.fn, self.lowered = fn, lowered
        self.source_path = getattr(fn, 'source_path', '<memory>')
        self.tail = call_tail(graph, lowered)
        self.scalar_positions = scalar_positions(graph)
        self.out_dtypes = [(v.dtype, v.shape == ()) for v in graph.outputs]
        self.scalar_outputs = any(scalar for _, scalar in self.out_dtypes)
        # a gather of indices not range-checked before the call may raise after some Variables
        # were written in place: such kernels keep a copy of what they update, to put back
        may_raise = _may_raise(graph, checked_inputs)
        self.restore_on_failure = [v for v, _ in graph.updates] if may_raise else []
        if len(self.out_dtypes) == 1 and self.scalar_outputs:  # `return loss`, kept cheap
            dtype = self.out_dtypes[0][0]
            self.box_outputs = lambda results: [np.asarray(results[0], dtype)]
        self.parallel = lowered.parallel
        self.checked = False

    def run(self, args):
        self._unbox_scalars(args)
        if not self.checked:
            self.compile(args)
        if self.parallel:  # one parallel kernel at a time: see backend/parallel.py
            with launch_lock:
                results = self._call(args)
        elif self.restore_on_failure:
            results = self._call_restoring(args)
        else:
            results = self.fn(*args, *self.tail)
        return self.box_outputs(results) if self.scalar_outputs else results

    def _call(self, args):
        if self.restore_on_failure:
            return self._call_restoring(args)
        return self.fn(*args, *self.tail)

    def _unbox_scalars(self, args):
        return unbox_scalars(args, self.scalar_positions)

    def _call_restoring(self, args):
        saved = [v.buffer.copy() for v in self.restore_on_failure]
        try:
            return self.fn(*args, *self.tail)
        except BaseException:
            for variable, value in zip(self.restore_on_failure, saved):
                np.copyto(variable.buffer, value)
            raise

    def box_outputs(self, results):
        """Numba returns 0-d results as Python scalars: make them 0-d arrays of their dtype."""
        return [np.asarray(r, dtype) if scalar else r
                for r, (dtype, scalar) in zip(results, self.out_dtypes)]

    def compile(self, args):
        """Compile (or load from the disk cache) for these arguments' types, without running.
        When Numba fails in its cache, the entry is deleted and compiled again; when that fails
        too (a cache that cannot be written), the kernel is compiled in memory. Numba failures
        are wrapped."""
        signature = self._signature(args)
        for attempt in ('cached', 'cleaned', 'memory'):
            try:
                self.fn.compile(signature)
                break
            except Exception as e:
                if attempt == 'memory' or not compiler.raised_in_numba_cache(e):
                    self._reraise(e)
                if attempt == 'cached' and compiler.forget_entry(self.source_path):
                    continue
                self.fn = compiler.in_memory_after_cache_failure(self.lowered.source, e)
                self.source_path = '<memory>'
        self.checked = True

    def _signature(self, args):
        """The Numba argument types of a call with these inputs."""
        import numba
        return tuple(numba.typeof(a) for a in (*self._unbox_scalars(list(args)), *self.tail))

    def direct_entry(self, args):
        """The compiled code for inputs of these types, to be called as `f(*inputs, *tail)`
        with 0-d inputs as scalars: Numba's entry point, which skips its dispatch (typing the
        arguments again on every call; the dispatcher itself when no overload has exactly
        these types), or None when `run` must wrap the call (a parallel kernel, one that may
        fail half-way, or one not compiled yet). Every later call must pass inputs of exactly
        these types; the caller checks that."""
        if not self.checked or self.parallel or self.restore_on_failure:
            return None
        overload = getattr(self.fn, 'overloads', {}).get(self._signature(args))
        return self.fn if overload is None else overload.entry_point

    def _reraise(self, error):
        """Raise `error`, a Numba failure as a CompilationError naming the generated source."""
        if type(error).__module__.startswith('numba'):
            raise errors.CompilationError(
                f'Numba could not compile the generated kernel {self.source_path}: {error}'
            ) from error
        raise error


def _may_raise(graph, checked_inputs):
    """Whether the kernel can fail at run time: a node that may raise (a call back into
    Python), or one checking indices (a gather) that are not an argument range-checked before
    the call (`checked_inputs`: positions; see tracing.require_in_range)."""
    producers = graph.producers()
    if any(lowering_of(node.prim).raises for node in graph.nodes):
        return True
    return any(lowering_of(node.prim).checks_indices
               and graph.input_position(node.inputs[1], producers) not in checked_inputs
               or any(_may_raise(sub, frozenset()) for sub in ir.subgraphs(node))
               for node in graph.nodes)

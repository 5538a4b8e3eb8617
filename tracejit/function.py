"""`@tj.function` / `@tj.jit`: trace once per signature, compile the graph, run one native call.

The cache key is the argument pytree's structure plus, per leaf: shape and dtype for arrays and
tensors, nothing for Python floats (traced weak scalars, so a new learning rate never retraces),
the value for bools/ints/strings/None and static arguments, and identity for everything else
(Modules, layers, optimizers, Variables: the Variables a trace reads through them become state).
"""
import inspect
import logging
import weakref

import numpy as np

from . import autograph, config, dtypes, errors, fast_call, passes, tracing, tree
from . import signature as sig
from .concrete import ConcreteFunction, resized
from .fast_call import MISSED
from .indexed_slices import IndexedSlices
from .spec import TensorSpec
from .tensor import Tensor, TensorOps
from .tracing import Trace, Tracer
from .variables import Variable, update_locks

log = logging.getLogger('tracejit')


class _Dynamic:
    """Cache-key marker for a traced leaf: its abstract value."""

    __slots__ = ('shape', 'dtype', 'weak')

    def __init__(self, shape, dtype, weak):
        self.shape, self.dtype, self.weak = shape, dtype, weak

    def key(self):
        return ('array', self.shape, self.dtype.str, self.weak)


_TRACED = object()


class _SlicesOut:
    """Where the function returned IndexedSlices: its values and indices are two outputs."""

    def __init__(self, dense_shape):
        self.dense_shape = dense_shape

    def rebuild(self, values, indices):
        return IndexedSlices(values, indices, self.dense_shape)


class TraceResult:
    """What one trace produced: the optimised graph and how to rebuild the Python outputs."""

    def __init__(self, graph, out_treedef, out_static, guards=(), input_names=()):
        self.graph, self.out_treedef, self.out_static = graph, out_treedef, out_static
        self.guards = tuple(guards)   # range checks of arguments, see tracing.require_in_range
        self.input_names = list(input_names)   # the user's name of each graph input
        self.returns_one_tensor = out_treedef.kind == 'leaf' and out_static[0] is _TRACED
        if _TRACED not in out_static and not any(isinstance(s, _SlicesOut)
                                                 for s in out_static):
            out_value = tree.unflatten(out_treedef, out_static)   # nothing traced comes back:
            self.build_outputs = lambda outs: out_value           # reuse one Python value
        elif self.returns_one_tensor:  # `return loss`, cheap
            self.build_outputs = lambda outs: Tensor(outs[0])

    def build_outputs(self, outs):
        """The function's return value from the executable's output arrays."""
        return self.structure([Tensor(o) for o in outs])

    def structure(self, traced):
        """The return value's structure with `traced` (one per graph output) at the traced
        leaves (two for an IndexedSlices) and the Python values that came back as they are."""
        leaves = iter(traced)
        values = [next(leaves) if s is _TRACED else s.rebuild(next(leaves), next(leaves))
                  if isinstance(s, _SlicesOut) else s for s in self.out_static]
        return tree.unflatten(self.out_treedef, values)

    def traced_leaves(self):
        """Which leaves of `out_static` are graph outputs."""
        return [s is _TRACED for s in self.out_static]

    @classmethod
    def restored(cls, graph, out_treedef, static, traced, guards, input_names):
        """A TraceResult from stored parts (`traced`: traced_leaves(), `static`: the other
        leaves' values, anything at the traced ones)."""
        out_static = [_TRACED if t else s for s, t in zip(static, traced)]
        return cls(graph, out_treedef, out_static, guards, input_names)

    def __repr__(self):
        return str(self.graph)


class _Entry:
    """A cached trace and its executable."""

    __slots__ = ('result', 'executable', 'keepalive', 'locks', 'calls')

    def __init__(self, result, executable, keepalive):
        self.result, self.executable, self.keepalive = result, executable, keepalive
        self.locks = update_locks(variable for variable, _ in result.graph.updates)
        self.calls = {}   # argument types -> the call specialised to them (see fast_call)


class Function:
    """A Python function compiled per input signature; see the module docstring."""

    def __init__(self, fn, static_argnums=(), static_argnames=(), debug_nans=False,
                 input_signature=None, reduce_retracing=False, autograph=True, **_tf_options):
        self._fn = fn
        self._autograph = bool(autograph)
        self._converted = None   # the AutoGraph conversion of fn, made at the first trace
        self._signature = _safe_signature(fn)
        self._input_specs = input_signature
        self._input_signature = _checked_input_signature(input_signature, fn)
        self._reduce_retracing = bool(reduce_retracing)
        self._concretes = []   # ConcreteFunctions in the order they were traced
        self._pending = {}     # cache key -> (TraceResult, ConcreteFunction) traced, not built
        self._static_argnums = _as_tuple(static_argnums)
        self._static_argnames = _as_tuple(static_argnames)
        # the specialised calls (see fast_call) of the last fast entry and of the one before
        # it, tried in this order: a loop alternating two signatures misses at most once
        self._hot = self._warm = None
        self.debug_nans = debug_nans
        self._cache = {}
        self._fast = {}     # positional-argument fast key -> entry (see _fast_key)
        self._fast_ok = not (self._static_argnums or self._static_argnames)
        self._last_key = None
        self._stats = {'traces': 0, 'compiles': 0, 'disk_hits': 0, 'builds': 0}
        self._calls = 0
        self._traced = False
        self.__name__ = getattr(fn, '__name__', 'function')
        self.__doc__ = getattr(fn, '__doc__', None)
        self.__wrapped__ = fn

    def __get__(self, instance, owner):
        """Methods: bind `self` as a static-by-identity first argument; one cache per instance."""
        if instance is None:
            return self
        bound = self.__dict__.setdefault('_bound', weakref.WeakKeyDictionary())
        if instance not in bound:
            method = Function(self._fn.__get__(instance, owner), self._static_argnums,
                              self._static_argnames, self.debug_nans, self._input_specs,
                              self._reduce_retracing, autograph=self._autograph)
            bound[instance] = method
        return bound[instance]

    @property
    def debug_nans(self):
        return self._debug_nans

    @debug_nans.setter
    def debug_nans(self, value):
        self._debug_nans = bool(value)
        self._hot = self._warm = None   # specialised calls do not check for NaNs

    # -- calling ----------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        hot = self._hot
        if hot is not None and not kwargs and not config.disable_jit and not (
                tracing.entered and tracing.busy()):
            out = hot(args)
            if out is not MISSED:
                return out
            warm = self._warm
            if warm is not None:
                out = warm(args)
                if out is not MISSED:
                    return out
        if config.disable_jit or tracing.busy():
            # inside another trace the call inlines; under a gradient tape it runs eagerly, so
            # the tape records it and gradients flow through compiled functions too
            if self._input_signature is not None:   # checked and converted, as TF does
                args, kwargs = tree.tree_map(_as_tensor, self._conform(args, kwargs),
                                             is_leaf=_is_leaf)
            fn = self._traced_fn() if tracing.busy() else self._fn
            return fn(*args, **kwargs)
        if not kwargs and self._fast_ok:
            fast_key, dynamic = _fast_key(args)
            entry = self._fast.get(fast_key) if fast_key is not None else None
            if entry is not None:
                self._calls += 1
                self._specialise(entry, args)
                return self._execute(entry, dynamic)
        if self._input_signature is not None:
            args, kwargs = self._conform(args, kwargs)
        return self._call_general(args, kwargs)

    def _traced_fn(self):
        """What a trace runs: the function converted by AutoGraph unless autograph=False."""
        if self._converted is None:
            self._converted = autograph.convert(self._fn) if self._autograph else self._fn
        return self._converted

    def _conform(self, args, kwargs):
        """The call checked against input_signature (TypeError as TF), tensors converted."""
        return sig.conform(self._input_signature, self._signature, args, kwargs)

    def _call_general(self, args, kwargs, concrete=None):
        key, dynamic, keepalive = self._key(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._build(key, args, kwargs, keepalive, dynamic,
                                                   concrete)
        self._calls += 1
        if not kwargs and self._fast_ok:
            fast_key, _ = _fast_key(args)
            if fast_key is not None:
                self._fast[fast_key] = entry
                self._specialise(entry, args)
        return self._execute(entry, dynamic)

    def _specialise(self, entry, args):
        """Makes later calls like this one (found through the fast key) run `entry`'s call
        specialised to these argument types, once its kernel is ready."""
        if self._debug_nans:
            return
        types = tuple(map(type, args))
        call = entry.calls.get(types)
        if call is None:
            call = fast_call.specialised_call(self, entry, args)
            if call is None:
                return
            entry.calls[types] = call
        if call is not self._hot:
            self._hot, self._warm = call, self._hot

    def _execute(self, entry, dynamic):
        result, locks = entry.result, entry.locks
        for lock in locks:  # the step's Variable updates are atomic with respect to other threads
            lock.acquire()
        try:
            if self._debug_nans:
                from .debug import run_checked
                outs = run_checked(entry.executable, result.graph, dynamic, result.input_names)
            else:
                outs = entry.executable.run(dynamic)
        finally:
            for lock in locks:
                lock.release()
        return result.build_outputs(outs)

    # -- signatures -------------------------------------------------------------------------

    def _key(self, args, kwargs):
        """(cache key, flat dynamic values, objects to keep alive while the key is cached)."""
        bound = self._bind(args, kwargs)
        parts, dynamic, keepalive = [], [], []
        for name, value, static in bound:
            if static:
                parts.append((name, _static_key(value, keepalive)))
                continue
            leaves, treedef = tree.flatten(value, is_leaf=_is_leaf)
            leaf_keys = []
            for leaf in leaves:
                kind, payload = _classify(leaf, name)
                if kind == 'dynamic':
                    leaf_keys.append(payload.key())
                    dynamic.append(_dynamic_value(leaf))
                else:
                    leaf_keys.append(_static_key(payload, keepalive))
            parts.append((name, treedef, tuple(leaf_keys)))
        return tuple(parts), dynamic, keepalive

    def _bind(self, args, kwargs):
        """[(parameter name, value, is_static)] in call order."""
        names = self._param_names(len(args))
        out = [(names[i], a, i in self._static_argnums or names[i] in self._static_argnames)
               for i, a in enumerate(args)]
        out += [(k, kwargs[k], k in self._static_argnames) for k in sorted(kwargs)]
        return out

    def _param_names(self, count):
        params = list(self._signature.parameters.values()) if self._signature else []
        names = []
        for i in range(count):
            if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY,
                                                      params[i].POSITIONAL_OR_KEYWORD):
                names.append(params[i].name)
            else:
                names.append(f'args[{i}]')
        return names

    # -- tracing ----------------------------------------------------------------------------

    @staticmethod
    def _resized_trace(concrete, dynamic):
        """A new size of a None dimension whose IR does not depend on it: the signature's IR
        with its sizes re-derived, without running the Python function again."""
        if not concrete.traces:
            return None
        template = concrete.size_free_template()
        if template is None:
            return None
        shapes = [np.shape(v) for v in dynamic]
        if any(new != old and new < 2 for shape, var in zip(shapes, template.graph.inputs)
               for new, old in zip(shape, var.shape)):
            return None   # sizes 0 and 1 may trace differently (empty reductions, broadcasts)
        return resized(template, shapes)

    def _build(self, key, args, kwargs, keepalive, dynamic, concrete=None):
        pending = self._pending.pop(key, None)
        if pending is not None:       # traced by get_concrete_function: not traced again
            result = pending[0]
        else:
            concrete = concrete or self._concrete_for(args, kwargs)
            result = self._resized_trace(concrete, dynamic)
            if result is None:
                self._log_retrace(key)
                result = self._trace(args, kwargs)
            concrete.attach(result)
        from .backend import compile_graph
        executable, how = compile_graph(result.graph, self._count_compile, result.guards,
                                        in_background=config.compile_in_background,
                                        show_source=config.debug_level() >= 2)
        self._stats['builds'] += 1
        self._count_compile(how)
        return _Entry(result, executable, keepalive)

    def _count_compile(self, how):
        if how in ('compiled', 'disk'):
            self._stats['compiles' if how == 'compiled' else 'disk_hits'] += 1

    def _trace(self, args, kwargs):
        """Run the Python function on tracers; returns an optimised TraceResult."""
        self._stats['traces'] += 1
        bound = self._bind(args, kwargs)
        # Variables may be created until one trace has succeeded (a failed one does not count)
        trace = Trace(allow_new_variables=not self._traced)
        with trace:
            call_args, call_kwargs, input_names = [], {}, []
            for i, (name, value, static) in enumerate(bound):
                if not static:
                    value = self._trace_argument(trace, name, value, input_names)
                if i < len(args):
                    call_args.append(value)
                else:
                    call_kwargs[name] = value
            with autograph.enabled(self._autograph):
                out = self._traced_fn()(*call_args, **call_kwargs)
            leaves, treedef = tree.flatten(out, is_leaf=_is_leaf)
            traced, static = [], []
            for leaf in leaves:
                if isinstance(leaf, (bool, int, float, np.generic)) or _is_float_list(leaf):
                    leaf = tracing.to_array(leaf, 'returned value')   # a Tensor, as TF returns
                if isinstance(leaf, IndexedSlices):   # TF's functions return them as such
                    traced += [tracing.as_operand(leaf.values), tracing.as_operand(leaf.indices)]
                    static.append(_SlicesOut(leaf.shape))
                elif isinstance(leaf, (Variable, Tensor, Tracer, np.ndarray)):
                    traced.append(tracing.as_operand(leaf))
                    static.append(_TRACED)
                else:
                    static.append(leaf)
            graph = trace.finish(traced)
        graph = passes.optimize(graph)
        self._traced = True
        return TraceResult(graph, treedef, static, _live_guards(trace.guards, graph),
                           input_names)

    @staticmethod
    def _trace_argument(trace, name, value, input_names):
        """The argument with its array leaves replaced by tracers; appends the user's name of
        each new graph input to `input_names` (the parameter, and the leaf within a pytree)."""
        leaves, treedef = tree.flatten(value, is_leaf=_is_leaf)
        traced = []
        for k, leaf in enumerate(leaves):
            first = len(trace.graph.inputs)
            traced.append(_trace_input(trace, leaf))
            if len(trace.graph.inputs) > first:
                input_names.append(name if treedef.kind == 'leaf'
                                   else f'{name} (leaf {k} of {len(leaves)})')
        return tree.unflatten(treedef, traced)

    def _log_retrace(self, key):
        if self._last_key is None:
            log.info('tracing %s for the first time', self.__name__)
        else:
            log.info('retracing %s: %s', self.__name__, _describe_change(self._last_key, key))
        self._last_key = key

    # -- introspection ----------------------------------------------------------------------

    def trace(self, *args, **kwargs):
        """Trace (without running or caching) and return the TraceResult (`.graph` printable)."""
        return self._trace(args, kwargs)

    def lower(self, *args, **kwargs):
        """The generated kernel for these arguments (`.source` is the Numba source)."""
        from .backend import lower_graph
        return lower_graph(self._trace(args, kwargs).graph)

    def cache_info(self):
        """traces, compiles (Numba), disk_hits (kernels loaded from the disk cache), memory_hits
        (calls that reused a cached executable), calls, entries (signatures cached),
        interpreted_calls (steps run by the numpy interpreter while a kernel compiled)."""
        stats = dict(self._stats)
        builds = stats.pop('builds')
        interpreted = sum(getattr(e.executable, 'interpreted_runs', 0)
                          for e in self._cache.values())
        return dict(stats, memory_hits=self._calls - builds, calls=self._calls,
                    entries=len(self._cache), interpreted_calls=interpreted)

    # -- concrete functions (TF's tracing model) --------------------------------------------

    def _concrete_for(self, args, kwargs):
        """The ConcreteFunction a call belongs to: the most specific traced signature that
        accepts it, else a new one (input_signature; with reduce_retracing, the call's
        signature with the sizes that differ from the last similar trace made None)."""
        exact = sig.Signature.of_call(self._signature, args, kwargs)
        fitting = [c for c in self._concretes if c.signature.accepts(exact)]
        if fitting:
            return min(fitting, key=lambda c: _generality(c.signature))
        signature = exact
        if self._input_signature is not None:
            signature = self._input_signature
        elif self._reduce_retracing:
            for concrete in reversed(self._concretes):
                general = concrete.signature.supertype(exact)
                if general is not None:
                    signature = general
                    break
        return self._new_concrete(signature)

    def _new_concrete(self, signature):
        concrete = ConcreteFunction(
            self.__name__, signature, self._signature,
            lambda args, kwargs: self._call_general(args, kwargs, concrete),
            trace_at=lambda size: self._trace(*_sample_call(signature, size)))
        self._concretes.append(concrete)
        return concrete

    def get_concrete_function(self, *args, **kwargs):
        """The ConcreteFunction for these arguments (tensors, arrays or tj.TensorSpecs; none
        with an input_signature), traced now unless a traced one accepts them."""
        if self._input_signature is not None and not args and not kwargs:
            signature = self._input_signature
        else:
            if self._input_signature is not None:
                _check_fits(self._input_signature, self._signature, args, kwargs)
            signature = sig.Signature.of_call(self._signature, args, kwargs)
        for concrete in self._concretes:
            if concrete.signature == signature:
                return concrete
        concrete = self._new_concrete(signature)
        sample_args, sample_kwargs = _sample_call(signature)
        result = self._trace(sample_args, sample_kwargs)
        concrete.attach(result)
        key = self._key(sample_args, sample_kwargs)[0]
        if key not in self._cache:
            self._pending[key] = (result, concrete)
        return concrete

    @property
    def concrete_functions(self):
        """The ConcreteFunctions traced so far, in order."""
        return list(self._concretes)

    def experimental_get_tracing_count(self):
        """How many signatures were traced (TF's count). cache_info()['traces'] counts every
        run of the Python function, including one per new size of a None dimension."""
        return len(self._concretes)

    def pretty_printed_concrete_signatures(self, verbose=True):
        return '\n\n'.join(c.pretty_printed_signature(verbose) for c in self._concretes)

    @property
    def input_signature(self):
        if self._input_signature is None:
            return None
        return self._input_signature.structured()[0]

    def block_until_compiled(self):
        """Wait for the kernels compiling in the background (see `tj.config`); raises the
        CompilationError of one that failed. Later calls then run native code only."""
        for entry in list(self._cache.values()):
            wait = getattr(entry.executable, 'wait', None)
            if wait is not None:
                wait()
        return self

    def __repr__(self):
        return f'<tj.function {self.__name__}>'


def _checked_input_signature(input_signature, fn):
    """The input_signature as a Signature of the function's first parameters."""
    if input_signature is None:
        return None
    specs = list(input_signature)
    for spec in tree.leaves(specs, sig.is_leaf):
        if not isinstance(spec, TensorSpec):
            raise TypeError(f'input_signature must hold tj.TensorSpecs, got {spec!r}')
    py_signature = _safe_signature(fn)
    names = [f'args_{i}' for i in range(len(specs))]
    kinds = ['POSITIONAL_ONLY'] * len(specs)
    if py_signature is not None:
        params = [p for p in py_signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if params and params[0].name == 'self' and len(params) == len(specs) + 1:
            params = params[1:]    # a method decorated in its class: bound later
        if len(params) < len(specs) and not any(
                p.kind == p.VAR_POSITIONAL for p in py_signature.parameters.values()):
            raise TypeError(f'input_signature has {len(specs)} entries but '
                            f'{getattr(fn, "__name__", "the function")} takes '
                            f'{len(params)} positional arguments')
        names = [p.name for p in params[:len(specs)]]
        kinds = [p.kind.name for p in params[:len(specs)]]
    return sig.Signature(zip(names, kinds, specs))


def _check_fits(input_signature, py_signature, args, kwargs):
    """TypeError unless get_concrete_function's arguments (specs or tensors) fit the
    input_signature."""
    exact = sig.Signature.of_call(py_signature, args, kwargs)
    if not input_signature.accepts(exact):
        raise TypeError(f'get_concrete_function{exact.describe(verbose=False)} does not fit '
                        f'the input_signature {input_signature.describe(verbose=False)}')


SAMPLE_SIZE = 2   # the size a None dimension is traced at for get_concrete_function


def _sample_call(signature, size=SAMPLE_SIZE):
    """(args, kwargs) with an array for every TensorSpec (None sizes as `size`)."""
    values = {}
    for name, _, spec in signature.params:
        values[name] = tree.tree_map(lambda s: _sample(s, size), spec, is_leaf=sig.is_leaf)
    positional = sum(kind in ('POSITIONAL_ONLY', 'POSITIONAL_OR_KEYWORD', 'VAR_POSITIONAL')
                     for _, kind, _ in signature.params)
    return sig.rebuild_call(signature.params, values, positional)


def _sample(spec, size):
    if spec is sig.WEAK_FLOAT:
        return 0.0
    if not isinstance(spec, TensorSpec):
        return spec
    if spec.shape is None:
        raise errors.InvalidArgumentError(
            f'{spec!r} has an unknown rank; tracejit traces tensors of a known rank (give a '
            'shape such as [None, 3])')
    return np.zeros([size if d is None else d for d in spec.shape], spec.dtype.np)


def _as_tensor(leaf):
    return Tensor(leaf) if isinstance(leaf, np.ndarray) else leaf


def _generality(signature):
    return sum(d is None for s in signature.specs() if isinstance(s, TensorSpec)
               for d in (s.shape or ()))


def _live_guards(guards, graph):
    """The argument range checks whose argument the optimised graph still reads: indices that
    only fed dead code must not make the call fail."""
    read = {v for node in graph.nodes for v in node.inputs}
    read.update(graph.outputs, (value for _, value in graph.updates))
    return [guard for guard in guards if graph.inputs[guard[0]] in read]


def _fast_key(args):
    """(key, dynamic values) for flat positional arguments, or (None, None) when any argument
    needs the general path. Objects compared by identity (Variables, Modules, layers) are keyed by
    id, which is safe because the cached entry keyed by that identity keeps them alive."""
    key, dynamic = [], []
    for a in args:
        t = type(a)
        if t is Tensor:      # keyed and passed as its array, as on the general path
            a, t = a._value, np.ndarray
        if t is np.ndarray:
            if a.dtype not in dtypes.SUPPORTED or not a.flags.c_contiguous:
                return None, None
            key.append((a.shape, a.dtype))
            dynamic.append(a if a.flags.writeable else a.copy())   # see _dynamic_value
        elif t is float:
            key.append(float)
            dynamic.append(a)
        elif t in (int, bool, str) or a is None:
            key.append((t, a))
        elif t in (list, tuple, dict) or isinstance(a, (np.ndarray, np.generic, tuple)):
            return None, None
        elif isinstance(a, TensorOps) or t.__eq__ is object.__eq__:
            key.append(id(a))
        else:  # keyed by value in the general key, so nothing keeps it alive: its id may be reused
            return None, None
    return tuple(key), dynamic


def function(func=None, input_signature=None, *, static_argnums=(), static_argnames=(),
             debug_nans=False, reduce_retracing=False, **options):
    """Decorator: `@tj.function`, `@tj.function(input_signature=[tj.TensorSpec([None])])`,
    `@tj.function(static_argnums=1)`, or `tj.function(f)`. With `input_signature`, calls must
    fit it (TypeError as TF) and None sizes never make a new signature; `reduce_retracing`
    generalises sizes that changed to None after the first retrace, as TF does. With
    `autograph=True` (the default, as TF) Python if/while/for on traced tensors in `func` and
    the user functions it calls become tj.cond / tj.while_loop (see tracejit/autograph)."""
    def make(f):
        return Function(f, static_argnums, static_argnames, debug_nans,
                        input_signature=input_signature, reduce_retracing=reduce_retracing,
                        **options)
    return make if func is None else make(func)


def jit(func=None, *, static_argnums=(), static_argnames=(), **options):
    """JAX's jax.jit: tj.function without AutoGraph (Python control flow stays Python; use
    tj.lax.cond / while_loop / fori_loop / scan on traced values)."""
    options.setdefault('autograph', False)
    return function(func, static_argnums=static_argnums, static_argnames=static_argnames,
                    **options)


# -------------------------------------------------------------------------------- leaves

def _is_leaf(x):
    return isinstance(x, (TensorOps, np.ndarray)) or _is_float_list(x)


def _is_float_list(x):
    """A (nested) list of Python numbers with at least one float: one traced array, as TF's
    tensors of a list argument, instead of one traced scalar per element."""
    if type(x) is not list or not x:
        return False
    numbers = list(_numbers(x))
    return all(isinstance(n, (int, float)) for n in numbers) and any(
        isinstance(n, float) for n in numbers)


def _numbers(x):
    for item in x:
        if type(item) is list:
            yield from _numbers(item)
        else:
            yield item


def _classify(leaf, name):
    """('dynamic', _Dynamic) for traced leaves, ('static', key-able value) otherwise."""
    if type(leaf) is list:   # a list of floats (see _is_float_list): float32, as TF
        leaf = tracing.to_array(leaf, f'argument {name!r}')
    if isinstance(leaf, Variable):
        return 'static', leaf
    if isinstance(leaf, Tensor):
        if leaf._value.dtype.kind in 'US':
            raise errors.DTypeError(f'argument {name!r} is a string tensor; tracejit compiles '
                                    'numeric data only')
        return 'dynamic', _Dynamic(leaf.shape, leaf._value.dtype, False)
    if isinstance(leaf, np.ndarray):
        dtype = dtypes.canonical(leaf.dtype, f'argument {name!r}')
        return 'dynamic', _Dynamic(leaf.shape, dtype, False)
    if isinstance(leaf, float) or isinstance(leaf, np.floating):
        # a Python float is a weak float64: it adopts float32 next to float32 data and keeps
        # full precision next to float64 data
        return 'dynamic', _Dynamic((), np.dtype(np.float64) if isinstance(leaf, float)
                                   else np.dtype(leaf.dtype), isinstance(leaf, float))
    return 'static', leaf


def _dynamic_value(leaf):
    """What the kernel receives: arrays as C-contiguous, writeable arrays of a canonical dtype
    (kernels view them flat, and Numba would compile again for a read-only array's type)."""
    if isinstance(leaf, Tensor):
        leaf = leaf._value      # eager results may be views: transposed, read-only
    elif type(leaf) is list:
        leaf = tracing.to_array(leaf, 'argument')
    if isinstance(leaf, np.ndarray):
        leaf = dtypes.to_canonical(leaf, 'argument')
        if not leaf.flags.c_contiguous:
            leaf = np.ascontiguousarray(leaf)
        if not leaf.flags.writeable:
            leaf = leaf.copy()
        return leaf
    return leaf  # a Python float or numpy scalar, passed as a scalar


def _static_key(value, keepalive):
    if isinstance(value, TensorOps):
        keepalive.append(value)
        return ('id', type(value).__qualname__, id(value))
    if isinstance(value, (bool, int, str, bytes, type(None), float, complex, np.generic)):
        return (type(value).__name__, value)
    try:
        hash(value)
        if type(value).__eq__ is object.__eq__:
            raise TypeError
        return ('hashable', type(value).__qualname__, value)
    except TypeError:
        keepalive.append(value)
        return ('id', type(value).__qualname__, id(value))


def _trace_input(trace, leaf):
    kind, payload = _classify(leaf, 'argument')
    if kind == 'dynamic':
        return trace.new_input(payload.shape, payload.dtype, payload.weak)
    return leaf


def _describe_change(old, new):
    if len(old) != len(new):
        return f'called with {len(new)} arguments instead of {len(old)}'
    for o, n in zip(old, new):
        if o != n:
            return f'argument {n[0]!r} changed from {_short(o[1:])} to {_short(n[1:])}'
    return 'a new signature'


def _short(part):
    text = repr(part)
    return text if len(text) < 120 else text[:117] + '...'


def _as_tuple(x):
    if x is None:
        return ()
    return (x,) if isinstance(x, (int, str)) else tuple(x)


def _safe_signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None

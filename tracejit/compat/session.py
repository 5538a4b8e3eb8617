"""TF1 sessions: each `run` is one call of a compiled tracejit step.

For a set of fetches and fed tensors, a Session finds the operations they need (through inputs
and control inputs, stopping at fed tensors) and wraps their replay in a `tj.function`: fed
tensors are its arguments, this session's Variables its state. So the sub-graph is traced,
optimised and compiled like any compiled step, once per feed signature (a new batch size reuses
the shape-generic kernel, costing a trace), and every later `run` is one native call plus the
conversion of the feeds.

Within one run, a Variable used as a tensor reads its value from before the run; assign ops run
in creation order (assign_add/assign_sub add to what earlier assigns of the same run left), and
the outputs of assign ops are the new values. Fetched Operations give None.
"""
import contextlib
import operator

import numpy as np

from .. import errors, ops, tree
from .. import variables as tj_variables
from ..function import function
from .graph import Graph, Operation, _Operators, _session_stack, get_default_graph

_NO_FEEDS = {}
_ASSIGNS = ('Assign', 'AssignAdd', 'AssignSub')


class ConfigProto:
    """Accepted for compatibility: sessions run on the CPU through Numba, every option is
    ignored (`config.gpu_options.allow_growth = True` and the like are fine)."""

    def __init__(self, **options):
        self.gpu_options = options.pop('gpu_options', None) or GPUOptions()
        self.__dict__.update(options)


class GPUOptions:
    """Accepted and ignored, like ConfigProto."""

    def __init__(self, **options):
        self.__dict__.update(options)


class Session:
    """Runs fetches of one graph; holds that graph's Variable values for this session only."""

    def __init__(self, target='', graph=None, config=None):
        if isinstance(target, Graph):  # Session(graph) as a convenience
            target, graph = '', target
        self.graph = graph if graph is not None else get_default_graph()
        self.config = config
        self._closed = False
        self._state = {}            # graph Variable -> tracejit Variable holding its value here
        self._initialized = set()   # graph Variables assigned in this session
        self._fetchers = {}         # (fetch key, feed keys) -> _Fetcher
        self._plans = {}            # (fetched, fed) -> _Plan
        self._context = None

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Values of `fetches` (a Tensor, Operation, Variable, name, or nesting of them)."""
        if self._closed:
            raise RuntimeError('Attempted to use a closed Session.')
        feed_dict = feed_dict or _NO_FEEDS
        key = (_fetch_key(fetches), tuple(feed_dict))
        try:
            fetcher = self._fetchers.get(key)
        except TypeError:  # unhashable nesting (a list inside a dict ...): key by structure
            leaves, treedef = tree.flatten(fetches, is_leaf=_is_fetch)
            key = (treedef, tuple(leaves), key[1])
            fetcher = self._fetchers.get(key)
        if fetcher is None:
            fetcher = self._fetchers[key] = _Fetcher(self, fetches, feed_dict)
        return fetcher(feed_dict)

    def close(self):
        """Free this session's Variables and compiled steps; later runs raise RuntimeError."""
        self._closed = True
        self._state.clear()
        self._fetchers.clear()
        self._plans.clear()

    def cache_info(self):
        """Compiled steps of this session: plans (fetch set x fed tensors), traces (one per
        plan and feed signature), Numba compiles, and kernels loaded from the disk cache."""
        infos = [plan.function.cache_info() for plan in self._plans.values()]
        total = {k: sum(i[k] for i in infos) for k in ('traces', 'compiles', 'disk_hits')}
        return dict(plans=len(self._plans), **total)

    @contextlib.contextmanager
    def as_default(self):
        _session_stack.append(self)
        try:
            yield self
        finally:
            _session_stack.remove(self)

    def __enter__(self):
        self._context = contextlib.ExitStack()
        self._context.enter_context(self.graph.as_default())
        self._context.enter_context(self.as_default())
        return self

    def __exit__(self, *exc):
        self._context.close()
        self.close()

    # -- plans ------------------------------------------------------------------------------

    def _plan(self, fetched, fed):
        key = (fetched, frozenset(fed))
        if key not in self._plans:
            self._plans[key] = _Plan(self, fetched, fed)
        return self._plans[key]

    def _variable(self, variable):
        """This session's tracejit Variable for a graph Variable (zeros until initialised)."""
        state = self._state.get(variable)
        if state is None:
            state = self._state[variable] = tj_variables.Variable(
                np.zeros(variable.shape.as_list(), variable.dtype.np), trainable=False,
                name=variable.op.name)
        return state


class InteractiveSession(Session):
    """A Session that makes itself the default one until closed (for shells and notebooks)."""

    def __init__(self, target='', graph=None, config=None):
        super().__init__(target, graph, config)
        _session_stack.append(self)

    def close(self):
        if self in _session_stack:
            _session_stack.remove(self)
        super().close()


# -------------------------------------------------------------------------------- fetching

def _fetch_key(fetches):
    """A cheap hashable key for the common fetch shapes (a raw unhashable nesting raises on
    hashing, and `run` falls back to the structure)."""
    kind = type(fetches)
    if kind is list or kind is tuple:
        return kind, tuple(fetches)
    if kind is dict:
        return kind, tuple(fetches.items())
    return kind, fetches


def _is_fetch(x):
    return isinstance(x, (_Operators, Operation, str))


class _Fetcher:
    """One fetch structure and feed-key order: runs its plan and rebuilds the structure."""

    def __init__(self, session, fetches, feed_dict):
        if fetches is None:
            raise TypeError("Fetch argument None has invalid type <class 'NoneType'>")
        leaves, treedef = tree.flatten(fetches, is_leaf=_is_fetch)
        elements = [_element(session.graph, leaf, 'Fetch argument') for leaf in leaves]
        tensors = list(dict.fromkeys(e for e in elements if not isinstance(e, Operation)))
        targets = tuple(dict.fromkeys(e for e in elements if isinstance(e, Operation)))
        fed = {_element(session.graph, k, 'Feed key'): k for k in feed_dict}
        for tensor in fed:
            if isinstance(tensor, Operation):
                raise TypeError(f'Feed key {tensor!r} is an Operation; only Tensors can be fed.')
        self.plan = session._plan((tuple(tensors), targets), tuple(fed))
        self.feeds = [(fed[t], convert) for t, convert in zip(self.plan.fed, self.plan.converters)]
        # a fetched Operation reads the None the plan appends after the tensor values
        slots = [-1 if isinstance(e, Operation) else tensors.index(e) for e in elements]
        self.unpack = _unpacker(fetches, treedef, slots)

    def __call__(self, feed_dict):
        return self.unpack(self.plan.run([convert(feed_dict[k]) for k, convert in self.feeds]))


def _unpacker(fetches, treedef, slots):
    """values -> the fetch structure; flat lists, tuples and single fetches avoid the pytree."""
    if treedef.kind == 'leaf':
        slot = slots[0]
        return lambda values: values[slot]
    if type(fetches) in (list, tuple) and treedef.children and all(
            c.kind == 'leaf' for c in treedef.children):
        kind = type(fetches)
        if len(slots) == 1:
            return lambda values: kind((values[slots[0]],))
        get = operator.itemgetter(*slots)
        return lambda values: kind(get(values))
    if isinstance(fetches, dict):  # pytrees sort dict keys; give them back in the user's order
        keys, kind = list(fetches), type(fetches)

        def unpack(values):
            out = tree.unflatten(treedef, [values[s] for s in slots])
            return kind((k, out[k]) for k in keys)
        return unpack
    return lambda values: tree.unflatten(treedef, [values[s] for s in slots])


def _element(graph, obj, what):
    try:
        return graph.as_graph_element(obj)
    except (TypeError, ValueError, KeyError) as e:
        raise type(e)(f'{what} {obj!r} cannot be interpreted as a Tensor or Operation of the '
                      f'session\'s graph: {e}') from None


class _Plan:
    """The compiled step for (fetched tensors, target operations) given the fed tensors."""

    def __init__(self, session, fetched, fed):
        tensors, targets = fetched
        fed = set(fed)
        needed = _needed_operations(list(tensors), targets, fed)
        for op in needed:
            if op.type == 'Placeholder':
                raise errors.InvalidArgumentError(_unfed_message(op.outputs[0]))
        self.session = session
        self.fed = sorted(fed, key=lambda t: (t.op._index, t.value_index))
        self.converters = [_converter(t) for t in self.fed]
        self.needs_init, self.assigns = _variable_use(needed, tensors)
        for op in needed:
            if op.type == 'VariableV2':
                session._variable(op._variable)
        self.function = function(_replay(needed, tensors, self.fed, session._state.__getitem__))

    def run(self, args):
        """Outputs (numpy) for converted feeds in `fed` order, then a None for fetched ops."""
        session = self.session
        if self.needs_init and not self.needs_init <= session._initialized:
            missing = min(self.needs_init - session._initialized, key=lambda v: v.op._index)
            raise errors.FailedPreconditionError(
                f'Attempting to use uninitialized value {missing.op.name}: run its initializer '
                '(or tf.global_variables_initializer()) in this session first')
        outs = self.function(*args)
        if self.assigns:
            session._initialized.update(self.assigns)
        values = [o.numpy() for o in outs]
        values.append(None)
        return values


def _needed_operations(tensors, targets, fed):
    """Operations the fetches depend on, in creation order; fed tensors cut the search."""
    needed, stack = set(), [t.op for t in tensors if t not in fed] + list(targets)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed.add(op)
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(op.control_inputs)
    return sorted(needed, key=lambda op: op._index)


def _variable_use(needed, fetched):
    """(Variables the run reads before writing, Variables it assigns), from the op structure:
    a read is any use of a VariableV2 output other than as the target of an assign, or an
    assign_add/assign_sub not preceded by an Assign in the same run."""
    reads, assigned = set(), set()
    for op in needed:
        values = op.inputs
        if op.type in _ASSIGNS:
            if op.type != 'Assign' and op._variable not in assigned:
                reads.add(op._variable)
            assigned.add(op._variable)
            values = values[1:]
        reads.update(t.op._variable for t in values if t.op.type == 'VariableV2')
    reads.update(t.op._variable for t in fetched if t.op.type == 'VariableV2')
    return frozenset(reads), frozenset(assigned)


def _replay(needed, fetched, fed, resolve):
    """The step a plan compiles: replay `needed` in creation order on the fed values."""
    def step(*feeds):
        env = dict(zip(fed, feeds))
        for op in needed:
            results = [r for r in op._compute(env.__getitem__, resolve) if r is not None]
            for tensor, value in zip(op.outputs, results):
                env.setdefault(tensor, value)  # a fed output keeps its fed value
        return [ops.identity(env[t]) for t in fetched]
    return step


def _converter(tensor):
    """Feed value -> array of the tensor's dtype, checked against its static shape."""
    dtype, static = tensor.dtype.np, tensor.shape
    rank = static.ndims
    known = [] if rank is None else [(i, d) for i, d in enumerate(static.dims) if d is not None]

    def convert(value):
        if value is None:
            raise TypeError(f'Cannot feed None for Tensor {tensor.name!r} ({dtype.name}); feed '
                            'a number or numpy array, or leave it out of feed_dict')
        try:
            array = np.asarray(value, dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f'Cannot feed {value!r} for Tensor {tensor.name!r} '
                            f'({dtype.name}): {e}') from None
        if rank is not None and (array.ndim != rank or any(array.shape[i] != d
                                                           for i, d in known)):
            raise errors.InvalidArgumentError(
                f'Cannot feed value of shape {array.shape} for Tensor {tensor.name!r}, which '
                f'has shape {str(static)!r}')
        return array
    return convert


def _unfed_message(tensor):
    shape = tensor.shape
    dims = '' if shape.dims is None else ' and shape [' + ','.join(
        '?' if d is None else str(d) for d in shape.dims) + ']'
    return (f"You must feed a value for placeholder tensor '{tensor.op.name}' with dtype "
            f'{tensor.dtype.name}{dims} (pass it in feed_dict)')

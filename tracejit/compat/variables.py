"""TF1 Variables: four graph operations over state that lives in sessions.

`Variable(...)` adds TF's operations: '<name>/initial_value' (Const, unless the initial value is
already a graph tensor), '<name>' (VariableV2: the value at the start of a run), '<name>/Assign'
(the initializer) and '<name>/read' (Identity: what using the Variable as a tensor reads).
Assign ops resolve the Variable to a tracejit Variable when they are traced: a zero-filled
stand-in while the graph is built, the session's own Variable when a session replays them, so
reads and assigns become state inputs and in-place updates of the compiled step.
"""
import numpy as np

from .. import scatter as tj_scatter, variables as tj_variables
from .graph import _Operators, Tensor, constant, get_default_graph, make_op
from .graph_ops import cast, group

GLOBAL_VARIABLES = 'variables'
TRAINABLE_VARIABLES = 'trainable_variables'

_ASSIGN_TYPES = {'assign': 'Assign', 'assign_add': 'AssignAdd', 'assign_sub': 'AssignSub'}


class Variable(_Operators):
    """A TF1 (ref) variable: `initializer`, `initial_value`, `assign*`, usable as a tensor."""

    def __init__(self, initial_value=None, trainable=True, collections=None, validate_shape=True,
                 caching_device=None, name=None, variable_def=None, dtype=None,
                 expected_shape=None, import_scope=None, constraint=None, **unused):
        if initial_value is None:
            raise ValueError('initial_value must be specified.')
        graph = (initial_value._graph_tensor().graph if isinstance(initial_value, _Operators)
                 else get_default_graph())
        self.trainable = bool(trainable)
        with graph.as_default(), graph.name_scope(name or 'Variable') as scope:
            self.initial_value = _initial_tensor(initial_value, dtype)
            shape = self.initial_value.shape
            if not shape.is_fully_defined():
                raise ValueError(f'initial_value must have a shape specified: '
                                 f'{self.initial_value!r}')
            self._proto = tj_variables.Variable(  # stands in for session values while building
                np.zeros(shape.as_list(), self.initial_value.dtype.np), trainable=False,
                name=scope[:-1])
            self._ref = make_op('VariableV2', lambda resolve: resolve(self).value(), name=scope,
                                stateful=True, graph=graph)
            self._ref.op._variable = self
            self.initializer = self._assign('assign', self.initial_value, 'Assign').op
            self._read = make_op('Identity', lambda ref: ref, (self._ref,), name='read')
        if collections is None:
            collections = [GLOBAL_VARIABLES] + ([TRAINABLE_VARIABLES] if trainable else [])
        for key in collections:
            graph.add_to_collection(key, self)

    name = property(lambda self: self._ref.name)
    op = property(lambda self: self._ref.op)
    graph = property(lambda self: self._ref.graph)
    dtype = property(lambda self: self._ref.dtype)
    shape = property(lambda self: self._ref.shape)
    device = ''

    def get_shape(self):
        return self.shape

    def value(self):
        return self._read

    read_value = value

    def _graph_tensor(self):
        return self._read

    def eval(self, session=None):
        return self._read.eval(session=session)

    def assign(self, value, use_locking=None, name=None, read_value=True):
        """An Assign op; its output is the new value (fetch it, or its `.op`, to run it)."""
        out = self._assign('assign', value, name)
        return out if read_value else out.op

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        out = self._assign('assign_add', delta, name)
        return out if read_value else out.op

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        out = self._assign('assign_sub', delta, name)
        return out if read_value else out.op

    def _assign(self, method, value, name):
        def assign(resolve, ref, value):
            state = resolve(self)
            getattr(state, method)(value)
            return state.value()
        op_type = _ASSIGN_TYPES[method]
        out = make_op(op_type, assign, (self._ref, value), name=name, stateful=True,
                      operands=('ref', 'value'))
        out.op._variable = self
        return out

    def __repr__(self):
        return f"<tf.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}_ref>"


def _initial_tensor(initial_value, dtype):
    if callable(initial_value):
        initial_value = initial_value()
    if not isinstance(initial_value, _Operators):
        return constant(initial_value, dtype, name='initial_value')
    tensor = initial_value._graph_tensor()
    return cast(tensor, dtype) if dtype is not None and tensor.dtype != dtype else tensor


# -------------------------------------------------------------------------------- functions

def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    """`ref.assign(value)`: an op whose output is the new value of Variable `ref`."""
    return _variable(ref, 'assign').assign(value, name=name)


def assign_add(ref, value, use_locking=None, name=None):
    return _variable(ref, 'assign_add').assign_add(value, name=name)


def assign_sub(ref, value, use_locking=None, name=None):
    return _variable(ref, 'assign_sub').assign_sub(value, name=name)


def _variable(ref, what):
    if isinstance(ref, Variable):
        return ref
    if isinstance(ref, Tensor) and ref.op._variable is not None and ref.op.type == 'VariableV2':
        return ref.op._variable
    raise TypeError(f'tf.{what} needs a Variable as its first argument, got {ref!r}')


def global_variables(scope=None):
    return get_default_graph().get_collection(GLOBAL_VARIABLES, scope)


def trainable_variables(scope=None):
    return get_default_graph().get_collection(TRAINABLE_VARIABLES, scope)


def local_variables(scope=None):
    return []


def variables_initializer(var_list, name='init'):
    """One op that runs the initializers of `var_list`."""
    return group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    return variables_initializer(global_variables())


def local_variables_initializer():
    return variables_initializer([])


initialize_all_variables = global_variables_initializer


# -- scatters: TF1's scatter_update / scatter_add / scatter_sub, on graph Variables (an op, like
#    assign) or, as TF2 allows, on eager tj.Variables (applied at once)

_SCATTERS = {'scatter_update': 'ScatterUpdate', 'scatter_add': 'ScatterAdd',
             'scatter_sub': 'ScatterSub'}


def _scatter(method, ref, indices, updates, name):
    apply = getattr(tj_scatter, method)
    if isinstance(ref, tj_variables.Variable):
        return apply(ref, indices, updates)
    variable = _variable(ref, method)

    def run(resolve, ref, indices, updates):
        state = resolve(variable)
        apply(state, indices, updates)
        return state.value()
    out = make_op(_SCATTERS[method], run, (variable._ref, indices, updates), name=name,
                  stateful=True, operands=('ref', 'indices', 'updates'))
    out.op._variable = variable
    return out


def scatter_update(ref, indices, updates, use_locking=True, name=None):
    """Rows `indices` of Variable `ref` set to `updates`; the op's output is the new value."""
    return _scatter('scatter_update', ref, indices, updates, name)


def scatter_add(ref, indices, updates, use_locking=False, name=None):
    """`updates` added to rows `indices` of Variable `ref` (repeated rows add up)."""
    return _scatter('scatter_add', ref, indices, updates, name)


def scatter_sub(ref, indices, updates, use_locking=False, name=None):
    return _scatter('scatter_sub', ref, indices, updates, name)

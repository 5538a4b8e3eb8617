"""A traced graph seen the way TensorFlow shows a FuncGraph: operations with `name`, `type`,
`inputs` and `outputs`, and symbolic tensors named `op:0`. A view over the IR, built once; the
IR itself stays the thing that runs (`str(graph)` prints it).

Sizes of a None dimension of the signature print as None: every axis the primitives tie to such
an axis (backend/dims.py) is shown as None too.
"""
import numpy as np

from . import dtypes

TF_OP_TYPES = {
    'add': 'AddV2', 'sub': 'Sub', 'mul': 'Mul', 'div': 'RealDiv', 'neg': 'Neg', 'pow': 'Pow',
    'max': 'Maximum', 'min': 'Minimum', 'exp': 'Exp', 'log': 'Log', 'log1p': 'Log1p',
    'sqrt': 'Sqrt', 'tanh': 'Tanh', 'sigmoid': 'Sigmoid', 'relu': 'Relu', 'softplus': 'Softplus',
    'abs': 'Abs', 'sign': 'Sign', 'sin': 'Sin', 'cos': 'Cos', 'floor': 'Floor',
    'eq': 'Equal', 'ne': 'NotEqual', 'lt': 'Less', 'le': 'LessEqual', 'gt': 'Greater',
    'ge': 'GreaterEqual', 'and': 'LogicalAnd', 'or': 'LogicalOr', 'not': 'LogicalNot',
    'select': 'SelectV2', 'convert': 'Cast', 'matmul': 'MatMul', 'reduce_sum': 'Sum',
    'reduce_max': 'Max', 'reduce_min': 'Min', 'argmax': 'ArgMax', 'argmin': 'ArgMin',
    'reshape': 'Reshape', 'transpose': 'Transpose', 'broadcast_to': 'BroadcastTo',
    'concat': 'ConcatV2', 'gather': 'GatherV2', 'slice': 'StridedSlice',
    'unslice': 'StridedSliceGrad', 'scatter_add': 'UnsortedSegmentSum', 'iota': 'Range',
    'log_softmax': 'LogSoftmax', 'stop_gradient': 'StopGradient',
    'random_uniform': 'RandomUniform',
}


class GraphTensor:
    """A symbolic value of a graph: `name` ('MatMul:0'), `shape`, `dtype`, `op`."""

    def __init__(self, op, index, shape, dtype):
        self.op, self.value_index = op, index
        self.shape, self.dtype = shape, dtypes.as_dtype(dtype)

    @property
    def name(self):
        return f'{self.op.name}:{self.value_index}'

    def __repr__(self):
        shape = '(' + ', '.join(map(str, self.shape)) + (',)' if len(self.shape) == 1 else ')')
        return f"<tj.Tensor '{self.name}' shape={shape} dtype={self.dtype.name}>"


class Operation:
    """One operation: `name`, `type` (TensorFlow's op type), `inputs`, `outputs`; `node` is
    the IR node it shows (None for placeholders, constants, variable reads and writes)."""

    def __init__(self, name, type_, inputs, node=None):
        self.name, self.type, self.inputs, self.node = name, type_, list(inputs), node
        self.outputs = []

    def __repr__(self):
        return f"<tj.Operation '{self.name}' type={self.type}>"


class FuncGraph:
    """The operations of one trace; `str()` is the IR."""

    def __init__(self, name, result, none_axes):
        self.name, self.ir = name, result.graph
        self._none = none_axes
        self._names = {}
        self._tensor = {}
        self._ops = []
        self._build(result)

    def _unique(self, base):
        count = self._names.get(base, 0)
        self._names[base] = count + 1
        return base if count == 0 else f'{base}_{count}'

    def _op(self, base, type_, input_vars=(), out_vars=(), node=None):
        op = Operation(self._unique(base), type_, [self._tensor[v] for v in input_vars], node)
        for k, var in enumerate(out_vars):
            shape = tuple(None if (var, axis) in self._none else d
                          for axis, d in enumerate(var.shape))
            op.outputs.append(GraphTensor(op, k, shape, var.dtype))
            self._tensor[var] = op.outputs[-1]
        self._ops.append(op)
        return op

    def _build(self, result):
        g = self.ir
        names = result.input_names or [f'args_{i}' for i in range(len(g.inputs))]
        self.inputs = [self._op(_op_name(n), 'Placeholder', (), [v]).outputs[0]
                       for n, v in zip(names, g.inputs)]
        self.variables = [variable for variable, _ in g.state]
        for variable, var in g.state:
            self._op(f'{_op_name(variable.name.split(":")[0])}/ReadVariableOp', 'ReadVariableOp',
                     (), [var])
        for var in g.consts:
            self._op('Const', 'Const', (), [var])
        for node in g.nodes:
            type_ = TF_OP_TYPES.get(node.prim.name, node.prim.name.title().replace('_', ''))
            self._op(type_, type_, node.inputs, node.outputs, node)
        self.outputs = [self._identity(v) for v in g.outputs]
        for _, var in g.updates:
            self._op('AssignVariableOp', 'AssignVariableOp', [var])

    def _identity(self, var):
        op = Operation(self._unique('Identity'), 'Identity', [self._tensor[var]])
        source = self._tensor[var]
        op.outputs.append(GraphTensor(op, 0, source.shape, source.dtype))
        self._ops.append(op)
        return op.outputs[0]

    def get_operations(self):
        return list(self._ops)

    def get_operation_by_name(self, name):
        for op in self._ops:
            if op.name == name:
                return op
        raise KeyError(f'the graph has no operation named {name!r}')

    def __str__(self):
        return str(self.ir)


def _op_name(text):
    cleaned = ''.join(c if c.isalnum() or c in '_./-' else '_' for c in text)
    return cleaned.strip('_') or 'input'


def none_axes(graph, input_specs):
    """{(Var, axis)} of the axes tied to a None dimension of the signature."""
    from .backend import lowering
    from .backend.dims import DimClasses
    classes = DimClasses(graph, lowering.dims_rule)
    roots = set()
    for var, spec in zip(graph.inputs, input_specs):
        shape = getattr(spec, 'shape', None)
        for axis, size in enumerate(shape or ()):
            if size is None and var.shape[axis] != 1:
                roots.add(classes.find((var, axis)))
    out = set()
    for var in DimClasses._vars(graph):
        for axis in range(var.ndim):
            if var.shape[axis] != 1 and classes.find((var, axis)) in roots:
                out.add((var, axis))
    return out


def output_specs(result, none):
    """The TensorSpecs of a trace's traced outputs, None where tied to a None input size."""
    from .spec import TensorSpec
    return [TensorSpec([None if (v, k) in none else d for k, d in enumerate(v.shape)],
                       np.dtype(v.dtype)) for v in result.graph.outputs]

"""`ConcreteFunction`: one traced signature of a `tj.function` (TF's ConcreteFunction).

It holds the signature (TensorSpecs, with None for any size, and static values), the trace
that shows its graph and outputs, and a runner that executes a conforming call. A None
dimension accepts any size. tracejit's IR has concrete sizes, so each new size runs an IR of
its own, all sharing one compiled kernel (the source is size-generic): when the IR does not
depend on the size (see size_free_template), the first IR with its sizes re-derived; otherwise
the Python function traced again at that size. Loaded SavedModels build the same objects over stored
IR (saved_model.py).
"""
from . import errors, graphview, ir, irjson, signature as sig
from .spec import TensorSpec


PROBE_SIZES = (3, 7)   # the sizes size_free_template traces None dimensions at


class Parameter:
    """One parameter of a FunctionType, as TF's: name, kind, optional, type_constraint."""

    def __init__(self, name, kind, optional, type_constraint):
        self.name, self.kind, self.optional = name, kind, optional
        self.type_constraint = self.annotation = type_constraint

    def __repr__(self):
        return (f'Parameter(name={self.name}, kind={self.kind}, optional={self.optional}, '
                f'type_constraint={sig.type_string(self.type_constraint)})')


class FunctionType:
    """TF's FunctionType: `parameters` (name -> Parameter) and `output`; prints as
    `(x: TensorSpec(...)) -> TensorSpec(...)`."""

    def __init__(self, signature, output, defaults=()):
        self.parameters = {name: Parameter(name, kind, name in defaults, spec)
                           for name, kind, spec in signature.params}
        self.output = output
        self._signature = signature

    def __str__(self):
        return f'{self._signature.describe(verbose=False)} -> {sig.type_string(self.output)}'

    __repr__ = __str__


class ConcreteFunction:
    """A traced signature; call it with arguments that fit the signature."""

    def __init__(self, name, signature, py_signature, runner, trace_at=None):
        self.name = name
        self.trace_at = trace_at   # size -> a trace with every None size set to it, or None
        self.signature = signature
        self.py_signature = py_signature
        self._runner = runner
        self._result = None
        self._graph = None
        self.traces = []    # every TraceResult of this signature: one per concrete size
        self._template, self._probed = None, False

    def attach(self, result):
        """Record a trace of this signature; the first one represents it."""
        self.traces.append(result)
        if self._result is None:
            self._result = result

    @property
    def trace_result(self):
        if self._result is None:
            raise errors.FailedPreconditionError(
                f'{self.name}: this concrete function has not been traced yet')
        return self._result

    def __call__(self, *args, **kwargs):
        args, kwargs = sig.conform(self.signature, self.py_signature, args, kwargs,
                                   tensor_error=errors.InvalidArgumentError)
        return self.run_conformed(args, kwargs)

    def run_conformed(self, args, kwargs):
        """Run a call already checked against the signature (see signature.conform)."""
        return self._runner(args, kwargs)

    def size_free_template(self):
        """A trace whose IR holds for every size of the signature's None dimensions, or None.
        The function is traced (once) at two more sizes: when the two IRs differ in nothing
        but the sizes of their values (no parameter or constant depends on them), any size
        runs this IR with its sizes re-derived by the shape rules (see `resized`)."""
        if not self._probed:
            self._probed = True
            has_none = any(d is None for s in self.signature.specs()
                           if isinstance(s, TensorSpec) for d in s.shape or ())
            if self.trace_at is not None and has_none:
                probes = [self.trace_at(size) for size in PROBE_SIZES]
                try:
                    sizeless = [_without_sizes(irjson.encode_graph(p.graph, id))
                                for p in probes]
                except irjson.SerializationError:   # e.g. control flow's sub-graphs
                    return None
                self._template = probes[0] if sizeless[0] == sizeless[1] else None
        return self._template

    # -- introspection ---------------------------------------------------------------------

    @property
    def graph(self):
        if self._graph is None:
            result = self.trace_result
            none = graphview.none_axes(result.graph, self.signature.specs())
            self._graph = graphview.FuncGraph(self.name, result, none)
        return self._graph

    @property
    def structured_input_signature(self):
        return self.signature.structured()

    @property
    def structured_outputs(self):
        return self.trace_result.structure(self.graph.outputs)

    @property
    def inputs(self):
        return list(self.graph.inputs)

    @property
    def outputs(self):
        return list(self.graph.outputs)

    @property
    def variables(self):
        return tuple(self.graph.variables)

    @property
    def trainable_variables(self):
        return tuple(v for v in self.variables if v.trainable)

    def output_type(self):
        """The outputs as a spec tree (TensorSpecs for tensors, Python values as they are)."""
        result = self.trace_result
        none = graphview.none_axes(result.graph, self.signature.specs())
        return result.structure(graphview.output_specs(result, none))

    @property
    def function_type(self):
        defaults = ()
        if self.py_signature is not None:
            defaults = {name for name, p in self.py_signature.parameters.items()
                        if p.default is not p.empty}
        return FunctionType(self.signature, self.output_type(), defaults)

    def pretty_printed_signature(self, verbose=True):
        if not verbose:
            return str(self.function_type)
        captures = [f'  {id(v)}: Variable(shape={tuple(v.shape)}, dtype={v.dtype!r}, '
                    f'name={v.name!r})' for v in self.variables] or ['  None']
        return '\n'.join(['Input Parameters:', *self.signature.describe(verbose=True),
                          'Output Type:', f'  {sig.type_string(self.output_type())}',
                          'Captures:', *captures])

    def __repr__(self):
        return f'<ConcreteFunction {self.name}{self.signature.describe(verbose=False)}>'


def _without_sizes(data):
    for aval in (*data['inputs'], *data['state'],
                 *(out for node in data['nodes'] for out in node['outputs'])):
        del aval['shape']
    return data


def resized(result, shapes):
    """The trace with inputs of `shapes`, every value's size re-derived by its primitive's
    shape rule (which refuses sizes that do not fit, naming the op)."""
    g, new = result.graph, ir.Graph()
    new.inputs = [ir.Var(shape, v.dtype, v.weak) for v, shape in zip(g.inputs, shapes)]
    mapping = dict(zip(g.inputs, new.inputs))
    mapping.update((v, v) for v in (*g.consts, *(var for _, var in g.state)))
    new.state, new.consts = list(g.state), dict(g.consts)
    for node in g.nodes:
        inputs = [mapping[v] for v in node.inputs]
        outputs = [ir.Var(*aval) for aval in node.prim.check(*inputs, **node.params)]
        mapping.update(zip(node.outputs, outputs))
        new.nodes.append(ir.Node(node.prim, inputs, node.params, outputs, node.where))
    new.outputs = [mapping[v] for v in g.outputs]
    new.updates = [(variable, mapping[v]) for variable, v in g.updates]
    for variable, value in new.updates:
        if value.shape != tuple(variable.shape):
            raise errors.ShapeError(f'these input sizes would assign a value of shape '
                                    f'{value.shape} to Variable {variable.name} of shape '
                                    f'{tuple(variable.shape)}')
    return type(result)(new, result.out_treedef, result.out_static, result.guards,
                        result.input_names)

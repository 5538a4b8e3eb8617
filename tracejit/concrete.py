"""`ConcreteFunction`: one traced signature of a `tj.function` (TF's ConcreteFunction).

It holds the signature (TensorSpecs, with None for any size, and static values), the trace
that shows its graph and outputs, and a runner that executes a conforming call. A None
dimension accepts any size: each new size runs the IR specialised to it (the Python function
is traced again for it, tracejit's IR having concrete sizes) and reuses the one compiled
kernel, whose source is size-generic. Loaded SavedModels build the same objects over stored
IR (saved_model.py).
"""
from . import errors, graphview, signature as sig


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

    def __init__(self, name, signature, py_signature, runner):
        self.name = name
        self.signature = signature
        self._py_signature = py_signature
        self._runner = runner
        self._result = None
        self._graph = None

    def attach(self, result):
        """Record the trace that represents this signature (the first one)."""
        if self._result is None:
            self._result = result

    @property
    def trace_result(self):
        if self._result is None:
            raise errors.FailedPreconditionError(
                f'{self.name}: this concrete function has not been traced yet')
        return self._result

    def __call__(self, *args, **kwargs):
        args, kwargs = sig.conform(self.signature, self._py_signature, args, kwargs,
                                   tensor_error=errors.InvalidArgumentError)
        return self._runner(args, kwargs)

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
        if self._py_signature is not None:
            defaults = {name for name, p in self._py_signature.parameters.items()
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


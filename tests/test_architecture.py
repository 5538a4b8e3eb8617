"""The shape of the code: no import cycles among tracejit's modules, and every primitive has
what each layer needs (a VJP where differentiable, a backend lowering)."""
import ast
import pathlib

import pytest

import tracejit
from tracejit.backend import lowering
from tracejit.primitives import REGISTRY

PACKAGE = pathlib.Path(tracejit.__file__).parent


def _modules():
    """{dotted module name: path} for every module of the package."""
    modules = {}
    for path in PACKAGE.rglob('*.py'):
        parts = ('tracejit',) + path.relative_to(PACKAGE).with_suffix('').parts
        modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return modules


def _imported(module, path, node, modules):
    """The tracejit modules an import statement loads, packages on the way included (importing
    a.b.c runs a/b/__init__.py too)."""
    package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = package[:len(package) - node.level + 1] if node.level else []
        prefix = '.'.join(base + ([node.module] if node.module else []))
        names = [f'{prefix}.{a.name}' if f'{prefix}.{a.name}' in modules else prefix
                 for a in node.names]
    for name in names:
        parts = name.split('.')
        for k in range(2, len(parts) + 1):
            target = '.'.join(parts[:k])
            # a module reading its own package's names is not a cycle through that package
            if target in modules and target != module and not module.startswith(target + '.'):
                yield target


def import_graph():
    """{module: set of modules it imports}, counting imports inside functions too (a lazy
    import hides a cycle, it does not remove it)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        graph[module] = {target for node in ast.walk(tree)
                         if isinstance(node, (ast.Import, ast.ImportFrom))
                         for target in _imported(module, path, node, modules)}
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = 'open'
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 'open':
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = 'done'
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert 'tracejit.ops' in graph and 'tracejit.backend.codegen' in graph
    cycle = _cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}
    assert _cycle(graph) == ['a', 'b', 'c', 'a']
    assert _cycle({'a': {'b'}, 'b': set()}) is None


def test_lazy_and_relative_imports_are_edges():
    graph = import_graph()
    assert 'tracejit.backend' in graph['tracejit.function']          # inside a method
    assert 'tracejit.backend.tiered' in graph['tracejit.config']      # inside a function
    assert 'tracejit.backend' in graph['tracejit.config']             # its package
    assert 'tracejit.errors' in graph['tracejit.primitives']


def test_primitives_depend_on_nothing_above_them():
    assert import_graph()['tracejit.primitives'] == {'tracejit.errors'}


@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_every_primitive_has_a_lowering(name):
    entry = lowering.lowering_of(REGISTRY[name])
    assert entry.looped != (entry.emit is not None) or entry.accumulate is not None, name
    if REGISTRY[name].kind != 'source':
        assert entry.dims is not None, f'{name}: no rule for which of its axes are equal'


def test_a_new_elementwise_primitive_needs_no_backend_entry():
    """A registry record and a VJP entry are all it takes to compile a new primitive and its
    gradient."""
    import numpy as np
    import tracejit as tj
    from tracejit import tracing, vjps
    from tracejit.primitives import Primitive, unary
    unary('test_cube', lambda x: x ** 3, '({0} * {0} * {0})')
    try:
        vjps.defvjp('test_cube', lambda ct, out, x: ct * 3.0 * x * x)
        entry = lowering.lowering_of(REGISTRY['test_cube'])
        assert entry is lowering.BY_KIND['elementwise'] and entry.looped

        def cube(x):
            return tracing.bind(REGISTRY['test_cube'], tj.convert_to_tensor(x))
        x = np.linspace(-2, 2, 7)
        np.testing.assert_allclose(tj.function(cube)(x).numpy(), x ** 3, rtol=1e-12)
        grad = tj.function(tj.grad(lambda x: tj.reduce_sum(cube(x))))
        np.testing.assert_allclose(grad(x).numpy(), 3 * x ** 2, rtol=1e-12)
    finally:
        del REGISTRY['test_cube']
    with pytest.raises(KeyError, match='no lowering'):
        lowering.lowering_of(Primitive('test_odd', None, None, 'matmul', 'x', False))
    del REGISTRY['test_odd']

"""Concrete functions and tf.function's tracing model, against TensorFlow's behaviour recorded
in fixtures/concrete.json (made by fixtures/make_concrete.py): get_concrete_function and its
introspection, input_signature, reduce_retracing, tracing counts, returned Python constants and
Variables created on the first call only."""
import json
import os

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

with open(os.path.join(os.path.dirname(__file__), 'fixtures', 'concrete.json'),
          encoding='utf-8') as _f:
    TF = json.load(_f)


def printed(cf, verbose=True):
    text = cf.pretty_printed_signature(verbose)
    return text.split('\nCaptures:')[0] if verbose else text


def scale_function():
    @tj.function
    def scale(x):
        return {'s': x * 2.0}
    return scale


def test_printed_signatures_match_tensorflow():
    cf = scale_function().get_concrete_function(tj.TensorSpec([None, 3], tj.float32, name='inp'))
    assert printed(cf) == TF['scale_printed']
    assert printed(cf, verbose=False) == TF['scale_short']
    assert str(cf.function_type) == TF['scale_short']

    @tj.function
    def pairs(x, pair):
        return (x, [pair[0]]), None
    cf = pairs.get_concrete_function(tj.TensorSpec([2], tj.float64),
                                     (tj.TensorSpec([], tj.int32), 3))
    assert printed(cf) == TF['pairs_printed']
    assert repr(cf.structured_input_signature) == TF['pairs_input_signature']
    assert cf.pretty_printed_signature().endswith('Captures:\n  None')


def test_structured_signatures_outputs_and_graph():
    cf = scale_function().get_concrete_function(tj.TensorSpec([None, 3], tj.float32, name='inp'))
    assert repr(cf.structured_input_signature) == TF['scale_input_signature']
    assert list(cf.structured_outputs['s'].shape) == TF['scale_output_shape']
    assert [t.name for t in cf.outputs] == ['Identity:0']
    assert [(t.name, t.shape) for t in cf.inputs] == [('x:0', (None, 3))]
    ops = cf.graph.get_operations()
    types = [op.type for op in ops]
    assert types[0] == 'Placeholder' and 'Mul' in types and types[-1] == 'Identity'
    mul = cf.graph.get_operation_by_name('Mul')
    assert mul.inputs[0] is cf.inputs[0] and mul.outputs[0].shape == (None, 3)
    assert ops[-1].inputs[0] is mul.outputs[0]
    assert 'mul' in str(cf.graph)          # the IR, printed
    with pytest.raises(KeyError, match='no operation named'):
        cf.graph.get_operation_by_name('MatMul')


def test_captured_variables_show_in_the_graph_and_signature():
    w = tj.Variable([1.0, 2.0], name='w')

    @tj.function
    def step(x):
        w.assign_add(x)
        return w.value()
    cf = step.get_concrete_function(tj.TensorSpec([2]))
    assert cf.variables == (w,)
    types = [op.type for op in cf.graph.get_operations()]
    assert 'ReadVariableOp' in types and 'AssignVariableOp' in types
    assert f"{id(w)}: Variable(shape=(2,), dtype=tj.float32, name='w:0')" in \
        cf.pretty_printed_signature()
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])   # tracing ran nothing


def test_input_signature_refuses_what_tensorflow_refuses():
    @tj.function(input_signature=[tj.TensorSpec([None], tj.int32)])
    def inc(x):
        return x + 1
    bad = {'float': tj.constant([1.0]), 'rank': tj.constant([[1]]), 'scalar': 5}
    for name, value in bad.items():
        kind, message = TF['inc_errors'][name]
        with pytest.raises(TypeError, match=r'Can not cast') as info:
            inc(value)
        assert kind == 'TypeError' and message in str(info.value)
    with pytest.raises(TypeError, match='too many positional arguments'):
        inc(tj.constant([1]), tj.constant([2]))
    assert printed(inc.get_concrete_function()) == TF['inc_printed']
    with tj.config.disabled_jit():     # run eagerly: checked and converted all the same
        assert repr(inc([1, 2])) == repr(tj.constant([2, 3]))
        with pytest.raises(TypeError, match='Can not cast'):
            inc(tj.constant([1.0]))
    assert inc.input_signature == (tj.TensorSpec([None], tj.int32, 'x'),)
    with pytest.raises(TypeError, match='input_signature must hold tj.TensorSpecs'):
        tj.function(lambda x: x, input_signature=[3])
    with pytest.raises(TypeError, match='input_signature has 2 entries'):
        tj.function(lambda x: x, input_signature=[tj.TensorSpec([]), tj.TensorSpec([])])


def test_concrete_function_call_checks_its_arguments():
    cf = scale_function().get_concrete_function(tj.TensorSpec([None, 3], tj.float32))
    with pytest.raises(errors.InvalidArgumentError,
                       match=r'Can not cast TensorSpec\(shape=\(2, 3\), dtype=tj.float64'):
        cf(np.ones((2, 3)))
    with pytest.raises(errors.InvalidArgumentError, match=r'shape=\(2, 4\)'):
        cf(np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        cf()
    with pytest.raises(errors.InvalidArgumentError, match='unknown rank'):
        scale_function().get_concrete_function(tj.TensorSpec(None))


def test_method_input_signature_leaves_self_out():
    class Doubler(tj.Module):
        @tj.function(input_signature=[tj.TensorSpec([None, 2])])
        def __call__(self, x):
            return x * 2.0
    cf = Doubler().__call__.get_concrete_function()
    assert repr(cf.structured_input_signature) == \
        "((TensorSpec(shape=(None, 2), dtype=tj.float32, name='x'),), {})"


@pytest.mark.compiled
def test_none_dimensions_accept_any_size_with_one_signature_and_one_kernel():
    @tj.function(input_signature=[tj.TensorSpec([None], tj.int32)])
    def inc(x):
        return x + 1
    assert [inc(tj.constant([1, 2])).numpy().tolist(), inc([1, 2, 3]).numpy().tolist()] == \
        TF['inc_values']
    assert inc.experimental_get_tracing_count() == TF['inc_count'] == 1
    for n in (5, 8):    # sizes other than 1 share one kernel source: compiled once
        np.testing.assert_array_equal(inc(np.arange(n, dtype=np.int32)).numpy(),
                                      np.arange(n) + 1)
    info = inc.cache_info()
    assert info['compiles'] + info['disk_hits'] <= 1 and info['entries'] == 4

    scale = scale_function()
    cf = scale.get_concrete_function(tj.TensorSpec([None, 3], tj.float32))
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(scale(x)['s'].numpy(), x * 2)
    np.testing.assert_array_equal(cf(x[:2])['s'].numpy(), x[:2] * 2)
    assert scale.experimental_get_tracing_count() == TF['scale_count_after_call']
    # the size get_concrete_function traced at and two probes; 5 runs that IR resized
    assert scale.cache_info()['traces'] == 3

    exact = scale_function()
    cf = exact.get_concrete_function(tj.TensorSpec([2, 3], tj.float32))
    np.testing.assert_array_equal(exact(x[:2])['s'].numpy(), x[:2] * 2)
    assert exact.cache_info()['traces'] == 1 and exact.concrete_functions == [cf]


@pytest.mark.compiled
def test_new_sizes_run_without_python_when_the_ir_does_not_depend_on_them():
    runs = []

    @tj.function(input_signature=[tj.TensorSpec([None, 2])])
    def affine(x):
        runs.append(x.shape)
        return tj.matmul(x, np.float32([[1.0], [2.0]])) + 1.0

    @tj.function(input_signature=[tj.TensorSpec([None])])
    def mean(x):           # 1/size is a constant of its IR: every size is traced
        return tj.reduce_mean(x)
    rng = np.random.default_rng(0)
    for n in (4, 5, 9, 12, 1):
        x = rng.normal(size=(n, 2)).astype(np.float32)
        np.testing.assert_allclose(affine(x).numpy(), x @ np.float32([[1], [2]]) + 1,
                                   rtol=1e-6)
        v = rng.normal(size=n).astype(np.float32)
        np.testing.assert_allclose(mean(v).numpy(), v.astype(np.float64).mean(), rtol=1e-5,
                                   atol=1e-7)
    # the first trace, two probes at sizes 3 and 7, and size 1 (which may trace differently)
    assert [shape[0] for shape in runs] == [4, 3, 7, 1]
    assert affine.experimental_get_tracing_count() == mean.experimental_get_tracing_count() == 1


@pytest.mark.compiled
def test_reduce_retracing_generalises_the_sizes_that_changed():
    @tj.function(reduce_retracing=True)
    def double(x):
        return x * 2

    @tj.function
    def plain(x):
        return x * 2
    for n in (1, 2, 3, 4):
        np.testing.assert_array_equal(double(np.ones((n, 2), np.float32)).numpy(),
                                      np.full((n, 2), 2.0))
    for n in (1, 2, 3):
        plain(np.ones(n, np.float32))
    assert double.experimental_get_tracing_count() == TF['reduce_retracing_count']
    assert double.pretty_printed_concrete_signatures() == TF['reduce_retracing_printed']
    assert plain.experimental_get_tracing_count() == TF['plain_count']


@pytest.mark.compiled
def test_function_semantics_constants_and_variables_as_tensorflow():
    @tj.function
    def constants():
        return 1, 2.0, True
    assert [t.dtype.name for t in constants()] == TF['constant_dtypes']
    assert all(isinstance(t, tj.Tensor) for t in constants())

    class Lazy(tj.Module):
        def __init__(self):
            super().__init__()
            self.v = None

        @tj.function
        def __call__(self, x):
            if self.v is None:
                self.v = tj.Variable(tj.ones_like(x))
            return self.v + x
    lazy = Lazy()
    assert lazy(tj.constant([1.0, 2.0])).numpy().tolist() == TF['lazy_first']
    assert lazy(tj.constant([1.0, 5.0])).numpy().tolist() == [2.0, 6.0]

    @tj.function
    def grows(x, make):
        if make:
            tj.Variable(1.0)
        return x
    grows(tj.constant(1.0), False)
    assert TF['later_variable_error'] == 'ValueError'
    with pytest.raises(ValueError, match='created a Variable on a call other than its first'):
        grows(tj.constant(1.0), True)

"""Misuse audit: the bad inputs users really produce, and the errors they get back.

One table: case id -> setup -> expected exception type -> message regex -> whether the message
must name the user's line (this file). `setup()` returns the misuse as a callable, or a pair
(callable, check) where `check()` runs after the error and asserts that no state changed
(Variables, model weights, optimizer hyperparameters, checkpoint files).

Every case also asserts that the exception is not numba's and that its traceback does not end
inside numba: a misuse is caught in tracejit's Python layer, before any kernel runs.
"""
import os
import tempfile
import traceback

import numpy as np
import pytest

import tracejit as tj
import tracejit.compat.v1 as tf
from tracejit import errors

K = tj.keras
THIS_FILE = os.path.basename(__file__)
LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) for m in (tj, np, traceback)) + (
    os.path.dirname(pytest.__file__),)
X = np.ones((8, 4), np.float32)
Y = np.ones((8, 1), np.float32)


def ones(*shape):
    return tj.ones(list(shape))


def unchanged(*variables):
    """A check that the Variables still hold their values from before the error."""
    before = [np.array(v.numpy()) for v in variables]

    def check():
        for v, old in zip(variables, before):
            np.testing.assert_array_equal(v.numpy(), old)
    return check


def fitted_model(units=3):
    model = K.Sequential([K.layers.Dense(units), K.layers.Dense(1)])
    model.compile(optimizer='sgd', loss='mse')
    model.fit(X, Y, epochs=1, verbose=0)
    return model


def compiled_model():
    model = K.Sequential([K.layers.Dense(3), K.layers.Dense(1)])
    model.compile(optimizer='sgd', loss='mse')
    return model


def model_unchanged(model):
    return unchanged(*model.weights)


# ------------------------------------------------------------------------------ eager ops

def add_shapes():
    return lambda: tj.add(ones(2, 3), ones(4))


def matmul_inner():
    return lambda: tj.matmul(ones(2, 3), ones(4, 5))


def matmul_scalar():
    return lambda: tj.matmul(tj.constant(2.0), ones(2, 2))


def reshape_size():
    return lambda: tj.reshape(ones(6), [4])


def concat_shapes():
    return lambda: tj.concat([ones(2, 3), ones(2, 4)], axis=0)


def constant_object():
    return lambda: tj.constant(np.array([object(), 1], dtype=object))


def add_string():
    return lambda: tj.add(ones(2), 'abc')


def add_none():
    return lambda: tj.add(None, 1.0)


def reduce_axis_range():
    return lambda: tj.reduce_sum(ones(2, 3), axis=5)


def reduce_axis_string():
    return lambda: tj.reduce_sum(ones(2, 3), axis='1')


def reduce_axis_float():
    return lambda: tj.reduce_mean(ones(2, 3), axis=1.5)


def reduce_wrong_kw():
    return lambda: tj.reduce_sum(ones(2), axes=0)


def reduce_max_empty():
    return lambda: tj.reduce_max(tj.constant(np.zeros((0,), np.float32)))


def argmax_empty():
    return lambda: tj.argmax(tj.constant(np.zeros((3, 0), np.float32)), axis=1)


def cast_bad_dtype():
    return lambda: tj.cast(ones(2), 'flaot32')


def gather_out_of_range():
    return lambda: tj.gather(ones(3), [5])


def one_hot_float_indices():
    return lambda: tj.one_hot(tj.constant([0.5, 1.0]), 3)


# ------------------------------------------------------------------------------ Variables

def variable_none():
    return lambda: tj.Variable(None)


def variable_string():
    return lambda: tj.Variable('abc')


def variable_object():
    return lambda: tj.Variable(np.array([None, 1.0]))


def assign_shape():
    v = tj.Variable([1.0, 2.0])
    return lambda: v.assign([1.0, 2.0, 3.0]), unchanged(v)


def assign_dtype():
    v = tj.Variable([1.0, 2.0])
    return lambda: v.assign(tj.constant([1, 2])), unchanged(v)


def assign_string():
    v = tj.Variable([1.0, 2.0])
    return lambda: v.assign('ab'), unchanged(v)


def assign_none():
    v = tj.Variable([1.0, 2.0])
    return lambda: v.assign_add(None), unchanged(v)


# ------------------------------------------------------------------------------ tj.function

def function_python_if():
    @tj.function(autograph=False)   # AutoGraph would make it a tj.cond
    def f(x):
        if x > 0:
            return x
        return -x
    return lambda: f(tj.constant(1.0))


def function_python_while():
    @tj.function(autograph=False)   # AutoGraph would make it a tj.cond
    def f(x):
        while x < 10.0:
            x = x * 2.0
        return x
    return lambda: f(tj.constant(1.0))


def function_len_of_traced():
    @tj.function
    def f(x):
        return int(tj.reduce_sum(x))
    return lambda: f(np.ones(3, np.float32))


def function_variable_on_retrace():
    @tj.function
    def f(x):
        v = tj.Variable(1.0)
        return x * v
    f(tj.constant(1.0))
    return lambda: f(tj.constant([1.0, 2.0]))


def function_debug_nans():
    v = tj.Variable(1.0)

    @tj.function(debug_nans=True)
    def f(x):
        v.assign(tj.log(x))
        return v.value()
    return lambda: f(tj.constant(-1.0)), unchanged(v)


def function_wrong_kw():
    @tj.function
    def f(x):
        return x
    return lambda: f(tj.constant(1.0), y=2)


def function_object_array():
    @tj.function
    def f(x):
        return x + 1.0
    return lambda: f(np.array([None, 1.0]))


def function_string_array():
    @tj.function
    def f(x):
        return x + 1.0
    return lambda: f(np.array(['a', 'b']))


def function_shape_inside():
    v = tj.Variable(np.ones((2, 3), np.float32))

    @tj.function
    def f(x):
        v.assign(tj.matmul(x, x))
    return lambda: f(np.ones((2, 3), np.float32)), unchanged(v)


def function_assign_shape_inside():
    v = tj.Variable(np.ones(3, np.float32))

    @tj.function
    def f(x):
        v.assign(x)
    return lambda: f(np.ones(4, np.float32)), unchanged(v)


# ------------------------------------------------------------------------------ autodiff

def _taped():
    x = tj.Variable(2.0)
    with tj.GradientTape() as tape:
        y = x * x
    return tape, x, y


def tape_used_twice():
    tape, x, y = _taped()
    tape.gradient(y, x)
    return lambda: tape.gradient(y, x)


def tape_unconnected_zeros():
    tape, x, y = _taped()
    return lambda: tape.gradient(y, x, unconnected_gradients='zeros')


def tape_unconnected_none_value():
    tape, x, y = _taped()
    return lambda: tape.gradient(y, x, unconnected_gradients=None)


def jacobian_unconnected_bad():
    tape, x, y = _taped()
    return lambda: tape.jacobian(y, x, unconnected_gradients='ZERO')


def tape_target_none():
    tape, x, _ = _taped()
    return lambda: tape.gradient(None, x)


def tape_source_string():
    tape, _, y = _taped()
    return lambda: tape.gradient(y, 'x')


def grad_nonscalar_output():
    return lambda: tj.grad(lambda t: t * 2.0)(np.ones(3, np.float32))


def grad_argnums_range():
    return lambda: tj.grad(lambda t: t * 2.0, argnums=3)(1.0)


def grad_int_input():
    return lambda: tj.grad(lambda t: t * 2)(3)


def grad_string_input():
    return lambda: tj.grad(lambda t: t * 2.0)('a')


def grad_none_input():
    return lambda: tj.grad(lambda t: t * 2.0)(None)


def grad_has_aux_single():
    return lambda: tj.grad(lambda t: t * 2.0, has_aux=True)(1.0)


def gradients_unconnected_bad():
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [])
    return lambda: tf.gradients(x * x, [x], unconnected_gradients='zeros')


# ------------------------------------------------------------------------------ compat.v1

def v1_unfed_placeholder():
    tf.reset_default_graph()
    p = tf.placeholder(tf.float32, [None], name='inputs')
    sess = tf.Session()
    return lambda: sess.run(p * 2.0)


def v1_uninitialised_variable():
    tf.reset_default_graph()
    v = tf.Variable(1.0, name='weights')
    sess = tf.Session()
    return lambda: sess.run(v)


def v1_closed_session():
    tf.reset_default_graph()
    c = tf.constant(1.0)
    sess = tf.Session()
    sess.close()
    return lambda: sess.run(c)


def v1_feed_wrong_shape():
    tf.reset_default_graph()
    p = tf.placeholder(tf.float32, [None, 2])
    sess = tf.Session()
    return lambda: sess.run(p * 2.0, feed_dict={p: np.ones((3, 3))})


def v1_feed_string():
    tf.reset_default_graph()
    p = tf.placeholder(tf.float32, [2])
    sess = tf.Session()
    return lambda: sess.run(p * 2.0, feed_dict={p: 'ab'})


def v1_feed_none():
    tf.reset_default_graph()
    p = tf.placeholder(tf.float32, [2])
    sess = tf.Session()
    return lambda: sess.run(p * 2.0, feed_dict={p: None})


def v1_fetch_none():
    tf.reset_default_graph()
    sess = tf.Session()
    return lambda: sess.run(None)


def v1_learning_rate_string():
    tf.reset_default_graph()
    tf.Variable(1.0)
    return lambda: tf.train.GradientDescentOptimizer('fast')


def v1_adam_learning_rate_none():
    tf.reset_default_graph()
    return lambda: tf.train.AdamOptimizer(learning_rate=None)


def v1_train_keeps_variable_on_bad_feed():
    tf.reset_default_graph()
    w = tf.Variable(1.0)
    p = tf.placeholder(tf.float32, [None])
    train = tf.train.GradientDescentOptimizer(0.1).minimize(tf.reduce_mean((w * p) ** 2))
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    before = sess.run(w)

    def check():
        assert sess.run(w) == before
    return lambda: sess.run(train, feed_dict={p: np.ones((2, 2))}), check


# ------------------------------------------------------------------------------ keras

def fit_length_mismatch():
    model = compiled_model()
    return lambda: model.fit(X, Y[:5], verbose=0)


def fit_wrong_features():
    model = fitted_model()
    return (lambda: model.fit(np.ones((8, 5), np.float32), Y, verbose=0),
            model_unchanged(model))


def predict_wrong_features():
    model = fitted_model()
    return lambda: model.predict(np.ones((8, 5), np.float32))


def fit_x_none():
    model = compiled_model()
    return lambda: model.fit(None, Y, verbose=0)


def fit_object_array():
    model = compiled_model()
    return lambda: model.fit(np.array([[None] * 4] * 8), Y, verbose=0)


def fit_string_array():
    model = compiled_model()
    return lambda: model.fit(np.array([['a'] * 4] * 8), Y, verbose=0)


def fit_string_x():
    model = compiled_model()
    return lambda: model.fit('data.csv', Y, verbose=0)


def fit_empty():
    model = compiled_model()
    return lambda: model.fit(np.zeros((0, 4), np.float32), np.zeros((0, 1), np.float32),
                             verbose=0)


def fit_nan_x():
    model = fitted_model()
    x = X.copy()
    x[2, 1] = np.nan
    return lambda: model.fit(x, Y, verbose=0), model_unchanged(model)


def fit_uncompiled():
    model = K.Sequential([K.layers.Dense(1)])
    return lambda: model.fit(X, Y, verbose=0)


def fit_wrong_kw():
    model = compiled_model()
    return lambda: model.fit(X, Y, epoch=2, verbose=0)


def fit_batch_size_string():
    model = compiled_model()
    return lambda: model.fit(X, Y, batch_size='32', verbose=0)


def optimizer_lr_string():
    return lambda: K.optimizers.SGD(learning_rate='fast')


def optimizer_lr_numeric_string():
    return lambda: K.optimizers.Adam(learning_rate='0.001')


def optimizer_lr_none():
    return lambda: K.optimizers.RMSprop(learning_rate=None)


def optimizer_lr_list():
    return lambda: K.optimizers.Adagrad(learning_rate=[0.1])


def optimizer_lr_setter_string():
    opt = K.optimizers.SGD(0.1)

    def do():
        opt.learning_rate = 'fast'
    return do, unchanged(opt.learning_rate)


def optimizer_wrong_kw():
    return lambda: K.optimizers.SGD(lr=0.1)


def optimizer_unknown_name():
    model = K.Sequential([K.layers.Dense(1)])
    return lambda: model.compile(optimizer='adamm', loss='mse')


def loss_unknown_name():
    model = K.Sequential([K.layers.Dense(1)])
    return lambda: model.compile(optimizer='sgd', loss='msee')


def apply_gradients_shape():
    v = tj.Variable([1.0, 2.0])
    opt = K.optimizers.SGD(0.1)
    return lambda: opt.apply_gradients([(ones(3), v)]), unchanged(v)


def dense_units_string():
    return lambda: K.layers.Dense('10')


def dense_unknown_activation():
    return lambda: K.layers.Dense(10, activation='rleu')


def dense_wrong_kw():
    return lambda: K.layers.Dense(10, activaton='relu')


def load_weights_mismatch():
    folder = tempfile.mkdtemp()
    source = fitted_model(units=3)
    path = source.save_weights(os.path.join(folder, 'ckpt'))
    with open(path, 'rb') as f:
        saved = f.read()
    target = fitted_model(units=5)
    weights_check = model_unchanged(target)

    def check():
        weights_check()
        with open(path, 'rb') as f:
            assert f.read() == saved
        assert os.listdir(folder) == [os.path.basename(path)]
    return lambda: target.load_weights(os.path.join(folder, 'ckpt')), check


def load_weights_unbuilt():
    folder = tempfile.mkdtemp()
    path = fitted_model().save_weights(os.path.join(folder, 'ckpt'))
    target = K.Sequential([K.layers.Dense(3), K.layers.Dense(1)])
    return lambda: target.load_weights(path)


def load_weights_missing():
    model = fitted_model()
    return (lambda: model.load_weights(os.path.join(tempfile.mkdtemp(), 'nothing')),
            model_unchanged(model))


def debug_nans_inf_argument():
    @tj.function(debug_nans=True)
    def f(x):
        return x * 2.0
    return lambda: f(np.array([1.0, np.inf], np.float32))


def debug_nans_inf_produced():
    v = tj.Variable(np.ones(2, np.float32))

    @tj.function(debug_nans=True)
    def f(x):
        v.assign(tj.exp(x))
        return v.value()
    return lambda: f(np.array([1.0, 1e4], np.float32)), unchanged(v)


def function_missing_argument():
    @tj.function
    def f(x, y):
        return x + y
    return lambda: f(np.ones(2, np.float32))


def function_empty_reduce_max():
    @tj.function
    def f(x):
        return tj.reduce_max(x)
    return lambda: f(np.zeros((0,), np.float32))


def predict_rank1():
    model = fitted_model()
    return lambda: model.predict(np.ones(4, np.float32))


def dense_scalar_input():
    return lambda: K.layers.Dense(2)(tj.constant(1.0))


def optimizer_momentum_string():
    return lambda: K.optimizers.SGD(0.1, momentum='high')


def optimizer_beta_out_of_range():
    return lambda: K.optimizers.Adam(beta_1=1.5)


def reshape_shape_none():
    return lambda: tj.reshape(ones(4), None)


def set_seed_string():
    return lambda: tj.random.set_seed('42')


USER = True   # the message must name this file's line
CASES = [
    # id, setup, exception, message regex, names the user's line
    ('add_incompatible_shapes', add_shapes, errors.ShapeError,
     r'incompatible shapes \(2, 3\) vs \(4,\)', USER),
    ('matmul_inner_dims', matmul_inner, errors.ShapeError,
     r'inner dimensions 3 and 4 differ', USER),
    ('matmul_scalar', matmul_scalar, errors.ShapeError, r'matmul needs tensors of rank >= 1', USER),
    ('reshape_wrong_size', reshape_size, errors.ShapeError,
     r'cannot reshape \(6,\).*to \(4,\)', USER),
    ('concat_wrong_shapes', concat_shapes, errors.ShapeError, r'cannot concatenate shapes', USER),
    ('constant_object_array', constant_object, errors.DTypeError,
     r'constant value has dtype object.*convert it', False),
    ('add_string', add_string, errors.DTypeError,
     r'dtype <U3 .*convert it to a numeric array', False),
    ('add_none', add_none, TypeError, r'operand is None; expected a tensor or number', USER),
    ('reduce_axis_out_of_range', reduce_axis_range, errors.ShapeError,
     r'axis 5 is out of range', USER),
    ('reduce_axis_string', reduce_axis_string, TypeError,
     r"axis must be an int or a list of ints, got '1'", USER),
    ('reduce_axis_float', reduce_axis_float, TypeError, r'axis must be an int .*got 1\.5', USER),
    ('reduce_wrong_keyword', reduce_wrong_kw, TypeError,
     r"unexpected keyword argument 'axes'", False),
    ('reduce_max_empty', reduce_max_empty, errors.InvalidArgumentError,
     r'reduce_max: reduction axis 0 is empty', USER),
    ('argmax_empty_axis', argmax_empty, errors.InvalidArgumentError,
     r'argmax: reduction axis 1 is empty', USER),
    ('cast_unknown_dtype', cast_bad_dtype, TypeError,
     r"'flaot32' is not a dtype; use tj.float32", False),
    ('gather_out_of_range', gather_out_of_range, errors.InvalidArgumentError,
     r'indices must be in \[0, 3\)', USER),
    ('one_hot_float_indices', one_hot_float_indices, errors.DTypeError,
     r'one_hot: indices must be integers.*tj.cast', USER),
    ('variable_none', variable_none, errors.InvalidArgumentError,
     r'tj.Variable needs an initial_value', USER),
    ('variable_string', variable_string, errors.DTypeError, r'initial_value has dtype <U3', False),
    ('variable_object_array', variable_object, errors.DTypeError,
     r'initial_value has dtype object', False),
    ('assign_wrong_shape', assign_shape, errors.ShapeError,
     r'cannot assign a value of shape \(3,\) to Variable', USER),
    ('assign_wrong_dtype', assign_dtype, errors.DTypeError,
     r'cannot assign a int32 value .*cast it with tj.cast', USER),
    ('assign_string', assign_string, errors.DTypeError, r'value has dtype <U2', False),
    ('assign_add_none', assign_none, TypeError, r'is None; expected a tensor or number', USER),
    ('function_python_if', function_python_if, errors.ConcretizationError,
     r'Python bool\(\).*use tj.where', USER),
    ('function_python_while', function_python_while, errors.ConcretizationError, r'tj.cond', USER),
    ('function_int_of_traced', function_len_of_traced, errors.ConcretizationError,
     r'concrete value', USER),
    ('function_variable_on_retrace', function_variable_on_retrace, errors.InvalidArgumentError,
     r'created a Variable on a call other than its first', USER),
    ('function_debug_nans', function_debug_nans, FloatingPointError,
     r'debug_nans: log produced NaN.*Variables were left unchanged', USER),
    ('function_wrong_keyword', function_wrong_kw, TypeError,
     r"unexpected keyword argument 'y'", False),
    ('function_object_array_arg', function_object_array, errors.DTypeError,
     r"argument 'x' has dtype object", False),
    ('function_string_array_arg', function_string_array, errors.DTypeError,
     r"argument 'x' has dtype <U1", False),
    ('function_matmul_shapes', function_shape_inside, errors.ShapeError,
     r'inner dimensions 3 and 2 differ', USER),
    ('function_assign_shape', function_assign_shape_inside, errors.ShapeError,
     r'cannot assign a value of shape \(4,\)', USER),
    ('tape_used_twice', tape_used_twice, RuntimeError,
     r'non-persistent GradientTape.*persistent=True', USER),
    ('tape_unconnected_zeros', tape_unconnected_zeros, errors.InvalidArgumentError,
     r"unconnected_gradients must be 'none' or 'zero', got 'zeros'", USER),
    ('tape_unconnected_none', tape_unconnected_none_value, errors.InvalidArgumentError,
     r'unconnected_gradients must be .*got None', USER),
    ('jacobian_unconnected_bad', jacobian_unconnected_bad, errors.InvalidArgumentError,
     r"unconnected_gradients must be .*'ZERO'", USER),
    ('tape_target_none', tape_target_none, TypeError, r'target is None; pass the tensor', USER),
    ('tape_source_string', tape_source_string, TypeError,
     r'gradient sources must be tensors or Variables, got str', USER),
    ('grad_nonscalar_output', grad_nonscalar_output, TypeError,
     r'scalar floating-point output, got shape \(3,\)', USER),
    ('grad_argnums_out_of_range', grad_argnums_range, errors.InvalidArgumentError,
     r'argnums=3 but the function was called with 1', USER),
    ('grad_int_input', grad_int_input, TypeError,
     r'grad needs floating-point inputs, got int32', USER),
    ('grad_string_input', grad_string_input, errors.DTypeError, r'argument has dtype <U1', False),
    ('grad_none_input', grad_none_input, TypeError,
     r'grad needs floating-point inputs, got None', USER),
    ('grad_has_aux_not_pair', grad_has_aux_single, TypeError,
     r'has_aux=True the function must return a pair', USER),
    ('gradients_unconnected_bad', gradients_unconnected_bad, errors.InvalidArgumentError,
     r"unconnected_gradients must be .*'zeros'", USER),
    ('v1_unfed_placeholder', v1_unfed_placeholder, errors.InvalidArgumentError,
     r"must feed a value for placeholder tensor 'inputs'.*feed_dict", False),
    ('v1_uninitialised_variable', v1_uninitialised_variable, errors.FailedPreconditionError,
     r'uninitialized value weights.*global_variables_initializer', False),
    ('v1_closed_session', v1_closed_session, RuntimeError, r'closed Session', False),
    ('v1_feed_wrong_shape', v1_feed_wrong_shape, errors.InvalidArgumentError,
     r"Cannot feed value of shape \(3, 3\) .*shape '\(\?, 2\)'", False),
    ('v1_feed_string', v1_feed_string, TypeError, r"Cannot feed 'ab' for Tensor", False),
    ('v1_feed_none', v1_feed_none, TypeError, r'Cannot feed None for Tensor .*feed_dict', False),
    ('v1_fetch_none', v1_fetch_none, TypeError, r'Fetch argument None has invalid type', False),
    ('v1_learning_rate_string', v1_learning_rate_string, TypeError,
     r"learning_rate must be a float .*got 'fast'", USER),
    ('v1_adam_learning_rate_none', v1_adam_learning_rate_none, TypeError,
     r'learning_rate must be a float .*got None', USER),
    ('v1_bad_feed_keeps_variable', v1_train_keeps_variable_on_bad_feed, errors.InvalidArgumentError,
     r'Cannot feed value of shape \(2, 2\)', False),
    ('fit_length_mismatch', fit_length_mismatch, ValueError, r'x has 8 samples, y has 5', False),
    ('fit_wrong_feature_count', fit_wrong_features, errors.ShapeError,
     r'expected axis -1 of input shape to have value 4.*\(None, 5\)', False),
    ('predict_wrong_feature_count', predict_wrong_features, errors.ShapeError,
     r'expected axis -1 of input shape to have value 4', False),
    ('fit_x_none', fit_x_none, ValueError, r'x is None; pass a numpy array', False),
    ('fit_object_array', fit_object_array, TypeError,
     r'x must be numeric, got an array of dtype object', False),
    ('fit_string_array', fit_string_array, TypeError, r'x must be numeric.*np.asarray', False),
    ('fit_string_x', fit_string_x, TypeError,
     r'x: only numpy arrays and tensors are supported, got str', False),
    ('fit_empty', fit_empty, ValueError, r'no data: x and y are empty', False),
    ('fit_nan_x', fit_nan_x, ValueError, r'x contains NaN \(first at index \(2, 1\)\)', False),
    ('fit_uncompiled', fit_uncompiled, RuntimeError,
     r'must compile your model before using fit', False),
    ('fit_wrong_keyword', fit_wrong_kw, TypeError, r"unexpected keyword argument 'epoch'", False),
    ('fit_batch_size_string', fit_batch_size_string, ValueError,
     r"batch_size must be a positive integer, got '32'", False),
    ('optimizer_lr_string', optimizer_lr_string, TypeError,
     r"SGD: learning_rate must be a float or a tj.Variable, got 'fast'", USER),
    ('optimizer_lr_numeric_string', optimizer_lr_numeric_string, TypeError,
     r"Adam: learning_rate must be .*got '0.001'", USER),
    ('optimizer_lr_none', optimizer_lr_none, TypeError,
     r'RMSprop: learning_rate must be .*got None', USER),
    ('optimizer_lr_list', optimizer_lr_list, TypeError,
     r'Adagrad: learning_rate must be .*got \[0.1\]', USER),
    ('optimizer_lr_setter_string', optimizer_lr_setter_string, TypeError,
     r"learning_rate must be .*got 'fast'", USER),
    ('optimizer_wrong_keyword', optimizer_wrong_kw, TypeError,
     r"unexpected keyword argument 'lr'", False),
    ('optimizer_unknown_name', optimizer_unknown_name, ValueError,
     r"unknown optimizer 'adamm'; use one of", False),
    ('loss_unknown_name', loss_unknown_name, ValueError, r"unknown loss 'msee'; use one of", False),
    ('apply_gradients_wrong_shape', apply_gradients_shape, errors.ShapeError,
     r'gradient of shape \(3,\) was paired with variable', False),
    ('dense_units_string', dense_units_string, ValueError,
     r"Dense units must be a positive integer, got '10'", False),
    ('dense_unknown_activation', dense_unknown_activation, ValueError,
     r"unknown activation 'rleu'; use one of", False),
    ('dense_wrong_keyword', dense_wrong_kw, TypeError,
     r"unexpected keyword arguments \['activaton'\]", False),
    ('load_weights_mismatch', load_weights_mismatch, ValueError,
     r'weight 0 has shape \(4, 3\) but .* \(4, 5\); nothing was loaded', False),
    ('load_weights_unbuilt', load_weights_unbuilt, ValueError,
     r'(has no weights yet|not yet been built)', False),
    ('load_weights_missing', load_weights_missing, FileNotFoundError,
     r'no weight checkpoint at', False),
    ('debug_nans_inf_argument', debug_nans_inf_argument, FloatingPointError,
     r"debug_nans: argument 'x' \(f32\[2\]\) contains NaN or Inf before the step ran", False),
    ('debug_nans_inf_produced', debug_nans_inf_produced, FloatingPointError,
     r'debug_nans: exp produced NaN or Inf.*Variables were left unchanged', USER),
    ('function_missing_argument', function_missing_argument, TypeError,
     r"Binding inputs to tf.function failed due to `missing a required argument: 'y'`", False),
    ('function_empty_reduce_max', function_empty_reduce_max, errors.InvalidArgumentError,
     r'reduce_max: reduction axis 0 is empty .*not empty', USER),
    ('predict_rank1_input', predict_rank1, errors.ShapeError,
     r'expected axis -1 of input shape to have value 4, but received input with shape '
     r'\(None, 1\)', False),
    ('dense_scalar_input', dense_scalar_input, errors.ShapeError,
     r'expected min_ndim=2, found ndim=0', False),
    ('optimizer_momentum_string', optimizer_momentum_string, TypeError,
     r"SGD: momentum must be a float, got 'high'.*momentum=0.9", USER),
    ('optimizer_beta_out_of_range', optimizer_beta_out_of_range, ValueError,
     r'Adam: beta_1 must be in \[0, 1\], got 1.5', USER),
    ('reshape_shape_none', reshape_shape_none, TypeError,
     r'shape must be an int or a list of ints, got None', USER),
    ('set_seed_string', set_seed_string, TypeError, r'set_seed needs an int, got str', False),
]


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


@pytest.mark.parametrize('setup, exception, message, names_user_line',
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_misuse(setup, exception, message, names_user_line):
    made = setup()
    action, check = made if isinstance(made, tuple) else (made, None)
    with pytest.raises(exception, match=message) as info:
        action()
    error = info.value
    assert not type(error).__module__.startswith('numba'), type(error)
    frames = traceback.extract_tb(error.__traceback__)
    assert f'{os.sep}numba{os.sep}' not in frames[-1].filename, frames[-1]
    # raised at the user's line: the last frame outside tracejit and the libraries is this file
    user = [f for f in frames if not f.filename.startswith(LIBRARY_DIRS)]
    assert user and os.path.basename(user[-1].filename) == THIS_FILE, frames
    if names_user_line:
        assert THIS_FILE in str(error), str(error)
    if check is not None:
        check()


def test_case_ids_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))

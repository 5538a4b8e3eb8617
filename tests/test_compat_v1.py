"""TF1 graphs and sessions (`tracejit.compat.v1`, seed 001), with `import ... as tf` only.

The seed tutorial's cells run as literally as possible (cell numbers in comments; plotting is
left out; the notebook lost its indentation, restored as the prose describes). Their results are
checked against numpy implementations of the same algorithms: x^2 by gradient descent and by
TF1's Adam, and the hospital-visits mini-batch regression (same data, init and batch order).
Then: TF's op names, nested fetches, per-session Variables, every error case, and that a fetch
set is compiled once per feed signature (a new batch size costs a trace, not a compile).
"""
import collections
import math

import numpy as np
import pytest

import tracejit.compat.v1 as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()


def op_names(graph):
    return [op.name for op in graph.get_operations()]


def iter_lines(out):
    return [line for line in out.splitlines() if line.startswith('Iter ')]


# ------------------------------------------------------------------------------- numpy references

def numpy_adam_x_squared(x, learning_rate, steps, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """TF1's Adam on x^2: the value of x before each step."""
    m = v = 0.0
    beta1_power, beta2_power = beta1, beta2
    xs = []
    for _ in range(steps):
        xs.append(x)
        g = 2 * x
        lr_t = learning_rate * math.sqrt(1 - beta2_power) / (1 - beta1_power)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        x = x - lr_t * m / (math.sqrt(v) + epsilon)
        beta1_power, beta2_power = beta1_power * beta1, beta2_power * beta2
    return np.array(xs)


def numpy_minibatch_regression(X, y, steps, batch_size=100, learning_rate=0.0005):
    """The seed's model and batch order in float64 (data rounded to float32 as fed)."""
    X = np.asarray(X, np.float32).astype(np.float64)
    y = np.asarray(y, np.float32).astype(np.float64)
    m = b = 0.0
    batches = len(X) // batch_size
    for i in range(steps):
        k = (i % batches) * batch_size
        err = X[k:k + batch_size] * m + b - y[k:k + batch_size]
        m, b = (m - learning_rate * np.mean(2 * err * X[k:k + batch_size]),
                b - learning_rate * np.mean(2 * err))
    return m, b


# ------------------------------------------------------------------------------- seed 001

def test_seed001_graph_inspection():
    # In [3]-[4]
    g = tf.get_default_graph()
    assert g.get_operations() == []
    # In [5]
    tf.constant(3.14)
    assert op_names(g) == ['Const']
    # In [6]
    const_operation = g.get_operations()[0]
    assert (len(const_operation.inputs), len(const_operation.outputs)) == (0, 1)
    # In [7]
    const_tensor = const_operation.outputs[0]
    assert repr(const_tensor) == "<tf.Tensor 'Const:0' shape=() dtype=float32>"
    assert const_tensor.shape == () and const_tensor.op is const_operation
    # In [8]-[9]
    another_const_tensor = tf.constant(1.414)
    assert another_const_tensor.name == 'Const_1:0'
    assert op_names(g) == ['Const', 'Const_1']
    # In [10]-[12]
    sum_tensor = tf.add(const_tensor, another_const_tensor)
    assert sum_tensor.name == 'Add:0'
    assert [op.type for op in g.get_operations()] == ['Const', 'Const', 'Add']
    add_op = g.get_operations()[2]
    assert (len(add_op.inputs), len(add_op.outputs)) == (2, 1)
    assert add_op.inputs == (const_tensor, another_const_tensor)
    assert add_op.outputs[0] is sum_tensor and sum_tensor.graph is g
    assert repr(add_op) == "<tf.Operation 'Add' type=Add>"


def test_seed001_session_run_and_nested_fetches():
    g = tf.get_default_graph()
    const_tensor = tf.constant(3.14)
    another_const_tensor = tf.constant(1.414)
    sum_tensor = tf.add(const_tensor, another_const_tensor)
    # In [13]
    config = tf.ConfigProto()
    config.gpu_options.allow_growth = True
    sess = tf.Session(config=config)
    # In [14]
    assert sess.graph == g
    # In [15]
    out = sess.run(sum_tensor), sess.run(const_tensor), sess.run(another_const_tensor)
    assert out == pytest.approx((4.554, 3.14, 1.414))
    assert all(isinstance(v, np.float32) for v in out)
    # In [16]
    assert sess.run([sum_tensor, const_tensor, another_const_tensor]) == pytest.approx(
        [4.554, 3.14, 1.414])
    # In [17]
    fetched = sess.run({'a': const_tensor, 'b': another_const_tensor,
                        '[a,b,a+b]': [const_tensor, another_const_tensor, sum_tensor]})
    assert list(fetched) == ['a', 'b', '[a,b,a+b]']   # the caller's key order, as TF
    assert fetched['[a,b,a+b]'] == pytest.approx([3.14, 1.414, 4.554])
    # In [18]
    sess.close()


def test_seed001_placeholders(capsys):
    g = tf.get_default_graph()
    config = tf.ConfigProto()
    # In [19]-[21]
    a = tf.placeholder(tf.float32)
    assert repr(a) == "<tf.Tensor 'Placeholder:0' shape=<unknown> dtype=float32>"
    b = tf.placeholder(tf.float32)
    flexible_sum_tensor = tf.add(a, b)
    assert op_names(g) == ['Placeholder', 'Placeholder_1', 'Add']
    # In [22]-[25]
    sess = tf.Session(config=config)
    assert sess.run(flexible_sum_tensor, feed_dict={a: 1., b: 2.}) == 3.0
    assert sess.run(flexible_sum_tensor, feed_dict={a: [1.], b: [2.]}).tolist() == [3.0]
    assert sess.run(flexible_sum_tensor, feed_dict={a: [[1., 2.], [3., 4.]],
                                                    b: [[5., 6.], [7., 8.]]}).tolist() == \
        [[6.0, 8.0], [10.0, 12.0]]
    sess.close()
    # In [26]-[29]
    distance_from_origin = tf.sqrt((a * a) + (b * b))
    assert op_names(g)[3:] == ['mul', 'mul_1', 'add_1', 'Sqrt']   # names are case-blind
    assert distance_from_origin.name == 'Sqrt:0'
    sess = tf.Session(config=config)
    assert sess.run(distance_from_origin, feed_dict={a: 3., b: 4.}) == 5.0
    sess.close()
    # In [30]
    with tf.Session(config=config) as sess:
        print(sess.run(distance_from_origin, feed_dict={a: 9., b: 12.}))
    assert capsys.readouterr().out == '15.0\n'
    # placeholder values do not persist between runs
    with tf.Session(config=config) as sess:
        sess.run(distance_from_origin, feed_dict={a: 3., b: 4.})
        with pytest.raises(tf.errors.InvalidArgumentError, match="placeholder tensor "
                           "'Placeholder' with dtype float32"):
            sess.run(distance_from_origin)


def test_seed001_reset_default_graph():
    g = tf.get_default_graph()
    tf.add(tf.placeholder(tf.float32), tf.placeholder(tf.float32))
    # In [31]-[32]
    tf.reset_default_graph()
    assert op_names(g) == ['Placeholder', 'Placeholder_1', 'Add']
    g = tf.get_default_graph()
    assert g.get_operations() == []


def test_seed001_variables_live_in_sessions():
    g = tf.get_default_graph()
    config = tf.ConfigProto()
    # In [33]-[34]
    x = tf.Variable(42)
    summary = [(op, "{} inputs and {} output".format(len(op.inputs), len(op.outputs)))
               for op in g.get_operations()]
    assert [(op.name, op.type, text) for op, text in summary] == [
        ('Variable/initial_value', 'Const', '0 inputs and 1 output'),
        ('Variable', 'VariableV2', '0 inputs and 1 output'),
        ('Variable/Assign', 'Assign', '2 inputs and 1 output'),
        ('Variable/read', 'Identity', '1 inputs and 1 output')]
    assert x.name == 'Variable:0' and x.dtype == tf.int32 and x.shape == ()
    # In [35]-[37]
    sess = tf.Session(config=config)
    sess2 = tf.Session(config=config)
    with pytest.raises(tf.errors.FailedPreconditionError,
                       match='Attempting to use uninitialized value Variable'):
        sess.run(x)
    # In [38]-[39]
    assert sess.run(g.get_operations()[2]) is None
    assert sess.run(x) == 42
    # In [40]-[41]
    with pytest.raises(tf.errors.FailedPreconditionError,
                       match='Attempting to use uninitialized value Variable'):
        sess2.run(x)
    assert (sess2.run(x.initializer), sess2.run(x)) == (None, 42)
    assert x.initializer is g.get_operations()[2]
    # In [42]
    sess.close()
    sess2.close()


def test_seed001_gradients():
    g = tf.get_default_graph()
    config = tf.ConfigProto()
    # In [44]
    a = tf.constant(5, name='a')
    b = tf.constant(7, name='b')
    eqn = a + 2 * b
    assert op_names(g) == ['a', 'b', 'mul/x', 'mul', 'add']
    # In [45]-[47]
    grad = tf.gradients(eqn, b)
    assert len(g.get_operations()) > 5
    assert isinstance(grad, list) and len(grad) == 1
    sess = tf.Session(config=config)
    assert sess.run(grad) == [2]
    # In [48]
    gradient_wrt_both = tf.gradients(eqn, [a, b])
    assert sess.run(gradient_wrt_both) == [1, 2]
    # In [49]-[50]
    eqn2 = a * b + b
    gradient_of_eqn2 = tf.gradients(eqn2, [a, b])
    assert sess.run(gradient_of_eqn2) == [7, 6]
    # In [51]
    gradient_with_two_ys = tf.gradients([eqn, eqn2], [a, b])
    assert sess.run(gradient_with_two_ys) == [8, 8]
    # In [52]
    sess.close()
    # unconnected: None, as in TF1
    assert tf.gradients(a * 2, [a, b])[1] is None


def check_x_squared_log(out, derivative_key):
    """Every tenth iteration of x <- x - 0.1 * 2x from 5: x = 5 * 0.8^i (fetched before the
    step), loss = x^2, and the assign's output (the new x) = 5 * 0.8^(i+1)."""
    lines = iter_lines(out)
    assert [int(line.split(':')[0][5:]) for line in lines] == list(range(0, 100, 10)) + [99]
    for line in lines:
        i = int(line.split(':')[0][5:])
        fetched = eval(line.split(': ', 1)[1], {'np': np})  # the printed dict
        x = 5 * 0.8 ** i
        assert fetched['x'] == pytest.approx(x, rel=1e-5)
        assert fetched['loss'] == pytest.approx(x * x, rel=1e-5)
        if derivative_key == 'derivative':
            assert fetched['derivative'] == pytest.approx(x * 0.8, rel=1e-5)
        else:
            assert fetched[derivative_key] is None


def test_seed001_x_squared_by_hand_with_gradients_and_optimizer(capsys):
    config = tf.ConfigProto()
    # In [53]-[57]
    tf.reset_default_graph()
    g = tf.get_default_graph()
    x = tf.Variable(5.0)
    loss = x * x
    assert op_names(g)[-1] == 'mul'
    dloss_dx = 2. * x
    step_size = 0.1
    new_x_value = x - dloss_dx * step_size
    assign_new_x = tf.assign(x, new_x_value)
    with tf.Session(config=config) as sess:
        # Initialize x:
        sess.run(x.initializer)
        # We will fetch the following tensors each iteration
        to_fetch = {'x': x, 'loss': loss, 'derivative': assign_new_x}
        for i in range(100):
            fetched = sess.run(to_fetch)
            # every tenth step, print our progress
            if i % 10 == 0 or i+1==100:
                print("Iter {}: {}".format(i, fetched))
    check_x_squared_log(capsys.readouterr().out, 'derivative')

    # In [58]-[59]
    tf.reset_default_graph()
    g = tf.get_default_graph()
    x = tf.Variable(5.0)
    loss = x * x
    dloss_dx = tf.gradients(loss, x)[0]
    new_x_value = x - dloss_dx * step_size
    assign_new_x = tf.assign(x, new_x_value)
    with tf.Session(config=config) as sess:
        sess.run(x.initializer)
        to_fetch = {'x': x, 'loss': loss, 'derivative': assign_new_x}
        for i in range(100):
            fetched = sess.run(to_fetch)
            if i % 10 == 0 or i+1==100:
                print("Iter {}: {}".format(i, fetched))
    check_x_squared_log(capsys.readouterr().out, 'derivative')

    # In [60]-[61]
    tf.reset_default_graph()
    g = tf.get_default_graph()
    x = tf.Variable(5.0)
    loss = x * x
    optimizer = tf.train.GradientDescentOptimizer(learning_rate=0.1)
    minimize_loss = optimizer.minimize(loss)
    assert isinstance(minimize_loss, tf.Operation) and minimize_loss.name == 'GradientDescent'
    with tf.Session(config=config) as sess:
        sess.run(x.initializer)
        to_fetch = {'x': x, 'loss': loss, 'train_op': minimize_loss}
        for i in range(100):
            fetched = sess.run(to_fetch)
            if i % 10 == 0 or i+1==100:
                print("Iter {}: {}".format(i, fetched))
    check_x_squared_log(capsys.readouterr().out, 'train_op')


def test_seed001_adam(capsys):
    config = tf.ConfigProto()
    g = tf.get_default_graph()
    x = tf.Variable(5.0)
    loss = x * x
    tf.train.GradientDescentOptimizer(learning_rate=0.1).minimize(loss)
    # In [62]
    adam_optimizer = tf.train.AdamOptimizer(learning_rate=0.1)
    minimize_loss = adam_optimizer.minimize(loss)
    variables = [op.name for op in g.get_operations() if op.type == 'VariableV2']
    assert variables == ['Variable', 'beta1_power', 'beta2_power', 'Variable/Adam',
                         'Variable/Adam_1']
    assert tf.trainable_variables() == [x]
    assert len(tf.global_variables()) == 5
    # In [63]-[64]
    initialize_all = tf.global_variables_initializer()
    with tf.Session(config=config) as sess:
        # Initialize ALL variables
        sess.run(initialize_all)
        # We will fetch the following tensors each iteration
        to_fetch = {'x': x, 'loss': loss, 'train_op': minimize_loss}
        for i in range(100):
            fetched = sess.run(to_fetch)
            # every tenth step, print our progress
            if i % 10 == 0 or i+1==100:
                print("Iter {}: {}".format(i, fetched))
    expected = numpy_adam_x_squared(5.0, 0.1, 100)
    lines = iter_lines(capsys.readouterr().out)
    assert len(lines) == 11
    for line in lines:
        i = int(line.split(':')[0][5:])
        fetched = eval(line.split(': ', 1)[1], {'np': np})
        assert fetched['x'] == pytest.approx(expected[i], rel=1e-4, abs=1e-4)   # float32
        assert fetched['loss'] == pytest.approx(expected[i] ** 2, rel=2e-4, abs=1e-5)
    assert expected[-1] < 0   # Adam overshoots the minimum, as the tutorial says


def test_seed001_hospital_visits(capsys):
    np.random.seed(1)  # the seed draws unseeded data; fixed here so the run is reproducible
    config = tf.ConfigProto()
    # In [65]-[66] (plotting left out)
    temps = np.random.normal(55, 20, 1000)
    random_noise = np.random.normal(0, 100, 1000)
    hosp_visits = 1000 - 5 * temps + random_noise
    normalized_temps = (temps - np.mean(temps)) / np.std(temps)
    # In [67]
    train_X, train_y = normalized_temps[:800], hosp_visits[:800]
    valid_X, valid_y = normalized_temps[800:900], hosp_visits[800:900]
    test_X, test_y = normalized_temps[900:], hosp_visits[900:]

    # In [68]
    def batch_generator(X, y, batch_size):
        total_batches = len(X) // batch_size
        current_batch = 0
        while True:
            start = batch_size * current_batch
            end = start + batch_size
            yield (X[start:end], y[start:end])
            current_batch = (current_batch + 1) % total_batches

    training_generator = batch_generator(train_X, train_y, batch_size=100)
    # In [69]
    tf.reset_default_graph()
    g = tf.get_default_graph()
    # In [70]
    X = tf.placeholder(tf.float32)
    y = tf.placeholder(tf.float32)
    m = tf.Variable(0.)
    b = tf.Variable(0.)
    predicted_y = X * m + b
    # In [71]
    avg_loss = tf.reduce_mean(tf.squared_difference(predicted_y, y))
    # In [72]
    train_one_step = tf.train.GradientDescentOptimizer(learning_rate=0.0005).minimize(avg_loss)
    # In [73]
    init_all_vars = tf.global_variables_initializer()
    assert op_names(g)[:2] == ['Placeholder', 'Placeholder_1'] and init_all_vars.name == 'init'
    # In [74]
    with tf.Session(config=config) as sess:
        sess.run(init_all_vars)
        for i in range(5000):
            X_batch, y_batch = next(training_generator)
            feed_dict = {X: X_batch, y: y_batch}
            _, loss, m_pred, b_pred = sess.run([train_one_step, avg_loss, m, b],
                                               feed_dict=feed_dict)
            if i % 500 == 0:
                validation_feed_dict = {X: valid_X, y: valid_y}
                valid_loss = sess.run(avg_loss, feed_dict=validation_feed_dict)
                print("Iter {}: training loss = {}, validation loss = {}, m={}, b={}".format(
                    i, loss, valid_loss, m_pred, b_pred))
        test_feed_dict = {X: test_X, y: test_y}
        m_pred, b_pred, loss = sess.run([m, b, avg_loss], test_feed_dict)
        print("m: {}, b: {}, test loss: {}".format(m_pred, b_pred, loss))

    out = capsys.readouterr().out
    assert len(iter_lines(out)) == 10 and out.startswith('Iter 0: training loss = ')
    m_ref, b_ref = numpy_minibatch_regression(train_X, train_y, 5000)
    assert m_pred == pytest.approx(m_ref, rel=1e-5)
    assert b_pred == pytest.approx(b_ref, rel=1e-5)
    # "a slope of -100 ... a y-intercept of 729": about 5 visits per degree, noise sd 100
    assert -130 < m_pred < -70 and 650 < b_pred < 800
    test_mse = np.mean((np.float32(m_pred) * test_X + b_pred - test_y) ** 2)
    assert loss == pytest.approx(test_mse, rel=1e-4)
    assert out.splitlines()[-1] == f'm: {m_pred}, b: {b_pred}, test loss: {loss}'


# ------------------------------------------------------------------------------- graphs

def test_op_names_types_and_scopes():
    g = tf.get_default_graph()
    a = tf.placeholder(tf.float32, shape=[None, 3], name='a')
    w = tf.constant(np.ones((3, 2), np.float32), name='w')
    tf.constant(1.0, name='w')
    outs = [a + 1, a - 1, a * 2, a / 2, -a, tf.add(a, 2), tf.multiply(a, a), tf.sqrt(a),
            tf.square(a), tf.reduce_mean(a), tf.reduce_sum(a, axis=1),
            tf.squared_difference(a, 1.0), tf.matmul(a, w), tf.subtract(a, a)]
    names = [t.op.name for t in outs]
    assert names == ['add', 'sub', 'mul', 'truediv', 'Neg', 'Add_1', 'Mul_1', 'Sqrt', 'Square',
                     'Mean', 'Sum', 'SquaredDifference', 'MatMul', 'Sub_1']   # case-blind
    assert [t.op.type for t in outs][:5] == ['Add', 'Sub', 'Mul', 'RealDiv', 'Neg']
    assert 'w_1' in op_names(g) and 'Add_1/y' in op_names(g) and 'add/y' in op_names(g)
    assert g.get_operation_by_name('Add_1/y').outputs[0].dtype == tf.float32
    with g.name_scope('layer'):
        inner = tf.identity(a, name='out')
    with g.name_scope('layer'):
        inner_1 = tf.identity(a)
    assert (inner.name, inner_1.name) == ('layer/out:0', 'layer_1/Identity:0')
    assert g.get_tensor_by_name('MatMul:0') is outs[12]
    assert outs[12].op.inputs == (a, w) and w.consumers() == [outs[12].op]
    shapes = [str(t.shape) for t in (a, outs[9], outs[10], outs[12])]
    assert shapes == ['(?, 3)', '()', '(?,)', '(?, 2)']
    assert outs[12].shape.as_list() == [None, 2] and outs[12].get_shape().ndims == 2
    with pytest.raises(KeyError, match="The operation, 'nope', does not exist"):
        g.get_tensor_by_name('nope:0')


def test_graphs_are_separate_and_as_default():
    g1 = tf.Graph()
    with g1.as_default():
        c = tf.constant(1.0)
        assert tf.get_default_graph() is g1
    assert c.graph is g1 and tf.get_default_graph() is not g1
    assert tf.get_default_graph().get_operations() == []
    with pytest.raises(ValueError, match='must be from the same graph'):
        c + tf.constant(2.0)
    with tf.Session(graph=g1) as sess:
        assert sess.run(c * 3) == 3.0
        assert (c * 4).eval() == 4.0   # the session is the default one inside `with`
    with tf.Session() as sess, pytest.raises(ValueError, match='not an element of this graph'):
        sess.run(c)
    with pytest.raises(ValueError, match='No default session'):
        c.eval()


def test_nested_fetches():
    Pair = collections.namedtuple('Pair', 'first second')
    x = tf.placeholder(tf.float32, shape=[2])
    v = tf.Variable([1.0, 2.0], name='v')
    total = tf.reduce_sum(x * v)
    double = v.assign(v * 2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out = sess.run({'pair': Pair(total, [v, (x, 'Sum:0')]), 'op': double.op, 'v': v},
                       {x: [3.0, 4.0]})
        assert list(out) == ['pair', 'op', 'v'] and out['op'] is None
        assert isinstance(out['pair'], Pair) and out['pair'].first == 11.0
        assert out['pair'].second[0].tolist() == [1.0, 2.0]   # reads see the run's start value
        assert out['pair'].second[1][0].tolist() == [3.0, 4.0]
        assert out['pair'].second[1][1] == 11.0
        assert sess.run(v).tolist() == [2.0, 4.0]
        assert sess.run((total, total), {x: [1.0, 1.0]}) == (6.0, 6.0)
        assert sess.run(['Sum:0'], {'Placeholder:0': [1.0, 0.0]}) == [2.0]
        assert sess.run('init') is None   # back to [1, 2]
        assert sess.run([double, v]) == [pytest.approx([2.0, 4.0]), pytest.approx([1.0, 2.0])]


def test_variables_live_per_session():
    w = tf.Variable(tf.zeros([3]), name='W')
    step = tf.assign_add(w, tf.ones([3]))
    counter = tf.Variable(0, trainable=False, name='counter')
    bump = counter.assign_add(1)
    assert tf.trainable_variables() == [w] and tf.global_variables() == [w, counter]
    assert repr(w) == "<tf.Variable 'W:0' shape=(3,) dtype=float32_ref>"
    s1, s2 = tf.Session(), tf.Session()
    s1.run(tf.global_variables_initializer())
    s2.run(tf.variables_initializer([w]))
    for _ in range(3):
        s1.run([step, bump])
    s2.run(step)
    assert s1.run(w).tolist() == [3.0] * 3 and s1.run(counter) == 3
    assert s2.run(w).tolist() == [1.0] * 3
    with pytest.raises(tf.errors.FailedPreconditionError,
                       match='uninitialized value counter'):
        s2.run(bump)
    s1.run(w.initializer)
    assert s1.run(w).tolist() == [0.0] * 3 and s1.run(counter) == 3
    s1.close()
    s2.close()


def test_errors():
    x = tf.placeholder(tf.float32, shape=[None, 3], name='x')
    W = tf.Variable(np.ones((3, 1), np.float32), name='W')
    y = tf.matmul(x, W)
    sess = tf.Session()
    with pytest.raises(tf.errors.FailedPreconditionError,
                       match='Attempting to use uninitialized value W'):
        sess.run(y, {x: np.ones((2, 3))})
    sess.run(W.initializer)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"You must feed a value for placeholder tensor 'x' with dtype "
                             r"float32 and shape \[\?,3\]"):
        sess.run(y)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Cannot feed value of shape \(2, 4\) for Tensor 'x:0', which has "
                             r"shape '\(\?, 3\)'"):
        sess.run(y, {x: np.ones((2, 4))})
    with pytest.raises(ValueError, match='Cannot feed value of shape'):   # TF raises ValueError
        sess.run(y, {x: np.ones(3)})
    with pytest.raises(TypeError, match='Fetch argument None'):
        sess.run(None)
    with pytest.raises(tf.errors.ShapeError, match='test_compat_v1.py'):   # the user's line
        tf.matmul(x, tf.ones([2, 2]))
    with pytest.raises(TypeError, match='Python `bool`'):
        bool(y)
    assert sess.run(y, {x: np.ones((2, 3))}).tolist() == [[3.0], [3.0]]
    sess.close()
    with pytest.raises(RuntimeError, match='closed Session'):
        sess.run(y, {x: np.ones((2, 3))})
    with pytest.raises(ValueError, match='shape specified'):
        tf.Variable(x)


def test_compiled_once_per_fetch_set_and_feed_signature():
    X = tf.placeholder(tf.float32)
    y = tf.placeholder(tf.float32)
    m = tf.Variable(0.)
    b = tf.Variable(0.)
    avg_loss = tf.reduce_mean(tf.squared_difference(X * m + b, y))
    train = tf.train.GradientDescentOptimizer(learning_rate=0.01).minimize(avg_loss)
    rng = np.random.RandomState(0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(30):
            xs = rng.randn(100)
            sess.run([train, avg_loss, m, b], {X: xs, y: 3 * xs + 1})
        info = sess.cache_info()
        assert (info['plans'], info['traces']) == (2, 2)   # initializer + training step
        kernels = info['compiles'] + info['disk_hits']
        for n in (37, 37, 500):   # new batch sizes: a trace each, the same kernel
            xs = rng.randn(n)
            sess.run([train, avg_loss, m, b], {X: xs, y: 3 * xs + 1})
        info = sess.cache_info()
        assert (info['plans'], info['traces']) == (2, 4)
        assert info['compiles'] + info['disk_hits'] == kernels
        sess.run(avg_loss, {X: xs, y: xs})   # another fetch set: another plan
        assert sess.cache_info()['plans'] == 3


def test_momentum_matches_numpy():
    target = np.array([1.0, -2.0, 0.5], np.float32)
    for nesterov in (False, True):
        tf.reset_default_graph()
        w = tf.Variable(tf.zeros([3]))
        loss = tf.reduce_sum(tf.square(w - target))
        opt = tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=nesterov)
        train = opt.minimize(loss)
        assert opt.get_slot(w, 'momentum').name == 'Variable/Momentum:0'
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(20):
                sess.run(train)
            got = sess.run(w)
        ref, accum = np.zeros(3), np.zeros(3)
        for _ in range(20):
            g = 2 * (ref - target)
            accum = 0.9 * accum + g
            ref = ref - 0.05 * (g + 0.9 * accum if nesterov else accum)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_unknown_shapes_are_checked_at_run_time():
    u = tf.placeholder(tf.float32)   # unknown rank: a matmul can only be checked when fed
    w = tf.constant(np.eye(3, dtype=np.float32))
    out = tf.matmul(u, w)
    assert str(out.shape) == '<unknown>' and out.dtype == tf.float32
    with tf.Session() as sess:
        assert sess.run(out, {u: np.ones((2, 3))}).shape == (2, 3)
        with pytest.raises(tf.errors.ShapeError, match='matmul'):
            sess.run(out, {u: np.ones((2, 2))})


def test_compute_and_apply_gradients_grad_ys_and_random_ops():
    tf.set_random_seed(7)
    w = tf.Variable(tf.random_normal([4], stddev=0.5), name='w')
    noise = tf.random_uniform([4])
    loss = tf.reduce_sum(tf.square(w))
    step = tf.Variable(0, trainable=False, name='global_step')
    opt = tf.train.GradientDescentOptimizer(0.25)
    grads_and_vars = opt.compute_gradients(loss)
    assert [v for _, v in grads_and_vars] == [w]
    clipped = [(tf.clip_by_value(g, -0.1, 0.1), v) for g, v in grads_and_vars]
    train = opt.apply_gradients(clipped, global_step=step)
    scaled = tf.gradients(tf.square(w), w, grad_ys=tf.constant([1.0, 0.0, 2.0, 0.0]))[0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        w0 = sess.run(w)
        assert 0 < np.abs(w0).max() < 3
        np.testing.assert_allclose(sess.run(scaled), 2 * w0 * [1, 0, 2, 0], rtol=1e-6)
        first, second = sess.run(noise), sess.run(noise)   # a new draw on every run
        assert not np.array_equal(first, second) and 0 <= first.min() and first.max() < 1
        sess.run(train)
        np.testing.assert_allclose(sess.run(w), w0 - 0.25 * np.clip(2 * w0, -0.1, 0.1),
                                   rtol=1e-6)
        assert sess.run(step) == 1

"""The seed tutorials' Keras code, run with `import tracejit as tf` and nothing else changed.

Seed 003: the custom dense layer (build, add_weight, sigmoid(xW + b)), Sequential with a Dense
layer, a subclassed Model and the IdentityModel whose call() takes a Python flag. Seed 004: the
Keras model reused by the hand-written training loop, save_weights("keras_checkpoint"), then
compile(SGD, mean_squared_error) and fit(epochs=10, batch_size=1000) with its per-epoch log.

Changes to the seed text: the imports (`from tensorflow.keras ...` -> `from tracejit.keras ...`,
placed at module level), seed 004's notebook globals turned into closures of one test, and the
obvious typos (`class OutDenseLayer(Tf.keras...)` for OurDenseLayer, `tf.constnat`).
`mdl.test_custom_dense_layer_output` compares against TensorFlow's own random numbers, so it is
replaced by a check of the same shape and formula.
"""
import os
import re

import numpy as np
import pytest

import tracejit as tf
from test_seeds import numpy_linear_fit, seed004_data


# ------------------------------------------------------------------------------- seed 003

class OurDenseLayer(tf.keras.layers.Layer):
    def __init__(self, n_output_nodes):
        super(OurDenseLayer, self).__init__()
        self.n_output_nodes = n_output_nodes

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.W = self.add_weight("weight", shape=[d, self.n_output_nodes])
        self.b = self.add_weight("bias", shape=[1, self.n_output_nodes])

    def call(self, x):
        z = tf.add(tf.matmul(x, self.W), self.b)
        y = tf.sigmoid(z)
        return y


def run_custom_dense_layer():
    # layer parameters are initialized randomly
    # seed it to validation
    tf.random.set_seed(1)
    layer = OurDenseLayer(3)
    layer.build((1, 2))
    x_input = tf.constant([[1, 2.]], shape=(1, 2))
    y = layer.call(x_input)
    print(y.numpy())
    return layer, y


def test_seed003_custom_dense_layer(capsys):
    layer, y = run_custom_dense_layer()
    W, b = layer.W.numpy(), layer.b.numpy()
    assert y.shape == (1, 3) and W.shape == (2, 3) and b.shape == (1, 3)
    np.testing.assert_allclose(y.numpy(), 1 / (1 + np.exp(-(np.array([[1, 2.]]) @ W + b))),
                               rtol=1e-6)
    assert np.abs(W).max() <= np.sqrt(6 / 5) and np.abs(b).max() <= np.sqrt(6 / 4)  # glorot
    assert layer.built and layer.weights == [layer.W, layer.b]
    assert capsys.readouterr().out.startswith('[[')
    again, y_again = run_custom_dense_layer()              # set_seed makes it reproducible
    assert np.array_equal(y_again.numpy(), y.numpy())


def test_seed003_sequential(capsys):
    from tracejit.keras import Sequential
    from tracejit.keras.layers import Dense  # noqa: F401 (the seed imports it)
    n_output_nodes = 3
    model = Sequential()
    dense_layer = tf.keras.layers.Dense(n_output_nodes, activation='sigmoid')
    model.add(dense_layer)
    x_input = tf.constant([[1, 2.]], shape=(1, 2))
    model_output = model(x_input).numpy()
    print(model_output)

    kernel, bias = dense_layer.kernel.numpy(), dense_layer.bias.numpy()
    np.testing.assert_allclose(model_output, 1 / (1 + np.exp(-(np.array([[1, 2.]]) @ kernel
                                                                + bias))), rtol=1e-6)
    assert model.layers == [dense_layer] and model.count_params() == 9
    assert capsys.readouterr().out.startswith('[[')


from tracejit.keras import Model  # noqa: E402,F401 (the seed's imports, as it places them)
from tracejit.keras.layers import Dense  # noqa: E402


class SubclassModel(tf.keras.Model):
    def __init__(self, n_output_nodes):
        super(SubclassModel, self).__init__()
        self.dense_layer = Dense(n_output_nodes, activation='sigmoid')

    def call(self, inputs):
        return self.dense_layer(inputs)


def test_seed003_subclassed_model(capsys):
    n_output_nodes = 3
    model = SubclassModel(n_output_nodes)
    x_input = tf.constant([1, 2.], shape=(1, 2))
    print(model.call(x_input))
    out = capsys.readouterr().out
    assert out.startswith('tj.Tensor([[') and 'shape=(1, 3)' in out
    assert model.trainable_variables == [model.dense_layer.kernel, model.dense_layer.bias]


class IdentityModel(tf.keras.Model):
    def __init__(self, n_output_nodes):
        super(IdentityModel, self) .__init__()
        self.dense_layer = Dense(n_output_nodes, activation='sigmoid')

    def call(self, inputs, isidentity=False):
        x = self.dense_layer(inputs)
        if isidentity:
            return inputs
        return x


def test_seed003_identity_model_flag():
    n_output_nodes = 3
    model = IdentityModel(n_output_nodes)
    x_input = tf.constant([1, 2.], shape=(1, 2))
    out_activate = model.call(x_input, False)
    out_identity = model.call(x_input, True)

    assert np.array_equal(out_identity.numpy(), [[1, 2]])
    kernel, bias = model.dense_layer.kernel.numpy(), model.dense_layer.bias.numpy()
    np.testing.assert_allclose(out_activate.numpy(),
                               1 / (1 + np.exp(-(np.array([[1, 2.]]) @ kernel + bias))), rtol=1e-6)
    # the flag is a Python bool: static under tf.function, one trace per value
    forward = tf.function(lambda inputs, isidentity: model(inputs, isidentity=isidentity))
    np.testing.assert_allclose(forward(x_input, False).numpy(), out_activate.numpy(), rtol=1e-6)
    assert np.array_equal(forward(x_input, True).numpy(), [[1, 2]])
    assert forward.cache_info()['traces'] == 2


# ------------------------------------------------------------------------------- seed 004

class MyModelKeras(tf.keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Initialize the weights to `5.0` and the bias to `0.0`
        # In practice, these should be randomly initialized
        self.w = tf.Variable(5.0)
        self.b = tf.Variable(0.0)

    def call(self, x):
        return self.w * x + self.b


def loss(target_y, predicted_y):
    return tf.reduce_mean(tf.square(target_y - predicted_y))


def test_seed004_keras_model_in_the_hand_written_loop(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    x, y, _ = seed004_data()

    # 7.4.2: the training step and loop as the seed defines them (globals become closures)
    # Given a callable model, inputs, outputs, and a learning rate...
    def train(model, x, y, learning_rate):

        with tf.GradientTape() as t:
            # Trainable variables are automatically tracked by GradientTape
            current_loss = loss(y, model(x))

        # Use GradientTape to calculate the gradients with respect to W and b
        dw, db = t.gradient(current_loss, [model.w, model.b])

        # Subtract the gradient scaled by the learning rate
        model.w.assign_sub(learning_rate * dw)
        model.b.assign_sub(learning_rate * db)

    # Collect the history of W-values and b-values to plot later
    weights = []
    biases = []
    epochs = range(10)

    # Define a training loop
    def report(model, loss):
        return f"W = {model.w.numpy():1.2f}, b = {model.b.numpy():1.2f}, loss={loss:2.5f}"

    def training_loop(model, x, y):

        for epoch in epochs:
            # Update the model with the single giant batch
            train(model, x, y, learning_rate=0.1)

            # Track this before I update
            weights.append(model.w.numpy())
            biases.append(model.b.numpy())
            current_loss = loss(y, model(x))

            print(f"Epoch {epoch:2d}:")
            print("    ", report(model, current_loss))

    # 7.5
    keras_model = MyModelKeras()

    # Reuse the training loop with a Keras model
    training_loop(keras_model, x, y)

    # You can also save a checkpoint using Keras's built-in support
    keras_model.save_weights("keras_checkpoint")

    Ws, bs, losses = numpy_linear_fit(x, y, 5.0, 0.0, 0.1, 10)
    np.testing.assert_allclose(weights, Ws[1:], rtol=1e-5)
    np.testing.assert_allclose(biases, bs[1:], rtol=1e-5, atol=1e-6)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == [f'Epoch {epoch:2d}:' for epoch in range(10)]
    for line, w, b, expected_loss in zip(lines[1::2], weights, biases, losses[1:]):
        match = re.fullmatch(r'     W = (\d\.\d\d), b = (\d\.\d\d), loss=(\d+\.\d{5})', line)
        assert match and match.groups()[:2] == ('%1.2f' % w, '%1.2f' % b), line
        assert float(match.group(3)) == pytest.approx(expected_loss, rel=2e-5, abs=1e-5)
    assert os.listdir(tmp_path) == ['keras_checkpoint.npz']
    restored = MyModelKeras()
    restored.load_weights("keras_checkpoint")
    assert restored.w.numpy() == keras_model.w.numpy()
    assert restored.b.numpy() == keras_model.b.numpy()


def test_seed004_compile_and_fit(capsys):
    x, y, _ = seed004_data()
    keras_model = MyModelKeras()

    # compile sets the training parameters
    keras_model.compile(
        # By default, fit() uses tf.function().  You can
        # turn that off for debugging, but it is on now.
        run_eagerly=False,

        # Using a built-in optimizer, configuring as an object
        optimizer=tf.keras.optimizers.SGD(learning_rate=0.1),

        # Keras comes with built-in MSE error
        # However, you could use the loss function
        # defined above
        loss=tf.keras.losses.mean_squared_error,
    )
    print(x.shape[0])
    history = keras_model.fit(x, y, epochs=10, batch_size=1000)

    out = capsys.readouterr().out
    assert out.startswith('201\nEpoch 1/10\n')
    assert [int(n) for n in re.findall(r'^Epoch (\d+)/10$', out, re.M)] == list(range(1, 11))
    # Keras logs each step's loss, computed before that step's update
    _, _, losses = numpy_linear_fit(x, y, 5.0, 0.0, 0.1, 10)
    np.testing.assert_allclose(history.history['loss'], losses[:10], rtol=1e-5)
    for value in history.history['loss']:
        assert f'loss: {value:.4f}' in out
    assert keras_model.train_function.cache_info()['traces'] == 1
    Ws, bs, _ = numpy_linear_fit(x, y, 5.0, 0.0, 0.1, 10)
    assert keras_model.w.numpy() == pytest.approx(Ws[-1], rel=1e-5)
    assert keras_model.b.numpy() == pytest.approx(bs[-1], rel=1e-5)


def test_seed004_fit_log_one_line_per_epoch(capsys):
    x, y, _ = seed004_data()
    keras_model = MyModelKeras()
    keras_model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.1),
                        loss=tf.keras.losses.mean_squared_error)
    history = keras_model.fit(x, y, epochs=10, batch_size=1000, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == [f'Epoch {e}/10' for e in range(1, 11)]
    for line, value in zip(lines[1::2], history.history['loss']):
        assert re.fullmatch(rf'1/1 - \d+s - loss: {value:.4f}', line), line

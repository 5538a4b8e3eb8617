"""Models that override `train_step` / `test_step`, as Keras's "customizing what happens in
fit" teaches: the override is traced into the compiled step, its returned dict becomes fit's and
evaluate's logs. Checked against a numpy re-implementation of the same linear model and SGD."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import keras

RNG = np.random.default_rng(7)
X = RNG.normal(size=(100, 3)).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
KERNEL0 = np.array([[0.2], [0.1], [-0.3]], np.float32)
BATCH, LR, EPOCHS = 32, 0.05, 2


class KerasThreeStep(keras.Model):
    """The guide's Keras 3 `train_step`: compute_loss, per-metric update_state, results."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tj.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        for metric in self.metrics:
            if metric.name == 'loss':
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        self.loss_tracker.update_state(self.compute_loss(y=y, y_pred=y_pred))
        return {'loss': self.loss_tracker.result(), 'doubled': 2.0 * self.loss_tracker.result()}


class SuperStep(KerasThreeStep):
    """Delegates to Keras's default step and adds a log of its own."""

    def train_step(self, data):
        logs = keras.Model.train_step(self, data)
        return {**logs, 'kernel_sum': tj.reduce_sum(self.dense.kernel)}

    test_step = keras.Model.test_step  # Keras's again, not KerasThreeStep's


def _model(cls, **compile_args):
    model = cls()
    model.compile(optimizer=keras.optimizers.SGD(LR), loss='mse', metrics=['mae'],
                  **compile_args)
    model(X[:1])
    model.set_weights([KERNEL0, np.zeros(1, np.float32)])
    return model


def _numpy_sgd():
    """Weights after each epoch and the logs a batch-mean loss tracker gives (the loss averaged
    over batches, MAE over samples, both before each update)."""
    w, b = KERNEL0.astype(np.float64), np.zeros(1)
    history = {'loss': [], 'mae': []}
    for _ in range(EPOCHS):
        losses, errors = [], []
        for start in range(0, len(X), BATCH):
            x, y = X[start:start + BATCH], Y[start:start + BATCH]
            err = x @ w + b - y
            losses.append(np.mean(err ** 2))
            errors.extend(np.abs(err).ravel())
            g = 2 * err / len(x)
            w, b = w - LR * x.T @ g, b - LR * g.sum(0)
        history['loss'].append(np.mean(losses))
        history['mae'].append(np.mean(errors))
    return w, b, history


class BatchLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, dict(logs)))


@pytest.mark.parametrize('steps_per_execution', [1, 3])
@pytest.mark.parametrize('run_eagerly', [False, True])
def test_overridden_train_step_trains_and_logs_what_it_returns(steps_per_execution,
                                                                run_eagerly):
    model = _model(KerasThreeStep, steps_per_execution=steps_per_execution,
                   run_eagerly=run_eagerly)
    record = BatchLogs()
    history = model.fit(X, Y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                        callbacks=[record])
    seen = record.seen
    w, b, expected = _numpy_sgd()
    np.testing.assert_allclose(model.dense.kernel.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.dense.bias.numpy(), b, rtol=1e-5, atol=1e-6)
    assert set(history.history) == {'loss', 'mae'}
    for name in expected:
        np.testing.assert_allclose(history.history[name], expected[name], rtol=1e-5)
    # batch callbacks get the returned logs after each call (every N batches with N per call)
    calls = {1: [0, 1, 2, 3], 3: [2, 3]}[steps_per_execution]
    assert [batch for batch, _ in seen[:len(calls)]] == calls
    assert seen[len(calls) - 1][1] == pytest.approx(
        {k: v[0] for k, v in history.history.items()}, rel=1e-6)


def test_overridden_test_step_gives_evaluate_its_logs():
    model = _model(KerasThreeStep)
    err = X @ KERNEL0 - Y
    batch_losses = [np.mean(err[s:s + BATCH] ** 2) for s in range(0, len(X), BATCH)]
    logs = model.evaluate(X, Y, batch_size=BATCH, verbose=0, return_dict=True)
    assert logs == pytest.approx({'loss': np.mean(batch_losses),
                                  'doubled': 2 * np.mean(batch_losses)}, rel=1e-6)


def test_default_step_through_super_equals_plain_fit():
    default = keras.Sequential([keras.layers.Dense(1)])
    default.compile(optimizer=keras.optimizers.SGD(LR), loss='mse', metrics=['mae'])
    default(X[:1])
    default.set_weights([KERNEL0, np.zeros(1, np.float32)])
    custom = _model(SuperStep)
    kwargs = dict(batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    expected = default.fit(X, Y, **kwargs).history
    history = custom.fit(X, Y, **kwargs).history
    for name in ('loss', 'mae'):
        np.testing.assert_allclose(history[name], expected[name], rtol=1e-6)
    np.testing.assert_allclose(history['kernel_sum'][-1], default.get_weights()[0].sum(),
                               rtol=1e-6)
    np.testing.assert_array_equal(custom.get_weights()[0], default.get_weights()[0])
    assert custom.evaluate(X, Y, batch_size=BATCH, verbose=0) == pytest.approx(
        default.evaluate(X, Y, batch_size=BATCH, verbose=0), rel=1e-6)


class NotADict(KerasThreeStep):
    def train_step(self, data):
        super().train_step(data)
        return self.loss_tracker.result()


def test_optimizer_apply_refuses_mismatched_lists():
    model = _model(KerasThreeStep)
    with pytest.raises(ValueError, match='got 1 gradients for 2 variables'):
        model.optimizer.apply([np.ones((3, 1), np.float32)], model.trainable_variables)
    np.testing.assert_array_equal(model.dense.kernel.numpy(), KERNEL0)


def test_a_train_step_that_returns_no_dict_is_refused_before_any_update():
    model = _model(NotADict)
    with pytest.raises(TypeError, match='train_step must return a dict'):
        model.fit(X, Y, batch_size=BATCH, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.dense.kernel.numpy(), KERNEL0)


def test_overridden_train_step_on_a_dataset_equals_arrays():
    model = _model(KerasThreeStep)
    dataset = tj.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH)
    history = model.fit(dataset, epochs=EPOCHS, verbose=0, callbacks=[BatchLogs()]).history
    w, _, expected = _numpy_sgd()
    np.testing.assert_allclose(model.dense.kernel.numpy(), w, rtol=1e-5, atol=1e-6)
    for name in expected:
        np.testing.assert_allclose(history[name], expected[name], rtol=1e-5)

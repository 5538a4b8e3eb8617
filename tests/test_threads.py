"""Threads: trace state is per thread and Variable updates are atomic per Variable (DESIGN §7).

Each test runs work in several threads and compares with an exact answer or a serial run."""
import threading

import numpy as np

import tracejit as tj
from tracejit import keras


def _run_threads(target, count):
    errors = []

    def guarded(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 (reported below, with the thread)
            errors.append((i, e))

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), 'a thread hung'
    assert not errors, errors


def test_eager_ops_in_one_thread_stay_eager_while_another_traces():
    inside, release = threading.Event(), threading.Event()
    v = tj.Variable(np.zeros(3, np.float32))

    @tj.function
    def slow_trace(x):
        inside.set()
        release.wait(30)  # hold the trace open while the other thread works
        return x * 2.0

    @tj.function
    def bump(var, x):
        var.assign_add(x)
        return tj.reduce_sum(var)

    tracer = threading.Thread(target=slow_trace, args=(np.ones(2, np.float32),))
    tracer.start()
    try:
        assert inside.wait(30)
        eager = tj.constant([1.0, 2.0]) + 1.0
        assert isinstance(eager, tj.Tensor)
        np.testing.assert_array_equal(eager.numpy(), [2.0, 3.0])
        with tj.GradientTape() as tape:
            x = tj.constant(3.0)
            tape.watch(x)
            y = x * x
        assert float(tape.gradient(y, x)) == 6.0
        total = bump(v, np.ones(3, np.float32))
        assert float(total) == 3.0
        np.testing.assert_array_equal(v.numpy(), [1.0, 1.0, 1.0])
    finally:
        release.set()
        tracer.join(30)


def test_eager_assign_add_from_four_threads_loses_no_update():
    v = tj.Variable(np.zeros(2**17, np.float32))

    def work(_):
        for _ in range(250):
            v.assign_add(1.0)

    _run_threads(work, 4)
    np.testing.assert_array_equal(v.numpy(), np.full(2**17, 1000.0, np.float32))


def test_compiled_assign_add_from_four_threads_loses_no_update():
    v = tj.Variable(np.zeros(2**17, np.float32))

    @tj.function
    def step(var, x):
        var.assign_add(x)
    one = np.ones(2**17, np.float32)
    step(v, one)  # compile once, in this thread

    def work(_):
        for _ in range(250):
            step(v, one)

    _run_threads(work, 4)
    np.testing.assert_array_equal(v.numpy(), np.full(2**17, 1001.0, np.float32))


def _fit_model(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 1))).astype(np.float32)
    model = keras.Sequential([keras.layers.Dense(3, activation='tanh', kernel_initializer=
                                                 keras.initializers.GlorotUniform(seed=seed)),
                              keras.layers.Dense(1, kernel_initializer=
                                                 keras.initializers.GlorotUniform(seed=seed + 1))])
    model.compile(keras.optimizers.Adam(0.01), 'mse')
    history = model.fit(x, y, epochs=3, batch_size=6, shuffle=False, verbose=0)
    return ([w.numpy() for w in model.trainable_variables], history.history['loss'],
            int(model.optimizer.iterations.numpy()))


def test_fit_on_four_models_in_four_threads_equals_serial_runs():
    serial = [_fit_model(seed) for seed in range(4)]
    threaded = [None] * 4

    def work(i):
        threaded[i] = _fit_model(i)

    _run_threads(work, 4)
    for (weights, losses, steps), (t_weights, t_losses, t_steps) in zip(serial, threaded):
        assert steps == t_steps == 3 * 8
        np.testing.assert_allclose(t_losses, losses, rtol=1e-6)
        for w, t_w in zip(weights, t_weights):
            np.testing.assert_allclose(t_w, w, rtol=1e-6)

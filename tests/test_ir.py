"""The printed IR: golden text for a small training step, and the graph invariants."""
import os

import numpy as np

import tracejit as tj
from tracejit import ir

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')


def linear_step():
    W = tj.Variable(5.0, name='W')
    b = tj.Variable(0.0, name='b')

    @tj.function
    def train(x, y, learning_rate):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(W * x + b - y))
        dW, db = tape.gradient(loss, [W, b])
        W.assign_sub(learning_rate * dW)
        b.assign_sub(learning_rate * db)
        return loss
    return train


def check_golden(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get('TRACEJIT_UPDATE_GOLDEN'):
        with open(path, 'w') as f:
            f.write(text + '\n')
    with open(path) as f:
        assert text + '\n' == f.read(), f'printed IR changed; see {path}'


def test_training_step_ir_golden():
    """Forward pass, gradient (by the tape) and the two assigns, after the pass pipeline."""
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    graph = linear_step().trace(x, 3 * x + 2, 0.1).graph
    graph.verify()
    check_golden('linear_step.ir.txt', str(graph))


def test_printing_is_deterministic_and_names_follow_appearance():
    x = np.ones(4, np.float32)
    first = str(linear_step().trace(x, x, 0.1).graph)
    second = str(linear_step().trace(x, x, 0.1).graph)
    assert first == second
    assert first.startswith('{ lambda a:f32[4] b:f32[4] c:f64[] ; d:f32[]=W:0 e:f32[]=b:0 .')


def test_interpreter_runs_the_traced_step_like_numpy():
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    y = 3 * x + 2
    graph = linear_step().trace(x, y, 0.1).graph
    outs, updates = ir.evaluate(graph, [x, y, 0.1], [np.float32(5.0), np.float32(0.0)])
    err = 5.0 * x - y
    np.testing.assert_allclose(outs[0], np.mean(err ** 2), rtol=1e-6)
    np.testing.assert_allclose(updates, [5.0 - 0.1 * np.mean(2 * err * x),
                                         0.0 - 0.1 * np.mean(2 * err)], rtol=1e-6)


def test_verify_catches_a_broken_graph():
    graph = tj.function(lambda x: tj.exp(x) + 1.0).trace(np.ones(3, np.float32)).graph
    graph.nodes[0].outputs[0].shape = (4,)
    try:
        graph.verify()
    except AssertionError as e:
        assert 'shape rule' in str(e)
    else:
        raise AssertionError('verify accepted a node whose output contradicts its shape rule')

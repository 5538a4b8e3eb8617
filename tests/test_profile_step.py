"""benchmarks/profile_step.py: the statement-by-statement rerun of a compiled step computes
what the step computes (Variables updated in place, the same result) and times every
statement of the kernel."""
import numpy as np
import pytest

import tracejit as tj
from benchmarks.profile_step import capture, profile


@pytest.mark.compiled
def test_profile_reruns_the_kernel_and_times_each_statement():
    w = tj.Variable(np.ones(3, np.float32))
    x = np.arange(3, dtype=np.float32)

    @tj.function
    def step(x):
        w.assign_sub(0.5 * tj.exp(x))
        return tj.reduce_sum(w * w)
    kernel, args = capture(step, x)               # one step
    np.testing.assert_allclose(w.numpy(), 1 - 0.5 * np.exp(x), rtol=1e-6)
    rows = profile(kernel, args, repeats=2)       # three more: one compiles the loops
    np.testing.assert_allclose(w.numpy(), 1 - 4 * 0.5 * np.exp(x), rtol=1e-6)
    assert all(seconds >= 0 for seconds, _ in rows)
    statements = [text for _, text in rows]
    assert any(text.startswith('loop') or ' = loop' in text for text in statements)
    assert statements[-1].startswith('return')


def test_capture_needs_a_compiled_step():
    with pytest.raises(RuntimeError, match='no compiled kernel'):
        capture(lambda: None)


@pytest.mark.compiled
def test_statements_in_a_loop_body_are_timed_and_listed_after_their_loop():
    """A scan's body statements are timed too (summed over the iterations), listed indented
    after the loop."""
    @tj.function
    def step(xs):
        return tj.lax.scan(lambda h, x: (tj.tanh(h * x), h), tj.zeros((4,)), xs)[1]
    xs = np.linspace(0.5, 1.5, 12, dtype=np.float32).reshape(3, 4)
    kernel, args = capture(step, xs)
    rows = profile(kernel, args, repeats=2)
    texts = [text for _, text in rows]
    loop = next(k for k, text in enumerate(texts) if text.startswith('for '))
    body = [k for k, text in enumerate(texts) if text.startswith('    ')]
    assert body and min(body) > loop and any('loop' in texts[k] for k in body)
    assert all(seconds >= 0 for seconds, _ in rows)

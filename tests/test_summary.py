"""tj.summary: tf.summary's API writing JSON lines (see tracejit/summary.py)."""
import json

import numpy as np
import pytest

import tracejit as tj


def _records(logdir):
    with open(logdir / 'summaries.jsonl', encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def test_writes_only_under_a_default_writer_with_a_step(tmp_path):
    writer = tj.summary.create_file_writer(str(tmp_path))
    assert tj.summary.scalar('loss', 1.0, step=0) is False     # no default writer: nothing
    with writer.as_default():
        assert tj.summary.scalar('loss', tj.constant(0.25), step=3)
        tj.summary.text('note', 'hello é', step=3)
        tj.summary.histogram('w', np.array([0.0, 1.0, 1.0, 3.0]), step=4, buckets=3)
        with pytest.raises(ValueError, match='No step set'):
            tj.summary.scalar('loss', 1.0)
    with writer.as_default(step=7):
        tj.summary.scalar('acc', 0.5)
    scalar, text, hist, acc = _records(tmp_path)
    assert (scalar['tag'], scalar['kind'], scalar['step'], scalar['value']) == (
        'loss', 'scalar', 3, 0.25)
    assert text['value'] == 'hello é' and text['kind'] == 'text'
    assert hist['buckets'] == [[0.0, 1.0, 1], [1.0, 2.0, 2], [2.0, 3.0, 1]]
    assert acc['step'] == 7 and acc['tag'] == 'acc'


def test_histogram_edge_cases():
    assert tj.summary.histogram_buckets([]) == []
    assert tj.summary.histogram_buckets([2.0, 2.0]) == [[2.0, 2.0, 2]]
    buckets = tj.summary.histogram_buckets(np.arange(100.0))
    assert len(buckets) == 30 and sum(b[2] for b in buckets) == 100


@pytest.mark.compiled
def test_compiled_step_writes_every_call_with_that_calls_values(tmp_path):
    writer = tj.summary.create_file_writer(str(tmp_path))
    step_var = tj.Variable(0, dtype=tj.int64)
    w = tj.Variable(1.0)

    @tj.function
    def train(x):
        w.assign(w * x)
        step_var.assign_add(1)
        tj.summary.scalar('w', w, step=step_var)
        return w

    with writer.as_default():
        for x in (2.0, 3.0, 0.5):
            train(np.float32(x))
    records = _records(tmp_path)
    assert [(r['step'], r['value']) for r in records] == [(1, 2.0), (2, 6.0), (3, 3.0)]

"""tj.string tensors: TensorFlow's bytes values, equality, tj.strings basics, eager only."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors


def test_string_constants_hold_bytes_as_in_tensorflow():
    t = tj.constant('abc')
    assert t.dtype == tj.string and t.shape == () and t.numpy() == b'abc'
    many = tj.constant([['a', 'bc'], ['', 'é']])
    assert many.shape == (2, 2) and many.dtype == tj.string
    assert many.numpy()[1, 1] == 'é'.encode('utf-8') and many.numpy()[1, 0] == b''
    assert tj.constant([b'x', b'y']).numpy().tolist() == [b'x', b'y']
    assert tj.constant('z', dtype=tj.string, shape=[3]).numpy().tolist() == [b'z'] * 3


def test_equality_broadcasts_and_refuses_numbers():
    words = tj.constant(['cat', 'dog', 'cat'])
    np.testing.assert_array_equal((words == 'cat').numpy(), [True, False, True])
    np.testing.assert_array_equal((words != tj.constant('cat')).numpy(), [False, True, False])
    np.testing.assert_array_equal(tj.equal(words, tj.constant(['cat', 'cow', 'dog'])).numpy(),
                                  [True, False, False])
    assert (tj.constant('é') == 'é').numpy()
    with pytest.raises(errors.DTypeError, match='cannot compare a string tensor'):
        tj.equal(words, tj.constant([1, 2, 3]))


def test_strings_ops():
    s = tj.constant(['Hello', 'wörld'])
    np.testing.assert_array_equal(tj.strings.length(s).numpy(), [5, 6])
    np.testing.assert_array_equal(tj.strings.length(s, unit='UTF8_CHAR').numpy(), [5, 5])
    assert tj.strings.length(s).dtype == tj.int32
    assert tj.strings.lower(tj.constant('AbC')).numpy() == b'abc'
    assert tj.strings.upper(tj.constant('AbC')).numpy() == b'ABC'
    joined = tj.strings.join([tj.constant(['a', 'b']), tj.constant('x')], separator='-')
    assert joined.numpy().tolist() == [b'a-x', b'b-x']
    np.testing.assert_array_equal(tj.strings.to_number(tj.constant(['1.5', '-2'])).numpy(),
                                  np.array([1.5, -2], np.float32))
    assert tj.strings.to_number(tj.constant('7'), tj.int32).dtype == tj.int32
    with pytest.raises(errors.InvalidArgumentError, match='could not correctly convert'):
        tj.strings.to_number(tj.constant('seven'))


def test_strings_inside_a_trace_are_constants_of_the_trace():
    def f(x):
        same = tj.constant('relu') == 'relu'
        return tj.where(same, x, -x)
    graph = tj.function(f).trace(np.ones(2, np.float32)).graph
    assert all(v.dtype.kind not in 'SU' for v in graph.consts)
    with pytest.raises(errors.DTypeError, match='string tensor'):
        tj.function(lambda s: s).trace(tj.constant(['a']))

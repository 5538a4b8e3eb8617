"""Keras convolution, pooling and image layers against TensorFlow: for the same inputs and
weights, outputs and gradients equal TF's within float32 tolerance (fixtures written by
tests/fixtures/make_conv_layers.py with tensorflow-cpu; TF is not needed here). Also get_config
round trips, channels_first against channels_last, and the errors Keras raises."""
import json
import os

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors
from tracejit.keras import layers

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
with open(os.path.join(FIXTURES, 'conv_layers.json')) as _f:
    CASES = json.load(_f)['cases']
ARRAYS = np.load(os.path.join(FIXTURES, 'conv_layers.npz'))


def _layer(case):
    kwargs = {k: tuple(tuple(p) if isinstance(p, list) else p for p in v)
              if isinstance(v, list) else v for k, v in case['kwargs'].items()}
    return getattr(layers, case['layer'])(**kwargs)


def _output_and_grads(layer, x, u):
    x = tj.constant(x)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tj.reduce_sum(y * u)
    return y, tape.gradient(total, [x] + layer.trainable_weights)


@pytest.mark.parametrize('k', range(len(CASES)),
                         ids=[f'{c["layer"]}-{i}' for i, c in enumerate(CASES)])
def test_layer_matches_tensorflow(k):
    case = CASES[k]
    get = lambda key: ARRAYS[f'{k}/{key}']  # noqa: E731
    layer = _layer(case)
    layer(get('x'))
    layer.set_weights([get(f'w{j}') for j in range(case['weights'])])
    y, grads = _output_and_grads(layer, get('x'), get('u'))
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y.numpy(), get('y'), **tol, err_msg='output')
    np.testing.assert_allclose(grads[0].numpy(), get('dx'), **tol, err_msg='input gradient')
    for j, g in enumerate(grads[1:]):
        np.testing.assert_allclose(g.numpy(), get(f'dw{j}'), **tol, err_msg=f'weight {j}')
    clone = type(layer)(**layer.get_config())
    clone(get('x'))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(get('x')).numpy(), y.numpy())


def test_weight_layouts_and_defaults_are_keras_3s():
    conv = layers.Conv2D(5, 3)
    conv(np.zeros((1, 6, 6, 2), np.float32))
    assert [w.shape for w in conv.weights] == [(3, 3, 2, 5), (5,)]
    assert conv.strides == (1, 1) and conv.padding == 'valid' and conv.dilation_rate == (1, 1)
    np.testing.assert_array_equal(conv.bias.numpy(), np.zeros(5))
    limit = np.sqrt(6.0 / (9 * 2 + 9 * 5))   # glorot_uniform's fans of a conv kernel
    assert np.abs(conv.kernel.numpy()).max() <= limit and conv.kernel.numpy().std() > limit / 3
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2)
    depthwise(np.zeros((1, 5, 5, 3), np.float32))
    assert [w.shape for w in depthwise.weights] == [(3, 3, 3, 2), (6,)]
    transposed = layers.Conv2DTranspose(4, 3)
    assert transposed(np.zeros((1, 5, 5, 2), np.float32)).shape == (1, 7, 7, 4)
    assert [w.shape for w in transposed.weights] == [(3, 3, 4, 2), (4,)]
    assert layers.MaxPooling2D().strides == (2, 2) and layers.MaxPool2D is layers.MaxPooling2D
    assert layers.Conv2D(1, 1).name.startswith('conv2d')
    assert layers.GlobalAveragePooling1D().name.startswith('global_average_pooling1d')


@pytest.mark.parametrize('make', [
    lambda: layers.Conv2D(3, (2, 3), strides=(2, 1), padding='same'),
    lambda: layers.DepthwiseConv2D(3, padding='same'),
    lambda: layers.Conv2DTranspose(2, 3, strides=2, padding='same'),
    lambda: layers.MaxPooling2D(3, 2, padding='same'),
    lambda: layers.AveragePooling2D(2),
    lambda: layers.GlobalMaxPooling2D(keepdims=True),
    lambda: layers.ZeroPadding2D(((1, 0), (2, 1))),
    lambda: layers.UpSampling2D(2),
])
def test_channels_first_equals_channels_last_transposed(make):
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    last = make()
    first = type(last)(**dict(last.get_config(), data_format='channels_first', name=None))
    expected = last(x).numpy()
    first(np.transpose(x, (0, 3, 1, 2)))
    first.set_weights(last.get_weights())
    out = first(np.transpose(x, (0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.transpose(out, (0, 2, 3, 1)), expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='dilation_rate'):
        layers.Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match='padding'):
        layers.Conv2D(2, 3, padding='full')
    with pytest.raises(ValueError, match='groups'):
        layers.Conv2D(3, 3, groups=2)
    with pytest.raises(ValueError, match='data_format'):
        layers.MaxPooling2D(data_format='NHWC')
    with pytest.raises(errors.ShapeError, match='expected min_ndim=4'):
        layers.Conv2D(2, 3)(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(errors.ShapeError, match='expected ndim=4'):
        layers.MaxPooling2D()(np.zeros((2, 4, 4, 1, 1), np.float32))
    conv = layers.Conv2D(2, 3)
    conv(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(errors.ShapeError, match='axis -1'):
        conv(np.zeros((1, 5, 5, 4), np.float32))


@pytest.mark.compiled
def test_digits_cnn_reaches_97_percent_through_fit():
    """The benchmark's digits CNN (benchmarks/conv.py), 8 epochs instead of 15."""
    pytest.importorskip('sklearn')
    from benchmarks.conv import digits_cnn
    accuracy, _ = digits_cnn(epochs=8)
    assert accuracy >= 0.97

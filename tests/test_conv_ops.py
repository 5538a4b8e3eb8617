"""tj.nn convolution and pooling ops: values against numpy written here, TF's tie rule and
SAME averaging (numbers printed by TensorFlow 2.21), adjointness of conv2d_transpose, gradients
by finite differences, NCHW against NHWC, one compiled step against eager, and the errors."""
import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

from gradcheck import check_grads

RNG = np.random.default_rng(7)


def _conv_ref(x, w, stride, dilation, padding):
    """Direct cross-correlation of an NHWC image, TF's SAME/VALID geometry."""
    n, h, wd, _ = x.shape
    kh, kw, _, cout = w.shape
    geometry = []
    for size, k, s, d in ((h, kh, stride[0], dilation[0]), (wd, kw, stride[1], dilation[1])):
        span = (k - 1) * d + 1
        out = -(-size // s) if padding == 'SAME' else (size - span) // s + 1
        geometry.append((out, max((out - 1) * s + span - size, 0) // 2 if padding == 'SAME'
                         else 0))
    (oh, top), (ow, left) = geometry
    y = np.zeros((n, oh, ow, cout))
    for i, j, p, q in np.ndindex(oh, ow, kh, kw):
        r, c = i * stride[0] + p * dilation[0] - top, j * stride[1] + q * dilation[1] - left
        if 0 <= r < h and 0 <= c < wd:
            y[:, i, j] += x[:, r, c] @ w[p, q]
    return y


@pytest.mark.parametrize('stride, dilation, padding', [
    ((1, 1), (1, 1), 'SAME'), ((2, 2), (2, 2), 'SAME'), ((2, 1), (1, 2), 'VALID'),
    ((3, 2), (1, 1), 'SAME')])
def test_conv2d_matches_direct_correlation(stride, dilation, padding):
    x, w = RNG.normal(size=(2, 9, 8, 3)), RNG.normal(size=(3, 2, 3, 4))
    out = tj.nn.conv2d(x, w, strides=stride, padding=padding, dilations=dilation)
    np.testing.assert_allclose(out.numpy(), _conv_ref(x, w, stride, dilation, padding),
                               rtol=1e-12, atol=1e-12)
    nchw = tj.nn.conv2d(np.transpose(x, (0, 3, 1, 2)), w, [1, 1, *stride], padding, 'NCHW',
                        [1, 1, *dilation])
    np.testing.assert_allclose(np.transpose(nchw.numpy(), (0, 2, 3, 1)), out.numpy(),
                               rtol=1e-12, atol=1e-12)


def test_conv1d_is_conv2d_of_height_one():
    x, w = RNG.normal(size=(2, 11, 3)), RNG.normal(size=(4, 3, 2))
    out = tj.nn.conv1d(x, w, stride=2, padding='SAME', dilations=1)
    ref = _conv_ref(x[:, None], w[None], (1, 2), (1, 1), 'SAME')[:, 0]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('shape, stride, padding', [((2, 7, 6, 3), (2, 2), 'SAME'),
                                                    ((1, 8, 7, 3), (2, 3), 'VALID')])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(shape, stride, padding):
    x, w = RNG.normal(size=shape), RNG.normal(size=(3, 3, 3, 2))
    y = tj.nn.conv2d(x, w, stride, padding)
    u = RNG.normal(size=y.shape)
    back = tj.nn.conv2d_transpose(u, w, shape, stride, padding)
    assert back.shape == shape
    np.testing.assert_allclose(np.sum(y.numpy() * u), np.sum(x * back.numpy()), rtol=1e-10)


def test_depthwise_conv2d_matches_per_channel_correlation():
    x, w = RNG.normal(size=(2, 6, 5, 3)), RNG.normal(size=(2, 3, 3, 2))
    out = tj.nn.depthwise_conv2d(x, w, [1, 2, 1, 1], 'SAME').numpy()
    for c, m in np.ndindex(3, 2):
        ref = _conv_ref(x[..., c:c + 1], w[:, :, c:c + 1, m:m + 1], (2, 1), (1, 1), 'SAME')
        np.testing.assert_allclose(out[..., c * 2 + m], ref[..., 0], rtol=1e-12, atol=1e-12)


TIES = np.array([[1, 3, 3, 0], [3, 2, 1, 3], [0, 0, 0, 0], [1, 1, 1, 1]], np.float32)


@pytest.mark.parametrize('ksize, stride, padding, expected', [
    (2, 2, 'VALID', [[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]]),
    (3, 1, 'SAME', [[0, 6, 2, 0], [2, 0, 0, 2], [0, 0, 0, 0], [2, 1, 1, 0]])])
def test_max_pool_gradient_goes_to_the_first_maximum_as_in_tensorflow(ksize, stride, padding,
                                                                      expected):
    x = tj.constant(TIES.reshape(1, 4, 4, 1))
    for fn in (lambda v: tj.nn.max_pool2d(v, ksize, stride, padding),
               lambda v: tj.nn.max_pool(v, [1, ksize, ksize, 1], stride, padding)):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        np.testing.assert_array_equal(tape.gradient(y, x).numpy().reshape(4, 4), expected)


def test_avg_pool_same_divides_by_the_taps_inside_the_image():
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    out = tj.nn.avg_pool2d(x, 2, 2, 'SAME').numpy().reshape(3, 3)
    np.testing.assert_allclose(out, [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]])
    ones = tj.nn.avg_pool(np.ones((1, 5, 5, 1), np.float32), 3, 2, 'SAME')
    np.testing.assert_array_equal(ones.numpy(), np.ones((1, 3, 3, 1)))
    seq = tj.nn.avg_pool1d(np.arange(5.0).reshape(1, 5, 1), 2, 2, 'SAME').numpy().ravel()
    np.testing.assert_allclose(seq, [0.5, 2.5, 4.0])
    peaks = tj.nn.max_pool1d(np.array([[[1.0], [5.0], [2.0]]]), 2, 1, 'VALID').numpy().ravel()
    np.testing.assert_array_equal(peaks, [5.0, 5.0])


@pytest.mark.parametrize('op', [
    lambda x, w: tj.nn.conv2d(x, w, 2, 'SAME', dilations=1),
    lambda x, w: tj.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], 'VALID', dilations=[2, 1]),
    lambda x, w: tj.nn.conv2d_transpose(x, w, (1, 9, 7, 3), [1, 2, 2, 1], 'SAME'),
    lambda x, w: tj.nn.avg_pool2d(tj.nn.conv2d(x, w, 1, 'SAME'), 2, 1, 'SAME'),
], ids=['conv2d', 'depthwise', 'conv2d_transpose', 'avg_pool'])
def test_public_ops_gradients_match_finite_differences(op):
    x, w = RNG.normal(size=(1, 5, 4, 3)), RNG.normal(size=(2, 3, 3, 3))
    check_grads(op, [x, w], order=2)


@pytest.mark.compiled
def test_compiled_step_equals_eager():
    """Every window op in one compiled function (one kernel) against eager execution."""
    x = RNG.normal(size=(2, 7, 6, 3)).astype(np.float32)
    w = RNG.normal(size=(3, 2, 3, 4)).astype(np.float32)

    def step(x, w):
        with tj.GradientTape() as tape:
            tape.watch([x, w])
            y = tj.nn.relu(tj.nn.conv2d(x, w, 2, 'SAME', dilations=1))
            z = tj.nn.max_pool2d(y, 2, 1, 'SAME') + tj.nn.avg_pool2d(y, 2, 1, 'SAME')
            d = tj.nn.depthwise_conv2d(x, w[..., :1], [1, 1, 1, 1], 'VALID', dilations=[2, 1])
            t = tj.nn.conv2d_transpose(y, w, (2, 7, 6, 3), 2, 'SAME')
            loss = tj.reduce_sum(z * z) + tj.reduce_sum(d) + tj.reduce_sum(t * x)
        return [loss] + tape.gradient(loss, [x, w])
    eager = step(tj.constant(x), tj.constant(w))
    native = tj.function(step)(x, w)
    for a, b in zip(eager, native):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=2e-5, atol=2e-5)


@pytest.mark.compiled
def test_compiled_relu_then_max_pool_gradients_equal_eager():
    """conv2d + bias -> relu -> max pooling, as Keras builds it: compiled, relu's gradient is
    masked at the pooled size (passes.pooled_relu_gradients, no full-size comparison left),
    and the gradients equal eager ones with ties and all-negative windows (integer data)."""
    x = RNG.integers(-2, 3, (2, 9, 8, 1)).astype(np.float32)
    w = RNG.integers(-1, 2, (3, 3, 1, 4)).astype(np.float32)
    b = np.array([0.0, -1.0, 1.0, 0.5], np.float32)

    def step(x, w, b):
        with tj.GradientTape() as tape:
            tape.watch([x, w, b])
            y = tj.nn.max_pool2d(tj.nn.relu(tj.nn.conv2d(x, w, 1, 'VALID') + b), 2, 2, 'VALID')
            loss = tj.reduce_sum(y * tj.cos(y))
        return [loss] + tape.gradient(loss, [x, w, b])
    compiled = tj.function(step)
    graph = compiled.trace(x, w, b).graph
    assert not [n for n in graph.nodes if n.prim.name == 'gt' and n.inputs[0].shape[1] == 7]
    eager = step(tj.constant(x), tj.constant(w), tj.constant(b))
    for a, c in zip(eager, compiled(x, w, b)):
        np.testing.assert_allclose(c.numpy(), a.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.compiled
@pytest.mark.parametrize('shape, ksize, strides, padding', [
    ((2, 5, 7, 3), (2, 2), (3, 2), 'VALID'),   # windows apart: a row and a column in none
    ((1, 5, 5, 2), (1, 2), (3, 2), 'SAME'),
    ((1, 5, 5, 2), (3, 3), (2, 2), 'SAME'),    # overlapping windows
    ((2, 4, 5, 3), (2, 2), (1, 1), 'SAME'),
])
def test_max_pool_grad_helper_writes_its_whole_output(shape, ksize, strides, padding):
    """The kernel gets an uninitialised array (NaNs here): every pixel is written, zero
    where no window places a cotangent."""
    from tracejit.backend import kernels
    x = tj.constant(RNG.integers(-2, 3, shape).astype(np.float32))   # ties
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.nn.max_pool2d(x, ksize, strides, padding)
    ct = RNG.normal(size=y.shape).astype(np.float32)
    want = tape.gradient(y, x, output_gradients=tj.constant(ct)).numpy()
    out = np.full(shape, np.nan, np.float32)
    kernels.max_pool_grad(ct, x.numpy(), out, *ksize, *strides, padding == 'SAME')
    np.testing.assert_array_equal(out, want)


@pytest.mark.compiled
@pytest.mark.parametrize('shape, stride, padding', [
    ((20, 34, 34, 8), 1, 'VALID'),   # blocks of 3 images (IMAGE_BLOCK_BYTES), the last of 2
    ((3, 9, 8, 2), 2, 'SAME'),
])
def test_compiled_input_gradient_adds_the_product_back_in_blocks(shape, stride, padding):
    """A convolution's input gradient compiles to matmul_col2im (the product made a few images
    at a time): it equals the gradient of the direct correlation, computed here in numpy, and
    eager execution."""
    x = RNG.normal(size=shape).astype(np.float32)
    w = RNG.normal(size=(3, 3, shape[3], 8)).astype(np.float32)

    def gradient(x, w):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.nn.conv2d(x, w, stride, padding)
            loss = tj.reduce_sum(y * y) / 2
        return tape.gradient(loss, x)
    compiled = tj.function(gradient)
    graph = compiled.trace(x, w).graph
    assert 'matmul_col2im' in [n.prim.name for n in graph.nodes]
    # central differences of the numpy correlation, exact for the quadratic loss
    x64, w64 = x.astype(np.float64), w.astype(np.float64)

    def loss_at(image):
        return np.sum(_conv_ref(image, w64, (stride, stride), (1, 1), padding) ** 2) / 2
    got = compiled(x, w).numpy()
    for at in [tuple(RNG.integers(0, d) for d in shape) for _ in range(6)]:
        up, down = x64.copy(), x64.copy()
        up[at] += 0.5
        down[at] -= 0.5
        np.testing.assert_allclose(got[at], loss_at(up) - loss_at(down), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got, gradient(tj.constant(x), tj.constant(w)).numpy(),
                               rtol=2e-5, atol=2e-4)


@pytest.mark.compiled
def test_compiled_filter_gradient_behind_max_pooling_takes_the_gradient_in_blocks():
    """conv2d -> relu -> max pooling on an input that needs no gradient, as a network's first
    layer: the filter and bias gradients compile to pool_grad_matmul (the pooling gradient
    made a few images at a time, blocks of 6 of the 32 images, the last of 2) and equal eager
    float64 ones, with ties (integer data: the same ties in both precisions)."""
    x = RNG.integers(-2, 3, (32, 26, 26, 1)).astype(np.float32)
    w = RNG.integers(-1, 2, (3, 3, 1, 64)).astype(np.float32)
    b = RNG.normal(size=64).astype(np.float32)

    def step(x, w, b):
        with tj.GradientTape() as tape:
            tape.watch([w, b])
            y = tj.nn.max_pool2d(tj.nn.relu(tj.nn.conv2d(x, w, 1, 'SAME') + b), 2, 2, 'VALID')
            loss = tj.reduce_sum(y * tj.cos(y))
        return [loss] + tape.gradient(loss, [w, b])
    compiled = tj.function(step)
    assert 'pool_grad_matmul' in [n.prim.name for n in compiled.trace(x, w, b).graph.nodes]
    eager = step(*(tj.constant(v.astype(np.float64)) for v in (x, w, b)))
    for a, c in zip(eager, compiled(x, w, b)):
        want = a.numpy()
        np.testing.assert_allclose(c.numpy(), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize('call, error, match', [
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 3, 1)), 1, 'SAME'),
     errors.ShapeError, '2 channels, the filters expect 3'),
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 1)), 1, 'FULL'),
     errors.InvalidArgumentError, 'padding'),
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 1)), [2, 2, 2, 2], 'SAME'),
     errors.InvalidArgumentError, 'batch and channel entries must be 1'),
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 1)), 0, 'SAME'),
     errors.InvalidArgumentError, 'positive integers'),
    (lambda: tj.nn.conv2d(np.ones((4, 4, 2)), np.ones((3, 3, 2, 1)), 1, 'SAME'),
     errors.ShapeError, 'rank 4'),
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2), np.int32), np.ones((3, 3, 2, 1), np.int32), 1,
                          'SAME'), errors.DTypeError, 'floating-point'),
    (lambda: tj.nn.conv2d(np.ones((1, 2, 4, 2)), np.ones((3, 3, 2, 1)), 1, 'VALID'),
     errors.ShapeError, 'does not fit'),
    (lambda: tj.nn.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 1)), 1, 'SAME', 'NCWH'),
     errors.InvalidArgumentError, 'data_format'),
    (lambda: tj.nn.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 2)),
                                    (1, 9, 9, 4), 2, 'SAME'), errors.ShapeError, 'windows'),
    (lambda: tj.nn.max_pool(np.ones((1, 2, 3, 4, 5)), 2, 2, 'VALID'), errors.ShapeError,
     'rank 3 or 4'),
])
def test_bad_arguments_raise_specific_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

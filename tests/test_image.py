"""tj.image against TensorFlow's results (tests/fixtures/make_image.py)."""
import os

import numpy as np
import pytest

import tracejit as tj
from tracejit import errors

F = np.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'image.npz'))
SIZES = [(10, 14), (3, 4), (5, 7), (1, 1), (8, 3), (2, 9)]


@pytest.mark.parametrize('method', ['bilinear', 'nearest'])
@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_resize_matches_tensorflow(method, size):
    h, w = size
    for source, key in ((F['image'], f'{method}_{h}x{w}'), (F['batch'], f'batch_{method}_{h}x{w}')):
        out = tj.image.resize(tj.constant(source), size, method=method)
        assert out.dtype == tj.float32 and out.shape == F[key].shape
        np.testing.assert_allclose(out.numpy(), F[key], rtol=1e-6, atol=1e-6)


def test_resize_of_integer_images():
    bilinear = tj.image.resize(F['uint8'], (5, 6))
    assert bilinear.dtype == tj.float32
    np.testing.assert_allclose(bilinear.numpy(), F['uint8_bilinear'], rtol=1e-6, atol=1e-4)
    nearest = tj.image.resize(F['uint8'], (5, 6), method='nearest')
    np.testing.assert_array_equal(nearest.numpy(), F['uint8_nearest'])
    with pytest.raises(errors.InvalidArgumentError, match='3-D .* or 4-D'):
        tj.image.resize(np.zeros((4, 4), np.float32), (2, 2))
    with pytest.raises(errors.UnimplementedError, match='method'):
        tj.image.resize(F['image'], (2, 2), method='bicubic')


def test_flips_match_tensorflow():
    np.testing.assert_array_equal(tj.image.flip_left_right(F['batch']).numpy(),
                                  F['flip_left_right'])
    np.testing.assert_array_equal(tj.image.flip_up_down(F['batch']).numpy(), F['flip_up_down'])
    one = tj.image.flip_left_right(F['image']).numpy()
    np.testing.assert_array_equal(one, F['image'][:, ::-1])


def test_random_flip_is_seeded_and_per_image():
    batch = np.arange(64 * 2 * 3, dtype=np.float32).reshape(64, 1, 6, 1)
    tj.random.set_seed(5)
    first = tj.image.random_flip_left_right(batch).numpy()
    tj.random.set_seed(5)
    again = tj.image.random_flip_left_right(batch).numpy()
    np.testing.assert_array_equal(first, again)
    flipped = [np.array_equal(f, b[:, ::-1]) for f, b in zip(first, batch)]
    kept = [np.array_equal(f, b) for f, b in zip(first, batch)]
    assert all(a or b for a, b in zip(flipped, kept)) and 10 < sum(flipped) < 54


def test_convert_image_dtype_matches_tensorflow():
    np.testing.assert_allclose(tj.image.convert_image_dtype(F['uint8'], tj.float32).numpy(),
                               F['uint8_to_float32'], rtol=1e-7)
    saturated = tj.image.convert_image_dtype(F['float_image'], tj.int32, saturate=True)
    np.testing.assert_array_equal(saturated.numpy(), F['float_to_int32_saturate'])
    unsaturated = tj.image.convert_image_dtype(F['float_image'], tj.int32).numpy()
    np.testing.assert_array_equal(unsaturated[F['float_image'] < 1],
                                  F['float_to_int32'][F['float_image'] < 1])
    ints = tj.constant([0, 2**30, 2**31 - 1], tj.int32)
    np.testing.assert_allclose(tj.image.convert_image_dtype(ints, tj.float32).numpy(),
                               F['int32_to_float32'])
    same = tj.constant([0.5], tj.float32)
    assert tj.image.convert_image_dtype(same, tj.float64).dtype == tj.float64


def test_rgb_to_grayscale_matches_tensorflow():
    np.testing.assert_allclose(tj.image.rgb_to_grayscale(F['image']).numpy(), F['grayscale'],
                               rtol=1e-6)
    np.testing.assert_array_equal(tj.image.rgb_to_grayscale(F['uint8']).numpy(),
                                  F['uint8_grayscale'])


def test_resize_and_flip_trace_into_one_graph():
    def augment(x):
        return tj.image.flip_left_right(tj.image.resize(x, (4, 6)))
    fn = tj.function(augment)
    graph = fn.trace(F['batch']).graph
    assert graph.verify() and all(n.prim.name != 'host_call' for n in graph.nodes)
    from tracejit import ir
    outs, _ = ir.evaluate(graph, [F['batch']], [])
    expected = tj.image.flip_left_right(tj.image.resize(F['batch'], (4, 6))).numpy()
    np.testing.assert_allclose(outs[0], expected, rtol=1e-6)

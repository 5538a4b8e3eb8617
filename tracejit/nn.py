"""tj.nn: activations and losses with logits, written so that |x| ~ 1e4 never overflows."""
from . import errors, operands, ops
from .conv import (avg_pool, avg_pool1d, avg_pool2d, conv1d, conv2d,  # noqa: F401 (public names)
                   conv2d_transpose, depthwise_conv2d, max_pool, max_pool1d, max_pool2d)
from .tracing import require_in_range
from .ops import log_softmax, relu, sigmoid, softmax, softplus, tanh  # noqa: F401 (public names)


def leaky_relu(features, alpha=0.2, name=None):
    features = operands.operand(features)
    return ops.where(ops.greater(features, 0.0), features, ops.multiply(features, alpha))


def elu(features, name=None):
    features = operands.operand(features)
    negative = ops.exp(ops.minimum(features, 0.0)) - 1.0
    return ops.where(ops.greater(features, 0.0), features, negative)


def l2_loss(t, name=None):
    return ops.reduce_sum(ops.square(t)) * 0.5


def _labels_logits(labels, logits, fn):
    if labels is None or logits is None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'{fn} needs both labels= and logits='))
    logits = operands.operand(logits, 'logits')
    labels = operands.operand(labels, 'labels')
    return labels, logits


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """max(x, 0) - x*z + log(1 + exp(-|x|)), TensorFlow's stable form, with max(x, 0) and -|x|
    taken from one select on x >= 0: their kinks at 0 then cancel in the gradient, which is
    sigmoid(x) - z everywhere (0.5 - z at 0; relu and abs would give -z there)."""
    labels, logits = _labels_logits(labels, logits, 'sigmoid_cross_entropy_with_logits')
    labels = ops.cast(labels, operands.dtype_of(logits))
    _same_shape(labels, logits, 'sigmoid_cross_entropy_with_logits')
    nonnegative = ops.greater_equal(logits, 0.0)
    positive_part = ops.where(nonnegative, logits, 0.0)
    minus_abs = ops.where(nonnegative, -logits, logits)
    return positive_part - logits * labels + ops.softplus(minus_abs)


def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, name=None):
    labels, logits = _labels_logits(labels, logits, 'softmax_cross_entropy_with_logits')
    labels = ops.cast(labels, operands.dtype_of(logits))
    _same_shape(labels, logits, 'softmax_cross_entropy_with_logits')
    return -ops.reduce_sum(labels * log_softmax(logits, axis=axis), axis=axis)


def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """logsumexp(logits) - logits[label], per row; labels are class indices."""
    labels, logits = _labels_logits(labels, logits, 'sparse_softmax_cross_entropy_with_logits')
    if operands.dtype_of(labels).kind not in 'iu':
        raise errors.DTypeError(errors.at_user_line(
            'sparse_softmax_cross_entropy_with_logits: labels must be integer class indices, got '
            f'{operands.dtype_of(labels).name}'))
    if tuple(labels.shape) != tuple(logits.shape)[:-1]:
        raise errors.ShapeError(errors.at_user_line(
            f'sparse_softmax_cross_entropy_with_logits: labels of shape {tuple(labels.shape)} '
            f'do not match logits of shape {tuple(logits.shape)} (expected labels of shape '
            f'{tuple(logits.shape)[:-1]})'))
    # out-of-range classes are an error, as in TensorFlow (one_hot alone gives them a zero row)
    require_in_range(labels, 0, logits.shape[-1], 'sparse_softmax_cross_entropy_with_logits: '
                     f'labels must be class indices in [0, {logits.shape[-1]})')
    hot = ops.one_hot(labels, logits.shape[-1], dtype=operands.dtype_of(logits))
    return -ops.reduce_sum(hot * log_softmax(logits), axis=-1)


def _same_shape(a, b, fn):
    if tuple(a.shape) != tuple(b.shape):
        raise errors.ShapeError(errors.at_user_line(
            f'{fn}: labels of shape {tuple(a.shape)} and logits of shape {tuple(b.shape)} differ'))


def dropout(x, rate, noise_shape=None, seed=None, name=None):
    """Zero each element with probability `rate`, scaling the rest by 1/(1-rate)."""
    from . import random
    if not 0 <= float(rate) < 1:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'dropout rate must be in [0, 1), got {rate}'))
    x = operands.operand(x)
    noise = random.uniform(noise_shape or x.shape, dtype=operands.dtype_of(x))
    keep = ops.greater_equal(noise, rate)
    return ops.where(keep, x * (1.0 / (1.0 - float(rate))), ops.zeros_like(x))


def moments(x, axes, shift=None, keepdims=False, name=None):
    """(mean, variance) of `x` over `axes`, as TensorFlow computes them: the variance is the
    mean squared distance to stop_gradient(mean), whose gradient is the same (the distances
    sum to zero) and needs no pass through the mean."""
    x = operands.operand(x, 'x')
    axes = [axes] if isinstance(axes, int) else list(axes)
    mean = ops.reduce_mean(x, axis=axes, keepdims=True)
    variance = ops.reduce_mean(ops.squared_difference(x, ops.stop_gradient(mean)), axis=axes,
                               keepdims=True)
    if not keepdims:
        mean, variance = ops.squeeze(mean, axes), ops.squeeze(variance, axes)
    return mean, variance


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """(x - mean) * scale / sqrt(variance + variance_epsilon) + offset, arranged as TensorFlow
    arranges it: x * inv + (offset - mean * inv) with inv = scale * rsqrt(variance + eps)."""
    x = operands.operand(x, 'x')
    inv = ops.rsqrt(ops.add(variance, variance_epsilon))
    if scale is not None:
        inv = inv * scale
    shift = -mean * inv if offset is None else offset - mean * inv
    return x * ops.cast(inv, operands.dtype_of(x)) + ops.cast(shift, operands.dtype_of(x))


def embedding_lookup(params, ids, max_norm=None, name=None):
    """TF's embedding_lookup for one table: rows `ids` of `params`, ids of any shape in
    [0, rows) (an id outside is an InvalidArgumentError). Its gradient with respect to the
    table is IndexedSlices, which optimizers apply to the rows looked up."""
    if isinstance(params, (list, tuple)):
        if len(params) != 1:
            raise errors.InvalidArgumentError(errors.at_user_line(
                'embedding_lookup: sharded tables (a list of several params) are not supported'))
        params = params[0]
    if max_norm is not None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            'embedding_lookup: max_norm is not supported'))
    params = operands.operand(params, 'params')
    ids = operands.operand(ids, 'ids')
    rows = tuple(params.shape)[0]
    require_in_range(ids, 0, rows, f'embedding_lookup: ids must be in [0, {rows}) for params '
                                   f'of shape {tuple(params.shape)}')
    return ops.gather(params, ids)

"""tf.nn (TF1 graph versions): activations and cross-entropies, one Operation per call."""
from .. import nn as tj_nn, ops
from .graph_ops import sigmoid, tanh, wrap  # noqa: F401 (public names)

relu = wrap('Relu', tj_nn.relu, operands=('features',))
softplus = wrap('Softplus', tj_nn.softplus, operands=('features',))
softmax = wrap('Softmax', tj_nn.softmax, operands=('logits',))
log_softmax = wrap('LogSoftmax', tj_nn.log_softmax, operands=('logits',))
l2_loss = wrap('L2Loss', tj_nn.l2_loss, operands=('t',))
bias_add = wrap('BiasAdd', ops.add, operands=('value', 'bias'))
sigmoid_cross_entropy_with_logits = wrap(
    'SigmoidCrossEntropyWithLogits', tj_nn.sigmoid_cross_entropy_with_logits, 'logistic_loss',
    operands=())
softmax_cross_entropy_with_logits = wrap(
    'SoftmaxCrossEntropyWithLogits', tj_nn.softmax_cross_entropy_with_logits, operands=())
softmax_cross_entropy_with_logits_v2 = softmax_cross_entropy_with_logits
sparse_softmax_cross_entropy_with_logits = wrap(
    'SparseSoftmaxCrossEntropyWithLogits', tj_nn.sparse_softmax_cross_entropy_with_logits,
    operands=())

"""Keras losses: per-sample functions (`mean_squared_error(y_true, y_pred)` reduces only the
last axis) and `Loss` classes that also average over the batch.

With `from_logits=True` the cross-entropies use tj.nn's stable *_with_logits forms; otherwise
probabilities are clipped to [eps, 1 - eps] (eps = 1e-7) before the log, as Keras does.
"""
import inspect

from . import backend, serialization
from .. import nn, operands, ops
from .backend import element_count, epsilon


def _pair(y_true, y_pred):
    """(y_true cast to y_pred's dtype, y_pred) as tensors."""
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.cast(y_true, operands.dtype_of(y_pred)), y_pred


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.reduce_mean(ops.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.reduce_mean(ops.abs(y_pred - y_true), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        values = nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
    else:
        eps = epsilon()
        p = ops.clip_by_value(y_pred, eps, 1.0 - eps)
        values = -(y_true * ops.log(p + eps) + (1.0 - y_true) * ops.log(1.0 - p + eps))
    return ops.reduce_mean(values, axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        return nn.softmax_cross_entropy_with_logits(labels=y_true, logits=y_pred, axis=axis)
    p = y_pred / ops.reduce_sum(y_pred, axis=axis, keepdims=True)
    p = ops.clip_by_value(p, epsilon(), 1.0 - epsilon())
    return -ops.reduce_sum(y_true * ops.log(p), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Integer class labels of shape (batch,) or (batch, 1) against (batch, classes)."""
    y_pred = ops.convert_to_tensor(y_pred)
    labels = ops.convert_to_tensor(y_true)
    if labels.ndim == y_pred.ndim and labels.ndim and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, -1)
    labels = ops.cast(labels, 'int32')
    logits = y_pred if from_logits else ops.log(
        ops.clip_by_value(y_pred, epsilon(), 1.0 - epsilon()))
    return nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


def _align(y_true, y_pred):
    """Squeeze a trailing size-1 axis when the ranks differ by one (Keras's
    squeeze_or_expand_dimensions), so (batch,) labels never broadcast against (batch, 1)."""
    true_nd, pred_nd = len(getattr(y_true, 'shape', ())), len(getattr(y_pred, 'shape', ()))
    if true_nd == pred_nd + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    elif pred_nd == true_nd + 1 and y_pred.shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


_REDUCTIONS = ('auto', 'sum_over_batch_size', 'sum', 'none')


class Loss:
    """`loss(y_true, y_pred, sample_weight=None)`: per-sample values from `call`, weighted,
    then averaged over all elements ('auto'/'sum_over_batch_size'), summed, or kept ('none')."""

    def __init__(self, reduction='sum_over_batch_size', name=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got {reduction!r}')
        self.reduction = reduction
        self.name = name or type(self).__name__

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {'name': self.name, 'reduction': self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._reduced(y_true, y_pred, sample_weight, None)

    def _reduced(self, y_true, y_pred, sample_weight, batch_size):
        """The reduced loss; `batch_size` (a traced scalar in compiled steps) is the divisor's
        batch part, so no batch-size constant ends up in the step (see element_count)."""
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        values = ops.convert_to_tensor(self.call(*_align(y_true, y_pred)))
        if sample_weight is not None:
            values = values * ops.cast(sample_weight, operands.dtype_of(values))
        if self.reduction == 'none' or values.ndim == 0:
            return values
        total = ops.reduce_sum(values)
        if self.reduction == 'sum':
            return total
        batch_dim = y_pred.shape[0] if y_pred.ndim else None
        return total / element_count(values, batch_size, batch_dim)


class LossFunctionWrapper(Loss):
    """A Loss around a function `fn(y_true, y_pred, **kwargs)` of per-sample values."""

    def __init__(self, fn, reduction='sum_over_batch_size', name=None, **kwargs):
        super().__init__(reduction, name or getattr(fn, '__name__', 'loss'))
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        """The subclasses' arguments; a plain wrapper also names its function."""
        return serialization.wrapper_config(self, LossFunctionWrapper, self.fn,
                                            {**super().get_config(), **self._fn_kwargs})

    @classmethod
    def from_config(cls, config):
        return serialization.wrapper_from_config(cls, LossFunctionWrapper, config)


class MeanSquaredError(LossFunctionWrapper):
    def __init__(self, reduction='sum_over_batch_size', name='mean_squared_error'):
        super().__init__(mean_squared_error, reduction, name)


class MeanAbsoluteError(LossFunctionWrapper):
    def __init__(self, reduction='sum_over_batch_size', name='mean_absolute_error'):
        super().__init__(mean_absolute_error, reduction, name)


class BinaryCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, reduction='sum_over_batch_size',
                 name='binary_crossentropy'):
        super().__init__(binary_crossentropy, reduction, name, from_logits=from_logits)


class CategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, axis=-1, reduction='sum_over_batch_size',
                 name='categorical_crossentropy'):
        super().__init__(categorical_crossentropy, reduction, name, from_logits=from_logits,
                         axis=axis)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, reduction='sum_over_batch_size',
                 name='sparse_categorical_crossentropy'):
        super().__init__(sparse_categorical_crossentropy, reduction, name,
                         from_logits=from_logits)


_FUNCTIONS = {'mean_squared_error': mean_squared_error, 'mse': mse, 'MSE': mse,
              'mean_absolute_error': mean_absolute_error, 'mae': mae, 'MAE': mae,
              'binary_crossentropy': binary_crossentropy,
              'categorical_crossentropy': categorical_crossentropy,
              'sparse_categorical_crossentropy': sparse_categorical_crossentropy}
_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, MeanAbsoluteError,
                                          BinaryCrossentropy, CategoricalCrossentropy,
                                          SparseCategoricalCrossentropy)}


def get(identifier):
    """A loss function for a snake_case name, a Loss for a class name; Loss instances and
    callables are returned unchanged."""
    return backend.lookup(identifier, _FUNCTIONS, _CLASSES, Loss, 'loss')


def as_loss(identifier):
    """A Loss object for anything `get` accepts (what `compile(loss=...)` uses)."""
    loss = get(identifier)
    return loss if isinstance(loss, Loss) else LossFunctionWrapper(loss)


serialization.register_builtins(
    'keras.losses', globals(),
    lambda obj: inspect.isfunction(obj) or isinstance(obj, type) and issubclass(obj, Loss))

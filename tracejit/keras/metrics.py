"""Keras metrics: running means whose state (total, count) lives in Variables.

Inside a compiled training step `update_state` becomes part of the kernel; `result()` is read
only when a value is displayed or logged. `reset_state()` zeroes the Variables in place.
"""
import inspect
import re

import numpy as np

from . import backend, serialization
from .. import operands, ops
from ..variables import Variable
from . import losses
from .backend import element_count, floatx


class Metric:
    """Base class: `update_state(...)`, `result()`, `reset_state()`; calling a metric updates
    it and returns the result."""

    def __init__(self, name=None, dtype=None):
        self.name = name or re.sub(r'(?<!^)(?=[A-Z])', '_', type(self).__name__).lower()
        self.dtype = dtype or floatx()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {'name': self.name, 'dtype': str(self.dtype)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def result(self):
        raise NotImplementedError

    def _value(self):
        """`result()` as a Python float (what fit logs and callbacks see)."""
        return float(self.result())

    def reset_state(self):
        for v in self.variables:
            v.assign(np.zeros(v.shape, v.dtype.np))

    reset_states = reset_state

    @property
    def variables(self):
        return [v for v in vars(self).values() if isinstance(v, Variable)]

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def __repr__(self):
        return f'<{type(self).__name__} {self.name!r}>'


class Mean(Metric):
    """The (weighted) mean of every value passed to `update_state`."""

    def __init__(self, name='mean', dtype=None):
        super().__init__(name, dtype)
        self.total = Variable(0.0, trainable=False, name=f'{self.name}/total', dtype=self.dtype)
        self.count = Variable(0.0, trainable=False, name=f'{self.name}/count', dtype=self.dtype)

    def update_state(self, values, sample_weight=None):
        self._accumulate(values, sample_weight)

    def _accumulate(self, values, sample_weight, batch_size=None, batch_dim=None):
        """Add `values` to the running mean; `batch_size`, `batch_dim` as in
        `backend.element_count`."""
        values = ops.cast(values, self.dtype)
        if sample_weight is None:
            self.total.assign_add(ops.reduce_sum(values))
            self.count.assign_add(element_count(values, batch_size, batch_dim))
            return
        weights = ops.broadcast_to(ops.cast(sample_weight, self.dtype), tuple(values.shape))
        self.total.assign_add(ops.reduce_sum(values * weights))
        self.count.assign_add(ops.reduce_sum(weights))

    def result(self):
        """total / count, or 0 before any update (Keras's div_no_nan)."""
        seen = ops.greater(self.count, 0.0)
        return ops.where(seen, self.total, 0.0) / ops.where(seen, self.count, 1.0)

    def _value(self):
        """`result()` read straight from the Variables' buffers, in their dtype: fit reads
        its metrics after every epoch, and eager ops would cost more than a short epoch's
        batches do."""
        total, count = self.total.numpy(), self.count.numpy()
        return float(total / count) if count > 0 else 0.0


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name or fn.__name__, dtype)
        self._fn, self._fn_kwargs = fn, kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._accumulate(self._values(y_true, y_pred), sample_weight)

    def get_config(self):
        """The subclasses' arguments; a plain wrapper also names its function."""
        return serialization.wrapper_config(self, MeanMetricWrapper, self._fn,
                                            {**super().get_config(), **self._fn_kwargs})

    @classmethod
    def from_config(cls, config):
        return serialization.wrapper_from_config(cls, MeanMetricWrapper, config)

    def update_batch(self, y_true, y_pred, batch_size):
        """`update_state` for a batch of `batch_size` samples (a traced scalar in fit's step)."""
        batch_dim = y_pred.shape[0] if y_pred.ndim else None
        self._accumulate(self._values(y_true, y_pred), None, batch_size, batch_dim)

    def _values(self, y_true, y_pred):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        return self._fn(*losses._align(y_true, y_pred), **self._fn_kwargs)


def accuracy(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.cast(ops.equal(ops.cast(y_true, operands.dtype_of(y_pred)), y_pred), floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_pred = ops.convert_to_tensor(y_pred)
    predicted = ops.cast(ops.greater(y_pred, threshold), operands.dtype_of(y_pred))
    hits = ops.equal(ops.cast(y_true, operands.dtype_of(y_pred)), predicted)
    return ops.reduce_mean(ops.cast(hits, floatx()), axis=-1)


def categorical_accuracy(y_true, y_pred):
    hits = ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1))
    return ops.cast(hits, floatx())


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.ndim and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    hits = ops.equal(ops.cast(y_true, 'int64'), ops.argmax(y_pred, axis=-1))
    return ops.cast(hits, floatx())


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly."""

    def __init__(self, name='accuracy', dtype=None):
        super().__init__(accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name='binary_accuracy', dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name='categorical_accuracy', dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name='sparse_categorical_accuracy', dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class _ShapeResolvedAccuracy(MeanMetricWrapper):
    """compile(metrics=['accuracy']): binary, sparse or categorical accuracy chosen from the
    shapes of labels and predictions, by Keras's rule."""

    def __init__(self, name='accuracy'):
        super().__init__(None, name)

    def _values(self, y_true, y_pred):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
        if pred_shape[-1:] == (1,):
            self._fn = binary_accuracy
        elif len(true_shape) < len(pred_shape) or true_shape[-1:] == (1,):
            self._fn = sparse_categorical_accuracy
        else:
            self._fn = categorical_accuracy
        return super()._values(y_true, y_pred)


_FUNCTIONS = {'accuracy': accuracy, 'binary_accuracy': binary_accuracy,
              'categorical_accuracy': categorical_accuracy,
              'sparse_categorical_accuracy': sparse_categorical_accuracy,
              'mean_squared_error': losses.mean_squared_error, 'mse': losses.mse,
              'mean_absolute_error': losses.mean_absolute_error, 'mae': losses.mae}
_CLASSES = {cls.__name__: cls for cls in (Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                          SparseCategoricalAccuracy)}


def get(identifier):
    """A metric function for a snake_case name, a Metric for a class name; Metric instances and
    callables are returned unchanged."""
    return backend.lookup(identifier, _FUNCTIONS, _CLASSES, Metric, 'metric')


def as_metric(identifier):
    """A Metric object for what `compile(metrics=[...])` accepts; 'accuracy'/'acc' follow the
    shapes of labels and predictions."""
    if identifier in ('accuracy', 'acc'):
        return _ShapeResolvedAccuracy(identifier)
    metric = get(identifier)
    if isinstance(metric, Metric):
        return metric
    name = identifier if isinstance(identifier, str) else getattr(metric, '__name__', 'metric')
    return MeanMetricWrapper(metric, name)


serialization.register_builtins(
    'keras.metrics', globals(),
    lambda obj: inspect.isfunction(obj) or isinstance(obj, type) and issubclass(obj, Metric))

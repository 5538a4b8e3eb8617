"""Normalisation layers: `BatchNormalization` and `LayerNormalization` (Keras 3 semantics).

BatchNormalization in training mode normalises with the batch's mean and (biased) variance and
updates its moving statistics with `moving = moving * momentum + batch * (1 - momentum)`; those
assigns are ordinary Variable updates, so inside `fit` they happen in the compiled step, in the
same kernel as the gradient update. In inference mode, and whenever the layer is not
trainable (Keras 3's rule, the one fine-tuning relies on), it uses the moving statistics.
"""
from .. import nn, ops
from . import initializers
from .base_layer import InputSpec, Layer


def _normalized_axes(axis, ndim, layer):
    """`axis` (an int or a list) as sorted non-negative axes of an `ndim`-rank input."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f'layer {layer.name!r}: axis {a} is out of bounds for inputs of '
                             f'rank {ndim}')
        out.append(a % ndim)
    return sorted(set(out))


class _Normalization(Layer):
    """What both layers share: the axis, epsilon, and the gamma/beta weights over the
    normalised axes (shape: those axes' sizes)."""

    def __init__(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                 **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.gamma = self.beta = None

    def _build_affine(self, input_shape):
        ndim = len(input_shape)
        self._axes = _normalized_axes(self.axis, ndim, self)
        sizes = tuple(input_shape[a] for a in self._axes)
        if any(d is None for d in sizes):
            raise ValueError(f'layer {self.name!r}: the normalised axes {self._axes} of the '
                             f'inputs must have known sizes, got shape {tuple(input_shape)}')
        self._param_shape = tuple(int(d) for d in sizes)
        if self.scale:
            self.gamma = self.add_weight('gamma', self._param_shape,
                                         initializer=self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight('beta', self._param_shape,
                                        initializer=self.beta_initializer)
        self.input_spec = InputSpec(min_ndim=ndim, axes={a: d for a, d in
                                                         zip(self._axes, self._param_shape)})
        self._broadcast_shape = tuple(input_shape[a] if a in self._axes else 1
                                      for a in range(ndim))

    def _broadcast(self, value):
        """A weight of shape `_param_shape` shaped to broadcast against the inputs."""
        return None if value is None else ops.reshape(value, self._broadcast_shape)

    def get_config(self):
        return {**super().get_config(), 'axis': self.axis, 'epsilon': self.epsilon,
                'center': self.center, 'scale': self.scale,
                'beta_initializer': self.beta_initializer,
                'gamma_initializer': self.gamma_initializer}


class BatchNormalization(_Normalization):
    """Normalise over every axis but `axis` with the batch statistics (training) or the
    moving ones (inference): `gamma * (x - mean) / sqrt(var + epsilon) + beta`."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer='zeros', gamma_initializer='ones',
                 moving_mean_initializer='zeros', moving_variance_initializer='ones',
                 **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         **kwargs)
        self.momentum = float(momentum)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        self._build_affine(input_shape)
        self.moving_mean = self.add_weight('moving_mean', self._param_shape, trainable=False,
                                           initializer=self.moving_mean_initializer)
        self.moving_variance = self.add_weight('moving_variance', self._param_shape,
                                               trainable=False,
                                               initializer=self.moving_variance_initializer)

    def call(self, inputs, training=None):
        if training and self.trainable:
            reduction = [a for a in range(len(inputs.shape)) if a not in self._axes]
            mean, variance = nn.moments(inputs, reduction)
            mean = ops.reshape(mean, self._param_shape)
            variance = ops.reshape(variance, self._param_shape)
            self.moving_mean.assign(self.moving_mean * self.momentum
                                    + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + variance * (1.0 - self.momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return nn.batch_normalization(inputs, self._broadcast(mean), self._broadcast(variance),
                                      self._broadcast(self.beta), self._broadcast(self.gamma),
                                      self.epsilon)

    def get_config(self):
        return {**super().get_config(), 'momentum': self.momentum,
                'moving_mean_initializer': self.moving_mean_initializer,
                'moving_variance_initializer': self.moving_variance_initializer}


class LayerNormalization(_Normalization):
    """Normalise each sample over `axis` (default the last) with its own mean and variance,
    then scale by gamma and shift by beta (weights over `axis`)."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer='zeros', gamma_initializer='ones', **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         **kwargs)

    def build(self, input_shape):
        self._build_affine(input_shape)

    def call(self, inputs):
        mean, variance = nn.moments(inputs, self._axes, keepdims=True)
        return nn.batch_normalization(inputs, mean, variance, self._broadcast(self.beta),
                                      self._broadcast(self.gamma), self.epsilon)

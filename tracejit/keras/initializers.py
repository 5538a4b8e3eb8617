"""Weight initialisers (Keras names and defaults), drawn from `tj.random`.

Each initialiser returns a concrete numpy array for `(shape, dtype)`. Draws come from the
`tj.random` generator, so `tj.random.set_seed` makes model initialisation reproducible; an
initialiser given its own `seed` draws from a numpy generator with that seed instead, and so
returns the same values on every call, as in Keras.
"""
import math

import numpy as np

from .. import dtypes, random
from . import serialization
from .backend import floatx, init_scope


class Initializer:
    """Base class: `initializer(shape, dtype=None)` returns the initial value."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _dtype(dtype):
    return dtypes.as_np_dtype(dtype or floatx())


def _shape(shape):
    return tuple(int(d) for d in shape)


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(_shape(shape), _dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(_shape(shape), _dtype(dtype))


class Constant(Initializer):
    def __init__(self, value=0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(_shape(shape), self.value, _dtype(dtype))

    def get_config(self):
        return {'value': self.value}


class _Random(Initializer):
    """Uniform and (truncated) normal draws from tj.random, or from `seed` when given."""

    def __init__(self, seed=None):
        self.seed = seed

    def _uniform(self, shape, low, high):
        if self.seed is not None:
            return np.random.default_rng(self.seed).uniform(low, high, shape)
        with init_scope():
            return np.asarray(random.uniform(shape, low, high, dtype=np.float64))

    def _normal(self, shape, truncated=False):
        """Standard normal draws; `truncated` redraws those beyond two standard deviations."""
        rng = np.random.default_rng(self.seed) if self.seed is not None else None
        z = self._standard_normal(rng, shape)
        while truncated and np.any(np.abs(z) > 2):
            outside = np.abs(z) > 2
            z[outside] = self._standard_normal(rng, (int(outside.sum()),))
        return z

    @staticmethod
    def _standard_normal(rng, shape):
        if rng is not None:
            return rng.standard_normal(shape)
        with init_scope():
            return np.array(random.normal(shape, dtype=np.float64))

    def get_config(self):
        return {'seed': self.seed}


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self._uniform(_shape(shape), self.minval, self.maxval).astype(_dtype(dtype))

    def get_config(self):
        return {'minval': self.minval, 'maxval': self.maxval, 'seed': self.seed}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        z = self._normal(_shape(shape))
        return (z * self.stddev + self.mean).astype(_dtype(dtype))

    def get_config(self):
        return {'mean': self.mean, 'stddev': self.stddev, 'seed': self.seed}


class TruncatedNormal(RandomNormal):
    """Normal draws beyond two standard deviations are redrawn."""

    def __call__(self, shape, dtype=None):
        z = self._normal(_shape(shape), truncated=True)
        return (z * self.stddev + self.mean).astype(_dtype(dtype))


def _fans(shape):
    """(fan_in, fan_out): rows and columns of a matrix, times the receptive field for
    convolution kernels."""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(_Random):
    """Draws with variance scale / n, n = fan_in, fan_out or their mean (`mode`)."""

    # std of a standard normal truncated to [-2, 2]: dividing by it restores the target std
    _TRUNCATED_STD = 0.87962566103423978

    def __init__(self, scale=1.0, mode='fan_in', distribution='truncated_normal', seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        if mode not in ('fan_in', 'fan_out', 'fan_avg'):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ('truncated_normal', 'untruncated_normal', 'uniform'):
            raise ValueError("distribution must be 'truncated_normal', 'untruncated_normal' or "
                             f"'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        fan_in, fan_out = _fans(shape)
        n = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == 'uniform':
            limit = math.sqrt(3.0 * variance)
            values = self._uniform(shape, -limit, limit)
        elif self.distribution == 'truncated_normal':
            values = self._normal(shape, truncated=True) * (math.sqrt(variance)
                                                            / self._TRUNCATED_STD)
        else:
            values = self._normal(shape) * math.sqrt(variance)
        return values.astype(_dtype(dtype))

    def get_config(self):
        return {'scale': self.scale, 'mode': self.mode, 'distribution': self.distribution,
                'seed': self.seed}


class Orthogonal(_Random):
    """A (gain-scaled) orthogonal matrix, as Keras draws it: the Q of the QR decomposition of
    a standard normal (max(rows, cols), min(rows, cols)) matrix, its columns' signs fixed by
    R's diagonal (so Q is uniform over orthogonal matrices), transposed when rows < cols;
    rows are the product of all but the last axis."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError('The tensor to initialize must be at least two-dimensional. '
                             f'Received: shape={shape} of rank {len(shape)}.')
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(self._normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {'gain': self.gain, 'seed': self.seed}


class _FixedScaling(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution its class fixes: only `seed` is
    configurable."""

    def get_config(self):
        return {'seed': self.seed}


class GlorotUniform(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, 'fan_avg', 'uniform', seed)


class GlorotNormal(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, 'fan_avg', 'truncated_normal', seed)


class HeNormal(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, 'fan_in', 'truncated_normal', seed)


class HeUniform(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, 'fan_in', 'uniform', seed)


class LecunNormal(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, 'fan_in', 'truncated_normal', seed)


class LecunUniform(_FixedScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, 'fan_in', 'uniform', seed)


_CLASSES = (Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, GlorotUniform,
            GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal)
_SNAKE = {'zeros': Zeros, 'ones': Ones, 'constant': Constant, 'random_uniform': RandomUniform,
          'random_normal': RandomNormal, 'truncated_normal': TruncatedNormal,
          'glorot_uniform': GlorotUniform, 'glorot_normal': GlorotNormal,
          'he_normal': HeNormal, 'he_uniform': HeUniform, 'lecun_normal': LecunNormal,
          'lecun_uniform': LecunUniform, 'orthogonal': Orthogonal}
_ALIASES = {'uniform': RandomUniform, 'normal': RandomNormal}   # Keras's short names
_BY_NAME = dict(_SNAKE, **_ALIASES, **{cls.__name__: cls for cls in _CLASSES})


def get(identifier):
    """An initialiser for a name ('glorot_uniform' or 'GlorotUniform'), an instance, a class,
    a saved record, or any callable `(shape, dtype) -> array`; None stays None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return serialization.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f'unknown initializer {identifier!r}; use one of {sorted(_SNAKE)}')
        return _BY_NAME[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f'initializer must be a name, an Initializer or a callable, '
                    f'got {identifier!r}')


def serialize(initializer):
    """The record of an initialiser (Keras's {'module', 'class_name', 'config', ...})."""
    return serialization.serialize_keras_object(initializer)


serialization.register_builtins(
    'keras.initializers', globals(),
    lambda obj: isinstance(obj, type) and issubclass(obj, Initializer))

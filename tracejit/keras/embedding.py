"""Keras `Embedding`: rows of a (input_dim, output_dim) table looked up by integer ids.

The lookup is a gather from the `embeddings` Variable, so its gradient is IndexedSlices and an
optimizer updates only the rows looked up where its rule allows (see optimizers.py). As Keras
3 does, ids are cast to int32 unless they are int32/int64, a negative id counts from the end
(Keras's `take`), and an id outside [-input_dim, input_dim) is an InvalidArgumentError.
"""
import warnings

import numpy as np

from .. import ops
from ..operands import dtype_of
from . import initializers
from .base_layer import Layer


class Embedding(Layer):
    """Turns ids of any shape into vectors: output shape `ids.shape + (output_dim,)`."""

    def __init__(self, input_dim, output_dim, embeddings_initializer='uniform', mask_zero=False,
                 input_length=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (('input_dim', input_dim), ('output_dim', output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f'Embedding: {name} must be a positive integer, got {value!r}')
        if input_length is not None:
            warnings.warn('Argument `input_length` is deprecated. Just remove it.',
                          UserWarning, stacklevel=2)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self._initializer_arg = embeddings_initializer
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero, self.input_length = bool(mask_zero), input_length

    def build(self, input_shape=None):
        self.embeddings = self.add_weight('embeddings', (self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer)

    def call(self, inputs):
        if dtype_of(inputs) not in (np.int32, np.int64):
            inputs = ops.cast(inputs, 'int32')
        return ops.gather(self.embeddings, inputs)

    def compute_mask(self, inputs, mask=None):
        """With `mask_zero`, True where the id is not 0 (0 is padding); else None."""
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        """The constructor's arguments: `Embedding(**layer.get_config())` is an equal layer."""
        config = {'name': self.name, 'trainable': self.trainable, 'dtype': self.dtype.name,
                  'input_dim': self.input_dim, 'output_dim': self.output_dim,
                  'embeddings_initializer': self._initializer_arg, 'mask_zero': self.mask_zero}
        if self.input_length is not None:
            config['input_length'] = self.input_length
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

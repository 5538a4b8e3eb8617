"""Layer wrappers: `Bidirectional` (an RNN run forwards and backwards, outputs merged) and
`TimeDistributed` (a layer applied to every timestep).
"""
import math

from .. import ops
from . import serialization
from .base_layer import InputSpec, Layer

_MERGE_MODES = ('sum', 'mul', 'ave', 'concat', None)


def _copy(layer, name, **changes):
    """A new, unbuilt layer with `layer`'s config, renamed and changed (Keras's copy)."""
    record = serialization.serialize_keras_object(layer)
    record.pop('build_config', None)
    record['config'] = dict(record['config'], name=name, **changes)
    return serialization.deserialize_keras_object(record)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs a copy of `layer` forwards and one backwards (or `backward_layer`) and merges
    their outputs (`merge_mode` concat, sum, mul, ave, or None for both); with
    return_sequences the backward outputs are put back into time order first."""

    def __init__(self, layer, merge_mode='concat', weights=None, backward_layer=None,
                 **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError('Please initialize `Bidirectional` layer with a '
                             f'`keras.layers.Layer` instance. Received: {layer!r}')
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError('`backward_layer` need to be a `keras.layers.Layer` instance. '
                             f'Received: {backward_layer!r}')
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f'Invalid merge mode. Received: {merge_mode!r}. Merge mode should '
                             'be one of {"sum", "mul", "ave", "concat", None}')
        if weights is not None:
            raise NotImplementedError('Bidirectional: weights= is not supported; call '
                                      'set_weights after the layer is built')
        super().__init__(**kwargs)
        self.forward_layer = _copy(layer, f'forward_{_strip(layer.name, "forward_")}')
        self.backward_layer = backward_layer if backward_layer is not None else _copy(
            layer, f'backward_{_strip(layer.name, "backward_")}',
            go_backwards=not layer.go_backwards)
        self._check_pair()
        for half in (self.forward_layer, self.backward_layer):
            half.zero_output_for_mask = half.return_sequences   # as Keras forces it
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = False
        self.input_spec = InputSpec(min_ndim=3)

    def _check_pair(self):
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError('Forward layer and backward layer should have different '
                             f'`go_backwards` value. Received: forward_layer.go_backwards '
                             f'{forward.go_backwards}, backward_layer.go_backwards='
                             f'{backward.go_backwards}')
        for attribute in ('stateful', 'return_sequences', 'return_state'):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ValueError(
                    'Forward layer and backward layer are expected to have the same value for '
                    f'attribute "{attribute}", got "{getattr(forward, attribute)}" for forward '
                    f'layer and "{getattr(backward, attribute)}" for backward layer')

    def build(self, sequences_shape, initial_state_shape=None):
        for half in (self.forward_layer, self.backward_layer):
            if not half.built:
                half.build(sequences_shape)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(sequences, initial_state=forward_state, mask=mask,
                               training=training)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, mask=mask,
                                    training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        output = self._merge(y, y_rev)
        if not self.return_state:
            return output
        return (list(output) if self.merge_mode is None else [output]) + states

    def _merge(self, y, y_rev):
        if self.merge_mode == 'concat':
            return ops.concat([y, y_rev], -1)
        if self.merge_mode == 'sum':
            return y + y_rev
        if self.merge_mode == 'ave':
            return (y + y_rev) / 2
        if self.merge_mode == 'mul':
            return y * y_rev
        return [y, y_rev]

    def compute_mask(self, inputs, mask=None):
        mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        output_mask = mask if self.return_sequences else None
        if self.merge_mode is None:
            output_mask = [output_mask, output_mask]
        if self.return_state:
            states = len(self.forward_layer.state_size) * 2
            return ([output_mask] if self.merge_mode else output_mask) + [None] * states
        return output_mask

    def get_config(self):
        return {**self._base_config(), 'merge_mode': self.merge_mode,
                'layer': serialization.serialize_keras_object(self.forward_layer),
                'backward_layer': serialization.serialize_keras_object(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ('layer', 'backward_layer'):
            if config.get(key) is not None:
                config[key] = serialization.deserialize_keras_object(config[key],
                                                                     custom_objects)
        return cls(**config)


class TimeDistributed(Layer):
    """Applies `layer` to every timestep (axis 1) of its inputs: the batch and time axes
    are folded into one for a single call of the layer, so its work is one pass (one matmul
    for a Dense) over batch * time rows."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError('Please initialize `TimeDistributed` layer with a '
                             f'`keras.layers.Layer` instance. Received: {layer!r}')
        super().__init__(**kwargs)
        self.layer = layer
        self.input_spec = InputSpec(min_ndim=3)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((input_shape[0],) + tuple(input_shape[2:]))

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape)
        if mask is not None and tuple(mask.shape)[:2] != shape[:2]:
            raise ValueError(f'The `mask` passed to the `TimeDistributed` layer has a shape '
                             f'{tuple(mask.shape)} that is incompatible with the input shape '
                             f'{shape}')
        folded = ops.reshape(inputs, (math.prod(shape[:2]),) + shape[2:])
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, shape[:2] + tuple(outputs.shape)[1:])

    def get_config(self):
        return {**self._base_config(), 'layer': serialization.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config['layer'] = serialization.deserialize_keras_object(config['layer'], custom_objects)
        return cls(**config)

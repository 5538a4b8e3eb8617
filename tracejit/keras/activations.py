"""Activation functions, also by name (`Dense(3, activation='relu')`)."""
import inspect

from .. import nn, ops
from . import serialization


def linear(x):
    return x


def relu(x):
    return nn.relu(x)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return nn.softmax(x, axis=axis)


def softplus(x):
    return nn.softplus(x)


def elu(x):
    return nn.elu(x)


_BY_NAME = {f.__name__: f for f in (linear, relu, sigmoid, tanh, softmax, softplus, elu)}
# tj.nn / tj ops passed as activations (`activation=tf.nn.relu`, as the tutorials do) become
# the activation of that name, so a saved model names them
_SAME_AS = {nn.relu: relu, ops.sigmoid: sigmoid, ops.tanh: tanh, nn.softmax: softmax,
            nn.softplus: softplus, nn.elu: elu}


def get(identifier):
    """A function for a name, a callable, a saved record, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        identifier = serialization.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f'unknown activation {identifier!r}; use one of '
                             f'{sorted(_BY_NAME)} or pass a callable')
        return _BY_NAME[identifier]
    if callable(identifier):
        return _SAME_AS.get(identifier, identifier)
    raise TypeError(f'activation must be a name or a callable, got {identifier!r}')


def serialize(activation):
    """A built-in activation's name, or the record of a registered custom function."""
    return serialization.serialize_keras_object(activation)


serialization.register_builtins('keras.activations', globals(), inspect.isfunction)

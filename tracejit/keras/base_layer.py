"""The Keras `Layer` base class: building on first call, `add_weight`, weight tracking, the
`training` flag, and `InputSpec`.

A Layer is a `tj.Module`, so a layer or model passed to `tj.function` is keyed by identity and
the Variables its call reads become state of the compiled step. Weights are listed in the order
they were created or assigned (Keras's order, which `save_weights` relies on), not sorted by
attribute name as `tf.Module` does. Weights created while a step is being traced get concrete
initial values (see `backend.init_scope`), and only on a function's first trace, as in TF.

The `training` flag flows down the call tree: a layer called without `training=` inside a model
called with `training=True` sees True, so `Dropout` works inside `Sequential` and subclassed
models. The flag is a Python bool, hence static in compiled functions.
"""
import collections
import functools
import inspect
import re
import types

import numpy as np

from .. import autograph, dtypes, errors, operands, ops
from ..checkpoint import is_trackable
from ..tensor import TensorOps
from ..variables import Module, Variable
from . import initializers, serialization, symbolic
from .backend import floatx, init_scope
from .saving import assign_weights

_training_stack = []                   # `training` of the enclosing layer calls, innermost last
_name_counts = collections.Counter()   # Keras names layers dense, dense_1, dense_2, ...


def _snake_case(name):
    """Keras's default layer names: BatchNormalization -> batch_normalization, ReLU -> re_lu."""
    name = re.sub(r'(.)([A-Z][a-z]+)', r'\1_\2', name)
    return re.sub(r'([a-z])([A-Z])', r'\1_\2', name).lower()


def unique_name(base):
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f'{base}_{count}'


class InputSpec:
    """What a layer accepts: a minimum rank and fixed sizes of some axes ({-1: 3})."""

    def __init__(self, min_ndim=None, axes=None):
        self.min_ndim, self.axes = min_ndim, dict(axes or {})

    def check(self, layer, shape):
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise errors.ShapeError(
                f'Input 0 of layer "{layer.name}" is incompatible with the layer: expected '
                f'min_ndim={self.min_ndim}, found ndim={len(shape)}. Full shape received: {shape}')
        for axis, size in self.axes.items():
            if len(shape) < abs(axis) or shape[axis] != size:
                raise errors.ShapeError(
                    f'Input 0 of layer "{layer.name}" is incompatible with the layer: expected '
                    f'axis {axis} of input shape to have value {size}, but received input with '
                    f'shape {shape}')


class Layer(Module):
    """Base layer: subclasses create weights in `build(input_shape)` and compute in `call`."""

    def __new__(cls, *args, **kwargs):
        layer = super().__new__(cls)
        layer._constructor_arguments = _bound_arguments(cls, args, kwargs)
        return layer

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, input_dim=None,
                 **kwargs):
        if kwargs:
            raise TypeError(f'{type(self).__name__} got unexpected keyword arguments '
                            f'{sorted(kwargs)}')
        super().__init__(name or unique_name(_snake_case(type(self).__name__)))
        self._own_weights = []
        self._weight_names = {}   # add_weight name -> weight: the weights' checkpoint names
        self.built = False
        self.trainable = trainable
        self.input_spec = None
        self._dtype = dtypes.as_np_dtype(dtype or floatx())
        if input_dim is not None:
            input_shape = (input_dim,)
        self._batch_input_shape = None if input_shape is None else (None, *input_shape)
        self._output_shape = None

    def __init_subclass__(cls, **kwargs):
        """A subclass's `build` marks the layer built when it returns, also when the user
        calls it directly (as the seed tutorial does), so a later call never builds twice."""
        super().__init_subclass__(**kwargs)
        if 'build' in cls.__dict__:
            cls.build = _marks_built(cls.__dict__['build'])

    @property
    def dtype(self):
        return dtypes.as_dtype(self._dtype)

    # -- calling ----------------------------------------------------------------------------

    def build(self, input_shape):
        """Create the weights, knowing the input shape (called once, by the first call)."""
        self.built = True

    def call(self, inputs, *args, **kwargs):
        return inputs

    def __call__(self, inputs, *args, **kwargs):
        if symbolic.is_symbolic(inputs):
            return symbolic.call_layer(self, inputs, args, kwargs)   # functional API
        inputs = self._convert_inputs(inputs)
        shape = _shape_of(inputs)
        if not self.built:
            self._check_input(shape)
            if shape is not None and getattr(self, '_build_input_shape', None) is None:
                self._build_input_shape = (None,) + shape[1:]
            self._maybe_build(shape)
        self._check_input(shape)
        training = self._resolve_training(args, kwargs)
        _training_stack.append(training)
        try:
            outputs = autograph.in_trace(self.call)(inputs, *args, **kwargs)
        finally:
            _training_stack.pop()
        self.built = True
        out_shape = _shape_of(outputs)
        self._output_shape = None if out_shape is None else (None,) + out_shape[1:]
        return outputs

    def _check_input(self, shape):
        if self.input_spec is not None and shape is not None:
            self.input_spec.check(self, shape)

    def _resolve_training(self, args, kwargs):
        """This call's `training` flag: given, or inherited from the enclosing call. It is put
        into `kwargs` when `call` takes it (Keras passes it only then)."""
        position = _training_position(type(self))
        if position is not None and position < len(args):
            return args[position]      # passed positionally: layer(x, True)
        training = kwargs.pop('training', None)
        if training is None and _training_stack:
            training = _training_stack[-1]
        if position is not None:
            kwargs['training'] = training
        return training

    def _maybe_build(self, input_shape):
        self.build(input_shape)

    def _convert_inputs(self, inputs):
        """Tensors for array-likes; floating inputs cast to the layer's dtype (Keras autocast)."""
        if isinstance(inputs, (list, tuple)) and any(
                isinstance(x, (TensorOps, np.ndarray)) for x in inputs):
            return type(inputs)(self._convert_inputs(x) for x in inputs)   # several inputs
        if isinstance(inputs, dict) or inputs is None:
            return inputs
        if isinstance(inputs, Variable):
            inputs = inputs.value()
        elif not isinstance(inputs, TensorOps):
            inputs = ops.convert_to_tensor(inputs)
        if ops.is_floating(inputs) and operands.dtype_of(inputs) != self._dtype:
            inputs = ops.cast(inputs, self._dtype)
        return inputs

    # -- weights ----------------------------------------------------------------------------

    def add_weight(self, name=None, shape=(), dtype=None, initializer=None, trainable=True,
                   **kwargs):
        """A new weight Variable of `shape`, initialised by `initializer` (default
        'glorot_uniform' for floats, 'zeros' otherwise) and tracked by this layer."""
        if kwargs:
            raise TypeError(f'add_weight got unsupported arguments {sorted(kwargs)}')
        dtype = dtypes.as_np_dtype(dtype or self._dtype)
        shape = tuple(shape)
        if any(d is None or int(d) < 0 for d in shape):
            raise ValueError(f'layer {self.name!r}: weight {name!r} needs a fully known shape, '
                             f'got {shape}')
        shape = tuple(int(d) for d in shape)
        if initializer is None:
            initializer = 'glorot_uniform' if dtype.kind == 'f' else 'zeros'
        init = initializers.get(initializer)
        with init_scope():
            value = np.asarray(init(shape, dtype=dtype), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f'initializer of weight {name!r} returned shape {value.shape}, '
                             f'expected {shape}')
        local_name = name or 'Variable'
        weight = Variable(value, trainable=trainable, name=f'{self.name}/{local_name}',
                          dtype=dtype)
        for restore in getattr(self, '_deferred_restores', ()):   # see tracejit/checkpoint.py
            if restore(local_name, weight):
                break
        self._own_weights.append(weight)
        self._weight_names.setdefault(local_name, weight)
        return weight

    @property
    def weights(self):
        return [v for v, _ in _tracked_weights(self)]

    @property
    def trainable_weights(self):
        return [v for v, trainable in _tracked_weights(self) if trainable]

    @property
    def non_trainable_weights(self):
        return [v for v, trainable in _tracked_weights(self) if not trainable]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def count_params(self):
        return int(sum(np.prod(v.shape, dtype=np.int64) for v in self.weights))

    def get_weights(self):
        return [np.array(v) for v in self.weights]

    def set_weights(self, weights):
        assign_weights(self, [np.asarray(w) for w in weights], 'the given list')

    # -- checkpoints (tj.train.Checkpoint) ------------------------------------------------

    _accepts_deferred_restores = True   # add_weight restores values saved before it ran
    _NOT_CHECKPOINTED = frozenset({'_own_weights', '_weight_names', '_deferred_restores',
                                   '_constructor_arguments'})

    def _checkpoint_children(self):
        """Weights by their add_weight names, then the attributes that hold layers, modules
        or Variables (TF's dependency names: `kernel`, `bias`, attribute names)."""
        found = dict(self._weight_names)
        for name, value in vars(self).items():
            if name not in self._NOT_CHECKPOINTED and name not in found and is_trackable(value):
                found[name] = value
        return found

    # -- configs (model.save, keras.saving) ----------------------------------------------

    def _base_config(self):
        return {'name': self.name, 'trainable': self.trainable, 'dtype': self.dtype.name}

    def get_config(self):
        """The constructor's keyword arguments, JSON-able, with `name`, `trainable` and
        `dtype`: by default the arguments this layer was created with (Keras 3's automatic
        config); a subclass whose arguments are not plain values overrides this."""
        config = self._base_config()
        overridden = type(self).get_config is not Layer.get_config
        if self._constructor_arguments is None:
            return config
        for key, value in self._constructor_arguments.items():
            if key in config:
                continue
            try:
                config[key] = serialization.serialize_keras_object(value)
            except TypeError as e:
                if not overridden:
                    raise NotImplementedError(
                        f'{type(self).__name__}.get_config: the argument {key}={value!r} is '
                        f'not serializable ({e}); override get_config() to return plain '
                        'values for it') from None
        return config

    @classmethod
    def from_config(cls, config):
        """`cls(**config)`; `name`, `trainable` and `dtype` are set afterwards when the
        constructor does not take them (a subclassed model's `__init__(self)`)."""
        accepted = serialization.accepted_arguments(cls)
        config = dict(config)
        base = {k: config.pop(k) for k in ('name', 'trainable', 'dtype')
                if k in config and k not in accepted}
        layer = cls(**config)
        if 'name' in base:
            layer._name = base['name']
        if 'trainable' in base:
            layer.trainable = base['trainable']
        return layer

    def get_build_config(self):
        """{'input_shape': ...} of the first call or build, None before."""
        shape = getattr(self, '_build_input_shape', None)
        return None if shape is None else {'input_shape': list(shape)}

    def build_from_config(self, config):
        shape = config.get('input_shape')
        if shape is not None and not self.built:
            self._build_input_shape = tuple(shape)
            self.build(tuple(shape))

    def _sublayers(self):
        """Layers held directly by this one (attributes, lists, dicts), in assignment order."""
        found = []
        _visit(vars(self).values(), lambda obj: found.append(obj) if isinstance(obj, Layer)
               else None)
        return list(dict.fromkeys(found))


def _marks_built(build):
    @functools.wraps(build)
    def wrapper(self, input_shape):
        if getattr(self, '_build_input_shape', None) is None and input_shape is not None:
            self._build_input_shape = tuple(input_shape)
        build(self, input_shape)
        self.built = True
    return wrapper


_signatures = {}


def _bound_arguments(cls, args, kwargs):
    """The constructor's arguments by name, defaults filled in and **kwargs merged (a
    read-only mapping, which weight tracking does not walk); None when they do not bind, as
    the constructor then raises."""
    if cls not in _signatures:
        _signatures[cls] = inspect.signature(cls.__init__)
    signature = _signatures[cls]
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    params = list(signature.parameters.values())
    arguments = {}
    for param in params[1:]:
        if param.kind is param.VAR_KEYWORD:
            arguments.update(bound.arguments.get(param.name, {}))
        elif param.kind is not param.VAR_POSITIONAL:
            arguments[param.name] = bound.arguments[param.name]
    return types.MappingProxyType(arguments)


def _visit(values, fn):
    """Call `fn` on each object in `values`, looking inside lists, tuples and dicts."""
    for value in values:
        if isinstance(value, (list, tuple)):
            _visit(value, fn)
        elif isinstance(value, dict):
            _visit(value.values(), fn)
        else:
            fn(value)


def _tracked_weights(layer):
    """[(Variable, effectively trainable)] in creation/assignment order, each once: the layer's
    own weights, Variables held in attributes, then those of nested layers and tf.Modules."""
    seen, out = set(), []

    def visit(obj, trainable):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Variable):
            out.append((obj, trainable and obj.trainable))
        elif isinstance(obj, Layer):
            _visit(vars(obj).values(), lambda child: visit(child, trainable and obj.trainable))
        elif isinstance(obj, Module):
            for v in obj.variables:
                visit(v, trainable)

    visit(layer, True)
    return out


def _shape_of(value):
    shape = getattr(value, 'shape', None)
    return None if shape is None else tuple(shape)


_training_positions = {}
_KEYWORD_ONLY = 1 << 30   # `training` accepted, but not positionally


def _training_position(cls):
    """Index in `*args` (after `inputs`) at which `cls.call` takes `training`, a huge number if
    only by keyword, None if it does not take it (Keras passes `training` only then)."""
    if cls not in _training_positions:
        params = list(inspect.signature(cls.call).parameters.values())[2:]   # self, inputs
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if 'training' in names:
            _training_positions[cls] = names.index('training')
        elif any(p.name == 'training' or p.kind is p.VAR_KEYWORD for p in params):
            _training_positions[cls] = _KEYWORD_ONLY
        else:
            _training_positions[cls] = None
    return _training_positions[cls]

"""Keras models: `Model` (subclass it and write `call`) and `Sequential`.

A Model is a Layer with a training API: `compile` picks the optimizer, loss and metrics;
`fit`, `evaluate` and `predict` run compiled steps (see training.py); `summary` prints the
layer table; `save_weights`/`load_weights` use one `.npz` checkpoint (see saving.py).
Extra arguments of `call` (like a Python flag `isidentity=True`) pass straight through and are
static in compiled functions. `Model(inputs, outputs)` makes a `Functional` model: a graph of
layer calls recorded on `keras.Input`s (see functional.py).
"""
import numpy as np

from .. import tree
from . import (compile_utils, functional, metrics as metrics_module, model_file, optimizers,
               saving, serialization, summary as summary_module, training)
from .layers import Layer, unique_name
from .masking import call_with_mask


class Model(Layer):
    """Subclass and implement `call(inputs, training=None, ...)`; Layers and Variables
    assigned to attributes are tracked, in assignment order."""

    def __new__(cls, *args, **kwargs):
        """`Model(inputs, outputs)` makes a functional model, as in Keras."""
        if cls is Model and (args or 'inputs' in kwargs or 'outputs' in kwargs):
            cls = Functional
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        if args:
            raise TypeError(f'{type(self).__name__}() takes keyword arguments only (name=, '
                            f'trainable=, dtype=), got {len(args)} positional')
        super().__init__(**kwargs)
        self.optimizer = self.compiled_loss = self.loss_tracker = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self.run_eagerly = False
        self._steps = training.Steps(self)
        self._steps_per_execution = 1

    def call(self, inputs, training=None):
        raise NotImplementedError(f'{type(self).__name__} must implement call(inputs)')

    def _maybe_build(self, input_shape):
        """Models build lazily through their layers' first calls, unless they define build."""
        if type(self).build is not Model.build:
            super()._maybe_build(input_shape)

    def build(self, input_shape):
        """Create the weights by calling the model once on zeros of `input_shape` (None, the
        batch dimension, becomes 1)."""
        if not self.built:
            shape = tuple(1 if d is None else int(d) for d in input_shape)
            self(np.zeros(shape, np.float32))

    @property
    def layers(self):
        return self._sublayers()

    config_keys = ('layers', 'input_layers', 'output_layers')   # a functional config's

    @classmethod
    def from_config(cls, config):
        """A functional config (layers with inbound nodes) makes a Functional model."""
        if cls is Model and 'input_layers' in config:
            return Functional.from_config(config)
        return super().from_config(config)

    def get_layer(self, name=None, index=None):
        """The layer called `name`, or the one at `index` in `layers`."""
        if (name is None) == (index is None):
            raise ValueError('Provide either a layer name or layer index at `get_layer`, '
                             f'got name={name!r}, index={index!r}')
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f'Was asked to retrieve layer at index {index} but model '
                                 f'only has {len(layers)} layers.')
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f'No such layer: {name}. Existing layers are: '
                         f'{[layer.name for layer in layers]}.')

    def _check_data_shape(self, shape):
        """Refuse data of the wrong shape before training starts; subclassed models find out
        when their layers are first called (still before any weight changes)."""

    # -- training configuration -------------------------------------------------------------

    def compile(self, optimizer='rmsprop', loss=None, metrics=None, loss_weights=None,
                run_eagerly=False, steps_per_execution=1):
        """Choose optimizer, loss and metrics (objects or names: 'adam', 'mse',
        'sparse_categorical_crossentropy', 'accuracy', ...). Models with several outputs take
        a loss, `loss_weights` and metrics per output, as lists or dicts by output name
        (see compile_utils)."""
        if loss is None:
            raise ValueError('compile needs a loss, e.g. loss="mse"')
        names = getattr(self, 'output_names', None) or ['output']
        self.optimizer = optimizers.get(optimizer)
        self._compile_arguments = {'loss': loss, 'loss_weights': loss_weights,
                                   'metrics': metrics}
        self.compiled_loss = compile_utils.OutputLosses(loss, loss_weights, names)
        self.loss_tracker = metrics_module.Mean('loss')
        self.output_metrics = compile_utils.OutputMetrics(metrics, names)
        trackers = [t for t in self.compiled_loss.trackers if t is not None]
        self.compiled_metrics = sorted(trackers + self.output_metrics.metrics,
                                       key=lambda m: m.name) if trackers else \
            self.output_metrics.metrics
        self.run_eagerly = bool(run_eagerly)
        self._steps_per_execution = training._whole_number(steps_per_execution,
                                                           'steps_per_execution', 1)
        self._steps = training.Steps(self, self.run_eagerly)

    def get_compile_config(self):
        """compile's arguments as Keras records (None before compile)."""
        if self.compiled_loss is None:
            return None
        serialize = serialization.serialize_keras_object
        return {'optimizer': serialize(self.optimizer),
                'loss': serialize(self._compile_arguments['loss']),
                'loss_weights': serialize(self._compile_arguments['loss_weights']),
                'metrics': serialize(self._compile_arguments['metrics']),
                'weighted_metrics': None, 'run_eagerly': self.run_eagerly,
                'steps_per_execution': self._steps_per_execution, 'jit_compile': False}

    def compile_from_config(self, config):
        """compile() with the arguments a compile config records."""
        if config.get('weighted_metrics') is not None:
            raise ValueError('compile option weighted_metrics is not supported by tracejit')
        deserialize = serialization.deserialize_keras_object
        self.compile(optimizer=deserialize(config['optimizer']),
                     loss=deserialize(config['loss']), metrics=deserialize(config.get('metrics')),
                     loss_weights=deserialize(config.get('loss_weights')),
                     run_eagerly=config.get('run_eagerly', False),
                     steps_per_execution=config.get('steps_per_execution', 1))

    def _require_compiled(self, what):
        if self.compiled_loss is None:
            raise RuntimeError(f'You must compile your model before using {what}: call '
                               'model.compile(optimizer, loss) first')

    @property
    def metrics(self):
        """The loss tracker, then the compiled metrics (empty before compile)."""
        return ([self.loss_tracker] if self.loss_tracker else []) + list(self.compiled_metrics)

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _metric_values(self):
        return {m.name: m._value() for m in self.metrics}

    def _overrides(self, step):
        """Whether the model's class defines its own `train_step` / `test_step`."""
        return getattr(type(self), step) is not getattr(Model, step)

    def _epoch_logs(self):
        """An epoch's logs: the metric values, or the last logs an overridden `train_step`
        returned (as Keras)."""
        return dict(self._step_logs) if self._overrides('train_step') else \
            self._metric_values()

    # -- the steps fit and evaluate trace (override to customize them, as in Keras) ----------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        """The compiled loss of `(y, y_pred)` (what the default `train_step` minimizes)."""
        self._require_compiled('compute_loss')
        if sample_weight is not None:
            raise ValueError('compute_loss: sample_weight is not supported by tracejit')
        return self.compiled_loss.compute(y, y_pred, _batch_count(y_pred))[0]

    def train_step(self, data):
        """One training step on `data = (x, y)`, traced into the compiled step that `fit`
        calls per batch; returns the metric results, which become fit's logs."""
        x, y = data
        training.train_one_batch(self, x, y, _batch_count(x))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        """One evaluation step on `data = (x, y)`; returns the metric results."""
        x, y = data
        training.test_one_batch(self, x, y, _batch_count(x))
        return {m.name: m.result() for m in self.metrics}

    @property
    def train_function(self):
        self._require_compiled('train_function')
        return self._steps.train

    @property
    def test_function(self):
        self._require_compiled('test_function')
        return self._steps.test

    @property
    def predict_function(self):
        return self._steps.predict

    # -- training API -------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None):
        """Train for `epochs` over (x, y), or over a tj.data.Dataset of (x, y) batches;
        returns a History (`.history[name]` per epoch)."""
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks,
                            validation_split, validation_data, shuffle, initial_epoch,
                            steps_per_epoch, validation_steps)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1, return_dict=False,
                 steps=None):
        """The loss (and metrics, as a list) over (x, y) or a dataset, in inference mode."""
        return training.evaluate(self, x, y, batch_size, verbose, return_dict, steps)

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """The model's outputs for x (or a dataset's batches), batch by batch, inference mode."""
        return training.predict(self, x, batch_size, steps)

    # -- weights and summary ----------------------------------------------------------------

    def save_weights(self, filepath):
        """Write every weight to `filepath` ('.npz' is added when missing), atomically."""
        return saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Read weights saved by save_weights; refuses (changing nothing) when the checkpoint's
        weight count or shapes do not match this model."""
        saving.load_weights(self, filepath)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Write the whole model (config, weights, compile config, optimizer state) to a
        `.keras` file, atomically; `keras.models.load_model` reads it back."""
        if kwargs:
            raise TypeError(f'save got unsupported arguments {sorted(kwargs)}')
        model_file.save_model(self, filepath, overwrite, zipped)

    def summary(self, line_length=65, print_fn=None):
        print_fn = print_fn or print
        if not self.built:
            raise ValueError('This model has not yet been built. Build the model first by '
                             'calling build() or by calling it on a batch of data.')
        widths = (28, 26, line_length - 54)

        def row(*cells):
            return ''.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
        lines = [f'Model: "{self.name}"', '_' * line_length,
                 row(' Layer (type)', 'Output Shape', 'Param #'), '=' * line_length]
        for layer in self.layers:
            shape = layer._output_shape if layer._output_shape is not None else 'multiple'
            lines.append(row(f' {layer.name} ({type(layer).__name__})', shape,
                             layer.count_params()))
        trainable = sum(int(np.prod(v.shape)) for v in self.trainable_weights)
        total = self.count_params()
        lines += ['=' * line_length, f'Total params: {total:,}',
                  f'Trainable params: {trainable:,}',
                  f'Non-trainable params: {total - trainable:,}', '_' * line_length]
        for line in lines:
            print_fn(line)


class Sequential(Model):
    """A stack of layers, each called on the previous one's output."""

    def __init__(self, layers=None, name=None):
        super().__init__(name=name)
        self._layers = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Append `layer`; `keras.Input(shape)` (or its InputLayer) as the first entry gives
        the input shape, so the model builds at once, as in Keras 3."""
        if isinstance(layer, functional.KerasTensor):
            layer = layer._keras_history[0]
        if isinstance(layer, functional.InputLayer):
            if self._layers:
                raise ValueError('an Input must come before the other layers of a Sequential')
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f'Sequential.add needs a Layer, got {type(layer).__name__}')
        if not self._layers and getattr(self, '_input_layer', None) is not None and \
                layer._batch_input_shape is None:
            layer._batch_input_shape = self._input_layer.batch_shape
        self._layers.append(layer)
        self.built = False
        self._steps = training.Steps(self, self.run_eagerly)   # traced steps knew the old stack
        first = self._layers[0]
        if first._batch_input_shape is not None:
            self.build(first._batch_input_shape)

    def pop(self):
        if not self._layers:
            raise TypeError('there are no layers in the model')
        self._steps = training.Steps(self, self.run_eagerly)
        return self._layers.pop()

    @property
    def layers(self):
        return list(self._layers)

    def _checkpoint_children(self):
        return _layer_dependencies(self, self._layers, ('_layers', '_input_layer'))

    config_keys = ('layers', 'build_input_shape')   # read by from_config

    def get_config(self):
        config = {**self._base_config(),
                  'layers': [serialization.serialize_keras_object(x) for x in self._layers]}
        if getattr(self, '_build_input_shape', None) is not None:
            config['build_input_shape'] = list(self._build_input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A Sequential of the config's layers, built for its input shape (Keras's
        InputLayer records give that shape too)."""
        shape = config.get('build_input_shape')
        model = cls(name=config.get('name'))
        model.trainable = config.get('trainable', True)
        for record in config['layers']:
            if isinstance(record, dict) and record.get('class_name') == 'InputLayer':
                shape = shape or record['config'].get('batch_shape')
                continue
            model.add(serialization.deserialize_keras_object(record, custom_objects))
        if shape is not None and not model.built and model.layers:
            model.build(tuple(shape))
        return model

    def _check_data_shape(self, shape):
        first = self._layers[0] if self._layers else None
        if first is not None and first.built:
            first._check_input((None,) + tuple(shape[1:]))

    def call(self, inputs, training=None):
        """The layers in turn; a mask (from Embedding(mask_zero=True), say) is passed to the
        next layer that takes `mask` and updated by each layer's `compute_mask`, kept by those
        that support masking without changing it, and dropped by the others, as in Keras."""
        outputs, mask = inputs, None
        for layer in self._layers:
            outputs, mask = call_with_mask(layer, outputs, mask, training=training)
        return outputs


def _layer_dependencies(model, layers, attributes):
    """The checkpoint children of a Sequential or functional model, by Keras's names:
    `layer_with_weights-{j}` for the j-th layer that has weights and `layer-{i}` for every
    layer (an unbuilt layer is found by the latter); the `attributes` holding the layers (or
    a Sequential's Input, which has no weights) are left out."""
    found, with_weights = {}, 0
    for i, layer in enumerate(layers):
        if layer.weights:
            found[f'layer_with_weights-{with_weights}'] = layer
            with_weights += 1
        found[f'layer-{i}'] = layer
    found.update((name, value) for name, value in Model._checkpoint_children(model).items()
                 if name not in attributes)
    return found


class Functional(Model):
    """A model defined by its graph: `Model(inputs, outputs)` with KerasTensors (single, lists
    or dicts of them). Its layers (InputLayers included) and their weights are listed in
    Keras's order; calling it runs the recorded layer calls on the given values."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        graph = functional.Graph(inputs, outputs)
        self._graph_layers = list(graph.layers)   # tracked: weights follow the layer order
        super().__init__(name=name or unique_name('functional'), trainable=trainable,
                         **kwargs)
        self._graph = graph
        self.built = True

    @property
    def inputs(self):
        return list(self._graph.flat_inputs)

    @property
    def outputs(self):
        return list(self._graph.flat_outputs)

    @property
    def input_names(self):
        return [x._keras_history[0].name for x in self._graph.flat_inputs]

    @property
    def output_names(self):
        """Names of the outputs, as losses and metrics are logged (`out1_loss`): the dict keys
        of dict outputs, else the names of the layers producing them."""
        if isinstance(self._graph.outputs, dict):
            return list(self._graph.outputs)
        return [x._keras_history[0].name for x in self._graph.flat_outputs]

    @property
    def layers(self):
        return list(self._graph_layers)

    def call(self, inputs, training=None):
        return self._graph.run(inputs, training)

    def _check_data_shape(self, shape):
        """Data is checked per input when the step is traced (the graph knows the shapes)."""

    def summary(self, line_length=None, print_fn=None):
        summary_module.print_functional(self, self._graph, line_length, print_fn or print)

    def _checkpoint_children(self):
        return _layer_dependencies(self, self._graph_layers, ('_graph_layers',))

    def get_config(self):
        """Keras's functional config: each layer's record (with its build config) plus its
        name and inbound nodes, and the model's input and output references."""
        return self._graph.config(self.name, self.trainable,
                                  serialization.serialize_keras_object)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        with serialization.CustomObjectScope(custom_objects or {}):
            inputs, outputs = functional.from_config(
                config, serialization.deserialize_keras_object)
        return cls(inputs, outputs, name=config.get('name'),
                   trainable=config.get('trainable', True))


load_model = model_file.load_model
serialization.register_builtins(
    'keras', globals(), lambda obj: isinstance(obj, type) and issubclass(obj, Model))


def _batch_count(data):
    """The batch size of traced data, from its static leading axis."""
    return float(tree.leaves(data)[0].shape[0])

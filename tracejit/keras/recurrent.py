"""Keras recurrent layers: the generic `RNN(cell)` and `SimpleRNN`, `LSTM`, `GRU`.

The layer runs its cell over the time axis as ONE scan (tj.control.scan_flat), a native loop
in the kernel. The cell's input contributions for every timestep are computed before the loop
(the cell's `project`: one (time * batch, features) matmul), so the loop body holds only the
recurrent matmul and the gate arithmetic, which fuse; by the same token the gradient of the
input kernel is one matmul outside the loop. Semantics are Keras 3's: outputs in processing
order (reversed with `go_backwards`), a masked step keeps the states and repeats the previous
output (zeros with `zero_output_for_mask`), `return_state` appends the final states.
"""
from .. import ops, tree
from ..control import scan_flat
from . import serialization
from .base_layer import InputSpec, Layer
from .recurrent_cells import (GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, cell_plan,
                              initial_state, output_size)


class RNN(Layer):
    """Runs `cell` (or a list of cells, stacked) over the sequences' time axis (axis 1)."""

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if not hasattr(cell, 'call') or not hasattr(cell, 'state_size'):
            raise ValueError('Argument `cell` should have a `call` method and a `state_size` '
                             f'attribute. Received: cell={cell!r}')
        if stateful:
            raise NotImplementedError(
                f'{type(self).__name__}: stateful=True is not supported by tracejit; keep the '
                'states yourself (return_state=True and initial_state=...)')
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), False
        self.unroll = bool(unroll)   # accepted: the loop is native either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.input_spec = InputSpec(min_ndim=3)

    @property
    def state_size(self):
        size = self.cell.state_size
        return [size] if isinstance(size, int) else list(size)

    def build(self, sequences_shape, initial_state_shape=None):
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build((sequences_shape[0],) + tuple(sequences_shape[2:]))

    def get_initial_state(self, batch_size):
        state = initial_state(self.cell, batch_size, self.dtype)
        return list(state) if isinstance(state, (list, tuple)) else [state]

    def call(self, sequences, initial_state=None, mask=None, training=None):
        batch, steps = int(sequences.shape[0]), int(sequences.shape[1])
        states = self._initial_states(initial_state, batch)
        flat, state_tree = tree.flatten(states)
        project, recur = cell_plan(self.cell, batch, sequences.shape[-1], training)
        rows = [project(ops.transpose(sequences, (1, 0) + tuple(range(2, len(sequences.shape)))))]
        if mask is not None:
            rows.append(ops.transpose(self._mask(mask, batch, steps), (1, 0)))
        width = output_size(self.cell)

        def body(carry, row):
            out, new = recur(row[0], tree.unflatten(state_tree, carry[1:]))
            new = tree.leaves(new)
            if mask is not None:   # a masked step keeps the states, repeats or zeros the output
                keep = ops.expand_dims(row[1], -1)
                new = [ops.where(keep, n, s) for n, s in zip(new, carry[1:])]
                out = ops.where(keep, out, ops.zeros_like(out) if self.zero_output_for_mask
                                else carry[0])
            return [out] + new, [out] if self.return_sequences else []

        first = ops.zeros((batch, width), self.dtype)
        carry, ys = scan_flat(body, [first] + flat, rows, reverse=self.go_backwards,
                              what=f'layer {self.name!r}')
        if self.return_sequences:
            output = ys[0][::-1] if self.go_backwards else ys[0]
            output = ops.transpose(output, (1, 0, 2))
        else:
            output = carry[0]
        if not self.return_state:
            return output
        return [output] + list(tree.unflatten(state_tree, carry[1:]))

    def _initial_states(self, given, batch):
        if given is None:
            return self.get_initial_state(batch)
        given = list(given) if isinstance(given, (list, tuple)) else [given]
        expected = self.get_initial_state(batch)
        leaves = [ops.cast(self._convert_inputs(s), self.dtype) for s in tree.leaves(given)]
        wanted = tree.leaves(expected)
        if len(leaves) != len(wanted) or any(tuple(a.shape) != tuple(b.shape)
                                             for a, b in zip(leaves, wanted)):
            raise ValueError(
                f'layer {self.name!r}: initial_state must be {len(wanted)} tensors of shapes '
                f'{[tuple(w.shape) for w in wanted]}, got '
                f'{[tuple(x.shape) for x in leaves]}')
        return tree.unflatten(tree.flatten(expected)[1], leaves)

    def _mask(self, mask, batch, steps):
        mask = tree.leaves(mask)[0] if isinstance(mask, (list, tuple)) else mask
        mask = self._convert_inputs(mask)
        if tuple(mask.shape) != (batch, steps):
            raise ValueError(f'layer {self.name!r}: the mask must have shape (batch, timesteps) '
                             f'= {(batch, steps)}, got {tuple(mask.shape)}')
        return ops.cast(mask, 'bool')

    def compute_mask(self, inputs, mask=None):
        """The output mask: the input's with return_sequences (one per output with
        return_state), else None, as Keras."""
        mask = tree.leaves(mask)[0] if isinstance(mask, (list, tuple)) and mask else mask
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(tree.leaves(self.state_size))
        return output_mask

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if 'cell' in config:
            cell = config.pop('cell')
            cell = [serialization.deserialize_keras_object(c, custom_objects) for c in cell] \
                if isinstance(cell, list) else serialization.deserialize_keras_object(
                    cell, custom_objects)
            return cls(cell, **config)
        return super().from_config(config)


_RNN_OPTIONS = ('return_sequences', 'return_state', 'go_backwards', 'stateful', 'unroll',
                'zero_output_for_mask')


class _CellLayer(RNN):
    """An RNN over a built-in cell made from the layer's own arguments (Keras's SimpleRNN,
    LSTM, GRU): the cell, named `<layer>_cell`, holds the weights."""

    cell_class = None

    def __init__(self, units, **kwargs):
        options = {k: kwargs.pop(k) for k in _RNN_OPTIONS if k in kwargs}
        base = {k: kwargs.pop(k) for k in ('name', 'trainable', 'dtype', 'input_shape',
                                           'input_dim') if k in kwargs}
        use_cudnn = kwargs.pop('use_cudnn', 'auto')
        if use_cudnn not in ('auto', False, True):
            raise ValueError(f'Invalid value received for argument `use_cudnn`: {use_cudnn!r}')
        if use_cudnn is True:
            raise ValueError(f'{type(self).__name__}: use_cudnn=True needs cuDNN; tracejit runs '
                             'on the CPU (use "auto")')
        cell = self.cell_class(units, dtype=base.get('dtype'),
                               trainable=base.get('trainable', True),
                               name=f'{_snake(type(self).__name__)}_cell', **kwargs)
        super().__init__(cell, **options, **base)

    @property
    def units(self):
        return self.cell.units


def _cell_property(name):
    return property(lambda layer: getattr(layer.cell, name), doc=f"the cell's {name}")


for _name in ('activation', 'recurrent_activation', 'use_bias', 'kernel_initializer',
              'recurrent_initializer', 'bias_initializer', 'unit_forget_bias', 'dropout',
              'recurrent_dropout', 'reset_after', 'seed'):   # read through the layer, as Keras
    setattr(_CellLayer, _name, _cell_property(_name))


def _snake(name):
    return {'SimpleRNN': 'simple_rnn', 'LSTM': 'lstm', 'GRU': 'gru'}[name]


class SimpleRNN(_CellLayer):
    """A fully connected RNN (SimpleRNNCell): `h = tanh(x @ W + h @ U + b)`."""

    cell_class = SimpleRNNCell

    def __init__(self, units, activation='tanh', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        _no_activity_regularizer(activity_regularizer)
        super().__init__(units, **_cell_arguments(locals(), kwargs))


class LSTM(_CellLayer):
    """Long short-term memory (LSTMCell; gates i, f, c, o in the kernels' columns)."""

    cell_class = LSTMCell

    def __init__(self, units, activation='tanh', recurrent_activation='sigmoid', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn='auto', **kwargs):
        _no_activity_regularizer(activity_regularizer)
        super().__init__(units, **_cell_arguments(locals(), kwargs))


class GRU(_CellLayer):
    """Gated recurrent unit (GRUCell; gates z, r, h; `reset_after=True` as Keras 3)."""

    cell_class = GRUCell

    def __init__(self, units, activation='tanh', recurrent_activation='sigmoid', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn='auto', **kwargs):
        _no_activity_regularizer(activity_regularizer)
        super().__init__(units, **_cell_arguments(locals(), kwargs))


def _no_activity_regularizer(value):
    if value is not None:
        raise NotImplementedError(f'activity_regularizer={value!r} is not supported by '
                                  'tracejit (it has no regularizers); pass None')


def _cell_arguments(arguments, kwargs):
    """A layer constructor's arguments, for _CellLayer: all but `self`, `units`, `kwargs` and
    the activity regularizer, merged with the extra keyword arguments."""
    skip = {'self', 'units', 'kwargs', 'activity_regularizer', '__class__'}
    return {**{k: v for k, v in arguments.items() if k not in skip}, **kwargs}

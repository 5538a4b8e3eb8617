"""Keras recurrent cells: `SimpleRNNCell`, `LSTMCell`, `GRUCell` and `StackedRNNCells`.

A cell computes one time step, `cell(inputs, states) -> (output, new_states)`, as in Keras.
The built-in cells split that step in two (`plan`), so that an RNN layer runs the part that
does not depend on the state for all timesteps at once, outside its loop: `project` turns a
whole (time, batch, features) sequence into the input contributions with one matmul over
time * batch rows, and `recur` does the rest of one step from its row of them (the recurrent
matmul and the gates, which fuse into the loop body). Weight names, order and layouts are
Keras 3's: kernel (features, gates * units), recurrent_kernel (units, gates * units), LSTM
gates i, f, c, o, GRU gates z, r, h, the GRU's reset_after bias (2, 3 * units).

Dropout follows Keras: masks are drawn once per sequence and used at every step; with
recurrent_dropout, LSTM and GRU draw one mask per gate (Keras's implementation 1).
"""
import numpy as np

from .. import nn, ops
from . import activations, initializers, serialization
from .base_layer import Layer


def check_unsupported(layer, **options):
    """Keras options tracejit has no machinery for (regularizers, constraints) must be off."""
    for name, value in options.items():
        if value is not None:
            raise NotImplementedError(f'{layer}: {name}={value!r} is not supported by tracejit '
                                      '(it has no regularizers or constraints); pass None')


def _rate(layer, name, value):
    if not 0 <= float(value) < 1:
        raise ValueError(f'{layer}: {name} must be in [0, 1), got {value!r}')
    return float(value)


def _positive(layer, units):
    if isinstance(units, bool) or int(units) != units or units < 1:
        raise ValueError(f'Received an invalid value for argument `units` of {layer}, expected '
                         f'a positive integer, got {units!r}.')
    return int(units)


def _rows_matmul(x, kernel):
    """`x @ kernel` for x of any rank: one matmul over all leading axes' rows."""
    lead = tuple(x.shape[:-1])
    if len(lead) == 1:
        return ops.matmul(x, kernel)
    out = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), kernel)
    return ops.reshape(out, lead + (kernel.shape[-1],))


def _gate_matmul(x, kernel, masks, units):
    """`x @ kernel`; with one dropout mask per gate, each gate's columns from its own masked
    x (Keras's implementation 1), with a single mask the masked x."""
    if masks is None:
        return _rows_matmul(x, kernel)
    if len(masks) == 1:
        return _rows_matmul(x * masks[0], kernel)
    return ops.concat([_rows_matmul(x * m, kernel[:, k * units:(k + 1) * units])
                       for k, m in enumerate(masks)], -1)


def _state_list(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


_UNSUPPORTED = ('kernel_regularizer', 'recurrent_regularizer', 'bias_regularizer',
                'kernel_constraint', 'recurrent_constraint', 'bias_constraint')


class RecurrentCell(Layer):
    """Base of the built-in cells: the arguments they share, dropout masks, and `call` as
    `recur(project(inputs))`. Subclasses set `gates`, `state_size` and build the weights."""

    gates = 1

    def _setup(self, arguments):
        """The constructor arguments every cell shares, read from its `locals()`."""
        what, a = type(self).__name__, arguments
        check_unsupported(what, **{name: a[name] for name in _UNSUPPORTED})
        self.units = _positive(what, a['units'])
        self.activation = activations.get(a['activation'])
        self.use_bias = bool(a['use_bias'])
        self.kernel_initializer = initializers.get(a['kernel_initializer'])
        self.recurrent_initializer = initializers.get(a['recurrent_initializer'])
        self.bias_initializer = initializers.get(a['bias_initializer'])
        self.dropout = _rate(what, 'dropout', a['dropout'])
        self.recurrent_dropout = _rate(what, 'recurrent_dropout', a['recurrent_dropout'])
        self.seed = a['seed']
        self.output_size = self.units

    def _build_kernels(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight('kernel', (int(input_shape[-1]), width),
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight('recurrent_kernel', (self.units, width),
                                                initializer=self.recurrent_initializer)

    def dropout_masks(self, batch, input_dim, training):
        """(input masks, recurrent masks) for one sequence: lists of masks of shape
        (batch, features) and (batch, units), or None where that dropout is off."""
        count = self.gates if self.recurrent_dropout > 0 else 1

        def draw(rate, width, n):
            if not training or rate == 0:
                return None
            ones = ops.ones((batch, width), self.dtype)
            return [nn.dropout(ones, rate) for _ in range(n)]
        return (draw(self.dropout, input_dim, count),
                draw(self.recurrent_dropout, self.units, count))

    def plan(self, batch, input_dim, training):
        """(project, recur) for one sequence, dropout masks drawn: `project(x)` maps inputs
        (..., features) to the input contributions, `recur(row, states)` one step on them."""
        in_masks, rec_masks = self.dropout_masks(batch, input_dim, training)
        consts = self.loop_consts(rec_masks)
        return (lambda x: self.project(x, in_masks)), (lambda row, s: self.recur(row, s, consts))

    def project(self, x, masks):
        z = _gate_matmul(x, self.kernel, masks, self.units)
        bias = self.input_bias()
        return z if bias is None else z + bias

    def input_bias(self):
        return self.bias

    def loop_consts(self, rec_masks):
        """What `recur` needs besides its row and states, prepared outside the loop."""
        return self.recurrent_kernel.value(), rec_masks

    def call(self, inputs, states, training=None):
        project, recur = self.plan(inputs.shape[0], inputs.shape[-1], training)
        return recur(project(inputs), _state_list(states))

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [ops.zeros((batch_size, d), self.dtype) for d in sizes]


class SimpleRNNCell(RecurrentCell):
    """`h = activation(x @ kernel + h @ recurrent_kernel + bias)`."""

    def __init__(self, units, activation='tanh', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._setup(locals())
        self.state_size = self.units

    def build(self, input_shape):
        self._build_kernels(input_shape)
        self.bias = self.add_weight('bias', (self.units,), initializer=self.bias_initializer) \
            if self.use_bias else None

    def recur(self, row, states, consts):
        kernel, masks = consts
        h = self.activation(row + _gate_matmul(states[0], kernel, masks, self.units))
        return h, [h]


class LSTMCell(RecurrentCell):
    """Long short-term memory: gates i, f, o = recurrent_activation(.), candidate
    c~ = activation(.), `c = f * c + i * c~`, `h = o * activation(c)`; states [h, c]."""

    gates = 4

    def __init__(self, units, activation='tanh', recurrent_activation='sigmoid', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(locals())
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        self._build_kernels(input_shape)
        self.bias = None
        if self.use_bias:
            init = _ForgetBias(self.bias_initializer, self.units) if self.unit_forget_bias \
                else self.bias_initializer
            self.bias = self.add_weight('bias', (4 * self.units,), initializer=init)

    def recur(self, row, states, consts):
        kernel, masks = consts
        h, c = states
        z = row + _gate_matmul(h, kernel, masks, self.units)
        u, act, gate = self.units, self.activation, self.recurrent_activation
        c = gate(z[:, u:2 * u]) * c + gate(z[:, :u]) * act(z[:, 2 * u:3 * u])
        h = gate(z[:, 3 * u:]) * act(c)
        return h, [h, c]


class _ForgetBias:
    """The LSTM bias with `unit_forget_bias`: the initializer's values, ones for gate f."""

    def __init__(self, initializer, units):
        self.initializer, self.units = initializer, units

    def __call__(self, shape, dtype=None):
        u = self.units
        return np.concatenate([np.asarray(self.initializer((u,), dtype)), np.ones(u, dtype),
                               np.asarray(self.initializer((2 * u,), dtype))])


class GRUCell(RecurrentCell):
    """Gated recurrent unit: z, r = recurrent_activation(.), candidate hh = activation(x_h +
    r * (h @ U_h + b_h)) with `reset_after` (Keras's default, bias (2, 3 * units)) or
    activation(x_h + (r * h) @ U_h) without; `h = z * h + (1 - z) * hh`."""

    gates = 3

    def __init__(self, units, activation='tanh', recurrent_activation='sigmoid', use_bias=True,
                 kernel_initializer='glorot_uniform', recurrent_initializer='orthogonal',
                 bias_initializer='zeros', kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(locals())
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def build(self, input_shape):
        self._build_kernels(input_shape)
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        self.bias = self.add_weight('bias', shape, initializer=self.bias_initializer) \
            if self.use_bias else None

    def input_bias(self):
        return self.bias[0] if self.bias is not None and self.reset_after else self.bias

    def loop_consts(self, rec_masks):
        kernel, u = self.recurrent_kernel.value(), self.units
        if self.reset_after:
            return kernel, None, None if self.bias is None else self.bias[1], rec_masks
        return kernel[:, :2 * u], kernel[:, 2 * u:], None, rec_masks

    def recur(self, row, states, consts):
        kernel, h_kernel, rec_bias, masks = consts
        h, u = states[0], self.units
        gate = self.recurrent_activation
        if self.reset_after:   # one matmul for all three gates, reset applied after it
            inner = _gate_matmul(h, kernel, masks, u)
            if rec_bias is not None:
                inner = inner + rec_bias
        else:
            inner = _gate_matmul(h, kernel, None if masks is None else masks[:2], u)
        z, r = gate(row[:, :u] + inner[:, :u]), gate(row[:, u:2 * u] + inner[:, u:2 * u])
        if self.reset_after:
            candidate = r * inner[:, 2 * u:]
        else:
            candidate = ops.matmul(r * h if masks is None else r * h * masks[2], h_kernel)
        h = z * h + (1.0 - z) * self.activation(row[:, 2 * u:] + candidate)
        return h, [h]


class StackedRNNCells(Layer):
    """Cells applied in turn at each step, each on the previous one's output; the states are
    the cells' states, one entry per cell."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            if not hasattr(cell, 'call') or not hasattr(cell, 'state_size'):
                raise ValueError('All cells must have a `call` method and a `state_size` '
                                 f'attribute. Received: {cell!r}')
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        return output_size(self.cells[-1])

    def build(self, input_shape):
        for cell in self.cells:
            if not cell.built:
                cell.build(input_shape)
            input_shape = (input_shape[0], output_size(cell))

    def get_initial_state(self, batch_size=None):
        return [initial_state(c, batch_size, self.dtype) for c in self.cells]

    def plan(self, batch, input_dim, training):
        plans, width = [], input_dim
        for cell in self.cells:
            plans.append(cell_plan(cell, batch, width, training))
            width = output_size(cell)

        def recur(row, states):
            new = []
            for k, ((project, step), cell_states) in enumerate(zip(plans, states)):
                single = not isinstance(cell_states, (list, tuple))
                row, out = step(row if k == 0 else project(row), _state_list(cell_states))
                new.append(out[0] if single and len(out) == 1 else out)
            return row, new
        return plans[0][0], recur

    def call(self, inputs, states, training=None):
        project, recur = self.plan(inputs.shape[0], inputs.shape[-1], training)
        return recur(project(inputs), list(states))

    def get_config(self):
        return {**self._base_config(),
                'cells': [serialization.serialize_keras_object(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cells = [serialization.deserialize_keras_object(c, custom_objects)
                 for c in config.pop('cells')]
        return cls(cells, **config)


def output_size(cell):
    size = getattr(cell, 'output_size', None)
    if size is not None:
        return size
    return cell.state_size[0] if isinstance(cell.state_size, (list, tuple)) else cell.state_size


def initial_state(cell, batch_size, dtype):
    """The cell's zero state: its `get_initial_state` or zeros of its `state_size` (a single
    tensor for an int size, as Keras)."""
    if hasattr(cell, 'get_initial_state'):
        return cell.get_initial_state(batch_size=batch_size)
    if isinstance(cell.state_size, int):
        return ops.zeros((batch_size, cell.state_size), dtype)
    return [ops.zeros((batch_size, d), dtype) for d in cell.state_size]


def cell_plan(cell, batch, input_dim, training):
    """(project, recur) of any cell: a user's cell projects nothing and runs its own call."""
    if hasattr(cell, 'plan'):
        return cell.plan(batch, input_dim, training)
    kwargs = {'training': training} if isinstance(cell, Layer) else {}
    call = cell if isinstance(cell, Layer) else cell.call

    def recur(row, states):
        out, new = call(row, states, **kwargs)
        return out, _state_list(new)
    return (lambda x: x), recur

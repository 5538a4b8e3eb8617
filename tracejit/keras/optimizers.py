"""Keras optimizers (TF2 update rules): SGD (momentum, Nesterov), Adam, RMSprop, Adagrad, and
TF Addons' LazyAdam.

The learning rate lives in a non-trainable Variable owned by the optimizer, so a compiled step
reads it as state: `optimizer.learning_rate = 0.01` takes effect on the next step without a
retrace. Slots (momenta, moving averages) are Variables created on first use, which inside
`tj.function` is the step's first trace. `iterations` counts applied updates.

Sparse gradients (IndexedSlices, from embedding lookups and gathers) are applied as Keras 3
applies them: SGD without momentum subtracts the rows it was given (summed per distinct id,
then each row updated once in place, so a step touches only those rows); every other rule
here reads its slots densely and takes the dense gradient, giving exactly dense Adam's
numbers. (Keras 3 squares each slice before adding repeated rows up, so its Adam on repeated
ids differs from dense Adam; ours does not.)
LazyAdam updates only the rows seen.
"""
import logging
import numbers

import numpy as np

from .. import errors, ops
from ..autodiff import GradientTape
from ..indexed_slices import IndexedSlices, to_dense
from ..variables import Variable
from . import serialization

log = logging.getLogger('tracejit')


def _learning_rate_value(value, owner):
    """`value` as a float, or a TypeError naming learning_rate (float('0.1') would silently
    accept a string, float('fast') raises a ValueError that names nothing)."""
    if hasattr(value, 'numpy') and not isinstance(value, np.generic):   # Variable, Tensor
        value = np.asarray(value.numpy())
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_)) \
            or (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in 'iuf'):
        return float(value)
    raise TypeError(errors.at_user_line(
        f'{owner}: learning_rate must be a float or a tj.Variable, got {value!r} '
        f'({type(value).__name__}); pass e.g. learning_rate=0.01'))


def _hyperparameter(value, owner, name, low, high, example):
    """`value` as a float in [low, high], or a TypeError / ValueError naming `name`."""
    if not isinstance(value, (numbers.Real, np.integer, np.floating)) or isinstance(
            value, (bool, np.bool_)):
        raise TypeError(errors.at_user_line(
            f'{owner}: {name} must be a float, got {value!r} ({type(value).__name__}); '
            f'pass e.g. {name}={example}'))
    if not low <= float(value) <= high:
        raise ValueError(errors.at_user_line(
            f'{owner}: {name} must be in [{low}, {high}], got {value!r}; pass e.g. '
            f'{name}={example}'))
    return float(value)


class Optimizer:
    """Base class: subclasses define `_apply(grad, var, coefficient)` and, when the update
    needs a per-step coefficient (Adam's bias-corrected rate), `_coefficient(lr, step)`."""

    def __init__(self, learning_rate, name=None):
        self.name = name or type(self).__name__
        if isinstance(learning_rate, Variable):
            self._learning_rate = learning_rate
        elif callable(learning_rate):
            raise TypeError('learning rate schedules are not supported; pass a float or a '
                            'tj.Variable and change it between epochs (e.g. in a callback)')
        else:
            self._learning_rate = Variable(_learning_rate_value(learning_rate, self.name),
                                           trainable=False,
                                           name=f'{self.name}/learning_rate', dtype='float32')
        self.iterations = Variable(np.zeros((), np.int64), trainable=False,
                                   name=f'{self.name}/iter')
        self._slots = {}   # id(variable) -> (variable, {slot name: slot Variable})
        # (variable, slot name, new slot) -> True when it restored a saved value into the slot
        self._slot_restorers = []

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate.assign(_learning_rate_value(value, self.name))

    lr = learning_rate

    def get_config(self):
        """The constructor's arguments, with the current learning rate."""
        return {'name': self.name, 'learning_rate': float(self._learning_rate.numpy())}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- slots ------------------------------------------------------------------------------

    def add_slot(self, var, slot_name, initial_value=0.0):
        """The slot `slot_name` of `var`, created (filled with `initial_value`) on first use."""
        slots = self._slots.setdefault(id(var), (var, {}))[1]
        if slot_name not in slots:
            slot = Variable(np.full(var.shape, initial_value, var.dtype.np), trainable=False,
                            name=f'{var.name.split(":")[0]}/{slot_name}')
            for restore in self._slot_restorers:   # values saved before the slot existed
                if restore(var, slot_name, slot):
                    break
            slots[slot_name] = slot
        return slots[slot_name]

    def get_slot(self, var, slot_name):
        return self._slots[id(var)][1][slot_name]

    def get_slot_names(self):
        return sorted({name for _, slots in self._slots.values() for name in slots})

    def variables(self):
        """`iterations`, then every slot Variable."""
        return [self.iterations] + [s for _, slots in self._slots.values()
                                    for s in slots.values()]

    def _checkpoint_children(self):
        """Keras's checkpoint names of the optimizer's own Variables."""
        return {'iter': self.iterations, 'learning_rate': self._learning_rate}

    def _checkpoint_slots(self):
        """(variable, slot name, slot) for every slot: checkpoints key them by variable."""
        return [(var, name, slot) for var, slots in self._slots.values()
                for name, slot in slots.items()]

    # -- updates ----------------------------------------------------------------------------

    def apply_gradients(self, grads_and_vars, name=None):
        """Apply one update to each variable with a gradient; returns `iterations`."""
        pairs = self._checked_pairs(grads_and_vars)
        step = ops.cast(self.iterations.value() + 1, 'float32')
        coefficient = self._coefficient(self._learning_rate.value(), step)
        for grad, var in pairs:
            if isinstance(grad, IndexedSlices):
                self._apply_sparse(grad, var, ops.cast(coefficient, var.dtype))
            else:
                self._apply(ops.convert_to_tensor(grad), var, ops.cast(coefficient, var.dtype))
        self.iterations.assign_add(1)
        return self.iterations

    def apply(self, grads, trainable_variables=None):
        """Keras 3 spelling of `apply_gradients`: gradients and variables as two lists."""
        if trainable_variables is None:
            raise ValueError('optimizer.apply needs the variables the gradients are for: '
                             'apply(grads, trainable_variables)')
        grads, variables = list(grads), list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f'optimizer.apply got {len(grads)} gradients for '
                             f'{len(variables)} variables')
        return self.apply_gradients(zip(grads, variables))

    def minimize(self, loss, var_list, tape=None):
        """TF2 style: `loss` is a zero-argument callable (or a tensor computed under `tape`)."""
        if not callable(var_list):
            var_list = list(var_list) if isinstance(var_list, (list, tuple)) else [var_list]
        if callable(loss):
            with GradientTape() as tape:
                if not callable(var_list):
                    tape.watch(var_list)
                value = loss()
        elif tape is None:
            raise TypeError('`tape` is required when a `Tensor` loss is passed to minimize; or '
                            'pass the loss as a zero-argument function')
        else:
            value = loss
        if callable(var_list):
            var_list = list(var_list())
        grads = tape.gradient(value, var_list)
        return self.apply_gradients(zip(grads, var_list))

    def _checked_pairs(self, grads_and_vars):
        """The (grad, var) pairs that have a gradient; clear errors for anything else."""
        pairs = []
        for item in grads_and_vars:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f'{self.name}.apply_gradients expects (gradient, variable) '
                                 'pairs, e.g. zip(grads, model.trainable_variables); got an '
                                 f'item of type {type(item).__name__}')
            if not isinstance(item[1], Variable):
                raise TypeError(f'{self.name}.apply_gradients: the second element of each pair '
                                f'must be a tj.Variable, got {type(item[1]).__name__} (are '
                                'gradients and variables swapped?)')
            pairs.append(tuple(item))
        live = [(g, v) for g, v in pairs if g is not None]
        if not live:
            raise ValueError('No gradients provided for any variable: '
                             f'{[v.name for _, v in pairs]}')
        if len(live) < len(pairs):
            log.warning('Gradients do not exist for variables %s when minimizing the loss.',
                        [v.name for g, v in pairs if g is None])
        for grad, var in live:
            shape = tuple(getattr(grad, 'shape', ()))
            if shape != var.shape:
                raise errors.ShapeError(
                    f'{self.name}.apply_gradients: a gradient of shape {shape} was paired with '
                    f'variable {var.name!r} of shape {var.shape}; gradients and variables must '
                    'be in the same order')
        return live

    def _coefficient(self, lr, step):
        return lr

    def _apply(self, grad, var, lr):
        raise NotImplementedError

    def _apply_sparse(self, grad, var, coefficient):
        """IndexedSlices: by default the dense update of the dense gradient (Keras 3's rule
        whenever the update reads a slot densely)."""
        self._apply(ops.cast(to_dense(grad), var.dtype), var, coefficient)


def _rows_of(grad, var):
    """The slices' (row values in `var`'s dtype, flat indices)."""
    indices = ops.reshape(grad.indices, (-1,))
    values = ops.reshape(grad.values, tuple(indices.shape) + tuple(var.shape[1:]))
    return ops.cast(values, var.dtype), indices


class SGD(Optimizer):
    """var -= lr * g; with momentum m = momentum * m - lr * g, var += m (Nesterov:
    var += momentum * m - lr * g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name='SGD'):
        super().__init__(learning_rate, name)
        self.momentum = _hyperparameter(momentum, self.name, 'momentum', 0, 1, 0.9)
        self.nesterov = bool(nesterov)

    def get_config(self):
        return {**super().get_config(), 'momentum': self.momentum, 'nesterov': self.nesterov}

    def _apply(self, grad, var, lr):
        if self.momentum == 0:
            var.assign_sub(lr * grad)
            return
        m = self.add_slot(var, 'momentum')
        m_new = self.momentum * m.value() - lr * grad
        m.assign(m_new)
        var.assign_add(self.momentum * m_new - lr * grad if self.nesterov else m_new)

    def _apply_sparse(self, grad, var, lr):
        if self.momentum != 0:
            super()._apply_sparse(grad, var, lr)
            return
        values, indices = _rows_of(grad, var)
        # the rows of repeated ids summed first, then each row updated once, in place
        var.assign(ops.accumulate_rows(var.value(), indices, values, ops.negative(lr), 1.0, 1))


class Adam(Optimizer):
    """TF2 Keras Adam: lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t),
    var -= lr_t * m / (sqrt(v) + epsilon)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name='Adam'):
        super().__init__(learning_rate, name)
        self.beta_1 = _hyperparameter(beta_1, self.name, 'beta_1', 0, 1, 0.9)
        self.beta_2 = _hyperparameter(beta_2, self.name, 'beta_2', 0, 1, 0.999)
        self.epsilon = _hyperparameter(epsilon, self.name, 'epsilon', 0, np.inf, 1e-7)

    def get_config(self):
        return {**super().get_config(), 'beta_1': self.beta_1, 'beta_2': self.beta_2,
                'epsilon': self.epsilon}

    def _coefficient(self, lr, step):
        return lr * ops.sqrt(1.0 - ops.pow(self.beta_2, step)) / (1.0 - ops.pow(self.beta_1, step))

    def _apply(self, grad, var, lr_t):
        m, v = self.add_slot(var, 'm'), self.add_slot(var, 'v')
        m_new = self.beta_1 * m.value() + (1.0 - self.beta_1) * grad
        v_new = self.beta_2 * v.value() + (1.0 - self.beta_2) * ops.square(grad)
        m.assign(m_new)
        v.assign(v_new)
        var.assign_sub(lr_t * m_new / (ops.sqrt(v_new) + self.epsilon))


class RMSprop(Optimizer):
    """rms = rho * rms + (1 - rho) * g^2; var -= lr * g / (sqrt(rms) + epsilon), or with
    momentum: mom = momentum * mom + lr * g / sqrt(rms + epsilon), var -= mom."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 name='RMSprop'):
        super().__init__(learning_rate, name)
        self.rho = _hyperparameter(rho, self.name, 'rho', 0, 1, 0.9)
        self.momentum = _hyperparameter(momentum, self.name, 'momentum', 0, 1, 0.9)
        self.epsilon = _hyperparameter(epsilon, self.name, 'epsilon', 0, np.inf, 1e-7)

    def get_config(self):
        return {**super().get_config(), 'rho': self.rho, 'momentum': self.momentum,
                'epsilon': self.epsilon}

    def _apply(self, grad, var, lr):
        rms = self.add_slot(var, 'rms')
        rms_new = self.rho * rms.value() + (1.0 - self.rho) * ops.square(grad)
        rms.assign(rms_new)
        if self.momentum == 0:
            var.assign_sub(lr * grad / (ops.sqrt(rms_new) + self.epsilon))
            return
        mom = self.add_slot(var, 'momentum')
        mom_new = self.momentum * mom.value() + lr * grad / ops.sqrt(rms_new + self.epsilon)
        mom.assign(mom_new)
        var.assign_sub(mom_new)


class Adagrad(Optimizer):
    """acc += g^2; var -= lr * g / (sqrt(acc) + epsilon)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name='Adagrad'):
        super().__init__(learning_rate, name)
        self.initial_accumulator_value = _hyperparameter(
            initial_accumulator_value, self.name, 'initial_accumulator_value', 0, np.inf, 0.1)
        self.epsilon = _hyperparameter(epsilon, self.name, 'epsilon', 0, np.inf, 1e-7)

    def get_config(self):
        return {**super().get_config(),
                'initial_accumulator_value': self.initial_accumulator_value,
                'epsilon': self.epsilon}

    def _apply(self, grad, var, lr):
        acc = self.add_slot(var, 'accumulator', self.initial_accumulator_value)
        acc_new = acc.value() + ops.square(grad)
        acc.assign(acc_new)
        var.assign_sub(lr * grad / (ops.sqrt(acc_new) + self.epsilon))


class LazyAdam(Adam):
    """TF Addons' LazyAdam: with sparse gradients only the rows seen change, in the weights
    and in both moments (gradients of repeated rows are summed first); dense gradients get
    Adam's update. Much cheaper than Adam for large embeddings, and a different algorithm."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name='LazyAdam'):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name)

    def _apply_sparse(self, grad, var, lr_t):
        m, v = self.add_slot(var, 'm'), self.add_slot(var, 'v')
        values, indices = _rows_of(grad, var)
        # each distinct row once, weights and moments together, in their own buffers:
        # repeated ids cost their share of the gradient sum, not a row update each
        new_var, new_m, new_v = ops.lazy_adam_rows(var.value(), indices, m.value(), v.value(),
                                                   values, lr_t, self.beta_1, self.beta_2,
                                                   self.epsilon)
        m.assign(new_m)
        v.assign(new_v)
        var.assign(new_var)


_BY_NAME = {'sgd': SGD, 'adam': Adam, 'rmsprop': RMSprop, 'adagrad': Adagrad}


def get(identifier):
    """An optimizer for a name ('adam', 'SGD', ...), an Optimizer class, an instance, or a
    saved record."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return serialization.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        if identifier.lower() not in _BY_NAME:
            raise ValueError(f'unknown optimizer {identifier!r}; use one of {sorted(_BY_NAME)} '
                             'or an Optimizer instance')
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f'optimizer must be a name or an Optimizer, got {identifier!r}')


serialization.register_builtins(
    'keras.optimizers', globals(), lambda obj: isinstance(obj, type) and issubclass(obj, Optimizer))

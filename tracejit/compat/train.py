"""tf.train (TF1): optimizers that add their update operations to the graph.

`minimize` = `compute_gradients` (one tf.gradients op) + `apply_gradients`: each variable's
update is written with graph ops and assign ops; slots and Adam's beta powers are graph
Variables, initialised by `global_variables_initializer()` like any other. A session then
compiles forward, gradient and all updates into one step. Hyperparameters may be numbers
or graph tensors (a placeholder learning rate works).
"""
import numbers

import numpy as np

from .. import errors
from .graph_ops import gradients, group, sqrt
from .variables import TRAINABLE_VARIABLES, Variable


def _hyperparameter(value, what):
    """A number or graph tensor, else a TypeError naming the argument (a string learning rate
    would otherwise fail deep inside the graph as an unsupported dtype)."""
    if isinstance(value, numbers.Real) or (hasattr(value, 'dtype') and not isinstance(value, str)
                                           and np.dtype(getattr(value.dtype, 'np', value.dtype)
                                                        ).kind in 'biuf'):
        return value
    raise TypeError(errors.at_user_line(
        f'{what} must be a float or a numeric tensor (e.g. a placeholder), got {value!r} '
        f'({type(value).__name__})'))


class Optimizer:
    """Base class: subclasses define `_create_slots`, `_prepare`, `_apply_dense`, `_finish`."""

    def __init__(self, use_locking, name):
        self._name = name
        self._slots = {}   # slot name -> {graph Variable: slot Variable}

    def minimize(self, loss, global_step=None, var_list=None, gate_gradients=1,
                 aggregation_method=None, colocate_gradients_with_ops=False, name=None,
                 grad_loss=None):
        """One operation that takes a step on `var_list` (default: all trainable variables)."""
        grads_and_vars = self.compute_gradients(loss, var_list, grad_loss=grad_loss)
        return self.apply_gradients(grads_and_vars, global_step, name)

    def compute_gradients(self, loss, var_list=None, gate_gradients=1, aggregation_method=None,
                          colocate_gradients_with_ops=False, grad_loss=None):
        """[(gradient or None, variable)] for `var_list` (default: trainable variables)."""
        if var_list is None:
            var_list = loss.graph.get_collection(TRAINABLE_VARIABLES)
        var_list = list(var_list)
        if not var_list:
            raise ValueError('No variables to optimize.')
        grads = gradients(loss, var_list, None if grad_loss is None else [grad_loss])
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """One operation (a NoOp named after the optimizer) running every variable's update."""
        grads_and_vars = list(grads_and_vars)
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError('No gradients provided for any variable, check your graph for ops '
                             'that do not support gradients, between variables '
                             f'{[v.name for _, v in grads_and_vars]} and the loss.')
        graph = pairs[0][1].graph
        with graph.as_default():
            with graph.name_scope(None):
                self._create_slots([v for _, v in pairs])
            with graph.name_scope(name or self._name) as scope:
                self._prepare()
                updates = []
                for g, v in pairs:
                    with graph.name_scope(f'update_{v.op.name}'):
                        updates.append(self._apply_dense(g, v))
                updates += self._finish()
                if global_step is not None:
                    updates.append(global_step.assign_add(1))
                return group(*updates, name=scope)

    def get_slot(self, var, name):
        return self._slots.get(name, {}).get(var)

    def get_slot_names(self):
        return sorted(self._slots)

    def _zeros_slot(self, var, slot_name):
        slots = self._slots.setdefault(slot_name, {})
        if var not in slots:
            slots[var] = Variable(np.zeros(var.shape.as_list(), var.dtype.np), trainable=False,
                                  name=f'{var.op.name}/{self._name}')
        return slots[var]

    def _create_slots(self, var_list):
        pass

    def _prepare(self):
        pass

    def _finish(self):
        return []


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""

    def __init__(self, learning_rate, use_locking=False, name='GradientDescent'):
        super().__init__(use_locking, name)
        self._lr = _hyperparameter(learning_rate, 'learning_rate')

    def _apply_dense(self, grad, var):
        return var.assign_sub(self._lr * grad)


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= lr * accum (Nesterov: lr * (grad + momentum *
    accum)). The accumulators are slots named '<var>/Momentum'."""

    def __init__(self, learning_rate, momentum, use_locking=False, name='Momentum',
                 use_nesterov=False):
        super().__init__(use_locking, name)
        self._lr, self._momentum, self._nesterov = (_hyperparameter(learning_rate, 'learning_rate'),
                                                    _hyperparameter(momentum, 'momentum'),
                                                    use_nesterov)

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, 'momentum')

    def _apply_dense(self, grad, var):
        accum = self.get_slot(var, 'momentum')
        accum_t = accum.assign(accum * self._momentum + grad)
        step = grad + accum_t * self._momentum if self._nesterov else accum_t
        return var.assign_sub(self._lr * step)


class AdamOptimizer(Optimizer):
    """TF1's Adam: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = b1 m + (1 - b1) g;
    v = b2 v + (1 - b2) g^2; var -= lr_t * m / (sqrt(v) + epsilon). Slots '<var>/Adam' (m) and
    '<var>/Adam_1' (v); the powers beta1^t and beta2^t are Variables 'beta1_power' and
    'beta2_power', advanced after the variables' updates."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 use_locking=False, name='Adam'):
        super().__init__(use_locking, name)
        self._lr = _hyperparameter(learning_rate, 'learning_rate')
        self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon
        self._powers = None

    def _create_slots(self, var_list):
        if self._powers is None:
            self._powers = (Variable(self._beta1, trainable=False, name='beta1_power'),
                            Variable(self._beta2, trainable=False, name='beta2_power'))
        for v in var_list:
            self._zeros_slot(v, 'm')
            self._zeros_slot(v, 'v')

    def _prepare(self):
        beta1_power, beta2_power = self._powers
        self._lr_t = self._lr * sqrt(1 - beta2_power) / (1 - beta1_power)

    def _apply_dense(self, grad, var):
        m, v = self.get_slot(var, 'm'), self.get_slot(var, 'v')
        m_t = m.assign(m * self._beta1 + grad * (1 - self._beta1))
        v_t = v.assign(v * self._beta2 + grad * grad * (1 - self._beta2))
        return var.assign_sub(self._lr_t * m_t / (sqrt(v_t) + self._epsilon))

    def _finish(self):
        beta1_power, beta2_power = self._powers
        return [beta1_power.assign(beta1_power * self._beta1),
                beta2_power.assign(beta2_power * self._beta2)]

"""Keras callbacks: hooks around training, `History`, `EarlyStopping`, and the progress output.

`fit` calls the batch hooks only of callbacks that override them, so a plain fit pays nothing
per batch for hooks. The `logs` passed to batch hooks is a live view of the model's metrics:
reading it reads the metric Variables (take `dict(logs)` to keep a snapshot); epoch hooks get a
plain dict. An exception raised by a callback (KeyboardInterrupt included) ends `fit` at once;
every step is one native call that updates all weights together, so the weights are those after
the last completed step.
"""
import logging
import sys
import time

import numpy as np

log = logging.getLogger('tracejit')

# In a group of processes training one model (tj.distribute), only the first, the chief, shows
# progress; writers of checkpoints ask `is_chief()` too. Set by tj.distribute.init.
_chief = [True]


def set_chief(flag):
    _chief[0] = bool(flag)


def is_chief():
    return _chief[0]


class Callback:
    """Base class; override the hooks you need. `self.model` is the model being trained."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


def _overrides(callback, *hooks):
    return any(getattr(type(callback), h) is not getattr(Callback, h) for h in hooks)


class CallbackList:
    """Dispatches each hook to every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.batch_begin = [cb for cb in self.callbacks
                            if _overrides(cb, 'on_train_batch_begin', 'on_batch_begin')]
        self.batch_end = [cb for cb in self.callbacks
                          if _overrides(cb, 'on_train_batch_end', 'on_batch_end')]

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for cb in self.batch_begin:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self.batch_end:
            cb.on_train_batch_end(batch, logs)


class History(Callback):
    """Records the logs of every epoch: `history` maps each name to a list of values."""

    def __init__(self):
        super().__init__()
        self.epoch, self.history = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved by more than `min_delta` for `patience`
    epochs; optionally restore the weights of the best epoch."""

    def __init__(self, monitor='val_loss', min_delta=0, patience=0, verbose=0, mode='auto',
                 baseline=None, restore_best_weights=False):
        super().__init__()
        if mode not in ('auto', 'min', 'max'):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == 'auto':
            mode = 'max' if 'acc' in monitor or monitor.endswith('auc') else 'min'
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode, self.baseline = mode, baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = np.inf if self.mode == 'min' else -np.inf
        self.best_weights = None

    def _improved(self, value, reference):
        if self.mode == 'min':
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            log.warning('Early stopping conditioned on metric %r which is not available. '
                        'Available metrics are: %s', self.monitor, ', '.join(logs or {}))
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f'Epoch {self.stopped_epoch + 1}: early stopping')


def format_logs(logs):
    """Keras's ' - loss: 0.1234 - accuracy: 0.5000' style (4 decimals, or 4 significant
    digits in exponent form for values below 1e-3)."""
    return ''.join(f' - {k}: {v:.4f}' if abs(v) > 1e-3 else f' - {k}: {v:.4e}'
                   for k, v in logs.items())


class ProgbarLogger(Callback):
    """verbose=1: 'Epoch i/N', then a tqdm progress bar with the running loss and metrics,
    refreshed at most every 0.1 s (the metric Variables are read only then)."""

    REFRESH_S = 0.1

    def __init__(self, steps, epochs, stream=None):
        super().__init__()
        self.steps, self.epochs = steps, epochs
        self.stream = stream or sys.stdout
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm
        print(f'Epoch {epoch + 1}/{self.epochs}', file=self.stream)
        self.bar = tqdm(total=self.steps, file=self.stream, ascii=' =', ncols=100,
                        bar_format='{n_fmt}/{total_fmt} [{bar:30}] - {elapsed}{postfix}')
        self._next_refresh = time.monotonic() + self.REFRESH_S

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.REFRESH_S
            self.bar.set_postfix_str(format_logs(logs)[3:], refresh=False)
        self.bar.update(batch + 1 - self.bar.n)

    def on_epoch_end(self, epoch, logs=None):
        if self.steps is not None:  # None: a dataset of unknown length
            self.bar.update(self.steps - self.bar.n)
        self.bar.set_postfix_str(format_logs(logs)[3:], refresh=False)
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLogger(Callback):
    """verbose=2: one line per epoch, 'Epoch 1/10' then '1/1 - 0s - loss: 9.7596'."""

    def __init__(self, steps, epochs, stream=None):
        super().__init__()
        self.steps, self.epochs = steps, epochs
        self.stream = stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        print(f'Epoch {epoch + 1}/{self.epochs}', file=self.stream)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        print(f'{self.steps}/{self.steps} - {seconds:.0f}s{format_logs(logs)}', file=self.stream)

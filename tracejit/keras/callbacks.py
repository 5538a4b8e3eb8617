"""Keras callbacks: hooks around training, `History`, `EarlyStopping`, and the progress output.

`fit` calls the batch hooks only of callbacks that override them, so a plain fit pays nothing
per batch for hooks. The `logs` passed to batch hooks is a live view of the model's metrics:
reading it reads the metric Variables (take `dict(logs)` to keep a snapshot); epoch hooks get a
plain dict. An exception raised by a callback (KeyboardInterrupt included) ends `fit` at once;
every step is one native call that updates all weights together, so the weights are those after
the last completed step.
"""
import csv
import io
import logging
import os
import sys
import time

import numpy as np

from ..fileio import write_atomically
from .model_file import check_extension

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


def _monitor_mode(mode, monitor):
    if mode not in ('auto', 'min', 'max'):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == 'auto':
        return 'max' if 'acc' in monitor or monitor.startswith('fmeasure') else 'min'
    return mode


class ModelCheckpoint(Callback):
    """Save the model (`model.save`, a `.keras` file) or its weights (`save_weights`) after
    every epoch, or every `save_freq` batches; `filepath` may hold `{epoch:02d}`, `{batch}` and
    log names (`{val_loss:.2f}`). With `save_best_only`, only when `monitor` improved."""

    def __init__(self, filepath, monitor='val_loss', verbose=0, save_best_only=False,
                 save_weights_only=False, mode='auto', save_freq='epoch',
                 initial_value_threshold=None):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if not save_weights_only:
            check_extension(self.filepath)
        if save_freq != 'epoch' and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}; expected 'epoch' or a "
                             'positive integer (batches)')
        self.save_freq, self.mode = save_freq, _monitor_mode(mode, monitor)
        self.best = initial_value_threshold if initial_value_threshold is not None else (
            np.inf if self.mode == 'min' else -np.inf)
        self._batches_seen, self._epoch = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == 'epoch':
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, batch, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == 'epoch':
            self._save(epoch, None, dict(logs or {}))

    def _save(self, epoch, batch, logs):
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                log.warning('Can save best model only with %s available, skipping.',
                            self.monitor)
                return
            better = value < self.best if self.mode == 'min' else value > self.best
            if not better:
                if self.verbose:
                    print(f'\nEpoch {epoch + 1}: {self.monitor} did not improve from '
                          f'{self.best:.5f}')
                return
            if self.verbose:
                print(f'\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} '
                      f'to {value:.5f}, saving model to {self.filepath}')
            self.best = value
        path = self._path(epoch, batch, logs)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _path(self, epoch, batch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, batch=batch, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format the ModelCheckpoint filepath {self.filepath!r}: '
                           f'no {e} among epoch, batch and the logs {sorted(logs)}') from None


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row (`epoch` then the log names, sorted); with
    `append`, go on after the rows already in the file. The file is rewritten atomically
    after each epoch, so it always holds whole rows."""

    def __init__(self, filename, separator=',', append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys, self._text = None, ''

    def on_train_begin(self, logs=None):
        self.keys, self._text = None, ''
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding='utf-8', newline='') as f:
                self._text = f.read()
            header = next(csv.reader(io.StringIO(self._text), delimiter=self.sep), None)
            if header:   # Keras writes no second header, and keeps the first one's columns
                self.keys = header[1:] if header[0] == 'epoch' else None
        self._needs_header = not self._text

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.sep, lineterminator='\n')
        if self.keys is None:
            self.keys = sorted(logs)
        if self._needs_header:
            writer.writerow(['epoch'] + self.keys)
            self._needs_header = False
        writer.writerow([epoch] + [logs.get(k, 'NA') for k in self.keys])
        self._text += buffer.getvalue()
        text = self._text
        write_atomically(self.filename, lambda f: f.write(text))


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

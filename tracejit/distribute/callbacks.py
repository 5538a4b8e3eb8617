"""Keras callbacks for training across processes (Horovod's names)."""
import numpy as np

from ..keras.callbacks import Callback
from . import collectives, world
from .broadcast import broadcast_variables


class BroadcastGlobalVariablesCallback(Callback):
    """Start every process from the weights of `root_rank`: broadcast when training begins,
    or after the first batch for a model that builds its weights on its first call (that
    batch's update then comes from different weights on each process, as with Horovod).
    The optimizer's Variables go too once they exist."""

    def __init__(self, root_rank=0, device=''):
        super().__init__()
        collectives.check_root(root_rank)
        self.root_rank, self.done = root_rank, False

    def _broadcast(self):
        optimizer = getattr(self.model, 'optimizer', None)
        extra = optimizer.variables() if optimizer is not None else []
        broadcast_variables(list(self.model.variables) + list(extra), self.root_rank)
        self.done = True

    def on_train_begin(self, logs=None):
        if self.model.variables:
            self._broadcast()

    def on_train_batch_end(self, batch, logs=None):
        if not self.done:
            self._broadcast()


class MetricAverageCallback(Callback):
    """At each epoch's end, replace every number in `logs` by its mean over the processes, so
    the logs (History, progress, EarlyStopping after this callback) describe the whole data."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or world.size() == 1:
            return
        names = sorted(k for k, v in logs.items() if np.ndim(v) == 0)
        values = np.array([float(logs[k]) for k in names], np.float64)
        averaged = collectives.allreduce(values, op=collectives.Average).numpy()
        logs.update(zip(names, (float(v) for v in averaged)))

"""`tj.train.CheckpointManager`: numbered saves of a Checkpoint into a directory, keeping the
newest `max_to_keep`, with the directory's `checkpoint` file naming them (TF's format).

A new manager picks up the checkpoints that the directory's state file lists and that still
exist, so a restarted program goes on numbering and deleting where the last one stopped. The
state file is rewritten (atomically) before old checkpoints are deleted, so it never names a
file that a crash had already removed.
"""
import os

import numpy as np

from . import checkpoint_file


class CheckpointManager:
    """Save `checkpoint` as `{directory}/{checkpoint_name}-{N}`, keeping `max_to_keep` (None
    keeps all)."""

    def __init__(self, checkpoint, directory, max_to_keep, keep_checkpoint_every_n_hours=None,
                 checkpoint_name='ckpt', step_counter=None, checkpoint_interval=None,
                 init_fn=None):
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep <= 0):
            raise ValueError(f'Expected a positive integer or `None` for `max_to_keep`, got '
                             f'{max_to_keep!r}.')
        unsupported = {'keep_checkpoint_every_n_hours': keep_checkpoint_every_n_hours,
                       'step_counter': step_counter, 'checkpoint_interval': checkpoint_interval}
        given = sorted(name for name, value in unsupported.items() if value is not None)
        if given:
            raise NotImplementedError(f'CheckpointManager: {", ".join(given)} not supported')
        self._checkpoint, self._max_to_keep, self._init_fn = checkpoint, max_to_keep, init_fn
        self._directory = os.fspath(directory)
        self._prefix = os.path.join(self._directory, checkpoint_name)
        latest, every = checkpoint_file.read_state(self._directory)
        self._latest = latest
        self._kept = [p for p in every if os.path.isfile(checkpoint_file.index_path(p))]

    @property
    def directory(self):
        return self._directory

    @property
    def checkpoint(self):
        return self._checkpoint

    @property
    def latest_checkpoint(self):
        """The newest checkpoint's prefix, or None (also when its files were deleted)."""
        latest = self._latest
        return latest if latest and os.path.isfile(checkpoint_file.index_path(latest)) else None

    @property
    def checkpoints(self):
        """The kept checkpoints' prefixes, oldest first."""
        return list(self._kept)

    def save(self, checkpoint_number=None, check_interval=True, options=None):
        """Count the save (checkpoint.save_counter), write `{name}-{checkpoint_number or the
        counter}`, delete the oldest beyond max_to_keep; returns the new prefix."""
        counter = self._checkpoint.save_counter
        count = int(counter.numpy()) + 1
        number = count if checkpoint_number is None else int(np.asarray(checkpoint_number))
        prefix = f'{self._prefix}-{number}'
        counter.assign(np.int64(count))
        try:
            self._checkpoint.write(prefix)
        except BaseException:
            counter.assign(np.int64(count - 1))
            raise
        kept = [p for p in self._kept if p != prefix] + [prefix]
        stale = [] if self._max_to_keep is None else kept[:-self._max_to_keep]
        kept = kept[len(stale):]
        checkpoint_file.write_state(self._directory, prefix, kept)
        for path in stale:
            checkpoint_file.remove(path)
        self._kept, self._latest = kept, prefix
        return prefix

    def restore_or_initialize(self):
        """Restore the latest checkpoint and return its path; with none, run `init_fn` (when
        given) and return None."""
        latest = self.latest_checkpoint
        if latest is not None:
            self._checkpoint.restore(latest)
            return latest
        if self._init_fn is not None:
            self._init_fn()
        return None

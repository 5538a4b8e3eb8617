"""What `compile` makes of its loss, loss_weights and metrics for models with several outputs.

`loss` is one loss (used for every output), a list (one per output, in output order) or a
dict keyed by output name (outputs without an entry get no loss); `loss_weights` a list or
dict of the same kind (default 1). The model's loss is the weighted sum of the outputs'
losses. `metrics` is a list of lists or a dict of lists (per output). As in Keras 3, with
several outputs the logs hold `loss`, `<output>_loss` per output with a loss and
`<output>_<metric>` per metric, in alphabetical order after `loss`.
"""
from .. import tree
from . import losses, metrics as metrics_module


def _per_output(spec, names, what, default=None):
    """`spec` as one entry per output (in `names` order)."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f'{what} has keys {unknown} that are not outputs of the model; '
                             f'its outputs are {names}')
        return [spec.get(name, default) for name in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f'{what} has {len(spec)} entries but the model has '
                             f'{len(names)} outputs {names}: pass one per output, or a dict '
                             'keyed by output name')
        return list(spec)
    return [spec] * len(names)


def targets(y, names):
    """The labels as one array per output, in `names` order."""
    if isinstance(y, dict):
        missing = [n for n in names if n not in y]
        if missing:
            raise ValueError(f'the labels (y) miss outputs {missing}; the model\'s outputs are '
                             f'{names}')
        return [y[n] for n in names]
    flat = y if isinstance(y, (list, tuple)) else [y]
    if len(flat) != len(names):
        raise ValueError(f'the model has {len(names)} outputs {names} but y holds '
                         f'{len(flat)} arrays')
    return list(flat)


class OutputLosses:
    """The model's loss over its outputs (what `compile` keeps as `compiled_loss`), with a
    loss tracker per output when there are several."""

    def __init__(self, loss, loss_weights, names):
        self.names = list(names)
        self.losses = [None if spec is None else losses.as_loss(spec)
                       for spec in _per_output(loss, self.names, 'loss')]
        if all(fn is None for fn in self.losses):
            raise ValueError(f'compile needs a loss for at least one of the outputs {names}')
        weights = _per_output(1.0 if loss_weights is None else loss_weights, self.names,
                              'loss_weights', 1.0)
        self.weights = [float(w) for w in weights]
        self.trackers = [metrics_module.Mean(f'{name}_loss') if fn is not None else None
                         for name, fn in zip(self.names, self.losses)] \
            if len(self.names) > 1 else [None]

    def compute(self, y, y_pred, batch_size):
        """(total loss, [each output's loss or None])."""
        parts = []
        for fn, true, pred in zip(self.losses, targets(y, self.names), tree.leaves(y_pred)):
            parts.append(None if fn is None else fn._reduced(true, pred, None, batch_size))
        total = None
        for part, weight in zip(parts, self.weights):
            if part is not None:
                term = part if weight == 1.0 else part * weight
                total = term if total is None else total + term
        return total, parts

    def update_trackers(self, parts, batch_size):
        for tracker, part in zip(self.trackers, parts):
            if tracker is not None:
                tracker.update_state(part, sample_weight=batch_size)


class OutputMetrics:
    """Metrics per output: `(output index, Metric)` pairs, named `<output>_<metric>` when the
    model has several outputs."""

    def __init__(self, spec, names):
        self.names = list(names)
        self.entries = []
        if not spec:
            return
        several = len(self.names) > 1
        if several and isinstance(spec, (list, tuple)) and not all(
                isinstance(m, (list, tuple)) or m is None for m in spec):
            raise ValueError('for a model with several outputs pass metrics as a list of '
                             'lists (one list per output) or a dict keyed by output name')
        per_output = _per_output(spec, self.names, 'metrics', []) \
            if several or isinstance(spec, dict) else [spec]
        for index, items in enumerate(per_output):
            if items is None:
                continue
            items = [items] if not isinstance(items, (list, tuple)) else items
            for item in items:
                metric = metrics_module.as_metric(item)
                if several:
                    metric.name = f'{self.names[index]}_{metric.name}'
                self.entries.append((index, metric))

    @property
    def metrics(self):
        return [metric for _, metric in self.entries]

    def update(self, y, y_pred, batch_size):
        trues, preds = targets(y, self.names), tree.leaves(y_pred)
        for index, metric in self.entries:
            metric.update_batch(trues[index], preds[index], batch_size)

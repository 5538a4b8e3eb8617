"""`fit`, `evaluate` and `predict`: input checks, batching, and the compiled steps.

The training step (forward, loss, gradients, optimizer update, loss and metric state updates)
is ONE `tj.function`, so each batch is one native call. It is called with positional numpy
arguments `(x, y, batch_size)`: contiguous slices of arrays shuffled once per epoch (views, no
per-batch copies) and the batch size as a Python float, which `tj.function` traces as a scalar.
The loss mean and metric counts divide by that traced scalar, so the step contains no constant
that depends on the batch size and the last, smaller batch retraces without recompiling.
Metric Variables are read only for display and at the end of each epoch.

`steps_per_execution=N` adds a second compiled function that runs N batches per call: a scan
over the stacked (N, batch, ...) batches whose body is the training step, carrying the model's
Variables, optimizer slots and metric state, so the kernel holds the step once whatever N is
(a new N retraces, with no compile). The one-batch step is traced first, so the Variables it
creates on its first trace exist before the loop body, where none may be created.

All input checks (lengths, dtypes, NaN, feature count) happen before the first step, and a step
is atomic, so a bad input never changes a weight.
"""
import collections.abc
import functools
import itertools
import math
import warnings

import numpy as np

from .. import dtypes, random, tree
from ..data import INFINITE_CARDINALITY, Dataset
from ..function import function as tj_function
from ..autodiff import GradientTape
from ..control import scan_flat
from . import callbacks as callbacks_module, structured_data


# ------------------------------------------------------------------------------ steps

class Steps:
    """The step functions of a model (compiled with tj.function unless run eagerly), each
    created on first use."""

    def __init__(self, model, run_eagerly=False):
        self.model, self.run_eagerly = model, run_eagerly

    def _compile(self, fn):
        return fn if self.run_eagerly else tj_function(fn)

    @functools.cached_property
    def one_batch(self):
        """The training step as a Python function of `(x, y, batch_size)`: Keras's default,
        or the model's own `train_step(data)`, whose logs it returns."""
        model = self.model
        if model._overrides('train_step'):
            def train_step(x, y, batch_size):
                return _as_logs(model.train_step((x, y)), 'train_step')
        else:
            def train_step(x, y, batch_size):
                train_one_batch(model, x, y, batch_size)
        return train_step

    @functools.cached_property
    def train(self):
        return self._compile(self.one_batch)

    @functools.cached_property
    def train_multi(self):
        """Runs `xs.shape[0]` stacked batches per call; returns what the last batch's step
        returns (the logs of an overridden `train_step`, else None)."""
        step = self.one_batch
        if self.run_eagerly:
            def train_steps(xs, ys, batch_size):
                for k in range(tree.leaves(xs)[0].shape[0]):
                    logs = step(_row(xs, k), _row(ys, k), batch_size)
                return logs
            return train_steps

        def train_scan(xs, ys, batch_size):
            x_leaves, x_tree = tree.flatten(xs)
            y_leaves, y_tree = tree.flatten(ys)
            logs_tree = []

            def body(carry, rows):
                logs = step(tree.unflatten(x_tree, rows[:len(x_leaves)]),
                            tree.unflatten(y_tree, rows[len(x_leaves):]), batch_size)
                leaves, treedef = tree.flatten(logs)
                logs_tree.append(treedef)
                return [], leaves
            _, stacked = scan_flat(body, [], x_leaves + y_leaves,
                                   what='fit with steps_per_execution')
            return tree.unflatten(logs_tree[0], [s[-1] for s in stacked])
        return _AfterFirstTrace(self._compile(train_scan), self.train)

    @functools.cached_property
    def test(self):
        model = self.model
        if model._overrides('test_step'):
            def test_step(x, y, batch_size):
                return _as_logs(model.test_step((x, y)), 'test_step')
            return self._compile(test_step)

        def test_step(x, y, batch_size):
            test_one_batch(model, x, y, batch_size)
        return self._compile(test_step)

    @functools.cached_property
    def predict(self):
        model = self.model

        def predict_step(x):
            return model(x, training=False)
        return self._compile(predict_step)


class _AfterFirstTrace:
    """A compiled function whose traces create no Variable: `first`, the function creating
    them on its first trace, is traced before it (on the first row of the stacked batches).
    Introspection is the function's."""

    def __init__(self, function, first):
        self.function, self.first = function, first
        self.cache_info, self.lower = function.cache_info, function.lower
        self.first_traced = False

    def __call__(self, xs, ys, batch_size):
        if not self.first_traced:
            if not self.first.cache_info()['traces']:
                self.first.trace(_row(xs, 0), _row(ys, 0), batch_size)
            self.first_traced = True
        return self.function(xs, ys, batch_size)


def _row(data, k):
    return tree.tree_map(lambda a: a[k], data)


def train_one_batch(model, x, y, batch_size):
    with GradientTape() as tape:
        y_pred = model(x, training=True)
        loss, parts = model.compiled_loss.compute(y, y_pred, batch_size)
    variables = model.trainable_weights
    grads = tape.gradient(loss, variables)
    model.optimizer.apply_gradients(zip(grads, variables))
    _update_metrics(model, y, y_pred, loss, parts, batch_size)


def _as_logs(logs, what):
    """An overridden step's logs: a dict name -> scalar, as Keras's fit expects."""
    if not isinstance(logs, collections.abc.Mapping):
        raise TypeError(f'{what} must return a dict of metric names to scalar values (e.g. '
                        f'{{m.name: m.result() for m in self.metrics}}), got '
                        f'{type(logs).__name__}')
    return dict(logs)


def step_logs_values(logs):
    """Python floats of the logs an overridden step returned (flattening nested dicts, as
    Keras does with the result of a compiled-metrics container)."""
    flat = {}
    for name, value in logs.items():
        if isinstance(value, collections.abc.Mapping):
            flat.update(step_logs_values(value))
        else:
            flat[name] = float(np.asarray(value))
    return flat


def _batch_end(model, out, logs, end, batch):
    """After a call: keep the logs an overridden train_step returned (`out`, else None) and
    give the batch-end hooks those, or the live metric logs."""
    if out is not None:
        model._step_logs = step_logs_values(out)
    if logs is not None:
        end(batch, logs if out is None else model._step_logs)


def test_one_batch(model, x, y, batch_size):
    y_pred = model(x, training=False)
    loss, parts = model.compiled_loss.compute(y, y_pred, batch_size)
    _update_metrics(model, y, y_pred, loss, parts, batch_size)


def _update_metrics(model, y, y_pred, loss, parts, batch_size):
    """Loss mean weighted by batch size (as Keras does), each output's loss (with several
    outputs), then each compiled metric."""
    model.loss_tracker.update_state(loss, sample_weight=batch_size)
    model.compiled_loss.update_trackers(parts, batch_size)
    model.output_metrics.update(y, y_pred, batch_size)


class MetricLogs(collections.abc.Mapping):
    """A read-only mapping name -> current value of the model's metrics, read on access."""

    def __init__(self, metrics):
        self._metrics = {m.name: m for m in metrics}

    def __getitem__(self, name):
        return self._metrics[name]._value()

    def __iter__(self):
        return iter(self._metrics)

    def __len__(self):
        return len(self._metrics)


# ------------------------------------------------------------------------------ inputs

def as_input(data, what, check_nan=True):
    """A C-contiguous numpy array for `data`: floats as float32, 1-D data as one column (as
    Keras fits do); TypeError for non-numeric data, ValueError for NaNs. A list or dict of
    arrays (several inputs or outputs) gives the same structure of such arrays."""
    return structured_data.convert(data, what, lambda a, name: _as_array(a, name, check_nan))


def _as_array(data, what, check_nan):
    if data is None:
        raise ValueError(f'{what} is None; pass a numpy array or tensor')
    if isinstance(data, (dict, str, bytes)) or callable(getattr(data, '__next__', None)):
        raise TypeError(f'{what}: only numpy arrays and tensors are supported, got '
                        f'{type(data).__name__}')
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise TypeError(f'{what} could not be converted to a numeric array: {e}') from None
    if array.dtype.kind not in 'biuf':
        raise TypeError(f'{what} must be numeric, got an array of dtype {array.dtype} '
                        f'(convert it with np.asarray(..., dtype=np.float32))')
    if array.ndim == 0:
        raise ValueError(f'{what} must have a batch dimension, got a scalar')
    if array.dtype.kind == 'f':
        if check_nan and not np.isfinite(array).all():
            first = tuple(np.argwhere(~np.isfinite(array))[0].tolist())
            bad = 'NaN' if np.isnan(array[first]) else float(array[first])
            raise ValueError(f'{what} contains {bad} (first at index {first}); '
                             'clean the data before training (NaN and inf would make every '
                             'weight non-finite)')
        array = array.astype(np.float32, copy=False)
    else:
        array = dtypes.to_canonical(array, what)
    if array.ndim == 1:
        array = array[:, None]
    return np.ascontiguousarray(array)


def check_pair(x, y, what=''):
    nx, ny = structured_data.sample_count(x, 'x'), structured_data.sample_count(y, 'y')
    if nx != ny:
        raise ValueError(f'Data cardinality is ambiguous{what}: x has {nx} samples, y has '
                         f'{ny}. Make sure all arrays contain the same number of samples.')
    if nx == 0:
        raise ValueError(f'no data{what}: x and y are empty')


def _check_shape(model, x):
    """The model's check of one input array's shape (structured inputs are checked per
    input when the step is traced)."""
    if isinstance(x, np.ndarray):
        model._check_data_shape(x.shape)


def _whole_number(value, what, least):
    """An integer-valued number (numpy scalars and 0-d arrays too) of at least `least`."""
    try:
        number = None if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or number != int(number) or number < least:
        kind = 'a positive integer' if least == 1 else 'a non-negative integer'
        raise ValueError(f'{what} must be {kind}, got {value!r}')
    return int(number)


def _batch_size(value):
    """Keras's default of 32 for None; anything else must be a positive integer."""
    return 32 if value is None else _whole_number(value, 'batch_size', 1)


def _verbosity(verbose):
    if verbose == 'auto':
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


# ------------------------------------------------------------------------------ fit

def fit(model, x, y, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, initial_epoch=0, steps_per_epoch=None,
        validation_steps=None):
    model._require_compiled('fit')
    epochs = _whole_number(epochs, 'epochs', 0)
    initial_epoch = _whole_number(initial_epoch, 'initial_epoch', 0)
    verbose = _verbosity(verbose)
    if isinstance(x, Dataset):
        source = _DatasetEpochs(model, x, y, batch_size, steps_per_epoch, validation_data,
                                validation_steps, validation_split)
    else:
        source = _ArrayEpochs(model, x, y, batch_size, shuffle, validation_data,
                              validation_split, validation_steps)
    history = callbacks_module.History()
    logger = {1: callbacks_module.ProgbarLogger, 2: callbacks_module.EpochLogger}.get(verbose)
    logger = logger(source.steps, epochs) if logger and callbacks_module.is_chief() else None
    cbs = callbacks_module.CallbackList(
        list(callbacks or []) + [history] + ([logger] if logger else []), model,
        {'epochs': epochs, 'steps': source.steps, 'verbose': verbose})
    model.history, model.stop_training, model._step_logs = history, False, {}
    logs = None
    try:
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            cbs.on_epoch_begin(epoch)
            source.run_epoch(cbs)
            logs = model._epoch_logs()
            val_logs = source.validate()
            if val_logs is not None:
                logs.update((f'val_{k}', v) for k, v in val_logs.items())
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        cbs.on_train_end(logs)
    finally:
        if isinstance(logger, callbacks_module.ProgbarLogger):
            logger.close()
    return history


class _ArrayEpochs:
    """Epochs over numpy data: shuffled once per epoch into buffers every epoch reuses, then
    cut into the batch plan's slices (views)."""

    def __init__(self, model, x, y, batch_size, shuffle, validation_data, validation_split,
                 validation_steps):
        self.model, self.batch_size = model, _batch_size(batch_size)
        self.x, self.y, validation_data = _fit_data(model, x, y, validation_data,
                                                    validation_split)
        self.validate = _validator(model, validation_data, validation_steps, self.batch_size)
        self.steps = math.ceil(structured_data.sample_count(self.x, 'x') / self.batch_size)
        self.plan = batch_plan(model, self.x, self.y, self.batch_size)
        self.rng = np.random.default_rng(_seed_from_tj_random()) if shuffle else None
        if self.rng is not None:
            self.xs, self.ys = structured_data.empty_like(self.x), \
                structured_data.empty_like(self.y)

    def run_epoch(self, cbs):
        xs, ys = self.x, self.y
        if self.rng is not None:
            order = self.rng.permutation(structured_data.sample_count(xs, 'x'))
            xs = structured_data.take(xs, order, self.xs)
            ys = structured_data.take(ys, order, self.ys)
        _run_epoch(self.model, xs, ys, self.plan, cbs)



class _DatasetEpochs:
    """Epochs over a dataset of (x, y) batches: each epoch runs the dataset once, or, with
    `steps_per_epoch`, takes that many batches from one iterator that goes on across epochs
    (as Keras does, for a repeated dataset)."""

    def __init__(self, model, dataset, y, batch_size, steps_per_epoch, validation_data,
                 validation_steps, validation_split):
        if y is not None:
            raise ValueError('y must be None when x is a dataset (its elements are (x, y))')
        if batch_size is not None:
            raise ValueError('batch_size must be None when x is a dataset: batch the dataset '
                             '(dataset.batch(n))')
        if validation_split:
            raise ValueError('validation_split is not supported with a dataset; pass '
                             'validation_data')
        self.model, self.dataset = model, dataset
        self.limit = None if steps_per_epoch is None else _whole_number(
            steps_per_epoch, 'steps_per_epoch', 1)
        count = dataset._count()
        if self.limit is None and count == INFINITE_CARDINALITY:
            raise ValueError('the dataset is infinite (repeat()): pass steps_per_epoch')
        if count == 0:
            raise ValueError('the dataset has no batches to train on')
        self.steps = self.limit if self.limit is not None else count if count >= 0 else None
        self.iterator = None
        self.validate = _validator(model, validation_data, validation_steps, _batch_size(None))

    def _batches(self):
        # a new pass each epoch, unless steps_per_epoch takes fewer batches than one pass holds
        # (then one iterator goes on across epochs), as Keras decides
        if self.limit is None or self.limit == self.dataset._count():
            return iter(self.dataset._elements())
        if self.iterator is None:
            self.iterator = iter(self.dataset._elements())
        return itertools.islice(self.iterator, self.limit)

    def run_epoch(self, cbs):
        model = self.model
        logs = MetricLogs(model.metrics) if cbs.batch_begin or cbs.batch_end else None
        batch = 0
        pairs = dataset_pairs(model, self._batches())
        for x, y, count in _executions(pairs, model._steps_per_execution):
            step = model._steps.train if count is None else model._steps.train_multi
            if logs is not None:
                cbs.on_train_batch_begin(batch, logs)
            out = step(x, y, float(structured_data.sample_count(x, 'x') if count is None
                                   else tree.leaves(x)[0].shape[1]))
            batch += count or 1
            _batch_end(model, out, logs, cbs.on_train_batch_end, batch - 1)
            if model.stop_training:
                return
        if batch == 0 and self.limit is None:
            raise ValueError('the dataset has no batches to train on')
        if self.limit is not None and batch < self.limit:
            warnings.warn(f'the dataset ran out of data after {batch} of {self.limit} '
                          'steps_per_epoch; use repeat() to train longer', RuntimeWarning,
                          stacklevel=4)
            model.stop_training = True


def _executions(pairs, per_call):
    """A dataset's (x, y) batches grouped into native calls: `(x, y, None)` for a call on one
    batch; with steps_per_execution = N, runs of 2 to N consecutive batches of one signature
    become `(xs, ys, count)`, stacked (one copy) for the multi-batch step."""
    run, signature = [], None
    for x, y in pairs:
        leaves = tree.leaves((x, y))
        key = tuple((a.shape, a.dtype) for a in leaves)
        if run and key != signature:
            yield _stacked(run)
            run = []
        run.append((x, y))
        signature = key
        if len(run) == per_call:
            yield _stacked(run)
            run = []
    if run:
        yield _stacked(run)


def _stacked(run):
    if len(run) == 1:
        return run[0] + (None,)
    _, treedef = tree.flatten(run[0])
    columns = zip(*(tree.leaves(pair) for pair in run))
    xs, ys = tree.unflatten(treedef, [np.stack(column) for column in columns])
    return xs, ys, len(run)


def _limited(dataset, steps, what='steps'):
    """The dataset's batches, `steps` of them at most; an infinite dataset needs `steps`."""
    if steps is None:
        if dataset._count() == INFINITE_CARDINALITY:
            raise ValueError(f'the dataset is infinite (repeat()): pass {what}')
        return dataset._elements()
    return itertools.islice(dataset._elements(), _whole_number(steps, what, 1))


def dataset_pairs(model, batches):
    """(x, y) numpy batches of a dataset, each checked as `fit` checks arrays."""
    for k, element in enumerate(batches):
        if not isinstance(element, tuple) or len(element) != 2:
            raise ValueError(f'dataset batch {k}: expected an (x, y) pair, got '
                             f'{type(element).__name__}' + (
                                 f' of {len(element)} items' if isinstance(element, tuple)
                                 else ''))
        x, y = as_input(element[0], f'x of dataset batch {k}'), as_input(
            element[1], f'y of dataset batch {k}')
        check_pair(x, y, f' in dataset batch {k}')
        _check_shape(model, x)
        yield x, y


def _fit_data(model, x, y, validation_data, validation_split):
    """(x, y, (x_val, y_val) or None), all checked: validation_split takes the last part of
    the data, before any shuffling, as Keras does."""
    x, y = as_input(x, 'x'), as_input(y, 'y')
    check_pair(x, y)
    if validation_data is None and validation_split:
        if not 0 < validation_split < 1:
            raise ValueError(f'validation_split must be in [0, 1), got {validation_split}')
        n = structured_data.sample_count(x, 'x')
        split = int(n * (1 - validation_split))
        rows = structured_data.rows
        x, y, validation_data = rows(x, 0, split), rows(y, 0, split), (rows(x, split, n),
                                                                        rows(y, split, n))
        check_pair(x, y, ' after validation_split')
    _check_shape(model, x)
    return x, y, validation_data


def _validator(model, validation_data, validation_steps, batch_size):
    """A function giving the validation metrics after an epoch (None without validation
    data); the data is checked now, before any step."""
    if validation_data is None:
        return lambda: None
    if isinstance(validation_data, Dataset):
        if validation_steps is None and validation_data._count() == INFINITE_CARDINALITY:
            raise ValueError('validation_data is infinite (repeat()): pass validation_steps')
        return lambda: evaluate_batches(model, _limited(validation_data, validation_steps,
                                                        'validation_steps'))
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError('validation_data must be a dataset or a pair (x_val, y_val)')
    x, y = as_input(validation_data[0], 'validation x'), as_input(validation_data[1],
                                                                  'validation y')
    check_pair(x, y, ' in validation_data')
    _check_shape(model, x)
    return lambda: evaluate_arrays(model, x, y, batch_size)


def _seed_from_tj_random():
    """Shuffling follows tj.random, so tj.random.set_seed makes fits reproducible."""
    return np.asarray(random.uniform([4], 0, 65536.0)).astype(np.int64)


def batch_plan(model, x, y, batch_size):
    """One entry per native call of an epoch: (step, start, stop, leading axes of the
    stacked batches or None, batch size, batches). With steps_per_execution = N, runs of N
    full batches go to the multi-batch step as (N, batch, ...) views, and so do the fewer full
    batches left after them, as Keras runs a shorter last execution; the last partial batch
    goes alone."""
    n = structured_data.sample_count(x, 'x')
    per_call, plan, start = model._steps_per_execution, [], 0
    if per_call > 1:
        while start + 2 * batch_size <= n:
            count = min(per_call, (n - start) // batch_size)
            stop = start + count * batch_size
            plan.append((model._steps.train_multi, start, stop, (count, batch_size),
                         float(batch_size), count))
            start = stop
    while start < n:
        stop = min(start + batch_size, n)
        plan.append((model._steps.train, start, stop, None, float(stop - start), 1))
        start = stop
    return plan


def _run_epoch(model, xs, ys, plan, cbs):
    """All calls of one epoch; per call only slicing views, the native call, and the batch
    hooks of callbacks that have them."""
    logs = MetricLogs(model.metrics) if cbs.batch_begin or cbs.batch_end else None
    begin, end = cbs.on_train_batch_begin, cbs.on_train_batch_end
    batch = 0
    rows = structured_data.rows
    for step, start, stop, lead, size, batches in plan:
        if logs is not None:
            begin(batch, logs)
        out = step(rows(xs, start, stop, lead), rows(ys, start, stop, lead), size)
        batch += batches
        _batch_end(model, out, logs, end, batch - 1)
        if model.stop_training:
            break


# ------------------------------------------------------------------------------ evaluate, predict

def _predict_batches(model, batches):
    """A dataset's batches for predict: an element is x, or a tuple whose first item is x."""
    for k, element in enumerate(batches):
        x = element[0] if isinstance(element, tuple) else element
        x = as_input(x, f'x of dataset batch {k}', check_nan=False)
        _check_shape(model, x)
        yield x


def evaluate(model, x, y, batch_size=None, verbose=1, return_dict=False, steps=None):
    model._require_compiled('evaluate')
    if isinstance(x, Dataset):
        if y is not None or batch_size is not None:
            raise ValueError('y and batch_size must be None when x is a dataset')
        logs, steps = evaluate_batches(model, _limited(x, steps), count=True)
    else:
        x, y = as_input(x, 'x'), as_input(y, 'y')
        check_pair(x, y)
        _check_shape(model, x)
        batch_size = _batch_size(batch_size)
        logs = evaluate_arrays(model, x, y, batch_size)
        steps = math.ceil(structured_data.sample_count(x, 'x') / batch_size)
    if verbose:
        print(f'{steps}/{steps}{callbacks_module.format_logs(logs)}')
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def evaluate_arrays(model, x, y, batch_size):
    """Metric values over (x, y), from freshly reset metric state."""
    model.reset_metrics()
    test = model._steps.test
    n, rows = structured_data.sample_count(x, 'x'), structured_data.rows
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out = test(rows(x, start, stop), rows(y, start, stop), float(stop - start))
    return model._metric_values() if out is None else step_logs_values(out)


def evaluate_batches(model, batches, count=False):
    """Metric values over a dataset's (x, y) batches, from freshly reset metric state (and,
    with `count`, the number of batches)."""
    model.reset_metrics()
    test, n = model._steps.test, 0
    for n, (x, y) in enumerate(dataset_pairs(model, batches), 1):
        out = test(x, y, float(structured_data.sample_count(x, 'x')))
    if n == 0:
        raise ValueError('the dataset has no batches to evaluate')
    logs = model._metric_values() if out is None else step_logs_values(out)
    return (logs, n) if count else logs


def predict(model, x, batch_size=None, steps=None):
    step = model._steps.predict
    if isinstance(x, Dataset):
        if batch_size is not None:
            raise ValueError('batch_size must be None when x is a dataset')
        outputs = [step(b) for b in _predict_batches(model, _limited(x, steps))]
        if not outputs:
            raise ValueError('the dataset has no batches to predict')
    else:
        x = as_input(x, 'x', check_nan=False)
        _check_shape(model, x)
        batch_size = _batch_size(batch_size)
        n = structured_data.sample_count(x, 'x')
        starts = range(0, n, batch_size) or [0]  # no rows: one empty batch, (0, units)
        outputs = [step(structured_data.rows(x, start, start + batch_size)) for start in starts]
    leaves, treedef = zip(*(tree.flatten(o) for o in outputs))
    columns = zip(*leaves)
    return tree.unflatten(treedef[0], [np.concatenate([np.asarray(v) for v in column])
                                       for column in columns])

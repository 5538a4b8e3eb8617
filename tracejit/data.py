"""`tj.data`: input pipelines in the style of TensorFlow's tf.data.

A Dataset is a recipe for a sequence of elements; each iteration runs it from the start. An
element is a structure (tuples, dicts, namedtuples, nested) of tensors. Inside the pipeline
elements travel as numpy arrays; Python iteration hands out `tj.Tensor`s and
`as_numpy_iterator()` numpy values. Transformations return a new dataset and leave theirs
unchanged. `map` and `filter` compile their function with `tj.function`, so, as in TF, it is
traced once per element signature (Python side effects run while tracing, not per element).
Batching slices arrays whole where it can, so a batch costs one copy, not one per element.
"""
import collections
import csv
import glob
import os
import queue
import threading

import numpy as np

from . import dtypes, errors, random, tree
from .function import function
from .spec import TensorSpec
from .tensor import Tensor, TensorOps
from .tracing import to_array

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


# ---------------------------------------------------------------------------- elements

def _structure(value, what):
    """A user value as an element: the same structure with numpy arrays as leaves. Lists are
    values, as in TF (a list of numbers is one tensor), tuples and dicts are structure."""
    if isinstance(value, dict):
        return type(value)((k, _structure(v, what)) for k, v in value.items())
    if isinstance(value, tuple):
        items = [_structure(v, what) for v in value]
        return type(value)(*items) if hasattr(type(value), '_fields') else tuple(items)
    if isinstance(value, TensorOps):
        return np.asarray(value.numpy())
    return to_array(value, what)


def _tensors(element):
    return tree.tree_map(Tensor, element)


def _numpy(element):
    return tree.tree_map(lambda a: a[()] if a.ndim == 0 else a, element)


def _spec_of(element):
    return tree.tree_map(TensorSpec.from_array, element)


def _arguments(element):
    """TF's convention: a tuple element is unpacked into the function's arguments."""
    return element if isinstance(element, tuple) and not hasattr(element, '_fields') \
        else (element,)


def _cardinality(n):
    return Tensor(np.asarray(n, np.int64))


# ---------------------------------------------------------------------------- datasets

class Dataset:
    """Base class: subclasses implement `_elements()` (an iterator of numpy structures),
    `_count()` (the number of elements, INFINITE_ or UNKNOWN_CARDINALITY) and `_spec()`."""

    # -- reading ----------------------------------------------------------------------------

    def __iter__(self):
        return (_tensors(e) for e in self._elements())

    def as_numpy_iterator(self):
        return (_numpy(e) for e in self._elements())

    def cardinality(self):
        return _cardinality(self._count())

    def __len__(self):
        n = self._count()
        if n < 0:
            raise TypeError('the length of this dataset is ' + (
                'infinite' if n == INFINITE_CARDINALITY else 'unknown'))
        return n

    @property
    def element_spec(self):
        return self._spec()

    def _row_order(self):
        """(index array, slices dataset) when this dataset's elements are rows of arrays in that
        order (so a batch can be sliced whole), else None."""
        return None

    def __repr__(self):
        return f'<{type(self).__name__.lstrip("_")}Dataset element_spec={self._spec()}>'

    # -- sources ----------------------------------------------------------------------------

    @staticmethod
    def from_tensor_slices(tensors, name=None):
        return _Slices(_structure(tensors, 'from_tensor_slices value'))

    @staticmethod
    def from_tensors(tensors, name=None):
        return _Constant(_structure(tensors, 'from_tensors value'))

    @staticmethod
    def range(*args, dtype=np.int64, name=None):
        return _Range(range(*(int(a) for a in args)), np.dtype(dtype.np if hasattr(dtype, 'np')
                                                              else dtype))

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None,
                       output_signature=None, name=None):
        if output_signature is None:
            if output_types is None:
                raise TypeError('from_generator needs output_signature (or output_types)')
            types, treedef = tree.flatten(output_types, is_leaf=_is_dtype)
            shapes = [None] * len(types) if output_shapes is None else \
                [output_shapes] if treedef == tree.LEAF else \
                tree.flatten(output_shapes, is_leaf=_is_shape)[0]
            if len(shapes) != len(types):
                raise ValueError(f'from_generator: {len(shapes)} output_shapes for '
                                 f'{len(types)} output_types')
            output_signature = tree.unflatten(treedef, [TensorSpec(s, t)
                                                        for t, s in zip(types, shapes)])
        return _Generator(generator, tuple(args or ()), output_signature)

    @staticmethod
    def zip(*datasets, name=None):
        if len(datasets) == 1:
            datasets = datasets[0]       # zip((a, b)), zip({'a': a}), or zip(a): a itself
        if isinstance(datasets, (tuple, list, dict)) and not datasets:
            raise ValueError('Dataset.zip needs at least one dataset')
        return _Zip(datasets)

    # -- transformations --------------------------------------------------------------------

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        return _Map(self, map_func)

    def filter(self, predicate, name=None):
        return _Filter(self, predicate)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        return _Batch(self, _positive(batch_size, 'batch_size'), bool(drop_remainder))

    def padded_batch(self, batch_size, padded_shapes=None, padding_values=None,
                     drop_remainder=False, name=None):
        return _PaddedBatch(self, _positive(batch_size, 'batch_size'), padded_shapes,
                            padding_values, bool(drop_remainder))

    def unbatch(self, name=None):
        return _Unbatch(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        return _Shuffle(self, _positive(buffer_size, 'buffer_size'), seed,
                        bool(reshuffle_each_iteration))

    def repeat(self, count=None, name=None):
        return _Repeat(self, -1 if count is None else int(count))

    def take(self, count, name=None):
        return _Take(self, int(count))

    def skip(self, count, name=None):
        return _Skip(self, int(count))

    def cache(self, filename='', name=None):
        if filename:
            raise NotImplementedError('Dataset.cache to a file is not supported; '
                                      'cache() keeps the elements in memory')
        return _Cache(self)

    def prefetch(self, buffer_size, name=None):
        return _Prefetch(self, 2 if buffer_size == AUTOTUNE else _positive(buffer_size,
                                                                          'buffer_size'))

    def enumerate(self, start=0, name=None):
        return _Enumerate(self, int(start))

    def concatenate(self, dataset, name=None):
        return _Concatenate(self, dataset)


def _is_dtype(value):
    try:
        dtypes.as_dtype(value)
        return True
    except (TypeError, ValueError):
        return False


def _is_shape(value):
    return value is None or isinstance(value, list) or (
        isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value))


def _positive(value, what):
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise errors.InvalidArgumentError(f'{what} must be a positive integer, got {value!r}')
    return int(value)


class _Slices(Dataset):
    def __init__(self, element):
        leaves, self.treedef = tree.flatten(element)
        if not leaves:
            raise ValueError('from_tensor_slices needs at least one tensor')
        for leaf in leaves:
            if leaf.ndim == 0:
                raise errors.InvalidArgumentError(
                    'from_tensor_slices: every component must have rank >= 1 (they are sliced '
                    'along their first dimension), got a scalar')
        sizes = {leaf.shape[0] for leaf in leaves}
        if len(sizes) > 1:
            raise errors.InvalidArgumentError(
                'from_tensor_slices: all components must have the same size in their first '
                f'dimension, got {" vs ".join(str(l.shape) for l in leaves)}')
        self.leaves, self.size = leaves, sizes.pop()

    def _elements(self):
        for i in range(self.size):
            yield tree.unflatten(self.treedef, [leaf[i, ...] for leaf in self.leaves])

    def _count(self):
        return self.size

    def _spec(self):
        return tree.unflatten(self.treedef, [TensorSpec(l.shape[1:], l.dtype)
                                             for l in self.leaves])

    def _row_order(self):
        return np.arange(self.size), self

    def _rows(self, order):
        """The elements at `order` (an index array), stacked: a whole batch in one copy."""
        return tree.unflatten(self.treedef, [leaf[order] for leaf in self.leaves])


class _Constant(Dataset):
    def __init__(self, element):
        self.element = element

    def _elements(self):
        yield self.element

    def _count(self):
        return 1

    def _spec(self):
        return _spec_of(self.element)


class _Range(Dataset):
    def __init__(self, numbers, dtype):
        self.numbers, self.dtype = numbers, dtype

    def _elements(self):
        return (np.asarray(n, self.dtype) for n in self.numbers)

    def _count(self):
        return len(self.numbers)

    def _spec(self):
        return TensorSpec((), self.dtype)


class _Generator(Dataset):
    def __init__(self, generator, args, signature):
        self.generator, self.args, self.signature = generator, args, signature
        self.specs, self.treedef = tree.flatten(signature)

    def _elements(self):
        for value in self.generator(*self.args):
            leaves, treedef = tree.flatten(_structure(value, 'generator output'))
            if treedef != self.treedef:
                raise errors.InvalidArgumentError(
                    f'from_generator: the generator yielded {treedef}, which does not match '
                    f'output_signature {self.signature}')
            yield tree.unflatten(treedef, [self._checked(leaf, spec)
                                           for leaf, spec in zip(leaves, self.specs)])

    @staticmethod
    def _checked(leaf, spec):
        if leaf.dtype != spec.dtype.np:
            if not np.can_cast(leaf.dtype, spec.dtype.np, 'same_kind'):
                raise errors.InvalidArgumentError(
                    f'from_generator: yielded a {leaf.dtype.name} value where the signature '
                    f'says {spec.dtype.name}')
            leaf = leaf.astype(spec.dtype.np)
        if not spec.is_compatible_with(leaf):
            raise errors.InvalidArgumentError(
                f'from_generator: yielded a value of shape {leaf.shape}, which does not match '
                f'the signature\'s shape {spec.shape}')
        return leaf

    def _count(self):
        return UNKNOWN_CARDINALITY

    def _spec(self):
        return self.signature


class _Zip(Dataset):
    def __init__(self, datasets):
        self.datasets = datasets
        self.parts, self.treedef = tree.flatten(datasets, is_leaf=lambda d: isinstance(d, Dataset))
        if not all(isinstance(d, Dataset) for d in self.parts):
            raise TypeError('Dataset.zip takes datasets (or a tuple or dict of them)')

    def _elements(self):
        for parts in zip(*(d._elements() for d in self.parts)):
            yield tree.unflatten(self.treedef, list(parts))

    def _count(self):
        counts = [d._count() for d in self.parts]
        if UNKNOWN_CARDINALITY in counts:
            return UNKNOWN_CARDINALITY
        finite = [c for c in counts if c >= 0]
        return min(finite) if finite else INFINITE_CARDINALITY

    def _spec(self):
        return tree.unflatten(self.treedef, [d._spec() for d in self.parts])


class _Transformed(Dataset):
    """A dataset computed from one input dataset."""

    def __init__(self, source):
        if not isinstance(source, Dataset):
            raise TypeError(f'expected a Dataset, got {type(source).__name__}')
        self.source = source

    def _count(self):
        return self.source._count()

    def _spec(self):
        return self.source._spec()


class _Map(_Transformed):
    def __init__(self, source, fn):
        super().__init__(source)
        self.compiled = function(fn)

    def _elements(self):
        for element in self.source._elements():
            out = self.compiled(*_arguments(element))
            yield _structure(tuple(out) if isinstance(out, list) else out, 'map output')

    def _spec(self):
        first = next(iter(self._elements()), None)
        return None if first is None else _spec_of(first)


class _Filter(_Transformed):
    def __init__(self, source, predicate):
        super().__init__(source)
        self.compiled = function(predicate)

    def _elements(self):
        for element in self.source._elements():
            keep = np.asarray(self.compiled(*_arguments(element)))
            if keep.shape != () or keep.dtype != np.bool_:
                raise errors.InvalidArgumentError(
                    f'filter: the predicate must return a scalar bool, got '
                    f'{keep.dtype.name}{list(keep.shape)}')
            if keep:
                yield element

    def _count(self):
        return UNKNOWN_CARDINALITY   # as TF: even of an infinite dataset (all may be dropped)


def _stack(elements, what):
    leaves = [tree.flatten(e)[0] for e in elements]
    treedef = tree.flatten(elements[0])[1]
    stacked = []
    for k, column in enumerate(zip(*leaves)):
        shapes = {c.shape for c in column}
        if len(shapes) > 1:
            raise errors.InvalidArgumentError(
                f'{what}: cannot batch tensors with different shapes in component {k}: '
                f'{" vs ".join(str(s) for s in sorted(shapes))}; use padded_batch')
        stacked.append(np.stack(column))
    return tree.unflatten(treedef, stacked)


def _batched_spec(spec, size):
    return tree.tree_map(lambda s: TensorSpec(None if s.shape is None else (size,) + s.shape,
                                              s.dtype), spec)


class _Batch(_Transformed):
    def __init__(self, source, size, drop_remainder):
        super().__init__(source)
        self.size, self.drop_remainder = size, drop_remainder

    def _elements(self):
        rows = self.source._row_order()
        if rows is not None:  # slices (shuffled or not): one fancy-index copy per batch
            order, source = rows
            for start in range(0, len(order), self.size):
                chunk = order[start:start + self.size]
                if len(chunk) == self.size or not self.drop_remainder:
                    yield source._rows(chunk)
            return
        yield from self._groups()

    def _groups(self):
        """Batches of `size` elements one by one, each combined by `_combine`."""
        pending = []
        for element in self.source._elements():
            pending.append(element)
            if len(pending) == self.size:
                yield self._combine(pending)
                pending = []
        if pending and not self.drop_remainder:
            yield self._combine(pending)

    def _combine(self, elements):
        return _stack(elements, 'batch')

    def _count(self):
        n = self.source._count()
        if n < 0:
            return n
        return n // self.size if self.drop_remainder else -(-n // self.size)

    def _spec(self):
        return _batched_spec(self.source._spec(), self.size if self.drop_remainder else None)


def _per_component(value, count, default=None):
    """A padded_batch argument as one entry per component: a shape is a list (or None), so
    it is one entry, not a structure."""
    if value is None:
        return [default] * count
    if count == 1 and not isinstance(value, (tuple, dict)):
        return [value]
    entries = tree.flatten(value, is_leaf=lambda v: v is None or isinstance(v, list))[0]
    if len(entries) != count:
        raise errors.InvalidArgumentError(f'padded_batch: {len(entries)} entries for '
                                          f'{count} components')
    return entries


class _PaddedBatch(_Batch):
    def __init__(self, source, size, padded_shapes, padding_values, drop_remainder):
        super().__init__(source, size, drop_remainder)
        self.padded_shapes, self.padding_values = padded_shapes, padding_values

    def _elements(self):
        return self._groups()

    def _combine(self, elements):
        """The elements padded to a common shape (or `padded_shapes`), stacked."""
        leaves = [tree.flatten(e)[0] for e in elements]
        treedef = tree.flatten(elements[0])[1]
        shapes = _per_component(self.padded_shapes, len(leaves[0]))
        values = _per_component(self.padding_values, len(leaves[0]), default=0)
        out = []
        for column, shape, value in zip(zip(*leaves), shapes, values):
            if len({c.ndim for c in column}) > 1 or (shape is not None
                                                    and len(shape) != column[0].ndim):
                raise errors.InvalidArgumentError(
                    f'padded_batch: components of ranks {sorted({c.ndim for c in column})} '
                    f'cannot be padded to {shape}')
            widest = np.max([c.shape for c in column], axis=0) if column[0].ndim else ()
            target = tuple(w if s is None or s == -1 else int(s)
                           for w, s in zip(widest, shape if shape is not None
                                           else [None] * len(widest)))
            batch = np.full((len(column),) + target, value, column[0].dtype)
            for i, c in enumerate(column):
                if any(a > b for a, b in zip(c.shape, target)):
                    raise errors.InvalidArgumentError(
                        f'padded_batch: an element of shape {c.shape} does not fit the padded '
                        f'shape {target}')
                batch[(i,) + tuple(slice(0, d) for d in c.shape)] = c
            out.append(batch)
        return tree.unflatten(treedef, out)

    def _spec(self):
        size = self.size if self.drop_remainder else None
        specs, treedef = tree.flatten(self.source._spec())
        shapes = _per_component(self.padded_shapes, len(specs))
        return tree.unflatten(treedef, [
            TensorSpec(None if s.shape is None and p is None else (size,) + tuple(
                None if d is None or d == -1 else int(d)
                for d in (p if p is not None else [None] * len(s.shape))), s.dtype)
            for s, p in zip(specs, shapes)])


class _Unbatch(_Transformed):
    def _elements(self):
        for element in self.source._elements():
            leaves, treedef = tree.flatten(element)
            if any(leaf.ndim == 0 for leaf in leaves):
                raise errors.InvalidArgumentError('unbatch: every component must have rank '
                                                  '>= 1, got a scalar')
            if len({leaf.shape[0] for leaf in leaves}) > 1:
                raise errors.InvalidArgumentError(
                    'unbatch: the components have different first dimensions: '
                    f'{" vs ".join(str(leaf.shape) for leaf in leaves)}')
            for i in range(leaves[0].shape[0]):
                yield tree.unflatten(treedef, [leaf[i, ...] for leaf in leaves])

    def _count(self):
        return UNKNOWN_CARDINALITY if self.source._count() >= 0 else self.source._count()

    def _spec(self):
        return tree.tree_map(lambda s: TensorSpec(None if s.shape is None else s.shape[1:],
                                                  s.dtype), self.source._spec())


class _Shuffle(_Transformed):
    """TF's buffered shuffle: fill a buffer of `buffer_size` elements, hand out a random one and
    put the next element in its place. A buffer as large as the data is a full permutation."""

    def __init__(self, source, buffer_size, seed, reshuffle):
        super().__init__(source)
        self.buffer_size, self.reshuffle = buffer_size, reshuffle
        # no seed: one drawn from tj.random, so tj.random.set_seed makes the order reproducible
        self.seed = int(np.asarray(random.uniform([], 0, 2.0 ** 31))) if seed is None \
            else int(seed)
        self.epoch = 0

    def _rng(self):
        epoch = self.epoch if self.reshuffle else 0
        self.epoch += 1
        return np.random.default_rng([self.seed, epoch])

    def _row_order(self):
        if isinstance(self.source, _Slices) and self.buffer_size >= self.source.size:
            return self._rng().permutation(self.source.size), self.source
        return None

    def _elements(self):
        rows = self._row_order()
        if rows is not None:
            order, source = rows
            for i in order:
                yield tree.unflatten(source.treedef, [leaf[i, ...] for leaf in source.leaves])
            return
        rng = self._rng()
        buffer = []
        for element in self.source._elements():
            if len(buffer) < self.buffer_size:
                buffer.append(element)
                continue
            k = int(rng.integers(len(buffer)))
            yield buffer[k]
            buffer[k] = element
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))


class _Repeat(_Transformed):
    def __init__(self, source, count):
        super().__init__(source)
        self.count = count

    def _elements(self):
        k = 0
        while self.count < 0 or k < self.count:
            empty = True
            for element in self.source._elements():
                empty = False
                yield element
            if empty:
                return
            k += 1

    def _count(self):
        n = self.source._count()
        if self.count == 0 or n == 0:
            return 0
        if self.count < 0:
            return INFINITE_CARDINALITY   # as TF, also when the size of one pass is unknown
        return n * self.count if n >= 0 else n


class _Take(_Transformed):
    def __init__(self, source, count):
        super().__init__(source)
        self.count = count

    def _elements(self):
        if self.count == 0:
            return
        for k, element in enumerate(self.source._elements(), 1):
            yield element
            if k == self.count:   # stop without reading the next element
                return

    def _count(self):
        n = self.source._count()
        if self.count < 0:
            return n
        return self.count if n == INFINITE_CARDINALITY else min(n, self.count) if n >= 0 \
            else UNKNOWN_CARDINALITY


class _Skip(_Transformed):
    def __init__(self, source, count):
        super().__init__(source)
        self.count = count

    def _elements(self):
        for k, element in enumerate(self.source._elements()):
            if self.count < 0 or k < self.count:
                continue
            yield element

    def _count(self):
        n = self.source._count()
        if self.count < 0:
            return 0 if n >= 0 else n
        return max(0, n - self.count) if n >= 0 else n


class _Cache(_Transformed):
    """Keeps the elements of the first complete iteration; later iterations replay them."""

    def __init__(self, source):
        super().__init__(source)
        self.cached = None

    def _elements(self):
        if self.cached is not None:
            yield from self.cached
            return
        seen = []
        for element in self.source._elements():
            seen.append(element)
            yield element
        self.cached = seen


class _Prefetch(_Transformed):
    """Produces up to `buffer_size` elements ahead in a background thread."""

    _DONE = object()

    def __init__(self, source, buffer_size):
        super().__init__(source)
        self.buffer_size = buffer_size

    def _elements(self):
        ready, stop = queue.Queue(self.buffer_size), threading.Event()

        def offer(item):
            """Put `item` unless the reader has gone (then the thread ends)."""
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for element in self.source._elements():
                    if not offer((True, element)):
                        return
                offer((True, self._DONE))
            except BaseException as e:  # noqa: BLE001 (raised in the consumer, below)
                offer((False, e))

        thread = threading.Thread(target=produce, daemon=True, name='tracejit-prefetch')
        thread.start()
        try:
            while True:
                ok, item = ready.get()
                if not ok:
                    raise item
                if item is self._DONE:
                    return
                yield item
        finally:
            stop.set()


class _Enumerate(_Transformed):
    def __init__(self, source, start):
        super().__init__(source)
        self.start = start

    def _elements(self):
        for k, element in enumerate(self.source._elements(), self.start):
            yield np.asarray(k, np.int64), element

    def _spec(self):
        return TensorSpec((), np.int64), self.source._spec()


class _Concatenate(_Transformed):
    def __init__(self, source, other):
        super().__init__(source)
        if not isinstance(other, Dataset):
            raise TypeError(f'concatenate takes a Dataset, got {type(other).__name__}')
        mine, theirs = tree.flatten(source._spec()), tree.flatten(other._spec())
        if mine[1] != theirs[1] or [s.dtype for s in mine[0]] != [s.dtype for s in theirs[0]]:
            raise TypeError(f'concatenate: the datasets have different element types: '
                            f'{source._spec()} vs {other._spec()}')
        self.other = other

    def _elements(self):
        yield from self.source._elements()
        yield from self.other._elements()

    def _count(self):
        a, b = self.source._count(), self.other._count()
        if INFINITE_CARDINALITY in (a, b):
            return INFINITE_CARDINALITY
        return a + b if a >= 0 and b >= 0 else UNKNOWN_CARDINALITY

    def _spec(self):
        return tree.tree_map(lambda a, b: a.most_specific_common_supertype(b),
                             self.source._spec(), self.other._spec())


# ---------------------------------------------------------------------------- CSV files

class experimental:  # noqa: N801 (TF's namespace: tj.data.experimental.make_csv_dataset)
    """tf.data.experimental: reading CSV files."""

    @staticmethod
    def make_csv_dataset(file_pattern, batch_size, column_names=None, column_defaults=None,
                         label_name=None, select_columns=None, field_delim=',',
                         use_quote_delim=True, na_value='', header=True, num_epochs=None,
                         shuffle=True, shuffle_buffer_size=10000, shuffle_seed=None,
                         prefetch_buffer_size=None, num_parallel_reads=None, sloppy=False,
                         num_rows_for_inference=100, compression_type=None,
                         ignore_errors=False):
        """Batches of (features, label) from CSV files, as TF's make_csv_dataset: features an
        OrderedDict of columns (int32 where every value is an integer, else float32), the
        label the `label_name` column; repeated `num_epochs` times (None: forever)."""
        columns = _read_csv(_csv_files(file_pattern), column_names, header, field_delim,
                            use_quote_delim, na_value, column_defaults)
        if select_columns is not None:
            columns = collections.OrderedDict((name, columns[name])
                                              for name in _known(select_columns, columns))
        if label_name is not None:
            _known([label_name], columns)
            label = columns.pop(label_name)
            dataset = Dataset.from_tensor_slices((columns, label))
        else:
            dataset = Dataset.from_tensor_slices(columns)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer_size, seed=shuffle_seed)
        return dataset.repeat(num_epochs).batch(batch_size)


def _csv_files(pattern):
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted(f for p in patterns for f in (glob.glob(p) or [p]))
    for f in files:
        if not os.path.isfile(f):
            raise errors.InvalidArgumentError(f'make_csv_dataset: no file matches {f!r}')
    return files


def _known(names, columns):
    for name in names:
        if name not in columns:
            raise ValueError(f'make_csv_dataset: no column {name!r}; the columns are '
                             f'{list(columns)}')
    return names


def _read_csv(files, column_names, header, delimiter, quoting, na_value, defaults):
    rows, names = [], column_names
    for path in files:
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.reader(f, delimiter=delimiter,
                                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
            lines = [line for line in reader if line]
        if header:
            names = names or lines[0]
            lines = lines[1:]
        rows.extend((path, k + 1 + bool(header), line) for k, line in enumerate(lines))
    if names is None:
        raise ValueError('make_csv_dataset: the files have no header; pass column_names')
    table = collections.OrderedDict((name, []) for name in names)
    for path, number, line in rows:
        if len(line) != len(names):
            raise errors.InvalidArgumentError(
                f'{path}, line {number}: {len(line)} fields, expected {len(names)}')
        for k, (name, field) in enumerate(zip(names, line)):
            if field == na_value:
                if defaults is None:
                    raise errors.InvalidArgumentError(
                        f'{path}, line {number}: column {name!r} is empty; pass '
                        'column_defaults')
                field = str(defaults[k])
            table[name].append(field)
    return collections.OrderedDict((name, _column(name, values)) for name, values in
                                   table.items())


def _column(name, values):
    try:
        as_int = np.array([int(v) for v in values], np.int64)
        if np.all(np.abs(as_int) < 2 ** 31):
            return as_int.astype(np.int32)
        return as_int
    except ValueError:
        pass
    try:
        return np.array([float(v) for v in values], np.float32)
    except ValueError:
        raise errors.InvalidArgumentError(
            f'make_csv_dataset: column {name!r} is not numeric (e.g. {values[0]!r}); only '
            'numeric columns are supported') from None

"""Training data of models with several inputs or outputs: x and y may each be one array or a
list, tuple or dict of arrays (one per input/output), all with the same number of samples.

These helpers apply what `fit` does to one array (convert, count, slice, shuffle) to every
array of such a structure; a single array takes the direct path (no per-batch overhead).
"""
import numpy as np

from .. import tree
from ..tensor import TensorOps


def is_structured(data):
    """A dict, or a list/tuple whose items are arrays or tensors (not a list of numbers)."""
    if isinstance(data, dict):
        return True
    return isinstance(data, (list, tuple)) and bool(data) and all(
        isinstance(item, (np.ndarray, TensorOps, dict, list, tuple)) for item in data) and \
        any(isinstance(item, (np.ndarray, TensorOps, dict)) for item in data)


def convert(data, what, convert_array):
    """`convert_array(array, name)` on `data`, or on each array of a structure (named
    `what[key]`)."""
    if not is_structured(data):
        return convert_array(data, what)
    keys = sorted(data, key=str) if isinstance(data, dict) else range(len(data))
    converted = {k: convert(data[k], f'{what}[{k!r}]', convert_array) for k in keys}
    return type(data)(converted) if isinstance(data, dict) else type(data)(
        converted[k] for k in keys)


def sample_count(data, what):
    """The number of samples, the same in every array of `data`."""
    if not is_structured(data):
        return len(data)
    counts = {len(a) for a in tree.leaves(data)}
    if len(counts) != 1:
        raise ValueError(f'Data cardinality is ambiguous: the arrays of {what} have '
                         f'{sorted(counts)} samples. Make sure all arrays contain the same '
                         'number of samples.')
    return counts.pop()


def rows(data, start, stop, lead=None):
    """Samples start:stop of every array (views), reshaped to `lead + sample shape` if
    `lead` is given (for the multi-batch step)."""
    if isinstance(data, np.ndarray):
        part = data[start:stop]
        return part if lead is None else part.reshape(lead + data.shape[1:])
    return tree.tree_map(lambda a: rows(a, start, stop, lead), data)


def empty_like(data):
    return tree.tree_map(np.empty_like, data)


def take(data, order, out):
    """Rows `order` of every array of `data`, written into `out` (same structure)."""
    for source, target in zip(tree.leaves(data), tree.leaves(out)):
        np.take(source, order, axis=0, out=target, mode='clip')
    return out

"""Sparse gradients across processes: the rows an Embedding's gather touched (tj.IndexedSlices)
are allgathered, never densified, so what moves between processes grows with the batch, not
with the vocabulary. Optimizers apply the gathered rows like local ones (a row that several
processes touched appears several times and is summed)."""
from ..indexed_slices import IndexedSlices


def is_indexed_slices(value):
    return isinstance(value, IndexedSlices)


def allgathered(slices, allgather, scale):
    """The slices of every process, concatenated; values multiplied by `scale` (1/size for an
    average)."""
    values = allgather(slices.values)
    if scale != 1.0:
        values = values * scale
    return IndexedSlices(values, allgather(slices.indices), slices.dense_shape)

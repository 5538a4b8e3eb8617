"""Sparse gradients across processes: the rows an Embedding's gather touched (tj.IndexedSlices:
`values`, `indices`, `dense_shape`) are allgathered, never densified, so what moves between
processes grows with the batch, not with the vocabulary. Optimizers apply the gathered rows
like local ones (a row that several processes touched appears several times and is summed).
Recognised by those attributes, as TensorFlow's IndexedSlices are."""


def is_indexed_slices(value):
    return all(hasattr(value, a) for a in ('values', 'indices', 'dense_shape'))


def allgathered(slices, allgather, scale):
    """The slices of every process, concatenated; values multiplied by `scale` (1/size for an
    average)."""
    values = allgather(slices.values)
    if scale != 1.0:
        values = values * scale
    return type(slices)(values, allgather(slices.indices), slices.dense_shape)

"""keras.utils: `to_categorical`."""
import numpy as np


def to_categorical(x, num_classes=None):
    """One-hot rows (float64, as Keras 3 returns them) for integer class labels `x` of any
    shape (a trailing axis of size 1 is dropped, as Keras does); `num_classes` defaults to
    max(x) + 1."""
    labels = np.asarray(x)
    if labels.dtype.kind not in 'biuf' or (labels.dtype.kind == 'f' and labels.size and
                                           not np.array_equal(labels, np.round(labels))):
        raise ValueError(f'to_categorical needs integer class labels, got an array of dtype '
                         f'{labels.dtype}')
    labels = labels.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    flat = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    num_classes = int(num_classes)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(f'to_categorical: labels must be in [0, {num_classes}), got values '
                         f'from {flat.min()} to {flat.max()}')
    out = np.zeros((flat.size, num_classes))
    out[np.arange(flat.size), flat] = 1.0
    return out.reshape(shape + (num_classes,))

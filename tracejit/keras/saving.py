"""tj.keras.saving: whole models (`save_model`/`load_model`, see model_file.py), the object
registry (`register_keras_serializable`, see serialization.py), and weight checkpoints: one
`.npz` per model, written atomically, loaded all-or-nothing.

Weights are stored in the model's weight order (like Keras's HDF5 format), with their names
kept for the error messages. A save writes a temporary file in the target's directory, fsyncs
it and renames it over the target, so a crash never leaves a half-written checkpoint. A load
checks the count and every shape before writing anything; weights are copied into the
Variables' existing buffers, whose identity compiled kernels rely on.
"""
import os
import zipfile

import numpy as np

from .. import errors
from ..fileio import write_atomically
from .model_file import load_model, save_model  # noqa: F401 (keras.saving.load_model)
from .serialization import (  # noqa: F401 (the public keras.saving names)
    CustomObjectScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
    get_registered_name, get_registered_object, register_keras_serializable,
    serialize_keras_object)

_NAMES_KEY = 'weight_names'


def checkpoint_path(path):
    """The file a checkpoint `path` is stored in: '.npz' is added when missing (TensorFlow
    accepts a path without an extension, as in `save_weights("keras_checkpoint")`)."""
    path = os.fspath(path)
    return path if path.endswith('.npz') else path + '.npz'


def save_weights(layer, path):
    weights = layer.weights
    arrays = {f'w{i:06d}': np.array(v) for i, v in enumerate(weights)}
    arrays[_NAMES_KEY] = np.array([v.name for v in weights], dtype=np.str_)
    target = checkpoint_path(path)
    write_atomically(target, lambda f: np.savez(f, **arrays), binary=True)
    return target


def load_weights(layer, path):
    path = os.fspath(path)
    target = path if path.endswith('.npz') or not os.path.exists(checkpoint_path(path)) \
        else checkpoint_path(path)
    if not os.path.isfile(target):
        raise FileNotFoundError(f'no weight checkpoint at {path!r} (looked for {target!r})')
    assign_weights(layer, _read_arrays(target), f'checkpoint {target!r}')


def _read_arrays(target):
    """The checkpoint's arrays in saved order, or DataLossError naming the file and what is
    wrong with it (numpy says BadZipFile, EOFError or 'pickled data' for a damaged file)."""
    try:
        data = np.load(target, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError('it holds a single array, not a weight checkpoint')
        with data:
            keys = sorted(k for k in data.files if k != _NAMES_KEY)
            return [data[k] for k in keys]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        size = os.path.getsize(target)
        problem = 'it is empty' if size == 0 else f'it is truncated or not a checkpoint ({e})'
        raise errors.DataLossError(
            f'cannot read the weight checkpoint {target!r} ({size} bytes): {problem}; save it '
            'again with save_weights') from None


def assign_weights(layer, arrays, source):
    """Copy `arrays` into `layer.weights` after checking all of them; on a mismatch raise
    ValueError and change nothing."""
    weights = layer.weights
    if len(arrays) != len(weights):
        hint = '' if weights else (' (the model has no weights yet: call it on a batch of data '
                                   'or build() it first, so that its weights exist)')
        raise ValueError(f'{source} holds {len(arrays)} weights but {layer.name!r} has '
                         f'{len(weights)}{hint}; nothing was loaded')
    for i, (variable, array) in enumerate(zip(weights, arrays)):
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f'{source}: weight {i} has shape {tuple(array.shape)} but '
                             f'{variable.name!r} has shape {tuple(variable.shape)}; nothing was '
                             'loaded')
        if not np.can_cast(array.dtype, variable.buffer.dtype, casting='same_kind'):
            raise ValueError(f'{source}: weight {i} has dtype {array.dtype} but '
                             f'{variable.name!r} is {variable.buffer.dtype}; nothing was loaded')
    for variable, array in zip(weights, arrays):
        np.copyto(variable.buffer, array, casting='same_kind')

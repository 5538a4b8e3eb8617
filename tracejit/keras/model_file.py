"""The `.keras` model file: `model.save(path)` and `keras.models.load_model(path)`.

The file is Keras 3's zip layout: `metadata.json`, `config.json` (the model's record, with
its build and compile configs) and the weights, here `model.weights.npz` (numpy arrays, no
pickles; Keras writes HDF5). A weight is stored under the path of the layer that owns it
(`layers/0/vars/1`: layer 0's second weight), the optimizer's state under `optimizer/vars/...`:
its step count, learning rate and each slot by its variable's path and slot name. Loading
rebuilds the model from its config, checks every weight before copying any, and compiles it
again with a fresh optimizer whose step count and slots take the saved values (a slot when the
first training step creates it), so predictions and continued training match the saved model.
The zip is written atomically; a damaged file raises DataLossError naming it.
"""
import io
import json
import os
import time
import zipfile

import numpy as np

from .. import errors
from ..fileio import write_atomically
from .serialization import CustomObjectScope, deserialize_keras_object, serialize_keras_object

CONFIG, METADATA, WEIGHTS = 'config.json', 'metadata.json', 'model.weights.npz'


def check_extension(filepath):
    if not os.fspath(filepath).endswith('.keras'):
        raise ValueError('Invalid filepath extension for saving. Please add a `.keras` '
                         'extension for the native Keras format (tracejit writes no `.h5` '
                         f'files). Received: filepath={filepath}')


def weight_paths(layer, prefix=''):
    """[(path, Variable)] for every weight of `layer`: each layer's own weights under
    `{path}vars/{j}`, sublayers under `{path}layers/{i}/`; weights held otherwise (Variables
    in attributes) under the model's `vars/` after its own."""
    out = [(f'{prefix}vars/{j}', w) for j, w in enumerate(layer._own_weights)]
    for i, sub in enumerate(layer.layers if hasattr(layer, 'layers') else layer._sublayers()):
        out += weight_paths(sub, f'{prefix}layers/{i}/')
    if not prefix:
        found = {id(w) for _, w in out}
        extra = [w for w in layer.weights if id(w) not in found]
        start = len(layer._own_weights)
        out += [(f'vars/{start + k}', w) for k, w in enumerate(extra)]
    return out


def _optimizer_arrays(model, paths):
    optimizer = model.optimizer
    arrays = {'optimizer/vars/iterations': _value(optimizer.iterations),
              'optimizer/vars/learning_rate': _value(optimizer.learning_rate)}
    path_of = {id(w): path for path, w in paths}
    for variable, slot_name, slot in optimizer._checkpoint_slots():
        if id(variable) in path_of:
            arrays[f'optimizer/vars/{path_of[id(variable)]}/{slot_name}'] = _value(slot)
    return arrays


def save_model(model, filepath, overwrite=True, zipped=None):
    """Write `model` (architecture, weights, compile config and optimizer state) to a
    `.keras` file, atomically."""
    filepath = os.fspath(filepath)
    check_extension(filepath)
    if zipped is False:
        raise NotImplementedError('zipped=False (an unzipped model directory) is not supported')
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f'{filepath!r} exists and overwrite=False')
    config = serialize_keras_object(model)
    paths = weight_paths(model)
    arrays = {path: _value(w) for path, w in paths}
    if getattr(model, 'optimizer', None) is not None:
        arrays.update(_optimizer_arrays(model, paths))
    metadata = {'keras_version': '3', 'saved_by': 'tracejit',
                'date_saved': time.strftime('%Y-%m-%d@%H:%M:%S')}
    weights = io.BytesIO()
    np.savez(weights, **arrays)

    def write(f):
        with zipfile.ZipFile(f, 'w') as z:
            z.writestr(METADATA, json.dumps(metadata))
            z.writestr(CONFIG, json.dumps(config))
            z.writestr(WEIGHTS, weights.getvalue())
    write_atomically(filepath, write, binary=True)


def _read(filepath):
    """(config, {path: array}) of a `.keras` file, or DataLossError naming it."""
    try:
        with zipfile.ZipFile(filepath) as z:
            config = json.loads(z.read(CONFIG))
            names = z.namelist()
            if WEIGHTS not in names:
                raise KeyError(f'no {WEIGHTS} in it (files: {names}); tracejit reads the .keras '
                               'files it writes (Keras writes HDF5 weights)')
            with np.load(io.BytesIO(z.read(WEIGHTS)), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError, ValueError,
            OSError) as e:
        size = os.path.getsize(filepath)
        raise errors.DataLossError(f'cannot read the model file {filepath!r} ({size} bytes): it '
                                   f'is truncated or not a .keras file ({e})') from None
    if not isinstance(config, dict) or 'class_name' not in config:
        raise errors.DataLossError(f'the model file {filepath!r} holds no model config')
    return config, arrays


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in a `.keras` file, rebuilt from its config, with its weights (and,
    with `compile`, compiled as saved, optimizer state included)."""
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        raise ValueError(f'File not found: filepath={filepath}. Please ensure the file is an '
                         'accessible `.keras` zip file.')
    check_extension(filepath)
    config, arrays = _read(filepath)
    if not compile:
        config = {k: v for k, v in config.items() if k != 'compile_config'}
    with CustomObjectScope(custom_objects or {}):
        model = deserialize_keras_object(config, safe_mode=safe_mode)
    paths = weight_paths(model)
    _assign_weights(filepath, paths, arrays)
    if compile and getattr(model, 'optimizer', None) is not None:
        _restore_optimizer(filepath, model.optimizer, paths, arrays)
    return model


def _assign_weights(filepath, paths, arrays):
    """Copy every weight after checking all of them; ValueError naming the first mismatch."""
    stored = sorted(k for k in arrays if not k.startswith('optimizer/'))
    if sorted(path for path, _ in paths) != stored:
        raise ValueError(f'{filepath!r} holds the weights {stored} but the model rebuilt from '
                         f'its config has {sorted(p for p, _ in paths)}; nothing was loaded')
    for path, variable in paths:
        _check(filepath, path, variable, arrays[path])
    for path, variable in paths:
        _copy(variable, arrays[path])


def _check(filepath, path, variable, array):
    if array.shape != variable.shape or array.dtype != variable.buffer.dtype:
        raise ValueError(f'{filepath!r}: {path} has shape {array.shape} and dtype {array.dtype}'
                         f', but {variable.name!r} has shape {variable.shape} and dtype '
                         f'{variable.buffer.dtype}; nothing was loaded')


def _value(variable):
    with variable._lock:
        return variable.buffer.copy()


def _copy(variable, array):
    with variable._lock:
        np.copyto(variable.buffer, array)


def _restore_optimizer(filepath, optimizer, paths, arrays):
    """Step count and learning rate now; each slot when the optimizer creates it."""
    for name, variable in (('iterations', optimizer.iterations),
                           ('learning_rate', optimizer.learning_rate)):
        key = f'optimizer/vars/{name}'
        if key in arrays:
            _check(filepath, key, variable, arrays[key])
            _copy(variable, arrays[key])
    path_of = {id(w): path for path, w in paths}

    def restore_slot(variable, slot_name, slot):
        key = f'optimizer/vars/{path_of.get(id(variable))}/{slot_name}'
        if key not in arrays:
            return False
        _check(filepath, key, slot, arrays[key])
        _copy(slot, arrays[key])
        return True
    optimizer._slot_restorers.insert(0, restore_slot)

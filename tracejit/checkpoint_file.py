"""The files of a training checkpoint, and the `checkpoint` state file of a directory.

A checkpoint with prefix `p` is two files, named as TensorFlow names them: `p.data-00000-of-00001`
holds the arrays (an uncompressed `.npz`, never pickled objects) and `p.index` is JSON: the
object graph, each checkpoint key's array name, shape and dtype, and the SHA-256 of the data
file. Each file is written atomically (data first, then the index that vouches for it), so a
crash leaves the old checkpoint readable or, between the two renames, an index whose digest no
longer matches: every damaged, truncated or mismatched file is a DataLossError naming that file.
The directory's `checkpoint` file uses TensorFlow's text format (`model_checkpoint_path: "..."`).
"""
import hashlib
import json
import os
import re
import zipfile

import numpy as np

from . import errors
from .fileio import write_atomically

FORMAT = 'tracejit-checkpoint'
VERSION = 1
OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'
STATE_FILENAME = 'checkpoint'


def data_path(prefix):
    return f'{prefix}.data-00000-of-00001'


def index_path(prefix):
    return f'{prefix}.index'


# ------------------------------------------------------------------------------ writing

def write(prefix, arrays, object_graph):
    """Write `arrays` ({checkpoint key: numpy array}) and the object graph under `prefix`."""
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    names = {key: f'a{i}' for i, key in enumerate(arrays)}
    stored = {names[key]: np.asarray(value) for key, value in arrays.items()}
    write_atomically(data_path(prefix), lambda f: np.savez(f, **stored), binary=True)
    index = {'format': FORMAT, 'version': VERSION, 'data_sha256': _digest(data_path(prefix)),
             'object_graph': object_graph,
             'variables': {key: {'array': names[key], 'shape': list(value.shape),
                                 'dtype': np.asarray(value).dtype.str}
                           for key, value in arrays.items()}}
    write_atomically(index_path(prefix), lambda f: json.dump(index, f))


def _digest(path):
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()


# ------------------------------------------------------------------------------ reading

def resolve(path, allow_directory=True):
    """The checkpoint prefix `path` names: a prefix, or (where allowed, as in TF's
    list_variables) a directory's latest checkpoint; NotFoundError when there is none, with
    TensorFlow's hint about the '-1' suffix."""
    path = os.fspath(path)
    if allow_directory and os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise errors.NotFoundError(f'no checkpoint found in the directory {path!r} (its '
                                       f'{STATE_FILENAME!r} file is missing or names no '
                                       'existing checkpoint)')
        return latest
    if not os.path.isfile(index_path(path)):
        if os.path.isdir(path):
            raise errors.NotFoundError(
                f'{path!r} is a directory, not a checkpoint; restore '
                'tj.train.latest_checkpoint(directory) or a path returned by save()')
        raise errors.NotFoundError(
            f'Failed to find any matching files for {path} (no {index_path(path)!r}). Please '
            "double-check that the path is correct. You may be missing the checkpoint suffix "
            "(e.g. the '-1' in 'path/to/ckpt-1').")
    return path


def read_index(prefix):
    """The parsed index of the checkpoint at `prefix` (DataLossError naming a bad file)."""
    path = index_path(prefix)
    try:
        with open(path, encoding='utf-8') as f:
            index = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _damaged(path, e) from None
    if not isinstance(index, dict) or index.get('format') != FORMAT:
        raise _damaged(path, 'it is not a tracejit checkpoint index')
    if index.get('version') != VERSION:
        raise errors.DataLossError(f'the checkpoint index {path!r} has format version '
                                   f'{index.get("version")!r}; this tracejit reads {VERSION}')
    if not isinstance(index.get('variables'), dict) or not isinstance(
            index.get('object_graph'), list):
        raise _damaged(path, 'its variables or object graph are missing')
    return index


def read(prefix):
    """(index, {checkpoint key: array}) of the checkpoint at `prefix`, every array checked
    against the index; a damaged file raises DataLossError naming it."""
    index = read_index(prefix)
    path = data_path(prefix)
    if not os.path.isfile(path):
        raise errors.DataLossError(f'the checkpoint data file {path!r} is missing (its index '
                                   f'{index_path(prefix)!r} exists)')
    if _digest(path) != index.get('data_sha256'):
        raise _damaged(path, f'its contents do not match the digest in {index_path(prefix)!r} '
                             '(truncated, overwritten or from another save)')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[entry['array']] for key, entry in index['variables'].items()}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, TypeError) as e:
        raise _damaged(path, e) from None
    for key, entry in index['variables'].items():
        if list(arrays[key].shape) != entry['shape'] or arrays[key].dtype.str != entry['dtype']:
            raise _damaged(path, f'{key!r} has shape {arrays[key].shape} and dtype '
                                 f'{arrays[key].dtype}, its index says {entry}')
    return index, arrays


def _damaged(path, problem):
    size = os.path.getsize(path) if os.path.exists(path) else 0
    what = 'it is empty' if size == 0 else f'it is truncated or damaged: {problem}'
    return errors.DataLossError(f'cannot read the checkpoint file {path!r} ({size} bytes): '
                                f'{what}')


def list_variables(ckpt_dir_or_file):
    """[(checkpoint key, shape as a list)] sorted by key, as tf.train.list_variables."""
    index = read_index(resolve(ckpt_dir_or_file))
    entries = [(key, list(entry['shape'])) for key, entry in index['variables'].items()]
    return sorted(entries + [(OBJECT_GRAPH_KEY, [])])


def load_variable(ckpt_dir_or_file, name):
    """The array stored under the checkpoint key `name` (a trailing ':0' is ignored, as TF
    does); the object graph's key gives its JSON text as bytes."""
    prefix = resolve(ckpt_dir_or_file)
    name = name[:-2] if name.endswith(':0') else name
    index, arrays = read(prefix)
    if name == OBJECT_GRAPH_KEY:
        return json.dumps(index['object_graph']).encode()
    if name not in arrays:
        raise errors.NotFoundError(f'Key {name} not found in checkpoint {prefix!r}; '
                                   'tj.train.list_variables lists its keys')
    return arrays[name]


# ------------------------------------------------------------------------------ state file

_STATE_LINE = re.compile(r'^(\w+): "((?:[^"\\]|\\.)*)"$')


def read_state(directory):
    """(latest path, [all paths]) from the directory's `checkpoint` file, relative paths
    joined to the directory; (None, []) when there is no readable state."""
    path = os.path.join(os.fspath(directory), STATE_FILENAME)
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None, []
    latest, every = None, []
    for line in lines:
        match = _STATE_LINE.match(line.strip())
        if not match:
            continue
        value = os.path.join(directory, match.group(2).encode().decode('unicode_escape'))
        if match.group(1) == 'model_checkpoint_path':
            latest = value
        elif match.group(1) == 'all_model_checkpoint_paths':
            every.append(value)
    return latest, every


def write_state(directory, latest, every):
    """Write the `checkpoint` file (paths relative to `directory` where they are inside it)."""
    def relative(path):
        rel = os.path.relpath(path, directory)
        return path if rel.startswith(os.pardir) else rel

    def quoted(path):
        return json.dumps(relative(path))
    lines = [f'model_checkpoint_path: {quoted(latest)}']
    lines += [f'all_model_checkpoint_paths: {quoted(p)}' for p in every]
    write_atomically(os.path.join(directory, STATE_FILENAME),
                     lambda f: f.write('\n'.join(lines) + '\n'))


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """The prefix of the newest checkpoint the directory's state file names, or None when
    there is none or its files are gone (as tf.train.latest_checkpoint)."""
    if latest_filename not in (None, STATE_FILENAME):
        raise NotImplementedError('latest_filename other than "checkpoint" is not supported')
    latest, _ = read_state(checkpoint_dir)
    return latest if latest is not None and os.path.isfile(index_path(latest)) else None


def remove(prefix):
    """Delete a checkpoint's files (those that exist)."""
    for path in (index_path(prefix), data_path(prefix)):
        if os.path.exists(path):
            os.remove(path)

"""Keras object records: `serialize_keras_object`, `deserialize_keras_object`, and the
registry of custom classes and functions (`register_keras_serializable`).

A record is Keras 3's: `{'module', 'class_name', 'config', 'registered_name'}` (plus
`build_config` for built layers and `compile_config` for compiled models). Built-in names are
found in the namespaces the Keras modules register here (`register_builtins`), looked up when a
record is read, so a layer class added to `tj.keras.layers` later is found by its class name.
This module imports nothing else from tj.keras: the modules register themselves.

Records written by Keras itself are read too: a `DTypePolicy` becomes its dtype name, and a
Keras option this port lacks is dropped when it holds its "off" value (None, False, Keras's
default) and refused by name otherwise.
"""
import inspect
import threading

import numpy as np

from .. import dtypes

_CUSTOM_OBJECTS = {}    # 'Package>Name' -> class or function
_CUSTOM_NAMES = {}      # class or function -> 'Package>Name'
_BUILTINS = []          # (module label, namespace dict, predicate on a found object)
_scopes = threading.local()
_KERAS_DEFAULTS = {'data_format': 'channels_last', 'ema_momentum': 0.99, 'axis': -1}


# ------------------------------------------------------------------------------ registry

def register_keras_serializable(package='Custom', name=None):
    """Decorator: register a class (which needs `get_config`) or function under
    'package>name' (name defaults to its __name__), so records can name it."""
    def decorator(obj):
        registered = f'{package}>{name if name is not None else obj.__name__}'
        if inspect.isclass(obj) and not hasattr(obj, 'get_config'):
            raise ValueError('Cannot register a class that does not have a get_config() '
                             'method.')
        _CUSTOM_OBJECTS[registered] = obj
        _CUSTOM_NAMES[obj] = registered
        return obj
    return decorator


def get_registered_name(obj):
    """'Package>Name' of a registered object, else its __name__."""
    return _CUSTOM_NAMES.get(obj, getattr(obj, '__name__', type(obj).__name__))


def get_custom_objects():
    """The global registry, {registered name: object} (editable, as in Keras)."""
    return _CUSTOM_OBJECTS


def _scope_stack():
    if not hasattr(_scopes, 'stack'):
        _scopes.stack = []
    return _scopes.stack


class CustomObjectScope:
    """`with custom_object_scope({'Name': obj}):` makes those names resolvable inside."""

    def __init__(self, *custom_objects):
        self._objects = {}
        for mapping in custom_objects:
            self._objects.update(mapping or {})

    def __enter__(self):
        _scope_stack().append(self._objects)
        return self

    def __exit__(self, *exc):
        _scope_stack().pop()


custom_object_scope = CustomObjectScope


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object registered (or in scope, or in the given dicts) under `name`, else None."""
    for mapping in reversed(_scope_stack()):
        if name in mapping:
            return mapping[name]
    for mapping in (_CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in mapping:
            return mapping[name]
    return None


def register_builtins(label, namespace, predicate):
    """Make the objects of a Keras module's namespace (a live dict, e.g. its globals())
    that satisfy `predicate` resolvable by name, under the record module `label`."""
    _BUILTINS.append((label, namespace, predicate))


def _builtin(name, label=None):
    """The built-in object called `name` (in module `label` first), else None."""
    ordered = sorted(_BUILTINS, key=lambda entry: entry[0] != label)
    for _, namespace, predicate in ordered:
        obj = namespace.get(name)
        if obj is not None and predicate(obj):
            return obj
    return None


def _builtin_label(obj):
    """(module label, name) under which `obj` is a built-in, else (None, None)."""
    for label, namespace, predicate in _BUILTINS:
        for name, value in list(namespace.items()):
            if value is obj and predicate(value) and not name.startswith('_'):
                return label, name
    return None, None


# ------------------------------------------------------------------------------ serialize

def serialize_keras_object(obj):
    """A JSON-able record of `obj`: plain values as they are, built-in functions by name,
    objects with `get_config` as {'module', 'class_name', 'config', 'registered_name'}."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {'class_name': '__numpy__', 'config': {'value': obj.tolist(),
                                                      'dtype': obj.dtype.name}}
    if isinstance(obj, dtypes.DType):
        return obj.name
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): serialize_keras_object(v) for k, v in obj.items()}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return _serialize_function(obj)
    if not hasattr(obj, 'get_config'):
        raise TypeError(f'Cannot serialize object {obj!r} of type {type(obj).__name__}. To be '
                        'serializable, a class must implement the `get_config()` method.')
    return _serialize_object(obj)


def _serialize_function(fn):
    if fn in _CUSTOM_NAMES:
        return {'module': 'builtins', 'class_name': 'function', 'config': _CUSTOM_NAMES[fn],
                'registered_name': 'function'}
    label, name = _builtin_label(fn)
    if label is None:
        raise TypeError(f'Cannot serialize the function {fn.__qualname__!r}: register it with '
                        '@tj.keras.saving.register_keras_serializable() so that a saved model '
                        'can name it')
    return name


def _serialize_object(obj):
    cls = type(obj)
    registered = _CUSTOM_NAMES.get(cls)
    label = _builtin_label(cls)[0] if registered is None else None
    config = obj.get_config()
    record = {'module': label if registered is None else None, 'class_name': cls.__name__,
              'config': serialize_keras_object(config), 'registered_name': registered}
    if registered is None and label is None:
        record['module'] = cls.__module__
    build = getattr(obj, 'get_build_config', None)
    if build is not None and build() is not None:
        record['build_config'] = serialize_keras_object(build())
    compiled = getattr(obj, 'get_compile_config', None)
    if compiled is not None and compiled() is not None:
        record['compile_config'] = serialize_keras_object(compiled())
    return record


# ------------------------------------------------------------------------------ deserialize

def deserialize_keras_object(config, custom_objects=None, safe_mode=True, module_objects=None,
                             **kwargs):
    """The object a record describes (records nested in its config are rebuilt by the
    classes' from_config). Plain values come back as they are; a name in `module_objects`
    is looked up there. Unknown classes raise TypeError naming the class."""
    if isinstance(config, str) and module_objects is not None and config in module_objects:
        return module_objects[config]
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(c, custom_objects, safe_mode) for c in config]
    if not isinstance(config, dict):
        raise TypeError(f'Could not parse config: {config!r}')
    if 'class_name' not in config or 'config' not in config:
        return {k: deserialize_keras_object(v, custom_objects, safe_mode)
                for k, v in config.items()}
    with CustomObjectScope(custom_objects or {}):
        return _deserialize_record(config, module_objects)


def _deserialize_record(record, module_objects):
    class_name, inner = record['class_name'], record['config']
    if class_name == '__numpy__':
        return np.asarray(inner['value'], dtype=inner['dtype'])
    if class_name == 'function':
        return _resolve_function(inner, record, module_objects)
    cls, builtin = _resolve_class(record, module_objects)
    if not isinstance(inner, dict):
        raise TypeError(f'the config of a {class_name} record must be a dict, got {inner!r}')
    inner = {k: _dtype_name(v) for k, v in inner.items()}
    if builtin:
        inner = keras_arguments(cls, inner)
    obj = cls.from_config(inner)
    if record.get('build_config') and hasattr(obj, 'build_from_config'):
        obj.build_from_config(record['build_config'])
    if record.get('compile_config') and hasattr(obj, 'compile_from_config'):
        obj.compile_from_config(record['compile_config'])
    return obj


def _resolve_function(name, record, module_objects):
    fn = get_registered_object(name, module_objects=module_objects) or _builtin(name)
    if fn is None:
        raise TypeError(f'Could not locate function {name!r}. Make sure custom functions are '
                        'decorated with `@keras.saving.register_keras_serializable()`. Full '
                        f'object config: {record}')
    return fn


def _resolve_class(record, module_objects):
    """(class, whether it is a built-in) for a record."""
    class_name = record['class_name']
    for name in (record.get('registered_name'), class_name):
        if name:
            found = get_registered_object(name, module_objects=module_objects)
            if found is not None:
                return found, False
    found = _builtin(class_name, record.get('module'))
    if found is None:
        raise TypeError(f"Could not locate class {class_name!r}. Make sure custom classes are "
                        'decorated with `@keras.saving.register_keras_serializable()`. Full '
                        f'object config: {record}')
    return found, True


def accepted_arguments(cls):
    """Names the constructor takes, following **kwargs up the class hierarchy."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _dtype_name(value):
    """Keras's DTypePolicy record as the dtype name it holds; anything else unchanged."""
    if isinstance(value, dict) and value.get('class_name') == 'DTypePolicy':
        return value['config']['name']
    return value


def keras_arguments(cls, config):
    """A built-in class's config with Keras's options made ours: a Keras option `cls` lacks
    (neither a constructor argument, nor a layer's name, trainable or dtype, nor one of the
    class's `config_keys`) is dropped when it is off (None, False, Keras's default), else
    refused with a ValueError naming it."""
    accepted = accepted_arguments(cls) | {'name', 'trainable', 'dtype'} | set(
        getattr(cls, 'config_keys', ()))
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = value
        elif value not in (None, False) and _KERAS_DEFAULTS.get(key, object()) != value:
            raise ValueError(f'{cls.__name__}: the Keras option {key}={value!r} is not '
                             'supported by tracejit')
    return out



def wrapper_config(wrapper, plain, fn, config):
    """The config of a function wrapper (a loss's or a metric's): its subclasses' arguments,
    and `fn` serialized when `wrapper` is the `plain` class, which does not fix its function."""
    if type(wrapper) is plain:
        config['fn'] = serialize_keras_object(fn)
    return config


def wrapper_from_config(cls, plain, config):
    """The inverse of `wrapper_config`: the `plain` class deserializes its function first."""
    if cls is plain:
        config = dict(config, fn=deserialize_keras_object(config['fn']))
    return cls(**config)

"""`tj.train.Checkpoint`: save and restore the Variables reachable from some objects, by the
names of the attributes, list indices and dict keys that lead to them (TF's object graph).

Saving walks the objects breadth first from the Checkpoint: each object becomes a node, each
Variable's checkpoint key is its first path plus '/.ATTRIBUTES/VARIABLE_VALUE' (so
`Checkpoint(model=m)` stores `model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`,
as TF does), and an optimizer's slots are keyed by the variable they belong to
(`<variable path>/.OPTIMIZER_SLOT/<optimizer path>/m/...`). What an object's children are: a
`_checkpoint_children()` method (Keras layers and optimizers have one), else the attributes of
a `tj.Module`, the items of a list, tuple or dict, that hold Variables somewhere below.

Restoring walks the saved graph and the live objects side by side, child name by child name,
checks every shape and dtype, then copies all values at once: a bad checkpoint changes
nothing. Values whose objects do not exist yet are kept and restored when they are created
(deferred restoration, as TF does): a layer's weights when it is built (Layer.add_weight calls
the `_deferred_restores` hooks), an optimizer's slots when its first step creates them
(`_slot_restorers`). Restoring copies into the Variables' buffers, so compiled steps that hold
them see the restored values with no retrace.
"""
import collections
import os

import numpy as np

from . import checkpoint_file, errors, tracing
from .variables import Module, Variable

VALUE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
_SHOWN = 10   # unmatched objects an assertion lists


def _escape(name):
    """A child name as one path component (TF's escaping of '.' and '/')."""
    return name.replace('.', '..').replace('/', '.S')


def is_trackable(obj):
    """Whether a checkpoint can hold `obj`: a Variable, a Module, an object with
    `_checkpoint_children`, or a container with one of those inside."""
    if isinstance(obj, (Variable, Module)):
        return True
    if isinstance(obj, type):
        return False
    if hasattr(obj, '_checkpoint_children'):
        return True
    if isinstance(obj, dict):
        return any(is_trackable(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(is_trackable(v) for v in obj)
    return False


def children(obj):
    """{child name: child} of a trackable object, in a fixed order."""
    if isinstance(obj, Variable):
        return {}
    method = getattr(obj, '_checkpoint_children', None)
    if method is not None and not isinstance(obj, type):
        return method()
    if isinstance(obj, dict):
        items = ((str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(obj))
    elif isinstance(obj, Module):
        items = vars(obj).items()
    else:
        return {}
    return {name: value for name, value in items if is_trackable(value)}


def _slots_of(obj):
    """[(variable, slot name, slot Variable)] of an optimizer, else []."""
    method = getattr(obj, '_checkpoint_slots', None)
    return list(method()) if method is not None and not isinstance(obj, type) else []


class ObjectGraph:
    """The live objects reachable from `root`, breadth first, each once, with their paths."""

    def __init__(self, root):
        self.objects, self.paths, self.ids = [root], [''], {id(root): 0}
        self.edges, self.slots = [[]], [[]]
        position = 0
        while position < len(self.objects):
            for name, child in children(self.objects[position]).items():
                self.edges[position].append([name, self._node(child, position, name)])
            position += 1
        for owner, obj in enumerate(list(self.objects)):
            for variable, slot_name, slot in _slots_of(obj):
                if id(variable) in self.ids and id(slot) not in self.ids:
                    path = (f'{self.paths[self.ids[id(variable)]]}/.OPTIMIZER_SLOT/'
                            f'{self.paths[owner]}/{_escape(slot_name)}')
                    self.slots[owner].append([self.ids[id(variable)], slot_name,
                                              self._add(slot, path)])

    def _node(self, obj, parent, name):
        if id(obj) in self.ids:
            return self.ids[id(obj)]
        parent_path = self.paths[parent]
        return self._add(obj, f'{parent_path}/{_escape(name)}' if parent_path else _escape(name))

    def _add(self, obj, path):
        self.ids[id(obj)] = len(self.objects)
        self.objects.append(obj)
        self.paths.append(path)
        self.edges.append([])
        self.slots.append([])
        return len(self.objects) - 1

    def key(self, node):
        return self.paths[node] + VALUE_SUFFIX

    def variables(self):
        return [obj for obj in self.objects if isinstance(obj, Variable)]

    def serialized(self):
        """The graph as JSON-able nodes: children edges, checkpoint key, slot entries."""
        return [{'children': self.edges[n], 'slots': self.slots[n],
                 'key': self.key(n) if isinstance(obj, Variable) else None}
                for n, obj in enumerate(self.objects)]

    def arrays(self):
        return {self.key(n): _value_of(obj) for n, obj in enumerate(self.objects)
                if isinstance(obj, Variable)}


def _value_of(variable):
    with variable._lock:
        return variable.buffer.copy()


def _check_value(variable, key, value, prefix):
    """TF's errors for a checkpoint value that does not fit its Variable."""
    if tuple(value.shape) != tuple(variable.shape):
        raise errors.InvalidArgumentError(
            f'Received incompatible tensor with shape {tuple(value.shape)} when attempting to '
            f'restore variable with shape {tuple(variable.shape)} and name {variable.name} '
            f'(checkpoint key {key!r} of {prefix!r}); nothing was restored')
    if value.dtype != variable.buffer.dtype:
        raise errors.InvalidArgumentError(
            f'tensor_name = {key}; expected dtype {variable.buffer.dtype} does not equal '
            f'original dtype {value.dtype} (checkpoint {prefix!r}); nothing was restored')


def _copy_into(variable, value):
    with variable._lock:
        np.copyto(variable.buffer, value)


class _Restoration:
    """One restore: the saved graph, its values, and which live object each saved node is."""

    def __init__(self, prefix, index, arrays):
        self.prefix, self.nodes, self.arrays = prefix, index['object_graph'], arrays
        self.live = {}        # saved node -> live object
        self.saved_of = {}    # id(live object) -> saved node

    def match(self, root):
        """Bind every saved node that has a live object; check all values, then copy them."""
        pending, hooks = [], []
        queue = collections.deque([(0, root)])
        while queue:
            node, obj = queue.popleft()
            if node in self.live or id(obj) in self.saved_of or not self._bind(node, obj,
                                                                                pending):
                continue
            live_children, deferred = children(obj), {}
            for name, child in self.nodes[node]['children']:
                if name in live_children:
                    queue.append((child, live_children[name]))
                else:
                    deferred[name] = child
            if deferred and getattr(obj, '_accepts_deferred_restores', False):
                if '_deferred_restores' not in obj.__dict__:
                    object.__setattr__(obj, '_deferred_restores', [])
                hooks.append((obj._deferred_restores,
                              lambda name, variable, table=deferred: self._restore_child(
                                  table, name, variable)))
        for node, obj in list(self.live.items()):
            self._match_slots(node, obj, pending, hooks)
        for variable, key in pending:
            _check_value(variable, key, self.arrays[key], self.prefix)
        for variable, key in pending:
            _copy_into(variable, self.arrays[key])
        for hook_list, hook in hooks:   # the newest restore is asked first
            hook_list.insert(0, hook)

    def _bind(self, node, obj, pending):
        """Record that saved `node` is `obj` (a Variable only for a node with a value)."""
        key = self.nodes[node]['key']
        if (key is not None) != isinstance(obj, Variable):
            return False
        self.live[node], self.saved_of[id(obj)] = obj, node
        if key is not None:
            pending.append((obj, key))
        return True

    def _match_slots(self, node, optimizer, pending, hooks):
        table = {(var, name): slot for var, name, slot in self.nodes[node]['slots']}
        if not table:
            return
        for variable, slot_name, slot in _slots_of(optimizer):
            saved = table.get((self.saved_of.get(id(variable)), slot_name))
            if saved is not None and saved not in self.live:
                self._bind(saved, slot, pending)
        if hasattr(optimizer, '_slot_restorers'):
            hooks.append((optimizer._slot_restorers, lambda variable, slot_name, slot: (
                self._restore_slot(table, variable, slot_name, slot))))

    def _restore_now(self, node, variable):
        key = self.nodes[node]['key']
        if node in self.live or key is None:
            return False
        _check_value(variable, key, self.arrays[key], self.prefix)
        self._bind(node, variable, [])
        _copy_into(variable, self.arrays[key])
        return True

    def _restore_child(self, table, name, variable):
        """A layer created its weight `name`: restore it if this checkpoint has it."""
        return name in table and self._restore_now(table[name], variable)

    def _restore_slot(self, table, variable, slot_name, slot):
        """An optimizer created a slot: restore it if this checkpoint has it."""
        saved = table.get((self.saved_of.get(id(variable)), slot_name))
        return saved is not None and self._restore_now(saved, slot)

    def saved_paths(self):
        """A readable path for every saved node (breadth first, like the keys)."""
        paths, queue = {0: '(root)'}, collections.deque([0])
        while queue:
            node = queue.popleft()
            for name, child in self.nodes[node]['children']:
                if child not in paths:
                    paths[child] = name if node == 0 else f'{paths[node]}/{name}'
                    queue.append(child)
        for node in self.nodes:
            for _, _, slot in node['slots']:
                paths.setdefault(slot, self.nodes[slot]['key'].removesuffix(VALUE_SUFFIX))
        return paths


class CheckpointLoadStatus:
    """What `restore`/`read` matched; the assertions raise AssertionError as TF's do."""

    def __init__(self, restoration, root):
        self._restoration, self._root = restoration, root

    def assert_consumed(self):
        """Every saved object found its Python object, and every Variable reachable from the
        checkpoint's objects got a value."""
        restoration = self._restoration
        missing = [n for n in range(1, len(restoration.nodes)) if n not in restoration.live]
        if missing:
            paths = restoration.saved_paths()
            shown = ', '.join(paths.get(n, f'node {n}') for n in missing[:_SHOWN])
            raise AssertionError(
                f'Unresolved objects in checkpoint {restoration.prefix!r}: {len(missing)} saved '
                f'objects have no Python object (yet); showing {min(len(missing), _SHOWN)}: '
                f'{shown}')
        return self.assert_existing_objects_matched()

    def assert_existing_objects_matched(self):
        """Every Variable that exists now and is reachable got a value from the checkpoint."""
        unmatched = [v for v in ObjectGraph(self._root).variables()
                     if id(v) not in self._restoration.saved_of]
        if unmatched:
            raise AssertionError(
                f'Found {len(unmatched)} Python objects that were not bound to checkpointed '
                'values, likely due to changes in the Python program. Showing '
                f'{min(len(unmatched), _SHOWN)} of {len(unmatched)} unmatched objects: '
                f'{unmatched[:_SHOWN]}')
        return self

    def assert_nontrivial_match(self):
        if len(self._restoration.live) <= 1:
            raise AssertionError(f'Nothing except the root object matched a checkpointed '
                                 f'value in {self._restoration.prefix!r}')
        return self

    def expect_partial(self):
        """Say that a partial match is fine (values left unused are not an error)."""
        return self

    def run_restore_ops(self, session=None):
        """Values are restored eagerly; nothing to run."""

    def initialize_or_restore(self, session=None):
        """Values are restored eagerly; nothing to run."""


class InitializationOnlyStatus:
    """`restore(None)`: nothing restored; the assertions say so."""

    def _nothing(self):
        raise AssertionError('No checkpoint specified (save_path=None); nothing is being '
                             'restored.')

    assert_consumed = assert_existing_objects_matched = assert_nontrivial_match = _nothing

    def expect_partial(self):
        return self

    def run_restore_ops(self, session=None):
        pass

    def initialize_or_restore(self, session=None):
        pass


def _eager(what):
    if tracing.current_trace() is not None:
        raise errors.InvalidArgumentError(errors.at_user_line(
            f'Checkpoint.{what} reads and writes files, so it runs eagerly: call it outside '
            'tj.function'))


class Checkpoint:
    """`Checkpoint(**objects)`: `save` numbered checkpoints, `write` one at a path, `restore`
    or `read` one into the objects (and into those created later)."""

    _accepts_deferred_restores = True   # `read` then `save_counter` restores the count

    def __init__(self, root=None, **kwargs):
        object.__setattr__(self, '_objects', {})
        object.__setattr__(self, '_root', None)
        object.__setattr__(self, '_save_counter', None)
        if root is not None:
            if isinstance(root, Variable) or not is_trackable(root):
                raise ValueError(f'`Checkpoint` was expecting root to be a trackable object '
                                 f'(a tj.Module, Keras layer or optimizer), got {root!r}')
            object.__setattr__(self, '_root', root)
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name, value):
        if name.startswith('_'):
            raise AttributeError(f'Checkpoint attributes cannot start with "_": {name!r}')
        if name == 'save_counter' or not is_trackable(value):
            raise ValueError(f'`Checkpoint` was expecting {name} to be a trackable object (a '
                             f'tj.Variable, tj.Module, Keras layer or optimizer, or a list or '
                             f'dict of them), got {value!r}')
        self._objects[name] = value

    def __getattr__(self, name):
        objects = self.__dict__.get('_objects', {})
        if name in objects:
            return objects[name]
        raise AttributeError(f'Checkpoint has no attribute {name!r}')

    def _checkpoint_children(self):
        found = dict(children(self._root)) if self._root is not None else {}
        found.update(self._objects)
        if self._save_counter is not None:
            found['save_counter'] = self._save_counter
        return found

    @property
    def save_counter(self):
        """How many times `save` ran (an int64 Variable, created on first use, as in TF)."""
        if self._save_counter is None:
            with tracing.init_scope():
                counter = Variable(np.zeros((), np.int64), trainable=False, name='save_counter')
            for restore in self.__dict__.get('_deferred_restores', ()):
                if restore('save_counter', counter):
                    break
            object.__setattr__(self, '_save_counter', counter)
        return self._save_counter

    def write(self, file_prefix, options=None):
        """Write a checkpoint at exactly `file_prefix`; returns it. No numbering, and the
        directory's `checkpoint` file is left alone (as TF's write)."""
        _eager('write')
        file_prefix = os.fspath(file_prefix)
        graph = ObjectGraph(self)
        checkpoint_file.write(file_prefix, graph.arrays(), graph.serialized())
        return file_prefix

    def save(self, file_prefix, options=None):
        """Count this save, write `{file_prefix}-{save_counter}` and make it the directory's
        latest checkpoint; returns the path. A failed write leaves the counter as it was."""
        _eager('save')
        counter = self.save_counter
        number = int(counter.numpy()) + 1
        path = f'{os.fspath(file_prefix)}-{number}'
        _copy_into(counter, np.int64(number))
        try:
            self.write(path)
        except BaseException:
            _copy_into(counter, np.int64(number - 1))
            raise
        checkpoint_file.write_state(os.path.dirname(os.path.abspath(path)), path, [path])
        return path

    def restore(self, save_path, options=None):
        """Restore the checkpoint at `save_path` (save_counter included); None restores
        nothing. Returns a status with `assert_consumed()` and friends."""
        if save_path is None:
            return InitializationOnlyStatus()
        self.save_counter   # noqa: B018 (created, so the saved count is restored into it)
        return self.read(save_path)

    def read(self, save_path, options=None):
        """Restore the checkpoint at `save_path` into the objects this Checkpoint holds."""
        _eager('read')
        prefix = checkpoint_file.resolve(save_path, allow_directory=False)
        index, arrays = checkpoint_file.read(prefix)
        restoration = _Restoration(prefix, index, arrays)
        restoration.match(self)
        return CheckpointLoadStatus(restoration, self)

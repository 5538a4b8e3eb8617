"""Call signatures as tf.function sees them: each parameter's value as a pytree of TensorSpecs
(tensor leaves) and Python values (static leaves), how a call is checked against one, how two
are generalised (reduce_retracing) and how TensorFlow prints them.

A Python float is neither: tracejit traces it as a weak scalar (a new learning rate never
retraces), so its spec is `WEAK_FLOAT`.
"""
import inspect

import numpy as np

from . import dtypes, errors, tree
from .spec import TensorSpec
from .tensor import Tensor, TensorOps


class _WeakFloat:
    """The spec of a Python float argument: a traced weakly typed scalar."""

    def __repr__(self):
        return 'float'


WEAK_FLOAT = _WeakFloat()


def is_leaf(x):
    return isinstance(x, (TensorOps, np.ndarray, TensorSpec)) or _is_number_list(x)


def _is_number_list(x):
    """A (nested) list of Python numbers: one tensor, as TF converts it."""
    if type(x) is not list or not x:
        return False
    return all(isinstance(n, (int, float)) and not isinstance(n, bool) or type(n) is list
               and _is_number_list(n) for n in x)


def leaf_spec(leaf):
    """The exact spec of one argument leaf (see the module docstring)."""
    if isinstance(leaf, TensorSpec):
        return leaf
    if isinstance(leaf, Tensor) or (isinstance(leaf, np.ndarray) and leaf.dtype.kind in 'fiub'):
        return TensorSpec(leaf.shape, dtypes.canonical(leaf.dtype))
    if isinstance(leaf, list) and any(isinstance(n, float) for n in _numbers(leaf)):
        return TensorSpec(np.shape(leaf), dtypes.float32)
    if isinstance(leaf, np.floating):
        return TensorSpec((), leaf.dtype)
    if isinstance(leaf, float):
        return WEAK_FLOAT
    return leaf    # static: compared by value (or identity for Variables and objects)


def _numbers(x):
    for item in x:
        yield from (_numbers(item) if type(item) is list else (item,))


class Signature:
    """[(parameter name, kind name, spec tree)] of one call, defaults applied."""

    def __init__(self, params):
        self.params = list(params)
        self._flat = [(name, *tree.flatten(spec, is_leaf)) for name, _, spec in self.params]

    @classmethod
    def of_call(cls, py_signature, args, kwargs):
        """The exact signature of a call (TypeError, as TF, when it does not bind)."""
        bound = bind(py_signature, args, kwargs)
        return cls((name, kind, tree.tree_map(leaf_spec, value, is_leaf=is_leaf))
                   for name, kind, value in bound)

    def specs(self):
        """The TensorSpec leaves in graph-input order (weak floats included)."""
        return [s for _, leaves, _ in self._flat for s in leaves
                if isinstance(s, TensorSpec) or s is WEAK_FLOAT]

    def accepts(self, other):
        """Whether every call of signature `other` fits this one."""
        if [n for n, _, _ in self._flat] != [n for n, _, _ in other._flat]:
            return False
        for (_, mine, my_def), (_, theirs, their_def) in zip(self._flat, other._flat):
            if my_def != their_def:
                return False
            for a, b in zip(mine, theirs):
                if isinstance(a, TensorSpec):
                    if not (isinstance(b, TensorSpec) and a.is_compatible_with(b)):
                        return False
                elif not _same_static(a, b):
                    return False
        return True

    def supertype(self, other):
        """The signature with the sizes that differ made None, or None when the two differ in
        anything else (structure, static values, dtypes, ranks): TF's reduce_retracing."""
        if [n for n, _, _ in self._flat] != [n for n, _, _ in other._flat]:
            return None
        params = []
        for (name, kind, _), (_, mine, my_def), (_, theirs, their_def) in zip(
                self.params, self._flat, other._flat):
            if my_def != their_def:
                return None
            leaves = []
            for a, b in zip(mine, theirs):
                if isinstance(a, TensorSpec) and isinstance(b, TensorSpec):
                    if a.dtype != b.dtype or a.shape is None or b.shape is None \
                            or len(a.shape) != len(b.shape):
                        return None
                    leaves.append(a.most_specific_common_supertype(b))
                elif _same_static(a, b):
                    leaves.append(a)
                else:
                    return None
            params.append((name, kind, tree.unflatten(my_def, leaves)))
        return Signature(params)

    def __eq__(self, other):
        return isinstance(other, Signature) and self.accepts(other) and other.accepts(self)

    __hash__ = None

    def structured(self):
        """TF's structured_input_signature: (positional specs, keyword-only specs), each
        TensorSpec named after its parameter (`x`, or `pair_0` for the first leaf of `pair`)."""
        positional, keywords = [], {}
        for (name, kind, spec), (_, leaves, treedef) in zip(self.params, self._flat):
            if treedef.kind == 'leaf':
                named = _named(leaves[0], name)
            else:
                named = tree.unflatten(treedef, [_named(s, f'{name}_{k}')
                                                 for k, s in enumerate(leaves)])
            if kind == 'KEYWORD_ONLY':
                keywords[name] = named
            elif kind == 'VAR_POSITIONAL':
                positional.extend(named)
            elif kind == 'VAR_KEYWORD':
                keywords.update(named)
            else:
                positional.append(named)
        return tuple(positional), keywords

    def describe(self, verbose):
        """The parameters as TF prints them: a list of lines, or one `(x: T, ...)` string."""
        if verbose:
            return [f'  {name} ({kind}): {type_string(spec)}' for name, kind, spec in self.params]
        return '(' + ', '.join(f'{name}: {type_string(spec)}'
                               for name, _, spec in self.params) + ')'


def _named(spec, name):
    if isinstance(spec, TensorSpec) and spec.name is None:
        return TensorSpec(spec.shape, spec.dtype, name)
    return spec


def _same_static(a, b):
    if isinstance(a, (TensorOps, TensorSpec)) or isinstance(b, (TensorOps, TensorSpec)) \
            or a is WEAK_FLOAT or b is WEAK_FLOAT:
        return a is b
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:   # noqa: BLE001 - a value without a usable ==: compare identity
        return a is b


def bind(py_signature, args, kwargs):
    """[(name, kind name, value)] with defaults applied; TypeError as tf.function words it."""
    if py_signature is None:
        return [(f'args_{i}', 'POSITIONAL_ONLY', a) for i, a in enumerate(args)] + [
            (k, 'KEYWORD_ONLY', kwargs[k]) for k in sorted(kwargs)]
    try:
        bound = py_signature.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f'Binding inputs to tf.function failed due to `{e}`. Received args: '
                        f'{args} and kwargs: {kwargs} for signature: {py_signature}.') from None
    bound.apply_defaults()
    return [(name, py_signature.parameters[name].kind.name, value)
            for name, value in bound.arguments.items()]


def conform(signature, py_signature, args, kwargs, tensor_error=TypeError):
    """(args, kwargs) of a call checked against `signature`, with every value at a TensorSpec
    leaf converted to an array of its dtype. A tensor that does not fit raises `tensor_error`
    (tf.function raises TypeError, a ConcreteFunction InvalidArgumentError); a call that does
    not bind or a static value that differs raises TypeError, with TF's wording."""
    bound = bind(py_signature, args, kwargs)
    names = [name for name, _, _ in signature.params]
    if [name for name, _, _ in bound] != names:
        raise TypeError(f'Binding inputs to tf.function failed: parameters {names} expected, got '
                        f'{[name for name, _, _ in bound]}')
    values = {}
    for (name, _, value), (_, spec_leaves, treedef) in zip(bound, signature._flat):
        leaves, value_def = tree.flatten(value, is_leaf)
        if value_def != treedef:
            raise TypeError(f'Binding inputs to tf.function failed due to `Can not cast '
                            f'{value!r} to {type_string(tree.unflatten(treedef, spec_leaves))}` '
                            f'(parameter {name!r}).')
        values[name] = tree.unflatten(treedef, [
            _conformed_leaf(leaf, spec, name, tensor_error)
            for leaf, spec in zip(leaves, spec_leaves)])
    return _rebuild_call(py_signature, bound, values, len(args))


def _conformed_leaf(leaf, spec, name, tensor_error):
    if spec is WEAK_FLOAT:
        if isinstance(leaf, float):
            return leaf
        raise TypeError(f'Binding inputs to tf.function failed due to `Can not cast {leaf!r} '
                        f'to float` (parameter {name!r}).')
    if not isinstance(spec, TensorSpec):
        if _same_static(spec, leaf):
            return leaf
        raise TypeError(f'Binding inputs to tf.function failed due to `Can not cast {leaf!r} to '
                        f'{type_string(spec)}` (parameter {name!r}).')
    array = _as_array(leaf, spec)
    if array is None or not spec.is_compatible_with(array):
        got = leaf_spec(leaf) if array is None else TensorSpec(array.shape, array.dtype)
        raise tensor_error(errors.at_user_line(
            f'Binding inputs to tf.function failed due to `Can not cast {type_string(got)} to '
            f'{type_string(spec)}` (parameter {name!r}).'))
    return array


def _as_array(leaf, spec):
    """The leaf as an array of the spec's dtype: tensors must have it; Python numbers and lists
    convert when no value changes (TF converts Python values to the spec's dtype)."""
    if isinstance(leaf, TensorOps):
        leaf = np.asarray(leaf.numpy())
    if isinstance(leaf, np.ndarray):   # a tensor keeps its dtype: a mismatch is reported
        return dtypes.to_canonical(leaf) if leaf.dtype.kind in 'biuf' else None
    try:
        raw = np.asarray(leaf)
        array = raw.astype(spec.dtype.np)
    except (TypeError, ValueError):
        return None
    if raw.dtype.kind not in 'biuf' or not np.array_equal(array, raw):
        return None
    return array


def _rebuild_call(py_signature, bound, values, n_positional):
    """The call's (args, kwargs) with the conformed values."""
    if py_signature is None:
        items = [values[name] for name, _, _ in bound]
        return tuple(items[:n_positional]), dict(zip([n for n, _, _ in bound][n_positional:],
                                                      items[n_positional:]))
    args, kwargs = [], {}
    for name, kind, _ in bound:
        value = values[name]
        if kind in ('POSITIONAL_ONLY', 'POSITIONAL_OR_KEYWORD'):
            args.append(value)
        elif kind == 'VAR_POSITIONAL':
            args.extend(value)
        elif kind == 'VAR_KEYWORD':
            kwargs.update(value)
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def type_string(spec):
    """A spec tree as TensorFlow prints types: TensorSpec(...), Literal[3], Tuple[...],
    List[...], Dict[['key', T], ...]."""
    if isinstance(spec, TensorSpec) or spec is WEAK_FLOAT:
        return repr(spec)
    if isinstance(spec, tuple) and hasattr(type(spec), '_fields'):
        return f'{type(spec).__name__}[' + ', '.join(map(type_string, spec)) + ']'
    if type(spec) in (tuple, list):
        inner = ', '.join(map(type_string, spec))
        return f'{"Tuple" if type(spec) is tuple else "List"}[{inner}]'
    if isinstance(spec, dict):
        return 'Dict[' + ', '.join(f'[{k!r}, {type_string(v)}]' for k, v in spec.items()) + ']'
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return f'Literal[{spec!r}]'
    return repr(spec)


def python_signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None

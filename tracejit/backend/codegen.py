"""Emit the Python/Numba source of one kernel for a fusion plan.

The source depends only on the graph's structure, never on its sizes or constant values: loop
bounds and allocations read `dims` (one slot per class of axes that must be equal, see dims.py),
scalar constants are read from `fc`/`ic`, array constants are arguments. So a new batch size
gives the same source, hence the same compiled kernel (the cache key is the source's hash).
Each loop becomes a helper function, shared by every loop with the same text up to names.

Kernel arguments: traced inputs (0-d ones as scalars), state buffers (0-d ones as 1-element
views), dims, fc, ic, array constants. It returns a tuple of outputs and writes the final value
of every assigned Variable into its buffer, inside the loop that computes it where legal.
"""
import os
import re

import numpy as np

from . import lowering
from .blocks import np_type
from .dims import DimClasses
from .fpflags import fastmath_source
from .fusion import partition

PARALLEL_MIN = 1 << 16  # elements; below this a parallel region costs more than it saves
BLOCK = 1024  # elements per float32 partial sum; block sums add up in float64 (_flat_loop)
FLOAT_ACC = {'sum': '0.0', 'max': '-np.inf', 'min': 'np.inf'}


def numba_threads():
    """Numba's default thread count (NUMBA_NUM_THREADS, else the usable cores), computed the
    way Numba does without importing it: lowering a graph must not wait for Numba to load."""
    configured = os.environ.get('NUMBA_NUM_THREADS')
    if configured and configured.strip().isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Lowered:
    """Generated source plus the per-trace values the runtime passes alongside the inputs."""

    def __init__(self, source, dims, fconsts, iconsts, array_consts, plan, parallel):
        self.source, self.plan = source, plan
        self.parallel = parallel  # whether any loop runs on Numba's threads
        self.dims = np.asarray(dims, np.int64)
        self.fconsts = np.asarray(fconsts, np.float64)
        self.iconsts = np.asarray(iconsts, np.int64)
        self.array_consts = array_consts

    def __str__(self):
        return self.source


class Codegen:
    def __init__(self, graph):
        self.graph = graph
        self.dims = DimClasses(graph, lowering.dims_rule)
        self.plan = partition(graph, self.dims)
        self.lines, self.names, self.scalar = [], {}, {}
        self.fconsts, self.iconsts, self.array_consts = [], [], []
        self.counter = 0
        self.helpers = {}         # canonical loop text -> (helper name, parallel)
        self.readers = self._readers()
        self.order = {g.index: k for k, g in enumerate(self.plan.groups)}
        self.state_arg = {}       # state Var -> argument name
        self.inplace = {}         # update value Var -> state argument written inside its loop

    # -- naming ----------------------------------------------------------------------------

    def fresh(self, prefix='v'):
        self.counter += 1
        return f'{prefix}{self.counter}'

    def dim(self, var, axis):
        return self.dims.slot(var, axis)

    def shape(self, var):
        dims = [self.dim(var, k) for k in range(var.ndim)]
        return f'({dims[0]},)' if len(dims) == 1 else f'({", ".join(dims)})'

    def size(self, var, axes=None):
        """Product of the sizes of `axes` (default: all) of `var`, as an expression."""
        axes = range(var.ndim) if axes is None else axes
        return ' * '.join(self.dim(var, k) for k in axes) or '1'

    def emit(self, line, depth=1):
        self.lines.append('    ' * depth + line)

    def ref(self, var):
        """A whole value: scalar expression for 0-d values, array name otherwise."""
        return self.scalar[var] if var.shape == () else self.names[var]

    # -- analysis --------------------------------------------------------------------------

    def _readers(self):
        readers = {}
        for group in self.plan.groups:
            for node in group.nodes:
                for v in node.inputs:
                    readers.setdefault(v, set()).add(group.index)
        for v in self.graph.outputs + [v for _, v in self.graph.updates]:
            readers.setdefault(v, set()).add('end')
        return readers

    # -- whole kernel ----------------------------------------------------------------------

    def generate(self):
        params = self.prologue()
        for group in self.plan.groups:
            getattr(self, f'emit_{group.kind}')(group)
        self.epilogue()
        sizes = self.dims.sizes()
        dims = ''.join(f'    d{slot} = dims[{slot}]\n' for slot in range(len(sizes)))
        body = '\n'.join(self.lines)
        helpers = ''.join(f'{_decorator(parallel)}def {name}({text}\n\n'
                          for text, (name, parallel) in self.helpers.items())
        source = f'{helpers}{_decorator(False)}def kernel({", ".join(params)}):\n{dims}{body}\n'
        parallel = any(parallel for _, parallel in self.helpers.values())
        return Lowered(source, sizes, self.fconsts, self.iconsts, self.array_consts, self.plan,
                       parallel)

    def prologue(self):
        params = []
        for i, var in enumerate(self.graph.inputs):
            name = f'a{i}'
            params.append(name)
            if var.shape == ():
                self.scalar[var] = self.fresh('x')
                self.emit(f'{self.scalar[var]} = {np_type(var.dtype)}({name})')
            else:
                self.names[var] = name
        for i, (_, var) in enumerate(self.graph.state):
            name = f's{i}'
            params.append(name)
            self.state_arg[var] = name
            if var.shape == ():
                self.scalar[var] = self.fresh('x')
                self.emit(f'{self.scalar[var]} = {name}[0]')
            else:
                self.names[var] = name
        params += ['dims', 'fc', 'ic']
        for var, value in self.graph.consts.items():
            if value.ndim == 0:
                self.scalar[var] = self.const_scalar(value)
            else:
                name = f'k{len(self.array_consts)}'
                self.array_consts.append(np.ascontiguousarray(value))
                params.append(name)
                self.names[var] = name
        return params

    def const_scalar(self, value):
        name = self.fresh('c')
        if value.dtype.kind == 'f':
            self.emit(f'{name} = {np_type(value.dtype)}(fc[{len(self.fconsts)}])')
            self.fconsts.append(float(value))
        else:
            self.emit(f'{name} = {np_type(value.dtype)}(ic[{len(self.iconsts)}])'
                      if value.dtype != np.bool_ else f'{name} = ic[{len(self.iconsts)}] != 0')
            self.iconsts.append(int(value))
        return name

    def epilogue(self):
        outs = []  # copied before the updates are written: an output may be a state's old value
        aliased = set(self.state_arg) | set(self.inplace) | set(self.graph.inputs) | set(
            self.graph.consts)
        for var in self.graph.outputs:
            ref = self.ref(var)
            if var.shape != () and var in aliased:
                outs.append(self.fresh('o'))
                self.emit(f'{outs[-1]} = {ref}.copy()')
            else:
                outs.append(ref)
        pending = [(self.state_arg[var], value) for (variable, value), var in zip(
            self.graph.updates, self._state_vars_of_updates()) if value not in self.inplace]
        sources = {}
        for target, value in pending:  # copy first, so swaps read the values from before
            src = self.ref(value)
            if value.shape != () and (value in self.state_arg or value in self.inplace):
                copied = self.fresh('u')
                self.emit(f'{copied} = {src}.copy()')
                src = copied
            sources[target] = (src, value)
        for target, (src, value) in sources.items():
            if value.shape == ():
                self.emit(f'{target}[0] = {src}')
            else:
                n = self.size(value)
                self.emit(f'K.copy_into({target}.reshape({n}), {src}.reshape({n}))')
        self.emit(f'return ({"".join(o + ", " for o in outs)})')

    def _state_vars_of_updates(self):
        initial = {id(variable): var for variable, var in self.graph.state}
        return [initial[id(variable)] for variable, _ in self.graph.updates]

    # -- scalar and call groups ------------------------------------------------------------

    def emit_scalar(self, group):
        for node in group.members:
            out = node.outputs[0]
            self.scalar[out] = self.fresh()
            expr = self.elementwise(node, [self.ref(v) for v in node.inputs], [], '0')
            self.emit(f'{self.scalar[out]} = {expr}')

    def emit_call(self, group):
        node = group.members[0]
        out = node.outputs[0]
        name = self.fresh()
        if out.shape == ():
            self.scalar[out] = name
        else:
            self.names[out] = name
        lowering.lowering_of(node.prim).emit(self, node, name)

    # -- elementwise expressions -----------------------------------------------------------

    def elementwise(self, node, operands, index, flat_index):
        return lowering.expression(node, operands, index, flat_index)

    # -- loops -----------------------------------------------------------------------------

    def emit_loop(self, group):
        space, space_var = group.space, self._space_var(group)
        flat = self._can_flatten(group)
        hoisted = self._hoist_vector_math(group) if not flat and len(space) > 1 else set()
        stores = self._allocate_stores(group, hoisted)
        start = len(self.lines)
        accs = [self._init_reduction(node) for node in group.reductions]
        members = {n.outputs[0] for n in group.members}
        external = [v for n in group.nodes for v in n.inputs if v not in members and v.shape]
        views = {}
        if flat:
            total = self.size(space_var)
            if '*' in total:  # one size argument, so loops of any rank share a helper
                self.lines.insert(start, f'    n{self.counter + 1} = {total}')
                total, start = self.fresh('n'), start + 1
            for var in external + stores:
                name = self.names[var]
                if name not in views:
                    views[name] = self.fresh('f')
                    self.emit(f'{views[name]} = {name}.reshape({total})')
            index, flat_index, depth = ['i'], 'i', 1
            rows = {node: self.fresh('q') for node in group.reductions}
            body_start = len(self.lines)
        else:
            split, rows = self._row_reductions(group)
            for k, d in enumerate(space):
                if k == split:
                    for node in rows:
                        self.emit(f'{rows[node]} = {np_type(self._acc_dtype(node))}'
                                  f'({self._init_value(node)})', k + 1)
                self.emit(f'for i{k} in range({self.dim(space_var, k)}):', k + 1)
            index = [f'i{k}' for k in range(len(space))]
            flat_index, depth = self._flat_index(space_var), len(space) + 1
        local = {}

        def element(var):
            if var in local:
                return local[var]
            if var.shape == ():
                return self.ref(var)
            if flat:
                return f'{views[self.names[var]]}[i]'
            lead = len(space) - len(var.shape)
            idx = ['0' if d == 1 and space[lead + k] != 1 else index[lead + k]
                   for k, d in enumerate(var.shape)]
            return f'{self.names[var]}[{", ".join(idx)}]'

        for node in group.members:
            out = node.outputs[0]
            if out in hoisted:
                continue
            local[out] = self.fresh('t')
            expr = self.elementwise(node, [element(v) for v in node.inputs], index, flat_index)
            self.emit(f'{local[out]} = {expr}', depth)
        for node, acc in zip(group.reductions, accs):
            target = rows.get(node)
            self._accumulate(node, acc, element(node.inputs[0]), index, depth, space, target)
        for out in stores:  # last, so every read of an old state value comes first
            target = f'{views[self.names[out]]}[i]' if flat else \
                f'{self.names[out]}[{", ".join(index)}]'
            self.emit(f'{target} = {local[out]}', depth)
        if not flat:
            for node, acc in zip(group.reductions, accs):
                if node in rows:
                    self.emit(f'{acc}[{", ".join(index[:split])}] = {rows[node]}', split + 1)
        parallel = flat and int(np.prod(space)) >= PARALLEL_MIN and all(
            _accumulate(r) == 'sum' for r in group.reductions)
        if flat:
            body = self.lines[body_start:]
            del self.lines[body_start:]
            blocks = [(acc, rows[node], node) for node, acc in zip(group.reductions, accs)]
            lo, hi = (self.fresh('b'), self.fresh('e')) if parallel else ('0', total)
            self._flat_loop(lo, hi, body, blocks, 1)
        if parallel:
            self._emit_parallel(start, accs, total, lo, hi)
        else:
            self._extract_helper(start, accs, False)
        for node, acc in zip(group.reductions, accs):
            self._finish_reduction(node, acc)

    def _emit_parallel(self, start, accs, total, lo, hi):
        """A big flat loop runs as `loop(lo, hi)` over one chunk per thread under `prange`
        (each chunk is the same serial, vectorised code), or once over everything when the
        actual size is too small to pay for threads."""
        serial_name, params = self._extract_helper(start, accs, False, emit_call=False)
        chunk, first, parts = self.fresh('z'), self.fresh('b'), [self.fresh('q') for _ in accs]
        call_args = ', '.join(first if p == lo else f'min({total}, {first} + {chunk})'
                              if p == hi else p for p in params)
        start = len(self.lines)
        for acc in accs:
            self.emit(f'{acc} = np.float64(0.0)')
        chunks = numba_threads()  # a literal: get_num_threads() defeats caching
        self.emit(f'{chunk} = ({total} + {chunks - 1}) // {chunks}')
        self.emit(f'for c in numba.prange({chunks}):')
        self.emit(f'{first} = c * {chunk}', 2)
        call = f'{serial_name}({call_args})'
        self.emit(f'{", ".join(parts)}, = {call}' if accs else call, 2)
        for acc, part in zip(accs, parts):
            self.emit(f'{acc} += {part}', 2)
        self._extract_helper(start, accs, True)
        parallel_call = self.lines.pop()
        serial_args = ', '.join('0' if p == lo else total if p == hi else p for p in params)
        serial_call = f'{serial_name}({serial_args})'
        self.emit(f'if {total} >= {PARALLEL_MIN}:')
        self.lines.append('    ' + parallel_call)
        self.emit('else:')
        self.emit(f'{", ".join(accs)}, = {serial_call}' if accs else serial_call, 2)

    def _extract_helper(self, start, results, parallel, emit_call=True):
        """Move the lines since `start` into a helper function, shared by every loop with the
        same text up to names: Numba's compile time grows faster than the size of a function,
        and identical loops (the optimizer update of each parameter) compile once."""
        lines = self.lines[start:]
        del self.lines[start:]
        assigned = set()
        for line in lines:
            target = re.match(r'\s*(?:for )?((?:[a-z]\d+, )*[a-z]\d+),? (?:=|in|\+=)', line)
            if target:
                assigned.update(target.group(1).split(', '))
        order = list(dict.fromkeys(re.findall(r'\b[a-z]\d+\b', '\n'.join(lines) + ' '
                                              + ' '.join(results))))
        params = [n for n in order if n not in assigned]
        rename = {n: f'p{k}' for k, n in enumerate(params)}
        rename.update((n, f'w{k}') for k, n in enumerate(n for n in order if n in assigned))
        canonical = '\n'.join(re.sub(r'\b[a-z]\d+\b', lambda m: rename[m.group()], line)
                              for line in lines)
        returned = ', '.join(rename[r] for r in results)
        text = f'{", ".join(rename[p] for p in params)}):\n{canonical}'
        if results:
            text += f'\n    return {returned},'
        if text not in self.helpers:
            self.helpers[text] = (f'loop{len(self.helpers)}', parallel)
        name = self.helpers[text][0]
        if emit_call:
            call = f'{name}({", ".join(params)})'
            self.emit(f'{", ".join(results)}, = {call}' if results else call)
        return name, params

    def _flat_loop(self, lo, hi, body, blocks, depth):
        """`for i in range(lo, hi)` around `body` (indices counted from zero: a shifted range
        start defeats vectorisation). With reductions, blocks of BLOCK elements accumulate in the
        data's precision and the blocks' sums in float64: float32 speed, float64-grade accuracy."""
        # max(0, lo): indices provably non-negative, so Numba drops its negative-index wraparound
        offset, span = ('', hi) if lo == '0' else (f'max(0, {lo}) + ', f'{hi} - max(0, {lo})')
        if not blocks:
            if lo == '0':
                self.emit(f'for i in range({hi}):', depth)
                self.lines.extend('    ' * depth + line for line in body)
            else:
                self.emit(f'for j in range({span}):', depth)
                self.emit(f'i = max(0, {lo}) + j', depth + 1)
                self.lines.extend('    ' * depth + line for line in body)
            return
        self.emit(f'for blk in range(({span} + {BLOCK - 1}) // {BLOCK}):', depth)
        for _, q, node in blocks:
            block_type = np_type(node.inputs[0].dtype if node.inputs[0].dtype.kind == 'f'
                                 else self._acc_dtype(node))
            self.emit(f'{q} = {block_type}({self._init_value(node)})', depth + 1)
        self.emit(f'base = {offset}blk * {BLOCK}', depth + 1)
        self.emit(f'for j in range(min({BLOCK}, {hi} - base)):', depth + 1)
        self.emit('i = base + j', depth + 2)
        self.lines.extend('    ' * (depth + 1) + line for line in body)
        for acc, q, node in blocks:
            self._combine(node, acc, q, depth + 1)

    def _combine(self, node, target, value, depth):
        """target <- target (+ | max | min) value, NaNs propagating."""
        if _accumulate(node) == 'sum':
            self.emit(f'{target} += {value}', depth)
        else:
            better = '>' if _accumulate(node) == 'max' else '<'
            self.emit(f'{target} = {value} if ({value} {better} {target} or {value} != {value}) '
                      f'else {target}', depth)

    def _hoist_vector_math(self, group):
        """Outputs of the float32 transcendentals (exp32, tanh32, ...) of this loop that read a
        whole array from outside it: each is computed first in a flat loop of its own.

        A loop nest only vectorises its innermost loop, which is often shorter than a vector
        (the 10 classes of a softmax's backward pass), leaving exp32 scalar there: that loop
        took 2.2 us at 128 x 10, the flat exp32 0.5. The flat loop vectorises across rows; the
        nest then reads the result like any other array."""
        members = {n.outputs[0] for n in group.members}
        hoisted = set()
        for node in group.members:
            x, out = (node.inputs or [None])[0], node.outputs[0]
            if x is None or '{bits}(' not in str(node.prim.codegen) or x.dtype != np.float32 \
                    or x in members or self.dims.signature(x) != group.signature:
                continue
            self.names[out] = self.fresh()
            self.emit(f'{self.names[out]} = np.empty({self.shape(out)}, np.float32)')
            total = self.fresh('n')
            self.emit(f'{total} = {self.size(out)}')
            start = len(self.lines)
            src, dst = self.fresh('f'), self.fresh('f')
            self.emit(f'{src} = {self.names[x]}.reshape({total})')
            self.emit(f'{dst} = {self.names[out]}.reshape({total})')
            self.emit(f'for i in range({total}):')
            self.emit(f'{dst}[i] = {self.elementwise(node, [f"{src}[i]"], ["i"], "i")}', 2)
            self._extract_helper(start, [], False)
            hoisted.add(out)
        return hoisted

    def _allocate_stores(self, group, hoisted):
        """Arrays (or in-place state buffers) for members read outside the loop."""
        stores = []
        for node in group.members:
            out = node.outputs[0]
            if out in hoisted or not self.readers.get(out, set()) - {group.index}:
                continue
            target = self._inplace_target(group, out)
            if target is not None:
                self.names[out] = self.inplace[out] = target
            else:
                self.names[out] = self.fresh()
                self.emit(f'{self.names[out]} = np.empty({self.shape(out)}, '
                          f'{np_type(out.dtype)})')
            stores.append(out)
        return stores

    def _flat_index(self, space_var):
        expr = 'i0'
        for k in range(1, space_var.ndim):
            expr = f'({expr}) * {self.dim(space_var, k)} + i{k}'
        return expr

    @staticmethod
    def _space_var(group):
        """A value whose shape is the loop's space (its axes name the loop bounds)."""
        return group.members[0].outputs[0] if group.members else group.reductions[0].inputs[0]

    def _can_flatten(self, group):
        """One flat loop when every array read or written has exactly the loop's shape."""
        if any(len(r.params['axes']) < len(group.space) for r in group.reductions):
            return False
        if any(lowering.lowering_of(n.prim).needs_index for n in group.members):
            return len(group.space) <= 1
        members = {o for n in group.members for o in n.outputs}
        return all(v in members or v.shape == () or self.dims.signature(v) == group.signature
                   for node in group.nodes for v in node.inputs)

    def _inplace_target(self, group, out):
        """A state buffer this loop may write `out` into: `out` is the final value of a Variable
        of the loop's shape whose old value nothing reads after this loop (earlier groups, such
        as the matmuls of the forward pass, have finished with it; this loop reads element i
        before it writes element i)."""
        order = self.order[group.index]
        for (variable, value), state_var in zip(self.graph.updates, self._state_vars_of_updates()):
            readers = self.readers.get(state_var, set()) - {group.index}
            if value is out and self.dims.signature(state_var) == group.signature \
                    and value not in self.inplace and 'end' not in readers \
                    and all(self.order[r] < order for r in readers):
                return self.state_arg[state_var]
        return None

    # -- reductions ------------------------------------------------------------------------

    def _acc_dtype(self, node):
        dtype = node.inputs[0].dtype
        if _accumulate(node) == 'sum':
            return np.dtype(np.float64) if dtype.kind == 'f' else np.dtype(np.int64)
        return dtype

    def _init_value(self, node):
        dtype, how = node.inputs[0].dtype, _accumulate(node)
        if dtype.kind == 'f' or how == 'sum':
            return FLOAT_ACC[how] if dtype.kind == 'f' else '0'
        if dtype == np.bool_:
            return 'False' if how == 'max' else 'True'
        info = np.iinfo(dtype)
        return str(info.min if how == 'max' else info.max)

    def _init_reduction(self, node):
        acc = self.fresh('r')
        kept = node.outputs[0].shape
        init = self._init_value(node)
        acc_type = np_type(self._acc_dtype(node))
        if kept == ():
            self.emit(f'{acc} = {acc_type}({init})')
        else:
            self.emit(f'{acc} = np.full({self.shape(node.outputs[0])}, {init}, {acc_type})')
        return acc

    def _row_reductions(self, group):
        """(k, {node: scalar accumulator}) for reductions over the innermost axes k.. : those
        accumulate in a register per row instead of in memory."""
        ndim = len(group.space)
        splits = {}
        for node in group.reductions:
            axes = node.params['axes']
            k = ndim - len(axes)
            if 0 < k < ndim and axes == tuple(range(k, ndim)):
                splits.setdefault(k, []).append(node)
        if not splits:
            return None, {}
        k = max(splits, key=lambda s: len(splits[s]))
        return k, {node: self.fresh('q') for node in splits[k]}

    def _accumulate(self, node, acc, value, index, depth, space, target=None):
        axes = node.params['axes']
        if target is None and node.outputs[0].shape == ():
            target = acc
        elif target is None:
            kept = [index[k] for k in range(len(space)) if k not in axes]
            target = f'{acc}[{", ".join(kept)}]'
        if _accumulate(node) == 'sum':
            self._combine(node, target, value, depth)
        else:
            tmp = self.fresh('t')
            self.emit(f'{tmp} = {value}', depth)
            self._combine(node, target, tmp, depth)

    def _finish_reduction(self, node, acc):
        out = node.outputs[0]
        if out.shape == ():
            self.scalar[out] = self.fresh()
            self.emit(f'{self.scalar[out]} = {np_type(out.dtype)}({acc})')
        else:
            self.names[out] = self.fresh()
            self.emit(f'{self.names[out]} = {acc}.astype({np_type(out.dtype)})')


def _accumulate(reduction):
    return lowering.lowering_of(reduction.prim).accumulate


def _decorator(parallel):
    return (f'@numba.njit(cache=True, fastmath={fastmath_source()}, error_model=\'numpy\', '
            f'nogil=True{", parallel=True" if parallel else ""})\n')


def generate(graph):
    return Codegen(graph).generate()

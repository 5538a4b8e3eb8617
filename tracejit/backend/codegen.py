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

import numpy as np

from . import fusion_buffers, lowering
from .blocks import DIMS, FLOATS, INTS, MARK, Block, helper, mark, np_type
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
    def __init__(self, graph, out_buffers=False, carries=None):
        """`out_buffers`: the function writes its array outputs into buffers the caller
        passes after its other parameters (one per array output, in order) and returns only
        its 0-d outputs; a loop body's carries and stacked rows are then updated in place.
        `carries` (a loop body's): {output index: index of the input it is the next value of};
        `carried_in_place` then lists the outputs written into their input's buffer (whose
        buffer argument the caller passes is that input's)."""
        self.graph = graph
        self.carries = carries or {}
        self.carried_in_place = set()
        self.group = None         # the group being emitted
        self.dims = DimClasses(graph, lowering.dims_rule)
        self.plan = partition(graph, self.dims)
        self.block, self.names, self.scalar = Block(), {}, {}
        self.fconsts, self.iconsts, self.array_consts = [], [], []
        self.counter = 0
        self.helpers = {}         # canonical loop text -> (helper name, parallel)
        self.owner = self._view_owners()
        self.readers = self._readers()
        self.order = {g.index: k for k, g in enumerate(self.plan.groups)}
        self.state_arg = {}       # state Var -> argument name
        self.inplace = {}         # update value Var -> state argument written inside its loop
        self.out_buffers = out_buffers
        self.out_args = []        # (output Var, buffer argument) per array output
        self.out_target = {}      # array output Var -> the buffer its loop writes directly
        # allreduce operand -> its persistent buffer; values computed in one's slot
        self.fusion_buffers, self.packed_sources = fusion_buffers.plan(self)
        self.buffer_views = set()  # values that may view a fusion buffer
        # the slices `defer_slice` leaves to the loops that read them, which index the sliced
        # array at the slice's offsets: {Var: (that array's name, the start per axis)}
        self.windows = {}

    # -- naming ----------------------------------------------------------------------------

    def fresh(self, prefix='v'):
        self.counter += 1
        return mark(f'{prefix}{self.counter}')

    def dim(self, var, axis):
        slot = self.dims.slot(var, axis)
        return slot if slot == '1' else mark(slot)

    def shape(self, var):
        dims = [self.dim(var, k) for k in range(var.ndim)]
        return f'({dims[0]},)' if len(dims) == 1 else f'({", ".join(dims)})'

    def size(self, var, axes=None):
        """Product of the sizes of `axes` (default: all) of `var`, as an expression."""
        axes = range(var.ndim) if axes is None else axes
        return ' * '.join(self.dim(var, k) for k in axes) or '1'

    def emit(self, text, depth=1, defines=()):
        self.block.emit(text, depth, defines)

    def assign(self, name, expr, depth=1):
        self.block.emit(f'{name} = {expr}', depth, (name,))

    def ref(self, var):
        """A whole value: scalar expression for 0-d values, array name otherwise."""
        return self.scalar[var] if var.shape == () else self.names[var]

    # -- analysis --------------------------------------------------------------------------

    def _readers(self):
        """{value: the groups reading it ('end': an output or update)}, a read of a view
        counting as a read of its base too (see `direct_readers`, `view_readers`)."""
        readers = {}
        for group in self.plan.groups:
            for node in group.nodes:
                for v in node.inputs:
                    readers.setdefault(v, set()).add(group.index)
        for v in self.graph.outputs + [v for _, v in self.graph.updates]:
            readers.setdefault(v, set()).add('end')
        self.direct_readers = {v: set(groups) for v, groups in readers.items()}
        self.view_readers = {}   # value -> groups reading a view of it
        for view, base in self.owner.items():
            self.view_readers.setdefault(base, set()).update(readers.get(view, ()))
        for base, groups in self.view_readers.items():
            readers.setdefault(base, set()).update(groups)
        return readers

    def _view_owners(self):
        """{a value that may be a view: the value whose buffer it may share}."""
        owner = {}
        for node in self.graph.nodes:
            if lowering.lowering_of(node.prim).views:
                owner[node.outputs[0]] = owner.get(node.inputs[0], node.inputs[0])
        return owner

    # -- whole kernel ----------------------------------------------------------------------

    def generate(self):
        kernel_text, sizes = self.function_text()
        helpers = ''.join(f'{_decorator(parallel)}def {name}({text}\n\n'
                          for text, (name, parallel) in self.helpers.items())
        source = f'{helpers}{_decorator(False)}def kernel({kernel_text}\n'
        parallel = any(parallel for _, parallel in self.helpers.values())
        return Lowered(source, sizes, self.fconsts, self.iconsts, self.array_consts, self.plan,
                       parallel)

    def function_text(self):
        """(the function's text from its parameter list on, the dims array values)."""
        results = self.statements()
        self.emit(f'return ({"".join(r + ", " for r in results)})')
        sizes = self.dims.sizes()
        dims = ''.join(f'    d{slot} = dims[{slot}]\n' for slot in range(len(sizes)))
        signature = ', '.join(self.params).replace(MARK, '')
        return f'{signature}):\n{dims}{self.block.render()}', sizes

    def statements(self):
        """Emit the graph's code into `self.block`; return the expressions of its results.
        The code reads the parameters `self.params` (marked names: inputs, states, output
        buffers, DIMS, FLOATS, INTS, array constants) and the size slots `d0`, `d1`, ..
        (marked) of the dims array. Nodes may add parameters while they are emitted:
        control-flow nodes pass their sub-graphs' per-trace values (backend/control.py)."""
        self.params = self.prologue()
        for group in self.plan.groups:
            getattr(self, f'emit_{group.kind}')(group)
        return self.epilogue()

    def prologue(self):
        params = []
        for i, var in enumerate(self.graph.inputs):
            name = mark(f'a{i}')
            params.append(name)
            if var.shape == ():
                self.scalar[var] = self.fresh('x')
                self.emit(f'{self.scalar[var]} = {np_type(var.dtype)}({name})')
            else:
                self.names[var] = name
        for i, (_, var) in enumerate(self.graph.state):
            name = mark(f's{i}')
            params.append(name)
            self.state_arg[var] = name
            if var.shape == ():
                self.scalar[var] = self.fresh('x')
                self.emit(f'{self.scalar[var]} = {name}[0]')
            else:
                self.names[var] = name
        params += self._out_params()
        params += [DIMS, FLOATS, INTS]
        for var, value in self.graph.consts.items():
            if value.ndim == 0:
                self.scalar[var] = self.const_scalar(value)
            else:
                name = mark(f'k{len(self.array_consts)}')
                self.array_consts.append(np.ascontiguousarray(value))
                params.append(name)
                self.names[var] = name
        for buffer in self.fusion_buffers.values():
            params.append(buffer.name)
            self.array_consts.append(buffer.array)
        return params

    def _out_params(self):
        """The output buffers' parameters (out_buffers mode). An output computed by a loop of
        this function is stored straight into its first buffer; inputs and constants passed
        through, later duplicates and values made by calls are copied there at the end,
        except a loop carry passed through unchanged, which stays in its buffer."""
        if not self.out_buffers:
            return []
        passed = set(self.graph.inputs) | set(self.graph.consts) | {v for _, v in
                                                                    self.graph.state}
        params = []
        for k, var in enumerate(self.graph.outputs):
            if var.shape == ():
                continue
            name = mark(f'o{k}')
            params.append(name)
            self.out_args.append((var, name))
            if k in self.carries and var is self.graph.inputs[self.carries[k]]:
                self.carried_in_place.add(k)
            elif var not in passed and var not in self.out_target:
                self.out_target[var] = name
        return params

    def const_scalar(self, value):
        name = self.fresh('c')
        if value.dtype.kind == 'f':
            self.emit(f'{name} = {np_type(value.dtype)}({FLOATS}[{len(self.fconsts)}])')
            self.fconsts.append(float(value))
        else:
            self.emit(f'{name} = {np_type(value.dtype)}({INTS}[{len(self.iconsts)}])'
                      if value.dtype != np.bool_ else f'{name} = {INTS}[{len(self.iconsts)}] != 0')
            self.iconsts.append(int(value))
        return name

    def epilogue(self):
        """Write the state updates; return the expressions of the outputs."""
        if self.out_buffers:
            return self._fill_out_buffers()
        outs = []  # copied before the updates are written: an output may be a state's old value
        aliased = set(self.state_arg) | set(self.inplace) | set(self.graph.inputs) | set(
            self.graph.consts) | self.buffer_views
        for var in self.graph.outputs:
            ref = self.ref(var)
            if var.shape != () and self.owner.get(var, var) in aliased:
                outs.append(self.fresh('o'))
                self.emit(f'{outs[-1]} = {ref}.copy()')
            else:
                outs.append(ref)
        pending = [(self.state_arg[var], value) for (variable, value), var in zip(
            self.graph.updates, self._state_vars_of_updates()) if value not in self.inplace]
        sources = {}
        for target, value in pending:  # copy first, so swaps read the values from before
            src = self.ref(value)
            if value.shape != () and (self.owner.get(value, value) in self.state_arg
                                      or self.owner.get(value, value) in self.inplace):
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
        return outs

    def _fill_out_buffers(self):
        """Copy into each output buffer the values not already computed there; the 0-d
        outputs are the results."""
        for k, (var, buffer) in zip(self._array_outputs(), self.out_args):
            if self.names.get(var) != buffer and k not in self.carried_in_place:
                n = self.size(var)
                self.emit(f'K.copy_into({buffer}.reshape({n}), '
                          f'np.ascontiguousarray({self.names[var]}).reshape({n}))')
        return [self.ref(v) for v in self.graph.outputs if v.shape == ()]

    def _array_outputs(self):
        return [k for k, var in enumerate(self.graph.outputs) if var.shape != ()]

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
        entry = lowering.lowering_of(node.prim)
        self.group = group
        for result, position in zip(node.outputs, entry.writes_base):
            target = self._rows_target(group, node.inputs[position], result)
            if target is not None:
                self.inplace[result] = target
        entry.emit(self, node, name)
        if any(v in self.buffer_views for v in node.inputs):
            self.buffer_views.update(node.outputs)

    def _rows_target(self, group, base, value):
        """The Variable buffer a row scatter may write its result `value` into in place: its
        `base` is that buffer's value (the Variable's read, or an earlier scatter written
        there), nothing reads the base after this group, and the result, through further
        such scatters only, becomes the Variable's final value. So `var.scatter_sub(...)`
        costs the rows it touches."""
        storage = self.state_arg.get(base) or self.inplace.get(base)
        readers = self.readers.get(base, set()) - {group.index}
        if storage is None or 'end' in readers or any(
                self.order[r] >= self.order[group.index] for r in readers):
            return None
        finals = {self.state_arg[state]: value for (_, value), state in zip(
            self.graph.updates, self._state_vars_of_updates())}
        while value is not finals.get(storage):
            users = [n for n in self.graph.nodes if value in n.inputs]
            if len(users) != 1 or lowering.lowering_of(users[0].prim).writes_base != (0,) \
                    or value in users[0].inputs[1:] or users[0].inputs[0] is not value:
                return None
            value = users[0].outputs[0]
        return storage

    def defer_slice(self, node):
        """Whether the unit-step slice `node` is left to the loops that read it, each indexing
        its operand at the slice's offsets (recorded in `windows`) instead of a copy: when
        every reader is a loop, none is a loop body's output or the function's. Those loops
        run as nests (a flat loop needs contiguous arrays): an LSTM cell's four gates, column
        blocks of one product, cost no copies (128 x 64 gates: 14 us against 23 with them)."""
        x, out = node.inputs[0], node.outputs[0]
        readers = self.readers.get(out, set())
        kinds = {g.index: g.kind for g in self.plan.groups}
        if not readers or 'end' in readers or out in self.out_target or x.shape == () \
                or x in self.buffer_views or x in self.windows \
                or any(kinds[r] != 'loop' for r in readers) \
                or any(step != 1 or start < 0 for start, _, step in node.params['slices']):
            return False
        self.windows[out] = (self.names[x], [start for start, _, _ in node.params['slices']])
        return True

    # -- elementwise expressions -----------------------------------------------------------

    def elementwise(self, node, operands, index, flat_index):
        return lowering.expression(node, operands, index, flat_index)

    # -- loops -----------------------------------------------------------------------------

    def emit_loop(self, group):
        """One loop over the group's space: flat when every array has the loop's shape, else a
        nest; its statements become a helper function (see _extract_helper)."""
        loop = _Loop(group, self._space_var(group), self._can_flatten(group))
        hoisted = self._hoist_vector_math(group) if not loop.flat and len(loop.space) > 1 \
            else set()
        loop.stores = self._allocate_stores(group, hoisted)
        loop.start = len(self.block)
        loop.accs = [self._init_reduction(node) for node in group.reductions]
        if loop.flat:
            self._open_flat(loop)
        else:
            self._open_nest(loop)
        self._emit_body(loop, hoisted)
        self._close_loop(loop)

    def _open_flat(self, loop):
        """Flat views of the arrays read and written; the body indexes them with `i`."""
        group = loop.group
        members = {n.outputs[0] for n in group.members}
        external = [v for n in group.nodes for v in n.inputs if v not in members and v.shape]
        loop.total = self.size(loop.space_var)
        if '*' in loop.total:  # one size argument, so loops of any rank share a helper
            total = self.fresh('n')
            self.block.insert(loop.start, f'{total} = {loop.total}', defines=(total,))
            loop.total, loop.start = total, loop.start + 1
        for var in external + loop.stores:
            name = self.names[var]
            if name not in loop.views:
                loop.views[name] = self.fresh('f')
                self.assign(loop.views[name], f'{name}.reshape({loop.total})')
        loop.index, loop.flat_index, loop.depth = ['i'], 'i', 1
        loop.rows = {node: self.fresh('q') for node in group.reductions}
        loop.body_start = len(self.block)

    def _open_nest(self, loop):
        """`for i0 .. for iN` over the space; reductions over the innermost axes keep a row
        accumulator in a register, initialised where their rows start."""
        loop.split, loop.rows = self._row_reductions(loop.group)
        for k in range(len(loop.space)):
            if k == loop.split:
                for node, row in loop.rows.items():
                    self.assign(row, f'{np_type(self._acc_dtype(node))}({self._init_value(node)})',
                                k + 1)
            index = mark(f'i{k}')
            self.emit(f'for {index} in range({self.dim(loop.space_var, k)}):', k + 1, (index,))
        loop.index = [mark(f'i{k}') for k in range(len(loop.space))]
        loop.flat_index, loop.depth = self._flat_index(loop.space_var), len(loop.space) + 1

    def _element(self, loop, var):
        """The text of one element of `var` at the loop's index."""
        if var in loop.local:
            return loop.local[var]
        if var.shape == ():
            return self.ref(var)
        if loop.flat:
            return f'{loop.views[self.names[var]]}[i]'
        lead = len(loop.space) - len(var.shape)
        idx = ['0' if d == 1 and loop.space[lead + k] != 1 else loop.index[lead + k]
               for k, d in enumerate(var.shape)]
        if var in self.windows:
            base, starts = self.windows[var]
            idx = [f'{start} + {i}' if start else i for start, i in zip(starts, idx)]
            return f'{base}[{", ".join(idx)}]'
        return f'{self.names[var]}[{", ".join(idx)}]'

    def _emit_body(self, loop, hoisted):
        group, depth = loop.group, loop.depth
        for node in group.members:
            out = node.outputs[0]
            if out in hoisted:
                continue
            loop.local[out] = self.fresh('t')
            expr = self.elementwise(node, [self._element(loop, v) for v in node.inputs],
                                    loop.index, loop.flat_index)
            self.assign(loop.local[out], expr, depth)
        for node, acc in zip(group.reductions, loop.accs):
            self._accumulate(node, acc, self._element(loop, node.inputs[0]), loop.index, depth,
                             loop.space, loop.rows.get(node))
        for out in loop.stores:  # last, so every read of an old state value comes first
            target = f'{loop.views[self.names[out]]}[i]' if loop.flat else \
                f'{self.names[out]}[{", ".join(loop.index)}]'
            self.emit(f'{target} = {loop.local[out]}', depth)
        if not loop.flat:
            for node, acc in zip(group.reductions, loop.accs):
                if node in loop.rows:
                    self.emit(f'{acc}[{", ".join(loop.index[:loop.split])}] = {loop.rows[node]}',
                              loop.split + 1)

    def _close_loop(self, loop):
        """Wrap a flat body in its loop (chunked across threads when big enough), move the
        statements into a helper, and read the reductions' results."""
        group = loop.group
        parallel = loop.flat and int(np.prod(loop.space)) >= PARALLEL_MIN and all(
            _accumulate(r) == 'sum' for r in group.reductions)
        if loop.flat:
            body = self.block.cut(loop.body_start)
            blocks = [(acc, loop.rows[node], node) for node, acc in zip(group.reductions,
                                                                        loop.accs)]
            lo, hi = (self.fresh('b'), self.fresh('e')) if parallel else ('0', loop.total)
            self._flat_loop(lo, hi, body, blocks, 1)
        if parallel:
            self._emit_parallel(loop.start, loop.accs, loop.total, lo, hi)
        else:
            self._extract_helper(loop.start, loop.accs, False)
        for node, acc in zip(group.reductions, loop.accs):
            self._finish_reduction(node, acc)

    def _emit_parallel(self, start, accs, total, lo, hi):
        """A big flat loop runs as `loop(lo, hi)` over one chunk per thread under `prange`
        (each chunk is the same serial, vectorised code), or once over everything when the
        actual size is too small to pay for threads."""
        serial_name, params = self._extract_helper(start, accs, False, emit_call=False)
        chunk, first, parts = self.fresh('z'), self.fresh('b'), [self.fresh('q') for _ in accs]
        call_args = ', '.join(first if p == lo else f'min({total}, {first} + {chunk})'
                              if p == hi else p for p in params)
        start = len(self.block)
        for acc in accs:
            self.assign(acc, 'np.float64(0.0)')
        chunks = numba_threads()  # a literal: get_num_threads() defeats caching
        self.assign(chunk, f'({total} + {chunks - 1}) // {chunks}')
        self.emit(f'for c in numba.prange({chunks}):')
        self.assign(first, f'c * {chunk}', 2)
        self._emit_call(f'{serial_name}({call_args})', parts, 2)
        for acc, part in zip(accs, parts):
            self.emit(f'{acc} += {part}', 2)
        self._extract_helper(start, accs, True)
        parallel_call = self.block.cut(len(self.block) - 1)
        serial_args = ', '.join('0' if p == lo else total if p == hi else p for p in params)
        self.emit(f'if {total} >= {PARALLEL_MIN}:')
        self.block.extend(parallel_call, deeper=1)
        self.emit('else:')
        self._emit_call(f'{serial_name}({serial_args})', accs, 2)

    def _emit_call(self, call, results, depth=1):
        if results:
            self.emit(f'{", ".join(results)}, = {call}', depth, results)
        else:
            self.emit(call, depth)

    def extract_helper(self, start, results):
        """Move the statements since `start` into a (shared) serial helper function and call
        it; `results`: the marked names it assigns that later code reads."""
        self._extract_helper(start, results, False)

    def _extract_helper(self, start, results, parallel, emit_call=True):
        """Move the statements since `start` into a helper function, shared by every loop with
        the same text up to names: Numba's compile time grows faster than the size of a
        function, and identical loops (the optimizer update of each parameter) compile once."""
        text, params = helper(self.block.cut(start), results)
        if text not in self.helpers:
            self.helpers[text] = (f'loop{len(self.helpers)}', parallel)
        name = self.helpers[text][0]
        if emit_call:
            self._emit_call(f'{name}({", ".join(params)})', results)
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
            else:
                self.emit(f'for j in range({span}):', depth)
                self.emit(f'i = max(0, {lo}) + j', depth + 1)
            self.block.extend(body, deeper=depth)
            return
        self.emit(f'for blk in range(({span} + {BLOCK - 1}) // {BLOCK}):', depth)
        for _, q, node in blocks:
            block_type = np_type(node.inputs[0].dtype if node.inputs[0].dtype.kind == 'f'
                                 else self._acc_dtype(node))
            self.assign(q, f'{block_type}({self._init_value(node)})', depth + 1)
        self.emit(f'base = {offset}blk * {BLOCK}', depth + 1)
        self.emit(f'for j in range(min({BLOCK}, {hi} - base)):', depth + 1)
        self.emit('i = base + j', depth + 2)
        self.block.extend(body, deeper=depth + 1)
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
                    or x in members or x in self.windows \
                    or self.dims.signature(x) != group.signature:
                continue
            self.names[out] = self.fresh()
            self.assign(self.names[out], f'np.empty({self.shape(out)}, np.float32)')
            total = self.fresh('n')
            self.assign(total, self.size(out))
            start = len(self.block)
            src, dst = self.fresh('f'), self.fresh('f')
            self.assign(src, f'{self.names[x]}.reshape({total})')
            self.assign(dst, f'{self.names[out]}.reshape({total})')
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
            elif self._carry_in_place(group, out):
                pass
            elif out in self.out_target:
                self.names[out] = self.out_target[out]
            else:
                self.names[out] = self.fresh()
                self.emit(f'{self.names[out]} = np.empty({self.shape(out)}, '
                          f'{np_type(out.dtype)})')
            stores.append(out)
        return stores

    def _flat_index(self, space_var):
        expr = mark('i0')
        for k in range(1, space_var.ndim):
            expr = f'({expr}) * {self.dim(space_var, k)} + {mark(f"i{k}")}'
        return expr

    @staticmethod
    def _space_var(group):
        """A value whose shape is the loop's space (its axes name the loop bounds)."""
        return group.members[0].outputs[0] if group.members else group.reductions[0].inputs[0]

    def _can_flatten(self, group):
        """One flat loop when every array read or written has exactly the loop's shape (and
        nothing reads the multi-dimensional index, unless there is only one axis)."""
        if any(len(r.params['axes']) < len(group.space) for r in group.reductions):
            return False
        if len(group.space) > 1 and any(lowering.lowering_of(n.prim).needs_index
                                        for n in group.members):
            return False
        members = {o for n in group.members for o in n.outputs}
        return all(v in members or v.shape == () or (
            self.dims.signature(v) == group.signature and v not in self.windows)
            for node in group.nodes for v in node.inputs)

    def _inplace_target(self, group, out):
        """A state buffer this loop may write `out` into: `out` is the final value of a Variable
        of the loop's shape whose old value nothing reads after this loop (earlier groups, such
        as the matmuls of the forward pass, have finished with it; this loop reads element i
        before it writes element i)."""
        state_var = self.writable_state(group, out)
        if state_var is not None and self.dims.signature(state_var) == group.signature:
            return self.state_arg[state_var]
        return None

    def writable_state(self, group, value):
        """The state Var whose buffer `value`, made by `group`, may be written into: `value`
        is that Variable's final value and nothing after this group reads its old one."""
        order = self.order[group.index]
        for (variable, update), state_var in zip(self.graph.updates,
                                                 self._state_vars_of_updates()):
            readers = self.readers.get(state_var, set()) - {group.index}
            if update is value and value not in self.inplace and 'end' not in readers \
                    and all(self.order[r] < order for r in readers) \
                    and group.index not in self.view_readers.get(state_var, ()):
                return state_var
        return None

    def _carry_in_place(self, group, out):
        """Store the loop carry `out` into its input's buffer when legal, as a Variable's
        final value is (see `_inplace_target`); the caller then passes that buffer for it."""
        order = self.order[group.index]
        for k, j in self.carries.items():
            carried = self.graph.inputs[j]
            readers = self.readers.get(carried, set()) - {group.index}
            if self.graph.outputs[k] is out and k not in self.carried_in_place \
                    and carried.shape == out.shape and carried.dtype == out.dtype \
                    and self.dims.signature(carried) == group.signature \
                    and 'end' not in readers and all(self.order[r] < order for r in readers) \
                    and group.index not in self.view_readers.get(carried, ()):
                self.names[out] = self.names[carried]
                self.carried_in_place.add(k)
                return True
        return False

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
            self.assign(acc, f'{acc_type}({init})')
        else:
            self.assign(acc, f'np.full({self.shape(node.outputs[0])}, {init}, {acc_type})')
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
            self.assign(tmp, value, depth)
            self._combine(node, target, tmp, depth)

    def _finish_reduction(self, node, acc):
        out = node.outputs[0]
        if out.shape == ():
            self.scalar[out] = self.fresh()
            self.emit(f'{self.scalar[out]} = {np_type(out.dtype)}({acc})')
        else:
            self.names[out] = self.fresh()
            self.emit(f'{self.names[out]} = {acc}.astype({np_type(out.dtype)})')


class _Loop:
    """What emitting one loop group keeps between its pieces."""

    def __init__(self, group, space_var, flat):
        self.group, self.space, self.space_var, self.flat = group, group.space, space_var, flat
        self.stores, self.accs, self.views, self.local, self.rows = [], [], {}, {}, {}
        self.start = self.body_start = self.split = self.total = None
        self.index, self.flat_index, self.depth = [], 'i', 1


def _accumulate(reduction):
    return lowering.lowering_of(reduction.prim).accumulate


def _decorator(parallel):
    return (f'@numba.njit(cache=True, fastmath={fastmath_source()}, error_model=\'numpy\', '
            f'nogil=True{", parallel=True" if parallel else ""})\n')


def generate(graph):
    return Codegen(graph).generate()

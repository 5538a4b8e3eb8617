"""`summary()` of functional models, in Keras 3's layout: a boxed table of Layer (type), Output
Shape, Param # and Connected to, then the parameter totals with their sizes in memory.

Keras renders the table with `rich`; this draws the same boxes with plain text: columns at
Keras's relative positions of the line length (108 by default), text wrapped at spaces and
cut with an ellipsis where a word does not fit.
"""
import numpy as np

_POSITIONS = (0.3, 0.56, 0.74, 1.0)
_HEADER = ('Layer (type)', 'Output Shape', 'Param #', 'Connected to')
_RIGHT_ALIGNED = (False, False, True, False)


def print_functional(model, graph, line_length, print_fn):
    line_length = line_length or 108
    widths, start = [], 0
    for position in _POSITIONS:
        widths.append(int(position * line_length) - start - 3)   # borders and padding
        start = int(position * line_length)
    relevant = graph.relevant_nodes
    rows = [(f'{layer.name} ({type(layer).__name__})', _output_shape(layer),
             f'{layer.count_params():,}', _connections(layer, relevant))
            for layer in model.layers]
    lines = [f'Model: "{model.name}"'] + _table(rows, widths)
    trainable, frozen = model.trainable_weights, model.non_trainable_weights
    for label, weights in (('Total', trainable + frozen), ('Trainable', trainable),
                           ('Non-trainable', frozen)):
        count = sum(int(np.prod(v.shape)) for v in weights)
        size = sum(int(np.prod(v.shape)) * v.dtype.np.itemsize for v in weights)
        lines.append(f' {label} params: {count:,} ({memory_size(size)})')
    for line in lines:
        print_fn(line)


def memory_size(size):
    """Keras's readable byte counts: 552.00 B, 1.50 KB, 3.20 MB (powers of 1024)."""
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if size < 1024 or unit == 'TB':
            return f'{size:.2f} {unit}'
        size /= 1024


def _output_shape(layer):
    """The output shape of the layer's last call, as Keras shows it."""
    outputs = layer._inbound_nodes[-1].outputs if getattr(layer, '_inbound_nodes', None) \
        else None
    if outputs is None:
        return '?'
    if hasattr(outputs, 'shape'):
        return _shape_text(outputs.shape)
    shapes = [_shape_text(x.shape) for x in layer._inbound_nodes[-1].output_tensors]
    return f'[{", ".join(shapes)}]'


def _shape_text(shape):
    return f'({", ".join(str(d) for d in shape)})'


def _connections(layer, relevant):
    names = []
    for node in layer._inbound_nodes:
        if node in relevant:
            names += [f'{x._keras_history[0].name}[{x._keras_history[1]}]'
                      f'[{x._keras_history[2]}]' for x in node.input_tensors]
    return ', '.join(names) or '-'


def _wrap(text, width):
    """Lines of at most `width` characters, broken after spaces; a word longer than the
    width is cut with '…' (as rich does)."""
    lines, line = [], ''
    for word in text.split(' '):
        candidate = f'{line} {word}' if line else word
        if len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word if len(word) <= width else word[:width - 1] + '…'
    return lines + [line]


def _table(rows, widths):
    def border(left, middle, right, fill):
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def cells(row, bar):
        wrapped = [_wrap(text, w) for text, w in zip(row, widths)]
        height = max(len(c) for c in wrapped)
        out = []
        for k in range(height):
            parts = []
            for column, w, right in zip(wrapped, widths, _RIGHT_ALIGNED):
                text = column[k] if k < len(column) else ''
                parts.append(f' {text.rjust(w) if right else text.ljust(w)} ')
            out.append(bar + bar.join(parts) + bar)
        return out

    lines = [border('┏', '┳', '┓', '━')] + cells(_HEADER, '┃') + [border('┡', '╇', '┩', '━')]
    for k, row in enumerate(rows):
        if k:
            lines.append(border('├', '┼', '┤', '─'))
        lines += cells(row, '│')
    return lines + [border('└', '┴', '┘', '─')]

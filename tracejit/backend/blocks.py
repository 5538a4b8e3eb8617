"""The pieces generated kernel source is made of: statements in a block, with marked names.

Every name the code generator makes (`mark`) is wrapped in MARK characters inside statement
text, and each statement lists the names it assigns. So a run of statements can be moved into
a helper function, with its parameters (the names it reads but does not assign) and a canonical
renaming, without reading the generated code back; `render` removes the marks.
"""
import numpy as np

MARK = '\x00'


def np_type(dtype):
    return 'np.bool_' if dtype == np.bool_ else f'np.{dtype.name}'


def mark(name):
    """`name` as it appears in statement text (see the module docstring)."""
    return f'{MARK}{name}{MARK}'


# the per-trace value arrays every generated function receives: dims, float and int constants
DIMS, FLOATS, INTS = mark('dims'), mark('fc'), mark('ic')


class Statement:
    """One line of code: its indentation depth, its text and the marked names it assigns."""

    __slots__ = ('depth', 'text', 'defines')

    def __init__(self, depth, text, defines=()):
        self.depth, self.text, self.defines = depth, text, tuple(defines)


class Block:
    """Statements in order; `depth` 1 is the body of the function they end up in."""

    def __init__(self):
        self.statements = []

    def __len__(self):
        return len(self.statements)

    def emit(self, text, depth=1, defines=()):
        self.statements.append(Statement(depth, text, defines))

    def insert(self, position, text, depth=1, defines=()):
        self.statements.insert(position, Statement(depth, text, defines))

    def cut(self, start):
        """Remove and return the statements from `start` on."""
        taken = self.statements[start:]
        del self.statements[start:]
        return taken

    def extend(self, statements, deeper=0):
        self.statements.extend(Statement(s.depth + deeper, s.text, s.defines)
                               for s in statements)

    def render(self):
        return render(self.statements)


def names_in(text):
    """The marked names in `text`, in order."""
    return text.split(MARK)[1::2]


def renamed(text, rename):
    """`text` with its marked names renamed by `rename` (a dict), still marked."""
    parts = text.split(MARK)
    parts[1::2] = [rename.get(n, n) for n in parts[1::2]]
    return MARK.join(parts)


def render(statements, rename=None):
    """Source text of `statements`, with the marked names renamed by `rename` (a dict)."""
    lines = []
    for s in statements:
        parts = s.text.split(MARK)
        if rename:
            parts[1::2] = [rename.get(n, n) for n in parts[1::2]]
        lines.append('    ' * s.depth + ''.join(parts))
    return '\n'.join(lines)


def helper(statements, results):
    """(text, parameters) of a helper function holding `statements` and returning `results`
    (marked names): the text, from the parameter list on, names parameters p0, p1, .. and
    locals w0, w1, .. in order of appearance, so equal loops give equal text. The parameters
    are marked names: the names the statements read without assigning them."""
    defined = {n for s in statements for d in s.defines for n in names_in(d)}
    order = list(dict.fromkeys(n for s in statements for n in names_in(s.text)))
    order += [n for n in names_in(''.join(results)) if n not in order]
    params = [n for n in order if n not in defined]
    rename = {n: f'p{k}' for k, n in enumerate(params)}
    rename.update((n, f'w{k}') for k, n in enumerate(n for n in order if n in defined))
    text = f'{", ".join(rename[p] for p in params)}):\n{render(statements, rename)}'
    if results:
        text += f'\n    return {", ".join(rename[r] for n in results for r in names_in(n))},'
    return text, [mark(p) for p in params]

"""AutoGraph, as in tf.function: Python `if`/`while`/`for`, `and`/`or`/`not` and conditional
expressions on traced tensors become tj.cond / tj.while_loop by a source transformation
(transformer.py); the runtime operators (operators.py) keep Python control flow on Python
values as it is. `tj.function` converts its function (autograph=False turns it off)."""
import types as _types

from .conversion import convert, do_not_convert, enabled, in_trace, to_code
from .operators import set_loop_options


def to_graph(f, recursive=True, experimental_optional_features=None):
    """The converted function (TensorFlow's tf.autograph.to_graph)."""
    return convert(f)


experimental = _types.SimpleNamespace(do_not_convert=do_not_convert,
                                      set_loop_options=set_loop_options)

__all__ = ['convert', 'do_not_convert', 'enabled', 'experimental', 'in_trace', 'to_code',
           'to_graph']

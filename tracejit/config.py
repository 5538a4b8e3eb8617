"""Global switches. `disable_jit`: compiled functions run their Python eagerly (debugging)."""
import contextlib

disable_jit = False


def run_functions_eagerly(run_eagerly=True):
    """TensorFlow's name for switching compilation off globally."""
    global disable_jit
    disable_jit = bool(run_eagerly)


@contextlib.contextmanager
def disabled_jit():
    """Context manager: compiled functions run eagerly inside the block."""
    global disable_jit
    previous, disable_jit = disable_jit, True
    try:
        yield
    finally:
        disable_jit = previous

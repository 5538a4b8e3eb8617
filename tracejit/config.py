"""Global switches. `disable_jit`: compiled functions run their Python eagerly (debugging).
`compile_in_background` (default on; TRACEJIT_BACKGROUND_COMPILE=0 turns it off): a new kernel
compiles in a thread while steps run on the numpy interpreter, instead of the first call waiting.
TRACEJIT_DEBUG=1 prints the graph after each pass, =2 also the generated kernel source."""
import contextlib
import os

disable_jit = False
compile_in_background = os.environ.get('TRACEJIT_BACKGROUND_COMPILE', '1').strip() != '0'


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


def block_until_compiled():
    """Wait for every kernel compiling in the background (e.g. before timing steps)."""
    from .backend.tiered import wait_all
    wait_all()


def debug_level():
    """The integer value of TRACEJIT_DEBUG (0 when unset or not a number)."""
    try:
        return int(os.environ.get('TRACEJIT_DEBUG', '0'))
    except ValueError:
        return 0


@contextlib.contextmanager
def device(name):
    """TensorFlow's tf.device: everything runs on the CPU, so any device name is accepted and
    changes nothing (kept so that code written for GPUs runs unchanged)."""
    if not isinstance(name, str) and name is not None:
        raise TypeError(f'device name must be a string, got {type(name).__name__}')
    yield

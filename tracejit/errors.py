"""tracejit's exceptions, and how they point at the user's own line of code.

Every error raised while tracing or binding an op names the user's source line (the innermost
frame outside the tracejit package), so a shape mistake is reported where it was written.
"""
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class TracejitError(Exception):
    """Base class of tracejit's own exceptions."""


class DTypeError(TracejitError, TypeError):
    """Operand dtypes do not fit the op."""


class ConcretizationError(TracejitError, TypeError):
    """A traced value was used where Python needs a concrete one (if, bool(), int(), len())."""


class InvalidArgumentError(TracejitError, ValueError):
    """A bad argument value (TensorFlow's name for it)."""


class ShapeError(InvalidArgumentError):
    """Operand shapes do not fit the op: an InvalidArgumentError, as TensorFlow raises."""


class DataLossError(TracejitError, ValueError):
    """A file is truncated, empty or not what it claims to be (TensorFlow's name for it)."""


class FailedPreconditionError(TracejitError, RuntimeError):
    """Something had to happen first: an uninitialised variable, a closed session."""


class InaccessibleTensorError(TracejitError, ValueError):
    """A traced value of one compiled function used in another (TensorFlow's name for it)."""


class LeakedTensorError(TracejitError, TypeError):
    """A traced value used after its compiled function finished tracing (TensorFlow raises a
    TypeError here)."""


class NotFoundError(TracejitError, FileNotFoundError):
    """A file or checkpoint key that does not exist (TensorFlow's name for it)."""


class DeadlineExceededError(TracejitError, RuntimeError):
    """A collective did not complete in time: a peer process died, stopped early or diverged
    (TensorFlow's name for a deadline that expired)."""


class UnavailableError(TracejitError, RuntimeError):
    """The communication library failed or is not installed (TensorFlow's name for it)."""


class CompilationError(TracejitError, RuntimeError):
    """Numba failed on generated source; the message names the generated file."""


class UnimplementedError(TracejitError, NotImplementedError):
    """A TensorFlow feature that tracejit does not support here (TensorFlow's name for it)."""


_GENERATED = '<tracejit '


def generated_filename(what):
    """The file name to compile code that tracejit generates under: user_frame skips it."""
    return f'{_GENERATED}{what}>'


def user_frame():
    """The innermost stack frame that is not tracejit's own code (None if there is none)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_GENERATED)
                or os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)):
            return frame
        frame = frame.f_back
    return None


def user_line():
    """'file.py:12' of the user's code that is running now, or '' when unknown."""
    frame = user_frame()
    if frame is None:
        return ''
    return f'{frame.f_code.co_filename}:{frame.f_lineno}'


def at_user_line(message):
    """Append ' (at file:line)' for the user's current line."""
    where = user_line()
    return f'{message} (at {where})' if where else message

"""Writing files so that readers see the old file or the new one, never half of one."""
import os
import tempfile


def write_atomically(path, write, binary=False):
    """Call `write(file)` on a temporary file beside `path`, fsync it, rename it over `path`
    and fsync the directory, so a crash or an exception leaves `path` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp',
                               dir=directory)
    try:
        text_options = {} if binary else {'encoding': 'utf-8'}
        with os.fdopen(fd, 'wb' if binary else 'w', **text_options) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

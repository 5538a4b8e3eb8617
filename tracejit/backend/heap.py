"""The process heap, set once for the temporaries kernels allocate on every call.

A kernel allocates its intermediate arrays afresh on each call (`np.empty` costs well under a
microsecond), but glibc serves blocks above its mmap threshold with new pages from the
operating system and hands the free memory at the top of its heap back once it exceeds its
trim threshold (both start at 128 KiB and adapt only to the largest block freed), so each
step page-faults its temporaries in again. Measured on the W7 LSTM step (about 30 arrays of
32 KiB to 1 MiB a call): 2,540 -> 1,660 us/step, a third of the step. Raising both thresholds
keeps the freed blocks in the heap for the next call, as a caching allocator would; the heap
then stays at the size of the largest step's temporaries. Blocks above 32 MiB (glibc's
largest mmap threshold) still come from the system. TRACEJIT_MALLOC_TUNING=0 leaves the
allocator as it is.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20

_applied = []


def keep_freed_memory():
    """Set the thresholds, once per process; whether they are set (False off glibc, or with
    TRACEJIT_MALLOC_TUNING=0)."""
    if not _applied:
        _applied.append(_set_thresholds())
    return _applied[0]


def _set_thresholds():
    if os.environ.get('TRACEJIT_MALLOC_TUNING', '1').strip() == '0' \
            or not sys.platform.startswith('linux'):
        return False
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)   # glibc's; musl has none
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

"""Resident memory that the process holds but training does not use.

Loading TensorFlow touches ~0.3 GB of its shared libraries' pages (static
initialisers run over every op registration, and the loader reads much of
the code), most of which a training run never reads again. They are clean
file pages, so the kernel can drop them and fault back in from the page
cache whichever ones are read later: the same program, ~0.3 GB less peak
resident memory at the reference shape (benchmarks/step_time.py).
"""

import ctypes
import sys

_MADV_PAGEOUT = 21  # Linux 5.4+: reclaim these pages now


def _resident_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _read_only_file_mappings():
    """(start, length) of every mapping of a file that is not writable:
    code and read-only data, which the kernel can always read back."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if (len(fields) == 6 and "w" not in fields[1]
                    and fields[4] != "0" and fields[5].startswith("/")):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                yield start, end - start


def page_out_read_only_file_mappings():
    """Hand the resident pages of every read-only file mapping of this
    process back to the kernel; returns the bytes of resident memory that
    dropped (0 where this is not Linux, or the kernel has no MADV_PAGEOUT).
    Nothing changes but residency: a page read later comes back from the
    page cache. (Needs no TensorFlow: benchmarks/torch_step.py uses it on
    PyTorch's libraries.)"""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    before = _resident_bytes()
    for start, length in _read_only_file_mappings():
        # A mapping the kernel will not page out (or a kernel without the
        # advice) answers EINVAL and keeps its pages: nothing to undo.
        libc.madvise(start, length, _MADV_PAGEOUT)
    return max(0, before - _resident_bytes())


def release_library_pages():
    """Load TensorFlow, then page out what loading it touched (see
    `page_out_read_only_file_mappings`); returns the bytes released."""
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    return page_out_read_only_file_mappings()

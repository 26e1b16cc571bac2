"""Keep freed heap memory for reuse (glibc), for processes that train or evaluate.

A training step allocates and frees the same large tensors (activations, gradients, the
oneDNN LSTM workspace) every time.  glibc's defaults give memory back to the kernel when the
heap top is free (``M_TRIM_THRESHOLD``, 128 KiB) and serve blocks above a moving threshold
with fresh ``mmap`` s, so the next step touches fresh pages and pays a page fault per 4 KiB.
On this project's VM one 16 × 250-step imitation batch took 742–1139 ms (median) by
default and 682–735 ms with trimming off and the ``mmap`` threshold fixed at its 32 MiB
maximum (``docs/results.md``, issue 17).  The cost: the process keeps its high-water mark.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)


def keep_freed_memory() -> bool:
    """Turn glibc's heap trimming off and fix its ``mmap`` threshold at 32 MiB; False (and
    nothing changed) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    )

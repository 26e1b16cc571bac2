"""numba, when it is installed: one place that compiles our kernels and says whether it can.

``numba`` is optional (the ``[robot]`` extra): every caller keeps a numpy / torch path with
the same results and picks the compiled one when :func:`numba_available`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import numba as _numba
except ImportError:  # pragma: no cover - depends on the install
    _numba = None

__all__ = ["jit", "numba_available"]


def numba_available() -> bool:
    """True when numba imports."""
    return _numba is not None


def jit(fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``numba.njit(fn)`` with its on-disk cache, or without one where no cache directory is
    writable (numba refuses ``cache=True`` then: a read-only install and home).  Compiles
    lazily, per argument types, on the first call."""
    if _numba is None:
        raise ImportError("numba is not installed (pip install numba)")
    try:
        return _numba.njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # pragma: no cover - depends on the file system
        return _numba.njit(nogil=True, **options)(fn)

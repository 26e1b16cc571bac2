"""keep_freed_memory: glibc's trimming off for training processes, a no-op elsewhere."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from hybrid_snn_control.training import allocator


def test_glibc_takes_the_settings():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # idempotent


def test_without_glibc_nothing_changes(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_freed_memory() is False

"""Shared fixtures: an isolated ROS 2 environment and an initialized rclpy context.

The environment is set before anything imports rclpy or MuJoCo: logs go to a temp
directory (rclpy writes ``~/.ros/log`` per process otherwise) and each test session
gets its own ``ROS_DOMAIN_ID`` so parallel runs on one machine do not cross-talk.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="hsc-ros-log-"))
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def ros_context() -> Iterator[object]:
    """An initialized ``rclpy.Context`` of its own, shut down after the test."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.shutdown(context=ctx)


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


@pytest.fixture
def spin() -> Callable[..., bool]:
    return spin_until

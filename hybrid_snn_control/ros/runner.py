"""Run nodes until Ctrl-C, SIGTERM or a time bound, then stop them in order.

rclpy's own signal handler shuts the context down inside the handler, after which no
node can publish; a robot must still receive its final zero command.  So the context
is created without rclpy's handlers, SIGINT/SIGTERM only set a flag, and after the
executor stops every node's ``safe_stop()`` runs (the actuator publishes zero there)
while the context is still valid.  Shared by every node's ``main()`` (``ros2 run``,
``ros2 launch``) and by ``hsc bringup``.

``EventsExecutor.spin()`` hangs on these machines (DESIGN §10), so this uses the
single-threaded executor (or the multi-threaded one on request), spun in short slices so
a signal is seen within 0.1 s.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from hybrid_snn_control.ros.middleware import apply_profile_choice

__all__ = ["run_nodes"]

_SLICE_S = 0.1


def run_nodes(
    node_classes: Sequence[type[Any]],
    args: Sequence[str] | None = None,
    duration_s: float | None = None,
    threads: int = 1,
    stop_event: threading.Event | None = None,
) -> int:
    """Create ``node_classes`` in one context, spin until stopped, stop them cleanly.

    ``args`` are ROS command-line arguments (``["--ros-args", "--params-file", path]``);
    each class is called as ``cls(context=ctx)`` and reads its parameters from them.
    ``threads``: 1 (default) runs a ``SingleThreadedExecutor``; more runs a
    ``MultiThreadedExecutor`` with that many threads.  Measured with rclpy 9 on 2 cores
    (bench/bench_ros_actuator.py): the multi-threaded executor has 20-50 ms p99 latency
    and misses 100 Hz timer ticks where the single-threaded one stays near 1-5 ms, and it
    lost ~25% of a 1 Mev/s event stream; under the GIL extra threads rarely pay off.

    Returns the process exit code: 0 after a signal, the duration or ``stop_event``; 1 if a
    callback raised; 2 if a node could not start (invalid parameters, missing file).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    stop = stop_event if stop_event is not None else threading.Event()
    apply_profile_choice()  # HSC_FASTDDS_PROFILE=shipped; before the first participant
    ctx = rclpy.Context()
    rclpy.init(
        args=list(args) if args is not None else [],
        context=ctx,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    restore = _install_signal_handlers(stop)
    logger = rclpy.logging.get_logger("hsc.runner")
    nodes: list[Any] = []
    code = 0
    try:
        try:
            for cls in node_classes:
                nodes.append(cls(context=ctx))
        except (ValueError, FileNotFoundError, ImportError, RuntimeError) as exc:
            logger.error(f"{getattr(cls, '__name__', cls)} could not start: {exc}")
            return 2
        executor = (
            SingleThreadedExecutor(context=ctx)
            if threads == 1
            else MultiThreadedExecutor(num_threads=threads, context=ctx)
        )
        for node in nodes:
            executor.add_node(node)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not stop.is_set() and ctx.ok():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                executor.spin_once(timeout_sec=_SLICE_S)
        except Exception as exc:  # noqa: BLE001 - a callback bug: still stop the robot
            logger.error(f"a callback raised {type(exc).__name__}: {exc}; stopping")
            code = 1
        code = max(code, _drain(executor, logger))
        executor.shutdown(timeout_sec=1.0)
        return code
    finally:
        for node in reversed(nodes):
            hook = getattr(node, "safe_stop", None)
            if hook is not None and ctx.ok():
                try:
                    hook()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    logger.error(f"{node.get_name()}.safe_stop failed: {exc}")
            node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)
        restore()


def _drain(executor: Any, logger: Any, timeout_s: float = 1.0) -> int:
    """Let callbacks still running in the thread pool finish, and surface their errors.

    ``MultiThreadedExecutor.shutdown`` destroys its guard condition before the pool has
    drained, and a callback finishing afterwards then fails with "cannot use Destroyable"
    (rclpy 9); its own errors would only be raised by a later ``spin_once`` that never comes.
    """
    futures = list(getattr(executor, "_futures", ()))
    deadline = time.monotonic() + timeout_s
    while any(not f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.005)
    code = 0
    for f in futures:
        if f.done() and f.exception() is not None:
            logger.error(f"a callback raised {type(f.exception()).__name__}: {f.exception()}")
            code = 1
    return code


def _install_signal_handlers(stop: threading.Event):
    """SIGINT/SIGTERM set ``stop`` (main thread only); returns a function restoring the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

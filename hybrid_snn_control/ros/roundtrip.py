"""A ping/pong pair of nodes that times a real rclpy round trip (install smoke test)."""

from __future__ import annotations

import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Header


def measure_round_trip(messages: int, timeout_s: float) -> list[float]:
    """Send ``messages`` pings through a pong node; return sorted round-trip times (s)."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        ping = Node("hsc_ping", context=ctx)
        pong = Node("hsc_pong", context=ctx)
        back = pong.create_publisher(Header, "hsc_pong", 10)
        pong.create_subscription(Header, "hsc_ping", back.publish, 10)
        out = ping.create_publisher(Header, "hsc_ping", 10)
        received: list[float] = []
        sent: dict[str, float] = {}
        ping.create_subscription(
            Header,
            "hsc_pong",
            lambda m: received.append(time.perf_counter() - sent[m.frame_id]),
            10,
        )
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(ping)
        ex.add_node(pong)
        deadline = time.monotonic() + timeout_s
        # discovery: wait until both directions are matched
        while (out.get_subscription_count() == 0 or back.get_subscription_count() == 0) and (
            time.monotonic() < deadline
        ):
            ex.spin_once(timeout_sec=0.01)
        for i in range(messages):
            msg = Header(frame_id=str(i))
            sent[msg.frame_id] = time.perf_counter()
            out.publish(msg)
            while len(received) <= i and time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.01)
        if len(received) < messages:
            raise TimeoutError(f"only {len(received)}/{messages} round trips in {timeout_s} s")
        ex.shutdown()
        ping.destroy_node()
        pong.destroy_node()
        return sorted(received)
    finally:
        rclpy.shutdown(context=ctx)

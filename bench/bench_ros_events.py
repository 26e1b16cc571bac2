"""Event flood through event_camera_node: delivered rate, drops and memory at 1 and 10 Mev/s.

The node runs in its own process (``source: pointcloud2``), as under ``ros2 launch``.  This
process publishes PointCloud2 packets of ``rate × packet_ms`` events every ``packet_ms``
and counts what comes out on ``events``.  Reference, same run, same traffic: a bare rclpy
relay (subscribe, republish the same message), i.e. what the middleware alone delivers.
Ratio = node's delivered events/s ÷ relay's.  Memory = the node process's peak RSS.

    python bench/bench_ros_events.py [--rates 1e6 1e7] [--seconds 5] [--json]

Timings on a 2-core machine shared with other work are noisy: repeat and compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="hsc-bench-log-"))
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))

WIDTH, HEIGHT = 640, 480


def relay_main() -> None:
    """The reference: subscribe to ``events_in`` and republish each message on ``events``."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = Node("relay")
    pub = node.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
    node.create_subscription(PointCloud2, "events_in", pub.publish, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_one(kind: str, rate_hz: float, seconds: float, packet_ms: float, ns: str) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    from hybrid_snn_control.events import make_events
    from hybrid_snn_control.ros.event_msgs import events_to_pointcloud2

    ros = ["--ros-args", "-r", f"__ns:=/{ns}"]
    if kind == "node":
        params = {
            "source": "pointcloud2",
            "width": WIDTH,
            "height": HEIGHT,
            "packet_ms": packet_ms,
            "max_buffered_events": 2_000_000,
        }
        args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
        cmd = [sys.executable, "-m", "hybrid_snn_control.ros.event_camera_node", *ros, *args]
    else:
        cmd = [sys.executable, __file__, "--relay", *ros]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_feeder", namespace=ns, context=ctx)
    pub = node.create_publisher(PointCloud2, "events_in", qos_profile_sensor_data)
    delivered = [0]

    def on_events(msg):
        delivered[0] += msg.width * msg.height

    node.create_subscription(PointCloud2, "events", on_events, qos_profile_sensor_data)
    diag: dict[str, str] = {}

    def on_diag(msg):
        for s in msg.status:
            if s.hardware_id == f"/{ns}/event_camera_node":
                diag.update({kv.key: kv.value for kv in s.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 or node.count_publishers(f"/{ns}/events") == 0:
        ex.spin_once(timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not start")
    per_packet = max(1, int(rate_hz * packet_ms / 1000))
    rng = np.random.default_rng(0)
    msgs = []
    for _ in range(8):  # a few distinct packets, re-stamped as they go out
        ev = make_events(
            rng.integers(0, WIDTH, per_packet),
            rng.integers(0, HEIGHT, per_packet),
            np.sort(rng.integers(0, int(packet_ms * 1000), per_packet)),
            rng.choice([-1, 1], per_packet),
        )
        msgs.append(events_to_pointcloud2(ev, "cam"))
    sent = 0
    period = packet_ms / 1000
    t0 = time.monotonic()
    next_t = t0
    k = 0
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        if now >= next_t:
            msg = msgs[k % len(msgs)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(now * 1e9), 10**9)
            pub.publish(msg)
            sent += per_packet
            k += 1
            next_t += period
        ex.spin_once(timeout_sec=max(0.0, min(next_t - time.monotonic(), period)))
    elapsed = time.monotonic() - t0
    drain = time.monotonic() + 2.5  # and one more /diagnostics after the flood
    while time.monotonic() < drain:
        ex.spin_once(timeout_sec=0.05)
    rss = peak_rss_mb(proc.pid)
    proc.send_signal(2)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    return {
        "kind": kind,
        "offered_ev_per_s": sent / elapsed,
        "delivered_ev_per_s": delivered[0] / elapsed,
        "delivered_fraction": delivered[0] / max(sent, 1),
        "peak_rss_mb": rss,
        "node_counters": {k: diag[k] for k in sorted(diag)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--packet-ms", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.relay:
        relay_main()
        return 0
    rows = []
    for rate in args.rates:
        tag = f"{int(rate)}_{os.getpid()}"
        ours = run_one("node", rate, args.seconds, args.packet_ms, f"bench_node_{tag}")
        ref = run_one("relay", rate, args.seconds, args.packet_ms, f"bench_relay_{tag}")
        rows.append({"rate_ev_per_s": rate, "node": ours, "relay": ref})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'offered':>10} {'node Mev/s':>11} {'relay Mev/s':>12} {'ratio':>6} "
          f"{'node RSS MB':>12} {'overflow drops':>15} {'malformed':>10}")  # fmt: skip
    for r in rows:
        n, f = r["node"], r["relay"]
        c = n["node_counters"]
        print(
            f"{r['rate_ev_per_s'] / 1e6:>8.1f} M {n['delivered_ev_per_s'] / 1e6:>11.2f} "
            f"{f['delivered_ev_per_s'] / 1e6:>12.2f} "
            f"{n['delivered_ev_per_s'] / max(f['delivered_ev_per_s'], 1):>6.2f} "
            f"{n['peak_rss_mb']:>12.0f} {c.get('dropped_overflow_events', '?'):>15} "
            f"{c.get('dropped_malformed', '?'):>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

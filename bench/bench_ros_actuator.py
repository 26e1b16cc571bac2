"""actuator_node hop latency: ``cmd`` publish → ``cmd_vel`` receipt, at 100 Hz.

One hop of the closed loop (event stamp → cmd_vel), timed through the actuator with
``stamp_source: command`` (the output carries the command's stamp, so latency =
receipt time − stamp).  Two set-ups: the node in this process's executor (as under
``hsc bringup``) and in its own process (as under ``ros2 launch``).  Reference, same run:
a bare rclpy relay (subscribe ``cmd``, republish the message on ``cmd_vel``); ratio =
actuator median ÷ relay median.

    python bench/bench_ros_actuator.py [--seconds 10] [--rate-hz 100] [--json]

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
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 50))

ACTUATOR_PARAMS = {"stamp_source": "command", "max_linear_accel_mps2": 0.0, "cmd_timeout": 5.0}


def relay_node(context=None, namespace=None):
    from geometry_msgs.msg import TwistStamped
    from rclpy.node import Node

    from hybrid_snn_control.ros.actuator_node import COMMAND_QOS

    node = Node("relay", context=context, namespace=namespace)
    pub = node.create_publisher(TwistStamped, "cmd_vel", COMMAND_QOS)
    node.create_subscription(TwistStamped, "cmd", pub.publish, COMMAND_QOS)
    return node


def relay_main() -> None:
    import rclpy

    rclpy.init()
    node = relay_node()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def measure(kind: str, where: str, seconds: float, rate_hz: float, executor: str) -> dict:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hybrid_snn_control.ros.actuator_node import COMMAND_QOS, ActuatorNode

    ns = f"bench_{kind}_{where}_{os.getpid()}"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    multi = executor == "multi" and where == "one_process"
    ex = MultiThreadedExecutor(context=ctx) if multi else SingleThreadedExecutor(context=ctx)
    proc = None
    if where == "process":
        if kind == "actuator":
            args = [a for k, v in ACTUATOR_PARAMS.items() for a in ("-p", f"{k}:={v}")]
            cmd = [sys.executable, "-m", "hybrid_snn_control.ros.actuator_node"]
        else:
            args, cmd = [], [sys.executable, __file__, "--relay"]
        proc = subprocess.Popen(
            [*cmd, "--ros-args", "-r", f"__ns:=/{ns}", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    elif kind == "actuator":
        overrides = [Parameter(k, value=v) for k, v in ACTUATOR_PARAMS.items()]
        ex.add_node(ActuatorNode(context=ctx, namespace=ns, parameter_overrides=overrides))
    else:
        ex.add_node(relay_node(context=ctx, namespace=ns))
    driver = rclpy.create_node("driver", namespace=ns, context=ctx)
    pub = driver.create_publisher(TwistStamped, "cmd", COMMAND_QOS)
    clock = driver.get_clock()
    lat_ms: list[float] = []
    recording = [False]

    def on_out(msg):
        if recording[0] and msg.header.stamp.sec:
            stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            lat_ms.append((clock.now().nanoseconds - stamp_ns) / 1e6)

    driver.create_subscription(TwistStamped, "cmd_vel", on_out, 100)
    msg = TwistStamped()
    msg.twist.linear.x = 0.1

    def send():
        msg.header.stamp = clock.now().to_msg()
        pub.publish(msg)

    driver.create_timer(1.0 / rate_hz, send)
    ex.add_node(driver)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 or driver.count_publishers(f"/{ns}/cmd_vel") == 0:
        ex.spin_once(timeout_sec=0.05)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind} in {where} did not start")
    end = time.monotonic() + 0.5  # warm-up
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.01)
    recording[0] = True
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        ex.spin_once(timeout_sec=0.01)
    recording[0] = False
    elapsed = time.monotonic() - t0
    if proc is not None:
        proc.send_signal(2)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    ex.shutdown()
    rclpy.shutdown(context=ctx)
    lat = np.asarray(lat_ms)
    return {
        "kind": kind,
        "where": where,
        "outputs_per_s": lat.size / elapsed,
        "median_ms": float(np.median(lat)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "max_ms": float(lat.max()) if lat.size else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate-hz", type=float, default=100.0)
    ap.add_argument(
        "--executor",
        choices=["single", "multi"],
        default="single",
        help="one-process executor (hsc bringup uses multi for several nodes)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.relay:
        relay_main()
        return 0
    rows = []
    for where in ("one_process", "process"):
        ours = measure("actuator", where, args.seconds, args.rate_hz, args.executor)
        ref = measure("relay", where, args.seconds, args.rate_hz, args.executor)
        rows.append({"where": where, "actuator": ours, "relay": ref})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"cmd → cmd_vel at {args.rate_hz:g} Hz for {args.seconds:g} s (ms); "
        f"one-process executor: {args.executor}-threaded"
    )
    head = ("set-up", "node", "median", "p99", "max", "out/s", "ratio")
    print("{:<12} {:<9} {:>7} {:>7} {:>7} {:>7} {:>6}".format(*head))
    for r in rows:
        for kind in ("actuator", "relay"):
            m = r[kind]
            ratio = m["median_ms"] / r["relay"]["median_ms"]
            print(
                f"{r['where']:<12} {kind:<9} {m['median_ms']:>7.3f} {m['p99_ms']:>7.3f} "
                f"{m['max_ms']:>7.3f} {m['outputs_per_s']:>7.1f} {ratio:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

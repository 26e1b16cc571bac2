"""``hsc bringup`` as a user runs it: a subprocess, a parameter file, a signal or a time bound."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from hybrid_snn_control.commands.bringup import select_nodes  # noqa: E402
from hybrid_snn_control.ros.actuator_node import COMMAND_QOS  # noqa: E402

# `/**/name` keys match the node under any namespace (plain `name:` only matches `/name`)
PARAMS = """
/**/actuator_node:
  ros__parameters:
    cmd_timeout: 5.0
    max_linear_accel_mps2: 0.0
"""


def bringup(tmp_path: Path, ns: str, *extra: str) -> subprocess.Popen:
    cfg = tmp_path / "bringup.yaml"
    cfg.write_text(PARAMS)
    cmd = [sys.executable, "-m", "hybrid_snn_control.cli", "bringup", "--config", str(cfg)]
    return subprocess.Popen(
        [*cmd, *extra, "--ros-args", "-r", f"__ns:=/{ns}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def drive_then_signal(ros_context, spin, proc: subprocess.Popen, ns: str) -> list[float]:
    """Command 0.2 m/s until it comes out of cmd_vel, SIGINT bringup; return all vx seen."""
    node = Node("bringup_driver", namespace=ns, context=ros_context)
    pub = node.create_publisher(TwistStamped, "cmd", COMMAND_QOS)
    seen: list[float] = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(TwistStamped, "cmd_vel", lambda m: seen.append(m.twist.linear.x), qos)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        assert spin(ex, lambda: pub.get_subscription_count() > 0, 30.0), "bringup never started"
        msg = TwistStamped()
        msg.twist.linear.x = 0.2
        deadline = time.monotonic() + 10.0
        while 0.2 not in seen and time.monotonic() < deadline:
            pub.publish(msg)
            spin(ex, lambda: 0.2 in seen, 0.1)
        assert 0.2 in seen, "commands did not reach cmd_vel"
        proc.send_signal(signal.SIGINT)
        assert spin(ex, lambda: seen[-1] == 0.0, 10.0), f"no zero after SIGINT: {seen[-5:]}"
        assert proc.wait(15.0) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.shutdown()
        node.destroy_node()
    return seen


def test_bringup_sends_zero_and_exits_0_on_sigint(ros_context, spin, tmp_path):
    proc = bringup(tmp_path, "bringup_sigint")
    drive_then_signal(ros_context, spin, proc, "bringup_sigint")
    out = proc.stdout.read()
    assert "bringup: actuator_node" in out and "stopped: zero command sent" in out


def test_bringup_processes_sends_zero_and_exits_0_on_sigint(ros_context, spin, tmp_path):
    proc = bringup(tmp_path, "bringup_procs", "--processes")
    drive_then_signal(ros_context, spin, proc, "bringup_procs")
    assert "actuator_node 0" in proc.stdout.read()


def test_bringup_runs_the_shipped_sim_config_for_a_bounded_duration_and_exits_0():
    cmd = [sys.executable, "-m", "hybrid_snn_control.cli", "bringup", "--config", "sim"]
    res = subprocess.run([*cmd, "--duration", "1.0"], capture_output=True, text=True, timeout=60.0)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "bringup: actuator_node, event_camera_node" in out and "for 1 s" in out
    assert "stopped (exit 0)" in out and "zero command sent" in out


def test_bringup_rejects_a_bad_file_before_starting_anything(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("actuator_node:\n  ros__parameters:\n    cmd_timeout: -1.0\n")
    cmd = [sys.executable, "-m", "hybrid_snn_control.cli", "bringup", "--config", str(cfg)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60.0)
    assert res.returncode == 2
    assert "cmd_timeout" in res.stderr and "must be in" in res.stderr


def test_a_node_that_cannot_start_fails_bringup_with_exit_2_and_the_reason():
    try:
        import event_camera_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("event_camera_msgs is installed here")
    cmd = [sys.executable, "-m", "hybrid_snn_control.cli", "bringup", "--config", "robot"]
    res = subprocess.run(
        [*cmd, "--nodes", "event_camera_node", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60.0,
    )
    assert res.returncode == 2
    assert "could not start" in res.stderr and "event_camera_msgs" in res.stderr


def test_bringup_selects_the_nodes_the_file_has_sections_for(tmp_path):
    cfg = tmp_path / "only_demo.yaml"
    cfg.write_text("hsc_demo:\n  ros__parameters:\n    messages: 5\n")
    with pytest.raises(ValueError, match="no section for any node"):
        select_nodes(cfg, None)
    assert select_nodes(cfg, "actuator_node") == ["actuator_node"]
    with pytest.raises(ValueError, match="unknown node"):
        select_nodes(cfg, "actuator_node,warp_drive")
    cfg.write_text(PARAMS)
    assert select_nodes(cfg, None) == ["actuator_node"]

"""actuator_node with real rclpy: a driver node publishes ``cmd``/``estop`` and records ``cmd_vel``.

Each test uses its own namespace, so topics never cross between tests.  Time bounds are
generous upper limits (the node's own rule is exact and tested in test_ros_safety_core.py);
the measured reaction times are printed with ``-s``.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray  # noqa: E402

from hybrid_snn_control.robot.safety import GateState  # noqa: E402
from hybrid_snn_control.ros.actuator_node import COMMAND_QOS, ESTOP_QOS, ActuatorNode  # noqa: E402
from hybrid_snn_control.ros.runner import run_nodes  # noqa: E402

RECORD_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
OUT_TYPES = {"twist_stamped": TwistStamped, "twist": Twist, "wheel_velocities": Float64MultiArray}


def vx_of(msg) -> float:
    if isinstance(msg, TwistStamped):
        return msg.twist.linear.x
    if isinstance(msg, Twist):
        return msg.linear.x
    return msg.data[0]


class Rig:
    """An actuator_node plus a driver node in one executor, in namespace ``ns``."""

    def __init__(self, ctx, spin, ns: str, start_actuator: bool = True, **params):
        self.ctx, self.spin, self.ns = ctx, spin, ns
        self.ex = SingleThreadedExecutor(context=ctx)
        self.actuator = None
        if start_actuator:
            self.actuator = ActuatorNode(
                context=ctx,
                namespace=ns,
                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            )
            self.ex.add_node(self.actuator)
        self.driver = Node("driver", namespace=ns, context=ctx)
        self.cmd = self.driver.create_publisher(TwistStamped, "cmd", COMMAND_QOS)
        self.estop = self.driver.create_publisher(Bool, "estop", ESTOP_QOS)
        self.out: list[tuple[float, object]] = []
        out_type = OUT_TYPES[params.get("output_type", "twist_stamped")]
        self.driver.create_subscription(
            out_type, "cmd_vel", lambda m: self.out.append((time.monotonic(), m)), RECORD_QOS
        )
        self.diag: list[DiagnosticArray] = []
        self.driver.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.ex.add_node(self.driver)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        if any(s.hardware_id.startswith(f"/{self.ns}/") for s in msg.status):
            self.diag.append(msg)

    def wait_matched(self, with_estop: bool = False) -> None:
        def ready():
            ok = self.cmd.get_subscription_count() > 0
            ok = ok and self.driver.count_publishers(f"/{self.ns}/cmd_vel") > 0
            return ok and (not with_estop or self.estop.get_subscription_count() > 0)

        assert self.spin(self.ex, ready, 5.0), "actuator and driver did not match"

    def send(self, vx=0.0, wz=0.0) -> None:
        msg = TwistStamped()
        msg.twist.linear.x, msg.twist.angular.z = float(vx), float(wz)
        self.cmd.publish(msg)

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.spin(self.ex, lambda: time.monotonic() > end, seconds + 1.0)

    def diag_values(self) -> dict[str, str]:
        assert self.spin(self.ex, lambda: bool(self.diag), 5.0), "no /diagnostics"
        return {kv.key: kv.value for kv in self.diag[-1].status[0].values}


def test_nan_and_inf_commands_are_rejected_counted_and_reported(ros_context, spin):
    rig = Rig(
        ros_context,
        spin,
        "act_nan",
        diagnostics_period_s=0.1,
        max_linear_accel_mps2=0.0,
        cmd_timeout=10.0,
    )
    rig.wait_matched()
    rig.send(0.3)
    assert spin(rig.ex, lambda: len(rig.out) == 1)
    counters = rig.actuator.gate.counters
    for k, (vx, wz) in enumerate([(math.nan, 0), (math.inf, 0), (-math.inf, 0), (0, math.nan)]):
        rig.send(vx, wz)  # one at a time: the cmd queue keeps only the newest
        assert spin(rig.ex, lambda k=k: counters.rejected_nonfinite == k + 1)
    rig.run_for(0.1)
    assert [vx_of(m) for _, m in rig.out] == [0.3]  # nothing else went out
    rig.diag.clear()
    values = rig.diag_values()
    assert values["rejected_nonfinite"] == "4" and values["state"] == "active"


def test_safety_topics_keep_qos_mismatch_warnings_and_diagnostics_does_not(ros_context):
    """A publisher of ``estop`` or ``cmd`` with an incompatible QoS would never be heard:
    those keep rclpy's incompatible-QoS/type warnings.  ``/diagnostics`` goes without
    them (two waitables fewer for the executor to walk on every wait)."""
    node = ActuatorNode(context=ros_context, namespace="qos_events")
    try:
        handlers = {
            **{p.topic_name: len(p.event_handlers) for p in node.publishers},
            **{s.topic_name: len(s.event_handlers) for s in node.subscriptions},
        }
    finally:
        node.destroy_node()
    for topic in ("/qos_events/cmd", "/qos_events/estop", "/qos_events/cmd_vel"):
        assert handlers[topic] >= 2, (topic, handlers)
    assert handlers["/diagnostics"] == 0, handlers


def test_not_armed_before_the_first_command(ros_context, spin):
    rig = Rig(ros_context, spin, "act_idle", cmd_timeout=0.05, rate_hz=100.0)
    rig.wait_matched()
    rig.run_for(0.4)  # eight timeouts' worth of silence
    assert rig.out == []
    rig.send(0.1)
    assert spin(rig.ex, lambda: len(rig.out) >= 1)
    assert vx_of(rig.out[0][1]) > 0


def test_stale_commands_become_zero_within_cmd_timeout(ros_context, spin):
    timeout_s = 0.2
    rig = Rig(ros_context, spin, "act_stale", cmd_timeout=timeout_s, max_linear_accel_mps2=0.0)
    rig.wait_matched()
    rig.send(0.4)
    sent = time.monotonic()
    assert spin(rig.ex, lambda: any(vx_of(m) == 0.0 for _, m in rig.out), 3.0)
    t_zero = next(t for t, m in rig.out if vx_of(m) == 0.0)
    reaction = t_zero - sent
    print(f"\nwatchdog: zero {reaction * 1e3:.1f} ms after the last command (cmd_timeout 200 ms)")
    assert vx_of(rig.out[0][1]) == 0.4
    assert reaction >= timeout_s  # never before the timeout...
    assert reaction < timeout_s + 1.0  # ...and soon after (one 20 ms tick; generous for load)
    n = len(rig.out)
    rig.run_for(0.1)
    assert len(rig.out) > n and all(vx_of(m) == 0.0 for _, m in rig.out[n:])  # zero is held


def test_velocity_and_acceleration_limits(ros_context, spin):
    rig = Rig(
        ros_context,
        spin,
        "act_limits",
        cmd_timeout=5.0,
        rate_hz=50.0,
        max_linear_mps=0.5,
        max_angular_rps=1.0,
        max_linear_accel_mps2=2.0,
        max_angular_accel_rps2=0.0,
    )
    rig.wait_matched()
    rig.send(3.0, -4.0)
    assert spin(rig.ex, lambda: rig.out and vx_of(rig.out[-1][1]) == 0.5, 3.0)
    vx = [vx_of(m) for _, m in rig.out]
    assert vx[0] == pytest.approx(2.0 * 0.02)  # one 20 ms step of 2 m/s²
    assert all(0 < b - a <= 2.0 * 0.02 + 1e-9 for a, b in itertools.pairwise(vx))
    assert {m.twist.angular.z for _, m in rig.out} == {-1.0}  # clamped, no angular ramp
    assert rig.actuator.gate.counters.velocity_clamped == 1


def test_estop_latches_until_cleared_by_false(ros_context, spin):
    rig = Rig(ros_context, spin, "act_estop", cmd_timeout=5.0, max_linear_accel_mps2=0.0)
    rig.wait_matched(with_estop=True)
    rig.send(0.3)
    assert spin(rig.ex, lambda: rig.out and vx_of(rig.out[-1][1]) == 0.3)
    rig.estop.publish(Bool(data=True))
    assert spin(rig.ex, lambda: vx_of(rig.out[-1][1]) == 0.0)
    n = len(rig.out)
    counters = rig.actuator.gate.counters
    for k in range(5):  # the policy keeps commanding; the latch holds
        rig.send(0.3)
        assert spin(rig.ex, lambda k=k: counters.ignored_during_estop == k + 1)
    rig.run_for(0.05)
    assert all(vx_of(m) == 0.0 for _, m in rig.out[n:])
    rig.estop.publish(Bool(data=False))
    assert spin(rig.ex, lambda: rig.actuator.gate.state is GateState.IDLE)
    rig.run_for(0.05)  # a zero published just before the clear may still be in flight
    n = len(rig.out)
    rig.run_for(0.2)
    assert len(rig.out) == n  # cleared: idle, nothing published until a fresh command
    rig.send(0.3)
    assert spin(rig.ex, lambda: rig.out and vx_of(rig.out[-1][1]) == 0.3)


PUBLISHER_SCRIPT = """
import sys, time, rclpy
from geometry_msgs.msg import TwistStamped
from hybrid_snn_control.robot.safety import GateState  # noqa: E402
from hybrid_snn_control.ros.actuator_node import COMMAND_QOS
rclpy.init()
node = rclpy.create_node("doomed_policy", namespace=sys.argv[1])
pub = node.create_publisher(TwistStamped, "cmd", COMMAND_QOS)
msg = TwistStamped()
msg.twist.linear.x = 0.25
while True:
    pub.publish(msg)
    time.sleep(0.02)
"""


def test_killing_the_command_publisher_gives_zero_within_cmd_timeout(ros_context, spin, tmp_path):
    timeout_s = 0.3
    rig = Rig(ros_context, spin, "act_kill", cmd_timeout=timeout_s, max_linear_accel_mps2=0.0)
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), "act_kill"])
    try:
        assert spin(rig.ex, lambda: len(rig.out) >= 10, 20.0), "no commands from the publisher"
    finally:
        proc.kill()
        proc.wait()
    killed = time.monotonic()
    assert spin(rig.ex, lambda: vx_of(rig.out[-1][1]) == 0.0, 3.0)
    last_cmd = max(t for t, m in rig.out if vx_of(m) == 0.25)
    t_zero = next(t for t, m in rig.out if t > last_cmd)
    print(
        f"\nkilled publisher: zero {(t_zero - last_cmd) * 1e3:.1f} ms after its last command, "
        f"{(t_zero - killed) * 1e3:.1f} ms after the kill (cmd_timeout 300 ms)"
    )
    assert t_zero - last_cmd < timeout_s + 1.0


@pytest.mark.parametrize("output_type", ["twist", "wheel_velocities"])
def test_output_types(ros_context, spin, output_type):
    rig = Rig(
        ros_context,
        spin,
        f"act_out_{output_type}",
        output_type=output_type,
        max_linear_accel_mps2=0.0,
        max_angular_accel_rps2=0.0,
        wheel_separation_m=0.3,
        wheel_radius_m=0.05,
        wheels_per_side=2,
    )
    rig.wait_matched()
    rig.send(0.2, 1.0)
    assert spin(rig.ex, lambda: len(rig.out) >= 1)
    msg = rig.out[0][1]
    if output_type == "twist":
        assert isinstance(msg, Twist) and (msg.linear.x, msg.angular.z) == (0.2, 1.0)
    else:
        assert isinstance(msg, Float64MultiArray)
        assert list(msg.data) == pytest.approx([1.0, 1.0, 7.0, 7.0])  # rad/s, left then right


def test_twist_stamped_output_carries_frame_and_stamp(ros_context, spin):
    rig = Rig(ros_context, spin, "act_stamped", frame_id="base_footprint", stamp_source="command")
    rig.wait_matched()
    msg = TwistStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.twist.linear.x = 0.01
    rig.cmd.publish(msg)
    assert spin(rig.ex, lambda: len(rig.out) >= 1)
    out = rig.out[0][1]
    assert out.header.frame_id == "base_footprint"
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (12, 345)


def test_limits_change_at_runtime_through_set_parameters(ros_context, spin):
    rig = Rig(ros_context, spin, "act_params", max_linear_accel_mps2=0.0, cmd_timeout=5.0)
    client = rig.driver.create_client(SetParameters, "/act_params/actuator_node/set_parameters")
    rig.wait_matched()
    assert spin(rig.ex, client.service_is_ready)

    def set_param(name, value):
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        fut = client.call_async(req)
        assert spin(rig.ex, fut.done)
        return fut.result().results[0]

    assert set_param("max_linear_mps", 0.1).successful
    bad = set_param("max_linear_mps", -1.0)
    assert not bad.successful and "max_linear_mps" in bad.reason
    assert not set_param("output_type", "twist").successful  # read-only: publisher type is fixed
    rig.send(0.4)
    assert spin(rig.ex, lambda: len(rig.out) >= 1)
    assert vx_of(rig.out[0][1]) == 0.1


def test_zero_command_on_shutdown(ros_context, spin):
    """run_nodes (what main() and hsc bringup use) publishes zero after it is told to stop."""
    stop = threading.Event()
    args = ["--ros-args", "-r", "__ns:=/act_shutdown", "-p", "max_linear_accel_mps2:=0.0"]
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(run_nodes([ActuatorNode], args=args, stop_event=stop))
    )
    worker.start()
    try:
        rig = Rig(ros_context, spin, "act_shutdown", start_actuator=False)
        rig.wait_matched()
        rig.send(0.35)
        assert spin(rig.ex, lambda: rig.out and vx_of(rig.out[-1][1]) == 0.35)
    finally:
        stop.set()
        worker.join(10.0)
    assert codes == [0]
    assert spin(rig.ex, lambda: vx_of(rig.out[-1][1]) == 0.0, 3.0)

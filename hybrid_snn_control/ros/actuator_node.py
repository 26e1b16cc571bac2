"""actuator_node: policy commands → safe ``cmd_vel`` (limits, watchdog, latched e-stop).

Subscribes ``cmd`` (``geometry_msgs/TwistStamped``, reliable, depth 1) and ``estop``
(``std_msgs/Bool``, reliable, depth 10); publishes ``cmd_vel`` as ``TwistStamped``
(Jazzy+ ``diff_drive_controller``), ``Twist``, or ``std_msgs/Float64MultiArray`` wheel
speeds for a ros2_control forward velocity controller (``output_type``), and
``/diagnostics``.  The rules live in :mod:`hybrid_snn_control.robot.safety`; this node
turns messages into calls.  The watchdog and the output ramp run on the steady clock, so
they keep working when ``use_sim_time`` is on and ``/clock`` stops.

With ``stamp_source: command`` the output carries the stamp of the command it follows
(ramp steps between commands included, so one time base is never mixed with another); a
command stamp that is not a valid time (negative ``sec``, ``nanosec`` ≥ 1e9) is replaced
by the node's clock and counted (``bad_command_stamps``).
"""

from __future__ import annotations

import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float64MultiArray

from hybrid_snn_control.robot.safety import (
    CommandGate,
    GateState,
    SafetyLimits,
    Velocity,
    wheel_velocities,
)
from hybrid_snn_control.ros.diagnostics import QUIET_PUB, publish_status
from hybrid_snn_control.ros.params import ParameterBinding
from hybrid_snn_control.ros.settings import ActuatorSettings

COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE
)
ESTOP_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
)

LIMIT_PARAMETERS = (
    "cmd_timeout",
    "max_linear_mps",
    "max_lateral_mps",
    "max_angular_rps",
    "max_linear_accel_mps2",
    "max_angular_accel_rps2",
)


def limits_from(s: ActuatorSettings) -> SafetyLimits:
    return SafetyLimits.ground_robot(
        max_linear_mps=s.max_linear_mps,
        max_lateral_mps=s.max_lateral_mps,
        max_angular_rps=s.max_angular_rps,
        max_linear_accel_mps2=s.max_linear_accel_mps2,
        max_angular_accel_rps2=s.max_angular_accel_rps2,
        cmd_timeout_s=s.cmd_timeout,
        max_step_s=1.0 / s.rate_hz,
    )


_OUTPUT_TYPES = {
    "twist_stamped": TwistStamped,
    "twist": Twist,
    "wheel_velocities": Float64MultiArray,
}


class ActuatorNode(Node):
    """Limits, watchdog and e-stop between the policy's ``cmd`` and the robot's ``cmd_vel``."""

    def __init__(self, node_name: str = "actuator_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.params = ParameterBinding(self, ActuatorSettings)
        for name in LIMIT_PARAMETERS:
            self.params.on_change(name, self._update_limits)
        s = self.params.values
        self.gate = CommandGate(limits_from(s))
        self.bad_command_stamps = 0
        self._command_stamp = None  # of the last accepted command: ramp steps carry it
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._cmd_vel = self.create_publisher(_OUTPUT_TYPES[s.output_type], "cmd_vel", COMMAND_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10, **QUIET_PUB)
        self.create_subscription(TwistStamped, "cmd", self._on_cmd, COMMAND_QOS)
        self.create_subscription(Bool, "estop", self._on_estop, ESTOP_QOS)
        self.create_timer(1.0 / s.rate_hz, self._on_tick, clock=self._steady)
        self.create_timer(s.diagnostics_period_s, self._publish_diagnostics, clock=self._steady)
        self.get_logger().info(
            f"{s.output_type} on {self._cmd_vel.topic_name}; cmd_timeout {s.cmd_timeout} s, "
            f"|v| ≤ {s.max_linear_mps} m/s, |ω| ≤ {s.max_angular_rps} rad/s; "
            "waiting for the first command"
        )

    def _update_limits(self, _value: object) -> None:
        self.gate.limits = limits_from(self.params.values)

    def _on_cmd(self, msg: TwistStamped) -> None:
        t, r = msg.twist.linear, msg.twist.angular
        was = self.gate.state
        decision = self.gate.on_command((t.x, t.y, t.z, r.x, r.y, r.z), time.monotonic())
        if decision.rejected:
            self.get_logger().warning(
                f"command dropped: {decision.rejected} ({self._drops()} dropped so far)",
                throttle_duration_sec=1.0,
            )
        elif was is not GateState.ACTIVE:
            self.get_logger().info(f"armed: commands flow ({was.value} → active)")
        stamp = msg.header.stamp
        if not (stamp.sec >= 0 and 0 <= stamp.nanosec < 1_000_000_000):
            self.bad_command_stamps += 1
            stamp = None
        if decision.rejected is None:
            self._command_stamp = stamp
        if decision.publish is not None:
            self._publish(decision.publish, stamp)

    def _on_estop(self, msg: Bool) -> None:
        was = self.gate.state
        out = self.gate.on_estop(bool(msg.data), time.monotonic())
        if out is not None:
            self._publish(out)
        if self.gate.state is not was:
            if msg.data:
                self.get_logger().error("E-STOP engaged: zero output, latched until estop=false")
            else:
                self.get_logger().warning("e-stop cleared: waiting for a fresh command")

    def _on_tick(self) -> None:
        was = self.gate.state
        out = self.gate.on_tick(time.monotonic())
        if was is GateState.ACTIVE and self.gate.state is GateState.TIMED_OUT:
            self.get_logger().warning(
                f"no command for {self.params.values.cmd_timeout} s: zero output until one arrives"
            )
        if out is not None:  # a ramp step follows the last command; a stop is stamped now
            ramping = self.gate.state is GateState.ACTIVE
            self._publish(out, self._command_stamp if ramping else None)

    def safe_stop(self) -> None:
        """Shutdown: publish zero and give it a moment to be delivered."""
        self._publish(self.gate.stop(time.monotonic()))
        self._cmd_vel.wait_for_all_acked(Duration(seconds=0.5))
        self.get_logger().info("stopped: zero command sent")

    def _publish(self, v: Velocity, command_stamp=None) -> None:
        s = self.params.values
        if s.output_type == "wheel_velocities":
            speeds = wheel_velocities(v, s.wheel_separation_m, s.wheel_radius_m, s.wheels_per_side)
            self._cmd_vel.publish(Float64MultiArray(data=speeds))
            return
        twist = Twist()
        (twist.linear.x, twist.linear.y, twist.linear.z) = v[:3]
        (twist.angular.x, twist.angular.y, twist.angular.z) = v[3:]
        if s.output_type == "twist":
            self._cmd_vel.publish(twist)
            return
        out = TwistStamped(twist=twist)
        out.header.frame_id = s.frame_id
        use_command = s.stamp_source == "command" and command_stamp is not None
        use_command = use_command and (command_stamp.sec != 0 or command_stamp.nanosec != 0)
        out.header.stamp = command_stamp if use_command else self.get_clock().now().to_msg()
        self._cmd_vel.publish(out)

    def _drops(self) -> int:
        c = self.gate.counters
        return c.rejected_nonfinite + c.ignored_during_estop

    def _publish_diagnostics(self) -> None:
        gate = self.gate
        age = gate.command_age_s(time.monotonic())
        level, message = {
            GateState.IDLE: (DiagnosticStatus.OK, "waiting for the first command"),
            GateState.ACTIVE: (DiagnosticStatus.OK, "commands flowing"),
            GateState.TIMED_OUT: (DiagnosticStatus.WARN, "command timeout: holding zero"),
            GateState.ESTOP: (DiagnosticStatus.ERROR, "e-stop engaged: holding zero"),
        }[gate.state]
        values = {"state": gate.state.value, **gate.counters.as_dict()}
        values["bad_command_stamps"] = self.bad_command_stamps
        values["last_command_age_s"] = "none" if age is None else f"{age:.3f}"
        values["output"] = " ".join(f"{c:.3f}" for c in gate.output)
        publish_status(self, self._diagnostics, level, "command safety", message, values)


def main(args: list[str] | None = None) -> int:
    from hybrid_snn_control.ros.runner import run_nodes

    return run_nodes([ActuatorNode], args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())

"""policy_node: event packets (+ wheel speeds, IMU) → the hybrid policy → ``cmd``.

Subscribes ``events`` (PointCloud2 packets, sensor-data QoS), ``joint_states`` or
``odom`` (wheel speeds, ``proprio_source``), ``imu`` (``sensor_msgs/Imu``) and
``episode`` (``std_msgs/UInt32`` from sim_node: a new episode resets the state).
Publishes ``cmd`` (``geometry_msgs/TwistStamped``, reliable depth 1, stamped with the
time of the newest event used), ``~/status`` (``std_msgs/String``, JSON: ratio, firing
rates, SynOps / MACs / energy of the step, step latency, drops) and ``/diagnostics``.
Service ``~/reset`` (``std_srvs/Trigger``) zeroes the recurrent state.

Bad input never stops the node: malformed packets, events outside the sensor or with times
a stamp cannot carry, and NaN / inf / absurd proprioception are dropped and counted (the
last good reading is held up to ``proprio_stale_after_s``, 0.5 s); a non-finite action
becomes a zero command and a counted, rate-limited error.  All counters are in
``~/status`` and ``/diagnostics``.

Floods do not set the pace: with ``trigger: timer`` packets only add to the next step's
event counts; with ``trigger: events`` a packet steps at most ``rate_hz`` times per second
of packet time (:class:`~hybrid_snn_control.robot.packet_clock.PacketStepGate`; the extra
packets are coalesced into the next step, ``packets_coalesced``).  A packet larger than
``max_events_per_packet`` is cut to its newest events before decoding
(``dropped_overflow_events``): packets arrive serialized (``raw=True``) and are read in
place (:mod:`~hybrid_snn_control.ros.pointcloud2_cdr`), so the cut comes before any copy
of the payload, and packets the publisher sent that never reached this node
(lost by the middleware, or overwritten in the subscription queue while it was busy) are
counted from the publication sequence numbers (``dropped_in_transport``).

``spiking_ratio`` is declared with ``FloatingPointRange(0, 1)`` and validated on every
set-parameters call (out of range, NaN, wrong type → rejected with the reason, the old
ratio stays); an accepted value is a mask change applied at the next control step.  A
policy with an HRSNN core is all spiking: its ratio is fixed at 1 (other values are
rejected), and ``online_plasticity`` (bool) switches its STDP on the live events on or
off at run time; ``~/status`` then carries the recurrent weight norms.
Robot constants (action scales, wheel geometry, proprio normalization) come from the
RobotSpec stored with the policy; the ``max_*`` / wheel parameters override single values
when non-zero.  The step itself lives in
:class:`hybrid_snn_control.robot.controller.PolicyController`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
import numpy as np
from sensor_msgs.msg import Imu, JointState, PointCloud2
from std_msgs.msg import String, UInt32
from std_srvs.srv import Trigger

from hybrid_snn_control.events.arrays import empty_events
from hybrid_snn_control.events.codecs import EventTimeError, us_to_stamp
from hybrid_snn_control.robot.adaptive_ratio import AdaptiveRatio, load_profile, profile_path_for
from hybrid_snn_control.robot.controller import (
    EventAccumulator,
    PolicyController,
    resolve_backend,
    wheel_speeds_from_twist,
)
from hybrid_snn_control.robot.packet_clock import PacketStepGate
from hybrid_snn_control.robot.proprio import ProprioFilter, ProprioLimits
from hybrid_snn_control.ros.actuator_node import COMMAND_QOS, ESTOP_QOS
from hybrid_snn_control.ros.diagnostics import QUIET_PUB, QUIET_SUB, publish_status
from hybrid_snn_control.ros.event_msgs import pointcloud2_to_events, stamp_us_of
from hybrid_snn_control.ros.params import ParameterBinding
from hybrid_snn_control.ros.pointcloud2_cdr import read_pointcloud2
from hybrid_snn_control.ros.settings import ROBOT_PARAMETERS, PolicySettings


def resolve_checkpoint(path: str) -> str:
    """``path``, or the shipped policy when empty (FileNotFoundError saying what to do)."""
    if path:
        return path
    from hybrid_snn_control.policy.shipped import default_policy_path

    try:
        return str(default_policy_path())
    except FileNotFoundError:
        raise FileNotFoundError(
            "no checkpoint given and the shipped policy (policies/pursuit_default.safetensors) "
            "is not installed; pass -p checkpoint:=<file.safetensors>"
        ) from None


def policy_node_controller(settings: PolicySettings) -> PolicyController:
    """The controller policy_node builds from ``settings`` (checkpoint, backend, robot
    overrides, ratio, online plasticity), without the node."""
    checkpoint = resolve_checkpoint(settings.checkpoint)
    controller = PolicyController(
        checkpoint,
        backend=resolve_backend(checkpoint, settings.backend, settings.online_plasticity),
        device=settings.device,
        spiking_ratio=settings.spiking_ratio,
        robot_overrides=settings.robot_overrides(),
        threads=settings.threads,
    )
    controller.set_plasticity(settings.online_plasticity, settings.online_plasticity_rate)
    return controller


class PolicyNode(Node):
    """Runs the hybrid policy on the event stream and publishes velocity commands."""

    def __init__(self, node_name: str = "policy_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.params = ParameterBinding(self, PolicySettings)
        s = self.params.values
        self.controller = policy_node_controller(s)
        _, h, w = self.controller.event_shape
        self.events = EventAccumulator(w, h)
        if self.controller.spiking_ratio != s.spiking_ratio:  # a fixed-ratio (HRSNN) core
            self.get_logger().warning(
                f"spiking_ratio {s.spiking_ratio:g} requested, but this policy runs only at "
                f"{self.controller.spiking_ratio:g}"
            )
            self.set_parameters([Parameter("spiking_ratio", value=self.controller.spiking_ratio)])
        self.params.on_change("spiking_ratio", self._set_ratio)
        self.params.on_change("online_plasticity", self._set_plasticity)
        self.params.on_change("online_plasticity_rate", self._set_plasticity_rate)
        for name in (*ROBOT_PARAMETERS, "proprio_stale_after_s"):
            self.params.on_change(name, self._set_robot)
        self.sensors = ProprioFilter(self._proprio_limits())
        self.gate = PacketStepGate(s.rate_hz)
        self.adaptive = self._make_governor(s)
        self._step_events: list = []  # this step's decoded events, for the condition estimates
        for name in ("ratio_mode", "energy_budget_nj", "latency_budget_ms"):
            self.params.on_change(name, self._set_governor)
        self.steps = 0
        self.resets = 0
        self.ratio_changes = 0
        self._ratio_logged_s = -1e9
        self.packets_in = 0
        self.dropped_malformed = 0
        self.dropped_out_of_range = 0
        self.dropped_bad_time = 0
        self.dropped_overflow_events = 0
        self.dropped_in_transport = 0
        self.lost_in_middleware = 0
        self._last_seq: dict[bytes, int] = {}
        self._faults_reported = 0
        self._last: tuple | None = None  # (ControlStep, newest µs, events) of the last step
        self._latencies: list[float] = []
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)

        self._cmd = self.create_publisher(TwistStamped, "cmd", COMMAND_QOS)
        self._cmd_msg = TwistStamped()  # reused: publish serializes it at once
        self._status = self.create_publisher(String, "~/status", 10, **QUIET_PUB)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10, **QUIET_PUB)
        # proprioception first: with one executor, ready callbacks run in creation order,
        # so a sim step's wheel/IMU messages are in before its events trigger a step
        if s.proprio_source == "joint_states":
            self.create_subscription(
                JointState,
                "joint_states",
                self._on_joint_states,
                qos_profile_sensor_data,
                **QUIET_SUB,
            )
        elif s.proprio_source == "odom":
            self.create_subscription(
                Odometry, "odom", self._on_odom, qos_profile_sensor_data, **QUIET_SUB
            )
        if s.proprio_source != "none":
            self.create_subscription(Imu, "imu", self._on_imu, qos_profile_sensor_data, **QUIET_SUB)
        self.create_subscription(UInt32, "episode", self._on_episode, ESTOP_QOS)
        self.create_subscription(
            PointCloud2,
            "events",
            self._on_events,
            qos_profile_sensor_data,
            raw=True,  # read in place, cut before any copy (ros/pointcloud2_cdr.py)
            event_callbacks=SubscriptionEventCallbacks(
                message_lost=self._on_message_lost, use_default_callbacks=False
            ),
        )
        self.create_service(Trigger, "~/reset", self._on_reset)
        if s.trigger == "timer":
            self.create_timer(1.0 / s.rate_hz, self._control_step, clock=self._steady)
        self.create_timer(s.diagnostics_period_s, self._publish_diagnostics, clock=self._steady)
        c = self.controller
        cadence = f"every {1e3 / s.rate_hz:g} ms" if s.trigger == "timer" else "per event packet"
        backend = f"{c.backend} (auto)" if s.backend == "auto" else c.backend
        self.get_logger().info(
            f"policy {c.meta.get('policy_config', {}).get('event_shape')} "
            f"({backend} on {s.device}) at spiking_ratio {c.spiking_ratio:g}, step {cadence}, "
            f"online plasticity {'on' if c.plasticity else 'off'}; "
            f"proprio from {s.proprio_source} + imu"
        )

    # -- inputs ------------------------------------------------------------------------
    def _on_events(self, raw: bytes, info) -> None:
        self.packets_in += 1
        self._count_lost(info)
        cap = self.params.values.max_events_per_packet
        try:
            msg = read_pointcloud2(raw)
            events = pointcloud2_to_events(msg, max_events=cap)
        except EventTimeError as exc:
            self.dropped_bad_time += 1
            self._warn_drop(f"PointCloud2 with out-of-range times: {exc}")
            return
        except ValueError as exc:
            self.dropped_malformed += 1
            self._warn_drop(f"malformed PointCloud2: {exc}")
            return
        bad_time = self.events.dropped_bad_time
        reason = self.events.push(events, stamp_us_of(msg))
        if reason is not None:
            if self.events.dropped_bad_time > bad_time:
                self.dropped_bad_time += 1
            else:
                self.dropped_out_of_range += 1
            self._warn_drop(reason)
            return
        if self.adaptive is not None and events.size:
            self._step_events.append(events)
            if len(self._step_events) > 64:  # a flood: the estimate needs a sample, not all
                del self._step_events[:32]
        points = msg.width * msg.height
        if points > cap:
            self.dropped_overflow_events += points - cap
            self._warn_drop(f"a packet of {points} events cut to its newest {cap}")
        if self.params.values.trigger == "events":
            if self.gate.due(self.events.packet_t_us):  # the packet's newest event, or stamp
                self._control_step()

    def _on_message_lost(self, info) -> None:
        """The middleware's own count of samples it lost (e.g. a fragmented large packet
        that never completed: no sequence gap shows it when nothing else arrives)."""
        self.lost_in_middleware += info.total_count_change
        self._warn_drop(f"{info.total_count_change} event packets lost by the middleware")

    def _count_lost(self, info) -> None:
        """Packets missing from a publisher's sequence (transport loss, queue overwrite)."""
        seq = info.get("publication_sequence_number") if info else None
        if not seq:  # an rmw without sequence numbers reports 0 / None
            return
        gid = info.get("publisher_gid") or {}
        key = bytes(gid.get("data", b"")) if isinstance(gid, dict) else b""
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self.dropped_in_transport += seq - last - 1
        if len(self._last_seq) > 256 and key not in self._last_seq:
            self._last_seq.clear()  # publishers come and go; stay bounded
        self._last_seq[key] = seq

    def _warn_drop(self, reason: str) -> None:
        n = self.dropped_malformed + self.dropped_out_of_range + self.dropped_bad_time
        self.get_logger().warning(f"dropped {reason} ({n} so far)", throttle_duration_sec=1.0)

    def _proprio_limits(self) -> ProprioLimits:
        return ProprioLimits.for_wheels(
            self.controller.robot.wheel_speed_max_radps,
            stale_after_s=self.params.values.proprio_stale_after_s,
        )

    def _sense(self, part: str, values: tuple[float, ...]) -> None:
        reason = self.sensors.update(part, values, time.monotonic())
        if reason is not None:
            c = self.sensors.counters
            n = c.proprio_dropped_nonfinite + c.proprio_dropped_out_of_range
            self.get_logger().warning(
                f"dropped proprioception {reason}; holding the last good value ({n} so far)",
                throttle_duration_sec=1.0,
            )

    def _on_joint_states(self, msg: JointState) -> None:
        s = self.params.values
        try:
            i = msg.name.index(s.left_wheel_joint)
            j = msg.name.index(s.right_wheel_joint)
            wheels = (msg.velocity[i], msg.velocity[j])
        except (ValueError, IndexError):
            self._warn_drop(
                f"joint_states without velocities of {s.left_wheel_joint}/{s.right_wheel_joint}"
            )
            return
        self._sense("wheels", wheels)

    def _on_odom(self, msg: Odometry) -> None:
        t, r = msg.twist.twist, self.controller.robot
        self._sense(
            "wheels",
            wheel_speeds_from_twist(t.linear.x, t.angular.z, r.track_width_m, r.wheel_radius_m),
        )

    def _on_imu(self, msg: Imu) -> None:
        g, a = msg.angular_velocity, msg.linear_acceleration
        self._sense("gyro", (g.x, g.y, g.z))
        self._sense("accel", (a.x, a.y, a.z))

    def _on_episode(self, msg: UInt32) -> None:
        self.controller.reset()
        self.events.take()  # events of the old episode must not leak into the new one
        self.gate.reset()
        if self.adaptive is not None:
            self._step_events.clear()
            self.adaptive.reset(self.params.values.spiking_ratio)
        self.resets += 1
        self.get_logger().info(f"episode {msg.data}: recurrent state reset")

    def _on_reset(self, _request, response):
        self.controller.reset()
        self.resets += 1
        response.success, response.message = True, "recurrent state cleared"
        self.get_logger().info("reset service: recurrent state cleared")
        return response

    # -- the control step ----------------------------------------------------------------
    def _control_step(self) -> None:
        s = self.params.values
        frame, newest_us, n_events = self.events.take()
        held = self.sensors.current(time.monotonic())
        proprio = self.controller.proprio(held["wheels"], held["gyro"], held["accel"])
        out = self.controller.step(frame, proprio)
        if out.fault is not None:
            self.get_logger().error(
                f"{out.fault} ({self.controller.nonfinite_actions} so far)",
                throttle_duration_sec=1.0,
            )
        cmd = self._cmd_msg
        cmd.header.frame_id = s.frame_id
        if newest_us is not None:
            cmd.header.stamp.sec, cmd.header.stamp.nanosec = us_to_stamp(newest_us)
        else:  # no input at all since the last step
            cmd.header.stamp = self.get_clock().now().to_msg()
        cmd.twist.linear.x, cmd.twist.angular.z = out.linear_mps, out.angular_rps
        self._cmd.publish(cmd)
        # everything below runs after the command is out (with one executor, before the
        # actuator's callback): keep it small; the status dict is built only when published
        self.steps += 1
        self._latencies.append(out.latency_s)
        if len(self._latencies) > 1000:
            del self._latencies[:500]
        self._last = (out, newest_us, n_events)
        if self.adaptive is not None:  # its decision applies from the next step on
            self._govern(out)
        if self.steps % s.status_every_steps == 0:
            status = self.last_step
            status["online_plasticity"] = self.controller.plasticity
            status.update(self.controller.weight_norms())
            self._status.publish(String(data=json.dumps(status)))

    @property
    def last_step(self) -> dict:
        """What ``~/status`` reports about the last step (empty before the first)."""
        if self._last is None:
            return {}
        out, newest_us, n_events = self._last
        status = {
            "step": self.steps,
            "stamp_us": newest_us,
            "spiking_ratio": out.spiking_ratio,
            "events": n_events,
            "linear_mps": out.linear_mps,
            "angular_rps": out.angular_rps,
            "step_latency_ms": out.latency_s * 1e3,
            "resets": self.resets,
            "ratio_changes": self.ratio_changes,
            **(self.adaptive.status() if self.adaptive is not None else {}),
            **self._fault_counters(),
        }
        if out.cost is not None:
            status.update(
                synops=out.cost.synops,
                macs=out.cost.macs,
                energy_pj=out.cost.energy_pj,
                firing_rate=out.cost.firing_rate,
            )
        return status

    # -- the ratio governor ----------------------------------------------------------------
    def _make_governor(self, s: PolicySettings) -> AdaptiveRatio | None:
        """Load the policy's ratio profile (if any) and, unless ``ratio_mode`` is fixed, the
        governor; fixed mode pays nothing per step (no estimates)."""
        path = s.ratio_profile or str(profile_path_for(resolve_checkpoint(s.checkpoint)))
        self._profile = None
        self._profile_path = path
        if s.ratio_profile or os.path.exists(path):
            self._profile = load_profile(path)
        elif s.ratio_mode != "fixed":
            raise ValueError(
                f"ratio_mode {s.ratio_mode} needs the policy's ratio profile; none at "
                f"{path} (write one with hsc profile, or set ratio_profile)"
            )
        return self._governor_for(s) if s.ratio_mode != "fixed" else None

    def _governor_for(self, s: PolicySettings) -> AdaptiveRatio:
        if self._profile is None:
            raise ValueError(f"ratio_mode {s.ratio_mode} needs a ratio profile for this policy")
        if self.controller.fixed_ratio is not None:
            raise ValueError("this policy's core runs at one ratio: nothing to govern")
        adaptive = AdaptiveRatio(
            self.controller,
            self._profile,
            s.ratio_mode,
            rate_hz=s.rate_hz,
            energy_budget_nj=s.energy_budget_nj or None,
            latency_budget_ms=s.latency_budget_ms or None,
        )
        self.get_logger().info(f"ratio governor: {s.ratio_mode}, profile {self._profile_path}")
        return adaptive

    def _govern(self, out) -> None:
        ev = self._step_events
        events = empty_events() if not ev else ev[0] if len(ev) == 1 else np.concatenate(ev)
        self._step_events = []
        decision = self.adaptive.after_step(events, out)
        if decision.switched:
            self.get_logger().info(f"ratio governor: {decision.reason}")

    def _set_governor(self, _value: object) -> None:
        s = self.params.values
        if s.ratio_mode == "fixed":
            if self.adaptive is not None:
                self.get_logger().info("ratio governor off (ratio_mode fixed)")
            self.adaptive = None
            return
        if self.adaptive is None:
            self.adaptive = self._governor_for(s)  # ValueError: the change is rejected
            self._step_events = []
            return
        energy, latency = s.energy_budget_nj or None, s.latency_budget_ms or None
        self.adaptive.configure(s.ratio_mode, energy, latency)
        self.get_logger().info(
            f"ratio governor: mode {s.ratio_mode} (budget: energy {energy} nJ, "
            f"latency {latency} ms)"
        )

    # -- parameter changes ---------------------------------------------------------------
    def _set_ratio(self, value: float) -> None:
        old = self.controller.spiking_ratio
        t0 = time.perf_counter()
        self.controller.set_ratio(value)
        if self.adaptive is not None and self.adaptive.governor.mode != "fixed":
            self.adaptive.governor.set_manual(value)  # a person decided: governor off
            self.get_logger().info("manual spiking_ratio: ratio governor now fixed")
        self.ratio_changes += 1
        now = time.monotonic()
        if now - self._ratio_logged_s >= 1.0:  # a burst logs once a second, not per request
            self._ratio_logged_s = now  # (checked here: rclpy's throttle inspects the caller
            self.get_logger().info(  # frame before throttling, 0.5 ms a call)
                f"spiking_ratio {old:g} → {value:g} from the next step "
                f"(masks only, {1e6 * (time.perf_counter() - t0):.0f} µs; state kept; "
                f"{self.ratio_changes} changes so far)"
            )

    def _set_plasticity_rate(self, rate: float) -> None:
        self.controller.set_plasticity(self.controller.plasticity, rate)
        self.get_logger().info(f"online plasticity rate × {rate:g}")

    def _set_plasticity(self, on: bool) -> None:
        self.controller.set_plasticity(on)  # ValueError (rejected) for a non-HRSNN policy
        norms = self.controller.weight_norms()
        self.get_logger().info(
            f"online plasticity {'on' if on else 'off'} from the next step "
            f"(recurrent weight norm {norms.get('w_rec_norm', float('nan')):.4g})"
        )

    def _set_robot(self, _value: float) -> None:
        self.controller.set_robot_overrides(self.params.values.robot_overrides())
        self.sensors.limits = self._proprio_limits()

    def _fault_counters(self) -> dict[str, int]:
        """Every drop and fault counter, for ``~/status`` and ``/diagnostics``."""
        return {
            "packets_in": self.packets_in,
            "packets_coalesced": self.gate.coalesced,
            "dropped_malformed": self.dropped_malformed,
            "dropped_out_of_range": self.dropped_out_of_range,
            "dropped_bad_time": self.dropped_bad_time,
            "dropped_overflow_events": self.dropped_overflow_events,
            "dropped_in_transport": self.dropped_in_transport,
            "lost_in_middleware": self.lost_in_middleware,
            **self.sensors.counters.as_dict(),
            "nonfinite_inputs": self.controller.nonfinite_inputs,
            "nonfinite_actions": self.controller.nonfinite_actions,
        }

    def _publish_diagnostics(self) -> None:
        lat = sorted(self._latencies)
        counters = self._fault_counters()
        drops = self.dropped_malformed + self.dropped_out_of_range + self.dropped_bad_time
        proprio = counters["proprio_dropped_nonfinite"] + counters["proprio_dropped_out_of_range"]
        faults = self.controller.nonfinite_actions
        level, message = DiagnosticStatus.OK, "stepping" if self.steps else "waiting for events"
        if drops or proprio or faults:
            level = DiagnosticStatus.WARN
            message = f"{drops} input packets and {proprio} proprio readings dropped"
            if faults:
                message += f", {faults} non-finite actions replaced by a zero command"
        if faults > self._faults_reported:  # an error while it recurs, a warning afterwards
            level = DiagnosticStatus.ERROR
        self._faults_reported = faults
        values = {
            "spiking_ratio": f"{self.controller.spiking_ratio:g}",
            "online_plasticity": str(self.controller.plasticity).lower(),
            "backend": self.controller.backend,
            "steps": self.steps,
            "resets": self.resets,
            **counters,
            "step_latency_p50_ms": f"{lat[len(lat) // 2] * 1e3:.3f}" if lat else "none",
            "step_latency_max_ms": f"{lat[-1] * 1e3:.3f}" if lat else "none",
        }
        last = self.last_step
        for k in ("synops", "energy_pj"):
            if k in last:
                values[f"{k}_per_step"] = f"{last[k]:.0f}"
        if self.adaptive is not None:  # the governor: what it sees and what it did
            c, g = self.adaptive.estimator.conditions, self.adaptive.governor
            values.update(
                ratio_mode=g.mode,
                condition=self.adaptive.label,
                noise_rate_hz_per_px=f"{c.noise_rate_hz_per_px:.2f}",
                flicker_hz=f"{c.flicker_hz:.2f}",
                flicker_strength=f"{c.flicker_strength:.2f}",
                event_rate_hz=f"{c.event_rate_hz:.0f}",
                governor_switches=g.counters.switches,
                last_switch=g.last_switch_reason or "none",
            )
        for k, v in self.controller.weight_norms().items():
            values[k] = f"{v:.6g}"
        publish_status(self, self._diagnostics, level, "policy", message, values)


def main(args: list[str] | None = None) -> int:
    from hybrid_snn_control.ros.runner import run_nodes

    return run_nodes([PolicyNode], args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())

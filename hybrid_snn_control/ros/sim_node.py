"""sim_node: a MuJoCo rover task (``hybrid_snn_control/Pursuit-v0``, ``Navigation-v0``) behind ROS.

Every ``1 / (control_hz · real_time_factor)`` s of wall time (steady clock) it applies
the newest ``cmd_vel`` (``TwistStamped`` or ``Twist``; v / 0.6 m/s and ω / 4 rad/s are
the env's normalized action) and steps the env once, then publishes, all stamped with
the sim clock:

* ``joint_states`` (wheel velocities ``left_wheel`` / ``right_wheel``, rad/s), ``imu``
  (gyro rad/s, accelerometer m/s²), ``odom`` (``nav_msgs/Odometry``: ground-truth pose,
  twist from the wheel speeds as a diff-drive controller computes it);
* ``/clock`` (for ``use_sim_time``; monotonic across episodes);
* ``events``: the env's own event camera output of the step as one PointCloud2 packet,
  empty packets included (``publish_events``), so a policy sees exactly what it was
  trained on; and/or ``image`` (rgb8 frames for event_camera_node's ``sim`` source,
  ``publish_images``);
* ``episode`` (``std_msgs/UInt32``, reliable) *before* the first outputs of each episode:
  policy_node resets its state on it;
* ``~/metrics`` (``std_msgs/String`` JSON) at each episode end: the env's episode metrics
  (``normalized_score`` …), commands that arrived late, loop latency.

``lockstep: true`` makes each step wait (up to ``lockstep_timeout_s``) for the command
answering the previous one, so the loop reproduces a lock-step gym rollout exactly.
Service ``~/reset_episode`` (``std_srvs/Trigger``) starts the next episode now.  A command
is *late* when the newest ``cmd_vel`` is stamped before the events of the previous step
(actuator ``stamp_source: command`` passes the policy's event stamp through): that step
then ran on an older command than a lock-step gym rollout would.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, Imu, JointState, PointCloud2
from std_msgs.msg import String, UInt32
from std_srvs.srv import Trigger

from hybrid_snn_control.events.arrays import empty_events
from hybrid_snn_control.events.codecs import us_to_stamp
from hybrid_snn_control.ros.actuator_node import COMMAND_QOS, ESTOP_QOS
from hybrid_snn_control.ros.diagnostics import QUIET_PUB
from hybrid_snn_control.ros.event_msgs import events_to_pointcloud2, stamp_us_of
from hybrid_snn_control.ros.params import ParameterBinding
from hybrid_snn_control.ros.settings import SimSettings

ENV_IDS = {
    "pursuit": "hybrid_snn_control/Pursuit-v0",
    "navigation": "hybrid_snn_control/Navigation-v0",
}
CLOCK_QOS = 10


def make_env(s: SimSettings):
    """The gym env ``s`` describes (also used for the direct rollout the demo compares to)."""
    import gymnasium as gym

    import hybrid_snn_control.sim  # noqa: F401  (registers the ids; sets MUJOCO_GL)

    env = gym.make(
        ENV_IDS[s.task],
        camera_width=s.camera_width,
        camera_height=s.camera_height,
        control_hz=s.control_hz,
        episode_s=s.episode_s,
        shift=None if s.shift == "nominal" else s.shift,
        randomize=s.randomize,
    )
    env.unwrapped.set_live_shift(live_shift_plan(s))
    return env


def live_shift_plan(s: SimSettings) -> dict[str, Any] | None:
    """The env's mid-episode shift plan from the ``live_shift*`` parameters."""
    if not s.live_shift:
        return None
    return {"shift": s.live_shift, "at_s": s.live_shift_at_s, "ramp_s": s.live_shift_ramp_s}


class SimNode(Node):
    """Steps one sim env in real time (× ``real_time_factor``) on the newest ``cmd_vel``."""

    def __init__(self, node_name: str = "sim_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.params = ParameterBinding(self, SimSettings)
        s = self.params.values
        self.env = make_env(s)
        self.sim = self.env.unwrapped
        self._plan_live_shift()
        for name in ("live_shift", "live_shift_at_s", "live_shift_ramp_s"):
            self.params.on_change(name, self._plan_live_shift)
        from hybrid_snn_control.sim.rover_env import (
            OMEGA_MAX_RADPS,
            TRACK_WIDTH_M,
            V_MAX_MPS,
            WHEEL_RADIUS_M,
        )

        self._v_max, self._w_max = V_MAX_MPS, OMEGA_MAX_RADPS
        self._track, self._radius = TRACK_WIDTH_M, WHEEL_RADIUS_M
        self._period_us = round(1e6 / s.control_hz)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        cmd_type = TwistStamped if s.cmd_type == "twist_stamped" else Twist
        self.create_subscription(cmd_type, "cmd_vel", self._on_cmd_vel, COMMAND_QOS)
        self._joints = self.create_publisher(
            JointState, "joint_states", qos_profile_sensor_data, **QUIET_PUB
        )
        self._imu = self.create_publisher(Imu, "imu", qos_profile_sensor_data, **QUIET_PUB)
        self._odom = self.create_publisher(Odometry, "odom", 10, **QUIET_PUB)
        self._clock = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS, **QUIET_PUB)
        self._episode = self.create_publisher(UInt32, "episode", ESTOP_QOS)
        self._metrics = self.create_publisher(String, "~/metrics", ESTOP_QOS, **QUIET_PUB)
        self._events = (
            self.create_publisher(PointCloud2, "events", qos_profile_sensor_data, **QUIET_PUB)
            if s.publish_events
            else None
        )
        self._image = (
            self.create_publisher(Image, "image", qos_profile_sensor_data, **QUIET_PUB)
            if s.publish_images
            else None
        )
        self.create_service(Trigger, "~/reset_episode", self._on_reset_episode)

        self.action = np.zeros(2)
        self._cmd_stamp_us: int | None = None
        self.episode = -1
        self.episodes: list[dict[str, Any]] = []  # finished episodes' metrics
        self.trajectory: list[tuple[float, float, float, float, float]] = []  # t, x, y, tx, ty
        self.loop_latency_s: list[float] = []
        self._sent_wall: dict[int, float] = {}
        self._offset_us = 0
        self._late = self._steps = 0
        self._reset_pending = False
        self._start_episode()
        self._period_s = 1.0 / (s.control_hz * s.real_time_factor)
        self._last_step_s = time.monotonic()
        if s.lockstep and s.cmd_type != "twist_stamped":
            raise ValueError("lockstep needs cmd_type twist_stamped (commands carry their stamp)")
        # lockstep polls at 5x the step rate so a step follows its command promptly
        poll_s = self._period_s / 5 if s.lockstep else self._period_s
        self.create_timer(poll_s, self._tick, clock=self._steady)
        self.get_logger().info(
            f"{ENV_IDS[s.task]} ({s.shift}, seed {s.seed}) {s.camera_width}x{s.camera_height} "
            f"at {s.control_hz:g} Hz × {s.real_time_factor:g} real time; "
            f"events {'on' if s.publish_events else 'off'}, images "
            f"{'on' if s.publish_images else 'off'}"
        )

    # -- inputs --------------------------------------------------------------------------
    def _on_cmd_vel(self, msg) -> None:
        twist = msg.twist if isinstance(msg, TwistStamped) else msg
        v, w = twist.linear.x, twist.angular.z
        if not (math.isfinite(v) and math.isfinite(w)):
            self.get_logger().warning("non-finite cmd_vel ignored", throttle_duration_sec=1.0)
            return
        self.action = np.clip([v / self._v_max, w / self._w_max], -1.0, 1.0)
        if isinstance(msg, TwistStamped):
            self._cmd_stamp_us = stamp_us_of(msg)
            sent = self._sent_wall.pop(self._cmd_stamp_us, None)
            if sent is not None:
                self.loop_latency_s.append(time.monotonic() - sent)

    def _on_reset_episode(self, _request, response):
        if not self._reset_pending:  # else the episode has just ended and been reported
            self._finish_episode(reset_by_service=True)
        self._reset_pending = False
        self._start_episode()
        response.success, response.message = True, f"episode {self.episode} started"
        return response

    def _plan_live_shift(self, _value: object = None) -> None:
        """The env starts the shift itself at the planned time (every episode, seeded)."""
        plan = live_shift_plan(self.params.values)
        # set mid-run, the episode under way takes it too, from a stream of its own seed
        self.sim.set_live_shift(plan, seed=[self._seed, 1] if hasattr(self, "episode") else None)
        self.get_logger().info(
            f"live shift {plan['shift']} at {plan['at_s']:g} s of every episode "
            f"(ramp {plan['ramp_s']:g} s)"
            if plan
            else "no live shift"
        )

    # -- stepping ------------------------------------------------------------------------
    def now_us(self) -> int:
        return self._offset_us + round(self.sim.data.time * 1e6)

    def _start_episode(self) -> None:
        s = self.params.values
        if self.episode >= 0:  # the sim clock goes on across episodes (env time restarts at 0)
            self._offset_us = self.now_us() + self._period_us
        self.episode += 1
        self._steps = self._late = 0
        self._seed = s.seed + self.episode
        self.env.reset(seed=self._seed)
        self.action = np.zeros(2)
        self._episode.publish(UInt32(data=self.episode))
        self._publish_step(empty_events())  # the reset observation has no events

    def _tick(self) -> None:
        s = self.params.values
        fresh = self._cmd_stamp_us is not None and self._cmd_stamp_us >= self._expect_us
        waited = time.monotonic() - self._last_step_s
        if s.lockstep and waited < self._period_s * 0.999:
            return
        if self._reset_pending:
            # the reset gets a tick of its own: the last observation of the old episode is
            # then processed (and the policy's answer to it ignored) before the `episode`
            # message and the new episode's first observation go out
            self._reset_pending = False
            self._last_step_s = time.monotonic()
            self._start_episode()
            return
        if s.lockstep and not fresh and waited < s.lockstep_timeout_s:
            return
        self._last_step_s = time.monotonic()
        if not fresh:
            self._late += 1
        shifted = self.sim._at_shift is not None
        _, _, terminated, truncated, info = self.env.step(self.action.astype(np.float32))
        if not shifted and self.sim._at_shift is not None:
            live = self.sim.live_shift_plan or {}
            self.get_logger().info(
                f"episode {self.episode}: live shift {live.get('shift')} started at step "
                f"{self.sim._at_shift[1]}: "
                + ", ".join(f"{k} {self.sim.world[k]:.4g}" for k in self.sim._shift_keys())
            )
        self._steps += 1
        events = self.sim.last_events
        if events is None:
            events = empty_events()
        else:
            events = events.copy()
            events["t"] += self._offset_us
        self._publish_step(events)
        if terminated or truncated:
            self._finish_episode(metrics=info.get("episode_metrics", {}))
            self._reset_pending = True

    def _finish_episode(
        self, metrics: dict[str, Any] | None = None, reset_by_service: bool = False
    ) -> None:
        lat = sorted(self.loop_latency_s[-self._steps :]) if self._steps else []
        record = {
            "episode": self.episode,
            "seed": self._seed,
            "steps": self._steps,
            "late_commands": self._late,
            "reset_by_service": reset_by_service,
            **{k: float(v) for k, v in (metrics or {}).items() if not k.startswith("_")},
        }
        if lat:
            record["loop_latency_p50_ms"] = lat[len(lat) // 2] * 1e3
        self.episodes.append(record)
        self._metrics.publish(String(data=json.dumps(record)))
        self.get_logger().info(f"episode {self.episode} done: {record}")

    def _publish_step(self, events: np.ndarray) -> None:
        s = self.params.values
        t_us = self.now_us()
        stamp = us_to_stamp(t_us)
        data = self.sim.data.sensordata
        left = float(data[self.sim._wheel_vel_adr[0]])
        right = float(data[self.sim._wheel_vel_adr[1]])
        js = JointState(name=["left_wheel", "right_wheel"], velocity=[left, right])
        js.header.stamp.sec, js.header.stamp.nanosec = stamp
        self._joints.publish(js)
        imu = Imu()
        imu.header.stamp.sec, imu.header.stamp.nanosec = stamp
        imu.header.frame_id = "base_link"
        g, a = self.sim._gyro_adr, self.sim._accel_adr
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = map(
            float, data[g : g + 3]
        )
        (
            imu.linear_acceleration.x,
            imu.linear_acceleration.y,
            imu.linear_acceleration.z,
        ) = map(float, data[a : a + 3])
        imu.orientation_covariance[0] = -1.0  # no orientation estimate
        self._imu.publish(imu)
        self._publish_odom(stamp, left, right, s.frame_id)
        clock = ClockMsg()
        clock.clock.sec, clock.clock.nanosec = stamp
        self._clock.publish(clock)
        # the stamp a fresh command for this step carries: its newest event (or the step)
        self._expect_us = int(events["t"].max()) if events.size else t_us
        self._sent_wall[self._expect_us] = time.monotonic()
        if len(self._sent_wall) > 100:
            self._sent_wall.pop(next(iter(self._sent_wall)))
        if self._events is not None:
            msg = events_to_pointcloud2(events, s.camera_frame_id)
            if not events.size:
                msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
            self._events.publish(msg)
        if self._image is not None and self.sim.camera_frame is not None:
            frame = np.ascontiguousarray(self.sim.camera_frame)
            img = Image(
                height=frame.shape[0],
                width=frame.shape[1],
                encoding="rgb8",
                step=frame.shape[1] * 3,
                data=frame.tobytes(),
            )
            img.header.stamp.sec, img.header.stamp.nanosec = stamp
            img.header.frame_id = s.camera_frame_id
            self._image.publish(img)
        self._record_pose(t_us)

    def _publish_odom(self, stamp, left: float, right: float, frame_id: str) -> None:
        x, y, yaw = self.sim.rover_pose()
        odom = Odometry()
        odom.header.stamp.sec, odom.header.stamp.nanosec = stamp
        odom.header.frame_id, odom.child_frame_id = frame_id, "base_link"
        odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
        odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = (
            math.sin(yaw / 2),
            math.cos(yaw / 2),
        )
        odom.twist.twist.linear.x = self._radius * (left + right) / 2
        odom.twist.twist.angular.z = self._radius * (right - left) / self._track
        self._odom.publish(odom)

    def _record_pose(self, t_us: int) -> None:
        x, y, _ = self.sim.rover_pose()
        tx = ty = math.nan
        if hasattr(self.sim, "target_state"):
            (tx, ty), _ = self.sim.target_state()
        self.trajectory.append((t_us * 1e-6, x, y, float(tx), float(ty)))
        if len(self.trajectory) > 200_000:
            del self.trajectory[:100_000]

    def destroy_node(self) -> None:
        self.env.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    from hybrid_snn_control.ros.runner import run_nodes

    return run_nodes([SimNode], args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())

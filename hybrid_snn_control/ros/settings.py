"""Settings dataclasses of the nodes: plain Python, no rclpy.

One dataclass per node, registered in :data:`hybrid_snn_control.node_params.SECTIONS`
under the node's name.  ``hsc config check`` validates ``config/*.yaml`` against them
without importing rclpy; the nodes turn them into ROS parameters with
:class:`hybrid_snn_control.ros.params.ParameterBinding` (descriptions, ranges, read-only
flags from the field metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hybrid_snn_control.config import param
from hybrid_snn_control.events.simulator import SimulatorParams

__all__ = ["ActuatorSettings", "EventCameraSettings", "PolicySettings", "SimSettings"]


@dataclass
class ActuatorSettings:
    """Parameters of ``actuator_node`` (section ``actuator_node`` of ``config/*.yaml``)."""

    output_type: Literal["twist_stamped", "twist", "wheel_velocities"] = field(
        default="twist_stamped",
        metadata=param(
            description="cmd_vel message: TwistStamped (Jazzy+ diff_drive_controller), "
            "Twist, or Float64MultiArray wheel speeds in rad/s (left wheels, then right)",
            read_only=True,
        ),
    )
    frame_id: str = field(
        default="base_link", metadata=param(description="header.frame_id of TwistStamped output")
    )
    stamp_source: Literal["now", "command"] = field(
        default="now",
        metadata=param(
            description="TwistStamped stamp: 'now' (publish time, what controllers expect) or "
            "'command' (the command's stamp, to trace latency end to end)"
        ),
    )
    cmd_timeout: float = field(
        default=0.5,
        metadata=param(
            range=(0.01, 10.0),
            description="watchdog, s: no command for this long → zero (armed by the first)",
        ),
    )
    rate_hz: float = field(
        default=50.0,
        metadata=param(
            range=(1.0, 1000.0),
            description="watchdog check / ramp / zero-hold rate, Hz",
            read_only=True,
        ),
    )
    max_linear_mps: float = field(
        default=0.5, metadata=param(range=(0.0, 100.0), description="|linear.x| limit, m/s")
    )
    max_lateral_mps: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 100.0), description="|linear.y| limit, m/s (0: differential drive)"
        ),
    )
    max_angular_rps: float = field(
        default=2.0, metadata=param(range=(0.0, 100.0), description="|angular.z| limit, rad/s")
    )
    max_linear_accel_mps2: float = field(
        default=2.0,
        metadata=param(
            range=(0.0, 1000.0), description="linear acceleration limit, m/s² (0: none)"
        ),
    )
    max_angular_accel_rps2: float = field(
        default=8.0,
        metadata=param(
            range=(0.0, 1000.0), description="angular acceleration limit, rad/s² (0: none)"
        ),
    )
    wheel_separation_m: float = field(
        default=0.3,
        metadata=param(range=(0.001, 100.0), description="wheel_velocities output: track width, m"),
    )
    wheel_radius_m: float = field(
        default=0.05,
        metadata=param(range=(0.001, 10.0), description="wheel_velocities output: wheel radius, m"),
    )
    wheels_per_side: int = field(
        default=1,
        metadata=param(range=(1, 8), description="wheel_velocities output: joints per side"),
    )
    diagnostics_period_s: float = field(
        default=1.0,
        metadata=param(range=(0.05, 60.0), description="/diagnostics period, s", read_only=True),
    )


@dataclass
class EventCameraSettings:
    """Parameters of ``event_camera_node`` (section ``event_camera_node``)."""

    source: Literal["sim", "pointcloud2", "event_packet"] = field(
        default="sim",
        metadata=param(
            description="sim: sensor_msgs/Image on 'image' through the event simulator; "
            "pointcloud2: PointCloud2 events on 'events_in'; event_packet: a real driver's "
            "event_camera_msgs/EventPacket on 'event_packet' (mono, evt3)",
            read_only=True,
        ),
    )
    width: int = field(
        default=64, metadata=param(range=(1, 65535), description="sensor width, px", read_only=True)
    )
    height: int = field(
        default=64,
        metadata=param(range=(1, 65535), description="sensor height, px", read_only=True),
    )
    packet_ms: float = field(
        default=5.0,
        metadata=param(
            range=(0.0, 1000.0),
            description="publish buffered events every packet_ms (0: as each input arrives)",
            read_only=True,
        ),
    )
    max_buffered_events: int = field(
        default=1_000_000,
        metadata=param(
            range=(1, 100_000_000),
            description="buffer bound; under a flood the oldest events are dropped",
        ),
    )
    frame_id: str = field(
        default="event_camera", metadata=param(description="header.frame_id of the packets")
    )
    seed: int = field(
        default=0,
        metadata=param(range=(0, 2**31 - 1), description="sim source: threshold mismatch seed"),
    )
    simulator: SimulatorParams = field(default_factory=SimulatorParams)
    diagnostics_period_s: float = field(
        default=1.0,
        metadata=param(range=(0.05, 60.0), description="/diagnostics period, s", read_only=True),
    )


#: policy_node parameters that override one RobotSpec value of the policy when non-zero
ROBOT_PARAMETERS = (
    "wheel_speed_max_radps",
    "track_width_m",
    "wheel_radius_m",
    "max_linear_mps",
    "max_angular_rps",
)


@dataclass
class PolicySettings:
    """Parameters of ``policy_node`` (section ``policy_node``)."""

    checkpoint: str = field(
        default="",
        metadata=param(
            description="policy file (.safetensors checkpoint, or an exported .pt/.onnx for "
            "those backends); empty: the shipped pursuit policy",
            read_only=True,
        ),
    )
    spiking_ratio: float = field(
        default=0.5,
        metadata=param(
            range=(0.0, 1.0),
            description="fraction of spiking units (hot swap: masks only, from the next "
            "control step, state of kept units kept)",
        ),
    )
    online_plasticity: bool = field(
        default=False,
        metadata=param(
            description="HRSNN-core policies: STDP keeps adapting the recurrent synapses from "
            "the live events (readout fixed); weight norms in ~/status. Other policies reject "
            "true"
        ),
    )
    online_plasticity_rate: float = field(
        default=1.0,
        metadata=param(
            range=(0.0, 1000.0),
            description="online_plasticity: scale of the STDP learning rates (1 = as in the "
            "STDP training phase)",
        ),
    )
    rate_hz: float = field(
        default=50.0,
        metadata=param(
            range=(1.0, 1000.0),
            description="control rate (trigger: timer); the policy was trained at the sim's "
            "control rate (50 Hz)",
            read_only=True,
        ),
    )
    trigger: Literal["timer", "events"] = field(
        default="timer",
        metadata=param(
            description="timer: step every 1/rate_hz on the events since the last step; "
            "events: step on an incoming event packet (a simulator or driver that sends one "
            "packet per control period; lowest latency), at most rate_hz steps per second of "
            "packet time (a faster stream is coalesced, its events kept)",
            read_only=True,
        ),
    )
    backend: Literal["auto", "torch", "torchscript", "onnxruntime"] = field(
        default="auto",
        metadata=param(
            description="auto: the exported step graph (onnxruntime when installed, else "
            "torchscript; torch for HRSNN cores and online_plasticity); torch: eager. Every "
            "backend reports each step's cost (graphs: from their spike counts)",
            read_only=True,
        ),
    )
    device: Literal["cpu", "cuda"] = field(
        default="cpu", metadata=param(description="torch device", read_only=True)
    )
    threads: int = field(
        default=1,
        metadata=param(range=(1, 64), description="intra-op threads", read_only=True),
    )
    proprio_source: Literal["joint_states", "odom", "none"] = field(
        default="joint_states",
        metadata=param(
            description="wheel speeds from sensor_msgs/JointState on 'joint_states' (names "
            "left_wheel_joint / right_wheel_joint), from nav_msgs/Odometry on 'odom' (diff-drive "
            "inverse kinematics), or none (zeros); IMU from sensor_msgs/Imu on 'imu' always",
            read_only=True,
        ),
    )
    left_wheel_joint: str = field(
        default="left_wheel", metadata=param(description="JointState name of the left wheel")
    )
    right_wheel_joint: str = field(
        default="right_wheel", metadata=param(description="JointState name of the right wheel")
    )
    # Robot constants: 0 = the value in the policy's RobotSpec (stored with the policy);
    # anything else overrides it (a robot other than the one the policy was trained for).
    wheel_speed_max_radps: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1000.0), description="wheel speed normalization, rad/s (0: policy's)"
        ),
    )
    track_width_m: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 10.0), description="proprio_source odom: track width, m (0: policy's)"
        ),
    )
    wheel_radius_m: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 10.0), description="proprio_source odom: wheel radius, m (0: policy's)"
        ),
    )
    max_linear_mps: float = field(
        default=0.0,
        metadata=param(range=(0.0, 100.0), description="linear.x at action +1, m/s (0: policy's)"),
    )
    max_angular_rps: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 100.0), description="angular.z at action +1, rad/s (0: policy's)"
        ),
    )

    def robot_overrides(self) -> dict[str, float]:
        """The RobotSpec values these parameters override (the non-zero ones)."""
        return {n: getattr(self, n) for n in ROBOT_PARAMETERS if getattr(self, n) > 0}

    ratio_mode: Literal["fixed", "budget", "adaptive"] = field(
        default="fixed",
        metadata=param(
            description="fixed: spiking_ratio as set; budget: the best profiled ratio within "
            "energy_budget_nj / latency_budget_ms; adaptive: the best profiled ratio for the "
            "condition detected from the events (nominal, noisy_sensor, flicker), within the "
            "budget. A manual spiking_ratio set returns the governor to fixed until this is set "
            "again. budget/adaptive need the policy's ratio profile (hsc profile)"
        ),
    )
    ratio_profile: str = field(
        default="",
        metadata=param(
            description="ratio profile JSON (hsc profile); empty: <checkpoint stem>.profile.json "
            "beside the policy file, if there",
            read_only=True,
        ),
    )
    energy_budget_nj: float = field(
        default=0.0,
        metadata=param(range=(0.0, 1e9), description="energy per step budget, nJ (0: none)"),
    )
    latency_budget_ms: float = field(
        default=0.0,
        metadata=param(range=(0.0, 1e6), description="step latency budget, ms (0: none)"),
    )
    max_events_per_packet: int = field(
        default=1_000_000,
        metadata=param(
            range=(1, 2**31 - 1),
            description="events one packet adds to a step at most; a bigger packet is cut to "
            "its newest events before decoding (counted in dropped_overflow_events)",
        ),
    )
    proprio_stale_after_s: float = field(
        default=0.5,
        metadata=param(
            range=(0.0, 60.0),
            description="a held proprio reading (newer ones dropped as NaN / out of range, or "
            "none arriving) stands in for at most this long, then reads as zero",
        ),
    )
    frame_id: str = field(default="base_link", metadata=param(description="header.frame_id of cmd"))
    status_every_steps: int = field(
        default=1,
        metadata=param(range=(1, 100000), description="publish ~/status every N steps"),
    )
    diagnostics_period_s: float = field(
        default=1.0,
        metadata=param(range=(0.05, 60.0), description="/diagnostics period, s", read_only=True),
    )


@dataclass
class SimSettings:
    """Parameters of ``sim_node`` (section ``sim_node``)."""

    task: Literal["pursuit", "navigation"] = field(
        default="pursuit", metadata=param(description="sim task", read_only=True)
    )
    seed: int = field(
        default=0,
        metadata=param(
            range=(0, 2**62), description="world seed of the first episode (+1 per episode)"
        ),
    )
    shift: str = field(
        default="nominal",
        metadata=param(description="held-out shift (nominal, dim, flicker, ...)", read_only=True),
    )
    live_shift: Literal["", "dim", "flicker", "noisy_sensor", "slippery", "laggy", "heavy"] = field(
        default="",
        metadata=param(
            description="a shift that starts in the middle of every episode at "
            "live_shift_at_s (empty: none); set live, it applies from the next step when "
            "the episode is already past live_shift_at_s (values drawn under the seed)"
        ),
    )
    live_shift_at_s: float = field(
        default=10.0,
        metadata=param(range=(0.0, 3600.0), description="episode time the live shift starts, s"),
    )
    live_shift_ramp_s: float = field(
        default=0.0,
        metadata=param(range=(0.0, 3600.0), description="live shift: linear ramp time, s"),
    )
    randomize: bool = field(
        default=True, metadata=param(description="randomize worlds per episode", read_only=True)
    )
    camera_width: int = field(
        default=32, metadata=param(range=(8, 1024), description="camera / event sensor width")
    )
    camera_height: int = field(
        default=32, metadata=param(range=(8, 1024), description="camera / event sensor height")
    )
    control_hz: float = field(
        default=50.0, metadata=param(range=(1.0, 500.0), description="env control rate, Hz")
    )
    episode_s: float = field(
        default=20.0, metadata=param(range=(0.1, 3600.0), description="episode length, s")
    )
    real_time_factor: float = field(
        default=1.0,
        metadata=param(
            range=(0.01, 100.0), description="sim seconds per wall second (steady clock)"
        ),
    )
    cmd_type: Literal["twist_stamped", "twist"] = field(
        default="twist_stamped",
        metadata=param(description="cmd_vel message type", read_only=True),
    )
    lockstep: bool = field(
        default=False,
        metadata=param(
            description="wait for the command answering the previous step (TwistStamped "
            "stamped with its events, actuator stamp_source: command) before stepping, up to "
            "lockstep_timeout_s: reproduces a lock-step gym rollout whatever the loop latency; "
            "the sim then falls behind real time when the loop is slow",
            read_only=True,
        ),
    )
    lockstep_timeout_s: float = field(
        default=0.5,
        metadata=param(range=(0.001, 60.0), description="lockstep: step anyway after this, s"),
    )
    publish_events: bool = field(
        default=True,
        metadata=param(
            description="publish the env's own events (one PointCloud2 per control step, "
            "empty ones too) on 'events'",
            read_only=True,
        ),
    )
    publish_images: bool = field(
        default=False,
        metadata=param(
            description="publish the camera frames (rgb8) on 'image' for event_camera_node",
            read_only=True,
        ),
    )
    frame_id: str = field(default="odom", metadata=param(description="odometry frame"))
    camera_frame_id: str = field(
        default="event_camera", metadata=param(description="camera / events frame")
    )

    def __post_init__(self) -> None:
        if self.task not in ("pursuit", "navigation"):
            raise ValueError(f"task must be pursuit or navigation, got {self.task!r}")

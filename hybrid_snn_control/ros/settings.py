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

__all__ = ["ActuatorSettings", "EventCameraSettings"]


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

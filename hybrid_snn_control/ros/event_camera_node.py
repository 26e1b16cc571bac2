"""event_camera_node: events from a simulator, another node or a real driver → PointCloud2 packets.

``source`` (read-only) picks the input:

* ``sim``: ``sensor_msgs/Image`` on ``image`` → the event simulator (``EventCameraSimulator``;
  frame times from ``header.stamp``; a stamp going backwards, e.g. an episode reset,
  restarts the simulator instead of inventing events);
* ``pointcloud2``: PointCloud2 events (the package layout, or any x/y/t/p layout) on
  ``events_in``;
* ``event_packet``: ``event_camera_msgs/EventPacket`` (``mono``, ``evt3``) from
  metavision_driver / libcaer_driver on ``event_packet``; needs the ``event_camera_msgs``
  package (a ROS install), else the node refuses to start with a clear message.

Publishes ``events`` (PointCloud2, layout in ``events/codecs.py``) every ``packet_ms``
(steady clock) with whatever arrived, sorted by time; nothing when nothing arrived.
Inputs and output use the sensor-data QoS (best effort).  Malformed inputs are dropped,
counted and logged (at most once a second); the buffer is bounded
(:class:`~hybrid_snn_control.robot.event_stream.EventPacketizer`).  Counters go to
``/diagnostics``.
"""

from __future__ import annotations

import sys
from dataclasses import fields

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, PointCloud2

from hybrid_snn_control.events import EventCameraSimulator
from hybrid_snn_control.events.arrays import empty_events
from hybrid_snn_control.events.codecs import DecodeStats, check_times_us
from hybrid_snn_control.events.evt3_stream import Evt3StreamDecoder
from hybrid_snn_control.robot.event_stream import (
    EventPacketizer,
    EventPacketTime,
    decode_event_packet,
)
from hybrid_snn_control.ros.diagnostics import publish_status
from hybrid_snn_control.ros.event_msgs import (
    events_to_pointcloud2,
    image_to_frame,
    pointcloud2_to_events,
    stamp_us_of,
)
from hybrid_snn_control.ros.params import ParameterBinding
from hybrid_snn_control.ros.settings import EventCameraSettings


def _event_packet_type():
    try:
        from event_camera_msgs.msg import EventPacket
    except ImportError:
        raise RuntimeError(
            "source 'event_packet' needs the event_camera_msgs package (apt install "
            "ros-$ROS_DISTRO-event-camera-msgs on a ROS install; it is not on PyPI); "
            "without it, publish events as PointCloud2 and use source 'pointcloud2'"
        ) from None
    return EventPacket


class EventCameraNode(Node):
    """One event source in, fixed-rate PointCloud2 event packets out."""

    def __init__(self, node_name: str = "event_camera_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.params = ParameterBinding(self, EventCameraSettings)
        s = self.params.values
        self.stream = EventPacketizer((s.width, s.height), s.max_buffered_events)
        self.params.on_change("max_buffered_events", self._set_max_buffered)
        self.sim_resets = 0
        self.simulator: EventCameraSimulator | None = None
        self._last_frame_us: int | None = None
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._events = self.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if s.source == "sim":
            self.simulator = EventCameraSimulator(s.width, s.height, s.simulator, seed=s.seed)
            for f in fields(s.simulator):  # any simulator.* change applies from the next frame
                self.params.on_change(f"simulator.{f.name}", self._set_simulator)
            msg_type, topic, callback = Image, "image", self._on_image
        elif s.source == "pointcloud2":
            msg_type, topic, callback = PointCloud2, "events_in", self._on_pointcloud2
        else:
            self._evt3, self._evt3_time = Evt3StreamDecoder(), EventPacketTime()
            msg_type, topic, callback = _event_packet_type(), "event_packet", self._on_event_packet
            self.get_logger().info(f"evt3 decoder backend: {self._evt3.backend}")
        self.lost_in_middleware = 0
        topic = self.create_subscription(
            msg_type,
            topic,
            callback,
            qos_profile_sensor_data,
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_message_lost),
        ).topic_name
        if s.packet_ms > 0:
            self.create_timer(s.packet_ms / 1000.0, self._publish_packet, clock=self._steady)
        self.create_timer(s.diagnostics_period_s, self._publish_diagnostics, clock=self._steady)
        cadence = f"every {s.packet_ms:g} ms" if s.packet_ms > 0 else "as inputs arrive"
        self.get_logger().info(
            f"source {s.source} on {topic}, sensor {s.width}x{s.height} → "
            f"{self._events.topic_name} {cadence} (buffer ≤ {s.max_buffered_events} events)"
        )

    # -- inputs ------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        t_us = stamp_us_of(msg) or self.get_clock().now().nanoseconds // 1000
        try:
            check_times_us(empty_events(), t_us)  # the events' times come from this stamp
            frame = image_to_frame(msg)
            if self._last_frame_us is not None and t_us <= self._last_frame_us:
                self.simulator.reset()  # time went back (episode reset, bag loop)
                self.sim_resets += 1
            events = self.simulator.feed(frame, t_us)
        except ValueError as exc:
            self._dropped("image", str(exc))
            return
        self._last_frame_us = t_us
        self._accept(events, "image")

    def _on_pointcloud2(self, msg: PointCloud2) -> None:
        try:
            cap = self.stream.max_buffered_events  # cut before decoding, newest kept
            events = pointcloud2_to_events(msg, max_events=cap)
        except ValueError as exc:
            self._dropped("PointCloud2", str(exc))
            return
        self.stream.count_overflow(max(msg.width * msg.height - cap, 0))
        self._accept(events, "PointCloud2")

    def _on_event_packet(self, msg) -> None:
        s = self.params.values
        stats = DecodeStats()
        try:
            events = decode_event_packet(
                msg.encoding,
                msg.events,
                stamp_us_of(msg),
                msg.is_bigendian,
                (s.width, s.height),
                self._evt3,
                self._evt3_time,
                max_events=self.stream.max_buffered_events,  # bounded while decoding
                stats=stats,
            )
        except ValueError as exc:
            self._dropped("EventPacket", str(exc))
            return
        self.stream.count_overflow(stats.overflow_events)
        self._accept(events, "EventPacket")

    def _on_message_lost(self, info) -> None:
        """The middleware reports input messages that never reached us (e.g. a slow node)."""
        self.lost_in_middleware += info.total_count_change
        self.get_logger().warning(
            f"{self.lost_in_middleware} input messages lost before reaching the node",
            throttle_duration_sec=1.0,
        )

    def _accept(self, events, what: str) -> None:
        dropped_before = self.stream.counters.dropped_overflow_events
        reason = self.stream.push(events)
        if reason is not None:
            self.get_logger().warning(
                f"dropped {what}: {reason} ({self._drop_count()} dropped so far)",
                throttle_duration_sec=1.0,
            )
            return
        if self.stream.counters.dropped_overflow_events > dropped_before:
            self.get_logger().warning(
                f"event flood: buffer full ({self.stream.max_buffered_events} events), dropped "
                f"the oldest ({self.stream.counters.dropped_overflow_events} so far)",
                throttle_duration_sec=1.0,
            )
        if self.params.values.packet_ms == 0:
            self._publish_packet()

    def _dropped(self, what: str, reason: str) -> None:
        self.stream.reject()
        self.get_logger().warning(
            f"dropped malformed {what}: {reason} ({self._drop_count()} dropped so far)",
            throttle_duration_sec=1.0,
        )

    def _drop_count(self) -> int:
        c = self.stream.counters
        return c.dropped_malformed + c.dropped_out_of_range

    # -- outputs -----------------------------------------------------------------------
    def _publish_packet(self) -> None:
        if self.stream.buffered == 0:
            return
        events = self.stream.pop()
        self._events.publish(events_to_pointcloud2(events, self.params.values.frame_id))

    def _publish_diagnostics(self) -> None:
        c = self.stream.counters
        drops = self._drop_count()
        level = DiagnosticStatus.OK
        message = "ok"
        if c.dropped_overflow_events:
            level, message = DiagnosticStatus.WARN, "event flood: oldest events dropped"
        if drops:
            level, message = DiagnosticStatus.WARN, f"{drops} malformed input messages dropped"
        values = {**c.as_dict(), "buffered_events": self.stream.buffered}
        values["lost_in_middleware"] = self.lost_in_middleware
        if self.simulator is not None:
            values["simulator_resets"] = self.sim_resets
        publish_status(self, self._diagnostics, level, "event stream", message, values)

    # -- parameter changes -------------------------------------------------------------
    def _set_max_buffered(self, value: int) -> None:
        self.stream.max_buffered_events = int(value)

    def _set_simulator(self, _value: object) -> None:
        self.simulator.set_params(self.params.values.simulator)
        self.get_logger().info(f"simulator parameters: {self.params.values.simulator}")


def main(args: list[str] | None = None) -> int:
    from hybrid_snn_control.ros.runner import run_nodes

    return run_nodes([EventCameraNode], args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())

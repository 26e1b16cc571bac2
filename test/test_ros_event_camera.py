"""event_camera_node with real rclpy: valid, malformed and flooding inputs on its topics."""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402

from hybrid_snn_control.events import make_events  # noqa: E402
from hybrid_snn_control.ros.event_camera_node import EventCameraNode  # noqa: E402
from hybrid_snn_control.ros.event_msgs import (  # noqa: E402
    events_to_pointcloud2,
    pointcloud2_to_events,
)


def random_events(n, t0_us=1_000_000, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), t0_us + np.arange(n), rng.choice([-1, 1], n)
    )


class Rig:
    def __init__(self, ctx, spin, ns, **params):
        self.spin = spin
        self.node = EventCameraNode(
            context=ctx,
            namespace=ns,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        self.feeder = Node("feeder", namespace=ns, context=ctx)
        self.packets: list[np.ndarray] = []
        self.feeder.create_subscription(
            PointCloud2,
            "events",
            lambda m: self.packets.append(pointcloud2_to_events(m)),
            qos_profile_sensor_data,
        )
        self.diag: list[DiagnosticArray] = []
        self.feeder.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, 10)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.feeder)

    def publisher(self, msg_type, topic):
        pub = self.feeder.create_publisher(msg_type, topic, qos_profile_sensor_data)
        assert self.spin(self.ex, lambda: pub.get_subscription_count() > 0)
        assert self.spin(self.ex, lambda: self.feeder.count_publishers(self.out_topic()) > 0)
        return pub

    def out_topic(self):
        return f"{self.node.get_namespace()}/events"

    def run_for(self, seconds):
        end = time.monotonic() + seconds
        self.spin(self.ex, lambda: time.monotonic() > end, seconds + 1.0)

    def received(self) -> np.ndarray:
        return np.concatenate(self.packets) if self.packets else np.zeros(0)

    def diag_values(self):
        mine = lambda d: d.status[0].hardware_id == self.node.get_fully_qualified_name()  # noqa: E731
        self.diag.clear()
        assert self.spin(self.ex, lambda: any(mine(d) for d in self.diag), 5.0)
        d = [d for d in self.diag if mine(d)][-1]
        return {kv.key: kv.value for kv in d.status[0].values}


def malformed_pointclouds(ev: np.ndarray) -> dict[str, PointCloud2]:
    good = events_to_pointcloud2(ev, "cam")
    wrong_fields = events_to_pointcloud2(ev, "cam")
    wrong_fields.fields = [f for f in good.fields if f.name != "p"] + [
        PointField(name="intensity", offset=8, datatype=PointField.INT8, count=1)
    ]
    truncated = events_to_pointcloud2(ev, "cam")
    truncated.data = bytes(good.data)[:-5]
    bad_field_type = events_to_pointcloud2(ev, "cam")
    bad_field_type.fields[0].datatype = 42
    out_of_range = ev.copy()
    out_of_range["x"][7] = 64  # sensor is 64 wide
    return {
        "wrong fields": wrong_fields,
        "truncated data": truncated,
        "bad field type": bad_field_type,
        "out of range": events_to_pointcloud2(out_of_range, "cam"),
    }


def test_pointcloud2_packets_pass_through_and_malformed_ones_are_dropped_and_counted(
    ros_context, spin
):
    params = dict(source="pointcloud2", width=64, height=48, packet_ms=20.0)
    rig = Rig(ros_context, spin, "evc_malformed", **params)
    pub = rig.publisher(PointCloud2, "events_in")
    first = random_events(300, seed=1)
    pub.publish(events_to_pointcloud2(first, "cam"))
    assert spin(rig.ex, lambda: rig.received().size == 300, 5.0)
    np.testing.assert_array_equal(rig.received(), first)
    for msg in malformed_pointclouds(random_events(100, seed=2)).values():
        pub.publish(msg)
        rig.run_for(0.03)
    after = random_events(200, t0_us=2_000_000, seed=3)  # the node is still running
    pub.publish(events_to_pointcloud2(after, "cam"))
    assert spin(rig.ex, lambda: rig.received().size == 500, 5.0)
    np.testing.assert_array_equal(rig.received()[300:], after)
    c = rig.node.stream.counters
    assert (c.dropped_malformed, c.dropped_out_of_range) == (3, 1)
    values = rig.diag_values()
    assert values["dropped_malformed"] == "3" and values["dropped_out_of_range"] == "1"


def test_random_garbage_never_raises_out_of_the_callbacks(ros_context):
    """Whatever arrives, the callbacks drop and count; nothing escapes to the executor."""
    node = EventCameraNode(
        context=ros_context,
        namespace="evc_fuzz",
        parameter_overrides=[Parameter("source", value="pointcloud2")],
    )
    rng = np.random.default_rng(0)
    good = events_to_pointcloud2(random_events(50), "cam")
    for _ in range(300):
        msg = events_to_pointcloud2(random_events(50), "cam")
        msg.data = rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
        msg.width = int(rng.integers(0, 100))
        msg.point_step = int(rng.choice([0, 1, 9, 12, 2**20]))
        msg.row_step = msg.width * msg.point_step if rng.random() < 0.7 else 5
        msg.is_bigendian = bool(rng.random() < 0.2)
        for f in msg.fields:
            if rng.random() < 0.2:
                f.offset = int(rng.integers(0, 64))
            if rng.random() < 0.2:
                f.datatype = int(rng.integers(0, 12))
            if rng.random() < 0.1:
                f.count = int(rng.integers(0, 3))
        node._on_pointcloud2(msg)
    c = node.stream.counters
    assert c.messages_in == 300 and c.dropped_malformed + c.dropped_out_of_range > 250
    before = c.events_in
    node._on_pointcloud2(good)
    assert c.events_in == before + 50  # and it still takes good data
    sim = EventCameraNode(context=ros_context, namespace="evc_fuzz_img")
    for _ in range(100):
        img = Image(height=int(rng.integers(0, 80)), width=int(rng.integers(0, 80)))
        img.encoding = str(rng.choice(["mono8", "rgb8", "bgra8", "mono16", "32FC1", "jpeg"]))
        img.step = int(rng.integers(0, 300))
        img.data = rng.integers(0, 256, int(rng.integers(0, 20000)), dtype=np.uint8).tobytes()
        sim._on_image(img)
    assert sim.stream.counters.dropped_malformed > 90


def test_a_flood_drops_oldest_events_and_keeps_the_buffer_bounded(ros_context, spin):
    bound = 5000
    rig = Rig(
        ros_context,
        spin,
        "evc_flood",
        source="pointcloud2",
        width=64,
        height=48,
        packet_ms=100.0,
        max_buffered_events=bound,
    )
    pub = rig.publisher(PointCloud2, "events_in")
    peak = 0
    t0 = 0
    for k in range(60):  # ~2000 events per ms of wall time: far above what 100 ms holds
        pub.publish(events_to_pointcloud2(random_events(2000, t0_us=t0, seed=k), "cam"))
        t0 += 2000
        rig.ex.spin_once(timeout_sec=0.01)
        peak = max(peak, rig.node.stream.buffered)
    rig.run_for(0.3)
    c = rig.node.stream.counters
    print(
        f"\nflood: {c.events_in} events accepted, {c.dropped_overflow_events} dropped (oldest), "
        f"{c.events_out} published in {c.packets_out} packets; buffer peak {peak}/{bound}"
    )
    assert peak <= bound
    assert all(p.size <= bound for p in rig.packets)
    assert c.dropped_overflow_events > 0
    assert c.events_in == c.events_out + c.dropped_overflow_events + rig.node.stream.buffered
    assert rig.received()["t"].max() == t0 - 1  # the newest event made it out
    assert rig.diag_values()["dropped_overflow_events"] == str(c.dropped_overflow_events)


def moving_bar(t, w=64, h=48):
    frame = np.full((h, w), 40, np.uint8)
    x = int(4 + 2 * t) % (w - 8)
    frame[:, x : x + 6] = 220
    return frame


def image_msg(frame, t_us, encoding="mono8"):
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding=encoding)
    msg.step = frame.shape[1] * (frame.shape[2] if frame.ndim == 3 else 1)
    msg.data = frame.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_us, 1_000_000)
    msg.header.stamp.nanosec *= 1000
    return msg


def test_sim_source_turns_images_into_event_packets(ros_context, spin):
    rig = Rig(ros_context, spin, "evc_sim", source="sim", width=64, height=48, packet_ms=0.0)
    pub = rig.publisher(Image, "image")
    for k in range(5):
        pub.publish(image_msg(moving_bar(k), 1_000_000 + 10_000 * k))
        rig.run_for(0.03)
    assert spin(rig.ex, lambda: rig.received().size > 0, 5.0)
    ev = rig.received()
    assert ev["t"].min() > 1_000_000 and ev["t"].max() <= 1_040_000
    assert set(np.unique(ev["p"])) == {-1, 1}
    assert ev["x"].max() < 64 and ev["y"].max() < 48
    # a wrong-size or unsupported image is dropped and counted; a stamp going back resets
    pub.publish(image_msg(np.zeros((10, 10), np.uint8), 1_050_000))
    pub.publish(image_msg(np.zeros((48, 64), np.uint8), 1_060_000, encoding="yuv422"))
    rig.run_for(0.1)
    pub.publish(image_msg(moving_bar(0), 1_000_000))
    assert spin(rig.ex, lambda: rig.node.sim_resets == 1, 5.0)
    assert rig.node.stream.counters.dropped_malformed == 2


def test_rgb_images_are_read_in_the_right_channel_order(ros_context, spin):
    rig = Rig(ros_context, spin, "evc_rgb", source="sim", width=64, height=48, packet_ms=0.0)
    pub = rig.publisher(Image, "image")
    dark = np.zeros((48, 64, 3), np.uint8)
    blue_right = dark.copy()
    blue_right[:, 32:, 2] = 255  # blue in RGB order = first channel in BGR order
    pub.publish(image_msg(dark, 1_000_000, "bgr8"))
    rig.run_for(0.05)
    pub.publish(image_msg(blue_right[..., ::-1].copy(), 1_010_000, "bgr8"))
    assert spin(rig.ex, lambda: rig.received().size > 0, 5.0)
    assert rig.received()["x"].min() >= 32  # events only where the blue appeared


def test_event_packet_source_needs_event_camera_msgs(ros_context):
    try:
        import event_camera_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("event_camera_msgs is installed here")
    with pytest.raises(RuntimeError, match="event_camera_msgs"):
        EventCameraNode(
            context=ros_context,
            namespace="evc_packet",
            parameter_overrides=[Parameter("source", value="event_packet")],
        )


def test_times_no_stamp_can_carry_are_dropped_not_published(ros_context, spin):
    """An image stamped before 1970 and events mapped past 2038 are dropped and counted:
    they would otherwise reach ``us_to_stamp`` in the publish timer and stop the node."""
    rig = Rig(ros_context, spin, "evc_time", source="sim", width=64, height=48, packet_ms=10.0)
    bad = image_msg(moving_bar(0), 1_000_000)
    bad.header.stamp.sec = -5
    rig.node._on_image(bad)
    late = random_events(20, seed=4)
    late["t"] += (2**31) * 1_000_000  # past what a builtin_interfaces/Time holds
    assert "outside" in rig.node.stream.push(late)
    pub = rig.publisher(Image, "image")
    for k in range(3):  # the node keeps going on good input
        pub.publish(image_msg(moving_bar(k), 2_000_000 + 10_000 * k))
        rig.run_for(0.03)
    assert spin(rig.ex, lambda: rig.received().size > 0, 5.0)
    c = rig.node.stream.counters
    assert c.dropped_bad_time == 1 and c.dropped_malformed == 1
    assert rig.received()["t"].max() <= 2_020_000

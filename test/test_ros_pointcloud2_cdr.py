"""The in-place reader of serialized PointCloud2 (what policy_node's raw subscription uses)
against rclpy's own serializer, and on every truncation and garbage."""

from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2, PointField

from hybrid_snn_control.ros.event_msgs import pointcloud2_to_events
from hybrid_snn_control.ros.flood import random_packet
from hybrid_snn_control.ros.pointcloud2_cdr import read_pointcloud2


def _same(view, msg: PointCloud2) -> None:
    assert (view.header.stamp.sec, view.header.stamp.nanosec) == (
        msg.header.stamp.sec,
        msg.header.stamp.nanosec,
    )
    assert view.header.frame_id == msg.header.frame_id
    assert (view.height, view.width, view.point_step, view.row_step) == (
        msg.height,
        msg.width,
        msg.point_step,
        msg.row_step,
    )
    assert (view.is_bigendian, view.is_dense) == (msg.is_bigendian, msg.is_dense)
    got = [(f.name, f.offset, f.datatype, f.count) for f in view.fields]
    assert got == [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert bytes(view.data) == bytes(msg.data)


@pytest.mark.parametrize("n", [0, 1, 3, 200, 10_001])
@pytest.mark.parametrize("frame_id", ["", "e", "event_camera", "kamera_ü_3"])
def test_the_view_equals_rclpys_deserialized_message(n, frame_id):
    msg = random_packet(n, t_us=1_700_000_000_123_456, seed=n)
    msg.header.frame_id = frame_id
    view = read_pointcloud2(serialize_message(msg))
    _same(view, msg)
    for cap in (None, 1, 150):  # and the events the node decodes from it, cut or not
        np.testing.assert_array_equal(
            pointcloud2_to_events(view, max_events=cap), pointcloud2_to_events(msg, cap)
        )


def test_odd_layouts_keep_their_alignment():
    # field names of every length mod 4, a uint8 datatype between uint32s, 2-D cloud
    msg = PointCloud2(height=2, width=3, point_step=5, row_step=15, is_bigendian=True)
    msg.fields = [PointField(name="x" * k, offset=k, datatype=2, count=k + 1) for k in range(1, 6)]
    msg.data = bytes(range(30))
    msg.header.frame_id = "abc"  # 4 bytes with the NUL: the next field lands aligned
    msg.header.stamp.sec, msg.header.stamp.nanosec = -5, 999_999_999
    _same(read_pointcloud2(serialize_message(msg)), msg)


def test_big_endian_cdr_is_read_too():
    # what a big-endian host's rmw sends: the same fields, CDR_BE encapsulation
    def s(text: str) -> bytes:
        b = text.encode() + b"\0"
        return struct.pack(">I", len(b)) + b

    body = struct.pack(">iI", 7, 8) + s("cam")  # 4 + 4 + (4 + 4)
    body += struct.pack(">II", 1, 2) + struct.pack(">I", 1)
    body += s("t") + b"\0\0" + struct.pack(">I", 4) + b"\x06" + b"\0\0\0" + struct.pack(">I", 1)
    body += b"\x01" + b"\0\0\0" + struct.pack(">II", 4, 8) + struct.pack(">I", 8) + bytes(8)
    body += b"\x01"
    view = read_pointcloud2(b"\x00\x00\x00\x00" + body)
    assert (view.header.stamp.sec, view.header.stamp.nanosec, view.header.frame_id) == (7, 8, "cam")
    assert (view.height, view.width, view.point_step, view.row_step) == (1, 2, 4, 8)
    assert [(f.name, f.offset, f.datatype, f.count) for f in view.fields] == [("t", 4, 6, 1)]
    assert view.is_bigendian and view.is_dense and bytes(view.data) == bytes(8)


def test_every_truncation_and_corruption_is_a_value_error():
    raw = serialize_message(random_packet(4, t_us=1_700_000_000_000_000))
    for end in range(len(raw) - 1):  # the last byte is is_dense: all shorter cuts fail
        with pytest.raises(ValueError):
            read_pointcloud2(raw[:end])
    rng = np.random.default_rng(0)
    for _ in range(2000):  # flipped bytes: a clean error or a view, never another exception
        bad = np.frombuffer(raw, np.uint8).copy()
        idx = rng.integers(0, bad.size, rng.integers(1, 6))
        bad[idx] = rng.integers(0, 256, idx.size)
        try:
            view = read_pointcloud2(bad.tobytes())
        except ValueError:
            continue
        assert len(view.data) <= len(bad)


def test_a_huge_declared_length_is_refused_without_allocating():
    msg = random_packet(2, t_us=1_700_000_000_000_000)
    raw = bytearray(serialize_message(msg))
    at = len(raw) - 1 - len(msg.data) - 4  # the data sequence's length, before is_dense
    assert struct.unpack_from("<I", raw, at)[0] == len(msg.data)
    struct.pack_into("<I", raw, at, 2**32 - 1)
    with pytest.raises(ValueError, match="runs past"):
        read_pointcloud2(bytes(raw))
    with pytest.raises(ValueError, match="encapsulation"):
        read_pointcloud2(b"\x00\x07" + bytes(raw[2:]))

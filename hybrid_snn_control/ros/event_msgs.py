"""Message ↔ numpy conversions for event-camera topics (the codecs live in ``events/codecs``).

Shared by event_camera_node (and the policy node, which reads the same PointCloud2
packets).  Every function raises ``ValueError`` on a malformed message, with what was
expected, so nodes can drop and count it; event times a ROS stamp cannot carry (before
1970, after 2038, or beyond int64 from a float ``t``) raise its subclass
:class:`~hybrid_snn_control.events.codecs.EventTimeError`, so they never reach a published
stamp.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField

from hybrid_snn_control.events.codecs import (
    EventTimeError,
    check_times_us,
    pointcloud2_decode,
    pointcloud2_encode,
    stamp_to_us,
    us_to_stamp,
)

__all__ = ["events_to_pointcloud2", "image_to_frame", "pointcloud2_to_events", "stamp_us_of"]

# encoding -> (numpy dtype, channels); colour images are converted to RGB order
_IMAGE_ENCODINGS = {
    "mono8": ("u1", 1),
    "8UC1": ("u1", 1),
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono16": ("u2", 1),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
}


def stamp_us_of(msg) -> int:
    """``msg.header.stamp`` in integer microseconds."""
    return stamp_to_us(msg.header.stamp.sec, msg.header.stamp.nanosec)


def events_to_pointcloud2(events: np.ndarray, frame_id: str) -> PointCloud2:
    """Events → the package's PointCloud2 packet (stamp = first event, ``t`` µs after it)."""
    pc = pointcloud2_encode(events)
    msg = PointCloud2(
        fields=[
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in pc.fields
        ],
        height=pc.height,
        width=pc.width,
        point_step=pc.point_step,
        row_step=pc.row_step,
        is_bigendian=pc.is_bigendian,
        is_dense=True,
        data=pc.data,
    )
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = us_to_stamp(pc.stamp_us)
    return msg


def pointcloud2_to_events(msg: PointCloud2, max_events: int | None = None) -> np.ndarray:
    """A PointCloud2 with x/y/t/p fields → events in µs (``ValueError`` if malformed,
    :class:`EventTimeError` if its stamp or event times are outside ``[0, MAX_STAMP_US]``).

    ``max_events``: decode only the last ``max_events`` points (drivers write points in
    time order, so the newest), so a flood's memory and time are bounded *before*
    decoding; the caller counts ``msg.width * msg.height - max_events`` as dropped.
    """
    if not 0 <= msg.header.stamp.nanosec < 1_000_000_000:
        raise EventTimeError(f"header.stamp.nanosec {msg.header.stamp.nanosec} is not < 1e9")
    if msg.row_step != msg.width * msg.point_step:
        raise ValueError(
            f"row_step {msg.row_step} != width {msg.width} × point_step {msg.point_step}"
        )
    data, width, height = msg.data, msg.width, msg.height
    n_points = width * height
    if max_events is not None and n_points > max_events:
        if len(data) != n_points * msg.point_step:
            raise ValueError(
                f"width*height = {width}*{height} points but data holds {len(data)} bytes "
                f"(point_step {msg.point_step})"
            )
        data = memoryview(data)[(n_points - max_events) * msg.point_step :]
        width, height = max_events, 1
    events = pointcloud2_decode(
        data,
        msg.fields,
        msg.point_step,
        stamp_us_of(msg),
        width,
        height,
        msg.is_bigendian,
    )
    check_times_us(events, stamp_us_of(msg))
    return events


def image_to_frame(msg: Image) -> np.ndarray:
    """``sensor_msgs/Image`` → ``H×W`` or ``H×W×3`` (RGB) array for the event simulator.

    8-bit images stay ``uint8``; 16-bit become float in [0, 1]; ``32FC1`` is taken as
    intensity in [0, 1].
    """
    if msg.encoding not in _IMAGE_ENCODINGS:
        raise ValueError(
            f"image encoding {msg.encoding!r} not supported; use one of {list(_IMAGE_ENCODINGS)}"
        )
    kind, channels = _IMAGE_ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.width == 0 or msg.height == 0 or msg.step < row_bytes:
        raise ValueError(
            f"image {msg.width}x{msg.height} {msg.encoding}: step {msg.step} < {row_bytes}"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < msg.step * msg.height:
        raise ValueError(
            f"image data has {data.size} bytes, step × height needs {msg.step * msg.height}"
        )
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    frame = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    if msg.encoding.startswith("bgr"):
        frame = frame[..., 2::-1]
    elif channels == 4:
        frame = frame[..., :3]
    frame = frame[..., 0] if channels == 1 else frame
    if dtype.kind == "u" and dtype.itemsize == 2:
        return frame.astype(np.float32) / 65535.0
    return frame.astype(np.float32) if dtype.kind == "f" else frame

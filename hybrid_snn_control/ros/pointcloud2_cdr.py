"""A serialized ``sensor_msgs/PointCloud2`` (CDR bytes) read in place, without rclpy.

policy_node subscribes to ``events`` with ``raw=True`` and reads the packet here: the
header fields are parsed from the bytes and ``data`` is a ``memoryview`` into them, so
a packet above ``max_events_per_packet`` is cut to its newest points before any copy of
its payload.  rclpy's own deserialization copies the whole payload into an
``array.array`` first, holding the GIL: 75–95 ms for a 50 MB packet on this 2-core
machine, time the control loop cannot run in.

The layout is XCDR1 as every ROS 2 rmw writes it: a 4-byte encapsulation header
(``CDR_BE`` 0x0000 or ``CDR_LE`` 0x0001, options ignored), then the fields in message
order, each aligned to its own size relative to the end of the encapsulation header;
strings and sequences are a ``uint32`` length and the elements (strings with their NUL).
Any truncation, overrun or bad length raises ``ValueError``, never a wrong view.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["PointCloud2View", "read_pointcloud2"]

_ENCAPSULATIONS = {b"\x00\x00": ">", b"\x00\x01": "<"}  # CDR_BE, CDR_LE
_MAX_FIELDS = 64  # a real point layout has a handful; bounds the work on garbage


class Stamp(NamedTuple):
    sec: int
    nanosec: int


class Header(NamedTuple):
    stamp: Stamp
    frame_id: str


class PointFieldView(NamedTuple):
    name: str
    offset: int
    datatype: int
    count: int


class PointCloud2View(NamedTuple):
    """The attributes of ``sensor_msgs.msg.PointCloud2`` that readers use; ``data`` is a
    view into the serialized bytes (kept alive by it)."""

    header: Header
    height: int
    width: int
    fields: tuple[PointFieldView, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: memoryview
    is_dense: bool


_STRUCTS = {order: {k: struct.Struct(order + k) for k in ("I", "i", "B", "II")} for order in "<>"}


class _Reader:
    def __init__(self, buf: memoryview, order: str) -> None:
        self.buf, self.pos, self.size = buf, 4, len(buf)  # after the encapsulation header
        self.s = _STRUCTS[order]

    def _take(self, kind: str, align: int) -> tuple[int, ...]:
        pos = self.pos + (-(self.pos - 4) % align)  # aligned relative to the CDR body
        st = self.s[kind]
        end = pos + st.size
        if end > self.size:
            raise ValueError(f"serialized PointCloud2 truncated at byte {pos}")
        self.pos = end
        return st.unpack_from(self.buf, pos)

    def u32(self) -> int:
        return self._take("I", 4)[0]

    def i32(self) -> int:
        return self._take("i", 4)[0]

    def u8(self) -> int:
        return self._take("B", 1)[0]

    def two_u32(self) -> tuple[int, int]:
        return self._take("II", 4)

    def bytes_(self, n: int) -> memoryview:
        if n > self.size - self.pos:
            raise ValueError(
                f"serialized PointCloud2: a sequence of {n} bytes at byte {self.pos} "
                f"runs past its {self.size} bytes"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        n = self.u32()
        raw = self.bytes_(n)
        if n == 0 or raw[-1] != 0:
            at = self.pos - n
            raise ValueError(f"serialized PointCloud2: the string at byte {at} lacks its NUL")
        try:
            return bytes(raw[:-1]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"serialized PointCloud2: a string is not UTF-8 ({exc})") from None


def read_pointcloud2(raw: bytes | bytearray | memoryview) -> PointCloud2View:
    """Serialized ``PointCloud2`` → :class:`PointCloud2View` (``ValueError`` if malformed)."""
    buf = memoryview(raw).cast("B")
    order = _ENCAPSULATIONS.get(bytes(buf[:2]))
    if order is None:
        raise ValueError(
            f"serialized PointCloud2: encapsulation {bytes(buf[:2]).hex() or 'missing'} is "
            "not CDR_LE (0001) or CDR_BE (0000)"
        )
    r = _Reader(buf, order)
    stamp = Stamp(r.i32(), r.u32())
    header = Header(stamp, r.string())
    height, width = r.two_u32()
    n_fields = r.u32()
    if n_fields > _MAX_FIELDS:
        raise ValueError(f"serialized PointCloud2 declares {n_fields} fields (> {_MAX_FIELDS})")
    fields = tuple(
        PointFieldView(name=r.string(), offset=r.u32(), datatype=r.u8(), count=r.u32())
        for _ in range(n_fields)
    )
    is_bigendian = bool(r.u8())
    point_step, row_step = r.two_u32()
    data = r.bytes_(r.u32())
    is_dense = bool(r.u8())
    return PointCloud2View(
        header, height, width, fields, is_bigendian, point_step, row_step, data, is_dense
    )

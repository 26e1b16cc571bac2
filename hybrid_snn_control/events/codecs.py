"""Codecs: event arrays <-> the bytes of ROS messages (no rclpy import here).

**PointCloud2** (the package's own transport, DESIGN §7).  One point per event, little
endian, ``point_step = 9`` bytes, packed::

    offset 0  x  UINT16   pixel column
    offset 2  y  UINT16   pixel row
    offset 4  t  UINT32   microseconds after header.stamp (stamp = time of the first event)
    offset 8  p  INT8     +1 ON, -1 OFF

:func:`pointcloud2_encode` returns the ``fields`` / ``point_step`` / ``row_step`` / ``data``
a node copies into ``sensor_msgs/PointCloud2`` (``height = 1``, ``width = n``).
:func:`pointcloud2_decode` reads *any* layout with x/y/t/p fields from its ``fields`` list
(offsets and types are read, not assumed), e.g. CARLA's DVS cloud with a FLOAT64 ``t``.

**event_camera_msgs/EventPacket** payloads (``events`` bytes) in the ``mono`` and ``evt3``
encodings; see :func:`mono_decode` and :func:`evt3_decode`.  Decoders are vectorized numpy.
Bad input never hangs: it raises ``ValueError`` (``strict=True``, the default) or is dropped
and counted in a :class:`DecodeStats` (``strict=False``).
"""

from __future__ import annotations

import math
import reprlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid_snn_control.events.arrays import EVENT_DTYPE, empty_events, normalize_polarity

# sensor_msgs/PointField datatype codes
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_POINTFIELD_NUMPY = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}


@dataclass(frozen=True)
class PointFieldSpec:
    """The four values of a ``sensor_msgs/PointField``."""

    name: str
    offset: int
    datatype: int
    count: int = 1


POINTCLOUD2_FIELDS: tuple[PointFieldSpec, ...] = (
    PointFieldSpec("x", 0, UINT16),
    PointFieldSpec("y", 2, UINT16),
    PointFieldSpec("t", 4, UINT32),
    PointFieldSpec("p", 8, INT8),
)
POINTCLOUD2_POINT_STEP = 9
_PC2_DTYPE = np.dtype(
    {
        "names": ["x", "y", "t", "p"],
        "formats": ["<u2", "<u2", "<u4", "i1"],
        "offsets": [0, 2, 4, 8],
        "itemsize": POINTCLOUD2_POINT_STEP,
    }
)


@dataclass
class PointCloud2Payload:
    """What goes into a ``sensor_msgs/PointCloud2`` (``height = 1``, ``is_dense = True``)."""

    fields: tuple[PointFieldSpec, ...]
    point_step: int
    row_step: int
    width: int
    height: int
    data: bytes
    stamp_us: int  # header.stamp in microseconds (time of the first event)
    is_bigendian: bool = False


@dataclass
class DecodeStats:
    """Counters filled by decoders in ``strict=False`` mode (dropped input, not errors)."""

    events: int = 0
    dropped_bytes: int = 0
    dropped_events: int = 0
    unknown_words: int = 0
    overflow_events: int = 0  # oldest events dropped to honour ``max_events``
    messages: list[str] = field(default_factory=list)

    def drop(self, what: str) -> None:
        self.messages.append(what)


def _byte_view(payload: Any, what: str) -> memoryview:
    """``payload`` as a flat byte view; ``ValueError`` (not ``TypeError``) for anything that
    is not a contiguous bytes-like object (a ``str``, ``None``, a strided array …)."""
    if isinstance(payload, np.ndarray):  # any dtype, structured included: its raw bytes
        payload = np.ascontiguousarray(payload).reshape(-1).view(np.uint8)
    try:
        return memoryview(payload).cast("B")
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} payload must be bytes-like, got {type(payload).__name__} ({exc})"
        ) from None


def _as_int(value: Any, name: str) -> int:
    """An integer argument of a decoder; ``ValueError`` for ``None``, strings, floats …"""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name} must be an integer, got {type(value).__name__} {reprlib.repr(value)}"
        )
    return int(value)


def _fail_or_count(strict: bool, stats: DecodeStats | None, msg: str) -> None:
    if strict:
        raise ValueError(msg)
    if stats is not None:
        stats.drop(msg)


# --------------------------------------------------------------------------- stamps
#: The last microsecond a ``builtin_interfaces/Time`` can carry (``sec`` is an int32; rclpy
#: wraps larger values to negative seconds instead of failing), 2038-01-19.
MAX_STAMP_US = (2**31 - 1) * 1_000_000 + 999_999
MAX_STAMP_NS = MAX_STAMP_US * 1000 + 999


class EventTimeError(ValueError):
    """Event or stamp times outside what a ROS stamp holds: dropped, never published."""


def stamp_to_us(sec: int, nanosec: int) -> int:
    """``builtin_interfaces/Time`` (sec, nanosec) -> integer microseconds (floor).

    Arithmetic only: :func:`check_times_us` says whether the result is a valid time.
    """
    return int(sec) * 1_000_000 + int(nanosec) // 1000


def check_times_us(events: np.ndarray, stamp_us: int | None = None) -> None:
    """:class:`EventTimeError` unless ``stamp_us`` and every event time lie in
    ``[0, MAX_STAMP_US]`` (what a command stamped with them can carry)."""
    if stamp_us is not None and not 0 <= int(stamp_us) <= MAX_STAMP_US:
        raise EventTimeError(f"stamp {int(stamp_us)} us is outside [0, {MAX_STAMP_US}] us")
    if events.size:
        t = events["t"]
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi > MAX_STAMP_US:
            raise EventTimeError(
                f"event times [{lo}, {hi}] us are outside [0, {MAX_STAMP_US}] us (1970..2038)"
            )


def us_to_stamp(t_us: int) -> tuple[int, int]:
    """Integer microseconds -> ``(sec, nanosec)`` for a message header (exact).

    ``ValueError`` outside ``[0, MAX_STAMP_US]``: such a time would be published as a
    wrapped, negative ``sec`` (silent time corruption downstream).
    """
    t_us = int(t_us)
    if not 0 <= t_us <= MAX_STAMP_US:
        raise ValueError(
            f"time {t_us} us is outside what a ROS stamp holds [0, {MAX_STAMP_US}] (1970..2038)"
        )
    sec, rem_us = divmod(t_us, 1_000_000)
    return sec, rem_us * 1000


# --------------------------------------------------------------------------- PointCloud2
def pointcloud2_encode(events: np.ndarray, stamp_us: int | None = None) -> PointCloud2Payload:
    """Pack events into the package's PointCloud2 layout.

    ``stamp_us`` (default: the first event's time) becomes ``header.stamp``; ``t`` is stored
    as microseconds after it and must fit UINT32 (about 71 minutes).
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise ValueError("pointcloud2_encode needs an EVENT_DTYPE array")
    n = events.size
    if stamp_us is None:
        stamp_us = int(events["t"][0]) if n else 0
    stamp_us = int(stamp_us)
    buf = np.empty(n, dtype=_PC2_DTYPE)
    if n:
        dt = events["t"] - stamp_us
        if dt.min() < 0 or dt.max() > np.iinfo(np.uint32).max:
            raise ValueError(
                f"event times must lie in [stamp, stamp + 2^32 us) for PointCloud2; got "
                f"[{dt.min()}, {dt.max()}] us after stamp {stamp_us}: split the packet"
            )
        buf["x"] = events["x"]
        buf["y"] = events["y"]
        buf["t"] = dt
        buf["p"] = events["p"]
    return PointCloud2Payload(
        fields=POINTCLOUD2_FIELDS,
        point_step=POINTCLOUD2_POINT_STEP,
        row_step=POINTCLOUD2_POINT_STEP * n,
        width=n,
        height=1,
        data=buf.tobytes(),
        stamp_us=stamp_us,
    )


def _field_get(f: Any, name: str):
    return f[name] if isinstance(f, dict) else getattr(f, name)


def _field_key(fields: Sequence[Any]) -> tuple | None:
    """``fields`` as a hashable key (None if they cannot be read: the slow path says why)."""
    try:
        return tuple(
            (
                _field_get(f, "name"),
                _field_get(f, "offset"),
                _field_get(f, "datatype"),
                _field_get(f, "count"),
            )
            for f in fields
        )
    except (TypeError, KeyError, AttributeError):
        return None


_LAYOUTS: dict[tuple, tuple[np.dtype, bool]] = {}  # validated layouts; a stream has one


def _pointcloud2_layout(
    fields: Sequence[Any], point_step: int, is_bigendian: bool
) -> tuple[np.dtype, bool]:
    """The numpy dtype of one point and whether it is the package's own layout, validated
    once per distinct layout (a driver sends the same fields in every packet)."""
    key = _field_key(fields)
    if key is not None:
        key = (key, point_step, is_bigendian)
        try:
            hit = _LAYOUTS.get(key)
        except TypeError:  # an unhashable field value: validate below, do not cache
            hit, key = None, None
        if hit is not None:
            return hit
    by_name = {}
    try:
        for f in fields:
            by_name[_field_get(f, "name")] = f
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"fields must be PointFields (name, offset, datatype, count), got "
            f"{type(fields).__name__}: {exc}"
        ) from None
    missing = [n for n in "xytp" if n not in by_name]
    if missing:
        raise ValueError(
            f"PointCloud2 has no field(s) {missing}; fields are {list(by_name)} (need x, y, t, p)"
        )
    order_char = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for n in "xytp":
        f = by_name[n]
        try:
            dtype_code, offset, count = (
                int(_field_get(f, "datatype")),
                int(_field_get(f, "offset")),
                int(_field_get(f, "count")),
            )
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise ValueError(f"field {n}: datatype/offset/count unreadable: {exc}") from None
        if dtype_code not in _POINTFIELD_NUMPY:
            raise ValueError(f"field {n}: unsupported PointField datatype {dtype_code} (1..8)")
        if count != 1:
            raise ValueError(f"field {n}: count={count}, only scalar fields (count 1) are read")
        fmt = np.dtype(_POINTFIELD_NUMPY[dtype_code]).newbyteorder(order_char)
        if offset < 0 or offset + fmt.itemsize > point_step:
            raise ValueError(
                f"field {n} at offset {offset} ({fmt.itemsize} bytes) does not fit "
                f"point_step={point_step}"
            )
        names.append(n)
        formats.append(fmt)
        offsets.append(offset)
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    layout = [(n, o, f.str) for n, o, f in zip(names, offsets, formats)]
    result = (dt, layout == _PACKAGE_LAYOUT and point_step == POINTCLOUD2_POINT_STEP)
    if key is not None and len(_LAYOUTS) < 64:
        _LAYOUTS[key] = result
    return result


def pointcloud2_decode(
    data: bytes | bytearray | memoryview | np.ndarray,
    fields: Sequence[Any] = POINTCLOUD2_FIELDS,
    point_step: int = POINTCLOUD2_POINT_STEP,
    stamp_us: int = 0,
    width: int | None = None,
    height: int = 1,
    is_bigendian: bool = False,
    t_scale_us: float | None = None,
) -> np.ndarray:
    """Decode a PointCloud2 ``data`` buffer with x/y/t/p fields into an event array.

    ``fields``: ``PointField`` messages, :class:`PointFieldSpec` s or dicts with ``name``,
    ``offset``, ``datatype``, ``count``.  ``t`` is read as ``t * t_scale_us`` microseconds
    after ``stamp_us`` (``t_scale_us`` default: 1 for integer ``t``, 1e6 for float ``t``,
    i.e. seconds).  ``p`` may be ±1 or 0/1.  Raises ``ValueError`` on missing fields,
    unsupported types, fields outside ``point_step``, a data size that does not match, or
    arguments of the wrong type (never ``TypeError`` / ``OverflowError``).
    """
    point_step = _as_int(point_step, "point_step")
    stamp_us = _as_int(stamp_us, "stamp_us")
    height = _as_int(height, "height")
    width = None if width is None else _as_int(width, "width")
    if not -(2**62) <= stamp_us <= 2**62:  # stamp + t would overflow int64
        raise EventTimeError(f"stamp_us {stamp_us} is beyond ±2^62 us")
    if t_scale_us is not None and not (
        isinstance(t_scale_us, (int, float, np.integer, np.floating))
        and math.isfinite(t_scale_us)
        and t_scale_us > 0
    ):
        raise ValueError(f"t_scale_us must be a finite number > 0, got {reprlib.repr(t_scale_us)}")
    if point_step <= 0:
        raise ValueError(f"point_step must be positive; got {point_step}")
    dt, package_layout = _pointcloud2_layout(fields, point_step, bool(is_bigendian))
    raw = _byte_view(data, "PointCloud2")
    nbytes = raw.nbytes
    if nbytes % point_step:
        raise ValueError(f"data size {nbytes} is not a multiple of point_step={point_step}")
    n_points = nbytes // point_step
    if width is not None and width * height != n_points:
        raise ValueError(
            f"width*height = {width}*{height} points but data holds {n_points} "
            f"({nbytes} bytes / point_step {point_step})"
        )
    if package_layout and t_scale_us in (None, 1):
        return _decode_package_layout(raw, n_points, stamp_us)
    pts = np.frombuffer(raw, dtype=dt, count=n_points)
    if all(pts.dtype[f].kind in "iu" for f in "xytp") and t_scale_us in (None, 1):
        return _decode_int_fields(pts, stamp_us)
    out = np.empty(n_points, dtype=EVENT_DTYPE)
    for n in ("x", "y"):
        v = pts[n]
        if v.dtype.kind == "f":
            v = np.rint(v)
        if n_points and (v.min() < 0 or v.max() > 65535):
            raise ValueError(f"field {n} has values outside 0..65535")
        out[n] = v
    for n in "xytp":
        if pts.dtype[n].kind == "f" and n_points and not np.isfinite(pts[n]).all():
            raise ValueError(f"field {n} holds NaN or infinite values")
    t = pts["t"]
    scale = (1e6 if t.dtype.kind == "f" else 1.0) if t_scale_us is None else t_scale_us
    t_us = np.rint(t * scale)
    if n_points and not np.abs(t_us).max() < 2.0**62:  # the int64 cast would wrap silently
        raise EventTimeError(f"field t holds times beyond ±2^62 us (max |t| = {np.abs(t).max():g})")
    out["t"] = stamp_us + t_us.astype(np.int64)
    p = pts["p"]
    out["p"] = normalize_polarity(np.rint(p).astype(np.int64) if p.dtype.kind == "f" else p)
    return out


_DECODE_CHUNK = 32768  # events per pass: keeps the strided field copies in cache
_PACKAGE_LAYOUT = [("x", 0, "<u2"), ("y", 2, "<u2"), ("t", 4, "<u4"), ("p", 8, "|i1")]
# x, y, t (low 32 bits) sit in the same 8 little-endian bytes in both layouts: one copy
_PC2_BLOCKS = np.dtype({"names": ["a", "p"], "formats": ["<u8", "i1"], "offsets": [0, 8],
                        "itemsize": 9})  # fmt: skip
_EVENT_BLOCKS = np.dtype(
    {"names": ["a", "t_hi", "p"], "formats": ["<u8", "<u4", "i1"], "offsets": [0, 8, 12],
     "itemsize": EVENT_DTYPE.itemsize}
)  # fmt: skip


def _decode_package_layout(raw, n_points: int, stamp_us: int) -> np.ndarray:
    """The package's own layout: 8-byte block copy (x, y, t) + polarity, chunk by chunk."""
    pts = np.frombuffer(raw, dtype=_PC2_BLOCKS, count=n_points)
    out = np.empty(n_points, dtype=EVENT_DTYPE)
    blocks = out.view(_EVENT_BLOCKS)
    p_ok = True
    for i in range(0, n_points, _DECODE_CHUNK):
        o, q = blocks[i : i + _DECODE_CHUNK], pts[i : i + _DECODE_CHUNK]
        o["a"] = q["a"]
        o["t_hi"] = 0
        pv = q["p"]
        o["p"] = pv
        if stamp_us:
            out["t"][i : i + _DECODE_CHUNK] += stamp_us
        # +1 / -1 as uint8 are 1 / 255: (v + 1) & ~2 is 0 exactly for those two
        p_ok = p_ok and not np.any((pv.view(np.uint8) + np.uint8(1)) & np.uint8(0xFD))
    if not p_ok:  # 0/1 polarity (or garbage: normalize_polarity raises)
        out["p"] = normalize_polarity(pts["p"])
    return out


def _decode_int_fields(pts: np.ndarray, stamp_us: int) -> np.ndarray:
    """Integer x/y/t/p points (the package layout): copy field by field, chunk by chunk."""
    n_points = pts.size
    out = np.empty(n_points, dtype=EVENT_DTYPE)
    for n in ("x", "y"):
        if pts.dtype[n].itemsize > 2 or pts.dtype[n].kind == "i":
            v = pts[n]
            if n_points and (v.min() < 0 or v.max() > 65535):
                raise ValueError(f"field {n} has values outside 0..65535")
    p_ok = pts.dtype["p"] == np.int8
    for i in range(0, n_points, _DECODE_CHUNK):
        o, q = out[i : i + _DECODE_CHUNK], pts[i : i + _DECODE_CHUNK]
        o["x"] = q["x"]
        o["y"] = q["y"]
        o["t"] = q["t"]
        if stamp_us:
            o["t"] += stamp_us
        if p_ok:
            pv = q["p"]
            o["p"] = pv
            # +1 / -1 as uint8 are 1 / 255: (v + 1) & ~2 is 0 exactly for those two
            p_ok = not np.any((pv.view(np.uint8) + np.uint8(1)) & np.uint8(0xFD))
    if not p_ok:  # 0/1 polarity (or garbage: normalize_polarity raises)
        out["p"] = normalize_polarity(pts["p"])
    return out


# --------------------------------------------------------------------------- mono
def mono_encode(events: np.ndarray, time_base_ns: int | None = None) -> tuple[bytes, int]:
    """Encode events as an EventPacket ``mono`` payload; returns ``(events_bytes, time_base_ns)``.

    One little-endian u64 per event: bit 63 polarity (1 = ON), bits 48-62 y, 32-47 x,
    bits 0-31 time after ``time_base`` in nanoseconds (so a packet spans < 4.29 s).
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise ValueError("mono_encode needs an EVENT_DTYPE array")
    if time_base_ns is None:
        time_base_ns = int(events["t"][0]) * 1000 if events.size else 0
    dt_ns = events["t"].astype(np.int64) * 1000 - int(time_base_ns)
    if events.size and (dt_ns.min() < 0 or dt_ns.max() > 0xFFFFFFFF):
        raise ValueError("mono: event times must lie in [time_base, time_base + 4.29 s)")
    if events.size and int(events["y"].max()) > 0x7FFF:
        raise ValueError("mono: y must be < 32768")
    w = (
        (events["p"] > 0).astype(np.uint64) << np.uint64(63)
        | events["y"].astype(np.uint64) << np.uint64(48)
        | events["x"].astype(np.uint64) << np.uint64(32)
        | dt_ns.astype(np.uint64)
    )
    return w.astype("<u8").tobytes(), int(time_base_ns)


def mono_decode(
    payload: bytes | bytearray | memoryview,
    time_base_ns: int,
    is_bigendian: bool = False,
    sensor_size: tuple[int, int] | None = None,
    strict: bool = True,
    stats: DecodeStats | None = None,
) -> np.ndarray:
    """Decode a ``mono`` payload into events (``t`` in µs = (time_base + dt) // 1000).

    A length that is not a multiple of 8, events outside ``sensor_size``, or a ``time_base``
    whose events would lie outside ``[0, MAX_STAMP_US]`` raise ``ValueError`` (``strict``) or
    are dropped and counted in ``stats``.  A payload that is not bytes-like raises
    ``ValueError`` in both modes (there is nothing to count).
    """
    raw = _byte_view(payload, "mono")
    tb = _as_int(time_base_ns, "time_base_ns")
    n, rest = divmod(raw.nbytes, 8)
    if rest:
        _fail_or_count(strict, stats, f"mono payload of {raw.nbytes} bytes is not a multiple of 8")
        if stats is not None:
            stats.dropped_bytes += rest
    if not 0 <= tb <= MAX_STAMP_NS:  # beyond, tb + dt overflows int64 or wraps a stamp
        _fail_or_count(strict, stats, f"mono time_base {tb} ns is outside [0, {MAX_STAMP_NS}]")
        if stats is not None:
            stats.dropped_events += n
        return empty_events()
    w = np.frombuffer(raw, dtype=">u8" if is_bigendian else "<u8", count=n)
    out = np.empty(n, dtype=EVENT_DTYPE)
    for i in range(0, n, _DECODE_CHUNK):  # chunks keep the intermediates in cache
        o, c = out[i : i + _DECODE_CHUNK], w[i : i + _DECODE_CHUNK]
        hi = (c >> np.uint64(32)).astype(np.uint32)
        o["t"] = (tb + c.astype(np.uint32).astype(np.int64)) // 1000
        o["x"] = hi.astype(np.uint16)
        o["y"] = (hi >> np.uint32(16)).astype(np.uint16) & np.uint16(0x7FFF)
        o["p"] = (hi >> np.uint32(31)).astype(np.int8) * np.int8(2) - np.int8(1)
    # only a time_base within 4.29 s of the end can put events past it: skip the pass otherwise
    late = out["t"] > MAX_STAMP_US if tb + 0xFFFFFFFF > MAX_STAMP_NS else None
    n_late = 0 if late is None else int(np.count_nonzero(late))
    if n_late:
        _fail_or_count(strict, stats, f"mono: {n_late} events after {MAX_STAMP_US} us")
        if stats is not None:
            stats.dropped_events += n_late
        out = out[~late]
    out = _drop_outside(out, sensor_size, strict, stats, "mono")
    if stats is not None:
        stats.events += out.size
    return out


def _drop_outside(out, sensor_size, strict, stats, what):
    if sensor_size is None or out.size == 0:
        return out
    bad = (out["x"] >= sensor_size[0]) | (out["y"] >= sensor_size[1])
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        _fail_or_count(strict, stats, f"{what}: {n_bad} events outside sensor {sensor_size}")
        if stats is not None:
            stats.dropped_events += n_bad
        out = out[~bad]
    return out


# --------------------------------------------------------------------------- EVT 3.0
EVT_ADDR_Y, EVT_ADDR_X, VECT_BASE_X, VECT_12, VECT_8 = 0x0, 0x2, 0x3, 0x4, 0x5
EVT_TIME_LOW, CONTINUED_4, EVT_TIME_HIGH, EXT_TRIGGER = 0x6, 0x7, 0x8, 0xA
OTHERS, CONTINUED_12 = 0xE, 0xF
_KNOWN_EVT3 = {
    EVT_ADDR_Y, EVT_ADDR_X, VECT_BASE_X, VECT_12, VECT_8, EVT_TIME_LOW, CONTINUED_4,
    EVT_TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED_12,
}  # fmt: skip
_TIME_WRAP_US = 1 << 24


@dataclass
class Evt3State:
    """Decoder state carried from one EVT 3.0 packet to the next (``-1`` = not seen yet)."""

    y: int = -1
    base_x: int = -1  # next x of a vector (after the last VECT_BASE_X and vectors)
    polarity: int = 0  # of vectors, 0/1
    time_high: int = -1  # last TIME_HIGH value (12 bits)
    time_low: int = 0  # last TIME_LOW since that TIME_HIGH
    loops: int = 0  # 24-bit time wraps seen


#: the 4-bit word types EVT 3.0 does not define (a corrupt stream): 0x1, 0x9, 0xB-0xD
EVT3_UNKNOWN_TYPES = tuple(t for t in range(16) if t not in _KNOWN_EVT3)
_POPCOUNT12 = np.array([bin(i).count("1") for i in range(4096)], dtype=np.int32)


_EVT3_CHUNK_WORDS = 1 << 16  # words per pass: every intermediate array stays in cache


def evt3_decode(
    payload: bytes | bytearray | memoryview,
    state: Evt3State | None = None,
    sensor_size: tuple[int, int] | None = None,
    strict: bool = True,
    stats: DecodeStats | None = None,
    max_events: int | None = None,
) -> np.ndarray:
    """Decode Prophesee EVT 3.0 words (little endian u16) into events (``t`` in sensor µs).

    Pass the same ``state`` for consecutive packets to carry y / x base / polarity / time and
    the 24-bit time wraps across packets (updated in place).  Events before the first
    TIME_HIGH / ADDR_Y / VECT_BASE_X they need are dropped and counted (or raise, ``strict``).
    EXT_TRIGGER, OTHERS and CONTINUED words are skipped; unknown word types raise (``strict``)
    or are counted in ``stats.unknown_words``.  An odd byte count drops the last byte.
    ``max_events``: keep only the newest ones while decoding (the rest counted in
    ``stats.overflow_events``), so memory stays bounded by it plus one chunk, whatever
    the payload expands to (EVT 3.0 vectors pack up to 12 events in 2 bytes).
    """
    st = state if state is not None else Evt3State()
    raw = _byte_view(payload, "evt3")
    n, rest = divmod(raw.nbytes, 2)
    if rest:
        _fail_or_count(strict, stats, f"evt3 payload of {raw.nbytes} bytes is odd (truncated)")
        if stats is not None:
            stats.dropped_bytes += rest
    words = np.frombuffer(raw, dtype="<u2", count=n)
    # long payloads go through in chunks; the state carries across them as across packets
    parts: deque[np.ndarray] = deque()
    kept = overflow = 0
    for i in range(0, n, _EVT3_CHUNK_WORDS):
        part = _evt3_decode_words(words[i : i + _EVT3_CHUNK_WORDS], st, strict, stats)
        parts.append(part)
        kept += part.size
        while max_events is not None and kept > max_events:
            excess = kept - max_events
            if parts[0].size <= excess:
                excess = parts.popleft().size
            else:
                parts[0] = parts[0][excess:].copy()  # a copy: the full chunk can go
            kept -= excess
            overflow += excess
    if stats is not None:
        stats.overflow_events += overflow
    out = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else empty_events()
    out = _drop_outside(out, sensor_size, strict, stats, "evt3")
    if stats is not None:
        stats.events += out.size
    return out


def _fill_at(
    pos: np.ndarray, values: np.ndarray, initial: int, n: int, at: np.ndarray
) -> np.ndarray:
    """At word positions ``at``: the value of the last marker (``pos``) at or before them.

    ``initial`` applies before the first marker (the state from the previous packet).
    The fill is one ``np.repeat`` of the marker values over the chunk (cheaper than a
    cumulative count), then a gather.
    """
    if pos.size == 0:
        return np.full(at.size, initial, np.int64)
    filled = np.empty(n, np.int64)
    filled[: pos[0]] = initial
    filled[pos[0] :] = np.repeat(np.asarray(values, np.int64), np.diff(np.append(pos, n)))
    return filled[at]


def _evt3_decode_words(
    words: np.ndarray, st: Evt3State, strict: bool, stats: DecodeStats | None
) -> np.ndarray:
    """One chunk of EVT 3.0 words -> events; updates ``st``."""
    n = words.size
    typ = (words >> 12).astype(np.uint8)
    val = words & np.uint16(0x0FFF)

    # EVT3_UNKNOWN_TYPES as comparisons: 5x faster here than a lookup table
    unknown = (typ == 0x1) | (typ == 0x9) | ((typ >= 0xB) & (typ <= 0xD))
    n_unknown = int(np.count_nonzero(unknown))
    if n_unknown:
        bad = np.unique(typ[unknown]).tolist()
        _fail_or_count(strict, stats, f"evt3: {n_unknown} words of unknown type {bad}")
        if stats is not None:
            stats.unknown_words += n_unknown

    is_hi = typ == EVT_TIME_HIGH
    p_hi = np.flatnonzero(is_hi)
    p_tm = np.flatnonzero(is_hi | (typ == EVT_TIME_LOW))
    p_y = np.flatnonzero(typ == EVT_ADDR_Y)
    p_base = np.flatnonzero(typ == VECT_BASE_X)
    is_x = typ == EVT_ADDR_X
    is_v12 = typ == VECT_12
    is_v8 = typ == VECT_8
    has_vec = bool(p_base.size) or bool(is_v12.any()) or bool(is_v8.any())
    prod = np.flatnonzero(is_x | is_v12 | is_v8) if has_vec else np.flatnonzero(is_x)

    # time: TIME_HIGH (12 bits << 12) resets the low part; a decrease of it is a 24-bit wrap
    hi_vals = val[p_hi].astype(np.int64)
    prev_hi = np.concatenate([[st.time_high], hi_vals[:-1]])
    wraps = np.cumsum((hi_vals < prev_hi) & (prev_hi >= 0)) + st.loops
    hi_abs = wraps * _TIME_WRAP_US + (hi_vals << 12)
    init_hi = st.loops * _TIME_WRAP_US + (st.time_high << 12) if st.time_high >= 0 else -1
    lo_vals = np.where(is_hi[p_tm], 0, val[p_tm])
    hi_at = _fill_at(p_hi, hi_abs, init_hi, n, prod)
    t_at = np.where(hi_at >= 0, hi_at + _fill_at(p_tm, lo_vals, st.time_low, n, prod), -1)
    y_vals = val[p_y] & 0x7FF
    y_at = _fill_at(p_y, y_vals, st.y, n, prod)
    pv = val[prod].astype(np.int64)

    no_base = -(1 << 40)
    base_init = st.base_x if st.base_x >= 0 else no_base
    cs_total, base_vals = 0, np.zeros(0, np.int64)
    if not has_vec:  # only single-event words (ADDR_X): one event per word
        ev_t, ev_y, ev_x, ev_p = t_at, y_at, pv & 0x7FF, ((pv >> 11) & 1).astype(np.int8)
        total = prod.size
    else:
        # x of a vector's bit 0 = x at the last VECT_BASE_X + 12 / 8 per vector word since
        inc = is_v12.astype(np.int32) * 12 + is_v8.astype(np.int32) * 8
        cs_excl = np.cumsum(inc, dtype=np.int64) - inc
        cs_total = int(cs_excl[-1] + inc[-1])
        base_vals = (val[p_base] & 0x7FF).astype(np.int64) - cs_excl[p_base]
        x0_at = _fill_at(p_base, base_vals, base_init, n, prod) + cs_excl[prod]
        pol_vec = _fill_at(p_base, (val[p_base] >> 11) & 1, st.polarity, n, prod)
        px = is_x[prod]
        x0_at = np.where(px, pv & 0x7FF, x0_at)
        pol_at = np.where(px, (pv >> 11) & 1, pol_vec)
        mask = np.where(px, 1, np.where(is_v8[prod], pv & 0xFF, pv))
        counts = _POPCOUNT12[mask]
        # events in stream order without sorting: word k's events start at offsets[k]
        offsets = np.cumsum(counts) - counts
        total = int(offsets[-1] + counts[-1]) if prod.size else 0
        ev_t = np.empty(total, np.int64)
        ev_y = np.empty(total, np.int64)
        ev_x = np.empty(total, np.int64)
        ev_p = np.empty(total, np.int8)
        single = np.flatnonzero(px)
        o = offsets[single]
        ev_t[o], ev_y[o] = t_at[single], y_at[single]
        ev_x[o], ev_p[o] = x0_at[single], pol_at[single]
        vec = np.flatnonzero(~px)
        if vec.size:
            bits = np.unpackbits(
                mask[vec].astype("<u2").view(np.uint8).reshape(-1, 2), axis=1, bitorder="little"
            )[:, :12]
            row, bit = np.nonzero(bits)
            k = vec[row]
            o = offsets[k] + (np.arange(row.size) - (np.cumsum(counts[vec]) - counts[vec])[row])
            ev_t[o], ev_y[o] = t_at[k], y_at[k]
            ev_x[o], ev_p[o] = x0_at[k] + bit, pol_at[k]

    valid = (ev_t >= 0) & (ev_y >= 0) & (ev_x >= 0)
    n_invalid = int(total - np.count_nonzero(valid))
    if n_invalid:
        _fail_or_count(
            strict, stats, f"evt3: {n_invalid} events before their time/y/x base were set"
        )
    wide = valid & (ev_x > 0x7FF)  # vector runs past the 11-bit address range: corrupt
    n_wide = int(np.count_nonzero(wide))
    if n_wide:
        _fail_or_count(strict, stats, f"evt3: {n_wide} vector events beyond x = 2047")
        valid &= ~wide
    if stats is not None:
        stats.dropped_events += n_invalid + n_wide
    if n_invalid or n_wide:
        ev_t, ev_y, ev_x, ev_p = ev_t[valid], ev_y[valid], ev_x[valid], ev_p[valid]
    out = np.empty(ev_t.size, dtype=EVENT_DTYPE)
    out["t"], out["y"], out["x"] = ev_t, ev_y, ev_x
    out["p"] = ev_p * np.int8(2) - np.int8(1)

    # carry the state to the next packet
    if hi_vals.size:
        st.time_high = int(hi_vals[-1])
        st.loops = int(wraps[-1])
    if lo_vals.size:
        st.time_low = int(lo_vals[-1])
    if y_vals.size:
        st.y = int(y_vals[-1])
    if base_vals.size:  # x where the next vector word starts
        st.base_x = int(base_vals[-1]) + cs_total
        st.polarity = int(val[p_base[-1]] >> 11) & 1
    elif st.base_x >= 0:
        st.base_x += cs_total
    return out


def evt3_encode(events: np.ndarray, use_vectors: bool = True) -> bytes:
    """Encode events as EVT 3.0 words (inverse of :func:`evt3_decode` from a fresh state).

    Times are sensor µs (``t >= 0``).  TIME_HIGH is written when ``t >> 12`` changes, with
    extra TIME_HIGH words so that consecutive ones are never more than half a 24-bit wrap
    apart (the decoder then counts wraps unambiguously).  With ``use_vectors``, runs of
    events with the same ``t, y, p`` and increasing ``x`` become VECT_BASE_X + VECT_12 words.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise ValueError("evt3_encode needs an EVENT_DTYPE array")
    n = events.size
    if n == 0:
        return b""
    t = events["t"].astype(np.int64)
    if t.min() < 0 or np.any(np.diff(t) < 0):
        raise ValueError("evt3_encode: times must be >= 0 and non-decreasing")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if x.max() > 0x7FF or y.max() > 0x7FF:
        raise ValueError("evt3: x and y must be < 2048")
    pol = (events["p"] > 0).astype(np.int64)

    # groups: consecutive events with equal (t, y, p) and x increasing inside the group
    same = np.zeros(n, bool)
    same[1:] = (t[1:] == t[:-1]) & (y[1:] == y[:-1]) & (pol[1:] == pol[:-1]) & (x[1:] > x[:-1])
    if not use_vectors:
        same[:] = False
    gstart = np.flatnonzero(~same)
    gid = np.cumsum(~same) - 1
    gsize = np.diff(np.append(gstart, n))
    ng = gstart.size
    g_t, g_y, g_p, g_x0 = t[gstart], y[gstart], pol[gstart], x[gstart]

    keys: list[np.ndarray] = []  # (group, slot, sub) sort keys
    wds: list[np.ndarray] = []

    def emit(group, slot, sub, word):
        keys.append(np.stack([np.asarray(group), np.full(len(group), slot), np.asarray(sub)]))
        wds.append(np.asarray(word, dtype=np.int64))

    # TIME_HIGH with bridging words every 2048 steps of t >> 12
    hi = g_t >> 12
    prev = np.concatenate([[-1], hi[:-1]])
    changed = hi != prev
    gaps = np.where(changed, np.where(prev < 0, 1, -(-(hi - prev) // 2048)), 0)
    gi = np.repeat(np.arange(ng), gaps)
    k = np.arange(gi.size) - np.repeat(np.cumsum(gaps) - gaps, gaps)  # 0..gaps-1
    first = prev[gi] < 0
    hv = np.where(first, hi[gi], np.minimum(prev[gi] + 2048 * (k + 1), hi[gi]))
    emit(gi, 0, k, (EVT_TIME_HIGH << 12) | (hv & 0xFFF))
    # TIME_LOW when t changed
    tchg = np.flatnonzero(g_t != np.concatenate([[-1], g_t[:-1]]))
    emit(tchg, 1, np.zeros(tchg.size), (EVT_TIME_LOW << 12) | (g_t[tchg] & 0xFFF))
    # ADDR_Y when y changed (or first)
    ychg = np.flatnonzero(g_y != np.concatenate([[-1], g_y[:-1]]))
    emit(ychg, 2, np.zeros(ychg.size), (EVT_ADDR_Y << 12) | g_y[ychg])
    # single events: ADDR_X
    single = np.flatnonzero(gsize == 1)
    emit(single, 3, np.zeros(single.size), (EVT_ADDR_X << 12) | (g_p[single] << 11) | g_x0[single])
    # vector groups: VECT_BASE_X then one VECT_12 per 12 columns from x0
    multi = np.flatnonzero(gsize > 1)
    emit(multi, 3, np.zeros(multi.size), (VECT_BASE_X << 12) | (g_p[multi] << 11) | g_x0[multi])
    if multi.size:
        in_multi = gsize[gid] > 1
        ev_idx = np.flatnonzero(in_multi)
        off = x[ev_idx] - g_x0[gid[ev_idx]]
        chunk = off // 12
        nchunks = np.zeros(ng, np.int64)
        np.maximum.at(nchunks, gid[ev_idx], chunk + 1)
        cg = np.repeat(np.arange(ng), nchunks)  # one word per (group, chunk), empty ones too
        cstart = np.cumsum(nchunks) - nchunks
        ck = np.arange(cg.size) - np.repeat(cstart, nchunks)
        masks = np.zeros(cg.size, np.int64)
        np.bitwise_or.at(masks, cstart[gid[ev_idx]] + chunk, 1 << (off % 12))
        emit(cg, 4, ck, (VECT_12 << 12) | masks)

    key = np.concatenate(keys, axis=1)
    word = np.concatenate(wds)
    order = np.lexsort((key[2], key[1], key[0]))
    return word[order].astype("<u2").tobytes()

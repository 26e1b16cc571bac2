"""Between an event source and the packets a controller reads: validation and a bounded buffer.

Plain numpy (no rclpy); ``ros/event_camera_node.py`` feeds it decoded messages and
publishes what :meth:`EventPacketizer.pop` returns every ``packet_ms``.

* Validation is per message: a message that cannot be decoded, or whose events fall
  outside the sensor, is dropped whole and counted (an out-of-range coordinate means a
  wrong sensor size or a corrupt message; neither should be half-trusted).
* The buffer holds at most ``max_buffered_events``.  Under a flood it drops the *oldest*
  events (a controller wants the newest) and counts them, so memory stays bounded by
  ``max_buffered_events × 13 bytes`` whatever the input rate.
* Output packets are sorted by time (inputs from several messages may interleave).

Real drivers' ``event_camera_msgs/EventPacket`` payloads are decoded by
:func:`decode_event_packet` into host (ROS) time: ``mono`` events are ``dt`` after the
header stamp; ``evt3`` carries sensor time only, mapped to ROS time with one offset fixed
at the first packet and re-anchored when it drifts by more than ``resync_us`` (a sensor
restart), so packet-to-packet jitter of the host stamp does not reorder events.  ``evt3``
words go through an :class:`~hybrid_snn_control.events.evt3_stream.Evt3StreamDecoder` (the
``evt3`` package when installed, else numpy: the same events either way).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

import numpy as np

from hybrid_snn_control.events.arrays import EVENT_DTYPE, empty_events
from hybrid_snn_control.events.codecs import (
    DecodeStats,
    EventTimeError,
    check_times_us,
    mono_decode,
)
from hybrid_snn_control.events.evt3_stream import Evt3StreamDecoder

__all__ = ["EventPacketTime", "EventPacketizer", "StreamCounters", "decode_event_packet"]


@dataclass
class StreamCounters:
    """Totals since start; reported on ``/diagnostics``."""

    messages_in: int = 0
    events_in: int = 0
    packets_out: int = 0
    events_out: int = 0
    dropped_malformed: int = 0  # messages that did not decode
    dropped_out_of_range: int = 0  # messages with events outside the sensor
    dropped_overflow_events: int = 0  # oldest events dropped to keep the buffer bounded
    dropped_bad_time: int = 0  # messages with times no ROS stamp can carry (< 1970, > 2038)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class EventPacketizer:
    """A bounded, validated event buffer, emptied into one sorted packet at a time."""

    def __init__(self, sensor_size: tuple[int, int], max_buffered_events: int) -> None:
        if max_buffered_events < 1:
            raise ValueError(f"max_buffered_events must be >= 1, got {max_buffered_events}")
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.max_buffered_events = int(max_buffered_events)
        self.counters = StreamCounters()
        self._chunks: deque[np.ndarray] = deque()
        self.buffered = 0

    def count_overflow(self, n: int) -> None:
        """Count events a decoder left out to stay within ``max_buffered_events``."""
        self.counters.dropped_overflow_events += int(n)

    def reject(self) -> None:
        """Count a message the caller could not decode."""
        self.counters.messages_in += 1
        self.counters.dropped_malformed += 1

    def push(self, events: np.ndarray) -> str | None:
        """Add one message's events; returns why it was dropped (None: accepted)."""
        self.counters.messages_in += 1
        if events.dtype != EVENT_DTYPE:
            self.counters.dropped_malformed += 1
            return f"events must be EVENT_DTYPE, got {events.dtype}"
        if events.size == 0:
            return None
        try:  # a time no stamp can carry would stop the publisher later: drop it here
            check_times_us(events)
        except EventTimeError as exc:
            self.counters.dropped_bad_time += 1
            return str(exc)
        w, h = self.sensor_size
        x_max, y_max = int(events["x"].max()), int(events["y"].max())
        if x_max >= w or y_max >= h:
            self.counters.dropped_out_of_range += 1
            return f"events outside the {w}x{h} sensor (max x={x_max}, y={y_max})"
        self.counters.events_in += events.size
        self._chunks.append(events)
        self.buffered += events.size
        self._trim()
        return None

    def _trim(self) -> None:
        excess = self.buffered - self.max_buffered_events
        while excess > 0:
            oldest = self._chunks[0]
            if oldest.size <= excess:
                self._chunks.popleft()
                dropped = oldest.size
            else:
                self._chunks[0] = oldest[excess:]
                dropped = excess
            excess -= dropped
            self.buffered -= dropped
            self.counters.dropped_overflow_events += dropped

    def pop(self) -> np.ndarray:
        """Everything buffered, as one array sorted by ``t`` (empty if nothing came)."""
        if not self._chunks:
            return empty_events()
        out = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        self._chunks.clear()
        self.buffered = 0
        t = out["t"]
        if t.size > 1 and np.any(t[1:] < t[:-1]):
            out = out[np.argsort(t, kind="stable")]
        self.counters.packets_out += 1
        self.counters.events_out += out.size
        return out


class EventPacketTime:
    """Sensor-time → ROS-time offset for ``evt3`` packets (see the module docstring)."""

    def __init__(self, resync_us: int = 100_000) -> None:
        self.resync_us = int(resync_us)
        self.offset_us: int | None = None
        self.resyncs = 0

    def to_host(self, events: np.ndarray, stamp_us: int) -> np.ndarray:
        if events.size == 0:
            return events
        implied = int(stamp_us) - int(events["t"][0])
        if self.offset_us is None:
            self.offset_us = implied
        elif abs(implied - self.offset_us) > self.resync_us:
            self.offset_us = implied
            self.resyncs += 1
        events["t"] += self.offset_us
        return events


def decode_event_packet(
    encoding: str,
    payload: bytes | bytearray | memoryview,
    stamp_us: int,
    is_bigendian: bool,
    sensor_size: tuple[int, int],
    evt3_decoder: Evt3StreamDecoder,
    evt3_time: EventPacketTime,
    max_events: int | None = None,
    stats: DecodeStats | None = None,
) -> np.ndarray:
    """An ``EventPacket``'s events in ROS-time µs; ``ValueError`` if it is malformed.

    Events outside ``sensor_size`` are returned (and rejected by :class:`EventPacketizer`).
    ``evt3_decoder`` carries the stream state from packet to packet; an ``evt3`` packet with
    an odd byte count or unknown word types is rejected before anything is decoded, so the
    state stays as it was.  ``max_events`` bounds an ``evt3`` payload while it is decoded:
    only the newest are kept (``stats.overflow_events`` counts the rest), so a 40 MB payload
    that expands to 63 M events never exists in memory at once.
    """
    stats = stats if stats is not None else DecodeStats()
    if encoding == "mono":
        # dt is relative to time_base; the header stamp is time_base in host time
        out = mono_decode(payload, int(stamp_us) * 1000, is_bigendian, strict=True, stats=stats)
    elif encoding == "evt3":
        if is_bigendian:
            raise ValueError("evt3 packets are little endian; is_bigendian=true is malformed")
        out = evt3_decoder.decode(payload, stats, max_events)
        out = evt3_time.to_host(out, stamp_us)
    else:
        raise ValueError(f"unsupported EventPacket encoding {encoding!r}; supported: mono, evt3")
    return out

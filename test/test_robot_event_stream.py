"""The event node's buffer and EventPacket decoding without ROS."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_snn_control.events import make_events
from hybrid_snn_control.events.codecs import DecodeStats, evt3_encode, mono_encode
from hybrid_snn_control.events.evt3_stream import Evt3StreamDecoder
from hybrid_snn_control.robot.event_stream import (
    EventPacketizer,
    EventPacketTime,
    decode_event_packet,
)


def events(n, t0=0, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), t0 + np.arange(n), rng.choice([-1, 1], n)
    )


def test_pop_returns_everything_sorted_and_empties_the_buffer():
    s = EventPacketizer((64, 48), 1000)
    late, early = events(10, t0=100), events(10, t0=0, seed=1)
    assert s.push(late) is None and s.push(early) is None
    out = s.pop()
    assert out.size == 20 and np.all(np.diff(out["t"]) >= 0)
    assert s.buffered == 0 and s.pop().size == 0
    assert (s.counters.events_in, s.counters.events_out, s.counters.packets_out) == (20, 20, 1)


def test_messages_with_events_outside_the_sensor_are_dropped_whole():
    s = EventPacketizer((64, 48), 1000)
    bad = events(10)
    bad["y"][3] = 48
    reason = s.push(bad)
    assert "outside the 64x48 sensor" in reason and "y=48" in reason
    assert s.buffered == 0 and s.counters.dropped_out_of_range == 1
    s.reject()
    assert s.counters.dropped_malformed == 1 and s.counters.messages_in == 2


def test_a_flood_drops_the_oldest_events_and_the_buffer_stays_bounded():
    s = EventPacketizer((64, 48), 2500)
    for k in range(10):
        s.push(events(1000, t0=1000 * k, seed=k))
        assert s.buffered <= 2500
    c = s.counters
    assert c.dropped_overflow_events == 7500
    out = s.pop()
    assert out.size == 2500 and out["t"][0] == 7500 and out["t"][-1] == 9999  # the newest
    assert c.events_in == c.events_out + c.dropped_overflow_events
    big = events(10_000)  # one message larger than the bound keeps its newest part
    s.push(big)
    assert s.buffered == 2500 and s.pop()["t"][0] == 7500


def test_mono_event_packets_decode_to_header_time():
    ev = events(50, t0=0)
    payload, _ = mono_encode(ev, time_base_ns=0)
    stamp_us = 1_700_000_000_000_000
    evt3 = Evt3StreamDecoder()
    out = decode_event_packet("mono", payload, stamp_us, False, (64, 48), evt3, None)
    np.testing.assert_array_equal(out["t"], ev["t"] + stamp_us)
    np.testing.assert_array_equal(out[["x", "y", "p"]], ev[["x", "y", "p"]])
    with pytest.raises(ValueError, match="multiple of 8"):
        decode_event_packet("mono", payload[:-3], stamp_us, False, (64, 48), evt3, None)


def test_evt3_packets_keep_one_sensor_to_host_offset_across_jittery_stamps():
    ev = events(400, t0=5000)
    payload = evt3_encode(ev)
    half = len(payload) // 2 // 2 * 2
    state, clock = Evt3StreamDecoder(), EventPacketTime(resync_us=100_000)
    a = decode_event_packet("evt3", payload[:half], 10_005_000, False, (64, 48), state, clock)
    b = decode_event_packet("evt3", payload[half:], 10_008_000, False, (64, 48), state, clock)
    got = np.concatenate([a, b])  # packet 2's host stamp is 3 ms late: ignored
    assert got.size == ev.size
    np.testing.assert_array_equal(got["t"], ev["t"] + 10_000_000)
    assert clock.resyncs == 0
    jumped = clock.to_host(events(5, t0=6000), 99_000_000)  # sensor restarted: re-anchor
    assert jumped["t"][0] == 99_000_000 and clock.resyncs == 1
    with pytest.raises(ValueError, match="unsupported EventPacket encoding"):
        decode_event_packet("libcaer_cmp", b"", 0, False, (64, 48), state, clock)


@pytest.mark.parametrize("backend", ["numpy", "evt3"])
@pytest.mark.parametrize("bad", [b"\x00", b"\x34\x12"], ids=["odd", "unknown word"])
def test_malformed_evt3_packets_are_rejected_before_they_touch_the_stream_state(backend, bad):
    if backend == "evt3":
        pytest.importorskip("evt3")
    ev = events(400, t0=5000)
    payload = evt3_encode(ev)
    half = len(payload) // 2 // 2 * 2
    decoder, clock = Evt3StreamDecoder(backend=backend), EventPacketTime()
    a = decode_event_packet("evt3", payload[:half], 10_005_000, False, (64, 48), decoder, clock)
    before = (decoder.state.y, decoder.state.time_high, decoder.state.time_low)
    with pytest.raises(ValueError, match="evt3 packet malformed"):
        # the bad words last: the good ones before them must not have moved the state
        decode_event_packet("evt3", payload[half:] + bad, 0, False, (64, 48), decoder, clock)
    assert (decoder.state.y, decoder.state.time_high, decoder.state.time_low) == before
    b = decode_event_packet("evt3", payload[half:], 10_008_000, False, (64, 48), decoder, clock)
    np.testing.assert_array_equal(np.concatenate([a, b])["t"], ev["t"] + 10_000_000)


def _dense_evt3(blocks: int) -> tuple[bytes, np.ndarray]:
    """Full rows of ON events: EVT 3.0 vectors pack them ~10 events per 2-byte word."""
    x = np.tile(np.arange(320), 60 * blocks)
    y = np.tile(np.repeat(np.arange(60), 320), blocks)
    t = np.repeat(np.arange(blocks * 60) * 10, 320)
    ev = make_events(x, y, t, np.ones(x.size, int))
    return evt3_encode(ev), ev


@pytest.mark.parametrize("backend", ["numpy", "evt3"])
def test_evt3_decoding_is_bounded_by_max_events_whatever_the_payload_expands_to(backend):
    # finding 4: a 40 MB evt3 payload expanded to 63 M events (1.66 GB) before the buffer
    # bound applied; with max_events the peak stays one chunk's worth for any payload size
    # (tracemalloc sees numpy's allocations, not the evt3 package's Rust ones)
    import tracemalloc

    if backend == "evt3":
        pytest.importorskip("evt3")
    peaks = []
    for blocks in (50, 200):
        payload, ev = _dense_evt3(blocks)
        stats = DecodeStats()
        tracemalloc.start()
        decoder = Evt3StreamDecoder(backend=backend)
        out = decode_event_packet(
            "evt3", payload, 0, False, (320, 60), decoder, EventPacketTime(),
            max_events=50_000, stats=stats,
        )  # fmt: skip
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out.size == 50_000 and stats.overflow_events == ev.size - 50_000
        tail = ev[-50_000:]  # the newest events are the ones kept (host time: shifted)
        np.testing.assert_array_equal(out[["x", "y", "p"]], tail[["x", "y", "p"]])
        np.testing.assert_array_equal(out["t"] - out["t"][0], tail["t"] - tail["t"][0])
    assert peaks[1] < 1.2 * peaks[0] + 5 * 2**20, peaks  # 4x the payload, same peak
    s = EventPacketizer((320, 60), 50_000)
    s.count_overflow(stats.overflow_events)
    assert s.counters.dropped_overflow_events == stats.overflow_events

"""Evt3StreamDecoder: the compiled (numba) and ``evt3`` package backends give the numpy
backend's events, counters and state packet by packet, on clean streams and on every edge
where the package alone would differ (stream starts, small TIME_HIGH falls, vectors past
x = 2047 and 65535)."""

from __future__ import annotations

from dataclasses import asdict, fields
from itertools import pairwise

import numpy as np
import pytest

from hybrid_snn_control.events import evt3_compiled, make_events
from hybrid_snn_control.events import evt3_stream as evt3_stream_module
from hybrid_snn_control.events.codecs import DecodeStats, Evt3State, evt3_decode, evt3_encode
from hybrid_snn_control.events.evt3_stream import Evt3StreamDecoder

TH, TL, Y, X, BASE, V12, V8 = 0x8, 0x6, 0x0, 0x2, 0x3, 0x4, 0x5
COUNTERS = [f.name for f in fields(DecodeStats) if f.name != "messages"]


def w(typ: int, val: int) -> int:
    return typ << 12 | val


def payload(words) -> bytes:
    return np.array(words, "<u2").tobytes()


def random_events(n, seed=0, span=3_000_000, width=346, height=260):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, width, n),
        rng.integers(0, height, n),
        np.sort(rng.integers(1_000_000, 1_000_000 + span, n)),
        rng.choice([-1, 1], n),
    )


def row_bursts(width, rows, dt_us, density, seed):
    rng = np.random.default_rng(seed)
    x = np.tile(np.arange(width), rows)
    y = np.repeat(np.arange(rows) % 480, width)
    t = np.repeat(np.arange(rows) * dt_us, width)
    keep = rng.random(x.size) < density
    ev = make_events(x[keep], y[keep], t[keep], rng.choice([-1, 1], keep.sum()))
    return ev[np.lexsort((ev["x"], ev["p"], ev["y"], ev["t"]))]


def split_at(data: bytes, cuts) -> list[bytes]:
    edges = [0, *sorted(int(c) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def run(backend, packets, **kwargs):
    """Per packet: the events (or the ValueError text), the counters and the state after."""
    dec = Evt3StreamDecoder(kwargs.pop("sensor_size", None), backend=backend)
    steps = []
    for p in packets:
        stats = DecodeStats()
        try:
            out = dec.decode(p, stats, **kwargs)
        except ValueError as exc:
            out = str(exc)
        steps.append((out, {c: getattr(stats, c) for c in COUNTERS}, asdict(dec.state)))
    return steps, dec


def same_in_both(packets, **kwargs):
    """Decode with every backend; assert identical steps; numpy's steps, package decoder."""
    pytest.importorskip("evt3")
    ours, _ = run("numpy", packets, **dict(kwargs))
    if evt3_compiled.compiled_available():
        compiled, dec = run("numba", packets, **dict(kwargs))
        assert dec.backend == "numba"
        assert_same_steps(ours, compiled)
    theirs, dec = run("evt3", packets, **kwargs)
    assert dec.backend == "evt3"
    assert_same_steps(ours, theirs)
    return ours, dec


def assert_same_steps(ours, theirs):
    assert len(ours) == len(theirs)
    for k, ((a, ca, sa), (b, cb, sb)) in enumerate(zip(ours, theirs)):
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, f"packet {k}"
        else:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=f"packet {k}")
        assert ca == cb, f"packet {k} counters"
        assert sa == sb, f"packet {k} state"


def events_of(steps):
    return np.concatenate([s[0] for s in steps if not isinstance(s[0], str)])


def total(steps, counter):
    return sum(s[1][counter] for s in steps)


# --------------------------------------------------------------------------- backends
def test_backend_choice():
    assert Evt3StreamDecoder(backend="numpy").backend == "numpy"
    with pytest.raises(ValueError, match="backend"):
        Evt3StreamDecoder(backend="rust")
    expected = "evt3" if evt3_stream_module.evt3_package_available() else "numpy"
    expected = "numba" if evt3_compiled.compiled_available() else expected
    assert Evt3StreamDecoder().backend == expected


def test_without_numba_auto_takes_the_package_and_without_both_numpy(monkeypatch):
    monkeypatch.setattr(evt3_compiled, "_compiled", None)
    with pytest.raises(ImportError, match="numba"):
        Evt3StreamDecoder(backend="numba")
    expected = "evt3" if evt3_stream_module.evt3_package_available() else "numpy"
    assert Evt3StreamDecoder().backend == expected
    monkeypatch.setattr(evt3_stream_module, "_evt3_package", None)
    assert Evt3StreamDecoder().backend == "numpy"
    with pytest.raises(ImportError, match="evt3"):
        Evt3StreamDecoder(backend="evt3")


def test_numpy_backend_is_evt3_decode_with_the_state_carried():
    ev = random_events(3000, span=50_000_000)
    data = evt3_encode(ev)
    dec = Evt3StreamDecoder(backend="numpy")
    parts = [dec.decode(p) for p in split_at(data, range(998, len(data), 998))]
    np.testing.assert_array_equal(np.concatenate(parts), ev)
    state = Evt3State()
    evt3_decode(data, state)
    assert dec.state == state


# --------------------------------------------------------------------------- clean streams
def test_random_events_split_at_even_offsets():
    ev = random_events(30_000, span=40_000_000)  # two 24-bit time wraps
    data = evt3_encode(ev)
    cuts = np.random.default_rng(1).integers(1, len(data) // 2, 40) * 2
    steps, dec = same_in_both(split_at(data, cuts))
    np.testing.assert_array_equal(events_of(steps), ev)
    assert dec.numpy_packets == 0  # the package decoded every packet


def test_row_bursts_with_vectors():
    ev = row_bursts(1280, 600, 25, 0.4, seed=2)
    data = evt3_encode(ev)
    assert len(data) // 2 < ev.size / 2  # vectors
    cuts = np.random.default_rng(2).integers(1, len(data) // 2, 12) * 2
    steps, dec = same_in_both(split_at(data, cuts))
    np.testing.assert_array_equal(events_of(steps), ev)
    assert dec.numpy_packets == 0


def test_time_wraps_as_the_sensor_sends_them():
    # TIME_HIGH steps by one, 4095 -> 0 at each 16.8 s wrap: the package's rule agrees
    words = [w(Y, 7)]
    for k in range(3 * 4096 + 50):
        words += [w(TH, k % 4096), w(X, k % 100)]
    steps, dec = same_in_both(split_at(payload(words), range(4000, 2 * len(words), 4000)))
    t = events_of(steps)["t"]
    assert t[-1] == (3 * 4096 + 49) << 12 and np.all(np.diff(t) > 0)
    assert dec.numpy_packets == 0 and dec.state.loops == 3


# --------------------------------------------------------------------------- edges
def test_payloads_split_at_odd_offsets():
    """Odd packets are rejected whole; the misaligned ones after decode the same garbage."""
    data = evt3_encode(random_events(20_000))
    cuts = np.random.default_rng(3).integers(1, len(data), 30)
    steps, _ = same_in_both(split_at(data, cuts))
    assert any(isinstance(s[0], str) and "odd" in s[0] for s in steps)


def test_sparse_events_whose_time_high_falls_less_than_the_package_counts_as_a_wrap():
    ev = random_events(2000, span=400_000_000)  # gaps of ~0.2 s: TIME_HIGH jumps ~50 steps
    data = evt3_encode(ev)
    steps, dec = same_in_both(split_at(data, range(998, len(data), 998)))
    np.testing.assert_array_equal(events_of(steps), ev)
    assert dec.numpy_packets > 0  # numpy took those packets


def test_a_stream_joined_mid_packet_drops_and_counts_events_before_their_bases():
    ev = row_bursts(640, 200, 25, 0.4, seed=4)
    data = evt3_encode(ev)[2 * 501 :]  # mid-row: vectors and events before TIME_HIGH / y
    steps, dec = same_in_both(split_at(data, range(5000, len(data), 5000)))
    assert total(steps, "dropped_events") > 0
    assert total(steps, "events") + total(steps, "dropped_events") > 0.9 * ev.size
    # numpy took the packets before the first TIME_HIGH (and the words up to it), no more
    first_time_high = int(np.flatnonzero(np.frombuffer(data, "<u2") >> 12 == TH)[0])
    assert dec.numpy_packets == 2 * first_time_high // 5000


def test_words_before_the_first_time_high_and_y_and_vectors_before_any_base():
    words = [w(Y, 3), w(X, 1), w(V12, 0xFFF), w(TH, 5), w(X, 2), w(Y, 9), w(X, 4)]
    words += [w(V8, 0xFF), w(BASE, 1 << 11 | 100), w(V12, 0x5), w(TL, 7), w(X, 1 << 11 | 8)]
    steps, _ = same_in_both([payload(words[:5]), payload(words[5:])])
    ev = events_of(steps)
    t = 5 << 12
    assert ev.tolist() == [
        (2, 3, t, -1), (4, 9, t, -1), (100, 9, t, 1), (102, 9, t, 1), (8, 9, t + 7, 1)
    ]  # fmt: skip
    assert total(steps, "dropped_events") == 1 + 12 + 8  # no time: ADDR_X 1, VECT_12; VECT_8


def test_unknown_words_and_odd_packets_are_rejected_before_decoding():
    good = evt3_encode(random_events(4000))
    half = len(good) // 2 // 2 * 2
    for bad in (good[:half] + payload([0x1234, 0x9ABC, 0xC000]), good[:half] + b"\x00"):
        packets = [good[:half], bad, good[half:]]
        steps, _ = same_in_both(packets)
        assert isinstance(steps[1][0], str) and "malformed" in steps[1][0]
        assert steps[1][2] == steps[0][2]  # state untouched by the rejected packet
        clean, _ = run("numpy", [good[:half], good[half:]])
        np.testing.assert_array_equal(steps[2][0], clean[1][0])
    assert steps[1][1]["dropped_bytes"] == 1
    numpy_only, _ = run("numpy", [good[:half] + payload([0x1234, 0x9ABC, 0xC000])])
    assert "3 words of unknown type [1, 9, 12]" in numpy_only[0][0]
    assert numpy_only[0][1]["unknown_words"] == 3


def test_vectors_beyond_x_2047_are_dropped_and_counted():
    setup = [w(TH, 1), w(Y, 10), w(BASE, 2040)]
    run_on = [w(V12, 0xFFF)] * 3 + [w(X, 5)]  # 8 kept (2040..2047), 28 beyond
    steps, dec = same_in_both([payload(setup), payload(run_on), payload([w(V12, 0xFFF)])])
    assert steps[1][0]["x"].tolist() == [*range(2040, 2048), 5]
    assert steps[1][1]["dropped_events"] == 28 and steps[2][1]["dropped_events"] == 12
    assert dec.numpy_packets == 0 and dec.state.base_x == 2040 + 48


def test_vector_runs_past_65535_where_the_package_x_would_wrap():
    setup = [w(TH, 1), w(Y, 10), w(BASE, 2000), w(V12, 0x001)]
    empty = [w(V12, 0)] * 5458 + [w(V8, 0x01)]  # x = 2012 + 65496 = 67508: uint16 wraps
    after = [w(BASE, 5), w(V12, 0x003), w(X, 9)]
    steps, dec = same_in_both([payload(setup), payload(empty), payload(after)])
    assert steps[1][0].size == 0 and steps[1][1]["dropped_events"] == 1
    assert steps[2][0]["x"].tolist() == [5, 6, 9]
    assert dec.numpy_packets == 1
    # the same run split across packets: the carried base counts too
    steps, dec = same_in_both([payload(setup + empty[:3000]), payload(empty[3000:] + after)])
    assert total(steps, "dropped_events") == 1 and dec.numpy_packets == 1


def test_the_package_is_primed_with_the_state_numpy_left():
    # a small TIME_HIGH fall sends packet 2 to numpy; packet 3 continues its vector run
    p1 = [w(TH, 100), w(Y, 10), w(BASE, 1 << 11 | 1000), w(V12, 0x1), w(TL, 3)]
    p2 = [w(TH, 90), w(TL, 9), w(V12, 0x2), w(Y, 11)]
    p3 = [w(V8, 0x80), w(V12, 0x1), w(X, 77)]
    steps, dec = same_in_both([payload(p1), payload(p2), payload(p3)])
    t = ((1 << 24) + (90 << 12)) + 9  # a fall is a wrap (ours)
    assert steps[2][0].tolist() == [(1031, 11, t, 1), (1032, 11, t, 1), (77, 11, t, -1)]
    assert dec.numpy_packets == 1


@pytest.mark.parametrize("feed_words", [1 << 16, 2000])
def test_max_events_keeps_the_newest_and_feeds_the_package_in_bounded_chunks(
    monkeypatch, feed_words
):
    pytest.importorskip("evt3")
    monkeypatch.setattr(evt3_stream_module, "_FEED_WORDS", feed_words)
    x = np.tile(np.arange(320), 60 * 60)  # full rows: ~10 events per word
    y = np.tile(np.repeat(np.arange(60), 320), 60)
    t = np.repeat(np.arange(60 * 60) * 10, 320)
    ev = make_events(x, y, t, np.ones(x.size, int))
    data = evt3_encode(ev)
    packets = [data[: len(data) // 4 * 2], data[len(data) // 4 * 2 :]]
    steps, _ = same_in_both(packets, max_events=50_000)
    np.testing.assert_array_equal(steps[1][0], ev[-50_000:])
    assert steps[0][1]["overflow_events"] + steps[1][1]["overflow_events"] == ev.size - 100_000
    dec, fed = Evt3StreamDecoder(backend="evt3"), []
    feed = dec._package.feed
    dec._package.feed = lambda b: fed.append(len(b)) or feed(b)
    for p in packets:
        dec.decode(p, max_events=50_000)
    assert max(fed) <= 2 * feed_words and len(fed) > len(data) // (2 * feed_words)


def test_events_outside_the_sensor_are_dropped_and_counted():
    ev = row_bursts(640, 100, 25, 0.5, seed=5)
    data = evt3_encode(ev)
    steps, _ = same_in_both(split_at(data, [len(data) // 2 // 2 * 2]), sensor_size=(600, 50))
    inside = ev[(ev["x"] < 600) & (ev["y"] < 50)]
    np.testing.assert_array_equal(events_of(steps), inside)
    assert total(steps, "dropped_events") == ev.size - inside.size


@pytest.mark.parametrize("seed", range(6))
def test_random_word_streams(seed):
    """Any known word types in any order: the same as numpy, packet by packet."""
    rng = np.random.default_rng(seed)
    types = np.array([Y, X, BASE, V12, V8, TL, 0x7, TH, 0xA, 0xE, 0xF])
    odds = np.array([3, 30, 0.05 if seed % 2 else 2, 20, 5, 20, 1, 3, 1, 1, 1])
    typ = rng.choice(types, 60_000, p=odds / odds.sum())
    val = rng.integers(0, 4096, typ.size)
    steps = rng.choice([0, 1, 1, 2, 3] if seed < 3 else [0, 1, 2, 40, -7], (typ == TH).sum())
    val[typ == TH] = np.cumsum(steps) % 4096
    data = ((typ << 12) | val).astype("<u2").tobytes()
    cuts = rng.integers(1, len(data) // 2, 10) * 2
    same_in_both(split_at(data, cuts))
    same_in_both(split_at(data, cuts), max_events=700)


def test_compiled_output_is_bounded_by_max_events_on_a_vector_flood():
    """12 events per 2-byte word: the compiled decoder's buffer stays at max_events."""
    if not evt3_compiled.compiled_available():
        pytest.skip("numba not installed")
    words = [w(TH, 1), w(Y, 3)]
    for _ in range(2000):
        words += [w(BASE, 0), *[w(V12, 0xFFF)] * 170]  # x 0..2039 in every run
    state, stats = Evt3State(), DecodeStats()
    data = np.frombuffer(payload(words), "<u2")
    out = evt3_compiled.evt3_decode_compiled(data, state, stats=stats, max_events=5000)
    assert out.size == 5000
    held = out if out.base is None else out.base
    assert held.size <= 5000
    assert stats.overflow_events == 2000 * 2040 - 5000 and stats.events == 5000
    np.testing.assert_array_equal(out, evt3_decode(data.tobytes())[-5000:])

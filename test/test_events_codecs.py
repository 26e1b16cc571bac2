"""Codecs: exact round trips (PointCloud2, EventPacket mono / evt3), foreign layouts, and
corrupt input giving a clear error or a counted partial decode."""

import numpy as np
import pytest

from hybrid_snn_control.events import make_events
from hybrid_snn_control.events.codecs import (
    FLOAT32,
    FLOAT64,
    INT8,
    POINTCLOUD2_FIELDS,
    UINT8,
    UINT16,
    UINT32,
    DecodeStats,
    Evt3State,
    PointFieldSpec,
    evt3_decode,
    evt3_encode,
    mono_decode,
    mono_encode,
    pointcloud2_decode,
    pointcloud2_encode,
)


def random_events(n=5000, seed=0, t0=1_000_000, span=3_000_000, w=346, h=260):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, w, n),
        rng.integers(0, h, n),
        np.sort(rng.integers(t0, t0 + span, n)),
        rng.choice([-1, 1], n),
    )


def test_pointcloud2_round_trip_is_exact():
    ev = random_events()
    pc = pointcloud2_encode(ev)
    assert pc.point_step == 9 and pc.row_step == 9 * ev.size and pc.height == 1
    assert pc.stamp_us == ev["t"][0] and len(pc.data) == 9 * ev.size
    assert [(f.name, f.offset, f.datatype) for f in pc.fields] == [
        ("x", 0, UINT16),
        ("y", 2, UINT16),
        ("t", 4, UINT32),
        ("p", 8, INT8),
    ]
    back = pointcloud2_decode(pc.data, pc.fields, pc.point_step, pc.stamp_us, width=pc.width)
    np.testing.assert_array_equal(back, ev)
    # explicit stamp earlier than the first event
    pc = pointcloud2_encode(ev, stamp_us=500)
    np.testing.assert_array_equal(pointcloud2_decode(pc.data, stamp_us=500), ev)
    # empty packet
    empty = pointcloud2_encode(ev[:0])
    assert pointcloud2_decode(empty.data, empty.fields, empty.point_step).size == 0


def test_pointcloud2_little_endian_bytes_layout():
    ev = make_events([0x0102], [0x0304], [1_000_000 + 0x05060708], [-1])
    pc = pointcloud2_encode(ev, stamp_us=1_000_000)
    assert pc.data == bytes([0x02, 0x01, 0x04, 0x03, 0x08, 0x07, 0x06, 0x05, 0xFF])


def test_pointcloud2_decodes_foreign_layout_from_fields():
    """A CARLA-like layout: float64 t in seconds, uint8 polarity 0/1, padding, other order."""
    ev = random_events(100)
    dt = np.dtype(
        {
            "names": ["t", "x", "y", "p"],
            "formats": ["<f8", "<u2", "<u2", "u1"],
            "offsets": [0, 8, 12, 16],
            "itemsize": 20,
        }
    )
    buf = np.zeros(ev.size, dt)
    buf["t"] = (ev["t"] - 1_000_000) * 1e-6
    buf["x"], buf["y"], buf["p"] = ev["x"], ev["y"], (ev["p"] > 0)
    fields = [
        {"name": "x", "offset": 8, "datatype": UINT16, "count": 1},
        {"name": "y", "offset": 12, "datatype": UINT16, "count": 1},
        {"name": "t", "offset": 0, "datatype": FLOAT64, "count": 1},
        {"name": "p", "offset": 16, "datatype": UINT8, "count": 1},
        {"name": "intensity", "offset": 17, "datatype": UINT8, "count": 1},
    ]
    back = pointcloud2_decode(buf.tobytes(), fields, 20, stamp_us=1_000_000)
    np.testing.assert_array_equal(back, ev)
    # big endian data with the same fields
    be = buf.astype(dt.newbyteorder(">"))
    back = pointcloud2_decode(be.tobytes(), fields, 20, stamp_us=1_000_000, is_bigendian=True)
    np.testing.assert_array_equal(back, ev)
    buf["t"][3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pointcloud2_decode(buf.tobytes(), fields, 20)


@pytest.mark.parametrize(
    "fields, step, nbytes, match",
    [
        (POINTCLOUD2_FIELDS[:3], 9, 18, r"no field\(s\) \['p'\]"),
        ([*POINTCLOUD2_FIELDS[:3], PointFieldSpec("p", 8, 42)], 9, 18, "unsupported"),
        ([*POINTCLOUD2_FIELDS[:3], PointFieldSpec("p", 8, INT8, 3)], 9, 18, "count"),
        ([*POINTCLOUD2_FIELDS[:3], PointFieldSpec("p", 8, FLOAT32)], 9, 18, "does not fit"),
        (POINTCLOUD2_FIELDS, 9, 17, "not a multiple"),
    ],
)
def test_pointcloud2_bad_layouts_are_rejected(fields, step, nbytes, match):
    with pytest.raises(ValueError, match=match):
        pointcloud2_decode(bytes(nbytes), fields, step)


def test_pointcloud2_size_mismatch_and_time_overflow():
    pc = pointcloud2_encode(random_events(10))
    with pytest.raises(ValueError, match="width"):
        pointcloud2_decode(pc.data, pc.fields, pc.point_step, width=11)
    ev = make_events([0, 0], [0, 0], [0, 2**32 + 5], [1, 1])
    with pytest.raises(ValueError, match="split the packet"):
        pointcloud2_encode(ev)
    bad_p = bytearray(pointcloud2_encode(random_events(3)).data)
    bad_p[8] = 7
    with pytest.raises(ValueError, match="polarity"):
        pointcloud2_decode(bytes(bad_p))


def test_mono_round_trip_and_bit_layout():
    ev = random_events()
    payload, time_base_ns = mono_encode(ev)
    assert len(payload) == 8 * ev.size
    np.testing.assert_array_equal(mono_decode(payload, time_base_ns), ev)
    one = make_events([5], [7], [2], [1])
    word = int.from_bytes(mono_encode(one, time_base_ns=1000)[0], "little")
    assert word == (1 << 63) | (7 << 48) | (5 << 32) | 1000
    # big endian payload
    be = np.frombuffer(payload, "<u8").astype(">u8").tobytes()
    np.testing.assert_array_equal(mono_decode(be, time_base_ns, is_bigendian=True), ev)


def test_mono_truncated_payload():
    ev = random_events(10)
    payload, tb = mono_encode(ev)
    with pytest.raises(ValueError, match="multiple of 8"):
        mono_decode(payload[:-3], tb)
    stats = DecodeStats()
    part = mono_decode(payload[:-3], tb, strict=False, stats=stats)
    np.testing.assert_array_equal(part, ev[:9])
    assert stats.dropped_bytes == 5 and stats.events == 9
    stats = DecodeStats()
    inside = mono_decode(payload, tb, sensor_size=(100, 100), strict=False, stats=stats)
    assert stats.dropped_events == ev.size - inside.size > 0


@pytest.mark.parametrize("use_vectors", [True, False])
def test_evt3_round_trip_is_exact(use_vectors):
    ev = random_events(20_000, span=40_000_000)  # spans two 24-bit time wraps
    np.testing.assert_array_equal(evt3_decode(evt3_encode(ev, use_vectors)), ev)


def row_bursts(width: int, rows: int, dt_us: int, density: float, seed: int) -> np.ndarray:
    """Row-ordered bursts (a sensor readout): the case EVT 3.0 vectors are for."""
    rng = np.random.default_rng(seed)
    x = np.tile(np.arange(width), rows)
    y = np.repeat(np.arange(rows), width)
    t = np.repeat(np.arange(rows) * dt_us, width)
    keep = rng.random(x.size) < density
    ev = make_events(x[keep], y[keep], t[keep], rng.choice([-1, 1], keep.sum()))
    return ev[np.lexsort((ev["x"], ev["p"], ev["y"], ev["t"]))]


def test_evt3_vectors_round_trip_and_compress():
    ev = row_bursts(300, 40, 3000, 0.6, seed=1)
    payload = evt3_encode(ev)
    assert len(payload) // 2 < ev.size / 2  # vectors: far fewer words than events
    np.testing.assert_array_equal(evt3_decode(payload), ev)


def test_evt3_state_carries_across_packets_and_long_gaps():
    ev = random_events(3000, span=50_000_000)
    payload = evt3_encode(ev)
    state = Evt3State()
    parts = [evt3_decode(payload[i : i + 998], state) for i in range(0, len(payload), 998)]
    np.testing.assert_array_equal(np.concatenate(parts), ev)
    gaps = make_events([1, 2, 3], [1, 1, 1], [5, 40_000_000, 40_000_100], [1, -1, 1])
    np.testing.assert_array_equal(evt3_decode(evt3_encode(gaps)), gaps)


def test_evt3_known_word_layout():
    # TIME_HIGH 0x001, TIME_LOW 0x005, ADDR_Y 10, ADDR_X x=3 ON, VECT_BASE_X 20 OFF, VECT_8 0b101
    words = [0x8001, 0x6005, 0x000A, 0x2803, 0x3014, 0x5005, 0xA000, 0xE123]
    ev = evt3_decode(np.array(words, "<u2").tobytes())
    t = (1 << 12) + 5
    assert ev.tolist() == [(3, 10, t, 1), (20, 10, t, -1), (22, 10, t, -1)]


def test_evt3_corrupt_payloads_error_or_count_never_hang():
    ev = random_events(2000)
    payload = evt3_encode(ev)
    with pytest.raises(ValueError, match="odd"):
        evt3_decode(payload[:-1])
    stats = DecodeStats()
    part = evt3_decode(payload[:-1], strict=False, stats=stats)
    assert stats.dropped_bytes == 1 and part.size >= ev.size - 1
    with pytest.raises(ValueError, match="before their time"):
        evt3_decode(np.array([0x2803], "<u2").tobytes())  # event with no time / y yet
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 2**16, 50_000, dtype=np.uint16).tobytes()
    with pytest.raises(ValueError, match="unknown type"):
        evt3_decode(garbage)
    stats = DecodeStats()
    out = evt3_decode(garbage, strict=False, stats=stats, sensor_size=(1280, 720))
    assert stats.unknown_words > 0 and stats.events == out.size
    assert out.size == 0 or (out["x"].max() < 1280 and out["y"].max() < 720)


def test_pointcloud2_through_a_real_sensor_msgs_message():
    """The ROS side: PointField objects and array('B') data (rclpy's uint8[] type) work."""
    msgs = pytest.importorskip("sensor_msgs.msg")
    ev = random_events(300)
    pc = pointcloud2_encode(ev)
    m = msgs.PointCloud2(
        fields=[
            msgs.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in pc.fields
        ],
        point_step=pc.point_step,
        row_step=pc.row_step,
        width=pc.width,
        height=pc.height,
        is_bigendian=pc.is_bigendian,
        is_dense=True,
        data=pc.data,
    )
    back = pointcloud2_decode(
        m.data, m.fields, m.point_step, pc.stamp_us, m.width, m.height, m.is_bigendian
    )
    np.testing.assert_array_equal(back, ev)


def test_stamp_conversions_are_exact():
    from hybrid_snn_control.events.codecs import stamp_to_us, us_to_stamp

    for t in (0, 1, 999_999, 1_000_000, 1_700_000_000_123_456):
        assert stamp_to_us(*us_to_stamp(t)) == t
    assert us_to_stamp(1_500_000) == (1, 500_000_000)


def test_evt3_decode_matches_the_maintained_evt3_package():
    # the Rust decoder on PyPI (DEV extra) as the reference, random and vector payloads
    evt3 = pytest.importorskip("evt3")
    rows = row_bursts(640, 40, 25, 0.4, seed=3)
    for ev in (random_events(50_000, span=40_000_000), rows):
        payload = evt3_encode(ev)
        theirs, ours = evt3.decode_bytes(payload, 640, 480), evt3_decode(payload)
        np.testing.assert_array_equal(theirs.x, ours["x"])
        np.testing.assert_array_equal(theirs.y, ours["y"])
        np.testing.assert_array_equal(theirs.timestamp.astype(np.int64), ours["t"])
        np.testing.assert_array_equal(np.where(theirs.polarity > 0, 1, -1), ours["p"])

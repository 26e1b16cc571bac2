"""Throughput of the event pipeline, each against a per-pixel / per-event reference in the same run.

* frames -> events: ``EventCameraSimulator`` vs the slow per-pixel reference
  (``hybrid_snn_control/events/_reference.py``) on the same frames, at 64x64 and 346x260,
  for a "typical" scene (a textured object circling over a static background at 0.5 px per
  frame), "fast" (the same at 3 px per frame) and "busy" (the whole textured view panning,
  as under ego-motion); the fraction of pixels that fired per frame is in each row.
  The reference's output is checked to be identical on the frames it timed.
* decode: PointCloud2, EventPacket ``mono`` and ``evt3`` (random events, worst case for evt3,
  and row-ordered events that use EVT 3.0 vectors) vs a per-event ``struct`` decoder; with
  the ``evt3`` package installed, the package alone vs ``evt3_decode``, and the event node's
  path (``Evt3StreamDecoder`` over 256 KiB packets -> EVENT_DTYPE) with the package backend
  vs the numpy backend; with numba too, our compiled decoder (``evt3_compiled``) alone and in
  the node path vs the package (the reference there), same run, same output checked.
* encoders: ``event_frame``, ``voxel_grid``, ``time_surface`` vs per-event loops.

Single thread (``torch.set_num_threads(1)``; numpy here is single threaded).  Times are
process CPU time (``--wall`` for wall clock), the median of ``--repeats`` runs.
Targets (issue 4): >= 1000 frames/s at 346x260 for a typical scene, >= 100 M events/s
PointCloud2 decode.

    .venv/bin/python bench/bench_events.py [--quick] [--json] [--only decode]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


# CPU time of this (single-threaded) process: on a machine shared with other jobs, wall
# time also counts the time we were descheduled.  --wall switches to wall-clock time.
_clock = time.process_time


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = _clock()
        fn()
        times.append(_clock() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ scenes
def render_scene(kind: str, w: int, h: int, n_frames: int, px_per_frame: float = 0.5):
    """uint8 gray frames at 1 kHz: 'typical' (a textured disk circles over a static
    background) or 'busy' (the whole textured view pans, as under ego-motion)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    kx, ky = rng.uniform(0.15, 0.4, 2)
    r = 0.15 * min(w, h)
    frames = []
    orbit = 0.25 * min(w, h)  # the object circles at px_per_frame, always in view
    for k in range(n_frames):
        shift = k * px_per_frame
        if kind == "busy":
            img = 0.45 + 0.3 * np.sin((xx + shift) * kx) * np.sin(yy * ky)
        else:
            img = 0.3 + 0.1 * np.sin(xx * kx) * np.sin(yy * ky)
            phase = shift / orbit
            cx, cy = w / 2 + orbit * np.cos(phase), h / 2 + orbit * np.sin(phase)
            d = np.hypot(xx - cx, yy - cy)
            cover = np.clip(r - d + 0.5, 0, 1)
            tex = 0.8 + 0.1 * np.cos(5 * np.arctan2(yy - cy, xx - cx))
            img = img * (1 - cover) + tex * cover
        frames.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    times = np.arange(n_frames, dtype=np.int64) * 1000
    return frames, times


def bench_simulator(w, h, kind, n_frames, n_ref_frames, repeats):
    from hybrid_snn_control.events import EventCameraSimulator, SimulatorParams
    from hybrid_snn_control.events._reference import ReferenceSimulator

    params = SimulatorParams.preset("clean")
    scene, speed = {"typical": ("typical", 0.5), "fast": ("typical", 3.0), "busy": ("busy", 0.5)}[
        kind
    ]
    frames, times = render_scene(scene, w, h, n_frames + 1, speed)
    stats = {}

    def run_fast():
        sim = EventCameraSimulator(w, h, params, seed=0)
        sim.feed(frames[0], times[0])
        n_ev = fired = 0
        for f, t in zip(frames[1:], times[1:]):
            n_ev += sim.feed(f, t).size
            fired += sim.stats["pixels_fired"]
        stats.update(events=n_ev, fired=fired)

    fast_s = median_time(run_fast, repeats) / n_frames  # s per frame (first frame excluded)

    ref = ReferenceSimulator(w, h, params, seed=0)
    fast = EventCameraSimulator(w, h, params, seed=0)
    ref.feed(frames[0], times[0])
    fast.feed(frames[0], times[0])
    ref_times, same = [], True
    for f, t in zip(frames[1 : n_ref_frames + 1], times[1 : n_ref_frames + 1]):
        t0 = _clock()
        a = ref.feed(f, t)
        ref_times.append(_clock() - t0)
        same &= bool(np.array_equal(a, fast.feed(f, t)))
    ref_s = statistics.median(ref_times)
    ev_per_frame = stats["events"] / n_frames
    return {
        "bench": "simulator",
        "size": f"{w}x{h}",
        "scene": kind,
        "frames_per_s": 1 / fast_s,
        "events_per_s": ev_per_frame / fast_s,
        "events_per_frame": ev_per_frame,
        "fired_fraction": stats["fired"] / n_frames / (w * h),
        "event_rate_meps_at_1khz": ev_per_frame * 1000 / 1e6,
        "reference_frames_per_s": 1 / ref_s,
        "speedup": ref_s / fast_s,
        "reference_identical": same,
    }


# ------------------------------------------------------------------ decoders
def ref_decode_pc2(data: bytes, stamp_us: int) -> list:
    return [
        (x, y, stamp_us + t, p) for x, y, t, p in struct.iter_unpack("<HHIb", data)
    ]  # per-event loop


def ref_decode_mono(data: bytes, time_base_ns: int) -> list:
    out = []
    for (w,) in struct.iter_unpack("<Q", data):
        out.append(
            ((w >> 32) & 0xFFFF, (w >> 48) & 0x7FFF, (time_base_ns + (w & 0xFFFFFFFF)) // 1000,
             1 if w >> 63 else -1)
        )  # fmt: skip
    return out


def ref_decode_evt3(data: bytes) -> list:
    out, y, t_hi, t_lo, base, pol, loops, last_hi = [], -1, -1, 0, -1, 0, 0, -1
    for (w,) in struct.iter_unpack("<H", data):
        typ, v = w >> 12, w & 0xFFF
        if typ == 0x8:
            if last_hi >= 0 and v < last_hi:
                loops += 1
            last_hi, t_hi, t_lo = v, (loops << 24) + (v << 12), 0
        elif typ == 0x6:
            t_lo = v
        elif typ == 0x0:
            y = v & 0x7FF
        elif typ == 0x2:
            out.append((v & 0x7FF, y, t_hi + t_lo, 1 if v >> 11 else -1))
        elif typ == 0x3:
            base, pol = v & 0x7FF, 1 if v >> 11 else -1
        elif typ in (0x4, 0x5):
            nbits = 12 if typ == 0x4 else 8
            for b in range(nbits):
                if v >> b & 1:
                    out.append((base + b, y, t_hi + t_lo, pol))
            base += nbits
    return out


NODE_PACKET_BYTES = 256 * 1024  # one EventPacket: a few ms of a busy sensor
NODE_MAX_EVENTS = 1_000_000  # event_camera_node's default max_buffered_events


def evt3_node_path(payload: bytes, backend: str, keep: bool = False):
    """What event_camera_node runs per EventPacket: the stream decoder -> EVENT_DTYPE, each
    packet's events used (here: counted) and dropped before the next; ``keep``: all of
    them, in a list (to check them)."""
    from hybrid_snn_control.events.evt3_stream import Evt3StreamDecoder

    packets = [
        payload[i : i + NODE_PACKET_BYTES] for i in range(0, len(payload), NODE_PACKET_BYTES)
    ]

    def run():
        decoder = Evt3StreamDecoder(backend=backend)
        if keep:
            return [decoder.decode(p, max_events=NODE_MAX_EVENTS) for p in packets]
        return sum(decoder.decode(p, max_events=NODE_MAX_EVENTS).size for p in packets)

    return run


def _same_node_path(payload: bytes, a: str, b: str) -> bool:
    """Both backends' node paths give the same events, packet by packet."""
    ours, theirs = evt3_node_path(payload, a, keep=True)(), evt3_node_path(payload, b, keep=True)()
    return all(np.array_equal(x, y) for x, y in zip(ours, theirs, strict=True))


def bench_decoders(n_events, n_ref, repeats):
    from hybrid_snn_control.events import make_events
    from hybrid_snn_control.events.codecs import (
        Evt3State,
        evt3_decode,
        evt3_encode,
        mono_decode,
        mono_encode,
        pointcloud2_decode,
        pointcloud2_encode,
    )

    rng = np.random.default_rng(0)
    ev = make_events(
        rng.integers(0, 346, n_events), rng.integers(0, 260, n_events),
        np.sort(rng.integers(0, 2_000_000, n_events)), rng.choice([-1, 1], n_events),
    )  # fmt: skip
    # row-ordered bursts (what a sensor readout looks like): EVT 3.0 vectors apply
    n_rows = n_events // 200 + 1
    x = np.tile(np.arange(640), n_rows)
    y = np.repeat(np.arange(n_rows) % 480, 640)
    t = np.repeat(np.arange(n_rows) * 20, 640)
    keep = rng.random(x.size) < 200 / 640
    rows = make_events(x[keep], y[keep], t[keep], np.where(rng.random(keep.sum()) < 0.5, 1, -1))
    rows = rows[np.lexsort((rows["x"], rows["p"], rows["y"], rows["t"]))]

    pc = pointcloud2_encode(ev)
    packet = 50_000  # 5 ms of a 10 Mev/s stream: what one ROS message carries
    packets = [pointcloud2_encode(ev[i : i + packet]) for i in range(0, ev.size, packet)]
    mono, tb = mono_encode(ev)
    evt3_rand = evt3_encode(ev)
    evt3_rows = evt3_encode(rows)
    sub_pc = pointcloud2_encode(ev[:n_ref])
    sub_mono, sub_tb = mono_encode(ev[:n_ref])
    sub_rand = evt3_encode(ev[:n_ref])
    sub_rows = evt3_encode(rows[:n_ref])
    cases = [
        ("pointcloud2", ev.size,
         lambda: pointcloud2_decode(pc.data, pc.fields, pc.point_step, pc.stamp_us),
         lambda: ref_decode_pc2(sub_pc.data, sub_pc.stamp_us)),
        ("pointcloud2 (50k-event msgs)", ev.size,
         lambda: [pointcloud2_decode(q.data, q.fields, q.point_step, q.stamp_us) for q in packets],
         lambda: ref_decode_pc2(sub_pc.data, sub_pc.stamp_us)),
        ("mono", ev.size, lambda: mono_decode(mono, tb), lambda: ref_decode_mono(sub_mono, sub_tb)),
        ("evt3 (random events)", ev.size, lambda: evt3_decode(evt3_rand),
         lambda: ref_decode_evt3(sub_rand)),
        ("evt3 (row bursts, vectors)", rows.size, lambda: evt3_decode(evt3_rows),
         lambda: ref_decode_evt3(sub_rows)),
    ]  # fmt: skip
    # correctness of the reference decoders on the subset
    assert ref_decode_evt3(sub_rows) == rows[:n_ref].tolist()
    assert ref_decode_pc2(sub_pc.data, sub_pc.stamp_us) == ev[:n_ref].tolist()
    try:  # the maintained Rust decoder on PyPI (issue 17), when installed: same output?
        import evt3 as evt3_package
    except ImportError:
        evt3_package = None
    if evt3_package is not None:
        for name, payload, n in (
            ("evt3 package (random events)", evt3_rand, ev.size),
            ("evt3 package (row bursts, vectors)", evt3_rows, rows.size),
        ):
            theirs, ours = evt3_package.decode_bytes(payload, 640, 480), evt3_decode(payload)
            same = (
                np.array_equal(theirs.x, ours["x"])
                and np.array_equal(theirs.y, ours["y"])
                and np.array_equal(theirs.timestamp.astype(np.int64), ours["t"])
                and np.array_equal(np.where(theirs.polarity > 0, 1, -1), ours["p"])
            )
            assert same, f"{name}: the evt3 package and evt3_decode disagree"
            # here "reference" is ours: the ratio says how much faster the package is
            cases.append(
                (
                    name,
                    n,
                    lambda p=payload: evt3_package.decode_bytes(p, 640, 480),
                    lambda p=payload: evt3_decode(p),
                )
            )
        for name, payload, n in (
            ("evt3 node path (random)", evt3_rand, ev.size),
            ("evt3 node path (row bursts)", evt3_rows, rows.size),
        ):  # the package backend vs the numpy backend: same events, how much faster
            fast, ref = evt3_node_path(payload, "evt3"), evt3_node_path(payload, "numpy")
            same = _same_node_path(payload, "evt3", "numpy")
            assert same, f"{name}: the two backends disagree"
            cases.append((name, n, fast, ref))
    from hybrid_snn_control.events import evt3_compiled

    if evt3_package is not None and evt3_compiled.compiled_available():
        for name, payload, n in (
            ("evt3 compiled alone vs package (random)", evt3_rand, ev.size),
            ("evt3 compiled alone vs package (row bursts)", evt3_rows, rows.size),
        ):  # ours compiled (numba) vs the package, whole payload, same events checked
            words = np.frombuffer(payload, "<u2")
            ours = evt3_compiled.evt3_decode_compiled(words, Evt3State())
            assert np.array_equal(ours, evt3_decode(payload)), f"{name}: disagree"
            cases.append(
                (
                    name,
                    n,
                    lambda w=words: evt3_compiled.evt3_decode_compiled(w, Evt3State()),
                    lambda p=payload: evt3_package.decode_bytes(p, 640, 480),
                )
            )
        for name, payload, n in (
            ("evt3 node path numba vs package (random)", evt3_rand, ev.size),
            ("evt3 node path numba vs package (row bursts)", evt3_rows, rows.size),
        ):  # the event node's decoder with each backend: same events
            fast, ref = evt3_node_path(payload, "numba"), evt3_node_path(payload, "evt3")
            same = _same_node_path(payload, "numba", "evt3")
            assert same, f"{name}: the two backends disagree"
            cases.append((name, n, fast, ref))
    out = []
    for name, n, fast, ref in cases:
        fast_s = median_time(fast, repeats)
        ref_s = median_time(ref, max(1, repeats // 2))
        ref_n = n if name.startswith(("evt3 package", "evt3 node", "evt3 compiled")) else n_ref
        fast_rate, ref_rate = n / fast_s, ref_n / ref_s
        out.append(
            {"bench": "decode", "codec": name, "events": n, "events_per_s": fast_rate,
             "reference_events_per_s": ref_rate, "speedup": fast_rate / ref_rate}
        )  # fmt: skip
    sizes = {"pointcloud2": len(pc.data), "mono": len(mono), "evt3_random": len(evt3_rand),
             "evt3_rows": len(evt3_rows)}  # fmt: skip
    for r in out:
        key = "pointcloud2" if r["codec"].startswith("pointcloud2") else None
        key = key or {"mono": "mono"}.get(r["codec"])
        key = key or ("evt3_random" if "random" in r["codec"] else "evt3_rows")  # package too
        r["bytes_per_event"] = sizes[key] / r["events"]
    return out


# ------------------------------------------------------------------ encoders
def bench_encoders(n_events, n_ref, repeats):
    import torch

    from hybrid_snn_control.events import make_events
    from hybrid_snn_control.events.encoders import event_frame, time_surface, voxel_grid

    w, h = 346, 260
    rng = np.random.default_rng(1)
    ev = make_events(
        rng.integers(0, w, n_events), rng.integers(0, h, n_events),
        np.sort(rng.integers(0, 50_000, n_events)), rng.choice([-1, 1], n_events),
    )  # fmt: skip
    sub = ev[:n_ref]
    t0, t1 = int(sub["t"][0]), int(sub["t"][-1])

    def ref_frame():
        out = np.zeros((2, h, w), np.float32)
        for x, y, _t, p in sub.tolist():
            out[0 if p > 0 else 1, y, x] += 1
        return torch.from_numpy(out)

    def ref_voxel(bins=5):
        out = np.zeros((bins, h, w), np.float32)
        for x, y, t, p in sub.tolist():
            tn = (bins - 1) * (t - t0) / max(t1 - t0, 1)
            b = int(tn)
            out[b, y, x] += p * (1 - (tn - b))
            if b + 1 < bins:
                out[b + 1, y, x] += p * (tn - b)
        return torch.from_numpy(out)

    def ref_surface(tau=50_000.0):
        last = {}
        for x, y, t, p in sub.tolist():
            last[(0 if p > 0 else 1, y, x)] = t
        out = np.zeros((2, h, w), np.float32)
        for (c, y, x), t in last.items():
            out[c, y, x] = np.exp(-(t1 - t) / tau)
        return torch.from_numpy(out)

    torch.testing.assert_close(event_frame(sub, (w, h)), ref_frame())
    torch.testing.assert_close(voxel_grid(sub, (w, h), 5), ref_voxel(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(time_surface(sub, (w, h)), ref_surface())
    cases = [
        ("event_frame 2x260x346", lambda: event_frame(ev, (w, h)), ref_frame),
        ("event_frame pool=4", lambda: event_frame(ev, (w, h), pool=4), ref_frame),
        ("voxel_grid 5 bins", lambda: voxel_grid(ev, (w, h), 5), ref_voxel),
        ("time_surface", lambda: time_surface(ev, (w, h)), ref_surface),
    ]
    out = []
    for name, fast, ref in cases:
        fast_rate = n_events / median_time(fast, repeats)
        ref_rate = n_ref / median_time(ref, max(1, repeats // 2))
        out.append(
            {"bench": "encode", "encoder": name, "events": n_events, "events_per_s": fast_rate,
             "reference_events_per_s": ref_rate, "speedup": fast_rate / ref_rate}
        )  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames/events (smoke run)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    ap.add_argument(
        "--only", choices=("simulator", "decode", "encode"), help="run one part of the bench"
    )
    args = ap.parse_args()
    global _clock
    if args.wall:
        _clock = time.perf_counter
    import torch

    torch.set_num_threads(1)
    q = args.quick
    rows = []
    parts = {args.only} if args.only else {"simulator", "decode", "encode"}
    for w, h in ((64, 64), (346, 260)) if "simulator" in parts else ():
        for kind in ("typical", "fast", "busy"):
            n_ref = 2 if (q or w > 64) else 10
            rows.append(bench_simulator(w, h, kind, 50 if q else 300, n_ref, args.repeats))
    if "decode" in parts:
        rows += bench_decoders(200_000 if q else 2_000_000, 5_000 if q else 50_000, args.repeats)
    if "encode" in parts:
        rows += bench_encoders(200_000 if q else 2_000_000, 5_000 if q else 50_000, args.repeats)
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpus_visible": os.cpu_count(),
        "threads": 1,
        "repeats": args.repeats,
        "clock": "wall" if args.wall else "process CPU time",
        "note": "median of repeats; the machine may be shared, so expect noise",
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}, indent=2))
        return 0
    if "simulator" in parts:
        print("frames -> events (clean preset, 1 kHz frames, uint8 gray)")
        print(f"{'size':>8} {'scene':>8} {'frames/s':>9} {'Mev/s':>7} {'fired':>7} "
              f"{'ev/frame':>9} {'ref fr/s':>9} {'speed-up':>9} {'identical':>9}")  # fmt: skip
    for r in rows:
        if r["bench"] == "simulator":
            print(
                f"{r['size']:>8} {r['scene']:>8} {r['frames_per_s']:>9.0f} "
                f"{r['events_per_s'] / 1e6:>7.2f} {r['fired_fraction']:>7.2%} "
                f"{r['events_per_frame']:>9.0f} {r['reference_frames_per_s']:>9.2f} "
                f"{r['speedup']:>8.0f}x {r['reference_identical']!s:>9}"
            )
    if "decode" in parts:
        print("\ndecode (events/s)")
        print(f"{'codec':>44} {'Mev/s':>8} {'ref Mev/s':>10} {'speed-up':>9} {'B/event':>8}")
    for r in rows:
        if r["bench"] == "decode":
            print(
                f"{r['codec']:>44} {r['events_per_s'] / 1e6:>8.1f} "
                f"{r['reference_events_per_s'] / 1e6:>10.2f} "
                f"{r['speedup']:>8.{1 if r['speedup'] < 100 else 0}f}x "
                f"{r['bytes_per_event']:>8.2f}"
            )
    if any(r.get("codec", "").startswith("evt3 node") for r in rows):
        print(
            "  evt3 package rows: ref = evt3_decode (numpy).  evt3 node path: Evt3StreamDecoder "
            f"over {NODE_PACKET_BYTES // 1024} KiB packets -> EVENT_DTYPE, evt3 backend; "
            "ref = numpy backend; speed-up = their ratio.  'numba vs package' / 'compiled "
            "alone vs package' rows: ours compiled, ref = the evt3 package"
        )
    if "encode" in parts:
        print("\nencode (events/s, 346x260)")
        print(f"{'encoder':>28} {'Mev/s':>8} {'ref Mev/s':>10} {'speed-up':>9}")
    for r in rows:
        if r["bench"] == "encode":
            print(
                f"{r['encoder']:>28} {r['events_per_s'] / 1e6:>8.1f} "
                f"{r['reference_events_per_s'] / 1e6:>10.2f} {r['speedup']:>8.0f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

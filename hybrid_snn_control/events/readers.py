"""Event file readers (and writers for the simple formats): no downloads, numpy-vectorized.

=====================  ==========================================================
format                 layout (as published)
=====================  ==========================================================
Tonic ``.npy``         structured array with fields x, y, t (µs), p
HDF5                   datasets ``x``, ``y``, ``t``, ``p`` at the root or in a group
                       (``events/`` as in DSEC); ``t`` in µs unless ``t_scale_us``
N-MNIST ``.bin``       5 bytes per event: x, y, then p (bit 7) and a 23-bit µs time
                       (bits 22..0 over bytes 2-4, big-endian); ``y == 240`` marks a
                       time overflow (+2^23 µs) in Orchard's ATIS format
AEDAT 3.1 (DVS128      ``#``-header lines up to ``#!END-HEADER\\r\\n``, then packets:
Gesture)               28-byte header (type i16, source i16, size i32, ts offset i32,
                       ts overflow i32, capacity i32, number i32, valid i32) and
                       events; polarity events (type 1, 8 bytes): u32 data (bit 0
                       valid, bit 1 polarity, bits 2-16 y, bits 17-31 x) + i32 µs
                       time (+ overflow << 31).  ``<name>_labels.csv``:
                       ``class,startTime_usec,endTime_usec`` (classes 1..11)
=====================  ==========================================================
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hybrid_snn_control.events.arrays import (
    EVENT_DTYPE,
    as_events,
    make_events,
    normalize_polarity,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- Tonic .npy
def read_npy(path: str | Path) -> np.ndarray:
    """A Tonic-style structured ``.npy`` (x, y, t, p fields; p as 0/1 or ±1)."""
    arr = np.load(path, allow_pickle=False)
    if arr.dtype.names is None:
        raise ValueError(f"{path}: not a structured array with x, y, t, p fields")
    return as_events(arr)


def write_npy(path: str | Path, events: np.ndarray) -> None:
    """Write events as a structured ``.npy`` (readable by :func:`read_npy` and Tonic)."""
    np.save(path, np.asarray(events, dtype=EVENT_DTYPE), allow_pickle=False)


# ---------------------------------------------------------------- HDF5
def read_hdf5(path: str | Path, group: str | None = None, t_scale_us: float = 1.0) -> np.ndarray:
    """Events from HDF5 datasets ``x, y, t, p`` (``group`` default: root, else ``events``)."""
    import h5py

    with h5py.File(path, "r") as f:
        candidates = [group] if group is not None else ["/", "events"]
        for g in candidates:
            node = f[g] if g in f else None
            if node is not None and all(k in node for k in "xytp"):
                break
        else:
            raise ValueError(f"{path}: no x, y, t, p datasets in {candidates}")
        cols = {k: node[k][()] for k in "xytp"}
    n = {k: v.shape[0] for k, v in cols.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"{path}: x/y/t/p lengths differ: {n}")
    t = cols["t"]
    if t_scale_us != 1.0 or t.dtype.kind == "f":
        t = np.rint(t * t_scale_us).astype(np.int64)
    return make_events(cols["x"], cols["y"], t, normalize_polarity(cols["p"]))


def write_hdf5(path: str | Path, events: np.ndarray, group: str = "events") -> None:
    """Write ``group/x, y, t, p`` datasets (p as 0/1, the common file convention)."""
    import h5py

    with h5py.File(path, "w") as f:
        g = f.require_group(group)
        g["x"], g["y"], g["t"] = events["x"], events["y"], events["t"]
        g["p"] = (events["p"] > 0).astype(np.uint8)


# ---------------------------------------------------------------- N-MNIST .bin
_NMNIST_OVERFLOW_Y = 240


def read_nmnist_bin(path: str | Path, strict: bool = True) -> np.ndarray:
    """N-MNIST / N-Caltech101 ``.bin`` (Orchard et al. 2015), 40 bits per event.

    A file length that is not a multiple of 5 raises (``strict``) or drops the tail with a
    logged warning.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    rest = raw.size % 5
    if rest:
        msg = f"{path}: {raw.size} bytes is not a multiple of 5 (truncated file)"
        if strict:
            raise ValueError(msg)
        log.warning("%s; dropping the last %d bytes", msg, rest)
        raw = raw[: raw.size - rest]
    r = raw.reshape(-1, 5).astype(np.int64)
    x, y = r[:, 0], r[:, 1]
    p = r[:, 2] >> 7
    ts = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    overflow = y == _NMNIST_OVERFLOW_Y
    ts = ts + np.cumsum(overflow) * (1 << 23)
    keep = ~overflow
    return make_events(x[keep], y[keep], ts[keep], np.where(p[keep] > 0, 1, -1))


def write_nmnist_bin(path: str | Path, events: np.ndarray) -> None:
    """Write the 40-bit N-MNIST layout (times must be < 2^23 µs, coordinates < 240)."""
    t = events["t"].astype(np.int64)
    if events.size and (t.min() < 0 or t.max() >= 1 << 23):
        raise ValueError("N-MNIST times must be in [0, 2^23) us")
    if events.size and max(events["x"].max(), events["y"].max()) >= _NMNIST_OVERFLOW_Y:
        raise ValueError("N-MNIST coordinates must be < 240")
    r = np.empty((events.size, 5), np.uint8)
    r[:, 0], r[:, 1] = events["x"], events["y"]
    r[:, 2] = ((events["p"] > 0).astype(np.int64) << 7) | (t >> 16)
    r[:, 3], r[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    r.tofile(path)


# ---------------------------------------------------------------- AEDAT 3.1
_AEDAT_HEADER_END = b"#!END-HEADER\r\n"
_PACKET_HEADER = np.dtype(
    [
        ("type", "<i2"),
        ("source", "<i2"),
        ("size", "<i4"),
        ("ts_offset", "<i4"),
        ("ts_overflow", "<i4"),
        ("capacity", "<i4"),
        ("number", "<i4"),
        ("valid", "<i4"),
    ]
)
_POLARITY_EVENT = 1
_POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])


def read_aedat31(path: str | Path, strict: bool = True) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (DVS128 Gesture); other packet types skipped.

    Loops over packets (thousands per file), never over events.  Invalid events (valid bit
    0) are dropped.  A truncated last packet raises (``strict``) or is read partially.
    """
    buf = Path(path).read_bytes()
    if not buf.startswith(b"#!AER-DAT3"):
        raise ValueError(f"{path}: not an AEDAT 3.x file (header starts {buf[:10]!r})")
    end = buf.find(_AEDAT_HEADER_END)
    if end < 0:
        raise ValueError(f"{path}: no '#!END-HEADER' line")
    pos = end + len(_AEDAT_HEADER_END)
    parts = []
    while pos < len(buf):
        if pos + _PACKET_HEADER.itemsize > len(buf):
            _truncated(path, strict, "packet header")
            break
        h = np.frombuffer(buf, _PACKET_HEADER, count=1, offset=pos)[0]
        pos += _PACKET_HEADER.itemsize
        size, capacity = int(h["size"]), int(h["capacity"])
        if size <= 0 or capacity < 0:
            raise ValueError(f"{path}: corrupt packet header (size {size}, capacity {capacity})")
        nbytes = size * capacity
        avail = min(nbytes, len(buf) - pos)
        if avail < nbytes:
            _truncated(path, strict, "packet")
        if int(h["type"]) == _POLARITY_EVENT:
            if size != _POLARITY_DTYPE.itemsize:
                raise ValueError(f"{path}: polarity event size {size}, expected 8")
            n = min(int(h["number"]), avail // size)
            ev = np.frombuffer(buf, _POLARITY_DTYPE, count=n, offset=pos)
            parts.append((ev, int(h["ts_overflow"])))
        pos += nbytes
    if not parts:
        return np.zeros(0, EVENT_DTYPE)
    data = np.concatenate([e["data"] for e, _ in parts])
    ts = np.concatenate([e["ts"].astype(np.int64) + (o << 31) for e, o in parts])
    valid = (data & 1).astype(bool)
    data, ts = data[valid], ts[valid]
    return make_events(
        (data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, ts, np.where((data >> 1) & 1, 1, -1)
    )


def _truncated(path, strict: bool, what: str) -> None:
    msg = f"{path}: truncated {what} at end of file"
    if strict:
        raise ValueError(msg)
    log.warning("%s; reading what is there", msg)


def write_aedat31(path: str | Path, events: np.ndarray, packet_size: int = 4096) -> None:
    """Write polarity events as AEDAT 3.1 (for tests and tools; DVS128 header)."""
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n" + _AEDAT_HEADER_END
    chunks = [header]
    t = events["t"].astype(np.int64)
    for i in range(0, events.size, packet_size):  # one iteration per packet
        e = events[i : i + packet_size]
        tt = t[i : i + packet_size]
        overflow = int(tt[0] >> 31)
        if np.any((tt >> 31) != overflow):
            raise ValueError("write_aedat31: a packet spans a 2^31 us overflow; use smaller")
        h = np.zeros(1, _PACKET_HEADER)
        h[0] = (_POLARITY_EVENT, 1, 8, 4, overflow, e.size, e.size, e.size)
        body = np.empty(e.size, _POLARITY_DTYPE)
        body["data"] = (
            (e["x"].astype(np.uint32) << 17)
            | (e["y"].astype(np.uint32) << 2)
            | ((e["p"] > 0).astype(np.uint32) << 1)
            | 1
        )
        body["ts"] = tt & 0x7FFFFFFF
        chunks += [h.tobytes(), body.tobytes()]
    Path(path).write_bytes(b"".join(chunks))


def read_gesture_labels(path: str | Path) -> np.ndarray:
    """``<recording>_labels.csv``: rows (class, start_us, end_us) as an int64 ``[n, 3]`` array."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        line = line.strip()
        if not line or (i == 0 and not line[0].isdigit()):
            continue
        vals = line.split(",")
        if len(vals) != 3:
            raise ValueError(f"{path}:{i + 1}: expected class,startTime_usec,endTime_usec")
        rows.append([int(v) for v in vals])
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def read_dvs_gesture(aedat_path: str | Path) -> list[tuple[np.ndarray, int]]:
    """DVS128 Gesture recording -> ``[(events, label), ...]`` cut by its labels CSV.

    Labels are returned 0-based (``class - 1``); the CSV is ``<name>_labels.csv`` beside
    the ``.aedat`` file.
    """
    aedat_path = Path(aedat_path)
    labels_path = aedat_path.with_name(aedat_path.stem + "_labels.csv")
    if not labels_path.exists():
        raise FileNotFoundError(f"labels file {labels_path} not found")
    ev = read_aedat31(aedat_path)
    out = []
    t = ev["t"]
    for cls, t0, t1 in read_gesture_labels(labels_path):
        i0, i1 = np.searchsorted(t, [t0, t1])
        out.append((ev[i0:i1], int(cls) - 1))
    return out


def read_events(path: str | Path) -> np.ndarray:
    """Read any supported single-recording file by extension (.npy, .h5/.hdf5, .bin, .aedat)."""
    suffix = Path(path).suffix.lower()
    readers = {
        ".npy": read_npy,
        ".h5": read_hdf5,
        ".hdf5": read_hdf5,
        ".bin": read_nmnist_bin,
        ".aedat": read_aedat31,
    }
    if suffix not in readers:
        raise ValueError(f"{path}: unsupported event file type {suffix!r}; use {sorted(readers)}")
    return readers[suffix](path)

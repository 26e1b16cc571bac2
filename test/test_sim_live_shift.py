"""Shifts that start in the middle of an episode (issue 15): seeded, logged in the episode
metrics, and invisible to episodes without a plan."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hybrid_snn_control.sim  # noqa: F401  (registers the envs)


@pytest.fixture(scope="module")
def env():
    e = gym.make("hybrid_snn_control/Pursuit-v0", episode_s=2.0).unwrapped
    yield e
    e.close()


def _run(env, plan, seed=5):
    env.reset(seed=seed, options={"live_shift": plan})
    counts = []
    while True:
        _, _, term, trunc, info = env.step(env.expert_action())
        counts.append(env.last_events.size)
        if term or trunc:
            return info["episode_metrics"], np.asarray(counts), dict(env.world)


def test_noise_shift_starts_on_time_is_seeded_and_leaves_the_first_half_untouched(env):
    m0, c0, w0 = _run(env, None)
    plan = {"shift": "noisy_sensor", "at_s": 1.0, "ramp_s": 0.0}
    m1, c1, w1 = _run(env, plan)
    m2, c2, _ = _run(env, plan)
    assert np.array_equal(c0[:50], c1[:50])  # before the shift: the plan-less episode
    assert np.array_equal(c1, c2) and m1 == m2  # seeded: the same shift every time
    assert c1[50:].mean() > 3 * c0[50:].mean()  # 8-20 Hz/px of shot noise arrived
    assert 8 <= w1["shot_noise_rate_hz"] <= 20 and w0["shot_noise_rate_hz"] <= 1
    assert m1["shift_step"] == 50 and "score_before_shift" not in m0
    steps = 100
    mean = (m1["score_before_shift"] * 50 + m1["score_after_shift"] * 50) / steps
    assert abs(mean - m1["normalized_score"]) < 1e-9  # the split adds up
    env.reset(seed=5, options={"live_shift": None})  # the plan persists until cleared


def test_ramps_move_floats_linearly_and_latency_at_the_end(env):
    env.reset(seed=1, options={"live_shift": None})
    before = env.world["flicker_amplitude"]
    target = env.start_shift("flicker", ramp_s=1.0)
    for _ in range(25):  # 0.5 s of the 1 s ramp
        env.step(np.zeros(2))
    mid = env.world["flicker_amplitude"]
    assert min(before, target["flicker_amplitude"]) < mid < max(before, target["flicker_amplitude"])
    env.reset(seed=1)
    lag0 = env.world["latency_steps"]
    target = env.start_shift("laggy", ramp_s=0.5)
    env.step(np.zeros(2))
    assert env.world["latency_steps"] == lag0  # integers wait for the ramp's end
    for _ in range(30):
        env.step(np.zeros(2))
    assert env.world["latency_steps"] == target["latency_steps"]
    assert env._action_buffer.maxlen == target["latency_steps"] + 1


def test_shifts_that_cannot_start_mid_episode_are_refused(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="cannot start mid-episode"):
        env.start_shift("fast_target")
    with pytest.raises(ValueError, match="live_shift needs"):
        env.reset(seed=0, options={"live_shift": {"shift": "bogus"}})

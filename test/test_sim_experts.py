"""Privileged experts solve their tasks on nominal settings; a hard shift costs them.

Episodes run with the event camera off: the experts read ground truth, and this keeps the
test fast.  Thresholds are set below the measured scores (docs/sim.md has the table).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import hybrid_snn_control.sim  # noqa: F401


def expert_scores(env_id, seeds, shift=None, **kw):
    env = gym.make(env_id, event_camera=False, **kw)
    out = []
    for seed in seeds:
        env.reset(seed=seed, options={"shift": shift})
        while True:
            action = env.unwrapped.expert_action()
            assert env.action_space.contains(action)
            _, _, term, trunc, info = env.step(action)
            if term or trunc:
                out.append(info["episode_metrics"])
                break
    env.close()
    return out


def test_pursuit_expert_tracks_the_target_and_degrades_on_fast_target():
    nominal = expert_scores("hybrid_snn_control/Pursuit-v0", range(4), episode_s=10.0)
    score = np.mean([m["normalized_score"] for m in nominal])
    assert score > 0.9  # measured 0.985 +- 0.018 over 20 s episodes
    assert all(m["time_in_view"] > 0.95 for m in nominal)
    assert all(0.0 <= m["normalized_score"] <= 1.0 for m in nominal)
    fast = expert_scores(
        "hybrid_snn_control/Pursuit-v0", range(4), shift="fast_target", episode_s=10.0
    )
    assert np.mean([m["normalized_score"] for m in fast]) < score - 0.05


def test_navigation_expert_reaches_the_goal_without_collisions():
    runs = expert_scores("hybrid_snn_control/Navigation-v0", range(4))
    assert all(m["success"] == 1.0 for m in runs)
    assert sum(m["collisions"] for m in runs) == 0
    assert np.mean([m["normalized_score"] for m in runs]) > 0.75  # measured 0.83
    assert all(0.0 <= m["normalized_score"] <= 1.0 for m in runs)

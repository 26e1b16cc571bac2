"""Built-in baselines (``expert``, ``zero_action``), gap closed and paired bootstrap CIs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.training.evaluate import (
    env_default_episode_s,
    eval_seeds,
    evaluate_baseline,
    evaluation_settings,
)
from hybrid_snn_control.training.rollout import EnvSettings
from hybrid_snn_control.training.stats import (
    gap_closed,
    min_detectable_effect,
    paired_bootstrap_ci,
    paired_vs_baseline,
    with_gap_closed,
)

# 4 s: long enough that standing still loses the target on every one of these worlds
SHORT_ENV = EnvSettings(camera_size=16, episode_s=4.0, num_envs=2)


@pytest.fixture(scope="module")
def baseline_rows():
    """expert and zero_action on the same 4 evaluation worlds (seed 0), nominal."""
    return [
        evaluate_baseline(m, SHORT_ENV, None, episodes=4, seed=0) for m in ("expert", "zero_action")
    ]


# ---- statistics ----------------------------------------------------------------------------------
def test_paired_bootstrap_ci_covers_a_known_effect_and_excludes_zero():
    rng = np.random.default_rng(1)
    world = rng.uniform(0.2, 0.9, 40)  # worlds differ far more than the effect's noise
    b = world
    a = world + 0.1 + rng.normal(0.0, 0.03, 40)
    mean, lo, hi = paired_bootstrap_ci(a, b)
    assert lo < 0.1 < hi and lo > 0.0
    assert mean == pytest.approx(float(np.mean(a - b)))
    assert hi - lo < 0.03  # paired: the world spread (sd ~0.2) cancels
    assert paired_bootstrap_ci(a, b) == (mean, lo, hi)  # seeded: a table reprints the same
    assert min_detectable_effect(a - b) == pytest.approx(
        2.8016 * np.std(a - b, ddof=1) / math.sqrt(40), rel=1e-3
    )


def test_paired_bootstrap_ci_of_no_effect_includes_zero():
    rng = np.random.default_rng(2)
    world = rng.uniform(0.2, 0.9, 30)
    mean, lo, hi = paired_bootstrap_ci(world + rng.normal(0.0, 0.05, 30), world)
    assert lo < 0.0 < hi and abs(mean) < hi - lo
    with pytest.raises(ValueError):
        paired_bootstrap_ci([], [])
    assert math.isnan(min_detectable_effect([0.3]))


def test_gap_closed_per_world_and_undefined_where_expert_does_not_beat_the_floor():
    g = gap_closed([0.5, 0.9, 0.6, 0.7], zero=[0.3, 0.3, 0.6, 0.7], expert=[0.7, 0.9, 0.605, 0.6])
    assert g[:2].tolist() == pytest.approx([0.5, 1.0])
    assert np.isnan(g[2]) and np.isnan(g[3])  # margin 0.005 < 0.01; expert below the floor


# ---- baselines in the sim ------------------------------------------------------------------------
def test_zero_action_equals_a_hand_rolled_zero_action_rollout(baseline_rows):
    zero = baseline_rows[1]
    assert zero["model"] == "zero_action" and zero["episode_seeds"] == eval_seeds(0, 4)
    assert zero["episode_s"] == 4.0 and zero["macs_per_step"] is None
    for world, want in list(zip(zero["episode_seeds"], zero["episode_scores"]))[:2]:
        env = gym.make(SHORT_ENV.env_id, **SHORT_ENV.make_kwargs())
        env.reset(seed=world)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(np.zeros(2, np.float32))
            done = term or trunc
        env.close()
        assert info["episode_metrics"]["normalized_score"] == want


def test_expert_beats_zero_and_gap_closed_is_one_and_zero_per_world(baseline_rows):
    expert, zero = baseline_rows
    assert expert["episode_seeds"] == zero["episode_seeds"]  # the same worlds
    assert all(e > z for e, z in zip(expert["episode_scores"], zero["episode_scores"]))
    rows = with_gap_closed(baseline_rows)
    assert rows[0]["episode_gap_closed"] == [1.0] * 4 and rows[0]["gap_closed"] == 1.0
    assert rows[1]["episode_gap_closed"] == [0.0] * 4 and rows[1]["gap_closed"] == 0.0
    assert rows[0]["gap_worlds"] == 4 and baseline_rows[0]["gap_closed"] is None  # copies
    (p,) = paired_vs_baseline(rows)
    assert p["model"] == "expert" and p["worlds"] == 4 and p["seeds"] == 1
    assert 0.0 < p["score_diff_lo"] <= p["score_diff"] <= p["score_diff_hi"]
    assert p["gap_closed_diff"] == 1.0 and p["gap_worlds"] == 4


def test_a_policy_row_is_paired_by_world_not_by_position(baseline_rows):
    """Rows from another seed's worlds or another episode length share no world."""
    expert, zero = with_gap_closed(baseline_rows)
    mid = [(e + z) / 2 for e, z in zip(expert["episode_scores"], zero["episode_scores"])]
    half = dict(zero, model="half", episode_scores=mid)
    other_len = dict(half, model="other_len", episode_s=20.0)
    rows = with_gap_closed([*baseline_rows, half, other_len])
    assert rows[2]["episode_gap_closed"] == pytest.approx([0.5] * 4)
    assert rows[3]["gap_closed"] is None and rows[3]["gap_worlds"] == 0
    paired = {p["model"]: p for p in paired_vs_baseline(rows)}
    assert set(paired) == {"expert", "half"}
    assert paired["half"]["gap_closed_diff"] == pytest.approx(0.5)


def test_two_policy_files_merge_and_pair_ratio_by_ratio():
    """hsc sweep --merge NEW OLD:student=previous --paired-with previous: each ratio of the
    new file against the same ratio of the old one, the shared baseline rows taken once."""
    from hybrid_snn_control.training.sweep import merge_sweeps, parse_merge_part

    world = {"shift": "nominal", "seed": 0, "episode_s": 20.0, "episode_seeds": [1, 2, 3]}
    zero = dict(world, model="zero_action", ratio=None, episode_scores=[0.2, 0.2, 0.2])
    expert = dict(world, model="expert", ratio=None, episode_scores=[1.0, 1.0, 1.0])

    def student(ratio, scores):
        return dict(world, model="student", ratio=ratio, episode_scores=scores)

    new = [zero, expert, student(0.0, [0.9, 0.8, 0.7]), student(1.0, [0.5, 0.5, 0.5])]
    old = [zero, expert, student(0.0, [0.6, 0.5, 0.4]), student(1.0, [0.6, 0.6, 0.6])]
    path, rename = parse_merge_part("sweeps/old:student=previous")
    assert (path, rename) == ("sweeps/old", {"student": "previous"})
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_merge_part("sweeps/old:student")
    rows = merge_sweeps([(new, {}), (old, rename)])
    assert len(rows) == 6  # expert and zero_action once
    paired = {
        p["ratio"]: p
        for p in paired_vs_baseline(with_gap_closed(rows), baseline="previous")
        if p["model"] == "student"
    }
    assert paired[0.0]["score_diff"] == pytest.approx(0.3)  # r = 0 against r = 0
    assert paired[1.0]["score_diff"] == pytest.approx(-0.1)  # not against another ratio


def test_evaluation_defaults_to_the_env_episode_length_not_the_training_one():
    meta = {"env": to_mapping(EnvSettings(camera_size=16, episode_s=1.0, num_envs=2))}
    assert env_default_episode_s("hybrid_snn_control/Pursuit-v0") == 20.0
    assert env_default_episode_s("hybrid_snn_control/Navigation-v0") == 30.0
    default = evaluation_settings(meta)
    assert default.episode_s == 20.0 and default.camera_size == 16 and default.num_envs == 2
    assert evaluation_settings(meta, "policy").episode_s == 1.0  # the old behaviour
    assert evaluation_settings(meta, 7.5).episode_s == 7.5
    with pytest.raises(ValueError):
        evaluation_settings(meta, -1.0)
    with pytest.raises(ValueError):
        evaluate_baseline("random", SHORT_ENV)

"""Domain randomization: declared ranges hold, shifts leave the training ranges."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import hybrid_snn_control.sim as sim
from hybrid_snn_control.sim.randomization import SHIFTS, RandomizationRanges


def test_every_sampled_parameter_stays_in_its_declared_range():
    ranges = RandomizationRanges()
    names = ranges.names()
    seen = {n: [] for n in names}
    for seed in range(500):
        world = ranges.sample(np.random.default_rng(seed))
        assert set(world) == set(names)
        inside = ranges.contains(world)
        assert all(inside.values()), {k: world[k] for k, ok in inside.items() if not ok}
        for n in names:
            seen[n].append(np.atleast_1d(world[n]))
    for n in names:  # and the draws really spread over the range (not a constant)
        r, vals = getattr(ranges, n), np.concatenate(seen[n])
        if r.hi > r.lo:
            assert vals.min() < r.lo + 0.2 * (r.hi - r.lo), n
            assert vals.max() > r.hi - 0.2 * (r.hi - r.lo), n
    lat = np.concatenate(seen["latency_steps"])
    assert set(lat.tolist()) == {0, 1, 2}  # 0-2 control steps, all used


@pytest.mark.parametrize("env_id", sim.ENV_IDS)
def test_env_worlds_stay_in_range_over_many_seeds(env_id):
    env = gym.make(env_id, event_camera=False)
    ranges = env.unwrapped.ranges
    for seed in range(15):
        _, info = env.reset(seed=seed)
        assert all(ranges.contains(info["world"]).values())
    env.close()


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_every_shift_leaves_the_training_range_of_some_parameter(shift):
    train = RandomizationRanges()
    shifted = train.shifted(shift)
    outside = [n for n in train.names() if not getattr(train, n).overlaps(getattr(shifted, n))]
    assert outside, f"shift {shift} overlaps the training range of every parameter"
    # and worlds drawn under the shift really lie outside for those parameters
    for seed in range(20):
        world = shifted.sample(np.random.default_rng(seed))
        for n in outside:
            assert not getattr(train, n).contains(world[n])


def test_required_shifts_exist_and_are_selectable_at_make_and_reset():
    required = {"dim", "flicker", "fast_target", "slippery", "noisy_sensor"}
    assert required <= set(SHIFTS)
    train = RandomizationRanges()
    env = gym.make("hybrid_snn_control/Pursuit-v0", event_camera=False, shift="slippery")
    _, info = env.reset(seed=0)
    assert info["shift"] == "slippery"
    assert not train.tire_friction.contains(info["world"]["tire_friction"])
    _, info = env.reset(seed=0, options={"shift": "fast_target"})
    assert not train.target_speed_mps.contains(info["world"]["target_speed_mps"])
    assert train.tire_friction.contains(info["world"]["tire_friction"])
    _, info = env.reset(seed=1)  # the shift persists (vector-env autoreset keeps it)
    assert info["shift"] == "fast_target"
    _, info = env.reset(seed=1, options={"shift": None})
    assert info["shift"] == "nominal" and all(train.contains(info["world"]).values())
    with pytest.raises(ValueError, match="allowed"):
        env.reset(seed=0, options={"shift": "foggy"})
    env.close()


def test_randomize_false_uses_the_range_midpoints():
    env = gym.make("hybrid_snn_control/Navigation-v0", event_camera=False, randomize=False)
    worlds = [env.reset(seed=s)[1]["world"] for s in range(2)]
    assert worlds[0] == worlds[1] == RandomizationRanges().midpoints()
    env.close()


def test_range_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="lo <= hi"):
        sim.Range(1.0, 0.5)
    with pytest.raises(ValueError, match="unknown shift"):
        RandomizationRanges().shifted("sunny")
    assert dataclasses.is_dataclass(RandomizationRanges)

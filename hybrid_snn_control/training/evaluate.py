"""Closed-loop evaluation of a policy in the sim at one spiking ratio and one shift.

One row per (model, ratio, shift, seed): the task score (the env's per-episode
``normalized_score`` in [0, 1], mean and std over episodes, plus the other episode
metrics and the return), the per-world scores in run order (``episode_seeds``,
``episode_scores``) so that models can be compared world by world, the cost per control
step measured on the observations the policy actually saw
(:meth:`HybridPolicy.measure_efficiency`: SynOps, MACs, energy at 45 nm, firing rate),
and the policy's step latency at batch 1.

Two built-in reference models run on the *same* worlds (:func:`evaluate_baseline`):
``expert`` (the env's privileged ``expert_action()``, the ceiling) and ``zero_action``
(wheels at (0, 0) every step, the floor: on pursuit standing still already scores about
half of the expert).  Both go through the one rollout (:func:`~.rollout.collect_episodes`)
every policy goes through; :mod:`.stats` turns them into each row's *gap closed*.

Evaluation worlds are seeded from ``EVAL_SEED_BASE`` upward, disjoint from the training
worlds (:func:`~.rollout.episode_seeds` stays below 10⁹), and last the env's default
episode length (:func:`evaluation_settings`: 20 s on pursuit), not the shorter episodes a
policy may have been trained on.  Rollouts are :mod:`.rollout`'s; nothing here imports a
trainer (CleanRL's evaluation utility receives the env factory and the model the same way).

With ``online_plasticity`` (HRSNN-core policies) the policy keeps learning by STDP while
it is evaluated, as on a robot: one env, the episodes in order, weights carried from one
episode to the next; the trained weights are restored afterwards and the row records
how far the recurrent weights moved (``w_rec_drift``, relative L2).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import load_env_creator

from hybrid_snn_control.policy import HybridPolicy
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    make_envs,
    policy_env_settings,
    round_up,
    summarize_episodes,
)
from hybrid_snn_control.training.stats import BASELINE_MODELS

__all__ = [
    "BASELINE_MODELS",
    "EVAL_SEED_BASE",
    "METRIC_FIELDS",
    "ROW_FIELDS",
    "ZeroActionPolicy",
    "env_default_episode_s",
    "eval_seeds",
    "evaluate_baseline",
    "evaluate_policy",
    "evaluation_settings",
]

EVAL_SEED_BASE = 2_000_000_000

# Every row has these keys (CSV column order of the sweep); ``gap_closed`` is filled in
# once the baselines of the same worlds are known (:func:`~.stats.with_gap_closed`).
ROW_FIELDS = (
    "model",
    "ratio",
    "shift",
    "seed",
    "episodes",
    "episode_s",
    "score",
    "score_std",
    "gap_closed",
    "gap_closed_std",
    "return",
    "time_in_view",
    "mean_bearing_error_deg",
    "mean_distance_error_m",
    "synops_per_step",
    "macs_per_step",
    "energy_pj_per_step",
    "firing_rate",
    "step_latency_ms",
)

#: the row fields that are measurements (averaged over seeds by the sweep)
METRIC_FIELDS = ROW_FIELDS[ROW_FIELDS.index("score") :]

_COST_FIELDS = ("synops_per_step", "macs_per_step", "energy_pj_per_step", "firing_rate")


def eval_seeds(seed: int, episodes: int) -> list[int]:
    """The world seeds of evaluation ``seed`` (the same for every policy and baseline)."""
    return [EVAL_SEED_BASE + 10_000 * seed + i for i in range(episodes)]


def env_default_episode_s(env_id: str) -> float:
    """The registered env's own default episode length (its ``default_episode_s``)."""
    creator = load_env_creator(gym.spec(env_id).entry_point)
    return float(creator.default_episode_s)


def evaluation_settings(
    meta: Mapping[str, Any], episode_s: float | Literal["policy"] | None = None
) -> EnvSettings:
    """The env a policy is evaluated in.

    Env id, camera size and subframes are the policy's training env's (its inputs depend
    on them).  The episode length is ``episode_s`` seconds, or by default the env's own
    (20 s on pursuit): short training episodes (5 s) end before a target gets far from a
    rover that does nothing, which flatters every controller against the floor.
    ``"policy"`` keeps the training length (what ``hsc eval`` / ``hsc sweep`` used
    before issue 14).
    """
    settings = policy_env_settings(meta)
    if episode_s == "policy":
        return settings
    if episode_s is None:
        episode_s = env_default_episode_s(settings.env_id)
    if not episode_s > 0:
        raise ValueError(f"episode_s must be > 0 seconds or 'policy', got {episode_s!r}")
    return dataclasses.replace(settings, episode_s=float(episode_s))


def _row(
    model: str,
    ratio: float | None,
    shift: str | None,
    seed: int,
    settings: EnvSettings,
    world_seeds: list[int],
    metrics: list[dict[str, float]],
) -> dict[str, Any]:
    """The fields every row shares, from the episodes' metrics in run order."""
    row: dict[str, Any] = {"model": model, "ratio": ratio, "shift": shift or "nominal"}
    row.update(seed=seed, episodes=len(metrics), episode_s=settings.episode_s)
    row.update(summarize_episodes(metrics), gap_closed=None, gap_closed_std=None)
    row["episode_seeds"] = list(world_seeds)
    row["episode_scores"] = [m["normalized_score"] for m in metrics]  # in the order run
    return row


def evaluate_policy(
    policy: HybridPolicy,
    settings: EnvSettings,
    ratio: float | None,
    shift: str | None = None,
    episodes: int = 8,
    seed: int = 0,
    num_envs: int | None = None,
    latency_steps: int = 100,
    online_plasticity: bool = False,
    plasticity_rate: float = 1.0,
) -> dict[str, Any]:
    """Score and cost of ``policy`` at ``ratio`` (None = as loaded / redundant) under ``shift``.

    Returns a dict with :data:`ROW_FIELDS` (``model`` left empty for the caller) and the
    env's other episode metrics.  The policy's ratio (and, with ``online_plasticity``,
    its weights) are restored afterwards.
    """
    n = 1 if online_plasticity else min(num_envs or settings.num_envs, episodes)
    envs = make_envs(settings, n, shift)
    previous = policy.spiking_ratio
    if ratio is not None:
        policy.set_ratio(ratio)
    trained = None
    if online_plasticity:  # the weights it learns are put back afterwards
        trained = {k: v.clone() for k, v in policy.state_dict().items()}
        policy.set_plasticity(True, plasticity_rate)
    try:
        eps, metrics = collect_episodes(
            envs, policy, eval_seeds(seed, round_up(episodes, n)), beta=0.0
        )
        drift = _drift(policy, trained) if online_plasticity else 0.0
    finally:
        envs.close()
        if online_plasticity:
            policy.set_plasticity(False, 1.0)
            policy.load_state_dict(trained)
    eps, metrics = eps[:episodes], metrics[:episodes]
    world_seeds = eval_seeds(seed, episodes)
    row = _row("", policy.spiking_ratio, shift, seed, settings, world_seeds, metrics)
    row.update(_efficiency(policy, eps))
    row["step_latency_ms"] = _latency_ms(policy, eps[0], latency_steps)
    if online_plasticity:
        row.update(online_plasticity=True, plasticity_rate=plasticity_rate, w_rec_drift=drift)
    if previous is None:
        policy.core.set_redundant()
    else:
        policy.set_ratio(previous)
    return row


def _drift(policy, trained: dict[str, torch.Tensor]) -> float:
    """Relative L2 change of the plastic weights (0 for a policy without any)."""
    moved = [
        (float((v.detach() - trained[k]).norm()), float(trained[k].norm()))
        for k, v in policy.state_dict().items()
        if k.endswith("w_rec")
    ]
    return sum(d for d, _ in moved) / max(sum(r for _, r in moved), 1e-12) if moved else 0.0


@torch.no_grad()
def _efficiency(policy: HybridPolicy, episodes: list) -> dict[str, float]:
    """Per-step cost over the recorded observations (events clipped at 255 per pixel)."""
    device = next(policy.parameters()).device
    batch = EpisodeDataset(episodes).collate(range(len(episodes)), device)
    report = policy.measure_efficiency(batch["events"].float(), batch["proprio"])
    rates = report.firing_rate or [0.0]
    return {
        "synops_per_step": report.synops_per_step,
        "macs_per_step": report.macs_per_step,
        "energy_pj_per_step": report.energy_pj_per_step,
        "firing_rate": float(np.mean(rates)),
    }


@torch.no_grad()
def _latency_ms(policy: HybridPolicy, episode, steps: int) -> float:
    """Median wall time of one ``policy.step`` at batch 1 (noisy on a shared CPU)."""
    device = next(policy.parameters()).device
    events = torch.from_numpy(episode.events[:steps]).float().to(device)
    proprio = torch.from_numpy(episode.proprio[:steps]).to(device)
    state, times = None, []
    for t in range(len(events)):
        t0 = time.perf_counter()
        _, state = policy.step(events[t : t + 1], proprio[t : t + 1], state)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


class ZeroActionPolicy(torch.nn.Module):
    """The floor: wheel commands (0, 0) every step, whatever it sees.

    It has the step interface :func:`~.rollout.collect_episodes` drives a policy through
    (``initial_state``, ``step``), so the floor runs on the same code path and worlds as
    every student; its one (empty) parameter only tells the rollout the device.
    """

    def __init__(self, action_size: int) -> None:
        super().__init__()
        self.action_size = int(action_size)
        self.device_anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> None:
        return None

    def step(self, events: torch.Tensor, proprio: torch.Tensor, state=None, masks=None):
        return torch.zeros(events.shape[0], self.action_size, device=events.device), state


def evaluate_baseline(
    model: str,
    settings: EnvSettings,
    shift: str | None = None,
    episodes: int = 8,
    seed: int = 0,
    num_envs: int | None = None,
) -> dict[str, Any]:
    """A built-in reference model (``expert`` or ``zero_action``, :data:`BASELINE_MODELS`)
    on the same worlds as :func:`evaluate_policy`; its cost fields are None (not a network).
    """
    if model not in BASELINE_MODELS:
        raise ValueError(f"baseline must be one of {BASELINE_MODELS}, got {model!r}")
    n = min(num_envs or settings.num_envs, episodes)
    envs = make_envs(settings, n, shift)
    try:
        seeds = eval_seeds(seed, round_up(episodes, n))
        if model == "expert":  # no student: the expert acts every step
            _, metrics = collect_episodes(envs, None, seeds, record=False)
        else:  # the floor is the student and always acts (beta 0)
            floor = ZeroActionPolicy(envs.single_action_space.shape[0])
            _, metrics = collect_episodes(envs, floor, seeds, beta=0.0, record=False)
    finally:
        envs.close()
    row = _row(model, None, shift, seed, settings, seeds[:episodes], metrics[:episodes])
    row.update({k: None for k in _COST_FIELDS}, step_latency_ms=None)
    return row

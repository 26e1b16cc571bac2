"""Closed-loop evaluation of a policy in the sim at one spiking ratio and one shift.

One row per (policy, ratio, shift, seed): the task score (the env's per-episode
``normalized_score`` in [0, 1], mean and std over episodes, plus the other episode
metrics and the return), the cost per control step measured on the observations the
policy actually saw (:meth:`HybridPolicy.measure_efficiency`: SynOps, MACs, energy at
45 nm, firing rate), and the policy's step latency at batch 1.  The privileged expert
is evaluated on the *same* worlds (same seeds) by :func:`evaluate_expert`, so the
student/expert fraction compares like with like.

Evaluation worlds are seeded from ``EVAL_SEED_BASE`` upward, disjoint from the training
worlds (:func:`~.rollout.episode_seeds` stays below 10⁹).  Rollouts are :mod:`.rollout`'s;
nothing here imports a trainer (CleanRL's evaluation utility receives the env factory
and the model the same way).

With ``online_plasticity`` (HRSNN-core policies) the policy keeps learning by STDP while
it is evaluated, as on a robot: one env, the episodes in order, weights carried from one
episode to the next; the trained weights are restored afterwards and the row records
how far the recurrent weights moved (``w_rec_drift``, relative L2).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from hybrid_snn_control.policy import HybridPolicy
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    make_envs,
    round_up,
    summarize_episodes,
)

__all__ = ["EVAL_SEED_BASE", "ROW_FIELDS", "eval_seeds", "evaluate_expert", "evaluate_policy"]

EVAL_SEED_BASE = 2_000_000_000

# Every row has these keys (CSV column order of the sweep).
ROW_FIELDS = (
    "model",
    "ratio",
    "shift",
    "seed",
    "episodes",
    "score",
    "score_std",
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


def eval_seeds(seed: int, episodes: int) -> list[int]:
    """The world seeds of evaluation ``seed`` (the same for every policy and the expert)."""
    return [EVAL_SEED_BASE + 10_000 * seed + i for i in range(episodes)]


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
    row: dict[str, Any] = {"model": "", "ratio": policy.spiking_ratio, "shift": shift or "nominal"}
    row.update(seed=seed, episodes=episodes, **summarize_episodes(metrics))
    row["episode_scores"] = [m["normalized_score"] for m in metrics]  # in the order run
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


def evaluate_expert(
    settings: EnvSettings,
    shift: str | None = None,
    episodes: int = 8,
    seed: int = 0,
    num_envs: int | None = None,
) -> dict[str, Any]:
    """The privileged expert on the same worlds as :func:`evaluate_policy` (no cost fields)."""
    n = min(num_envs or settings.num_envs, episodes)
    envs = make_envs(settings, n, shift)
    try:
        _, metrics = collect_episodes(
            envs, None, eval_seeds(seed, round_up(episodes, n)), record=False
        )
    finally:
        envs.close()
    row: dict[str, Any] = {"model": "expert", "ratio": None, "shift": shift or "nominal"}
    row.update(seed=seed, episodes=episodes, **summarize_episodes(metrics[:episodes]))
    for k in ("synops_per_step", "macs_per_step", "energy_pj_per_step", "firing_rate"):
        row[k] = None
    row["step_latency_ms"] = None
    return row

"""The ratio governor measured without ROS: fixed ratios vs ``budget`` vs ``adaptive`` on
worlds whose conditions change in the middle of each episode (issue 15).

Every configuration runs the policy node's own code — :class:`PolicyController` plus
:class:`~hybrid_snn_control.robot.adaptive_ratio.AdaptiveRatio` through
:func:`~hybrid_snn_control.robot.controller.rollout_episode`, the rollout the ROS closed
loop is checked against — on the same worlds as ``hsc sweep`` (``eval_seeds``), with
sim_node's live shift (``live_shift``, ``live_shift_at_s``).  The built-in ``expert`` and
``zero_action`` run on the same worlds for the gap closed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.robot.adaptive_ratio import AdaptiveRatio, load_profile
from hybrid_snn_control.robot.controller import PolicyController, rollout_episode
from hybrid_snn_control.ros.settings import SimSettings
from hybrid_snn_control.ros.sim_node import make_env
from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS
from hybrid_snn_control.training.evaluate import eval_seeds

__all__ = ["RatioConfig", "evaluate_ratio_configs", "summarize", "summary_lines"]


@dataclass(frozen=True)
class RatioConfig:
    """One way of choosing the ratio: ``fixed`` at ``ratio``, or a governor mode."""

    name: str
    mode: str = "fixed"
    ratio: float = 0.5
    energy_budget_nj: float | None = None
    governor: dict[str, Any] = field(default_factory=dict)


def _baseline_episode(env: Any, seed: int, kind: str) -> dict[str, float]:
    env.reset(seed=seed)
    while True:
        a = env.unwrapped.expert_action() if kind == "expert" else np.zeros(2, np.float32)
        _, _, term, trunc, info = env.step(np.asarray(a, np.float32))
        if term or trunc:
            return {k: float(v) for k, v in info["episode_metrics"].items()}


def evaluate_ratio_configs(
    checkpoint: str,
    configs: Sequence[RatioConfig],
    live_shift: str | None,
    seeds: Sequence[int],
    episodes: int,
    episode_s: float = 20.0,
    live_shift_at_s: float = 10.0,
    profile: str | None = None,
    threads: int = 1,
    log: Any = print,
) -> list[dict[str, Any]]:
    """One row per (config or baseline, seed, episode): score, split at the shift, energy
    per step, governor switches."""
    sim = SimSettings(
        episode_s=episode_s, live_shift=live_shift or "", live_shift_at_s=live_shift_at_s
    )
    env = make_env(sim)
    rows: list[dict[str, Any]] = []
    try:
        worlds = [(s, world) for s in seeds for world in eval_seeds(s, episodes)]
        for kind in ("expert", "zero_action"):
            for seed, world in worlds:
                m = _baseline_episode(env, world, kind)
                rows.append({"model": kind, "seed": seed, "world": world, **m})
        loaded = load_profile(profile) if profile else None
        for cfg in configs:
            t0 = time.perf_counter()
            controller = PolicyController(checkpoint, spiking_ratio=cfg.ratio, threads=threads)
            adaptive = None
            if cfg.mode != "fixed":
                adaptive = AdaptiveRatio(
                    controller,
                    loaded,
                    cfg.mode,
                    energy_budget_nj=cfg.energy_budget_nj,
                    rate_hz=sim.control_hz,
                    **cfg.governor,
                )
            for seed, world in worlds:
                m = rollout_episode(controller, env, world, V_MAX_MPS, OMEGA_MAX_RADPS, adaptive)
                rows.append({"model": cfg.name, "seed": seed, "world": world, **m})
                if adaptive is not None:
                    rows[-1]["switch_log"] = list(adaptive.switch_log)
                    adaptive.switch_log.clear()
            log(f"  {cfg.name:>12s} {live_shift or 'nominal'}: {time.perf_counter() - t0:.0f} s")
    finally:
        env.close()
    return rows


def summarize(rows: Sequence[dict[str, Any]], main: str = "adaptive") -> dict[str, Any]:
    """Mean score / gap closed / energy / switches per model, paired differences of
    ``main`` against every other model (95 % bootstrap CI over worlds)."""
    from hybrid_snn_control.training.stats import paired_bootstrap_ci

    by_model: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["world"]] = r
    expert, zero = by_model["expert"], by_model["zero_action"]
    worlds = sorted(expert)

    def gap(r: dict[str, Any], key: str = "normalized_score") -> float:
        e, z = expert[r["world"]].get(key, np.nan), zero[r["world"]].get(key, np.nan)
        return (r.get(key, np.nan) - z) / (e - z) if abs(e - z) > 1e-9 else np.nan

    table = {}
    for name, per in by_model.items():
        rs = [per[w] for w in worlds]
        table[name] = {
            "score": float(np.mean([r["normalized_score"] for r in rs])),
            "gap_closed": float(np.nanmean([gap(r) for r in rs])),
            **{k: _mean(rs, k) for k in ("score_before_shift", "score_after_shift")},
            "energy_nj_per_step": _mean(rs, "energy_nj_per_step"),
            "switches_per_episode": float(np.mean([r.get("ratio_switches", 0.0) for r in rs])),
            "steps_within_energy_budget": _mean(rs, "steps_within_energy_budget"),
            "worlds": len(rs),
        }
    paired = {}
    if main in by_model:
        a = np.asarray([by_model[main][w]["normalized_score"] for w in worlds])
        for name, per in by_model.items():
            if name == main:
                continue
            b = np.asarray([per[w]["normalized_score"] for w in worlds])
            mean, lo, hi = paired_bootstrap_ci(a, b)
            paired[name] = {"mean_diff": mean, "ci95": [lo, hi]}
    return {"table": table, "paired": paired}


def summary_lines(summary: dict[str, Any], main: str = "adaptive") -> list[str]:
    """The printed table of :func:`summarize`: a line per model, then the paired lines."""
    lines = []
    for name, t in summary["table"].items():
        line = (
            f"  {name:>12s} score {t['score']:.3f}  gap closed {t['gap_closed']:+.3f}  "
            f"before/after {t['score_before_shift']:.3f}/{t['score_after_shift']:.3f}  "
            f"{t['energy_nj_per_step']:.0f} nJ/step  {t['switches_per_episode']:.2f} switches"
        )
        if not np.isnan(t["steps_within_energy_budget"]):
            line += f"  {100 * t['steps_within_energy_budget']:.1f} % of steps within the budget"
        lines.append(line)
    for name, p in summary["paired"].items():
        lo, hi = p["ci95"]
        lines.append(f"  {main} - {name}: {p['mean_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return lines


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    vals = [r.get(key, np.nan) for r in rows]
    return float(np.nanmean(vals)) if not np.all(np.isnan(vals)) else float("nan")


def write_study(out: Path, results: dict[str, Any]) -> Path:
    """``study.json`` in ``out`` (atomic: written beside, then renamed)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "study.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    tmp.replace(path)
    return path

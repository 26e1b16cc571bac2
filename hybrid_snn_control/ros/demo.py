"""``hsc demo``: the README's main job — the closed loop in sim with live ratio switching.

Brings up sim_node → policy_node → actuator_node → sim_node (one process, one
single-threaded executor, parameters from ``config/sim.yaml``; :class:`ClosedLoop`) with
the shipped pursuit policy, and an *operator* node that switches ``spiking_ratio``
through a real ``SetParameters`` service call between segments (a few episodes at each
ratio; the call lands in the control period between an episode's end and the next one's
reset).  Prints per segment: the task score (the env's ``normalized_score``), the same
policy's score in a direct lock-step gym rollout on the same world seeds, the loop
latency (event publish → ``cmd_vel`` received, wall clock) and the cost per step
(SynOps, MACs, energy).  Writes ``report.md``, ``demo.png`` and ``demo.json`` to
``out_dir``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy

from hybrid_snn_control.config import load_node_params
from hybrid_snn_control.robot.controller import percentiles_ms
from hybrid_snn_control.ros.closed_loop import ClosedLoop
from hybrid_snn_control.ros.demo_report import print_summary, write_report
from hybrid_snn_control.ros.demo_settings import DemoParams
from hybrid_snn_control.ros.direct_rollout import direct_scores
from hybrid_snn_control.ros.policy_node import policy_node_controller
from hybrid_snn_control.ros.settings import PolicySettings, SimSettings

__all__ = ["add_direct_scores", "run_closed_loop", "run_demo"]

INVALID_RATIO = 1.5  # sent once at the end to show the validation (the old ratio stays)


def run_demo(config: Path, params: DemoParams, checkpoint: str | None = None) -> dict[str, Any]:
    """The whole demo: closed loop, direct reference, summary on stdout, report files."""
    result = run_closed_loop(config, params, checkpoint)
    if params.compare_direct:
        add_direct_scores(result, config, params, checkpoint)
    print_summary(result)
    report, plot, data = write_report(result, Path(params.out_dir))
    print(f"report: {report}, {plot}, {data}")
    return result


def run_closed_loop(
    config: Path, params: DemoParams, checkpoint: str | None = None
) -> dict[str, Any]:
    """Run every ratio segment through ROS; the result per segment (see demo_report)."""
    ctx = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(config)], context=ctx)
    try:
        policy: dict[str, Any] = {"spiking_ratio": float(params.ratios[0])}
        if checkpoint:
            policy["checkpoint"] = str(checkpoint)
        sim = {
            "episode_s": float(params.episode_s),
            "real_time_factor": float(params.real_time_factor),
            "lockstep": bool(params.lockstep),
        }
        with ClosedLoop(ctx, policy=policy, sim=sim, record=params.record or None) as loop:
            t_wall0 = time.monotonic()
            switches = _run_segments(loop, params)
            wall_s = time.monotonic() - t_wall0
            bad = loop.set_policy_parameter("spiking_ratio", INVALID_RATIO)
            rejected = {
                "value": INVALID_RATIO,
                "accepted": bad.successful,
                "reason": bad.reason,
                "ratio_after": loop.policy.controller.spiking_ratio,
            }
            if loop.recorder is not None:
                n = sum(loop.recorder.counts.values())
                print(f"recorded {loop.close_recording()}: {n} messages (hsc replay checks it)")
            return _summary(loop, config, params, switches, rejected, wall_s)
    finally:
        rclpy.shutdown(context=ctx)


def _run_segments(loop: ClosedLoop, params: DemoParams) -> list[dict[str, Any]]:
    """Spin through the segments, switching the ratio after each one's last episode."""
    deadline = time.monotonic() + params.timeout_s
    per = params.episodes_per_segment
    switches = []
    for k in range(len(params.ratios)):
        last = (k + 1) * per  # episodes finished when segment k is over
        if not loop.spin_until(
            lambda last=last: len(loop.sim.episodes) >= last, deadline - time.monotonic()
        ):
            raise RuntimeError(f"demo did not finish within {params.timeout_s} s")
        if k + 1 == len(params.ratios):
            break
        # the segment's last episode has just ended; sim_node resets at its next tick
        # (one control period later), so the next episode runs wholly at r
        r = params.ratios[k + 1]
        at = loop.policy.steps
        res = loop.set_policy_parameter("spiking_ratio", r)
        switches.append(
            {
                "segment": k + 1,
                "ratio": r,
                "ok": res.successful,
                "reason": res.reason,
                "call_ms": res.call_s * 1e3,
                "at_step": at,
            }
        )
        print(
            f"SetParameters spiking_ratio={r}: {'accepted' if res.successful else res.reason} "
            f"({res.call_s * 1e3:.1f} ms, policy step {at})",
            flush=True,
        )
    return switches


def _summary(
    loop: ClosedLoop,
    config: Path,
    params: DemoParams,
    switches: list[dict[str, Any]],
    rejected: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    per = params.episodes_per_segment
    statuses = loop.statuses
    segments = []
    for k, r in enumerate(params.ratios):
        eps = loop.sim.episodes[k * per : (k + 1) * per]
        rows = [s for s in statuses if s.get("spiking_ratio") == r]
        segments.append(
            {
                "segment": k,
                "ratio": r,
                "seeds": [e["seed"] for e in eps],
                "score": float(np.mean([e.get("normalized_score", np.nan) for e in eps])),
                "episode_scores": [e.get("normalized_score") for e in eps],
                "steps": sum(e["steps"] for e in eps),
                "late_commands": sum(e["late_commands"] for e in eps),
                "synops_per_step": _mean(rows, "synops"),
                "macs_per_step": _mean(rows, "macs"),
                "energy_nj_per_step": _mean(rows, "energy_pj") / 1e3,
                "firing_rate": float(np.mean([np.mean(s.get("firing_rate") or [0]) for s in rows]))
                if rows
                else float("nan"),
                "step_latency_ms": percentiles_ms([s["step_latency_ms"] / 1e3 for s in rows]),
            }
        )
    lat = loop.sim.loop_latency_s
    return {
        "config": str(config),
        "checkpoint": loop.policy.params.values.checkpoint or "shipped pursuit policy",
        "episode_s": params.episode_s,
        "episodes_per_segment": per,
        "wall_s": wall_s,
        "segments": segments,
        "switches": switches,
        "rejected": rejected,
        "loop_latency_ms": percentiles_ms(lat),
        "loop_latency_samples": len(lat),
        "trajectory": np.asarray(loop.sim.trajectory).tolist(),
        "timeline": [
            [
                s["stamp_us"],
                s["spiking_ratio"],
                s.get("energy_pj", float("nan")),
                s["step_latency_ms"],
            ]
            for s in statuses
            if s.get("stamp_us") is not None
        ],
    }


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else float("nan")


def add_direct_scores(
    result: dict[str, Any], config: Path, params: DemoParams, checkpoint: str | None = None
) -> None:
    """Add each segment's direct gym scores (same policy settings, seeds and ratios)."""
    policy = load_node_params(config, "policy_node", PolicySettings)
    if checkpoint:
        policy = dataclasses.replace(policy, checkpoint=str(checkpoint))
    sim = load_node_params(config, "sim_node", SimSettings)
    sim = dataclasses.replace(sim, episode_s=params.episode_s)
    segments = result["segments"]
    scores = direct_scores(
        policy_node_controller(policy), sim, [(s["ratio"], s["seeds"]) for s in segments]
    )
    for seg, episode_scores in zip(segments, scores, strict=True):
        seg["direct_episode_scores"] = episode_scores
        seg["direct_score"] = sum(episode_scores) / len(episode_scores)

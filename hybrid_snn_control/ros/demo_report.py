"""What ``hsc demo`` shows: the per-segment table, the summary lines and the report files.

Works on the result dict of :func:`hybrid_snn_control.ros.demo.run_closed_loop` (JSON as
written to ``demo.json``), so a saved run can be re-rendered without ROS.  Kept out of
the loop harness because it needs matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["print_summary", "segment_table", "write_report"]


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def segment_table(result: dict[str, Any]) -> list[str]:
    """One markdown row per ratio segment: scores, late commands, cost, step latency."""
    lines = [
        "| segment | ratio | score (ROS loop) | score (direct gym) | late cmds | SynOps/step "
        "| MACs/step | energy nJ/step | firing rate | policy step p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["segments"]:
        lat = s["step_latency_ms"]
        lines.append(
            f"| {s['segment']} | {s['ratio']:g} | {_fmt(s['score'])} | "
            f"{_fmt(s.get('direct_score'))} | {s['late_commands']}/{s['steps']} | "
            f"{s['synops_per_step']:.0f} | {s['macs_per_step']:.0f} | "
            f"{s['energy_nj_per_step']:.1f} | {s['firing_rate']:.3f} | "
            f"{lat['p50']:.2f} / {lat['p99']:.2f} |"
        )
    return lines


def print_summary(result: dict[str, Any]) -> None:
    """The table, the loop latency and the rejected ratio, on stdout."""
    print()
    print("\n".join(segment_table(result)))
    lat = result["loop_latency_ms"]
    print(
        f"\nloop latency (event packet published → cmd_vel received, "
        f"{result['loop_latency_samples']} steps): p50 {lat['p50']:.2f} ms, "
        f"p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms"
    )
    rej = result["rejected"]
    print(
        f"spiking_ratio={rej['value']} rejected: {rej['reason']!r}; "
        f"ratio stays {rej['ratio_after']:g}"
    )


def write_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``report.md``, ``demo.png`` (trajectory; ratio and energy over time), ``demo.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.md", out_dir / "demo.png", out_dir / "demo.json"]
    paths[2].write_text(json.dumps(result, indent=1))
    _plot(result, paths[1])
    paths[0].write_text(_markdown(result))
    return paths


def _markdown(result: dict[str, Any]) -> str:
    lat = result["loop_latency_ms"]
    text = [
        "# hsc demo: closed loop in sim with live ratio switching",
        "",
        f"Policy: {result['checkpoint']}; config: {result['config']}; "
        f"{len(result['segments'])} ratio segments of {result['episodes_per_segment']} "
        f"episodes × {result['episode_s']:g} s sim time; wall time {result['wall_s']:.1f} s.",
        "",
        *segment_table(result),
        "",
        "Scores are the env's `normalized_score` (mean per-step reward in [0, 1]) averaged "
        "over the segment's episodes; the direct gym column runs the same controller "
        "lock-step on the same world seeds.  Late cmds: "
        "steps that ran on an older command than a lock-step rollout would.",
        "",
        f"Loop latency (event packet published → `cmd_vel` received, wall clock, "
        f"{result['loop_latency_samples']} steps): p50 {lat['p50']:.2f} ms, "
        f"p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms.",
        "",
        "Ratio switches (SetParameters from another node):",
        "",
        *[
            f"* segment {s['segment']}: {s['ratio']:g} "
            f"{'accepted' if s['ok'] else 'rejected: ' + s['reason']} "
            f"(service call {s['call_ms']:.1f} ms, at policy step {s['at_step']})"
            for s in result["switches"]
        ],
        f"* invalid value {result['rejected']['value']}: rejected "
        f"(`{result['rejected']['reason']}`), ratio stayed {result['rejected']['ratio_after']:g}",
        "",
        "![trajectory and ratio/cost timeline](demo.png)",
        "",
    ]
    return "\n".join(text)


def _plot(result: dict[str, Any], path: Path) -> None:
    traj = np.asarray(result["trajectory"], dtype=float)
    if len(traj) > 1:  # break the lines at episode resets (the rover jumps to a new start)
        jump = np.hypot(*np.diff(traj[:, 1:3], axis=0).T) > 0.2
        traj[1:][jump, 1:] = np.nan
    tl = np.asarray(result["timeline"], dtype=float)
    fig = Figure(figsize=(12, 5))  # no pyplot: no global backend or figure registry
    ax0, ax1 = fig.subplots(1, 2)
    n = len(result["segments"])
    if len(traj):
        bounds = np.linspace(traj[0, 0], traj[-1, 0], n + 1)
        for k, seg in enumerate(result["segments"]):
            sel = (traj[:, 0] >= bounds[k]) & (traj[:, 0] <= bounds[k + 1])
            ax0.plot(traj[sel, 1], traj[sel, 2], label=f"rover, r={seg['ratio']:g}")
            ax0.plot(traj[sel, 3], traj[sel, 4], "--", color="gray", lw=0.8)
    ax0.set(
        xlim=(-2.5, 2.5),
        ylim=(-2.5, 2.5),
        aspect="equal",
        xlabel="x (m)",
        ylabel="y (m)",
        title="rover (solid) and target (dashed)",
    )
    ax0.legend(fontsize=8)
    if len(tl):
        t = (tl[:, 0] - tl[0, 0]) * 1e-6
        ax1.plot(t, tl[:, 2] / 1e3, lw=0.6, label="energy / step (nJ)")
        ax1.set(xlabel="sim time (s)", ylabel="energy per step (nJ)")
        ax2 = ax1.twinx()
        ax2.step(t, tl[:, 1], color="C3", where="post", label="spiking_ratio")
        ax2.set(ylabel="spiking_ratio", ylim=(-0.05, 1.05))
        ax1.set_title("ratio switches and cost per step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)

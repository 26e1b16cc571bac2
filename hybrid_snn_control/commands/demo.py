"""``hsc demo``: the README's main job — the closed loop in sim with live ratio switching.

Brings up sim_node → policy_node → actuator_node → sim_node (one process, one
single-threaded executor, parameters from ``config/sim.yaml``) with the shipped pursuit
policy, and an *operator* node that switches ``spiking_ratio`` through a real
``SetParameters`` service call between segments (a few episodes at each ratio; the call
lands in the control period between an episode's end and the next one's reset).
Prints per segment: the task score (the env's ``normalized_score``), the same policy's
score in a direct lock-step gym rollout on the same world seed, the loop latency (event
publish → ``cmd_vel`` received, wall clock) and the cost per step (SynOps, MACs,
energy).  Writes ``report.md``, ``demo.png`` and ``demo.json`` to ``out_dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_snn_control.config import load_node_params, param
from hybrid_snn_control.paths import config_file


@dataclass
class DemoParams:
    """Settings of ``hsc demo`` (section ``hsc_demo`` of the config file)."""

    ratios: list[float] = field(
        default_factory=lambda: [0.5, 0.25, 1.0],
        metadata=param(description="spiking_ratio per segment (one episode each)"),
    )
    episode_s: float = field(
        default=5.0,
        metadata=param(
            range=(0.5, 600.0),
            description="sim seconds per episode (the shipped policy was trained on 5 s)",
        ),
    )
    episodes_per_segment: int = field(
        default=3, metadata=param(range=(1, 1000), description="episodes at each ratio")
    )
    real_time_factor: float = field(
        default=1.0, metadata=param(range=(0.05, 10.0), description="sim s per wall s")
    )
    lockstep: bool = field(
        default=False,
        metadata=param(
            description="sim waits for each step's command (the loop then replays the direct "
            "rollout exactly); false: real time, late commands are counted"
        ),
    )
    compare_direct: bool = field(
        default=True,
        metadata=param(description="also roll the policy out directly in gym (same seeds)"),
    )
    out_dir: str = field(default="runs/demo", metadata=param(description="report folder"))
    timeout_s: float = field(default=600.0, metadata=param(range=(1.0, 7200.0)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="closed loop in sim with the shipped policy, switching the spiking ratio live",
    )
    p.add_argument("--config", default="sim", help="parameter file (shipped name or path)")
    p.add_argument("--checkpoint", help="policy file (default: the config's / shipped policy)")
    p.add_argument("--ratios", help="comma-separated ratios, one segment each (e.g. 0.5,0.25,1)")
    p.add_argument("--episode-s", type=float, help="sim seconds per episode")
    p.add_argument("--episodes", type=int, help="episodes per ratio segment")
    p.add_argument("--out", help="report folder (default runs/demo)")
    p.add_argument("--lockstep", action="store_true", help="sim waits for each command")
    p.add_argument("--no-compare", action="store_true", help="skip the direct gym rollout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = config_file(args.config).resolve()
    params = load_node_params(path, "hsc_demo", DemoParams)
    if args.ratios:
        params.ratios = [float(r) for r in args.ratios.split(",")]
    if args.episode_s:
        params.episode_s = args.episode_s
    if args.episodes:
        params.episodes_per_segment = args.episodes
    if args.out:
        params.out_dir = args.out
    if getattr(args, "lockstep", False):
        params.lockstep = True
    if args.no_compare:
        params.compare_direct = False
    for r in params.ratios:
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"ratios must be in [0, 1], got {r}")
    result = run_closed_loop(path, params, args.checkpoint)
    if params.compare_direct:
        _direct(path, params, args.checkpoint, result)
    _print(result)
    out = Path(params.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "demo.png")
    _markdown(result, out / "report.md")
    print(f"report: {out / 'report.md'}, {out / 'demo.png'}, {out / 'demo.json'}")
    return 0


def run_closed_loop(path: Path, params: DemoParams, checkpoint: str | None) -> dict:
    import numpy as np
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from hybrid_snn_control.robot.controller import percentiles_ms
    from hybrid_snn_control.ros.actuator_node import ActuatorNode
    from hybrid_snn_control.ros.policy_node import PolicyNode
    from hybrid_snn_control.ros.sim_node import SimNode

    ctx = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=ctx)
    nodes = []
    try:
        over = [Parameter("spiking_ratio", value=float(params.ratios[0]))]
        if checkpoint:
            over.append(Parameter("checkpoint", value=str(checkpoint)))
        actuator = ActuatorNode(context=ctx)
        policy = PolicyNode(context=ctx, parameter_overrides=over)
        sim = SimNode(
            context=ctx,
            parameter_overrides=[
                Parameter("episode_s", value=float(params.episode_s)),
                Parameter("real_time_factor", value=float(params.real_time_factor)),
                Parameter("lockstep", value=bool(params.lockstep)),
            ],
        )
        operator = Node("demo_operator", context=ctx)
        nodes = [actuator, policy, sim, operator]
        client = operator.create_client(SetParameters, "/policy_node/set_parameters")
        statuses: list[dict] = []
        operator.create_subscription(
            String, "/policy_node/status", lambda m: statuses.append(json.loads(m.data)), 100
        )
        ex = SingleThreadedExecutor(context=ctx)
        for n in nodes:
            ex.add_node(n)
        if not client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("policy_node's set_parameters service did not appear")

        def set_ratio(r: float) -> tuple[bool, str, float]:
            req = SetParameters.Request()
            req.parameters = [
                ParameterMsg(
                    name="spiking_ratio",
                    value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=r),
                )
            ]
            t0 = time.monotonic()
            fut = client.call_async(req)
            while not fut.done():
                ex.spin_once(timeout_sec=0.01)
            res = fut.result().results[0]
            return res.successful, res.reason, time.monotonic() - t0

        switches = []
        deadline = time.monotonic() + params.timeout_s
        t_wall0 = time.monotonic()
        per = params.episodes_per_segment

        def spin_until(cond) -> None:
            while not cond():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"demo did not finish within {params.timeout_s} s")
                ex.spin_once(timeout_sec=0.02)

        for k in range(len(params.ratios)):
            last = (k + 1) * per  # episodes finished when segment k is over
            spin_until(lambda last=last: len(sim.episodes) >= last)
            if k + 1 < len(params.ratios):
                # the segment's last episode has just ended; sim_node resets at its next
                # tick (one control period later), so the next episode runs wholly at r
                r = params.ratios[k + 1]
                at = policy.steps
                ok, reason, dt = set_ratio(r)
                switches.append(
                    {
                        "segment": k + 1,
                        "ratio": r,
                        "ok": ok,
                        "reason": reason,
                        "call_ms": dt * 1e3,
                        "at_step": at,
                    }
                )
                print(
                    f"SetParameters spiking_ratio={r}: {'accepted' if ok else reason} "
                    f"({dt * 1e3:.1f} ms, policy step {at})",
                    flush=True,
                )
        wall_s = time.monotonic() - t_wall0
        # one bad value, to show the validation (the old ratio must stay)
        ok, reason, _ = set_ratio(1.5)
        rejected = {
            "value": 1.5,
            "accepted": ok,
            "reason": reason,
            "ratio_after": policy.controller.spiking_ratio,
        }
        segments = []
        for k, r in enumerate(params.ratios):
            eps = sim.episodes[k * per : (k + 1) * per]
            rows = [s for s in statuses if s.get("spiking_ratio") == r]
            lat = sim.loop_latency_s
            seg = {
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
            segments.append(seg)
        traj = np.asarray(sim.trajectory)
        return {
            "config": str(path),
            "checkpoint": policy.params.values.checkpoint or "shipped pursuit policy",
            "episode_s": params.episode_s,
            "episodes_per_segment": per,
            "wall_s": wall_s,
            "segments": segments,
            "switches": switches,
            "rejected": rejected,
            "loop_latency_ms": percentiles_ms(lat),
            "loop_latency_samples": len(lat),
            "trajectory": traj.tolist(),
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
    finally:
        if nodes:
            try:
                nodes[0].safe_stop()
            except Exception:  # noqa: BLE001
                pass
        for n in reversed(nodes):
            n.destroy_node()
        rclpy.shutdown(context=ctx)


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else float("nan")


def _direct(path: Path, params: DemoParams, checkpoint: str | None, result: dict) -> None:
    """The same policy, seeds and ratios in a lock-step gym loop (no ROS)."""
    from hybrid_snn_control.config import load_node_params
    from hybrid_snn_control.robot.controller import PolicyController, rollout_episode
    from hybrid_snn_control.ros.policy_node import resolve_checkpoint
    from hybrid_snn_control.ros.settings import PolicySettings, SimSettings
    from hybrid_snn_control.ros.sim_node import make_env
    from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS

    ps = load_node_params(path, "policy_node", PolicySettings)
    ss = load_node_params(path, "sim_node", SimSettings)
    ss = dataclasses.replace(ss, episode_s=params.episode_s)
    ctl = PolicyController(
        resolve_checkpoint(checkpoint or ps.checkpoint),
        max_linear_mps=ps.max_linear_mps,
        max_angular_rps=ps.max_angular_rps,
    )
    ctl.set_plasticity(ps.online_plasticity, ps.online_plasticity_rate)  # as policy_node
    env = make_env(ss)
    try:
        for seg in result["segments"]:
            ctl.set_ratio(seg["ratio"])
            scores = [
                rollout_episode(ctl, env, seed, V_MAX_MPS, OMEGA_MAX_RADPS)["normalized_score"]
                for seed in seg["seeds"]
            ]
            seg["direct_episode_scores"] = scores
            seg["direct_score"] = sum(scores) / len(scores)
    finally:
        env.close()


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _table(result: dict) -> list[str]:
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


def _print(result: dict) -> None:
    print()
    print("\n".join(_table(result)))
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


def _markdown(result: dict, path: Path) -> None:
    lat = result["loop_latency_ms"]
    text = [
        "# hsc demo: closed loop in sim with live ratio switching",
        "",
        f"Policy: {result['checkpoint']}; config: {result['config']}; "
        f"{len(result['segments'])} ratio segments of {result['episodes_per_segment']} "
        f"episodes × {result['episode_s']:g} s sim time; wall time {result['wall_s']:.1f} s.",
        "",
        *_table(result),
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
    path.write_text("\n".join(text))


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    traj = np.asarray(result["trajectory"], dtype=float)
    if len(traj) > 1:  # break the lines at episode resets (the rover jumps to a new start)
        jump = np.hypot(*np.diff(traj[:, 1:3], axis=0).T) > 0.2
        traj[1:][jump, 1:] = np.nan
    tl = np.asarray(result["timeline"], dtype=float)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 5))
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
    plt.close(fig)

"""``hsc train`` / ``hsc eval`` / ``hsc sweep``: imitation in the sim, evaluation, ratio sweeps.

::

    # HSTNN on pursuit (adapt with BC+DAgger -> Hessian selection -> ratio-sampled restore);
    # this is the command that produces the shipped default policy:
    hsc train --config config/train.yaml \\
        --out hybrid_snn_control/policies/pursuit_default.safetensors
    hsc train --out runs/p/policy.safetensors --restore-each 0 0.5 1   # + per-ratio models
    hsc train --pipeline direct --ratio 0 --out runs/p/pure_rnn.safetensors    # baselines
    hsc train ... --resume            # continue a killed run (same --run-dir)
    hsc train --pipeline finetune --init runs/p/policy.safetensors --data runs/p \
        --set env.train_ranges=to_the_edge --run-dir runs/p2    # continue a trained policy
    hsc eval --checkpoint runs/p/policy.safetensors --ratio 0.25 --shift dim --episodes 8
    hsc sweep --model hybrid=runs/p/policy.safetensors --shifts nominal dim flicker slippery

Evaluation runs the built-in ``expert`` and ``zero_action`` models on the same worlds
(``--no-baselines`` skips them), reports each model's gap closed and its paired difference
with ``zero_action`` (95 % bootstrap CI), and uses the env's default episode length (20 s
on pursuit; ``--episode-s SECONDS``, or ``--episode-s policy`` for the training length).

Settings: section ``hsc_imitation`` of the parameter file (``--set key=value`` for any
field, dotted for nested ones: ``--set env.camera_size=48 --set hstnn.adapt_steps=300``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="imitation (BC + DAgger) in the sim, HSTNN stages")
    t.add_argument("--config", default="train", help="parameter file (shipped name or path)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--out", default=None, help="policy file (default <run-dir>/policy.safetensors)")
    t.add_argument("--run-dir", default=None, help="stage runs and checkpoints (hstnn.out_dir)")
    t.add_argument(
        "--pipeline",
        choices=("hstnn", "direct", "finetune"),
        default="hstnn",
        help="finetune: continue --init with the restoration stage and new DAgger rounds",
    )
    t.add_argument(
        "--init", default=None, help="finetune: the policy file (or task model) to continue"
    )
    t.add_argument(
        "--data",
        nargs="+",
        default=(),
        metavar="DIR",
        help="seed the DAgger aggregate with the dagger_*.npz rounds of earlier runs",
    )
    t.add_argument(
        "--core",
        choices=("hybrid", "hrsnn"),
        default="hybrid",
        help="hrsnn: STDP-shaped HRSNN + ridge readout, no backprop (section hsc_hrsnn_policy)",
    )
    t.add_argument(
        "--ratio", type=float, default=None, help="direct: the fixed ratio; hstnn: stored ratio"
    )
    t.add_argument(
        "--restore-each",
        type=float,
        nargs="*",
        default=None,
        metavar="R",
        help="hstnn: also fine-tune one model per ratio (<out stem>_r<R>.safetensors)",
    )
    t.add_argument("--resume", action="store_true", help="continue the runs in --run-dir")
    t.add_argument("--device", default=None, help="cpu or cuda[:N]")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: one plain line per checkpoint instead (for log files)",
    )
    t.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="evaluate a policy in the sim at a ratio and shift")
    e.add_argument("--checkpoint", default=None, help="policy file (default: the shipped one)")
    e.add_argument("--ratio", type=float, default=None, help="spiking ratio (default: stored)")
    e.add_argument("--shift", default="nominal", help="nominal or a held-out shift name")
    e.add_argument("--episodes", type=int, default=8)
    e.add_argument("--seed", type=int, default=0, help="evaluation worlds")
    _add_eval_world_args(e)
    e.add_argument(
        "--online-plasticity",
        action="store_true",
        help="HRSNN-core policies: keep learning by STDP during the episodes (in order)",
    )
    e.add_argument(
        "--plasticity-rate", type=float, default=1.0, help="x the STDP learning rates (online)"
    )
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    e.add_argument(
        "--ratio-mode",
        choices=("fixed", "budget", "adaptive"),
        default=None,
        help="run policy_node's ratio governor (its profile beside the policy) through the "
        "direct rollout; with --live-shift the shift starts mid-episode",
    )
    e.add_argument("--energy-budget-nj", type=float, default=None, help="--ratio-mode budget")
    e.add_argument("--live-shift", default=None, help="a shift that starts at --live-shift-at-s")
    e.add_argument("--live-shift-at-s", type=float, default=10.0)
    e.set_defaults(func=run_eval)

    s = sub.add_parser("sweep", help="ratios x shifts x seeds -> CSV, JSON, Markdown, PNG")
    s.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[@R,..][:online]=PATH[,PATH..]",
        help="a model (one file per seed, or one; ':online' = with online plasticity); "
        "default: hybrid=<shipped policy>",
    )
    s.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    s.add_argument("--shifts", nargs="+", default=["nominal", "dim", "flicker", "slippery"])
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument(
        "--episodes", type=int, default=4, help="episodes per (model, ratio, shift, seed)"
    )
    s.add_argument("--main", default="hybrid", help="the model drawn as lines")
    _add_eval_world_args(s)
    s.add_argument("--out", default="sweep", help="output directory")
    s.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="DIR",
        help="do not evaluate: combine the rows of earlier sweeps (their sweep.json) into --out; "
        "DIR:OLD=NEW renames a model of that sweep (compare two files evaluated under one "
        "name); repeated baseline rows are taken once",
    )
    s.add_argument(
        "--paired-with",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="--merge: also print every model's paired difference with MODEL on shared worlds",
    )
    s.add_argument(
        "--ratio-study",
        action="store_true",
        help="--merge: also write the ratio study's paired answers and plots "
        "(training/ratio_report.py; models hybrid, restored, direct_hybrid, pure_rnn, "
        "pure_snn, hybrid_spk)",
    )
    s.add_argument(
        "--min-detectable",
        type=float,
        default=None,
        metavar="HALF_WIDTH",
        help="print each paired comparison's MDE and the worlds a 95 %% CI of ± HALF_WIDTH "
        "(gap closed) would need",
    )
    s.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    s.set_defaults(func=run_sweep)


def _episode_s(text: str) -> float | str:
    """``--episode-s``: seconds, or ``policy`` (the policy's training episode length)."""
    if text == "policy":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0 or 'policy', got {text!r}")
    return value


def _add_eval_world_args(p: argparse.ArgumentParser) -> None:
    """The options ``hsc eval`` and ``hsc sweep`` share: episode length, the baselines."""
    p.add_argument(
        "--episode-s",
        type=_episode_s,
        default=None,
        metavar="SECONDS|policy",
        help="episode length (default: the env's, 20 s on pursuit; 'policy': the length "
        "the policy was trained on)",
    )
    p.add_argument(
        "--no-baselines",
        "--no-expert",
        dest="no_baselines",
        action="store_true",
        help="skip the built-in expert and zero_action models (no gap closed, no paired CI)",
    )


def _threads(args: argparse.Namespace) -> None:
    """Small recurrent models run fastest on one thread; more threads thrash a busy CPU.
    Freed memory is kept for the next step (training/allocator.py)."""
    import torch

    from hybrid_snn_control.training.allocator import keep_freed_memory

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    keep_freed_memory()


# ---- train ---------------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    _threads(args)
    from hybrid_snn_control.training.hstnn_settings import parse_overrides
    from hybrid_snn_control.training.imitation import load_task
    from hybrid_snn_control.training.imitation_policy import train_policy

    over = parse_overrides(args.overrides)
    if args.seed is not None:
        over["seed"] = args.seed
    if args.core == "hrsnn":
        return _train_hrsnn(args, over)
    train_policy(
        load_task(args.config, over),
        args.out,
        run_dir=args.run_dir,
        pipeline=args.pipeline,
        ratio=args.ratio,
        restore_each=args.restore_each or (),
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
        init=args.init,
        data=args.data,
    )
    return 0


def _train_hrsnn(args: argparse.Namespace, over: dict) -> int:
    """STDP phase + ridge readout + DAgger refits (:mod:`~.training.hrsnn_policy`)."""
    from hybrid_snn_control.config import load_node_params
    from hybrid_snn_control.paths import config_file
    from hybrid_snn_control.training.hrsnn_policy import (
        HRSNNPolicyTrainConfig,
        train_hrsnn_policy,
    )

    cfg = load_node_params(
        config_file(args.config), "hsc_hrsnn_policy", HRSNNPolicyTrainConfig, over
    )
    out = Path(args.out or Path(args.run_dir or "runs/hrsnn_policy") / "policy.safetensors")
    _, meta = train_hrsnn_policy(cfg, out)
    print(f"wrote {out} ({meta['train_s']:.1f} s)")
    return 0


# ---- eval ----------------------------------------------------------------------------------------
def _load(path: str | None, device: str = "cpu"):
    from hybrid_snn_control.policy import load_policy
    from hybrid_snn_control.policy.shipped import default_policy_path

    return load_policy(path or default_policy_path(), device)


def _eval_governed(args: argparse.Namespace) -> int:
    """``hsc eval --ratio-mode``: the robot-side controller + governor in the direct rollout
    (what policy_node runs), on the same worlds as ``hsc eval``, with the baselines."""
    from hybrid_snn_control.policy.shipped import default_policy_path
    from hybrid_snn_control.robot.adaptive_ratio import profile_path_for
    from hybrid_snn_control.ros.governor_study import (
        RatioConfig,
        evaluate_ratio_configs,
        summarize,
        summary_lines,
    )

    checkpoint = args.checkpoint or str(default_policy_path())
    mode = args.ratio_mode or "fixed"
    ratio = 0.5 if args.ratio is None else args.ratio
    cfg = RatioConfig(mode, mode, ratio, args.energy_budget_nj)
    episode_s = 20.0 if args.episode_s in (None, "policy") else float(args.episode_s)
    rows = evaluate_ratio_configs(
        checkpoint, [cfg], args.live_shift, [args.seed], args.episodes, episode_s,
        args.live_shift_at_s, str(profile_path_for(checkpoint)) if mode != "fixed" else None,
        args.threads, log=lambda *_: None,
    )  # fmt: skip
    summary = summarize(rows, main=mode)
    if args.json:
        print(json.dumps({"rows": rows, **summary}, default=float))
        return 0
    where = f"{args.live_shift} from {args.live_shift_at_s:g} s" if args.live_shift else "nominal"
    print(f"{episode_s:g} s episodes, evaluation seed {args.seed}, {where}")
    print("\n".join(summary_lines(summary, main=mode)))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    _threads(args)
    from hybrid_snn_control.training.evaluate import (
        BASELINE_MODELS,
        evaluate_baseline,
        evaluate_policy,
        evaluation_settings,
    )
    from hybrid_snn_control.training.stats import paired_vs_baseline, with_gap_closed
    from hybrid_snn_control.training.sweep import paired_line

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.ratio_mode is not None or args.live_shift is not None:
        return _eval_governed(args)
    policy, meta = _load(args.checkpoint, args.device)
    settings = evaluation_settings(meta, args.episode_s)
    shift = None if args.shift == "nominal" else args.shift
    rows = [
        evaluate_policy(
            policy,
            settings,
            args.ratio,
            shift,
            args.episodes,
            args.seed,
            online_plasticity=args.online_plasticity,
            plasticity_rate=args.plasticity_rate,
        )
    ]
    rows[0]["model"] = Path(args.checkpoint).stem if args.checkpoint else "default"
    paired = []
    if not args.no_baselines:  # the same worlds; the policy's paired line vs the floor
        rows += [
            evaluate_baseline(name, settings, shift, args.episodes, args.seed)
            for name in BASELINE_MODELS
        ]
        rows = with_gap_closed(rows)
        paired = [p for p in paired_vs_baseline(rows) if p["model"] not in BASELINE_MODELS]
    if args.json:
        print(json.dumps(rows[0] if args.no_baselines else {"rows": rows, "paired": paired}))
        return 0
    print(f"{settings.episode_s:g} s episodes, evaluation seed {args.seed}")
    for row in rows:
        r = "-" if row["ratio"] is None else f"{row['ratio']:g}"
        line = f"{row['model']}: ratio {r}, shift {row['shift']}, {row['episodes']} episodes: "
        line += f"score {row['score']:.3f} ± {row['score_std']:.3f}"
        if row.get("gap_closed") is not None:
            line += f", gap closed {row['gap_closed']:.2f} ± {row['gap_closed_std']:.2f}"
        if row.get("macs_per_step") is not None:
            line += (
                f", SynOps/step {row['synops_per_step']:.0f}, MACs/step {row['macs_per_step']:.0f}"
                f", energy/step {row['energy_pj_per_step'] / 1e3:.1f} nJ"
                f", step latency {row['step_latency_ms']:.3f} ms"
            )
        if row.get("online_plasticity"):
            line += f", online plasticity: recurrent weights moved {row['w_rec_drift']:.2%}"
        print(line)
    for p in paired:
        print(paired_line(p))
    return 0


# ---- sweep ---------------------------------------------------------------------------------------
def run_sweep(args: argparse.Namespace) -> int:
    _threads(args)
    from hybrid_snn_control.policy import load_policy
    from hybrid_snn_control.policy.shipped import default_policy_path
    from hybrid_snn_control.training.evaluate import evaluation_settings
    from hybrid_snn_control.training.stats import paired_vs_baseline, with_gap_closed
    from hybrid_snn_control.training.sweep import (
        SweepEntry,
        merge_sweeps,
        paired_line,
        parse_entry,
        parse_merge_part,
        run_sweep,
        write_outputs,
    )

    if args.merge:
        parts, infos = [], []
        for text in args.merge:
            d, rename = parse_merge_part(text)
            blob = json.loads((Path(d) / "sweep.json").read_text())
            parts.append((blob["rows"], rename))
            infos.append(blob.get("settings", {}))
        rows = merge_sweeps(parts)
        paths = write_outputs(rows, args.out, {"merged": args.merge, "parts": infos}, args.main)
        gap_rows = with_gap_closed(rows)
        for baseline in ["zero_action", *args.paired_with]:
            for p in paired_vs_baseline(gap_rows, baseline=baseline):
                print(paired_line(p, baseline, args.min_detectable))
        if args.ratio_study:
            from hybrid_snn_control.training.ratio_report import write_study

            paths.update({f"study_{k}": v for k, v in write_study(rows, args.out).items()})
        for p in paths.values():
            print(f"wrote {p}")
        return 0
    entries = [parse_entry(m) for m in args.model] or [
        SweepEntry("hybrid", [str(default_policy_path())])
    ]
    _, meta = load_policy(entries[0].paths[0])
    settings = evaluation_settings(meta, args.episode_s)
    t0 = time.perf_counter()
    rows = run_sweep(
        entries,
        settings,
        args.ratios,
        args.shifts,
        args.seeds,
        args.episodes,
        baselines=not args.no_baselines,
    )
    info = {
        "models": [vars(e) for e in entries],
        "ratios": args.ratios,
        "shifts": args.shifts,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "env": vars(settings),
        "policy_env": meta.get("env", {}),
        "sweep_wall_s": time.perf_counter() - t0,
    }
    paths = write_outputs(rows, args.out, info, main=args.main)
    for p in paired_vs_baseline(rows):
        print(paired_line(p, min_detectable=args.min_detectable))
    for p in paths.values():
        print(f"wrote {p}")
    return 0

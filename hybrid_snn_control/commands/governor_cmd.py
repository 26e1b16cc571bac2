"""``hsc profile`` and ``hsc govern``: the ratio governor's profile and its measurement.

::

    # the ratio profile of a policy from its sweep (score and cost per ratio per condition)
    hsc profile --sweep docs/results_student --model student \\
        --out hybrid_snn_control/policies/pursuit_default.profile.json
    # fixed ratios vs budget vs adaptive, noisy_sensor switched on at 10 s of 20 s episodes,
    # on worlds neither training nor the profile used (evaluation seeds 10, 11, 12)
    hsc govern --shifts noisy_sensor flicker --seeds 10 11 12 --episodes 10 --out runs/govern

The profile's sweep seeds and the study's seeds must differ (the study checks the ones it
can see in the profile's sweep).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="a policy's ratio profile (for the governor) from a sweep")
    p.add_argument("--sweep", required=True, help="hsc sweep output folder or its sweep.json")
    p.add_argument("--model", required=True, help="the model's name in the sweep")
    p.add_argument(
        "--out", required=True, help="profile JSON (beside the policy: <stem>.profile.json)"
    )
    p.set_defaults(func=run_profile)

    g = sub.add_parser("govern", help="fixed ratios vs the ratio governor under mid-episode shifts")
    g.add_argument("--checkpoint", default=None, help="policy file (default: the shipped one)")
    g.add_argument("--profile", default=None, help="ratio profile (default: beside the policy)")
    g.add_argument("--shifts", nargs="+", default=["noisy_sensor", "flicker"])
    g.add_argument("--at-s", type=float, default=10.0, help="when the shift starts, s")
    g.add_argument("--episode-s", type=float, default=20.0)
    g.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    g.add_argument("--episodes", type=int, default=10)
    g.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    g.add_argument("--start-ratio", type=float, default=0.5, help="governed runs start here")
    g.add_argument("--energy-budget-nj", type=float, default=None, help="also run 'budget'")
    g.add_argument(
        "--only", nargs="+", default=None, help="run only these configs (fixed@R, adaptive, budget)"
    )
    g.add_argument("--out", default="runs/govern")
    g.add_argument("--threads", type=int, default=1)
    g.set_defaults(func=run_govern)


def _sweep_json(path: str) -> Path:
    p = Path(path)
    return p / "sweep.json" if p.is_dir() else p


def run_profile(args: argparse.Namespace) -> int:
    from hybrid_snn_control.robot.adaptive_ratio import profile_from_sweep

    sweep = json.loads(_sweep_json(args.sweep).read_text())
    profile = profile_from_sweep(sweep, args.model)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(profile.to_dict(), indent=1) + "\n")
    tmp.replace(out)
    for label in profile.labels:
        entries = [(r, profile.entry(label, r)) for r in profile.ratios]
        cells = ", ".join(f"r={r:g}: {e.score:.3f} / {e.energy_nj:.0f} nJ" for r, e in entries)
        print(f"{label:>13s}  {cells}")
    print(f"wrote {out}")
    return 0


def run_govern(args: argparse.Namespace) -> int:
    from hybrid_snn_control.policy.shipped import default_policy_path
    from hybrid_snn_control.robot.adaptive_ratio import profile_path_for
    from hybrid_snn_control.ros.governor_study import (
        RatioConfig,
        evaluate_ratio_configs,
        summarize,
        summary_lines,
        write_study,
    )

    checkpoint = args.checkpoint or str(default_policy_path())
    profile = args.profile or str(profile_path_for(checkpoint))
    configs = [RatioConfig(f"fixed@{r:g}", "fixed", r) for r in args.ratios]
    configs.append(RatioConfig("adaptive", "adaptive", args.start_ratio))
    if args.energy_budget_nj:
        configs.append(RatioConfig("budget", "budget", args.start_ratio, args.energy_budget_nj))
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    if args.only:
        configs = [c for c in configs if c.name in args.only]
    results: dict = {"settings": settings | {"checkpoint": checkpoint, "profile": profile}}
    for shift in args.shifts:
        rows = evaluate_ratio_configs(
            checkpoint, configs, None if shift == "nominal" else shift, args.seeds,
            args.episodes, args.episode_s, args.at_s, profile, args.threads,
        )  # fmt: skip
        summary = summarize(rows)
        results[shift] = {"rows": rows, **summary}
        print(
            f"\n{shift} from {args.at_s:g} s ({len(args.seeds)} seeds x {args.episodes} episodes)"
        )
        print("\n".join(summary_lines(summary)))
    print(f"wrote {write_study(Path(args.out), results)}")
    return 0

"""``hsc demo``: the closed loop in sim with the shipped policy, switching the ratio live.

Parses the arguments into the ``hsc_demo`` settings and calls
:func:`hybrid_snn_control.ros.demo.run_demo`, which runs the loop and writes the report.
"""

from __future__ import annotations

import argparse
from typing import Any

from hybrid_snn_control.config import load_node_params
from hybrid_snn_control.paths import config_file
from hybrid_snn_control.ros.demo_settings import DemoParams


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
    p.add_argument("--record", metavar="FILE.mcap", help="record the run's topics to MCAP")
    p.add_argument("--no-compare", action="store_true", help="skip the direct gym rollout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        "ratios": [float(r) for r in args.ratios.split(",")] if args.ratios else None,
        "episode_s": args.episode_s,
        "episodes_per_segment": args.episodes,
        "out_dir": args.out,
        "lockstep": True if args.lockstep else None,
        "compare_direct": False if args.no_compare else None,
        "record": args.record,
    }
    path = config_file(args.config).resolve()
    params = load_node_params(
        path, "hsc_demo", DemoParams, {k: v for k, v in overrides.items() if v is not None}
    )
    from hybrid_snn_control.ros.demo import run_demo  # rclpy, MuJoCo: only when the demo runs

    run_demo(path, params, args.checkpoint)
    return 0

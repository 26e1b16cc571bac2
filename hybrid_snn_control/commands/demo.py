"""``hsc demo``: the README's main job, run on the shipped defaults (``config/sim.yaml``).

Until the closed-loop bring-up exists this is the installation smoke run: it checks the
components (``hsc doctor``) and measures a real rclpy round trip between two nodes in
one executor.  The command and its config section stay the same as it grows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from hybrid_snn_control.config import load_node_params, param
from hybrid_snn_control.paths import config_file


@dataclass
class DemoParams:
    """Settings of ``hsc demo`` (section ``hsc_demo`` of the config file)."""

    messages: int = field(
        default=200, metadata=param(range=(1, 1_000_000), description="round trips to time")
    )
    timeout_s: float = field(default=20.0, metadata=param(range=(0.1, 3600.0)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the shipped defaults")
    p.add_argument("--config", default="sim", help="parameter file (shipped name or path)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_snn_control.commands.doctor import check_all

    params = load_node_params(config_file(args.config), "hsc_demo", DemoParams)
    for k, v in check_all().items():
        print(f"{k:<14} {v}")
    from hybrid_snn_control.ros.roundtrip import measure_round_trip

    lat = measure_round_trip(params.messages, params.timeout_s)
    print(
        f"rclpy round trip over {len(lat)} messages: "
        f"median {lat[len(lat) // 2] * 1e3:.3f} ms, max {lat[-1] * 1e3:.3f} ms"
    )
    return 0

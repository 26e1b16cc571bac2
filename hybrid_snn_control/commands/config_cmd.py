"""``hsc config``: list, show and check the ROS 2 parameter files."""

from __future__ import annotations

import argparse

import yaml

from hybrid_snn_control.config import load_parameter_file
from hybrid_snn_control.paths import config_file, share_dirs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or check parameter files (config/*.yaml)")
    p.add_argument("action", choices=["list", "show", "check"])
    p.add_argument("file", nargs="?", help="a shipped name (sim) or a path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for base in share_dirs():
            for f in sorted((base / "config").glob("*.yaml")):
                print(f)
        return 0
    if not args.file:
        raise ValueError(f"'hsc config {args.action}' needs a file")
    path = config_file(args.file)
    nodes = load_parameter_file(path)
    if args.action == "show":
        print(f"# {path}")
        print(
            yaml.safe_dump({n: {"ros__parameters": p} for n, p in nodes.items()}, sort_keys=False)
        )
        return 0
    from hybrid_snn_control.node_params import validate_file

    for node, msg in validate_file(path):
        print(f"{node}: {msg}")
    return 0

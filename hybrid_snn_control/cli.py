"""The ``hsc`` command: train, eval, sweep, export, bench, bringup and helpers.

Each sub-command lives in the module that owns the work and exposes
``register(subparsers)``; this file only lists them.  Modules import their heavy
dependencies (torch, MuJoCo, rclpy) inside the command function, so ``hsc --help``
starts fast and a command that does not need ROS never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hybrid_snn_control import __version__

# module path -> registers one or more sub-commands
COMMAND_MODULES: tuple[str, ...] = (
    "hybrid_snn_control.commands.config_cmd",
    "hybrid_snn_control.commands.doctor",
    "hybrid_snn_control.commands.demo",
    "hybrid_snn_control.commands.bringup",
    "hybrid_snn_control.commands.events_cmd",
    "hybrid_snn_control.commands.hstnn_cmd",
    "hybrid_snn_control.commands.train_cmd",
    "hybrid_snn_control.commands.governor_cmd",
    "hybrid_snn_control.commands.sim_cmd",
    "hybrid_snn_control.commands.hrsnn_cmd",
    "hybrid_snn_control.commands.deploy_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsc",
        description="Hybrid spiking-recurrent neural network control: train, evaluate, "
        "export and run policies (in simulation or on a ROS 2 robot).",
    )
    parser.add_argument("--version", action="version", version=f"hsc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError) as exc:  # user errors: one clear line, no traceback
        print(f"hsc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

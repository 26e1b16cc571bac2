"""``hsc bringup``: run the package's nodes from a parameter file, without ``ros2 launch``.

For machines that have rclpy from PyPI wheels and no ROS ``launch``.  The nodes read
their parameters exactly as under ``ros2 launch``: the file is passed as
``--ros-args --params-file <file>``, so each node takes its own section (and ``/**``).
Which nodes run: those the file has a section for (or ``--nodes``), in the order of
:data:`hybrid_snn_control.ros.registry.NODES`.

* one process (default): all nodes in one executor (single-threaded; ``--threads N`` for
  a multi-threaded one);
* ``--processes``: one ``python -m <node module>`` per node, as ``ros2 launch`` would.

Ctrl-C, SIGTERM or ``--duration`` stop everything cleanly; the actuator sends a zero
command on the way out.  ``--record run.mcap`` (one process) records the run's topics to
MCAP; ``hsc replay run.mcap`` (also here) feeds a recording back into policy_node and
checks its commands.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hybrid_snn_control.config import load_parameter_file
from hybrid_snn_control.node_params import validate_file
from hybrid_snn_control.paths import config_file
from hybrid_snn_control.ros.registry import NODES, node_class, node_module

_STOP_GRACE_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bringup",
        help="run the ROS 2 nodes from a parameter file (no ros2 launch needed)",
        description="Runs the nodes that the parameter file has sections for, with the same "
        "parameters ros2 launch would give them (--params-file), in one process or one per node.",
    )
    p.add_argument("--config", default="sim", help="parameter file: shipped name or path")
    p.add_argument("--nodes", help="comma-separated node names (default: the file's sections)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--processes", action="store_true", help="one process per node")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="one process: 1 = SingleThreadedExecutor (default: lower latency tails with "
        "rclpy, see docs/ros.md), N > 1 = MultiThreadedExecutor with N threads",
    )
    p.add_argument(
        "--record",
        metavar="FILE.mcap",
        help="record the run's topics (events, cmd, cmd_vel, odom, status, diagnostics, "
        "parameter events) to MCAP (one process only)",
    )
    p.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="everything after this goes to the nodes as ROS arguments (remaps, -p, ...)",
    )
    p.set_defaults(func=run)
    r = sub.add_parser(
        "replay",
        help="feed a recorded run (MCAP) back into policy_node and compare its commands",
    )
    r.add_argument("recording", help="an MCAP file from hsc demo/bringup --record")
    r.add_argument("--tolerance", type=float, default=1e-6, help="max |command difference|")
    r.set_defaults(func=replay)


def replay(args: argparse.Namespace) -> int:
    if not Path(args.recording).is_file():
        raise FileNotFoundError(f"recording {args.recording} does not exist")
    from hybrid_snn_control.ros.replay import replay as run_replay

    result = run_replay(args.recording, args.tolerance)
    print(result.line(), flush=True)
    for m in result.mismatches:
        print(f"  mismatch {m}")
    return 0 if result.ok else 1


def _recorder_class(path: Path, record: str):
    """The recorder node for ``--record``, with policy_node's parameters for replay."""
    from hybrid_snn_control.config import load_node_params
    from hybrid_snn_control.ros.mcap_record import policy_metadata, recorder_node_class
    from hybrid_snn_control.ros.settings import PolicySettings

    settings = load_node_params(path, "policy_node", PolicySettings, {})
    return recorder_node_class(record, {**policy_metadata(settings), "config": str(path)})


def select_nodes(path: Path, requested: str | None) -> list[str]:
    """Node names to run: ``requested`` or the file's sections that are known nodes."""
    if requested:
        names = [n.strip() for n in requested.split(",") if n.strip()]
        unknown = [n for n in names if n not in NODES]
        if unknown:
            raise ValueError(f"unknown node(s) {', '.join(unknown)}; known: {', '.join(NODES)}")
    else:
        in_file = {k.strip().lstrip("/").split("/")[-1] for k in load_parameter_file(path)}
        names = [n for n in NODES if n in in_file]
        if not names:
            raise ValueError(
                f"{path} has no section for any node ({', '.join(NODES)}); add one or pass --nodes"
            )
    return [n for n in NODES if n in names]


def run(args: argparse.Namespace) -> int:
    path = config_file(args.config).resolve()
    validate_file(path)  # a typo fails here with the key's name, before anything starts
    names = select_nodes(path, args.nodes)
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be > 0, got {args.duration}")
    ros_args = ["--ros-args", "--params-file", str(path), *_strip(args.ros_args)]
    bound = f" for {args.duration:g} s" if args.duration else " (Ctrl-C to stop)"
    mode = "one process per node" if args.processes else "one process"
    print(f"bringup: {', '.join(names)} from {path} in {mode}{bound}", flush=True)
    if args.processes:
        if args.record:
            raise ValueError("--record runs in one process; drop --processes to record")
        return _run_processes(names, ros_args, args.duration)
    from hybrid_snn_control.ros.runner import run_nodes

    classes = [node_class(n) for n in names]
    if args.record:  # first: it must hear the sim's first episode start
        classes.insert(0, _recorder_class(path, args.record))
    code = run_nodes(classes, args=ros_args, duration_s=args.duration, threads=args.threads)
    print(f"bringup: stopped (exit {code})", flush=True)
    return code


def _strip(ros_args: list[str]) -> list[str]:
    return ros_args[1:] if ros_args[:1] == ["--ros-args"] else ros_args


def _run_processes(names: list[str], ros_args: list[str], duration_s: float | None) -> int:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in names:
            procs[name] = subprocess.Popen([sys.executable, "-m", node_module(name), *ros_args])
        deadline = None if duration_s is None else time.monotonic() + duration_s
        failed = ""
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            failed = next((n for n, p in procs.items() if p.poll() is not None), "")
            if failed and stop.wait(0.2):  # a terminal Ctrl-C reaches the children too
                failed = ""
                break
            if failed:
                print(f"bringup: {failed} exited ({procs[failed].returncode}); stopping all")
                break
            stop.wait(0.1)
        codes = {n: _stop(p) for n, p in reversed(list(procs.items()))}
        print(f"bringup: stopped ({', '.join(f'{n} {c}' for n, c in codes.items())})", flush=True)
        return 0 if not failed and all(c == 0 for c in codes.values()) else 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for s, old in previous.items():
            signal.signal(s, old)


def _stop(proc: subprocess.Popen) -> int:
    """SIGINT (what ros2 launch sends), then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            return proc.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
    return proc.wait()

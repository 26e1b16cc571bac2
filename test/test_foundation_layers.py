"""The layer rule of DESIGN §2, checked on the source, and the robot side's real imports.

Static: every ``import`` in the package (module level *and* inside functions) is an edge;
the robot side (``policy/``, ``deploy/``, ``robot/`` and the policy / actuator / event
nodes) never reaches ``training/``, ``sim/`` or ``commands/``; nothing imports
``commands/``; there is no import cycle between modules.  Dynamic: a fresh interpreter
runs ``policy_node``'s controller on an exported ONNX policy with torch, MuJoCo and
gymnasium made unimportable, and the torch backend without the trainers.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "hybrid_snn_control"
SRC = ROOT / PKG

ROBOT_SIDE = ("policy", "deploy", "robot")
ROBOT_NODES = ("ros.policy_node", "ros.actuator_node", "ros.event_camera_node")
FORBIDDEN_FOR_ROBOT = ("training", "sim", "commands")
TRAINING_LIBS = {"mujoco", "gymnasium", "optuna", "tensorboard"}
ROS_LIBS = {"rclpy", "rcl_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs", "nav_msgs"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Absolute names of everything ``path`` imports (submodules resolved when they exist)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _inside(mod: str, parts: tuple[str, ...]) -> bool:
    return any(mod == f"{PKG}.{p}" or mod.startswith(f"{PKG}.{p}.") for p in parts)


def test_the_graph_sees_imports_inside_functions():
    """The checker itself: a function-level import is an edge (it was how cycles hid)."""
    graph = _graph()
    assert f"{PKG}.commands.demo" in graph
    assert any(d.startswith(f"{PKG}.") for d in graph[f"{PKG}.commands.demo"])
    assert len(graph) > 80


def test_robot_side_never_imports_training_sim_or_commands():
    bad = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if _inside(m, ROBOT_SIDE + ROBOT_NODES)
        for d in deps
        if _inside(d, FORBIDDEN_FOR_ROBOT) or d.split(".")[0] in TRAINING_LIBS
    ]
    assert not bad, "robot side reaches the trainers:\n" + "\n".join(sorted(bad))


def test_policy_imports_only_the_layers_below_it():
    allowed = ("neurons", "hybrid", "events", "config", "policy", "paths", "_version")
    bad = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if _inside(m, ("policy",))
        for d in deps
        if d.startswith(f"{PKG}.") and not _inside(d, allowed)
    ]
    assert not bad, "\n".join(sorted(bad))


def test_nothing_imports_commands_and_only_ros_imports_rclpy():
    graph = _graph()
    into_commands = [
        f"{m} -> {d}"
        for m, deps in graph.items()
        if not _inside(m, ("commands",)) and m != f"{PKG}.cli"
        for d in deps
        if _inside(d, ("commands",))
    ]
    assert not into_commands, "\n".join(sorted(into_commands))
    ros_users = {
        m
        for m, deps in graph.items()
        if any(d.split(".")[0] in ROS_LIBS for d in deps)
        and not _inside(m, ("ros",))
        and m not in {f"{PKG}.commands.bringup", f"{PKG}.commands.demo", f"{PKG}.commands.doctor"}
    }
    assert not ros_users, sorted(ros_users)
    core = ("neurons", "hybrid", "events", "policy")
    low = [
        f"{m} -> {d}"
        for m, deps in graph.items()
        if _inside(m, core)
        for d in deps
        if d.split(".")[0] in ROS_LIBS | {"mujoco"}
    ]
    assert not low, "\n".join(sorted(low))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


# ---- what a robot process really loads ----------------------------------------------------------
PROBE = r"""
import importlib.abc, json, sys
BLOCKED = set(sys.argv[3].split(",")) if sys.argv[3] else set()

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this robot (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
import numpy as np
import hybrid_snn_control.ros.policy_node  # noqa: F401  (the node's module, as launched)
from hybrid_snn_control.robot.controller import PolicyController

ctl = PolicyController(sys.argv[1], backend=sys.argv[2], spiking_ratio=0.5)
frame = np.ones(ctl.event_shape, np.float32)
actions = [ctl.step(frame, np.zeros(ctl.proprio_size, np.float32)).action.tolist()]
ctl.set_ratio(0.25)
actions.append(ctl.step(frame, np.zeros(ctl.proprio_size, np.float32)).action.tolist())
print(json.dumps({"modules": sorted(sys.modules), "actions": actions}))
"""


def _probe(path: Path, backend: str, blocked: set[str]) -> dict:
    pytest.importorskip("rclpy")
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), backend, ",".join(sorted(blocked))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> dict[str, Path]:
    import torch

    from hybrid_snn_control.deploy.export import export_checkpoint
    from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("layers")
    ckpt = out / "tiny.safetensors"
    save_policy(ckpt, HybridPolicy(PolicyConfig(event_shape=[2, 16, 16], hidden_size=8)))
    export_checkpoint(ckpt, out / "tiny.onnx", "onnx", exporter="torchscript")
    return {"safetensors": ckpt, "onnx": out / "tiny.onnx"}


def _loaded(modules: list[str], names: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


def test_onnx_policy_node_runs_without_torch_or_the_trainers(tiny_policy):
    blocked = {"torch", "mujoco", "gymnasium", "onnx", "optuna", "tensorboard"}
    got = _probe(tiny_policy["onnx"], "onnxruntime", blocked)
    assert len(got["actions"]) == 2 and all(len(a) == 2 for a in got["actions"])
    assert not _loaded(got["modules"], blocked)
    assert not [m for m in got["modules"] if m.startswith((f"{PKG}.training", f"{PKG}.sim"))]


def test_torch_policy_node_loads_torch_but_not_the_trainers(tiny_policy):
    blocked = {"mujoco", "gymnasium", "optuna", "tensorboard"}
    got = _probe(tiny_policy["safetensors"], "torch", blocked)
    assert "torch" in got["modules"]
    assert not [m for m in got["modules"] if m.startswith((f"{PKG}.training", f"{PKG}.sim"))]
    assert not _loaded(got["modules"], blocked)

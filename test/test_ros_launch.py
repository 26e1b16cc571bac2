"""Launch files executed against stand-ins for ``launch``/``launch_ros`` (not on PyPI).

The static check (test_foundation_package.py) reads constants; this one runs
``generate_launch_description()`` and checks what it builds: every node is a registered
node whose name matches its config section, gets the config file, and every
``LaunchConfiguration`` it uses is declared.
"""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest

from hybrid_snn_control.node_params import SECTIONS
from hybrid_snn_control.ros.registry import NODES

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorder):
    pass


class DeclareLaunchArgument(Recorder):
    pass


class Node(Recorder):
    pass


class ParameterValue(Recorder):
    pass


@pytest.fixture
def fake_launch(monkeypatch):
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)

    module("launch", LaunchDescription=lambda entities: list(entities))
    module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument)
    module("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    module("launch_ros")
    module("launch_ros.actions", Node=Node)
    module("launch_ros.parameter_descriptions", ParameterValue=ParameterValue)
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda pkg: f"/share/{pkg}")


def configurations(value) -> list[str]:
    """Names of LaunchConfigurations anywhere inside ``value``."""
    if isinstance(value, LaunchConfiguration):
        return [value.args[0]]
    if isinstance(value, ParameterValue):
        return configurations(list(value.args))
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in configurations(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in configurations(v)]
    return []


@pytest.mark.parametrize("name", ["sim", "robot"])
def test_launch_file_builds_registered_nodes_with_declared_arguments(fake_launch, name):
    entities = runpy.run_path(str(ROOT / "launch" / f"{name}.launch.py"))[
        "generate_launch_description"
    ]()
    declared = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    nodes = [e.kwargs for e in entities if isinstance(e, Node)]
    assert nodes, "no nodes"
    assert declared["config"]["default_value"] == f"/share/hybrid_snn_control/config/{name}.yaml"
    assert (ROOT / "config" / f"{name}.yaml").is_file()
    for node in nodes:
        assert node["package"] == "hybrid_snn_control"
        assert node["executable"] in NODES and node["executable"] in SECTIONS
        assert node["name"] == node["executable"]  # the config section is the node name
        assert "config" in configurations(node["parameters"][0])
        for used in configurations(node):
            assert used in declared, f"{node['executable']} uses undeclared argument {used}"
    for arg in declared.values():
        assert arg.get("description"), "every launch argument says what it is"


@pytest.mark.parametrize("name", ["sim", "robot"])
def test_launch_files_pass_checkpoint_and_ratio_to_the_policy(fake_launch, name):
    entities = runpy.run_path(str(ROOT / "launch" / f"{name}.launch.py"))[
        "generate_launch_description"
    ]()
    declared = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    policy = next(
        e.kwargs for e in entities if isinstance(e, Node) and e.kwargs["name"] == "policy_node"
    )
    used = configurations(policy["parameters"])
    assert {"checkpoint", "spiking_ratio", "online_plasticity", "config"} <= set(used)
    assert float(declared["spiking_ratio"]["default_value"]) == 0.5
    if name == "sim":  # sim_node publishes /clock, so the simulated loop follows it
        assert declared["use_sim_time"]["default_value"] == "true"
        assert any(isinstance(e, Node) and e.kwargs["name"] == "sim_node" for e in entities)

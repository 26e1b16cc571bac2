"""Which settings dataclass describes which section of a parameter file.

Nodes and CLI commands register their section name here (as ``"module:Class"`` so
that checking a file does not import rclpy, MuJoCo or torch unless a section needs
it).  ``hsc config check`` and the tests validate every shipped file against it, so
a typo in ``config/*.yaml`` fails in CI, not on the robot.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hybrid_snn_control.config import ConfigError, load_node_params, load_parameter_file

SECTIONS: dict[str, str] = {
    "hsc_demo": "hybrid_snn_control.ros.demo_settings:DemoParams",
    "hsc_hstnn": "hybrid_snn_control.training.hstnn_config:HSTNNConfig",
    "hsc_classify": "hybrid_snn_control.training.classification:ClassifyConfig",
    "hsc_imitation": "hybrid_snn_control.training.imitation:ImitationConfig",
    "hsc_hrsnn_policy": "hybrid_snn_control.training.hrsnn_policy:HRSNNPolicyTrainConfig",
    "actuator_node": "hybrid_snn_control.ros.settings:ActuatorSettings",
    "event_camera_node": "hybrid_snn_control.ros.settings:EventCameraSettings",
    "policy_node": "hybrid_snn_control.ros.settings:PolicySettings",
    "sim_node": "hybrid_snn_control.ros.settings:SimSettings",
}


def schema(section: str) -> type[Any]:
    """The dataclass registered for ``section`` (a node name)."""
    try:
        target = SECTIONS[section]
    except KeyError:
        raise ConfigError(
            f"no settings are registered for section '{section}'; "
            f"known: {', '.join(sorted(SECTIONS))}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def validate_file(path: str | Path) -> list[tuple[str, str]]:
    """Load every section of ``path`` through its schema; raise on the first error."""
    results = []
    for key in load_parameter_file(path):
        name = key.strip().lstrip("/").split("/")[-1]
        if name == "**":
            continue
        load_node_params(path, name, schema(name))
        results.append((name, "ok"))
    return results

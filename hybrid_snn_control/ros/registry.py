"""Which node classes exist, by node name (= console script = config section = launch name).

Values are ``"module:Class"`` strings so that listing or validating does not import
rclpy.  ``hsc bringup`` starts the nodes a parameter file has sections for; a node joins
the closed loop by adding one line here, one console script in ``setup.py``, one
settings dataclass in ``node_params.SECTIONS`` and a section in ``config/*.yaml``.
Start order is the order below; shutdown runs in reverse, so the actuator (first up,
last down) sends the final zero command after everything upstream has stopped.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["NODES", "node_class", "node_module"]

NODES: dict[str, str] = {
    "actuator_node": "hybrid_snn_control.ros.actuator_node:ActuatorNode",
    "event_camera_node": "hybrid_snn_control.ros.event_camera_node:EventCameraNode",
    "policy_node": "hybrid_snn_control.ros.policy_node:PolicyNode",
    "sim_node": "hybrid_snn_control.ros.sim_node:SimNode",
}


def node_module(name: str) -> str:
    """The module whose ``main()`` runs node ``name`` (``python -m <module>``)."""
    try:
        return NODES[name].partition(":")[0]
    except KeyError:
        raise ValueError(f"unknown node '{name}'; known: {', '.join(NODES)}") from None


def node_class(name: str) -> type[Any]:
    """Import and return the node class registered as ``name``."""
    module = node_module(name)
    return getattr(importlib.import_module(module), NODES[name].partition(":")[2])

"""The pursuit policy shipped inside the package (used by the demo and the ROS nodes).

Produced by one command from the repository (see ``docs/results.md``)::

    hsc train --config config/train.yaml \\
        --out hybrid_snn_control/policies/pursuit_default.safetensors

It is a :func:`~.policy.save_policy` file: weights, the Hessian-aware selection ranking
(rank buffers in the state dict, readable copy in the metadata), the stored ratio and the
env settings it was trained for (``meta["env"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_POLICY = "policies/pursuit_default.safetensors"

__all__ = ["DEFAULT_POLICY", "default_policy_path", "load_default_policy"]


def default_policy_path() -> Path:
    """Where the shipped pursuit policy is (FileNotFoundError if the install lacks it)."""
    from hybrid_snn_control.paths import package_data

    return package_data(DEFAULT_POLICY)


def load_default_policy(map_location: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """``(HybridPolicy, metadata)`` of the shipped policy, at its stored ratio."""
    from hybrid_snn_control.training.policy import load_policy

    return load_policy(default_policy_path(), map_location)

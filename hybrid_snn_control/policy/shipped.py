"""Where the pursuit policy shipped inside the package is (torch-free: the policy node
resolves it before it knows which backend will load it).

Produced by one command from the repository (see ``docs/results.md``)::

    hsc train --config config/train.yaml \\
        --out hybrid_snn_control/policies/pursuit_default.safetensors

It is a :func:`~hybrid_snn_control.policy.bundle.save_policy` file: weights, the
Hessian-aware selection ranking (rank buffers in the state dict, readable copy in the
metadata), the stored ratio and the env settings it was trained for (``meta["env"]``).
"""

from __future__ import annotations

from pathlib import Path

from hybrid_snn_control.paths import package_data

DEFAULT_POLICY = "policies/pursuit_default.safetensors"

__all__ = ["DEFAULT_POLICY", "default_policy_path"]


def default_policy_path() -> Path:
    """Where the shipped pursuit policy is (FileNotFoundError if the install lacks it)."""
    return package_data(DEFAULT_POLICY)

"""The deployable policy: configuration, models, the one explicit step, the policy file.

* :mod:`.config` — :class:`PolicyConfig`, :class:`HRSNNCoreConfig`, :class:`RobotSpec`
  (torch-free).
* :mod:`.hybrid_policy` — :class:`HybridPolicy` (event encoder → hybrid core → ``tanh``)
  and its one explicit step, which eager inference and export both run.
* :mod:`.hrsnn_policy` — :class:`HRSNNPolicy` (STDP-shaped HRSNN core, ridge readout).
* :mod:`.checkpoint` / :mod:`.bundle` — safetensors save / load / verify of a policy.
* :mod:`.shipped` — where the shipped pursuit policy is (torch-free).

Imports only ``neurons/``, ``hybrid/``, ``events/`` and ``config`` (DESIGN §2): the
robot side needs this package and a runtime, never the trainers.  Names resolve lazily
(PEP 562) so the torch-free modules import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EventEncoder": "hybrid_policy",
    "HRSNNCoreConfig": "config",
    "HRSNNPolicy": "hrsnn_policy",
    "HybridPolicy": "hybrid_policy",
    "PolicyConfig": "config",
    "PolicyInput": "hybrid_policy",
    "RobotSpec": "config",
    "build_policy": "bundle",
    "default_policy_path": "shipped",
    "load_default_policy": "bundle",
    "load_hybrid_policy": "bundle",
    "load_policy": "bundle",
    "save_policy": "bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

"""Hybrid spiking–recurrent layers with live ratio switching (HSTNN-style).

* :class:`HybridNetwork` (:mod:`.network`) — the public model; see its module docstring
  for the stable interface (``step``, sequence call, ``set_ratio``, masks, state helpers).
* :class:`HybridLayer` (:mod:`.layer`) — N spiking + N recurrent candidate units.
* :mod:`.selection` — Hessian-aware unit importance (Hutchinson) → ``net.apply_ranking``.
* :mod:`.efficiency` — MACs, SynOps, firing rates and energy from a real run.
* :class:`CompactHybridStep` (:mod:`.compact`) — inference snapshot at one ratio that
  computes only the active units (the low-latency step; TorchScript-able).
* :mod:`.ratio` — the ratio rule (unit counts, graph thresholds) in plain numpy.

Names resolve lazily (PEP 562), so ``hybrid.ratio`` imports without torch: the ONNX
Runtime path of the policy node uses it on a robot that has no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CompactHybridStep": "compact",
    "HybridActivity": "network",
    "HybridLayer": "layer",
    "HybridLayerState": "layer",
    "HybridNetwork": "network",
    "HybridState": "network",
    "check_ratio": "ratio",
    "unit_counts": "ratio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

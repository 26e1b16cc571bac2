"""Hybrid spiking–recurrent layers with live ratio switching (HSTNN-style).

* :class:`HybridNetwork` (:mod:`.network`) — the public model; see its module docstring
  for the stable interface (``step``, sequence call, ``set_ratio``, masks, state helpers).
* :class:`HybridLayer` (:mod:`.layer`) — N spiking + N recurrent candidate units.
* :mod:`.selection` — Hessian-aware unit importance (Hutchinson) → ``net.apply_ranking``.
* :mod:`.efficiency` — MACs, SynOps, firing rates and energy from a real run.
* :class:`CompactHybridStep` (:mod:`.compact`) — inference snapshot at one ratio that
  computes only the active units (the low-latency step; TorchScript-able).
"""

from __future__ import annotations

from hybrid_snn_control.hybrid.compact import CompactHybridStep
from hybrid_snn_control.hybrid.layer import HybridLayer, HybridLayerState
from hybrid_snn_control.hybrid.network import (
    HybridActivity,
    HybridNetwork,
    HybridState,
    check_ratio,
    unit_counts,
)

__all__ = [
    "CompactHybridStep",
    "HybridActivity",
    "HybridLayer",
    "HybridLayerState",
    "HybridNetwork",
    "HybridState",
    "check_ratio",
    "unit_counts",
]

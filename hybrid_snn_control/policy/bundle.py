"""The policy file: save, load and verify a deployable policy; find the shipped one.

A policy file is a :mod:`~hybrid_snn_control.policy.checkpoint` (safetensors, JSON
metadata, sha256 checked on load) holding the model's state dict under ``model.`` and
``meta["policy_config"]`` (architecture + :class:`~.config.RobotSpec`), the stored
spiking ratio and whatever the trainer adds (``env``, ``history`` …).  The shipped
pursuit policy is found by :func:`~.shipped.default_policy_path`.

Usage::

    save_policy("p.safetensors", policy, extra={"task": "Pursuit-v0"})
    policy, meta = load_policy("p.safetensors")        # HybridPolicy or HRSNNPolicy
    policy, meta = load_default_policy()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hybrid_snn_control import __version__
from hybrid_snn_control.config import ConfigError, from_mapping, to_mapping
from hybrid_snn_control.policy.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
    with_prefix,
)
from hybrid_snn_control.policy.config import PolicyConfig
from hybrid_snn_control.policy.hrsnn_policy import HRSNNPolicy
from hybrid_snn_control.policy.hybrid_policy import HybridPolicy
from hybrid_snn_control.policy.shipped import default_policy_path

__all__ = [
    "build_policy",
    "load_default_policy",
    "load_hybrid_policy",
    "load_policy",
    "save_policy",
]


def build_policy(cfg: PolicyConfig) -> nn.Module:
    """The policy class ``cfg.core`` names, untrained."""
    if cfg.core == "hrsnn":
        return HRSNNPolicy(cfg)
    return HybridPolicy(cfg)


def save_policy(path: str | Path, policy: nn.Module, extra: Mapping[str, Any] | None = None) -> str:
    """Write a deployable policy (weights, ranking, ratio, config) atomically; return hash."""
    meta = {
        "kind": "hybrid_policy",
        "policy_config": to_mapping(policy.cfg),
        "spiking_ratio": policy.spiking_ratio,
        "package_version": __version__,
        "torch_version": torch.__version__,
        **dict(extra or {}),
    }
    return save_checkpoint(path, with_prefix(policy.state_dict(), "model"), meta)


def load_policy(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a policy saved by :func:`save_policy` (a :class:`HybridPolicy`, or an
    :class:`~.hrsnn_policy.HRSNNPolicy` for ``core: hrsnn``); mismatches and non-finite
    weights are a :class:`CheckpointError`."""
    tensors, meta = load_checkpoint(path, map_location)
    if meta.get("kind") != "hybrid_policy":
        raise CheckpointError(f"{path} holds a '{meta.get('kind')}', not a hybrid_policy")
    try:
        cfg = from_mapping(PolicyConfig, meta["policy_config"], source=f"{path} policy_config")
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{path}: bad policy_config: {exc}") from None
    try:
        policy = build_policy(cfg).to(map_location)
    except ValueError as exc:
        raise CheckpointError(f"{path}: bad policy_config: {exc}") from None
    state = split_prefix(tensors, "model")
    _refuse_non_finite(path, state)
    missing, unexpected = _diff(policy.state_dict(), state)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    try:
        policy.load_state_dict(state)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{path} does not fit its config: {exc}") from None
    ratio = meta.get("spiking_ratio")
    if ratio is not None and policy.fixed_ratio is None:
        policy.set_ratio(ratio)
    policy.eval()
    return policy, meta


def load_hybrid_policy(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[HybridPolicy, dict[str, Any]]:
    """:func:`load_policy` for the consumers of the hybrid core's step graph (export,
    exported runtimes, NIR): another core is a :class:`CheckpointError` saying so."""
    policy, meta = load_policy(path, map_location)
    if not isinstance(policy, HybridPolicy):
        raise CheckpointError(
            f"{path} holds a policy with an HRSNN core: export, the TorchScript / ONNX "
            "runtimes and NIR take hybrid policies only (run it with the torch backend)"
        )
    return policy, meta


def _refuse_non_finite(path: str | Path, state: Mapping[str, Tensor]) -> None:
    """A NaN / inf weight makes every action NaN: refuse the file at load (and so at export),
    not at the robot's first step."""
    bad = {
        name: int((~torch.isfinite(t)).sum())
        for name, t in state.items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    }
    if bad:
        listed = ", ".join(f"{k} ({n})" for k, n in list(bad.items())[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{path} holds non-finite (NaN / inf) weights in {listed}{more}: "
            "a diverged training run? refusing to load it"
        )


def _diff(expected: Mapping[str, Tensor], got: Mapping[str, Tensor]) -> tuple[list, list]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def load_default_policy(map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(policy, metadata)`` of the shipped pursuit policy, at its stored ratio."""
    return load_policy(default_policy_path(), map_location)

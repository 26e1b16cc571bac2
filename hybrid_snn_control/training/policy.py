r"""The control policy: event encoder → hybrid spiking–recurrent core → action head.

.. math::
    e_t = \mathrm{Enc}(\log(1 + E_t)), \quad
    x_t = [\,e_t,\; (p_t - \mu_p) / \sigma_p\,], \quad
    z_t, s_t = \mathrm{HybridNetwork}(x_t, s_{t-1}), \quad
    a_t = \tanh(z_t)

``E_t`` is the event tensor of the control step ``[2, H, W]`` (ON/OFF counts, the
``events`` observation of the sim envs), ``p_t`` the proprioception vector.  The encoder
is stateless (a small strided conv stack or plain average pooling), so the only state
is the hybrid core's: one step (deployment) and a whole sequence (training) give the
same numbers, and the spiking ratio is the core's (``policy.set_ratio(r)``).

Usage::

    policy = HybridPolicy(PolicyConfig(event_shape=(2, 64, 64), proprio_size=8))
    action, state = policy.step(events, proprio, state)          # [B, 2], state
    actions, state = policy(events_seq, proprio_seq, state)      # [T, B, 2]
    save_policy("p.safetensors", policy, extra={"task": "Pursuit-v0"})
    policy, meta = load_policy("p.safetensors")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from hybrid_snn_control import __version__
from hybrid_snn_control.config import ConfigError, from_mapping, param, to_mapping
from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.efficiency import EfficiencyReport, count_efficiency
from hybrid_snn_control.hybrid.network import HybridState
from hybrid_snn_control.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
    with_prefix,
)

__all__ = [
    "EventEncoder",
    "HRSNNCoreConfig",
    "HybridPolicy",
    "PolicyConfig",
    "PolicyInput",
    "build_policy",
    "load_hybrid_policy",
    "load_policy",
    "save_policy",
]


@dataclass
class HRSNNCoreConfig:
    """The HRSNN core of a policy with ``core: hrsnn`` (see :mod:`.hrsnn_policy`).

    Time constants are in control steps (20 ms at 50 Hz), drawn per neuron from a gamma
    distribution with the given mean and coefficient of variation (cv 0 = homogeneous).
    """

    num_neurons: int = field(default=200, metadata=param(range=(2, 100_000)))
    excitatory_fraction: float = field(default=0.8, metadata=param(range=(0.0, 1.0)))
    connection_prob: float = field(default=0.1, metadata=param(range=(1e-6, 1.0)))
    input_connection_prob: float = field(default=0.2, metadata=param(range=(1e-6, 1.0)))
    input_scale: float = field(default=10.0, metadata=param(range=(0.0, 1e6)))
    recurrent_scale: float = field(default=1.0, metadata=param(range=(0.0, 1e6)))
    tau_mem_mean: float = field(default=3.0, metadata=param(range=(0.1, 1e6)))
    tau_mem_cv: float = field(default=1.0, metadata=param(range=(0.0, 10.0)))
    tau_thr_mean: float = field(default=30.0, metadata=param(range=(0.1, 1e6)))
    tau_thr_cv: float = field(default=1.0, metadata=param(range=(0.0, 10.0)))
    threshold_adaptation: float = field(default=0.2, metadata=param(range=(0.0, 1e3)))
    stdp: bool = True
    stdp_heterogeneous: bool = True
    stdp_eta: float = field(default=1e-3, metadata=param(range=(0.0, 1.0)))
    stdp_normalize: bool = field(
        default=True,
        metadata=param(description="synaptic scaling: rows keep their L1 norm under STDP"),
    )
    trace_decay: float = field(
        default=0.8, metadata=param(range=(0.0, 0.999), description="readout spike trace")
    )
    readout_skip: bool = field(
        default=True,
        metadata=param(description="the readout also sees the layer's input (extended state)"),
    )
    seed: int = 0


@dataclass
class PolicyConfig:
    """Architecture of a :class:`HybridPolicy` (stored in every checkpoint)."""

    event_shape: list[int] = field(default_factory=lambda: [2, 64, 64])
    proprio_size: int = 8
    action_size: int = 2
    encoder: Literal["conv", "pool"] = "conv"
    encoder_channels: list[int] = field(default_factory=lambda: [8, 16])
    encoder_grid: int = field(default=4, metadata=param(range=(1, 64)))
    hidden_size: int = field(default=64, metadata=param(range=(1, 4096)))
    num_layers: int = field(default=2, metadata=param(range=(1, 16)))
    spiking_cell: Literal["lif", "alif", "stc_lif", "stc_alif", "rf"] = "lif"
    recurrent_cell: Literal["lstm", "gru", "rnn"] = "lstm"
    spiking_ratio: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    rate_decay: float = field(default=0.8, metadata=param(range=(0.0, 0.999)))
    core: Literal["hybrid", "hrsnn"] = field(
        default="hybrid",
        metadata=param(
            description="hybrid: BPTT-trained HybridNetwork; hrsnn: STDP-shaped HRSNN with a "
            "ridge readout (no backprop; encoder must be pool)"
        ),
    )
    hrsnn: HRSNNCoreConfig = field(default_factory=HRSNNCoreConfig)

    def __post_init__(self) -> None:
        if len(self.event_shape) != 3 or min(self.event_shape) < 1:
            raise ValueError(f"event_shape must be [C, H, W] > 0, got {self.event_shape}")
        if self.core == "hrsnn" and self.encoder != "pool":
            raise ValueError(
                "core 'hrsnn' is trained without backprop, so its encoder cannot be learned: "
                f"use encoder 'pool', got {self.encoder!r}"
            )


class EventEncoder(nn.Module):
    """Stateless event-frame front end: log-compressed counts → features.

    ``conv``: strided 3×3 convolutions with ReLU, then average pooling to a
    ``grid × grid`` map; ``pool``: average pooling of the raw (log) counts only.
    Dense MACs of the encoder are a function of shapes alone: :attr:`macs`.
    """

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        c, h, w = cfg.event_shape
        layers: list[nn.Module] = []
        self.macs = 0
        if cfg.encoder == "conv":
            for out_c in cfg.encoder_channels:
                conv = nn.Conv2d(c, out_c, kernel_size=3, stride=2, padding=1)
                h, w = (h + 1) // 2, (w + 1) // 2
                self.macs += out_c * h * w * c * 9
                layers += [conv, nn.ReLU()]
                c = out_c
        g = min(cfg.encoder_grid, h, w)
        layers += [nn.AdaptiveAvgPool2d((g, g)), nn.Flatten(start_dim=1)]
        self.net = nn.Sequential(*layers)
        self.out_features = c * g * g

    def forward(self, events: Tensor) -> Tensor:
        """``events [N, C, H, W]`` (counts ≥ 0) → ``[N, out_features]``."""
        return self.net(torch.log1p(events.clamp_min(0)))


class PolicyInput(nn.Module):
    """What every policy core reads: encoded events and normalized proprioception."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = EventEncoder(cfg)
        # Proprioception normalization, fitted from data by the trainer (set_normalization).
        self.register_buffer("proprio_mean", torch.zeros(cfg.proprio_size))
        self.register_buffer("proprio_std", torch.ones(cfg.proprio_size))

    def set_normalization(self, mean: Tensor, std: Tensor) -> None:
        self.proprio_mean.copy_(torch.as_tensor(mean, dtype=self.proprio_mean.dtype))
        self.proprio_std.copy_(torch.as_tensor(std, dtype=self.proprio_std.dtype).clamp_min(1e-6))

    def features(self, events: Tensor, proprio: Tensor) -> Tensor:
        """Core input for any leading shape: ``events [..., C, H, W]``, ``proprio [..., P]``."""
        lead = events.shape[:-3]
        enc = self.encoder(events.reshape(-1, *events.shape[-3:])).reshape(*lead, -1)
        prop = (proprio - self.proprio_mean) / self.proprio_std
        return torch.cat([enc, prop], dim=-1)


class HybridPolicy(PolicyInput):
    """Event encoder + proprioception → :class:`HybridNetwork` → ``tanh`` actions."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__(cfg)
        self.core = HybridNetwork(
            self.encoder.out_features + cfg.proprio_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            spiking_cell=cfg.spiking_cell,
            recurrent_cell=cfg.recurrent_cell,
            readout_size=cfg.action_size,
            spiking_ratio=cfg.spiking_ratio,
            rate_decay=cfg.rate_decay,
        )

    # ---- ratio and state (delegated to the core) ------------------------------------------
    def set_ratio(self, r: float) -> None:
        self.core.set_ratio(r)

    @property
    def spiking_ratio(self) -> float | None:
        return self.core.spiking_ratio

    def initial_state(self, batch_size: int, device=None, dtype=None) -> HybridState:
        return self.core.initial_state(batch_size, device, dtype)

    def reset_state(self, state: HybridState, done: Tensor) -> HybridState:
        return self.core.reset_state(state, done)

    def flatten_state(self, state: HybridState) -> list[Tensor]:
        return self.core.flatten_state(state)

    #: None: any ratio in [0, 1] (an HRSNN core is all spiking: 1.0).
    fixed_ratio: float | None = None

    # ---- online plasticity: only an HRSNN core has it ------------------------------------
    @property
    def plasticity(self) -> bool:
        return False

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        if on:
            raise ValueError(
                "online plasticity needs a policy with an HRSNN core (core: hrsnn); this "
                "policy's core is the BPTT-trained hybrid network"
            )

    def weight_norms(self) -> dict[str, float]:
        return {}

    # ---- inference / training --------------------------------------------------------------
    def step(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """One control step: ``events [B, C, H, W]``, ``proprio [B, P]`` → ``action [B, A]``."""
        out, state = self.core.step(self.features(events, proprio), state, masks)
        return torch.tanh(out), state

    def forward(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """A sequence: ``events [T, B, C, H, W]``, ``proprio [T, B, P]`` → ``[T, B, A]``."""
        out, state = self.core(self.features(events, proprio), state, masks)
        return torch.tanh(out), state

    @torch.no_grad()
    def step_with_efficiency(
        self, events: Tensor, proprio: Tensor, state: HybridState | None = None
    ) -> tuple[Tensor, HybridState, EfficiencyReport]:
        """:meth:`step` plus the cost of that very step (no second forward)."""
        out, state, activity = self.core.step_with_activity(self.features(events, proprio), state)
        return torch.tanh(out), state, self._with_encoder(count_efficiency(self.core, activity))

    @torch.no_grad()
    def measure_efficiency(
        self, events: Tensor, proprio: Tensor, state: HybridState | None = None
    ) -> EfficiencyReport:
        """Cost per step of a real run at the current ratio, encoder MACs included."""
        _, _, activity = self.core.forward_with_activity(self.features(events, proprio), state)
        return self._with_encoder(count_efficiency(self.core, activity))

    def _with_encoder(self, report: EfficiencyReport) -> EfficiencyReport:
        report.macs_per_step += self.encoder.macs
        report.energy_pj_per_step += self.encoder.macs * report.mac_energy_pj
        return report


# ---- checkpoints ------------------------------------------------------------------------------
def build_policy(cfg: PolicyConfig) -> nn.Module:
    """The policy class ``cfg.core`` names, untrained."""
    if cfg.core == "hrsnn":
        from hybrid_snn_control.training.hrsnn_policy import HRSNNPolicy

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
    :class:`~.hrsnn_policy.HRSNNPolicy` for ``core: hrsnn``); mismatches are a
    :class:`CheckpointError`."""
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


def _diff(expected: Mapping[str, Tensor], got: Mapping[str, Tensor]) -> tuple[list, list]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def config_from_env(env: Any, **overrides: Any) -> PolicyConfig:
    """A :class:`PolicyConfig` whose input shapes match a sim env's observation space."""
    space = env.observation_space
    return dataclasses.replace(
        PolicyConfig(),
        event_shape=list(space["events"].shape),
        proprio_size=int(space["proprio"].shape[0]),
        action_size=int(env.action_space.shape[0]),
        **overrides,
    )

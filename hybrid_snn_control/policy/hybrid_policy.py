r"""The control policy: event encoder → hybrid spiking–recurrent core → action head.

.. math::
    e_t = \mathrm{Enc}(\log(1 + E_t)), \quad
    x_t = [\,e_t,\; (p_t - \mu_p) / \sigma_p\,], \quad
    z_t, s_t = \mathrm{HybridNetwork}(x_t, s_{t-1}), \quad
    a_t = \tanh(z_t)

``E_t`` is the event tensor of the control step ``[2, H, W]`` (ON/OFF counts, the
``events`` observation of the sim envs), ``p_t`` the proprioception vector.  The ``conv``
and ``pool`` encoders are stateless (a small strided conv stack or plain average pooling),
so the only state is the hybrid core's; the ``spiking_conv`` encoder
(:mod:`.spiking_encoder`) keeps LIF membranes and the state becomes a
:class:`PolicyState` (encoder, core).  Either way one step (deployment) and a whole
sequence (training) give the same numbers, and the spiking ratio is the core's
(``policy.set_ratio(r)``).

:meth:`HybridPolicy.step_with_activity` is *the* explicit step: eager inference
(:meth:`~HybridPolicy.step`), the per-step cost and the exported graph
(:class:`hybrid_snn_control.deploy.export.StepGraph` traces it) all run this one method.

Usage::

    policy = HybridPolicy(PolicyConfig(event_shape=(2, 64, 64), proprio_size=8))
    action, state = policy.step(events, proprio, state)          # [B, 2], state
    actions, state = policy(events_seq, proprio_seq, state)      # [T, B, 2]
    save_policy("p.safetensors", policy, extra={"task": "Pursuit-v0"})   # policy.bundle
    policy, meta = load_policy("p.safetensors")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.hybrid.efficiency import EfficiencyReport, count_efficiency
from hybrid_snn_control.hybrid.network import HybridActivity, HybridNetwork, HybridState
from hybrid_snn_control.neurons import state as state_utils
from hybrid_snn_control.policy.config import PLASTICITY_NEEDS_HRSNN, PolicyConfig
from hybrid_snn_control.policy.event_floor import EventFloor
from hybrid_snn_control.policy.keypoints import SpatialSoftArgmax
from hybrid_snn_control.policy.pooling import AdaptivePoolMatmul, fixed_pool
from hybrid_snn_control.policy.spiking_encoder import SpikingConvEncoder

__all__ = [
    "AdaptivePoolMatmul",
    "EventEncoder",
    "HybridPolicy",
    "PolicyInput",
    "PolicyState",
    "fixed_pool",
    "make_encoder",
]


class EventEncoder(nn.Module):
    """Stateless event-frame front end: log-compressed counts → features.

    ``conv``: strided 3×3 convolutions with ReLU, then average pooling to a
    ``grid × grid`` map; ``pool``: average pooling of the raw (log) counts only.
    Dense MACs of the encoder are a function of shapes alone: :attr:`macs`.
    """

    stateful = False  # (a SpikingConvEncoder keeps membranes)

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
        self.net = nn.Sequential(*layers)  # (its conv keys are those of older policy files)
        # the input size is fixed by the config, so the pool is a fixed one: the same
        # module runs eagerly, in training and in the exported graph
        self.pool = nn.Sequential(fixed_pool((h, w), g), nn.Flatten(start_dim=1))
        self.out_features = c * g * g
        self.keypoints = SpatialSoftArgmax(c, h, w) if cfg.encoder_keypoints else None
        if self.keypoints is not None:
            self.out_features += self.keypoints.out_features
            self.macs += self.keypoints.macs

    def forward(self, events: Tensor) -> Tensor:
        """``events [N, C, H, W]`` (counts ≥ 0) → ``[N, out_features]``: the grid's
        averages, then (``encoder_keypoints``) each channel's soft-argmax ``(x, y)``."""
        maps = self.net(torch.log1p(events.clamp_min(0)))
        if self.keypoints is None:
            return self.pool(maps)
        return torch.cat([self.pool(maps), self.keypoints(maps)], dim=1)


def make_encoder(cfg: PolicyConfig) -> nn.Module:
    """The configured event front end: stateless (``conv``, ``pool``) or a
    :class:`~.spiking_encoder.SpikingConvEncoder` (``spiking_conv``, stateful)."""
    if cfg.encoder == "spiking_conv":
        return SpikingConvEncoder(
            cfg.event_shape,
            cfg.encoder_channels,
            cfg.encoder_grid,
            decay=cfg.encoder_decay,
            threshold=cfg.encoder_threshold,
        )
    return EventEncoder(cfg)


class PolicyState(NamedTuple):
    """The state of a policy whose encoder has state: the encoder's membranes (one flat
    ``[B, C·H·W]`` tensor per layer) and the core's :class:`HybridState`.  Policies with a
    stateless encoder keep the plain :class:`HybridState`."""

    encoder: tuple
    core: HybridState


class PolicyInput(nn.Module):
    """What every policy core reads: encoded events and normalized proprioception."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        _, h, w = cfg.event_shape
        self.floor = EventFloor(cfg.event_floor, cfg.event_floor_quantile, h, w)
        self.encoder = make_encoder(cfg)
        # Proprioception normalization, fitted from data by the trainer (set_normalization).
        self.register_buffer("proprio_mean", torch.zeros(cfg.proprio_size))
        self.register_buffer("proprio_std", torch.ones(cfg.proprio_size))

    def set_normalization(self, mean: Tensor, std: Tensor) -> None:
        self.proprio_mean.copy_(torch.as_tensor(mean, dtype=self.proprio_mean.dtype))
        self.proprio_std.copy_(torch.as_tensor(std, dtype=self.proprio_std.dtype).clamp_min(1e-6))

    def features(self, events: Tensor, proprio: Tensor) -> Tensor:
        """Core input for any leading shape: ``events [..., C, H, W]``, ``proprio [..., P]``
        (stateless encoders; a stateful one goes through :meth:`HybridPolicy.encode`)."""
        lead = events.shape[:-3]
        frames = self.floor(events.reshape(-1, *events.shape[-3:]))
        enc = self.encoder(frames).reshape(*lead, -1)
        return self._with_proprio(enc, proprio)

    def _with_proprio(self, enc: Tensor, proprio: Tensor) -> Tensor:
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

    @property
    def stateful_encoder(self) -> bool:
        return self.encoder.stateful

    def initial_state(self, batch_size: int, device=None, dtype=None):
        core = self.core.initial_state(batch_size, device, dtype)
        if not self.stateful_encoder:
            return core
        return PolicyState(self.encoder.initial_state(batch_size, device, dtype), core)

    def reset_state(self, state, done: Tensor):
        return state_utils.reset_state(state, done)

    def flatten_state(self, state) -> tuple[Tensor, ...]:
        return state_utils.flatten_state(state)

    def unflatten_state(self, flat: Sequence[Tensor]):
        """Inverse of :meth:`flatten_state` (the exported graph's state inputs)."""
        return state_utils.unflatten_state(self.initial_state(1, device="meta"), tuple(flat))

    def state_names(self) -> list[str]:
        """Names of :meth:`flatten_state`'s tensors (the exported graph's state inputs)."""
        enc = self.encoder.state_names() if self.stateful_encoder else []
        return [*enc, *self.core.state_names()]

    def state_sizes(self) -> list[int]:
        """Width of each flat state tensor (``[B, size]``), in :meth:`state_names` order."""
        return [t.shape[1] for t in self.flatten_state(self.initial_state(1, device="meta"))]

    def _split(self, state) -> tuple[Any, HybridState | None]:
        if not self.stateful_encoder:
            return None, state
        return (None, None) if state is None else (state.encoder, state.core)

    def _join(self, enc_state, core_state):
        return PolicyState(enc_state, core_state) if self.stateful_encoder else core_state

    def encode(
        self, events: Tensor, proprio: Tensor, enc_state=None, sequence: bool = False
    ) -> tuple[Tensor, Any, Tensor | None]:
        """Core input, the encoder's next state and its SynOps (``[B]`` / ``[T, B]``; None
        for a dense encoder, whose cost is the constant :attr:`EventEncoder.macs`)."""
        if not self.stateful_encoder:
            return self.features(events, proprio), None, None
        run = self.encoder if sequence else self.encoder.step
        enc, enc_state, synops = run(self.floor(events), enc_state)
        return self._with_proprio(enc, proprio), enc_state, synops

    #: None: any ratio in [0, 1] (an HRSNN core is all spiking: 1.0).
    fixed_ratio: float | None = None

    # ---- online plasticity: only an HRSNN core has it ------------------------------------
    @property
    def plasticity(self) -> bool:
        return False

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        if on:
            raise ValueError(PLASTICITY_NEEDS_HRSNN)

    def weight_norms(self) -> dict[str, float]:
        return {}

    # ---- inference / training --------------------------------------------------------------
    @torch.no_grad()
    def step_with_activity(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState, HybridActivity]:
        """The one explicit control step (no grad): ``events [B, C, H, W]``, ``proprio [B, P]``
        → ``(action [B, A], state, activity)``.  ``activity`` holds this step's spikes per
        layer and the masks used: the cost accounting and the exported graph's
        ``spike_count`` output read it, so eager and exported steps are this code."""
        enc_state, core_state = self._split(state)
        x, enc_state, synops = self.encode(events, proprio, enc_state)
        out, core_state, activity = self.core.step_with_activity(x, core_state, masks)
        if synops is not None:
            activity = activity._replace(encoder_synops=synops[None])
        return torch.tanh(out), self._join(enc_state, core_state), activity

    def step(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """One differentiable control step (the same network code as
        :meth:`step_with_activity`): ``events [B, C, H, W]``, ``proprio [B, P]`` → ``[B, A]``."""
        enc_state, core_state = self._split(state)
        x, enc_state, _ = self.encode(events, proprio, enc_state)
        out, core_state = self.core.step(x, core_state, masks)
        return torch.tanh(out), self._join(enc_state, core_state)

    def forward(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """A sequence: ``events [T, B, C, H, W]``, ``proprio [T, B, P]`` → ``[T, B, A]``."""
        enc_state, core_state = self._split(state)
        x, enc_state, _ = self.encode(events, proprio, enc_state, sequence=True)
        out, core_state = self.core(x, core_state, masks)
        return torch.tanh(out), self._join(enc_state, core_state)

    def forward_with_features(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState, Tensor]:
        """:meth:`forward` plus the core's readout input ``[T, B, 2N]`` (for training-only
        auxiliary heads; the deployed step never computes them)."""
        enc_state, core_state = self._split(state)
        x, enc_state, _ = self.encode(events, proprio, enc_state, sequence=True)
        out, core_state, feats = self.core.forward_with_features(x, core_state, masks)
        return torch.tanh(out), self._join(enc_state, core_state), feats

    @torch.no_grad()
    def step_with_efficiency(
        self, events: Tensor, proprio: Tensor, state: HybridState | None = None
    ) -> tuple[Tensor, HybridState, EfficiencyReport]:
        """:meth:`step_with_activity` plus the cost of that very step (no second forward)."""
        action, state, activity = self.step_with_activity(events, proprio, state)
        report = count_efficiency(self.core, activity)
        return action, state, self._with_encoder(report, activity.encoder_synops)

    @torch.no_grad()
    def measure_efficiency(
        self, events: Tensor, proprio: Tensor, state: HybridState | None = None
    ) -> EfficiencyReport:
        """Cost per step of a real run at the current ratio, encoder MACs included."""
        enc_state, core_state = self._split(state)
        x, _, synops = self.encode(events, proprio, enc_state, sequence=True)
        _, _, activity = self.core.forward_with_activity(x, core_state)
        return self._with_encoder(count_efficiency(self.core, activity), synops)

    def _with_encoder(self, report: EfficiencyReport, synops: Tensor | None) -> EfficiencyReport:
        """Add the encoder: its constant MACs and, for a spiking one, the measured SynOps
        (``synops``: per step and sample, averaged like the core's counts)."""
        report.macs_per_step += self.encoder.macs
        report.energy_pj_per_step += self.encoder.macs * report.mac_energy_pj
        if synops is not None:
            acs = float(synops.float().mean())
            report.synops_per_step += acs
            report.energy_pj_per_step += acs * report.ac_energy_pj
        return report

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

import torch
from torch import Tensor, nn

from hybrid_snn_control.hybrid.efficiency import EfficiencyReport, count_efficiency
from hybrid_snn_control.hybrid.network import HybridActivity, HybridNetwork, HybridState
from hybrid_snn_control.policy.config import PLASTICITY_NEEDS_HRSNN, PolicyConfig

__all__ = ["AdaptivePoolMatmul", "EventEncoder", "HybridPolicy", "PolicyInput"]


class AdaptivePoolMatmul(nn.Module):
    """``AdaptiveAvgPool2d`` for a fixed input size as two averaging matrices.

    Bin i of an adaptive pool covers rows ``[floor(i·H/g), ceil((i+1)·H/g))`` (torch's
    rule); ``P_h x P_wᵀ`` with those row weights is the same average, written with
    MatMul — which every exporter and TensorRT take, unlike an adaptive pool whose
    output size does not divide the input size.  The matrices follow from the shapes,
    so they are not stored in the state dict.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("pool_h", self._matrix(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer("pool_w", self._matrix(in_hw[1], out_hw[1]), persistent=False)

    @staticmethod
    def _matrix(n_in: int, n_out: int) -> Tensor:
        m = torch.zeros(n_out, n_in)
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.pool_h, x), self.pool_w.t())


def fixed_pool(in_hw: tuple[int, int], grid: int) -> nn.Module:
    """Average pooling of a known map size to ``grid × grid``: ``AvgPool2d`` when the size
    divides evenly, :class:`AdaptivePoolMatmul` otherwise (what exporters and TensorRT take;
    both equal ``AdaptiveAvgPool2d``)."""
    h, w = in_hw
    if h % grid == 0 and w % grid == 0:
        return nn.AvgPool2d((h // grid, w // grid))
    return AdaptivePoolMatmul((h, w), (grid, grid))


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
        # the input size is fixed by the config, so the pool is a fixed one: the same
        # module runs eagerly, in training and in the exported graph
        layers += [fixed_pool((h, w), g), nn.Flatten(start_dim=1)]
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

    def state_names(self) -> list[str]:
        """Names of :meth:`flatten_state`'s tensors (the exported graph's state inputs)."""
        return self.core.state_names()

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
        out, state, activity = self.core.step_with_activity(
            self.features(events, proprio), state, masks
        )
        return torch.tanh(out), state, activity

    def step(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """One differentiable control step (the same network code as
        :meth:`step_with_activity`): ``events [B, C, H, W]``, ``proprio [B, P]`` → ``[B, A]``."""
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

    def forward_with_features(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState, Tensor]:
        """:meth:`forward` plus the core's readout input ``[T, B, 2N]`` (for training-only
        auxiliary heads; the deployed step never computes them)."""
        out, state, feats = self.core.forward_with_features(
            self.features(events, proprio), state, masks
        )
        return torch.tanh(out), state, feats

    @torch.no_grad()
    def step_with_efficiency(
        self, events: Tensor, proprio: Tensor, state: HybridState | None = None
    ) -> tuple[Tensor, HybridState, EfficiencyReport]:
        """:meth:`step_with_activity` plus the cost of that very step (no second forward)."""
        action, state, activity = self.step_with_activity(events, proprio, state)
        return action, state, self._with_encoder(count_efficiency(self.core, activity))

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

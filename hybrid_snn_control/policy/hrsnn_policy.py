r"""A control policy whose core is an HRSNN: no backprop anywhere, so it can keep learning.

.. math::
    x_t = [\,\mathrm{pool}(\log(1 + E_t)),\; (p_t - \mu_p) / \sigma_p\,], \quad
    z_t, s_t = \mathrm{HRSNN}(x_t, s_{t-1}), \quad
    r_t = d\, r_{t-1} + z_t, \quad
    a_t = \tanh(W [\,r_t,\; x_t\,] + b)

The model only: the encoder is fixed average pooling, the recurrent synapses are shaped by
unsupervised heterogeneous STDP and the readout ``W`` is fitted by ridge regression — both
by :mod:`hybrid_snn_control.training.hrsnn_policy`.  On the robot, ``set_plasticity(True)``
(the policy node's ``online_plasticity``) lets STDP keep changing the recurrent weights
from the live events while the readout stays fixed; ``weight_norms()`` is what the node
reports.  The spiking ratio of this core is fixed at 1 (every unit spikes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.hybrid.efficiency import AC_ENERGY_PJ, MAC_ENERGY_PJ, EfficiencyReport
from hybrid_snn_control.hybrid.ratio import check_ratio
from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig, HRSNNState
from hybrid_snn_control.neurons.stdp import STDPConfig
from hybrid_snn_control.policy.config import HRSNNCoreConfig, PolicyConfig
from hybrid_snn_control.policy.hybrid_policy import PolicyInput

__all__ = ["HRSNNPolicy", "HRSNNPolicyState", "layer_config"]


def layer_config(h: HRSNNCoreConfig, input_size: int) -> HRSNNConfig:
    """The :class:`HRSNNConfig` a policy's ``hrsnn`` section describes."""
    stdp = None
    if h.stdp:
        stdp = STDPConfig(
            eta_plus=Distribution("gamma", h.stdp_eta, 0.5),
            eta_minus=Distribution("gamma", 1.05 * h.stdp_eta, 0.5),
            normalize=h.stdp_normalize,
        )
        if not h.stdp_heterogeneous:
            stdp = stdp.homogeneous()
    return HRSNNConfig(
        input_size=input_size,
        num_neurons=h.num_neurons,
        excitatory_fraction=h.excitatory_fraction,
        connection_prob=h.connection_prob,
        input_connection_prob=h.input_connection_prob,
        input_scale=h.input_scale,
        recurrent_scale=h.recurrent_scale,
        tau_mem_steps=Distribution("gamma", h.tau_mem_mean, h.tau_mem_cv),
        tau_thr_steps=Distribution("gamma", h.tau_thr_mean, h.tau_thr_cv),
        threshold_adaptation=h.threshold_adaptation,
        stdp=stdp,
        seed=h.seed,
    )


class HRSNNPolicyState(NamedTuple):
    layer: HRSNNState  # the HRSNN's state (membranes, spikes, adaptation, STDP traces)
    trace: Tensor  # readout spike trace r_t [B, N]


class HRSNNPolicy(PolicyInput):
    """Pooled events + proprioception → HRSNN → ridge readout on spike traces → ``tanh``.

    Same interface as :class:`~.hybrid_policy.HybridPolicy` (``step``/``forward`` with explicit
    state, ``initial_state``, ``measure_efficiency``, ``save_policy``/``load_policy``), so
    evaluation, sweeps and the policy node run it unchanged.
    """

    #: An HRSNN core is all spiking: the ratio cannot be changed.
    fixed_ratio: float | None = 1.0

    def __init__(self, cfg: PolicyConfig) -> None:
        if cfg.core != "hrsnn":
            raise ValueError(f"HRSNNPolicy needs core 'hrsnn', got {cfg.core!r}")
        super().__init__(cfg)
        self.input_size = self.encoder.out_features + cfg.proprio_size
        self.hrsnn = HRSNN(layer_config(cfg.hrsnn, self.input_size))
        width = cfg.hrsnn.num_neurons + (self.input_size if cfg.hrsnn.readout_skip else 0)
        self.readout = nn.Linear(width, cfg.action_size)
        nn.init.zeros_(self.readout.weight)  # untrained: zero action
        nn.init.zeros_(self.readout.bias)
        for p in self.parameters():  # trained by STDP and least squares, never by autograd
            p.requires_grad_(False)

    # ---- ratio, plasticity, state ------------------------------------------------------------
    @property
    def spiking_ratio(self) -> float:
        return 1.0

    def set_ratio(self, r: float) -> None:
        if check_ratio(r) != 1.0:
            raise ValueError(
                f"this policy's core is an HRSNN (all spiking): spiking_ratio is fixed at 1, "
                f"got {r}"
            )

    @property
    def plasticity(self) -> bool:
        return self.hrsnn.plasticity

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        """Online STDP on the recurrent synapses from the next step on (readout fixed).

        ``rate`` scales the STDP learning rates (None: keep the current scale, 1 at start).
        """
        if on and self.hrsnn.stdp_rec is None:
            raise ValueError("this policy's HRSNN was built without STDP (hrsnn.stdp: false)")
        if rate is not None:
            if not (math.isfinite(rate) and rate >= 0):
                raise ValueError(f"plasticity rate must be a finite number >= 0, got {rate}")
            self.hrsnn.plasticity_rate = float(rate)
        self.hrsnn.plasticity = bool(on)

    def weight_norms(self) -> dict[str, float]:
        return self.hrsnn.weight_norms()

    def initial_state(self, batch_size: int, device=None, dtype=None) -> HRSNNPolicyState:
        layer = self.hrsnn.initial_state(batch_size, device, dtype)
        return HRSNNPolicyState(layer, torch.zeros_like(layer.v))

    def reset_state(self, state: HRSNNPolicyState, done: Tensor) -> HRSNNPolicyState:
        """Zero the state of the batch rows where ``done``."""
        keep = (~done.bool()).to(state.trace.dtype)[:, None]
        return _map_state(state, lambda t: t * keep if t.numel() else t)

    def flatten_state(self, state: HRSNNPolicyState) -> list[Tensor]:
        layer = state.layer
        return [layer.v, layer.z, layer.a, *layer.rec_traces, *layer.in_traces, state.trace]

    def state_names(self) -> list[str]:
        """Names of :meth:`flatten_state`'s tensors, in its order."""
        template = self.initial_state(1, device="meta").layer
        return [
            "layer.v",
            "layer.z",
            "layer.a",
            *(f"layer.rec_traces.{f}" for f in template.rec_traces._fields),
            *(f"layer.in_traces.{f}" for f in template.in_traces._fields),
            "trace",
        ]

    # ---- inference ---------------------------------------------------------------------------
    def readout_input(self, trace: Tensor, x: Tensor) -> Tensor:
        return torch.cat([trace, x], dim=-1) if self.cfg.hrsnn.readout_skip else trace

    def _step(self, x: Tensor, state: HRSNNPolicyState | None):
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        z, layer = self.hrsnn.step(x, state.layer)
        trace = self.cfg.hrsnn.trace_decay * state.trace + z
        out = torch.tanh(self.readout(self.readout_input(trace, x)))
        return out, HRSNNPolicyState(layer, trace), z

    def step(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HRSNNPolicyState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HRSNNPolicyState]:
        """One control step: ``events [B, C, H, W]``, ``proprio [B, P]`` → ``action [B, A]``."""
        if masks is not None:
            raise ValueError("an HRSNN core has no unit masks")
        with torch.no_grad():
            out, state, _ = self._step(self.features(events, proprio), state)
        return out, state

    def forward(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HRSNNPolicyState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HRSNNPolicyState]:
        """A sequence ``[T, B, …]`` → ``[T, B, A]``: exactly a loop of :meth:`step`."""
        outs = []
        for t in range(events.shape[0]):
            out, state = self.step(events[t], proprio[t], state, masks)
            outs.append(out)
        return torch.stack(outs), state

    @torch.no_grad()
    def readout_features(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(readout inputs [T, B, F], spikes [T, B, N])`` of a sequence (weights as they are)."""
        x = self.features(events, proprio)
        z_seq, _ = self.hrsnn(x, None if state is None else state.layer)
        trace = torch.zeros_like(z_seq[0]) if state is None else state.trace
        traces = []
        for z in z_seq:
            trace = self.cfg.hrsnn.trace_decay * trace + z
            traces.append(trace)
        return self.readout_input(torch.stack(traces), x), z_seq

    # ---- cost (DESIGN §9) --------------------------------------------------------------------
    def _report(self, x: Tensor, z: Tensor) -> EfficiencyReport:
        """Cost per step and sample of inputs ``x [..., F]`` and spikes ``z [..., N]``.

        The layer input is analog (pooled log counts, proprioception): each nonzero input
        × its fan-out is a MAC; each spike × its fan-out an accumulate (SynOp); the
        readout is dense MACs.
        """
        steps = x.reshape(-1, x.shape[-1]).shape[0]
        fan_in = self.hrsnn.fan_out_in.to(x.dtype)
        fan_rec = self.hrsnn.fan_out_rec.to(z.dtype)
        in_macs = float(((x != 0).to(x.dtype) * fan_in).sum()) / steps
        synops = float((z * fan_rec).sum()) / steps
        macs = in_macs + self.readout.in_features * self.readout.out_features
        spikes = float(z.sum()) / steps
        return EfficiencyReport(
            steps=x.shape[0] if x.dim() == 3 else 1,
            batch_size=x.shape[-2],
            spiking_ratio=1.0,
            macs_per_step=macs + self.encoder.macs,
            synops_per_step=synops,
            energy_pj_per_step=(macs + self.encoder.macs) * MAC_ENERGY_PJ + synops * AC_ENERGY_PJ,
            firing_rate=[spikes / self.hrsnn.hidden_size],
            spikes_per_step=[spikes],
            active_spiking=[self.hrsnn.hidden_size],
            active_recurrent=[0],
        )

    @torch.no_grad()
    def step_with_efficiency(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> tuple[Tensor, HRSNNPolicyState, EfficiencyReport]:
        """:meth:`step` plus the cost of that very step."""
        x = self.features(events, proprio)
        out, state, z = self._step(x, state)
        return out, state, self._report(x, z)

    @torch.no_grad()
    def measure_efficiency(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> EfficiencyReport:
        """Cost per step of a run over ``events [T, B, C, H, W]`` (weights frozen)."""
        previous = self.hrsnn.plasticity
        self.hrsnn.plasticity = False
        try:
            x = self.features(events, proprio)
            z_seq, _ = self.hrsnn(x, None if state is None else state.layer)
        finally:
            self.hrsnn.plasticity = previous
        return self._report(x, z_seq)


def _map_state(state: HRSNNPolicyState, fn: Callable[[Tensor], Tensor]) -> HRSNNPolicyState:
    layer = state.layer
    return HRSNNPolicyState(
        type(layer)(
            fn(layer.v),
            fn(layer.z),
            fn(layer.a),
            type(layer.rec_traces)(*(fn(t) for t in layer.rec_traces)),
            type(layer.in_traces)(*(fn(t) for t in layer.in_traces)),
        ),
        fn(state.trace),
    )

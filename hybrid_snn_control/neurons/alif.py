r"""Adaptive-threshold LIF (ALIF; Bellec et al. 2018 / Yin et al. 2021 form).

.. math::
    u_t = \lambda\, v_{t-1} + W x_t + b, \qquad v_{t-1} = u_{t-1}(1 - o_{t-1})

    \theta_t = \theta_0 + \beta a_t, \qquad a_t = \rho\, a_{t-1} + o_{t-1}

    o_t = H(u_t - \theta_t)

The membrane part is exactly :mod:`~hybrid_snn_control.neurons.lif`; each spike raises
the threshold by β, which relaxes with ρ = exp(-1/τ_adapt). With β = 0 it *is* LIF.

State: :class:`ALIFState` ``(v, a)`` — membrane after reset and the adaptation variable
for the *next* step (``a`` already includes this step's spike), each ``[B, N]``.
Defaults: λ = θ_0 = 0.6, β = 0.2, ρ = 0.95, rectangular surrogate ℓ = 0.5.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from hybrid_snn_control.neurons.base import as_unit_vector, check_sequence, register_vector
from hybrid_snn_control.neurons.fused import fused_alif, fused_enabled
from hybrid_snn_control.neurons.lif import LIF
from hybrid_snn_control.neurons.surrogate import spike


class ALIFState(NamedTuple):
    v: Tensor  # membrane after reset [B, N]
    a: Tensor  # threshold adaptation for the next step [B, N]


def alif_dynamics(
    current: Tensor,
    v: Tensor,
    a: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    subtract_reset: bool,
    surrogate: str,
    scale: float,
    detach_reset: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """One ALIF update; returns ``(spikes, membrane after reset, next adaptation)``."""
    u = torch.addcmul(current, decay, v)
    theta = torch.addcmul(threshold, beta, a)
    o = spike(u - theta, surrogate, scale)
    r = o.detach() if detach_reset else o
    v_new = u - r * theta if subtract_reset else u - u * r
    return o, v_new, rho * a + o


class ALIF(LIF):
    """ALIF layer: :class:`~hybrid_snn_control.neurons.lif.LIF` plus an adaptive threshold.

    Extra args: ``adaptation`` β (≥ 0), ``adaptation_decay`` ρ in [0, 1],
    ``learn_adaptation`` (trains β and ρ; ρ clamped to [0, 1]).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        adaptation: float | Tensor = 0.2,
        adaptation_decay: float | Tensor = 0.95,
        learn_adaptation: bool = False,
        **lif_kwargs,
    ) -> None:
        super().__init__(input_size, hidden_size, **lif_kwargs)
        beta = as_unit_vector(adaptation, hidden_size, "adaptation")
        rho = as_unit_vector(adaptation_decay, hidden_size, "adaptation_decay")
        if bool((rho < 0).any() | (rho > 1).any()):
            raise ValueError("adaptation_decay must lie in [0, 1]")
        self.learn_adaptation = learn_adaptation
        register_vector(self, "adaptation", beta, learn_adaptation)
        register_vector(self, "adaptation_decay", rho, learn_adaptation)

    def initial_state(self, batch_size, device=None, dtype=None) -> ALIFState:
        dtype = dtype if dtype is not None else self.fc.weight.dtype
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return ALIFState(z, z.clone())

    def _rho(self) -> Tensor:
        return (
            self.adaptation_decay.clamp(0.0, 1.0)
            if self.learn_adaptation
            else (self.adaptation_decay)
        )

    def step(self, x: Tensor, state: ALIFState | None = None, mask: Tensor | None = None):
        current = self.fc(x)
        if state is None:
            v = current.new_zeros(current.shape)
            a = v
        else:
            v, a = state
        o, v, a = alif_dynamics(
            current,
            v,
            a,
            self.effective_decay(),
            self.threshold,
            self.adaptation,
            self._rho(),
            self.subtract_reset,
            self.surrogate,
            self.surrogate_scale,
            self.detach_reset,
        )
        if mask is not None:
            o = o * mask
            v = v * mask
            a = a * mask
        return o, ALIFState(v, a)

    def fused_sequence(
        self, currents: Tensor, state: ALIFState, units: Tensor | None = None
    ) -> tuple[Tensor, ALIFState]:
        """As :meth:`LIF.fused_sequence`, with the adaptation."""
        params = [self.effective_decay(), self.threshold, self.adaptation, self._rho()]
        if units is not None:
            params = [p.index_select(0, units) for p in params]
        decay, threshold, beta, rho = params
        o_seq, v, a = fused_alif(
            currents, state.v, state.a, decay, threshold, beta, rho,
            self.subtract_reset, True, self.detach_reset, self.surrogate, self.surrogate_scale,
        )  # fmt: skip
        return o_seq, ALIFState(v, a)

    def forward(self, x_seq: Tensor, state: ALIFState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        currents = self.fc(x_seq)
        if state is None:
            v = currents.new_zeros(currents.shape[1:])
            a = v
        else:
            v, a = state
        if fused_enabled():
            o_seq, (v, a) = self.fused_sequence(currents, ALIFState(v, a))
        else:
            decay, rho = self.effective_decay(), self._rho()
            outputs = []
            for t in range(currents.shape[0]):
                o, v, a = alif_dynamics(
                    currents[t],
                    v,
                    a,
                    decay,
                    self.threshold,
                    self.adaptation,
                    rho,
                    self.subtract_reset,
                    self.surrogate,
                    self.surrogate_scale,
                    self.detach_reset,
                )
                outputs.append(o)
            o_seq = torch.stack(outputs)
        if mask is not None:
            o_seq = o_seq * mask
            v = v * mask
            a = a * mask
        return o_seq, ALIFState(v, a)

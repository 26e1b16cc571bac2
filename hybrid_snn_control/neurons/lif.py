r"""Leaky integrate-and-fire neuron, HSTNN / He et al. 2020 form.

.. math::
    I_t = W x_t + b

    u_t = \lambda\, v_{t-1} + I_t, \qquad v_{t-1} = u_{t-1}(1 - o_{t-1})

    o_t = H(u_t - \theta)

i.e. :math:`u_t = \lambda u_{t-1}(1 - o_{t-1}) + W x_t + b`, a hard reset through the
:math:`(1 - o)` gate (gradient flows through the gate unless ``detach_reset``).
``reset="subtract"`` gives the soft reset :math:`v = u - \theta o` instead.
Defaults: :math:`\lambda = \theta = 0.6`, rectangular surrogate :math:`\ell = 0.5`
(HSTNN sequential tasks; use 0.3 / 0.5 for DVS).

A whole sequence runs the fused kernel of :mod:`.fused` (same numbers, hand-written BPTT)
unless :func:`~hybrid_snn_control.neurons.fused.unfused` is active.

State: :class:`LIFState` ``(v,)`` — the membrane *after* reset, shape ``[B, N]``.

snnTorch mapping (tested): ``snntorch.Leaky(beta=λ, threshold=θ, reset_mechanism="zero")``
(default ``reset_delay=True``) computes ``mem_t = β(1 − H(mem_{t−1} − θ)) mem_{t−1} + x_t``,
``spk_t = H(mem_t − θ)``: the same recursion with ``mem = u``, so
``spk == o`` and ``mem·(1 − spk) == v``. (snnTorch detaches the reset: ``detach_reset=True``
matches its gradients too.) snnTorch's ``"subtract"`` is a different model: it subtracts θ
*after* the leak (``mem = β·mem + I − θ·o_prev``) while ``reset="subtract"`` here subtracts
before it (``u = λ(u − θ·o_prev) + I``); the tests check both statements.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.base import (
    Cell,
    as_unit_vector,
    check_sequence,
    heterogeneous_decay,
    register_vector,
)
from hybrid_snn_control.neurons.fused import fused_alif, fused_enabled
from hybrid_snn_control.neurons.surrogate import check_surrogate, spike

RESETS = ("zero", "subtract")


class LIFState(NamedTuple):
    v: Tensor  # membrane after reset [B, N]


def lif_dynamics(
    current: Tensor,
    v: Tensor,
    decay: Tensor,
    threshold: Tensor,
    subtract_reset: bool,
    surrogate: str,
    scale: float,
    detach_reset: bool,
) -> tuple[Tensor, Tensor]:
    """One LIF update from input current; returns ``(spikes, membrane after reset)``."""
    u = torch.addcmul(current, decay, v)
    o = spike(u - threshold, surrogate, scale)
    r = o.detach() if detach_reset else o
    v_new = u - r * threshold if subtract_reset else u - u * r
    return o, v_new


class LIF(Cell):
    """LIF layer with its input projection ``W`` (see module docstring for the equations).

    Args:
        input_size, hidden_size: sizes of ``x`` and of the neuron population.
        decay: λ (scalar or per-neuron ``[N]``), in [0, 1].
        threshold: θ (scalar or ``[N]``).
        surrogate, surrogate_scale: see :mod:`~hybrid_snn_control.neurons.surrogate`.
        reset: ``"zero"`` (hard, HSTNN) or ``"subtract"``.
        learn_decay, learn_threshold: make λ / θ trainable (λ is clamped to [0, 1]).
        heterogeneous_tau: gamma shape k; when set, per-neuron λ = exp(-1/τ), τ ~ Gamma.
        detach_reset: stop the gradient through the reset gate (snnTorch's choice).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        decay: float | Tensor = 0.6,
        threshold: float | Tensor = 0.6,
        surrogate: str = "rectangular",
        surrogate_scale: float | None = None,
        reset: str = "zero",
        learn_decay: bool = False,
        learn_threshold: bool = False,
        heterogeneous_tau: float | None = None,
        bias: bool = True,
        detach_reset: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.surrogate = surrogate
        self.surrogate_scale = check_surrogate(surrogate, surrogate_scale)
        self.subtract_reset = reset == "subtract"
        self.detach_reset = detach_reset
        self.learn_decay = learn_decay
        self.fc = nn.Linear(input_size, hidden_size, bias=bias)
        if heterogeneous_tau is not None:
            decay_vec = heterogeneous_decay(float(decay), hidden_size, heterogeneous_tau, generator)
        else:
            decay_vec = as_unit_vector(decay, hidden_size, "decay")
        if bool(((decay_vec < 0) | (decay_vec > 1)).any()):
            raise ValueError("decay must lie in [0, 1]")
        register_vector(self, "decay", decay_vec, learn_decay)
        register_vector(
            self, "threshold", as_unit_vector(threshold, hidden_size, "threshold"), learn_threshold
        )

    def extra_repr(self) -> str:
        reset = "subtract" if self.subtract_reset else "zero"
        return f"{self.input_size}, {self.hidden_size}, surrogate={self.surrogate}, reset={reset}"

    def initial_state(self, batch_size, device=None, dtype=None) -> LIFState:
        dtype = dtype if dtype is not None else self.fc.weight.dtype
        return LIFState(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype))

    def effective_decay(self) -> Tensor:
        return self.decay.clamp(0.0, 1.0) if self.learn_decay else self.decay

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.fc.weight, 1)]

    def step(self, x: Tensor, state: LIFState | None = None, mask: Tensor | None = None):
        current = self.fc(x)
        v = current.new_zeros(current.shape) if state is None else state.v
        o, v = lif_dynamics(
            current,
            v,
            self.effective_decay(),
            self.threshold,
            self.subtract_reset,
            self.surrogate,
            self.surrogate_scale,
            self.detach_reset,
        )
        if mask is not None:
            o = o * mask
            v = v * mask
        return o, LIFState(v)

    def fused_sequence(
        self, currents: Tensor, state: LIFState, units: Tensor | None = None
    ) -> tuple[Tensor, LIFState]:
        """The fused kernel over input currents ``[T, B, n]``: ``(spikes, final state)``.
        ``units`` (indices, with ``currents`` and ``state`` already narrowed to them) runs
        only those units' parameters: the compact training path."""
        decay, threshold = self.effective_decay(), self.threshold
        if units is not None:
            decay, threshold = decay.index_select(0, units), threshold.index_select(0, units)
        v = state.v
        o_seq, v, _ = fused_alif(
            currents, v, v, decay, threshold, threshold, threshold,  # LIF: no adaptation
            self.subtract_reset, False, self.detach_reset, self.surrogate, self.surrogate_scale,
        )  # fmt: skip
        return o_seq, LIFState(v)

    def forward(self, x_seq: Tensor, state: LIFState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        currents = self.fc(x_seq)  # one matmul for all T steps
        v = currents.new_zeros(currents.shape[1:]) if state is None else state.v
        if fused_enabled():
            o_seq, (v,) = self.fused_sequence(currents, LIFState(v))
        else:
            decay = self.effective_decay()
            outputs = []
            for t in range(currents.shape[0]):
                o, v = lif_dynamics(
                    currents[t],
                    v,
                    decay,
                    self.threshold,
                    self.subtract_reset,
                    self.surrogate,
                    self.surrogate_scale,
                    self.detach_reset,
                )
                outputs.append(o)
            o_seq = torch.stack(outputs)
        if mask is not None:  # units are independent: masking after the loop is exact
            o_seq = o_seq * mask
            v = v * mask
        return o_seq, LIFState(v)

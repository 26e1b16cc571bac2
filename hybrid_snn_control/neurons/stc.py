r"""Autaptic spatio-temporal circuit (STC; Wang & Yu, ICML 2024) on top of LIF / ALIF.

Two learnable pathways driven by the population's *own previous spikes* modulate the
membrane leak and the input gain:

.. math::
    I_t = \mathrm{GN}(W_x x_t)

    m^h_t = 1 + \tanh(\mathrm{GN}(W_h o_{t-1})), \qquad
    m^v_t = 1 + \tanh(\mathrm{GN}(W_v o_{t-1}))

    u_t = m^h_t \odot \lambda\, v_{t-1} + m^v_t \odot I_t

    o_t = H(u_t - \theta_t), \qquad v_t = \text{reset}(u_t, o_t)

with :math:`\theta_t = \theta_0` (``base="lif"``) or :math:`\theta_0 + \beta a_t`
(``base="alif"``, :mod:`~hybrid_snn_control.neurons.alif`). The paper's neuron is
:func:`stc_paper_kwargs`: λ = 1, θ = 1, soft reset :math:`h_t \leftarrow h_t - o_t`,
sigmoid surrogate α = 4. GN is GroupNorm over the units (``norm_groups=None`` disables it).

Variants: :class:`STC` (dense: ``W_h, W_v`` are ``N x N`` linear maps) and
:class:`ConvSTC` (``W_x`` a convolution, ``W_h, W_v`` grouped convolutions over the
population's own spike maps, as in the official code; state ``[B, C, H, W]``).

Dense STC without GroupNorm runs whole sequences through a fused kernel
(:class:`~hybrid_snn_control.neurons.fused.FusedSTC`: same numbers, hand-written BPTT
through the modulating pathways; ``unfused()`` for double backward).

State: :class:`STCState` ``(v, a, o)`` — membrane after reset, adaptation (zeros and
unused for ``base="lif"``), previous spikes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.base import (
    Cell,
    as_unit_vector,
    check_sequence,
    register_vector,
)
from hybrid_snn_control.neurons.fused import FusedSTC, fused_enabled
from hybrid_snn_control.neurons.surrogate import check_surrogate, spike

BASES = ("lif", "alif")


class STCState(NamedTuple):
    v: Tensor  # membrane after reset
    a: Tensor  # threshold adaptation (ALIF base; zeros for LIF base)
    o: Tensor  # previous spikes, drive the modulating pathways


def stc_paper_kwargs() -> dict:
    """Keyword arguments for the neuron exactly as in Wang & Yu (2024)."""
    return {
        "decay": 1.0,
        "threshold": 1.0,
        "reset": "subtract",
        "surrogate": "sigmoid",
        "surrogate_scale": 4.0,
    }


def _norm(groups: int | None, channels: int) -> nn.Module:
    if groups is None:
        return nn.Identity()
    if channels % groups:
        raise ValueError(f"norm_groups={groups} must divide the {channels} units")
    return nn.GroupNorm(groups, channels)


class _STCBase(Cell):
    def _setup(
        self,
        hidden_size: int,
        base: str,
        decay,
        threshold,
        adaptation,
        adaptation_decay,
        surrogate: str,
        surrogate_scale: float | None,
        reset: str,
        learn_decay: bool,
        learn_threshold: bool,
        norm_groups: int | None,
    ) -> None:
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        if reset not in ("zero", "subtract"):
            raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
        self.hidden_size = hidden_size
        self.base = base
        self.surrogate = surrogate
        self.surrogate_scale = check_surrogate(surrogate, surrogate_scale)
        self.subtract_reset = reset == "subtract"
        self.learn_decay = learn_decay
        register_vector(self, "decay", as_unit_vector(decay, hidden_size, "decay"), learn_decay)
        register_vector(
            self, "threshold", as_unit_vector(threshold, hidden_size, "threshold"), learn_threshold
        )
        learn_adapt = base == "alif"
        register_vector(
            self, "adaptation", as_unit_vector(adaptation, hidden_size, "adaptation"), learn_adapt
        )
        self.register_buffer(
            "adaptation_decay", as_unit_vector(adaptation_decay, hidden_size, "adaptation_decay")
        )
        self.norm_x = _norm(norm_groups, hidden_size)
        self.norm_h = _norm(norm_groups, hidden_size)
        self.norm_v = _norm(norm_groups, hidden_size)

    def _vec(self, p: Tensor, ref: Tensor) -> Tensor:
        """Per-unit vector broadcast over the trailing spatial dims of ``ref``."""
        return p.reshape((-1,) + (1,) * (ref.dim() - 2))

    def current(self, x: Tensor) -> Tensor:
        return self.norm_x(self.fc(x))

    def dynamics(self, current: Tensor, state: STCState, mask: Tensor | None):
        v, a, o_prev = state
        if mask is not None:  # a unit switched off must not modulate the others
            o_prev = o_prev * mask
        z_h, z_v = self.w_h(o_prev), self.w_v(o_prev)
        m_h = 1.0 + torch.tanh(self.norm_h(z_h))
        m_v = 1.0 + torch.tanh(self.norm_v(z_v))
        decay = self.decay.clamp(0.0, 1.0) if self.learn_decay else self.decay
        u = m_h * self._vec(decay, v) * v + m_v * current
        theta = self._vec(self.threshold, u)
        if self.base == "alif":
            theta = theta + self._vec(self.adaptation, u) * a
        o = spike(u - theta, self.surrogate, self.surrogate_scale)
        v = u - o * theta if self.subtract_reset else u - u * o
        if self.base == "alif":
            a = self._vec(self.adaptation_decay, u) * a + o
        if mask is not None:
            o, v, a = o * mask, v * mask, a * mask
        return o, STCState(v, a, o)

    def _zeros(self, current: Tensor) -> STCState:
        z = current.new_zeros(current.shape)
        return STCState(z, z, z)

    def step(self, x: Tensor, state: STCState | None = None, mask: Tensor | None = None):
        current = self.current(x)
        if mask is not None:
            mask = self._vec(mask, current)
        o, state = self.dynamics(current, self._zeros(current) if state is None else state, mask)
        return o, state

    def forward(self, x_seq: Tensor, state: STCState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        T, B = x_seq.shape[:2]
        flat = self.current(x_seq.reshape(T * B, *x_seq.shape[2:]))  # fused over time
        currents = flat.reshape(T, B, *flat.shape[1:])
        if state is None:
            state = self._zeros(currents[0])
        if mask is not None:
            mask = self._vec(mask, currents[0])
        if (
            fused_enabled()
            and isinstance(self.w_h, nn.Linear)
            and isinstance(self.norm_h, nn.Identity)
        ):
            return self._fused(currents, state, mask)
        outputs = []
        for t in range(T):
            o, state = self.dynamics(currents[t], state, mask)
            outputs.append(o)
        return torch.stack(outputs), state

    def _fused(self, currents: Tensor, state: STCState, mask: Tensor | None):
        """Dense STC without GroupNorm: the fused kernel (same numbers, hand-written BPTT)."""
        decay = self.decay.clamp(0.0, 1.0) if self.learn_decay else self.decay
        w_hv = torch.cat([self.w_h.weight, self.w_v.weight], 0)
        ones = torch.ones_like(self.threshold)
        config = (self.subtract_reset, self.base == "alif", self.surrogate, self.surrogate_scale)
        o_seq, v, a, o = FusedSTC.apply(
            currents,
            state.v,
            state.a,
            state.o,
            w_hv,
            decay,
            self.threshold,
            self.adaptation,
            self.adaptation_decay,
            ones if mask is None else mask,
            config,
        )
        return o_seq, STCState(v, a, o)


class STC(_STCBase):
    """Dense STC population (``base="lif"`` or ``"alif"``) with its input projection."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        base: str = "lif",
        decay: float | Tensor = 0.6,
        threshold: float | Tensor = 0.6,
        adaptation: float | Tensor = 0.2,
        adaptation_decay: float | Tensor = 0.95,
        surrogate: str = "sigmoid",
        surrogate_scale: float | None = None,
        reset: str = "zero",
        learn_decay: bool = False,
        learn_threshold: bool = False,
        norm_groups: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.fc = nn.Linear(input_size, hidden_size, bias=bias)
        self.w_h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.w_v = nn.Linear(hidden_size, hidden_size, bias=False)
        self._setup(
            hidden_size,
            base,
            decay,
            threshold,
            adaptation,
            adaptation_decay,
            surrogate,
            surrogate_scale,
            reset,
            learn_decay,
            learn_threshold,
            norm_groups,
        )

    def initial_state(self, batch_size, device=None, dtype=None) -> STCState:
        dtype = dtype if dtype is not None else self.fc.weight.dtype
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return STCState(z, z.clone(), z.clone())

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.fc.weight, 1), (self.w_h.weight, 1), (self.w_v.weight, 1)]


class ConvSTC(_STCBase):
    """Convolutional STC: ``x`` is ``[B, C_in, H, W]``, spikes are ``[B, C_out, H', W']``.

    ``modulation_groups`` sets the grouping of the ``W_h, W_v`` convolutions
    (default: depthwise, each channel modulated by its own spike map's neighbourhood).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        modulation_kernel_size: int = 3,
        modulation_groups: int | None = None,
        base: str = "lif",
        decay: float | Tensor = 0.6,
        threshold: float | Tensor = 0.6,
        adaptation: float | Tensor = 0.2,
        adaptation_decay: float | Tensor = 0.95,
        surrogate: str = "sigmoid",
        surrogate_scale: float | None = None,
        reset: str = "zero",
        learn_decay: bool = False,
        learn_threshold: bool = False,
        norm_groups: int | None = 1,
        stride: int = 1,
    ) -> None:
        super().__init__()
        groups = out_channels if modulation_groups is None else modulation_groups
        self.input_size = in_channels
        self.fc = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2
        )
        pad = modulation_kernel_size // 2
        self.w_h = nn.Conv2d(
            out_channels,
            out_channels,
            modulation_kernel_size,
            padding=pad,
            groups=groups,
            bias=False,
        )
        self.w_v = nn.Conv2d(
            out_channels,
            out_channels,
            modulation_kernel_size,
            padding=pad,
            groups=groups,
            bias=False,
        )
        self._setup(
            out_channels,
            base,
            decay,
            threshold,
            adaptation,
            adaptation_decay,
            surrogate,
            surrogate_scale,
            reset,
            learn_decay,
            learn_threshold,
            norm_groups,
        )

    def initial_state(self, batch_size, device=None, dtype=None, spatial=(1, 1)) -> STCState:
        """Zeros; ``spatial`` is the output map size (``state=None`` infers it from x)."""
        dtype = dtype if dtype is not None else self.fc.weight.dtype
        z = torch.zeros(batch_size, self.hidden_size, *spatial, device=device, dtype=dtype)
        return STCState(z, z.clone(), z.clone())

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.fc.weight, 1), (self.w_h.weight, 1), (self.w_v.weight, 1)]

r"""Pair-based STDP with per-synapse time constants and learning rates (heterogeneous STDP).

For a synapse :math:`s` from presynaptic unit :math:`j` to postsynaptic unit :math:`i`,
every pair of a presynaptic spike *delivered* at step :math:`t_j` and a postsynaptic
spike at step :math:`t_i` adds, with :math:`\Delta t = t_i - t_j` (in steps),

.. math::
    \Delta w_s = \begin{cases}
        +\eta^+_s\, e^{-\Delta t/\tau^+_s} & \Delta t \ge 0 \ \text{(pre before post: LTP)}\\
        -\eta^-_s\, e^{\Delta t/\tau^-_s}  & \Delta t < 0 \ \text{(post before pre: LTD)}
    \end{cases}

:math:`\Delta t = 0` counts as causal: a spike delivered in the step of the postsynaptic
spike entered that very membrane update. All pairs add (all-to-all pairing), computed
online with per-synapse traces (:math:`d^\pm_s = e^{-1/\tau^\pm_s}`, spikes
:math:`s^{pre}, s^{post} \in \{0, 1\}` or event counts):

.. math::
    x^+_s[t] = d^+_s\, x^+_s[t-1] + s^{pre}_j[t]
        \qquad \hat x^-_s[t] = d^-_s\, x^-_s[t-1], \quad x^-_s[t] = \hat x^-_s[t] + s^{post}_i[t]

    \Delta w_s[t] = \big\langle \eta^+_s\, s^{post}_i[t]\, x^+_s[t]
        - \eta^-_s\, s^{pre}_j[t]\, \hat x^-_s[t] \big\rangle_{\text{batch}}

then :math:`w_s \leftarrow \mathrm{clip}(w_s + \Delta w_s, w_{min}, w_{max})`, optionally
followed by synaptic scaling (each postsynaptic row rescaled to its target
:math:`\sum_j |w_{ij}|`, then clipped again). The batch mean makes :math:`\eta` independent
of the batch size.

Synapses are a list (COO: ``post_index``, ``pre_index``), so traces and parameters are
``[B, S]`` / ``[S]`` over *existing* synapses only: no work and no weight where there is
no synapse. With homogeneous STDP every synapse gets the distributions' means.
Sign constraints (Dale's law) belong to the layer: it keeps non-negative magnitudes
here (``w_min >= 0``) and applies each presynaptic neuron's sign in its forward pass.

State: :class:`STDPState` ``(x_pre, x_post)`` — the traces :math:`x^+, x^-` after the
step, ``[B, S]`` each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.heterogeneity import Distribution


class STDPState(NamedTuple):
    x_pre: Tensor  # LTP trace x⁺ per synapse [B, S]
    x_post: Tensor  # LTD trace x⁻ per synapse [B, S]


class STDPParameters(NamedTuple):
    post_index: Tensor  # [S] long
    pre_index: Tensor  # [S] long
    decay_plus: Tensor  # exp(-1/τ⁺) [S]
    decay_minus: Tensor  # exp(-1/τ⁻) [S]
    eta_plus: Tensor  # [S]
    eta_minus: Tensor  # [S]


@dataclass(frozen=True)
class STDPConfig:
    """Distributions of the per-synapse STDP parameters and the weight bounds."""

    tau_plus_steps: Distribution = field(default_factory=lambda: Distribution("gamma", 10.0, 0.5))
    tau_minus_steps: Distribution = field(default_factory=lambda: Distribution("gamma", 10.0, 0.5))
    eta_plus: Distribution = field(default_factory=lambda: Distribution("gamma", 1e-3, 0.5))
    eta_minus: Distribution = field(default_factory=lambda: Distribution("gamma", 1.05e-3, 0.5))
    w_min: float = 0.0  # a layer without Dale's law usually wants -w_max
    w_max: float = 1.0
    normalize: bool = False  # synaptic scaling of each postsynaptic row to its initial L1 norm

    def __post_init__(self) -> None:
        if not self.w_max > self.w_min:
            raise ValueError(f"STDP needs w_max > w_min, got [{self.w_min}, {self.w_max}]")

    def homogeneous(self) -> STDPConfig:
        """Same means, no per-synapse spread (the paper's homogeneous-STDP control)."""
        return replace(
            self,
            tau_plus_steps=self.tau_plus_steps.homogeneous(),
            tau_minus_steps=self.tau_minus_steps.homogeneous(),
            eta_plus=self.eta_plus.homogeneous(),
            eta_minus=self.eta_minus.homogeneous(),
        )


def stdp_step(
    pre: Tensor, post: Tensor, state: STDPState, p: STDPParameters
) -> tuple[Tensor, STDPState]:
    """Traces and weight change for one step; ``pre [B, N_pre]``, ``post [B, N_post]``.

    Returns ``(dw [S], new state)``. Pure: no weight is touched here.
    """
    s_pre = pre[:, p.pre_index]  # [B, S]
    s_post = post[:, p.post_index]
    x_pre = p.decay_plus * state.x_pre + s_pre  # includes this step's delivery (Δt = 0 is LTP)
    x_post_hat = p.decay_minus * state.x_post  # only earlier postsynaptic spikes
    dw = p.eta_plus * (s_post * x_pre).mean(0) - p.eta_minus * (s_pre * x_post_hat).mean(0)
    return dw, STDPState(x_pre, x_post_hat + s_post)


def apply_stdp_update(
    weight: Tensor,
    dw: Tensor,
    p: STDPParameters,
    w_min: float,
    w_max: float,
    row_target: Tensor | None = None,
) -> None:
    """``weight[post, pre] += dw`` on the listed synapses, clip, optional row scaling (in place).

    Entries of ``weight`` that are not synapses are never written.
    """
    with torch.no_grad():
        w = (weight[p.post_index, p.pre_index] + dw).clamp(w_min, w_max)
        if row_target is not None:
            norm = torch.zeros_like(row_target).index_add_(0, p.post_index, w.abs())
            scale = torch.where(norm > 0, row_target / norm.clamp_min(1e-12), torch.ones_like(norm))
            w = (w * scale[p.post_index]).clamp(w_min, w_max)
        weight[p.post_index, p.pre_index] = w


def synapse_list(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(post_index, pre_index)`` of the true entries of a ``[N_post, N_pre]`` mask."""
    post, pre = torch.nonzero(mask, as_tuple=True)
    return post, pre


class STDP(nn.Module):
    """Heterogeneous pair-based STDP on the synapses of one ``[N_post, N_pre]`` weight.

    Holds the per-synapse τ± (as decays) and η± as buffers, drawn once from ``config``'s
    distributions with ``rng``. ``step`` updates the traces (always) and returns ``dw``;
    ``apply`` writes it into the weight. The owner decides when to learn.
    """

    def __init__(
        self,
        mask: Tensor,
        config: STDPConfig,
        rng: np.random.Generator,
        initial_weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        if mask.dim() != 2:
            raise ValueError(f"STDP mask must be [N_post, N_pre], got {tuple(mask.shape)}")
        self.config = config
        post, pre = synapse_list(mask.bool())
        s = int(post.numel())
        dtype = torch.get_default_dtype()
        self.register_buffer("post_index", post)
        self.register_buffer("pre_index", pre)
        tau_plus = torch.as_tensor(config.tau_plus_steps.sample(s, rng), dtype=dtype)
        tau_minus = torch.as_tensor(config.tau_minus_steps.sample(s, rng), dtype=dtype)
        self.register_buffer("tau_plus_steps", tau_plus)
        self.register_buffer("tau_minus_steps", tau_minus)
        self.register_buffer(
            "eta_plus", torch.as_tensor(config.eta_plus.sample(s, rng), dtype=dtype)
        )
        self.register_buffer(
            "eta_minus", torch.as_tensor(config.eta_minus.sample(s, rng), dtype=dtype)
        )
        self.register_buffer("row_target", None)
        if config.normalize:
            if initial_weight is None:
                raise ValueError("STDP normalize=True needs the initial weight for row targets")
            target = torch.zeros(mask.shape[0], dtype=dtype)
            target.index_add_(0, post, initial_weight[post, pre].abs().to(dtype))
            self.row_target = target

    @property
    def num_synapses(self) -> int:
        return int(self.post_index.numel())

    def parameters_tuple(self) -> STDPParameters:
        return STDPParameters(
            self.post_index,
            self.pre_index,
            torch.exp(-1.0 / self.tau_plus_steps),
            torch.exp(-1.0 / self.tau_minus_steps),
            self.eta_plus,
            self.eta_minus,
        )

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> STDPState:
        dtype = dtype if dtype is not None else self.eta_plus.dtype
        z = torch.zeros(batch_size, self.num_synapses, device=device, dtype=dtype)
        return STDPState(z, z.clone())

    def step(
        self, pre: Tensor, post: Tensor, state: STDPState | None = None
    ) -> tuple[Tensor, STDPState]:
        with torch.no_grad():
            pre, post = pre.detach(), post.detach()
            if state is None:
                state = self.initial_state(pre.shape[0], pre.device, pre.dtype)
            return stdp_step(pre, post, state, self.parameters_tuple())

    def apply(self, weight: Tensor, dw: Tensor) -> None:
        """Add ``dw`` to ``weight`` (in place, no grad), with bounds and optional scaling."""
        apply_stdp_update(  # in place under no_grad: bumps the version counter caches watch
            weight,
            dw.to(weight.dtype),
            self.parameters_tuple(),
            self.config.w_min,
            self.config.w_max,
            None if self.row_target is None else self.row_target.to(weight.dtype),
        )

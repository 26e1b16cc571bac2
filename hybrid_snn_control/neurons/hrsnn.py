r"""Heterogeneous recurrent spiking layer (HRSNN; Chakraborty & Mukhopadhyay 2023).

A sparse recurrent population of :math:`N_E` excitatory and :math:`N_I` inhibitory LIF
neurons with an adaptive threshold, where each neuron :math:`i` has its own membrane and
threshold time constants :math:`\tau^m_i, \tau^\theta_i` (drawn from a
:class:`~hybrid_snn_control.neurons.heterogeneity.Distribution`, gamma by default), and
whose synapses can learn without labels by heterogeneous STDP
(:mod:`~hybrid_snn_control.neurons.stdp`). Per step (:math:`\Delta t = 1` step):

.. math::
    I_t = W^{in} x_t + W^{rec} z_{t-1} + b

    u_t = \alpha \odot v_{t-1} + (1 - \alpha) \odot I_t,
        \qquad \alpha_i = e^{-1/\tau^m_i}, \quad v_{t-1} = u_{t-1}(1 - z_{t-1})

    \theta_t = \theta_0 + \beta\, a_t, \qquad a_t = \rho \odot a_{t-1} + z_{t-1},
        \qquad \rho_i = e^{-1/\tau^\theta_i}

    z_t = H(u_t - \theta_t)

The membrane update is the exact exponential-Euler form of
:math:`\tau^m_i \dot u = -u + I`, so a neuron's time constant sets how long it
integrates, not how large its steady-state response is (with the unnormalized form
:math:`u = \alpha u + I` a long :math:`\tau` would also mean a higher gain, and a
heterogeneity comparison would mix the two). With :math:`\beta = 0` the threshold is
fixed.

Weights. The stored (raw) weights ``w_rec``, ``w_in`` are the synaptic strengths STDP
acts on; the effective weights are

.. math::
    W^{rec}_{ij} = g_{rec}\, c_j\, M^{rec}_{ij}\, w^{rec}_{ij}, \qquad
    W^{in}_{ij} = g_{in}\, M^{in}_{ij}\, w^{in}_{ij}

with connection masks :math:`M` (Bernoulli(p), no self-connections), gains
:math:`g = \text{scale}/\sqrt{p \cdot \text{fan-in}}`, and, under Dale's law,
:math:`c_j = +1` for excitatory and :math:`-\gamma_I` (``inhibition_gain``) for
inhibitory presynaptic neurons with raw weights kept in :math:`[w_{min} \ge 0, w_{max}]`
— so STDP changes a synapse's strength but never its sign. Without Dale's law
:math:`c_j = 1` and raw weights take either sign.

STDP runs on the recurrent synapses (and on the input synapses with
``stdp_input=True``); the presynaptic spike of a recurrent synapse is :math:`z_{t-1}`,
delivered at step :math:`t`. Traces are always tracked (so learning can be switched on
at any step with a correct history); weights change only while ``layer.plasticity``
is true, under ``torch.no_grad()``. A step with learning on changes the weights the
next step uses, so :meth:`HRSNN.forward` is exactly a loop of :meth:`HRSNN.step`.

State: :class:`HRSNNState` ``(v, z, a, rec_traces, in_traces)`` — membrane after reset,
last spikes, threshold adaptation for the next step (``[B, N]`` each) and the STDP
traces (``[B, S]``; ``S = 0`` where there is no plasticity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.base import Cell, check_sequence
from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.stdp import STDP, STDPConfig, STDPState
from hybrid_snn_control.neurons.surrogate import check_surrogate, spike


class HRSNNState(NamedTuple):
    v: Tensor  # membrane after reset [B, N]
    z: Tensor  # spikes of the last step [B, N]
    a: Tensor  # threshold adaptation for the next step [B, N]
    rec_traces: STDPState  # traces of the recurrent synapses [B, S_rec]
    in_traces: STDPState  # traces of the input synapses [B, S_in] (S_in = 0 if not plastic)


class HRSNNParameters(NamedTuple):
    w_in: Tensor  # effective input weight [N, input_size]
    w_rec: Tensor  # effective recurrent weight [N, N]
    bias: Tensor  # [N]
    alpha: Tensor  # membrane decay exp(-1/τ_m) [N]
    rho: Tensor  # threshold decay exp(-1/τ_θ) [N]
    threshold: Tensor  # θ_0 [N]
    beta: Tensor  # threshold adaptation strength [N]


@dataclass(frozen=True)
class HRSNNConfig:
    """Everything that defines an HRSNN layer; equal configs (same seed) build equal layers."""

    input_size: int
    num_neurons: int = 200
    excitatory_fraction: float = 0.8
    connection_prob: float = 0.1  # recurrent, per ordered pair (no self-connections)
    input_connection_prob: float = 0.2
    dale: bool = True
    input_scale: float = 1.0  # g_in * sqrt(p_in * input_size)
    recurrent_scale: float = 1.0  # g_rec * sqrt(p * N)
    inhibition_gain: float = 4.0  # γ_I: inhibitory strength relative to excitatory
    tau_mem_steps: Distribution = field(default_factory=lambda: Distribution("gamma", 20.0, 0.5))
    tau_thr_steps: Distribution = field(default_factory=lambda: Distribution("gamma", 50.0, 0.5))
    threshold: float = 1.0
    threshold_adaptation: float = 0.2  # β
    stdp: STDPConfig | None = field(default_factory=STDPConfig)
    stdp_input: bool = False
    surrogate: str = "rectangular"
    surrogate_scale: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.input_size >= 1, f"input_size must be >= 1, got {self.input_size}"),
            (self.num_neurons >= 2, f"num_neurons must be >= 2, got {self.num_neurons}"),
            (
                0.0 <= self.excitatory_fraction <= 1.0,
                f"excitatory_fraction must be in [0, 1], got {self.excitatory_fraction}",
            ),
            (
                0.0 < self.connection_prob <= 1.0,
                f"connection_prob must be in (0, 1], got {self.connection_prob}",
            ),
            (
                0.0 < self.input_connection_prob <= 1.0,
                f"input_connection_prob must be in (0, 1], got {self.input_connection_prob}",
            ),
            (self.inhibition_gain >= 0, "inhibition_gain must be >= 0"),
            (self.threshold > 0, f"threshold must be > 0, got {self.threshold}"),
            (self.threshold_adaptation >= 0, "threshold_adaptation must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.dale and self.stdp is not None and self.stdp.w_min < 0:
            raise ValueError(
                "with Dale's law the raw weights are strengths: STDP w_min must be >= 0, "
                f"got {self.stdp.w_min}"
            )
        check_surrogate(self.surrogate, self.surrogate_scale)

    @property
    def num_excitatory(self) -> int:
        return round(self.excitatory_fraction * self.num_neurons)


def hrsnn_dynamics(
    x: Tensor,
    v: Tensor,
    z: Tensor,
    a: Tensor,
    p: HRSNNParameters,
    surrogate: str,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """One neuron update; returns ``(spikes, membrane after reset, next adaptation)``."""
    current = x @ p.w_in.t() + z @ p.w_rec.t() + p.bias
    u = p.alpha * v + (1.0 - p.alpha) * current
    theta = p.threshold + p.beta * a
    z_new = spike(u - theta, surrogate, scale)
    return z_new, u * (1.0 - z_new), p.rho * a + z_new


def _weight_bounds(config: HRSNNConfig) -> tuple[float, float]:
    if config.stdp is not None:
        return config.stdp.w_min, config.stdp.w_max
    return (0.0, 1.0) if config.dale else (-1.0, 1.0)


class HRSNN(Cell):
    """Heterogeneous sparse E/I recurrent LIF layer with optional heterogeneous STDP.

    ``y, state = layer.step(x, state)`` with ``x [B, input_size]``;
    ``z_seq, state = layer(x_seq, state)`` with ``x_seq [T, B, input_size]``.
    Set ``layer.plasticity = True`` to let STDP change the weights while it runs
    (the policy node's ``online_plasticity``); it is off after construction.
    ``layer.plasticity_rate`` scales every update (the learning rates η±) without
    redrawing them, e.g. a faster online adaptation than the STDP phase used.
    """

    def __init__(self, config: HRSNNConfig) -> None:
        super().__init__()
        self.config = config
        self.input_size = config.input_size
        self.hidden_size = config.num_neurons
        self.surrogate = config.surrogate
        self.surrogate_scale = check_surrogate(config.surrogate, config.surrogate_scale)
        self.plasticity = False
        self.plasticity_rate = 1.0
        n, n_in = config.num_neurons, config.input_size
        dtype = torch.get_default_dtype()
        rng = np.random.default_rng(config.seed)

        # Connectivity: Bernoulli masks, no autapses.
        rec_mask = rng.random((n, n)) < config.connection_prob
        np.fill_diagonal(rec_mask, False)
        in_mask = rng.random((n, n_in)) < config.input_connection_prob
        w_lo, w_hi = _weight_bounds(config)
        raw_lo = w_lo if not config.dale else max(w_lo, 0.0)
        w_rec = rng.uniform(raw_lo, w_hi, size=(n, n)) * rec_mask
        w_in = rng.uniform(raw_lo, w_hi, size=(n, n_in)) * in_mask
        excitatory = np.arange(n) < config.num_excitatory
        col_scale = (
            np.where(excitatory, 1.0, -config.inhibition_gain) if config.dale else np.ones(n)
        )

        self.register_buffer("rec_mask", torch.as_tensor(rec_mask))
        self.register_buffer("in_mask", torch.as_tensor(in_mask))
        self.register_buffer("excitatory", torch.as_tensor(excitatory))
        self.register_buffer("col_scale", torch.as_tensor(col_scale, dtype=dtype))
        self.w_rec = nn.Parameter(torch.as_tensor(w_rec, dtype=dtype))
        self.w_in = nn.Parameter(torch.as_tensor(w_in, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(n, dtype=dtype))
        self.rec_gain = config.recurrent_scale / math.sqrt(max(config.connection_prob * n, 1.0))
        self.in_gain = config.input_scale / math.sqrt(max(config.input_connection_prob * n_in, 1.0))

        # Heterogeneous neurons: per-neuron time constants (in steps).
        tau_mem = config.tau_mem_steps.sample(n, rng)
        tau_thr = config.tau_thr_steps.sample(n, rng)
        self.register_buffer("tau_mem_steps", torch.as_tensor(tau_mem, dtype=dtype))
        self.register_buffer("tau_thr_steps", torch.as_tensor(tau_thr, dtype=dtype))
        self.register_buffer("threshold", torch.full((n,), config.threshold, dtype=dtype))
        self.register_buffer("beta", torch.full((n,), config.threshold_adaptation, dtype=dtype))

        # Heterogeneous STDP (drawn after the neurons so neuron draws do not depend on it).
        self.stdp_rec: STDP | None = None
        self.stdp_in: STDP | None = None
        if config.stdp is not None:
            self.stdp_rec = STDP(self.rec_mask, config.stdp, rng, self.w_rec.detach())
            if config.stdp_input:
                self.stdp_in = STDP(self.in_mask, config.stdp, rng, self.w_in.detach())

        self.register_buffer("fan_out_rec", self.rec_mask.sum(0))  # per presynaptic neuron
        self.register_buffer("fan_out_in", self.in_mask.sum(0))  # per input channel

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{c.input_size}, {c.num_neurons} (E {c.num_excitatory}), p={c.connection_prob}, "
            f"dale={c.dale}, tau_mem={c.tau_mem_steps}, stdp={'on' if c.stdp else 'off'}"
        )

    # -- parameters ---------------------------------------------------------------------
    def effective_weights(self) -> tuple[Tensor, Tensor]:
        """``(W_in, W_rec)`` as the neurons see them (masked, gained, signed)."""
        w_rec = self.rec_gain * self.w_rec * self.rec_mask * self.col_scale
        w_in = self.in_gain * self.w_in * self.in_mask
        return w_in, w_rec

    def parameters_tuple(self) -> HRSNNParameters:
        w_in, w_rec = self.effective_weights()
        return HRSNNParameters(
            w_in,
            w_rec,
            self.bias,
            torch.exp(-1.0 / self.tau_mem_steps),
            torch.exp(-1.0 / self.tau_thr_steps),
            self.threshold,
            self.beta,
        )

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.w_in, 1), (self.w_rec, 1)]

    # -- state --------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> HRSNNState:
        dtype = dtype if dtype is not None else self.w_rec.dtype
        device = device if device is not None else self.w_rec.device
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        empty = torch.zeros(batch_size, 0, device=device, dtype=dtype)
        rec = (
            self.stdp_rec.initial_state(batch_size, device, dtype)
            if self.stdp_rec is not None
            else STDPState(empty, empty.clone())
        )
        inp = (
            self.stdp_in.initial_state(batch_size, device, dtype)
            if self.stdp_in is not None
            else STDPState(empty.clone(), empty.clone())
        )
        return HRSNNState(z, z.clone(), z.clone(), rec, inp)

    # -- dynamics -----------------------------------------------------------------------
    def step(
        self, x: Tensor, state: HRSNNState | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, HRSNNState]:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"HRSNN.step expects x of shape [B, {self.input_size}], got {tuple(x.shape)}"
            )
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        return self._step(x, state, self._step_parameters(), mask)

    def _step_parameters(self) -> HRSNNParameters:
        """Parameters for one step; reused between inference steps until a tensor changes.

        A control loop calls :meth:`step` once per tick; rebuilding the masked effective
        weights each time costs more than the step itself. The cache key is each source
        tensor's identity and in-place version counter (STDP and optimizers bump it), and
        nothing is cached while autograd records (a graph cannot be reused across steps).
        """
        if torch.is_grad_enabled():
            return self.parameters_tuple()
        sources = (
            self.w_in,
            self.w_rec,
            self.bias,
            self.in_mask,
            self.rec_mask,
            self.col_scale,
            self.tau_mem_steps,
            self.tau_thr_steps,
            self.threshold,
            self.beta,
        )
        versions = tuple(t._version for t in sources)
        cached = getattr(self, "_parameter_cache", None)
        if (
            cached is None
            or any(a is not b for a, b in zip(cached[0], sources))
            or cached[1] != versions
            or cached[2] != (self.rec_gain, self.in_gain)
        ):
            cached = (sources, versions, (self.rec_gain, self.in_gain), self.parameters_tuple())
            self._parameter_cache = cached
        return cached[3]

    def _step(
        self, x: Tensor, state: HRSNNState, p: HRSNNParameters, mask: Tensor | None
    ) -> tuple[Tensor, HRSNNState]:
        z, v, a = hrsnn_dynamics(
            x, state.v, state.z, state.a, p, self.surrogate, self.surrogate_scale
        )
        if mask is not None:
            z, v, a = z * mask, v * mask, a * mask
        rec_traces, in_traces = state.rec_traces, state.in_traces
        if self.stdp_rec is not None:
            dw, rec_traces = self.stdp_rec.step(state.z, z, rec_traces)
            if self.plasticity:
                self.stdp_rec.apply(self.w_rec, self._scaled(dw))
        if self.stdp_in is not None:
            dw, in_traces = self.stdp_in.step(x, z, in_traces)
            if self.plasticity:
                self.stdp_in.apply(self.w_in, self._scaled(dw))
        return z, HRSNNState(v, z, a, rec_traces, in_traces)

    def _scaled(self, dw: Tensor) -> Tensor:
        return dw if self.plasticity_rate == 1.0 else dw * self.plasticity_rate

    def forward(
        self, x_seq: Tensor, state: HRSNNState | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, HRSNNState]:
        check_sequence(x_seq)
        if x_seq.dim() != 3 or x_seq.shape[2] != self.input_size:
            raise ValueError(
                f"HRSNN expects x_seq of shape [T, B, {self.input_size}], got {tuple(x_seq.shape)}"
            )
        if state is None:
            state = self.initial_state(x_seq.shape[1], x_seq.device, x_seq.dtype)
        learning = self.plasticity and self.stdp_rec is not None
        p = None if learning else self.parameters_tuple()  # weights fixed: build once
        outputs = []
        for t in range(x_seq.shape[0]):
            z, state = self._step(x_seq[t], state, self.parameters_tuple() if learning else p, mask)
            outputs.append(z)
        return torch.stack(outputs), state

    # -- accounting / monitoring --------------------------------------------------------
    def synaptic_operations(self, x_seq: Tensor, z_seq: Tensor) -> dict[str, float]:
        """Accumulate-only synaptic operations per sample for a run (DESIGN §9).

        Input: each event (count) × its fan-out; recurrent: each spike × its fan-out.
        """
        batch = x_seq.shape[1]
        x_count = x_seq.detach().abs().sum(dim=(0, 1))
        z_count = z_seq.detach().sum(dim=(0, 1))
        syn_in = float((x_count * self.fan_out_in.to(x_count.dtype)).sum()) / batch
        syn_rec = float((z_count * self.fan_out_rec.to(z_count.dtype)).sum()) / batch
        return {
            "synops_input": syn_in,
            "synops_recurrent": syn_rec,
            "synops_total": syn_in + syn_rec,
            "firing_rate": float(z_seq.detach().mean()),
        }

    def weight_norms(self) -> dict[str, float]:
        """L2 norms of the raw weights and their number of synapses (for node status)."""
        with torch.no_grad():
            return {
                "w_rec_norm": float(self.w_rec.norm()),
                "w_in_norm": float(self.w_in.norm()),
                "num_rec_synapses": int(self.rec_mask.sum()),
                "num_in_synapses": int(self.in_mask.sum()),
            }

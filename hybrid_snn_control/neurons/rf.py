r"""Resonate-and-fire neurons as a diagonal complex state-space layer (S5-RF, Huber et al. 2025).

.. math::
    \lambda_k = -e^{a_k} + i\,\omega_k, \qquad \bar\lambda_k = e^{\lambda_k \Delta_k}

    z_t = \bar\lambda \odot z_{t-1} + \Delta \odot B x_t \qquad \text{(Dirac discretization)}

    o_t = H(\mathrm{Re}\, z_t - \theta), \qquad \text{no reset}

Init: Re λ = −0.5, Im λ = the eigenvalues of the normal part of the HiPPO-LegS matrix
(:func:`hippo_legs_imag`), log Δ ~ U[log 0.004, log 0.1], θ = 1; multi-Gaussian surrogate;
B ~ N(0, 1/in) with row k scaled by |λ_k| (so each mode's gain starts near 1).
Trainable: a, ω, log Δ, B (complex, stored as real and imaginary halves of one linear map).

Because z is linear and time-invariant, a whole sequence is the prefix sum
:math:`z_t = \bar\lambda^{t+1} z_{-1} + \sum_{s \le t} \bar\lambda^{t-s} u_s`, computed by a
Hillis–Steele parallel (associative) scan in ⌈log2 T⌉ full-tensor steps
(:func:`diagonal_linear_scan`); the spikes then follow elementwise. The step path runs the
recurrence in real arithmetic (export-friendly: no complex tensors in ``step``).

State: :class:`RFState` ``(z_re, z_im)``, each ``[B, N]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from hybrid_snn_control.neurons.base import Cell, as_unit_vector, check_sequence
from hybrid_snn_control.neurons.fused import fused_enabled
from hybrid_snn_control.neurons.surrogate import check_surrogate, spike


class RFState(NamedTuple):
    z_re: Tensor
    z_im: Tensor


def hippo_legs_imag(n: int) -> Tensor:
    """Imaginary parts of the eigenvalues of the normal part of HiPPO-LegS (S4D/S5 init).

    ``S = A + P Pᵀ`` with ``A`` the LegS matrix and ``P_k = sqrt(k + 1/2)`` is
    ``-1/2 I`` plus a skew-symmetric matrix; its eigenvalues are ``-1/2 + i ω``.
    Returned sorted by |ω| so that truncating keeps the slow modes.
    """
    k = torch.arange(n, dtype=torch.float64)
    p = torch.sqrt(1.0 + 2.0 * k)
    a = -(torch.tril(p[:, None] * p[None, :]) - torch.diag(k))
    q = torch.sqrt(k + 0.5)
    s = a + q[:, None] * q[None, :]
    skew = s - torch.diag(torch.diagonal(s))
    omega = torch.linalg.eigvalsh(-1j * skew.to(torch.complex128)).real
    return omega[omega.abs().argsort()]


def diagonal_linear_scan(decay: Tensor, inputs: Tensor, z0: Tensor, log_decay: Tensor) -> Tensor:
    """Prefix scan of ``z_t = decay * z_{t-1} + inputs_t`` over dim 0 (complex tensors).

    ``decay``/``log_decay``: ``[N]`` (``decay = exp(log_decay)``); ``inputs``: ``[T, B, N]``;
    ``z0``: ``[B, N]``. Hillis–Steele: after step k, element t holds the sum over the last
    2^k inputs; the combine ``(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2)`` is associative,
    with ``a = decay^(2^k)`` shared by all t because the system is time-invariant.
    """
    T = inputs.shape[0]
    b = inputs
    time = torch.arange(T, device=inputs.device)
    offset = 1
    while offset < T:
        # b_t += decay^offset * b_{t-offset} for t >= offset. A roll plus a time mask instead
        # of slicing: slice/cat backward allocate and zero-fill full-size tensors.
        power = torch.exp(log_decay * offset)[None, None, :]
        keep = (time >= offset).to(log_decay.real.dtype)[:, None, None]
        b = b + (power * keep) * torch.roll(b, offset, dims=0)
        offset *= 2
    steps = torch.arange(1, T + 1, device=inputs.device, dtype=log_decay.real.dtype)
    powers = torch.exp(steps[:, None] * log_decay[None, :])  # decay^(t+1), [T, N]
    return b + powers[:, None, :] * z0[None]


class _LinearScan(torch.autograd.Function):
    """The scan without an autograd graph inside; backward is the adjoint recursion
    ``G_t = g_t + conj(λ̄) G_{t+1}`` computed by the same parallel scan run in reverse time.
    (Recording the forward scan kept ~2 full complex tensors per level alive and was ~2x
    slower; this has no second derivative: ``once_differentiable``.)"""

    @staticmethod
    def forward(ctx, log_decay: Tensor, inputs: Tensor, z0: Tensor) -> Tensor:  # type: ignore[override]
        z = diagonal_linear_scan(torch.exp(log_decay), inputs, z0, log_decay)
        ctx.save_for_backward(log_decay, z, z0)
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z: Tensor):  # type: ignore[override]
        log_decay, z, z0 = ctx.saved_tensors
        log_adj = log_decay.conj()
        g = diagonal_linear_scan(
            torch.exp(log_adj), grad_z.flip(0), torch.zeros_like(z0), log_adj
        ).flip(0)  # dL/du_t
        decay_conj = torch.exp(log_adj)
        z_prev = torch.cat([z0.unsqueeze(0), z[:-1]], 0)
        # z_t = d z_{t-1} + u_t: dL/dd = sum_t G_t conj(z_{t-1}); d = exp(log d) adds conj(d)
        g_decay = (g * z_prev.conj()).sum((0, 1))
        g_log_decay = g_decay * decay_conj
        if not log_decay.is_complex():
            g_log_decay = g_log_decay.real
        return g_log_decay, g, decay_conj * g[0]


def linear_scan(log_decay: Tensor, inputs: Tensor, z0: Tensor) -> Tensor:
    """``z_t = exp(log_decay) z_{t-1} + inputs_t`` over dim 0 by the parallel scan, with the
    hand-written adjoint (:class:`_LinearScan`) unless ``neurons.fused.unfused()`` is on."""
    if fused_enabled():
        return _LinearScan.apply(log_decay, inputs, z0)
    return diagonal_linear_scan(torch.exp(log_decay), inputs, z0, log_decay)


class RF(Cell):
    """Resonate-and-fire population (see module docstring)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        real_init: float = -0.5,
        dt_min: float = 0.004,
        dt_max: float = 0.1,
        threshold: float | Tensor = 1.0,
        surrogate: str = "multi_gaussian",
        surrogate_scale: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if real_init >= 0:
            raise ValueError(f"real_init must be < 0 for a stable system, got {real_init}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.surrogate = surrogate
        self.surrogate_scale = check_surrogate(surrogate, surrogate_scale)
        dtype = torch.get_default_dtype()
        self.log_neg_real = nn.Parameter(torch.full((hidden_size,), math.log(-real_init)))
        self.imag = nn.Parameter(hippo_legs_imag(hidden_size).to(dtype))
        u = torch.rand(hidden_size, generator=generator)
        self.log_dt = nn.Parameter(math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min)))
        # Rows [0, N): Re B, rows [N, 2N): Im B. Row k is scaled by |λ_k| so that every
        # mode's gain |Δ / (1 - λ̄)| ≈ 1/|λ| starts near 1 and fast resonators can fire too.
        self.fc = nn.Linear(input_size, 2 * hidden_size, bias=False)
        with torch.no_grad():
            self.fc.weight.normal_(0.0, 1.0 / math.sqrt(input_size), generator=generator)
            gain = torch.sqrt(torch.tensor(real_init) ** 2 + self.imag.detach() ** 2)
            self.fc.weight.mul_(gain.repeat(2)[:, None])
        self.register_buffer("threshold", as_unit_vector(threshold, hidden_size, "threshold"))

    def initial_state(self, batch_size, device=None, dtype=None) -> RFState:
        dtype = dtype if dtype is not None else self.fc.weight.dtype
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return RFState(z, z.clone())

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.fc.weight, 2)]

    def discretized(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(Re λ̄, Im λ̄, Δ)`` for the current parameters."""
        dt = torch.exp(self.log_dt)
        mag = torch.exp(-torch.exp(self.log_neg_real) * dt)
        angle = self.imag * dt
        return mag * torch.cos(angle), mag * torch.sin(angle), dt

    def step(self, x: Tensor, state: RFState | None = None, mask: Tensor | None = None):
        d_re, d_im, dt = self.discretized()
        bx_re, bx_im = self.fc(x).chunk(2, dim=-1)
        if state is None:
            z_re = dt * bx_re
            z_im = dt * bx_im
        else:
            z_re = d_re * state.z_re - d_im * state.z_im + dt * bx_re
            z_im = d_re * state.z_im + d_im * state.z_re + dt * bx_im
        o = spike(z_re - self.threshold, self.surrogate, self.surrogate_scale)
        if mask is not None:
            o, z_re, z_im = o * mask, z_re * mask, z_im * mask
        return o, RFState(z_re, z_im)

    def forward(self, x_seq: Tensor, state: RFState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        dt = torch.exp(self.log_dt)
        log_decay = torch.complex(-torch.exp(self.log_neg_real) * dt, self.imag * dt)
        bx_re, bx_im = self.fc(x_seq).chunk(2, dim=-1)
        inputs = torch.complex(dt * bx_re, dt * bx_im)
        if state is None:
            z0 = torch.zeros_like(inputs[0])
        else:
            z0 = torch.complex(state.z_re, state.z_im)
        z = linear_scan(log_decay, inputs, z0)
        o_seq = spike(z.real - self.threshold, self.surrogate, self.surrogate_scale)
        z_re, z_im = z[-1].real, z[-1].imag
        if mask is not None:
            o_seq, z_re, z_im = o_seq * mask, z_re * mask, z_im * mask
        return o_seq, RFState(z_re, z_im)

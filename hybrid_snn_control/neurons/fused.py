r"""Fused whole-sequence LIF / ALIF kernels: forward loop without autograd, hand-written BPTT.

Training speed comes from not recording ~6 autograd nodes per time step: the forward
loop (TorchScript) stores the pre-reset membranes, and the backward loop applies the
chain rule of the LIF/ALIF recursion directly (equations in :mod:`.lif`, :mod:`.alif`):

.. math::
    \bar g^o_t = g^o_t + g^a_{t+1} - g^v_t\,\partial_o v_t, \qquad
    g^s_t = \sigma'(u_t - \theta_t)\,\bar g^o_t

    g^u_t = g^s_t + g^v_t\,\partial_u v_t\big|_o, \qquad g^v_{t-1} = \lambda\, g^u_t,
    \qquad g^a_t = \rho\, g^a_{t+1} + \beta\, g^\theta_t

with :math:`\partial_o v = -u` (zero reset) or :math:`-\theta` (subtract reset), dropped
when the reset is detached. Forward numbers are bit-identical to the step path.

The fused path has no second derivative (the saved membranes carry no graph), so
Hessian–vector products must use the autograd path: ``with unfused(): ...`` (done by
:mod:`hybrid_snn_control.hybrid.selection`). ``set_fused(False)`` turns it off globally.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import torch
from torch import Tensor

_ENABLED = [True]


def fused_enabled() -> bool:
    return _ENABLED[0]


def set_fused(enabled: bool) -> None:
    """Globally enable/disable the fused sequence kernels (they are on by default)."""
    _ENABLED[0] = bool(enabled)


@contextmanager
def unfused():
    """Use the plain autograd path inside the block (needed for double backward)."""
    previous = _ENABLED[0]
    _ENABLED[0] = False
    try:
        yield
    finally:
        _ENABLED[0] = previous


def _script(fn):
    """``torch.jit.script`` (measured faster than the Python loop on CPU); torch 2.13 marks
    it deprecated, which is not actionable for users of this module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(fn)


@_script
def _surrogate(x: Tensor, name: str, scale: float) -> Tensor:
    if name == "rectangular":
        return (x.abs() < scale).to(x.dtype) / (2.0 * scale)
    if name == "sigmoid":
        s = torch.sigmoid(scale * x)
        return scale * s * (1.0 - s)
    if name == "arctan":
        return (0.5 * scale) / (1.0 + (0.5 * math.pi * scale * x) ** 2)
    wide = 2.0 * (6.0 * scale) ** 2
    return (
        1.15 * torch.exp(-(x**2) / (2.0 * scale**2))
        - 0.15 * torch.exp(-((x - scale) ** 2) / wide)
        - 0.15 * torch.exp(-((x + scale) ** 2) / wide)
    )


@_script
def _forward(
    currents: Tensor,
    v: Tensor,
    a: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    subtract: bool,
    adaptive: bool,
):
    # Only what truly recurs is in the loop; spikes are recomputed from u afterwards.
    u_seq = torch.empty_like(currents)
    a_seq = torch.empty_like(currents) if adaptive else currents[:0]
    for t in range(currents.shape[0]):
        u = torch.addcmul(currents[t], decay, v)
        if adaptive:
            a_seq[t] = a
            theta = torch.addcmul(threshold, beta, a)
        else:
            theta = threshold
        fired = u - theta > 0
        if subtract:
            v = u - fired.to(u.dtype) * theta
        else:
            v = u.masked_fill(fired, 0.0)
        if adaptive:
            a = rho * a + fired.to(u.dtype)
        u_seq[t] = u
    if adaptive:
        o_seq = (u_seq - torch.addcmul(threshold, beta, a_seq) > 0).to(u_seq.dtype)
    else:
        o_seq = (u_seq - threshold > 0).to(u_seq.dtype)
    return o_seq, v, a, u_seq, a_seq


@_script
def _backward(
    go_seq: Tensor,
    gv: Tensor,
    ga: Tensor,
    v0: Tensor,
    u_seq: Tensor,
    o_seq: Tensor,
    a_seq: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    subtract: bool,
    adaptive: bool,
    detach_reset: bool,
    name: str,
    scale: float,
):
    if adaptive:
        theta = torch.addcmul(threshold, beta, a_seq)
    else:
        theta = threshold.expand_as(u_seq)
    g = _surrogate(u_seq - theta, name, scale)
    # dv/du with o held fixed, and dv/do, for each reset rule.
    if subtract:
        dv_du = torch.ones_like(u_seq)
        dv_do = theta
        v_after = u_seq - o_seq * theta
    else:
        dv_du = 1.0 - o_seq
        dv_do = u_seq
        v_after = u_seq * dv_du
    v_prev = torch.cat([v0.unsqueeze(0), v_after[:-1]], 0)
    T = u_seq.shape[0]
    gu_seq = torch.empty_like(u_seq)
    g_threshold = torch.zeros_like(threshold)
    g_beta = torch.zeros_like(threshold)
    g_rho = torch.zeros_like(threshold)
    if not adaptive:
        # gu_t = g_t go_t + gv_t (dv_du - g_t dv_do): two ops per step in the loop.
        coeff = dv_du if detach_reset else dv_du - g * dv_do
        direct = g * go_seq
        gv_last = gv
        for t in range(T - 1, -1, -1):
            gu = torch.addcmul(direct[t], gv, coeff[t])
            gu_seq[t] = gu
            gv = gu * decay
        gv_seq = torch.cat([gu_seq[1:] * decay, gv_last.unsqueeze(0)], 0)
        if detach_reset:
            gs = direct
        else:
            gs = g * (go_seq - gv_seq * dv_do)
        g_theta = -gs - gv_seq * o_seq if subtract else -gs
        g_threshold = g_theta.sum((0, 1))
    else:
        g_theta_seq = torch.empty_like(u_seq)
        ga_next_seq = torch.empty_like(u_seq)
        for t in range(T - 1, -1, -1):
            go = go_seq[t] + ga
            if not detach_reset:
                go = go - gv * dv_do[t]
            gs = g[t] * go
            gu = gs + gv * dv_du[t]
            g_theta = -gs - gv * o_seq[t] if subtract else -gs
            ga_next_seq[t] = ga
            ga = torch.addcmul(ga * rho, g_theta, beta)
            gu_seq[t] = gu
            g_theta_seq[t] = g_theta
            gv = gu * decay
        g_threshold = g_theta_seq.sum((0, 1))
        g_beta = (g_theta_seq * a_seq).sum((0, 1))
        g_rho = (ga_next_seq * a_seq).sum((0, 1))
    g_decay = (gu_seq * v_prev).sum((0, 1))
    return gu_seq, gv, ga, g_decay, g_threshold, g_beta, g_rho


class FusedALIF(torch.autograd.Function):
    """Whole-sequence LIF (``adaptive=False``) / ALIF recursion with hand-written backward."""

    @staticmethod
    def forward(ctx, currents, v0, a0, decay, threshold, beta, rho, config):  # type: ignore[override]
        subtract, adaptive = config[0], config[1]
        o_seq, v, a, u_seq, a_seq = _forward(
            currents, v0, a0, decay, threshold, beta, rho, subtract, adaptive
        )
        ctx.save_for_backward(v0, u_seq, o_seq, a_seq, decay, threshold, beta, rho)
        ctx.config = config
        return o_seq, v, a

    @staticmethod
    def backward(ctx, go_seq, gv, ga):  # type: ignore[override]
        v0, u_seq, o_seq, a_seq, decay, threshold, beta, rho = ctx.saved_tensors
        subtract, adaptive, detach_reset, name, scale = ctx.config
        gv = torch.zeros_like(u_seq[0]) if gv is None else gv
        ga = torch.zeros_like(u_seq[0]) if ga is None else ga
        go_seq = torch.zeros_like(u_seq) if go_seq is None else go_seq
        g_cur, g_v0, g_a0, g_decay, g_thr, g_beta, g_rho = _backward(
            go_seq.contiguous(),
            gv,
            ga,
            v0,
            u_seq,
            o_seq,
            a_seq,
            decay,
            threshold,
            beta,
            rho,
            subtract,
            adaptive,
            detach_reset,
            name,
            scale,
        )
        return g_cur, g_v0, g_a0 if adaptive else None, g_decay, g_thr, g_beta, g_rho, None


def fused_alif(
    currents: Tensor,
    v0: Tensor,
    a0: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    subtract: bool,
    adaptive: bool,
    detach_reset: bool,
    surrogate: str,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(o_seq, v_T, a_T)`` for a whole sequence of input currents ``[T, B, N]``."""
    config = (subtract, adaptive, detach_reset, surrogate, scale)
    return FusedALIF.apply(currents, v0, a0, decay, threshold, beta, rho, config)

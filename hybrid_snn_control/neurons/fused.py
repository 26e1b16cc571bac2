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
    # Everything per step on [B, N] tensors (cache-resident); full-sequence temporaries
    # were measured 3-5x slower on CPU (memory traffic and page faults on fresh buffers).
    u_seq = torch.empty_like(currents)
    o_seq = torch.empty_like(currents)
    a_seq = torch.empty_like(currents) if adaptive else currents[:0]
    for t in range(currents.shape[0]):
        u = torch.addcmul(currents[t], decay, v)
        if adaptive:
            a_seq[t] = a
            theta = torch.addcmul(threshold, beta, a)
        else:
            theta = threshold
        fired = u - theta > 0
        o = fired.to(u.dtype)
        if subtract:
            v = u - o * theta
        else:
            v = u.masked_fill(fired, 0.0)
        if adaptive:
            a = torch.addcmul(o, rho, a)
        u_seq[t] = u
        o_seq[t] = o
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
    T = u_seq.shape[0]
    g_current = torch.empty_like(u_seq)
    g_decay = torch.zeros_like(v0)
    g_threshold = torch.zeros_like(v0)
    g_beta = torch.zeros_like(v0)
    g_rho = torch.zeros_like(v0)
    for t in range(T - 1, -1, -1):
        u = u_seq[t]
        o = o_seq[t]
        if adaptive:
            a_t = a_seq[t]
            theta = torch.addcmul(threshold, beta, a_t)
        else:
            a_t = u  # unused
            theta = threshold.expand_as(u)
        go = go_seq[t]
        if adaptive:
            go = go + ga
        if not detach_reset:  # the reset gate's own gradient: dv/do = -u (zero) or -theta
            go = torch.addcmul(go, gv, theta if subtract else u, value=-1.0)
        gs = _surrogate(u - theta, name, scale) * go
        if subtract:
            gu = gs + gv
            g_theta = torch.addcmul(-gs, gv, o, value=-1.0)
        else:
            gu = torch.addcmul(gs + gv, gv, o, value=-1.0)  # gs + gv (1 - o)
            g_theta = -gs
        g_threshold.add_(g_theta)
        if adaptive:
            g_beta.addcmul_(g_theta, a_t)
            g_rho.addcmul_(ga, a_t)
            ga = torch.addcmul(ga * rho, g_theta, beta)
        if t > 0:
            u_prev = u_seq[t - 1]
            o_prev = o_seq[t - 1]
            if subtract:
                if adaptive:
                    theta_prev = torch.addcmul(threshold, beta, a_seq[t - 1])
                else:
                    theta_prev = threshold.expand_as(u)
                v_prev = torch.addcmul(u_prev, o_prev, theta_prev, value=-1.0)
            else:
                v_prev = torch.addcmul(u_prev, u_prev, o_prev, value=-1.0)
        else:
            v_prev = v0
        g_decay.addcmul_(gu, v_prev)
        g_current[t] = gu
        gv = gu * decay
    return g_current, gv, ga, g_decay.sum(0), g_threshold.sum(0), g_beta.sum(0), g_rho.sum(0)


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

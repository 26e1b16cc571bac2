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
when the reset is detached. Forward spikes and membranes equal the step path's. The sums
for λ, θ, β, ρ are only formed for those that require grad (by default none do).
:func:`leaky_integrate` is the same idea for a constant-decay linear filter (the hybrid
network's spike-rate trace).

The fused path has no second derivative (the saved membranes carry no graph; its
backward is ``once_differentiable``, so double backward raises instead of returning wrong
numbers). Hessian–vector products must use the autograd path: ``with unfused(): ...``
(done by :mod:`hybrid_snn_control.hybrid.selection`). ``set_fused(False)`` turns it off globally.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

import hybrid_snn_control.neurons.fused_compiled as fused_compiled

_ENABLED = [True]
#: Time steps per vectorized block in the LIF backward: small enough to stay in cache.
#: With one op per step in the loop, 16 measured fastest of 4/8/16/32/64 for B = 32 at
#: both N = 64 and N = 256 on the dev CPU (N = 256: 1.81 ms vs 1.85 at 8, 5.9 at 64).
BACKWARD_CHUNK = 16


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
    # Overwrites x (every caller passes a fresh ``u - theta``). The rectangular window is
    # compared in place into x's dtype: a bool result cast with ``.to`` was measured ~3x
    # slower than the whole in-place chain on CPU.
    if name == "rectangular":
        return x.abs_().lt_(scale).div_(2.0 * scale)
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
def _reset(u: Tensor, o: Tensor, threshold: Tensor, subtract: bool) -> Tensor:
    return u - o * threshold if subtract else u - u * o


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
):
    # ALIF only (LIF runs `_forward_lif`). Everything per step on [B, N] tensors
    # (cache-resident); full-sequence temporaries were measured 3-5x slower on CPU
    # (memory traffic and page faults on fresh buffers).
    # Per-step op count is what costs at these sizes: five ops, each writing straight into
    # its saved buffer (as in `_forward_lif`; a_seq[t] is the adaptation *before* step t,
    # a_seq[T] the final one). Pre-reset membranes are recomputed in the backward.
    T = currents.shape[0]
    u_seq = torch.empty_like(currents)
    o_seq = torch.empty_like(currents)
    a_seq = a.new_empty([T + 1, a.shape[0], a.shape[1]])  # states are [B, N]
    a_seq[0] = a
    for t in range(T):
        u = u_seq[t]
        o = o_seq[t]
        torch.addcmul(currents[t], decay, v, out=u)
        theta = torch.addcmul(threshold, beta, a_seq[t])
        torch.gt(u, theta, out=o)  # == (u - theta > 0) for finite floats, as `spike`
        if subtract:
            v = torch.addcmul(u, o, theta, value=-1.0)
        else:
            v = torch.addcmul(u, u, o, value=-1.0)
        torch.addcmul(o, rho, a_seq[t], out=a_seq[t + 1])
    return u_seq, o_seq, v, a_seq


@_script
def _backward(
    go_seq: Tensor,
    gv: Tensor,
    ga: Tensor,
    u_seq: Tensor,
    o_seq: Tensor,
    a_seq: Tensor,
    v0: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    subtract: bool,
    detach_reset: bool,
    name: str,
    scale: float,
    chunk: int,
    need_decay: bool,
    need_threshold: bool,
    need_beta: bool,
    need_rho: bool,
):
    # ALIF only. As `_backward_lif`: chunks of `chunk` steps; per chunk the surrogate,
    # thresholds and reset coefficients are vectorized, the loop runs only the coupled
    # recursions of gv and ga (7 ops per step, written straight into buffers), and the
    # parameter sums are vectorized afterwards from the recorded gs, gv, ga (skipped when
    # not trained).
    # Buffers: slot k + 1 of gv_buf / ga_buf holds what arrives at the chunk's step k.
    T = u_seq.shape[0]
    g_current = torch.empty_like(u_seq)
    gs_buf = torch.empty_like(u_seq[:chunk])
    gv_buf = gv.new_empty([chunk + 1, gv.shape[0], gv.shape[1]])
    ga_buf = torch.empty_like(gv_buf)
    g_decay = torch.zeros_like(gv)
    g_threshold = torch.zeros_like(gv)
    g_beta = torch.zeros_like(gv)
    g_rho = torch.zeros_like(gv)
    end = T
    while end > 0:
        start = max(0, end - chunk)
        K = end - start
        u = u_seq[start:end]
        o = o_seq[start:end]
        a_c = a_seq[start:end]
        theta = torch.addcmul(threshold, beta, a_c)
        g = _surrogate(u - theta, name, scale)
        dvdo = theta if subtract else u  # -dv/do of the reset gate
        keep = u if subtract else 1.0 - o  # zero reset: dv/du = 1 - o (unused for subtract)
        gv_buf[K] = gv
        ga_buf[K] = ga
        for k in range(K - 1, -1, -1):
            t = start + k
            gv = gv_buf[k + 1]
            go = go_seq[t] + ga_buf[k + 1]
            if not detach_reset:
                go = torch.addcmul(go, gv, dvdo[k], value=-1.0)
            gs = torch.mul(g[k], go, out=gs_buf[k])
            if subtract:
                gu = torch.add(gs, gv, out=g_current[t])
            else:
                gu = torch.addcmul(gs, gv, keep[k], out=g_current[t])
            # ga_{t-1} = rho ga_t - beta (gs + gv o [subtract])
            g_theta = torch.addcmul(gs, gv, o[k]) if subtract else gs
            torch.addcmul(ga_buf[k + 1] * rho, g_theta, beta, value=-1.0, out=ga_buf[k])
            torch.mul(gu, decay, out=gv_buf[k])
        gv = gv_buf[0]
        ga = ga_buf[0]
        gs = gs_buf[:K]
        if need_threshold or need_beta:  # dL/d theta_t = -(gs + gv o [subtract])
            minus_g_theta = torch.addcmul(gs, gv_buf[1 : K + 1], o) if subtract else gs
            if need_threshold:
                g_threshold -= minus_g_theta.sum(0)
            if need_beta:
                g_beta -= (minus_g_theta * a_c).sum(0)
        if need_rho:  # a_{t+1} = rho a_t + o_t
            g_rho += (ga_buf[1 : K + 1] * a_c).sum(0)
        if need_decay:  # dL/d(decay) = sum_t gu_t v_{t-1}
            gu = g_current[start:end]
            v_after = _reset(u, o, theta, subtract)
            if K > 1:
                g_decay += (gu[1:] * v_after[:-1]).sum(0)
            if start > 0:
                theta_b = torch.addcmul(threshold, beta, a_seq[start - 1])
                v_before = _reset(u_seq[start - 1], o_seq[start - 1], theta_b, subtract)
            else:
                v_before = v0
            g_decay.addcmul_(gu[0], v_before)
        end = start
    return g_current, gv, ga, g_decay.sum(0), g_threshold.sum(0), g_beta.sum(0), g_rho.sum(0)


@_script
def _forward_lif(currents: Tensor, v: Tensor, decay: Tensor, threshold: Tensor, subtract: bool):
    # Three ops per step, each writing straight into its saved buffer (out=): the membrane,
    # the spikes as a float comparison (a bool result cast to float was measured ~10x
    # slower than the comparison itself on CPU), and the reset. o is 0 or 1, so
    # u - u * o and u - o * theta are exact: the same numbers as the step path.
    u_seq = torch.empty_like(currents)
    o_seq = torch.empty_like(currents)
    for t in range(currents.shape[0]):
        u = u_seq[t]
        o = o_seq[t]
        torch.addcmul(currents[t], decay, v, out=u)
        # (u > threshold) == (u - threshold > 0) for finite floats: same spikes as `spike`
        torch.gt(u, threshold, out=o)
        if subtract:
            v = torch.addcmul(u, o, threshold, value=-1.0)
        else:
            v = torch.addcmul(u, u, o, value=-1.0)
    return u_seq, o_seq, v


@_script
def _backward_lif(
    go_seq: Tensor,
    gv: Tensor,
    u_seq: Tensor,
    o_seq: Tensor,
    v0: Tensor,
    decay: Tensor,
    threshold: Tensor,
    subtract: bool,
    detach_reset: bool,
    name: str,
    scale: float,
    chunk: int,
    need_decay: bool,
    need_threshold: bool,
):
    # gu_t = g_t go_t + gv_t c_t with gv_t = decay * gu_{t+1}, i.e.
    # gu_t = g_t go_t + gu_{t+1} (decay c_t): everything but this one linear recursion is
    # vectorized over chunks of `chunk` steps (cache-sized blocks); the loop is one fused
    # multiply-add per step, written straight into the gradient buffer. gv is formed
    # (vectorized) only where a parameter sum needs it. The decay / threshold sums are
    # skipped when those are not trained (the default: they were ~1/3 of the backward's
    # vectorized work).
    T = u_seq.shape[0]
    g_current = torch.empty_like(u_seq)
    gv_buf = torch.empty_like(u_seq[:chunk])
    g_decay = torch.zeros_like(v0)
    g_threshold = torch.zeros_like(v0)
    end = T
    while end > 0:
        start = max(0, end - chunk)
        K = end - start
        u = u_seq[start:end]
        o = o_seq[start:end]
        g = _surrogate(u - threshold, name, scale)
        direct = g * go_seq[start:end]
        if detach_reset:
            coeff = torch.ones_like(u) if subtract else 1.0 - o
            g_dvdo = coeff  # unused
        else:
            g_dvdo = g * threshold if subtract else g * u  # g * (-dv/do)
            coeff = 1.0 - g_dvdo if subtract else (1.0 - o) - g_dvdo
        gu = g_current[start:end]
        torch.addcmul(direct[K - 1], gv, coeff[K - 1], out=gu[K - 1])
        if K > 1:
            coeff_decay = coeff[: K - 1] * decay
            for k in range(K - 2, -1, -1):
                torch.addcmul(direct[k], gu[k + 1], coeff_decay[k], out=gu[k])
        gv_chunk = gv_buf[:K]
        if need_threshold or need_decay:  # gv_t = decay gu_{t+1}; the last one came in
            torch.mul(gu[1:], decay, out=gv_chunk[: K - 1])
            gv_chunk[K - 1] = gv
        gv = gu[0] * decay
        if need_threshold:
            # dL/d(u - theta) = g (go - gv dv/do) = direct - gv g dv/do
            gs = direct if detach_reset else torch.addcmul(direct, gv_chunk, g_dvdo, value=-1.0)
            g_threshold -= gs.sum(0)
            if subtract:
                g_threshold -= (gv_chunk * o).sum(0)
        if need_decay:
            # dL/d(decay) = sum_t gu_t v_{t-1}; v_t of this chunk's rows, shifted by one
            v_after = _reset(u, o, threshold, subtract)
            if K > 1:
                g_decay += (gu[1:] * v_after[:-1]).sum(0)
            if start > 0:
                v_before = _reset(u_seq[start - 1], o_seq[start - 1], threshold, subtract)
            else:
                v_before = v0
            g_decay.addcmul_(gu[0], v_before)
        end = start
    return g_current, gv, g_decay.sum(0), g_threshold.sum(0)


class FusedLIF(torch.autograd.Function):
    """Whole-sequence LIF recursion: 3 ops per step forward, a chunked
    backward with one fused multiply-add per step; on CPU without trained decay/threshold,
    the compiled loops of :mod:`.fused_compiled` (same spikes, ~2.6x less time)."""

    @staticmethod
    def forward(ctx, currents, v0, decay, threshold, config):  # type: ignore[override]
        subtract = config[0]
        # compiled loops on CPU (fused_compiled) unless a decay/threshold sum is needed
        ctx.compiled = fused_compiled.supports(currents) and not any(ctx.needs_input_grad[2:4])
        if ctx.compiled:
            u_seq, o_seq, v = fused_compiled.lif_forward(currents, v0, decay, threshold, subtract)
        else:
            u_seq, o_seq, v = _forward_lif(currents, v0, decay, threshold, subtract)
        ctx.save_for_backward(u_seq, o_seq, v0, decay, threshold)
        ctx.config = config
        return o_seq, v

    @staticmethod
    @once_differentiable
    def backward(ctx, go_seq, gv):  # type: ignore[override]
        u_seq, o_seq, v0, decay, threshold = ctx.saved_tensors
        subtract, detach_reset, name, scale = ctx.config
        gv = torch.zeros_like(v0) if gv is None else gv
        # Any strides (e.g. the expanded ones of a sum, or a slice of a cat's gradient): the
        # kernel reads it once per chunk, a contiguous copy would be one more full pass.
        go_seq = torch.zeros_like(u_seq) if go_seq is None else go_seq
        if ctx.compiled:
            g_cur, g_v0 = fused_compiled.lif_backward(
                go_seq, gv, u_seq, o_seq, decay, threshold, subtract, detach_reset, name, scale
            )
            return g_cur, g_v0, None, None, None
        g_cur, g_v0, g_decay, g_thr = _backward_lif(
            go_seq,
            gv,
            u_seq,
            o_seq,
            v0,
            decay,
            threshold,
            subtract,
            detach_reset,
            name,
            scale,
            BACKWARD_CHUNK,
            ctx.needs_input_grad[2],
            ctx.needs_input_grad[3],
        )
        need = ctx.needs_input_grad
        return g_cur, g_v0, g_decay if need[2] else None, g_thr if need[3] else None, None


class FusedALIF(torch.autograd.Function):
    """Whole-sequence ALIF recursion with hand-written backward: 5 ops per step forward,
    a chunked backward with 7 per step (LIF runs :class:`FusedLIF`, see :func:`fused_alif`);
    on CPU without trained parameters, the compiled loops of :mod:`.fused_compiled`."""

    @staticmethod
    def forward(ctx, currents, v0, a0, decay, threshold, beta, rho, config):  # type: ignore[override]
        # compiled loops on CPU (fused_compiled) unless a parameter's gradient sum is needed
        ctx.compiled = fused_compiled.supports(currents) and not any(ctx.needs_input_grad[3:7])
        kernel = fused_compiled.alif_forward if ctx.compiled else _forward
        u_seq, o_seq, v, a_seq = kernel(currents, v0, a0, decay, threshold, beta, rho, config[0])
        ctx.save_for_backward(u_seq, o_seq, a_seq, v0, decay, threshold, beta, rho)
        ctx.config = config
        return o_seq, v, a_seq[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, go_seq, gv, ga):  # type: ignore[override]
        u_seq, o_seq, a_seq, v0, decay, threshold, beta, rho = ctx.saved_tensors
        subtract, detach_reset, name, scale = ctx.config
        need = ctx.needs_input_grad
        gv = torch.zeros_like(u_seq[0]) if gv is None else gv
        ga = torch.zeros_like(u_seq[0]) if ga is None else ga
        go_seq = torch.zeros_like(u_seq) if go_seq is None else go_seq
        if ctx.compiled:
            g_cur, g_v0, g_a0 = fused_compiled.alif_backward(
                go_seq, gv, ga, u_seq, o_seq, a_seq, decay, threshold, beta, rho, subtract,
                detach_reset, name, scale,
            )  # fmt: skip
            return g_cur, g_v0, g_a0, None, None, None, None, None
        g_cur, g_v0, g_a0, g_decay, g_thr, g_beta, g_rho = _backward(
            go_seq,
            gv,
            ga,
            u_seq,
            o_seq,
            a_seq,
            v0,
            decay,
            threshold,
            beta,
            rho,
            subtract,
            detach_reset,
            name,
            scale,
            BACKWARD_CHUNK,
            need[3],
            need[4],
            need[5],
            need[6],
        )
        return (
            g_cur,
            g_v0,
            g_a0,
            g_decay if need[3] else None,
            g_thr if need[4] else None,
            g_beta if need[5] else None,
            g_rho if need[6] else None,
            None,
        )


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
    if not adaptive:
        o_seq, v = FusedLIF.apply(
            currents, v0, decay, threshold, (subtract, detach_reset, surrogate, scale)
        )
        return o_seq, v, a0
    config = (subtract, detach_reset, surrogate, scale)
    return FusedALIF.apply(currents, v0, a0, decay, threshold, beta, rho, config)


@_script
def _leaky_forward(inputs: Tensor, z: Tensor, decay: float) -> Tensor:
    out = torch.empty_like(inputs)
    for t in range(inputs.shape[0]):
        z = torch.add(inputs[t], z, alpha=decay, out=out[t])
    return out


@_script
def _leaky_backward(grad: Tensor, decay: float) -> Tensor:
    g_inputs = torch.empty_like(grad)
    g = torch.zeros_like(grad[0])
    for t in range(grad.shape[0] - 1, -1, -1):
        g = torch.add(grad[t], g, alpha=decay, out=g_inputs[t])
    return g_inputs


class FusedLeakyIntegrator(torch.autograd.Function):
    """``z_t = decay * z_{t-1} + inputs_t`` with a constant ``decay``: one op per step each
    way (the adjoint ``G_t = g_t + decay * G_{t+1}``). For the spike-rate trace, where the
    parallel scan's ~7 full-tensor levels per direction cost more than the loop."""

    @staticmethod
    def forward(ctx, inputs, z0, decay):  # type: ignore[override]
        ctx.decay = decay
        return _leaky_forward(inputs, z0, decay)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        g_inputs = _leaky_backward(grad, ctx.decay)
        return g_inputs, ctx.decay * g_inputs[0], None


def leaky_integrate(inputs: Tensor, z0: Tensor, decay: float) -> Tensor:
    """All ``z_t = decay * z_{t-1} + inputs_t`` for ``inputs [T, B, N]``, ``z0 [B, N]``;
    ``decay`` is a Python float (not trained). Equal to the parallel scan of
    :func:`hybrid_snn_control.neurons.rf.linear_scan` up to rounding (other summation order)."""
    return FusedLeakyIntegrator.apply(inputs, z0, float(decay))


@_script
def _stc_forward(
    currents: Tensor,
    v: Tensor,
    a: Tensor,
    o: Tensor,
    w_hv: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    mask: Tensor,
    subtract: bool,
    adaptive: bool,
):
    n = currents.shape[2]
    u_seq = torch.empty_like(currents)
    o_seq = torch.empty_like(currents)
    v_prev = torch.empty_like(currents)
    o_prev = torch.empty_like(currents)
    a_seq = torch.empty_like(currents) if adaptive else currents[:0]
    th_seq = torch.empty(
        currents.shape[0], currents.shape[1], 2 * n, dtype=currents.dtype, device=currents.device
    )
    w_t = w_hv.t()
    for t in range(currents.shape[0]):
        o_in = o * mask
        o_prev[t] = o_in
        v_prev[t] = v
        th = torch.tanh(torch.mm(o_in, w_t))
        th_seq[t] = th
        u = (1.0 + th[:, :n]) * decay * v + (1.0 + th[:, n:]) * currents[t]
        u_seq[t] = u
        if adaptive:
            a_seq[t] = a
            theta = threshold + beta * a
        else:
            theta = threshold.expand_as(u)
        fired = (u - theta > 0).to(u.dtype)
        v = u - fired * theta if subtract else u - u * fired
        if adaptive:
            a = rho * a + fired
        o = fired * mask
        v = v * mask
        a = a * mask
        o_seq[t] = o
    return o_seq, v, a, u_seq, th_seq, v_prev, o_prev, a_seq


@_script
def _stc_backward(
    go_seq: Tensor,
    gv: Tensor,
    ga: Tensor,
    go_state: Tensor,
    currents: Tensor,
    u_seq: Tensor,
    th_seq: Tensor,
    v_prev: Tensor,
    o_prev: Tensor,
    a_seq: Tensor,
    w_hv: Tensor,
    decay: Tensor,
    threshold: Tensor,
    beta: Tensor,
    rho: Tensor,
    mask: Tensor,
    subtract: bool,
    adaptive: bool,
    name: str,
    scale: float,
):
    T = u_seq.shape[0]
    n = u_seq.shape[2]
    g_current = torch.empty_like(u_seq)
    gz_seq = torch.empty_like(th_seq)
    g_decay = torch.zeros_like(gv)
    g_threshold = torch.zeros_like(gv)
    g_beta = torch.zeros_like(gv)
    g_o = go_state  # dL/d(o_t) arriving from later steps and the final state
    for t in range(T - 1, -1, -1):
        u = u_seq[t]
        go = (go_seq[t] + g_o) * mask  # outputs were masked
        gvv = gv * mask
        if adaptive:
            a_t = a_seq[t]
            theta = threshold + beta * a_t
            gaa = ga * mask
            go = go + gaa
        else:
            a_t = u  # unused
            theta = threshold.expand_as(u)
            gaa = ga
        fired = (u - theta > 0).to(u.dtype)
        go = go - gvv * (theta if subtract else u)
        gs = _surrogate(u - theta, name, scale) * go
        if subtract:
            gu = gs + gvv
            g_theta = -gs - gvv * fired
        else:
            gu = gs + gvv * (1.0 - fired)
            g_theta = -gs
        g_threshold = g_threshold + g_theta
        if adaptive:
            g_beta = g_beta + g_theta * a_t
            ga = gaa * rho + g_theta * beta
        else:
            ga = ga * mask
        th = th_seq[t]
        m_h = 1.0 + th[:, :n]
        vp = v_prev[t]
        g_current[t] = gu * (1.0 + th[:, n:])
        g_decay = g_decay + gu * m_h * vp
        gv = gu * m_h * decay
        gm = torch.cat([gu * decay * vp, gu * currents[t]], 1)
        gz = gm * (1.0 - th * th)
        gz_seq[t] = gz
        g_o = torch.mm(gz, w_hv) * mask
    g_w = torch.mm(gz_seq.reshape(-1, 2 * n).t(), o_prev.reshape(-1, n))
    return (g_current, gv, ga, g_o, g_w, g_decay.sum(0), g_threshold.sum(0), g_beta.sum(0))


class FusedSTC(torch.autograd.Function):
    """Whole-sequence dense STC (LIF or ALIF base, no GroupNorm) with hand-written BPTT,
    including the recurrent path through the modulating pathways ``W_h, W_v``."""

    @staticmethod
    def forward(ctx, currents, v0, a0, o0, w_hv, decay, threshold, beta, rho, mask, config):  # type: ignore[override]
        subtract, adaptive = config[0], config[1]
        o_seq, v, a, u_seq, th_seq, v_prev, o_prev, a_seq = _stc_forward(
            currents, v0, a0, o0, w_hv, decay, threshold, beta, rho, mask, subtract, adaptive
        )
        ctx.save_for_backward(
            currents, u_seq, th_seq, v_prev, o_prev, a_seq, w_hv, decay, threshold, beta, rho, mask
        )
        ctx.config = config
        return o_seq, v, a, o_seq[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, go_seq, gv, ga, go_state):  # type: ignore[override]
        (
            currents,
            u_seq,
            th_seq,
            v_prev,
            o_prev,
            a_seq,
            w_hv,
            decay,
            threshold,
            beta,
            rho,
            mask,
        ) = ctx.saved_tensors
        subtract, adaptive, name, scale = ctx.config
        zeros = torch.zeros_like(u_seq[0])
        grads = _stc_backward(
            zeros.expand_as(u_seq).contiguous() if go_seq is None else go_seq.contiguous(),
            zeros if gv is None else gv,
            zeros if ga is None else ga,
            zeros if go_state is None else go_state,
            currents,
            u_seq,
            th_seq,
            v_prev,
            o_prev,
            a_seq,
            w_hv,
            decay,
            threshold,
            beta,
            rho,
            mask,
            subtract,
            adaptive,
            name,
            scale,
        )
        g_cur, g_v0, g_a0, g_o0, g_w, g_decay, g_thr, g_beta = grads
        return g_cur, g_v0, g_a0, g_o0, g_w, g_decay, g_thr, g_beta, None, None, None

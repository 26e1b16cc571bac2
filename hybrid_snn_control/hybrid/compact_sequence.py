r"""Compact training forward: a whole sequence through only the units active at one ratio.

:meth:`HybridNetwork.forward` runs all ``2N`` candidates of every layer and masks them,
so at r = 0.5 half of the recurrent and half of the spiking work is thrown away — and
training pays for it twice (forward and BPTT). Ratio sampling uses one ratio per sequence
call, so the active units are known before the sequence runs. Here they are gathered
from the full parameters with ``index_select`` (differentiable: the gradients land in the
full tensors, inactive rows and columns get exact zeros as in the masked path) and run
through the same kernels as the masked path, just smaller: the spiking units through the
fused LIF/ALIF kernel of :mod:`hybrid_snn_control.neurons.fused`, the recurrent units
through one ``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh`` call. The spike-rate
trace runs as a sequential loop (:func:`~hybrid_snn_control.neurons.fused.leaky_integrate`)
instead of the masked path's parallel scan: the same filter, ~4x cheaper at these sizes.

.. code-block:: python

    out, state = compact_forward(net, x_seq, state, masks)        # == net(x_seq, state, masks)
    out, state, feats = compact_forward_with_features(net, x_seq)  # == net.forward_with_features

Same numbers as the masked path up to rounding (outputs, final state, gradients; tested
in float64 to 1e-12 and float32 to 1e-5 — matmuls over fewer zero terms and the trace's
summation order differ in the last bits): units are independent except through the
gathered weights, and the masked path multiplies everything an inactive unit touches by
0. The returned state is a full-size :class:`HybridState` (zeros for inactive units), so
it plugs in wherever ``net.forward``'s does. With ``masks=None`` the masks are chosen exactly as
``net.forward`` chooses them (a sampled ratio in training with ``ratio_sampling``, drawn
from the same RNG; otherwise the network's current masks).

Supported: spiking ``lif`` / ``alif`` (either reset, any surrogate, with or without bias)
and recurrent ``lstm`` / ``gru`` / ``rnn``. Anything else falls back to ``net``'s own
masked path (same numbers, no speed-up): another spiking cell, the fused kernels turned
off (``neurons.fused.unfused()``: double backward for Hessian selection), masks that are
not one ``[N]`` vector per population, or a layer without any active unit. Masks are
taken as 0/1 (every mask the network makes is). Finding the active units reads the
masks on the host (one sync per layer on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybrid_snn_control.hybrid.layer import HybridLayer, HybridLayerState, HybridState
from hybrid_snn_control.neurons.fused import fused_enabled, leaky_integrate

SPIKING = ("lif", "alif")
_SEQUENCE_FNS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}
RECURRENT = tuple(_SEQUENCE_FNS)


def compact_supported(net: nn.Module) -> bool:
    """Whether :func:`compact_forward` runs compactly for ``net`` (else it falls back)."""
    return net.spiking_cell in SPIKING and net.recurrent_cell in RECURRENT and fused_enabled()


def compact_forward(
    net: nn.Module,
    x_seq: Tensor,
    state: HybridState | None = None,
    masks: Sequence[Tensor] | None = None,
) -> tuple[Tensor, HybridState]:
    """``net(x_seq, state, masks)`` computing only the active units (module docstring)."""
    out, state, _ = compact_forward_with_features(net, x_seq, state, masks)
    return out, state


def compact_forward_with_features(
    net: nn.Module,
    x_seq: Tensor,
    state: HybridState | None = None,
    masks: Sequence[Tensor] | None = None,
) -> tuple[Tensor, HybridState, Tensor]:
    """``net.forward_with_features`` computing only the active units: also the full-size
    readout input ``[T, B, 2N]`` (what auxiliary heads read)."""
    if x_seq.dim() != 3 or x_seq.shape[-1] != net.input_size:
        raise ValueError(f"x_seq must be [T, B, {net.input_size}], got {tuple(x_seq.shape)}")
    if masks is None:  # the same choice (and the same RNG draw) as net.forward
        if net.training and net.ratio_sampling:
            masks = net.masks_for_ratio(net.sample_ratio())
        else:
            masks = net.masks()
    active = _active_units(net, masks) if compact_supported(net) else None
    if active is None:  # the masked path itself (not forward: that may come back here)
        out, state, _, features = net._sequence(x_seq, state, masks, keep_activity=False)
        return out, state, features
    if state is None:
        state = net.initial_state(x_seq.shape[1], x_seq.device, x_seq.dtype)
    h, cols, layer_states = x_seq, None, []
    for i, (s_idx, r_idx) in enumerate(active):
        spikes, y, ls = _layer(net.layers[i], h, cols, state.layers[i], s_idx, r_idx)
        layer_states.append(ls)
        if i + 1 < net.num_layers:  # the next layer reads the compact output
            h = torch.cat([spikes, y], dim=-1)
            cols = torch.cat([s_idx, net.hidden_size + r_idx])  # its positions in the full 2N
    traces = _rate_traces(net, spikes, state.trace.index_select(1, s_idx))
    features = _features(traces, y, s_idx, r_idx, net.hidden_size)
    out = features if net.readout is None else net.readout(features)
    trace = _expand(traces[-1], s_idx, net.hidden_size)
    return out, HybridState(tuple(layer_states), trace), features


def _active_units(net: nn.Module, masks: Sequence[Tensor]) -> list | None:
    """Per layer ``(spiking_idx, recurrent_idx)`` (ascending), or None to fall back."""
    if len(masks) != 2 * net.num_layers:
        raise ValueError(f"need {2 * net.num_layers} masks, got {len(masks)}")
    if any(m.shape != (net.hidden_size,) for m in masks):
        return None
    active = [(_nonzero(masks[2 * i]), _nonzero(masks[2 * i + 1])) for i in range(net.num_layers)]
    if any(s.numel() + r.numel() == 0 for s, r in active):
        return None
    return active


def _nonzero(mask: Tensor) -> Tensor:
    return torch.nonzero(mask).flatten()


def _layer(
    layer: HybridLayer,
    h: Tensor,
    cols: Tensor | None,
    state: HybridLayerState,
    s_idx: Tensor,
    r_idx: Tensor,
) -> tuple[Tensor, Tensor, HybridLayerState]:
    """One layer on the active units: ``(spikes, recurrent outputs, full-size state)``.
    ``cols`` are the full-input columns that ``h`` holds (None: ``h`` is the full input)."""
    n = layer.hidden_size
    spikes, y = h.new_zeros(*h.shape[:2], 0), h.new_zeros(*h.shape[:2], 0)
    s_fields = [torch.zeros_like(f) for f in state.spiking]
    r_fields = [torch.zeros_like(f) for f in state.recurrent]
    if s_idx.numel():
        spikes, fields = _spiking(layer.spiking, h, cols, state.spiking, s_idx)
        s_fields = [_expand(f, s_idx, n) for f in fields]
    if r_idx.numel():
        y, fields = _recurrent(layer, h, cols, state.recurrent, r_idx)
        r_fields = [_expand(f, r_idx, n) for f in fields]
    s_state, r_state = type(state.spiking)(*s_fields), type(state.recurrent)(*r_fields)
    return spikes, y, HybridLayerState(s_state, r_state)


def _rows(weight: Tensor, rows: Tensor, cols: Tensor | None) -> Tensor:
    """``weight[rows][:, cols]`` by ``index_select`` (its backward scatters into the full
    tensor: zero gradient for every row and column not taken)."""
    w = weight.index_select(0, rows)
    return w if cols is None else w.index_select(1, cols)


def _spiking(spk, h: Tensor, cols: Tensor | None, state, s_idx: Tensor):
    """Active LIF/ALIF units over the sequence: ``(spikes [T, B, n_s], final fields)``,
    through the cell's own :meth:`~hybrid_snn_control.neurons.LIF.fused_sequence`."""
    bias = None if spk.fc.bias is None else spk.fc.bias.index_select(0, s_idx)
    currents = F.linear(h, _rows(spk.fc.weight, s_idx, cols), bias)
    active = type(state)(*(f.index_select(1, s_idx) for f in state))
    spikes, final = spk.fused_sequence(currents, active, s_idx)
    return spikes, tuple(final)


def _recurrent(layer: HybridLayer, h: Tensor, cols: Tensor | None, state, r_idx: Tensor):
    """Active LSTM/GRU/RNN units: one fused sequence call on the gathered weights (torch's
    gate-stacked layout: unit j owns rows ``g·N + j``). ``(outputs [T, B, n_r], fields)``."""
    rec = layer.recurrent
    gates = torch.arange(rec.gates, device=r_idx.device)[:, None] * rec.hidden_size
    rows = (gates + r_idx).flatten()
    weights = [_rows(rec.weight_ih, rows, cols), _rows(rec.weight_hh, rows, r_idx)]
    has_bias = rec.bias_ih is not None
    if has_bias:
        weights += [rec.bias_ih.index_select(0, rows), rec.bias_hh.index_select(0, rows)]
    h0 = state.h.index_select(1, r_idx)[None]
    args = (weights, has_bias, 1, 0.0, rec.training, False, False)
    if layer.recurrent_kind == "lstm":
        c0 = state.c.index_select(1, r_idx)[None]
        y, h_n, c_n = torch.lstm(h, (h0, c0), *args)
        return y, (h_n[0], c_n[0])
    y, h_n = _SEQUENCE_FNS[layer.recurrent_kind](h, h0, *args)
    return y, (h_n[0],)


def _rate_traces(net: nn.Module, spikes: Tensor, trace0: Tensor) -> Tensor:
    """The last layer's spike-rate traces of the active units: the masked path's filter
    (its parallel scan equals this loop up to rounding; the loop is ~4x cheaper here)."""
    if spikes.shape[-1] == 0:
        return spikes
    kappa = net.rate_decay
    return leaky_integrate((1.0 - kappa) * spikes, trace0, kappa)


def _features(traces: Tensor, y: Tensor, s_idx: Tensor, r_idx: Tensor, n: int) -> Tensor:
    """The full-size readout input ``[traces, recurrent outputs]`` (zeros where inactive)."""
    return _Columns.apply(2 * n, (s_idx, n + r_idx), traces, y)


def _expand(t: Tensor, idx: Tensor, n: int) -> Tensor:
    """``[..., n_active]`` → ``[..., n]`` with zeros for inactive units (differentiable)."""
    return _Columns.apply(n, (idx,), t)


class _Columns(torch.autograd.Function):
    """Compact parts placed at their columns of a zero ``[..., n]`` tensor; the backward is
    one gather per part (contiguous). In-place ``scatter_`` into zeros measured ~10x faster
    than ``index_copy`` along the last dim on CPU, but a chain of two ``scatter_`` makes
    autograd build a full-size gradient for the overwritten zeros (~1 ms at the bench's
    sizes), hence this Function."""

    @staticmethod
    def forward(ctx, n, indices, *parts):  # type: ignore[override]
        full = parts[0].new_zeros(*parts[0].shape[:-1], n)
        expanded = [idx.expand(part.shape) for idx, part in zip(indices, parts)]
        for idx, part in zip(expanded, parts):
            full.scatter_(-1, idx, part)
        ctx.indices = expanded
        return full

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return None, None, *(grad.gather(-1, idx) for idx in ctx.indices)

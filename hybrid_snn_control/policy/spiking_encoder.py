r"""Event-driven spiking conv front end: the encoder whose cost the events set.

The dense conv encoder (:class:`~.hybrid_policy.EventEncoder`) costs the same 110.6 k
MACs on every step whatever the scene does: 56 % of a 32 × 32 pursuit policy's step at
r = 0 and 92 % at r = 1, so the core's spiking ratio hardly moves the total.  Here every
layer is a strided 3 × 3 convolution feeding LIF neurons, and work is counted the way
event-driven hardware spends it:

.. math::
    s^0_t = 1[E_t > 0], \quad
    u^l_t = \lambda\, v^l_{t-1} + W^l * s^{l-1}_t, \quad
    s^l_t = H(u^l_t - \theta), \quad v^l_t = u^l_t (1 - s^l_t)

* input: a pixel × polarity that saw at least one event in the control step is one
  input spike (a refractory pixel); an empty scene costs nothing;
* **SynOps** of layer l: every spike of its input adds its weight column to the
  ``fan_out`` membranes it reaches (``out_channels`` × the 1, 2 or 4 output positions a
  stride-2 3 × 3 kernel maps it to; fewer at the border) — counted exactly per step from
  precomputed fan-out maps, not estimated;
* the output: the last layer's spikes averaged to a ``grid × grid`` map (one AC per spike
  into its bin, plus one multiply per output feature for the average).

Like the core, neuron state updates (leak, compare) are not counted as operations; the
convolutions have no bias (a bias would be a dense per-neuron input every step).  The
membranes are the encoder's state (explicit, flat ``[B, C·H·W]`` per layer, so an exported
graph carries them like the core's); the whole-sequence path runs the convolutions over
all steps at once and the fused LIF kernel over time, and gives the step path's numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybrid_snn_control.neurons.fused import fused_alif, fused_enabled
from hybrid_snn_control.neurons.lif import lif_dynamics
from hybrid_snn_control.policy.pooling import fixed_pool

__all__ = ["SpikingConvEncoder", "conv_fan_out"]

KERNEL, STRIDE, PADDING = 3, 2, 1


def conv_fan_out(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """Output positions of a stride-2, 3 × 3, padding-1 conv that read each input pixel
    ``[H_in, W_in]`` (1, 2 or 4 inside, fewer at the border): the transposed conv of ones."""
    h, w = in_hw
    oh, ow = out_hw
    span = lambda n: STRIDE * (n - 1) - 2 * PADDING + KERNEL  # noqa: E731 (transposed size)
    pad = (h - span(oh), w - span(ow))
    fan = F.conv_transpose2d(
        torch.ones(1, 1, oh, ow),
        torch.ones(1, 1, KERNEL, KERNEL),
        stride=STRIDE,
        padding=PADDING,
        output_padding=pad,
    )
    return fan[0, 0]


class SpikingConvEncoder(nn.Module):
    """Conv LIF layers on binarized events → pooled spike rates (module docstring).

    ``channels``: output channels per layer (e.g. ``[8, 16]``); ``decay`` λ and
    ``threshold`` θ are shared by every encoder neuron.  :attr:`macs` is the constant
    part of the cost (the pooling average), :meth:`step` / :meth:`forward` return the
    step's SynOps as well.
    """

    stateful = True

    def __init__(
        self,
        event_shape: tuple[int, int, int] | list[int],
        channels: list[int] | tuple[int, ...],
        grid: int,
        decay: float = 0.6,
        threshold: float = 0.5,
        surrogate: str = "rectangular",
        surrogate_scale: float = 0.5,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a spiking conv encoder needs at least one layer (channels)")
        c, h, w = (int(v) for v in event_shape)
        self.convs = nn.ModuleList()
        self.maps: list[tuple[int, int, int]] = []  # (C, H, W) of each LIF layer
        fan_outs = []
        for out_c in channels:
            oh, ow = (h + 1) // 2, (w + 1) // 2
            self.convs.append(nn.Conv2d(c, out_c, KERNEL, STRIDE, PADDING, bias=False))
            # SynOps per input spike at each input position: fan-out × output channels
            fan_outs.append(conv_fan_out((h, w), (oh, ow)) * out_c)
            self.maps.append((out_c, oh, ow))
            c, h, w = out_c, oh, ow
        for i, fan in enumerate(fan_outs):
            self.register_buffer(f"fan_out{i}", fan, persistent=False)
        g = min(grid, h, w)
        self.pool = fixed_pool((h, w), g)
        self.out_features = c * g * g
        self.macs = float(self.out_features)  # the average's one multiply per feature
        self.register_buffer("decay", torch.tensor(float(decay)), persistent=False)
        self.register_buffer("threshold", torch.tensor(float(threshold)), persistent=False)
        self.surrogate, self.surrogate_scale = surrogate, surrogate_scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights ``U(-θ, 2θ) / √C_in``.  Events are sparse (≈ 1 % of pixels per pursuit
        step): with PyTorch's default conv init one input spike moves a membrane by ≈ 0.2 θ,
        nothing reaches the second layer and the surrogate gradient (non-zero only near θ)
        is zero too — a dead encoder.  This init lets a single input spike fire a neuron
        with a fair chance (measured on pursuit events: ≈ 4 % / 23 % firing in the two
        layers) so training starts from a live front end."""
        theta = float(self.threshold)
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.uniform_(-theta, 2 * theta).div_(conv.in_channels**0.5)

    @property
    def state_sizes(self) -> list[int]:
        return [c * h * w for c, h, w in self.maps]

    def state_names(self) -> list[str]:
        return [f"encoder.layer{i}.v" for i in range(len(self.maps))]

    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple[Tensor, ...]:
        ref = self.convs[0].weight
        device = device if device is not None else ref.device
        dtype = dtype if dtype is not None else ref.dtype
        sizes = self.state_sizes
        return tuple(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in sizes)

    def _synops(self, layer: int, spikes: Tensor) -> Tensor:
        """Exact SynOps of ``spikes [N, C, H, W]`` entering conv ``layer``: ``[N]``, in
        float32 (a busy scene's ~10^5 overflows an fp16 sum)."""
        return (spikes.float() * getattr(self, f"fan_out{layer}").float()).sum(dim=(1, 2, 3))

    def step(self, events: Tensor, state: tuple[Tensor, ...] | None = None):
        """``events [B, C, H, W]`` → ``(features [B, F], state, synops [B])``: plain LIF
        ops (what an exported graph traces)."""
        feats, state, synops = self._run(events[None], state, self._lif_steps)
        return feats[0], state, synops[0]

    def forward(self, events: Tensor, state: tuple[Tensor, ...] | None = None):
        """``events [T, B, C, H, W]`` → ``(features [T, B, F], state, synops [T, B])``:
        the convolutions over all steps at once, the LIF recursion over time (the fused
        kernel unless :func:`~hybrid_snn_control.neurons.fused.unfused`)."""
        return self._run(events, state, self._lif_fused if fused_enabled() else self._lif_steps)

    def _run(self, events: Tensor, state, lif):
        T, B = events.shape[:2]
        x = (events > 0).to(self.convs[0].weight.dtype).flatten(0, 1)
        if state is None:
            state = self.initial_state(B, x.device, x.dtype)
        synops = x.new_zeros(T * B, dtype=torch.float32)
        new_state = []
        for i, (conv, v) in enumerate(zip(self.convs, state)):
            synops = synops + self._synops(i, x)
            o, v = lif(conv(x).reshape(T, B, -1), v)
            new_state.append(v)
            x = o.reshape(T * B, *self.maps[i])
        synops = synops + x.float().sum(dim=(1, 2, 3))  # one AC per spike into its pooling bin
        feats = self.pool(x).flatten(1).reshape(T, B, -1)
        return feats, tuple(new_state), synops.detach().reshape(T, B)

    def _lif_fused(self, currents: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        n = currents.shape[-1]
        decay, thr = self.decay.expand(n), self.threshold.expand(n)
        o_seq, v, _ = fused_alif(
            currents, v, v, decay, thr, thr, thr, False, False, False,
            self.surrogate, self.surrogate_scale,
        )  # fmt: skip
        return o_seq, v

    def _lif_steps(self, currents: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        out = []
        for t in range(currents.shape[0]):
            o, v = lif_dynamics(
                currents[t], v, self.decay, self.threshold, False,
                self.surrogate, self.surrogate_scale, False,
            )  # fmt: skip
            out.append(o)
        return torch.stack(out), v

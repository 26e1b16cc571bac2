"""Per-frame background subtraction of event counts: the policy's first op.

A global brightness change (mains flicker, a cloud) makes every pixel cross its threshold
in the same step, and a hot or badly biased sensor fires shot-noise events at random
pixels: both raise the count of *most* pixels, while a moving object raises a few.  So
each frame, per polarity, a floor is taken from the counts themselves and subtracted
(clamped at 0):

* ``quantile``: the count that only ``1 − q`` of the pixels exceed (the k-th largest count,
  k = ⌈(1 − q)·H·W⌉; a top-k, so it exports to ONNX as ``TopK``).  On a scene where fewer
  than that share of pixels fire — the nominal case, about 2 % of pixels at 32×32 — the
  floor is 0 and the frame passes unchanged, so a policy trained without the floor keeps
  its nominal behaviour.
* ``mean``: the mean count (cheaper; shifts nominal frames slightly).
* ``none``: off (policy files written before the option).

It uses nothing but the frame, so it runs in the deployed step and in every exported graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["FLOORS", "EventFloor"]

FLOORS = ("none", "mean", "quantile")


class EventFloor(nn.Module):
    """``events [..., C, H, W]`` (counts) → the counts above the frame's floor, per channel."""

    def __init__(self, mode: str, quantile: float, height: int, width: int) -> None:
        super().__init__()
        if mode not in FLOORS:
            raise ValueError(f"event_floor must be one of {', '.join(FLOORS)}, got {mode!r}")
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"event_floor_quantile must be in (0, 1), got {quantile}")
        self.mode = mode
        self.k = max(1, math.ceil((1.0 - quantile) * height * width))

    def floor(self, events: Tensor) -> Tensor:
        """The per-frame, per-channel floor, shaped ``[..., C, 1, 1]``."""
        flat = events.flatten(-2)
        if self.mode == "mean":
            level = flat.mean(dim=-1, keepdim=True)
        else:
            level = torch.topk(flat, self.k, dim=-1, sorted=True).values[..., -1:]
        return level.unsqueeze(-1)

    def forward(self, events: Tensor) -> Tensor:
        if self.mode == "none":
            return events
        return (events - self.floor(events)).clamp_min(0)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, k={self.k}"

"""Fixed-size average pooling that every exporter takes (shared by the event encoders)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AdaptivePoolMatmul", "fixed_pool"]


class AdaptivePoolMatmul(nn.Module):
    """``AdaptiveAvgPool2d`` for a fixed input size as two averaging matrices.

    Bin i of an adaptive pool covers rows ``[floor(i·H/g), ceil((i+1)·H/g))`` (torch's
    rule); ``P_h x P_wᵀ`` with those row weights is the same average, written with
    MatMul — which every exporter and TensorRT take, unlike an adaptive pool whose
    output size does not divide the input size.  The matrices follow from the shapes,
    so they are not stored in the state dict.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("pool_h", self._matrix(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer("pool_w", self._matrix(in_hw[1], out_hw[1]), persistent=False)

    @staticmethod
    def _matrix(n_in: int, n_out: int) -> Tensor:
        m = torch.zeros(n_out, n_in)
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.pool_h, x), self.pool_w.t())


def fixed_pool(in_hw: tuple[int, int], grid: int) -> nn.Module:
    """Average pooling of a known map size to ``grid × grid``: ``AvgPool2d`` when the size
    divides evenly, :class:`AdaptivePoolMatmul` otherwise (what exporters and TensorRT take;
    both equal ``AdaptiveAvgPool2d``)."""
    h, w = in_hw
    if h % grid == 0 and w % grid == 0:
        return nn.AvgPool2d((h // grid, w // grid))
    return AdaptivePoolMatmul((h, w), (grid, grid))

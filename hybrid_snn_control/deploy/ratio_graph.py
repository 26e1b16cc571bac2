r"""The spiking ratio as a graph input: per-unit thresholds that reproduce ``masks_for_ratio``.

The numpy side (thresholds, :func:`~hybrid_snn_control.hybrid.ratio.graph_ratio`) lives in
:mod:`hybrid_snn_control.hybrid.ratio`; this module is the torch graph code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hybrid_snn_control.hybrid.network import HybridNetwork
from hybrid_snn_control.hybrid.ratio import ratio_thresholds


def unit_thresholds(net: HybridNetwork) -> tuple[Tensor, Tensor]:
    """``[L, N]`` float32 thresholds: spiking unit on iff ``r >= s``; recurrent iff ``r < q``."""
    t = torch.from_numpy(ratio_thresholds(net.hidden_size))
    n = net.hidden_size
    s = torch.stack([t[layer.spiking_rank.long().cpu()] for layer in net.layers])
    q = torch.stack([t[n - 1 - layer.recurrent_rank.long().cpu()] for layer in net.layers])
    return s, q


def masks_from_thresholds(
    ratio: Tensor, spiking_thr: Tensor, recurrent_thr: Tensor, dtype: torch.dtype
) -> list[Tensor]:
    """Flat ``(s_0, r_0, s_1, r_1, ...)`` masks from a ``[1]`` float32 ratio (graph code)."""
    # The "& r > 0" / "| r <= 0" terms change nothing in float32; they keep r = 0 exact
    # where a backend demotes the thresholds to fp16 (TensorRT --fp16), which flushes the
    # k = 1 threshold (1.2e-38) to 0.
    zero = ratio <= 0.0
    s = ((ratio >= spiking_thr) & ~zero).to(dtype)  # [L, N]
    q = ((ratio < recurrent_thr) | zero).to(dtype)
    out: list[Tensor] = []
    for i in range(spiking_thr.shape[0]):
        out += [s[i], q[i]]
    return out

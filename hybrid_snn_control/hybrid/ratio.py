r"""The spiking ratio rule in plain Python / numpy (no torch: the ONNX Runtime path uses it).

:func:`unit_counts` is the rule every implementation follows; :func:`ratio_thresholds` and
:func:`graph_ratio` turn it into per-unit float32 thresholds for exported graphs, which
get the ratio as an input and must reproduce ``HybridNetwork.masks_for_ratio``.

The eager network turns a ratio r into ``n_s = unit_counts(r, N)[0]`` spiking units
(⌊r·N⌋, with ≥ 1 unit of each type for 0 < r < 1) and keeps the units whose stored rank
is below the count: spiking ``rank < n_s``, recurrent ``rank < N − n_s``. An exported
graph gets r as one float32 and must produce the same masks without Python.

Since ``n_s(r)`` is a non-decreasing step function, it is fully described by its N jump
points :math:`b_k = \min\{r : n_s(r) \ge k\}`, found here by bisection over float64
values *of unit_counts itself* (so the ⌊r·N + ε⌋ detail and the ≥ 1 rule come along
exactly). Let :math:`t_k = \mathrm{fl32}(b_k)` (nearest float32). Then

.. math::
    m^s_j = 1[r \ge t_{\mathrm{rank}^s_j + 1}], \qquad
    m^r_j = 1[r <  t_{N - \mathrm{rank}^r_j}]

one comparison per unit, nested by construction. Rounding to nearest (not up) is chosen
so that the ratios people type (0.7 → float32 0.69999999) give the float64 answer:
the graph is exact for every float64 r except those within half a float32 ulp
(≤ 3·10⁻⁸) *below* a jump point. :func:`graph_ratio` removes even that window: the
runtimes send, for a float64 r, a float32 value whose count equals the eager count.
Subnormal float32 thresholds are avoided (TensorRT flushes them to zero): r ≤ 1.2·10⁻³⁸
counts as 0.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def check_ratio(r: Any) -> float:
    """Validate a spiking ratio: a real number in [0, 1] (not bool, not NaN)."""
    if hasattr(r, "numel") and r.numel() == 1 and not r.dtype.is_complex:
        r = r.item()
    if isinstance(r, bool) or not isinstance(r, numbers.Real):
        raise ValueError(f"spiking_ratio must be a real number in [0, 1], got {r!r}")
    r = float(r)
    if math.isnan(r) or not 0.0 <= r <= 1.0:
        raise ValueError(f"spiking_ratio must be a real number in [0, 1], got {r!r}")
    return r


def unit_counts(r: float, hidden_size: int) -> tuple[int, int]:
    """``(n_spiking, n_recurrent)`` per layer for ratio r (≥ 1 of each when 0 < r < 1)."""
    r = check_ratio(r)
    n_s = math.floor(r * hidden_size + 1e-9)
    if 0.0 < r < 1.0 and hidden_size >= 2:
        n_s = min(max(n_s, 1), hidden_size - 1)
    return n_s, hidden_size - n_s


_TINY32 = float(np.finfo(np.float32).tiny)  # smallest normal float32


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _from_bits(b: int) -> float:
    return float(np.int64(b).view(np.float64))


def jump_points(hidden_size: int) -> np.ndarray:
    """float64 ``b_k`` (k = 1..N): the smallest r with ``unit_counts(r, N)[0] >= k``."""
    n = hidden_size
    out = np.empty(n, dtype=np.float64)
    for k in range(1, n + 1):
        # bisection on the ordered bit patterns of non-negative doubles in [0, 1]
        guess = (k - 1e-9) / n
        lo = _bits(max(0.0, guess - 1e-6))
        hi = _bits(min(1.0, guess + 1e-6))
        if unit_counts(_from_bits(lo), n)[0] >= k and lo > 0:
            lo = 0
        if unit_counts(_from_bits(hi), n)[0] < k:
            hi = _bits(1.0)
        # invariant: count(lo) < k <= count(hi)  (count(0) = 0 < k)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if unit_counts(_from_bits(mid), n)[0] >= k:
                hi = mid
            else:
                lo = mid
        out[k - 1] = _from_bits(hi)
    return out


def ratio_thresholds(hidden_size: int) -> np.ndarray:
    """float32 ``t_k`` (k = 1..N): the graph's count is ``#{k : r >= t_k}``."""
    t = jump_points(hidden_size).astype(np.float32)  # round to nearest
    t[t < _TINY32] = _TINY32
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"hidden_size {hidden_size} too large for float32 ratio thresholds")
    return t


def graph_count(r32: float, thresholds: np.ndarray) -> int:
    """Spiking units per layer that the graph computes for the float32 input ``r32``."""
    return int(np.count_nonzero(np.float32(r32) >= thresholds))


def graph_ratio(r: float, thresholds: np.ndarray) -> float:
    """A float32 value to feed the graph so that it selects exactly ``unit_counts(r, N)``.

    Usually ``float32(r)`` itself; only inside the half-ulp window below a jump point is it
    replaced by another float32 with the same count as the eager network.
    """
    r = check_ratio(r)
    n = len(thresholds)
    want = unit_counts(r, n)[0]
    r32 = float(np.float32(r))
    if graph_count(r32, thresholds) == want:
        return r32
    return 0.0 if want == 0 else float(thresholds[want - 1])

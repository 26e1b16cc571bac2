"""The ratio → mask rule inside exported graphs equals HybridNetwork.masks_for_ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybrid_snn_control.deploy.ratio_graph import masks_from_thresholds, unit_thresholds
from hybrid_snn_control.hybrid.network import HybridNetwork
from hybrid_snn_control.hybrid.ratio import (
    graph_count,
    graph_ratio,
    jump_points,
    ratio_thresholds,
    unit_counts,
)

SIZES = (1, 2, 3, 7, 10, 64, 100, 128, 333)


def _dense_grid() -> np.ndarray:
    grid = np.linspace(0.0, 1.0, 20001)  # step 5e-5
    decimals = np.round(np.arange(0, 1001) / 1000, 3)  # what people type: 0.7, 0.125 ...
    return np.unique(np.concatenate([grid, decimals]))


@pytest.mark.parametrize("n", SIZES)
def test_graph_count_equals_unit_counts_on_dense_grid(n):
    t = ratio_thresholds(n)
    rs = _dense_grid()
    # the graph receives float32(r); count = #(t <= r32), vectorized
    counts = (rs.astype(np.float32)[:, None] >= t[None, :]).sum(1)
    want = np.array([unit_counts(float(r), n)[0] for r in rs])
    np.testing.assert_array_equal(counts, want)


@pytest.mark.parametrize("n", SIZES)
def test_graph_ratio_is_exact_at_the_floating_point_edges(n):
    """Just below / at / above every k/N and every jump point, the float32 value the
    runtimes send gives exactly the eager count (incl. >= 1 of each type for 0 < r < 1)."""
    t = ratio_thresholds(n)
    b = jump_points(n)
    edges = [0.0, 1.0, 5e-324, 1e-300, 1e-40, 1e-12, 1 - 1e-16, math.nextafter(1.0, 0.0)]
    for k in range(n + 1):
        for c in (k / n, b[k - 1] if k else 0.0):
            x = c
            for _ in range(4):
                x = math.nextafter(x, -1.0)
            y = c
            for _ in range(4):
                y = math.nextafter(y, 2.0)
            edges += [c, x, y, c - 3e-8, c + 3e-8, c - 1e-9, c + 1e-9]
    for r in edges:
        if not 0.0 <= r <= 1.0:
            continue
        assert graph_count(graph_ratio(r, t), t) == unit_counts(r, n)[0], (n, r)


def test_one_unit_of_each_type_for_tiny_and_almost_one_ratio():
    t = ratio_thresholds(64)
    assert graph_count(graph_ratio(1e-6, t), t) == 1
    assert graph_count(graph_ratio(0.999999, t), t) == 63
    assert graph_count(graph_ratio(0.0, t), t) == 0
    assert graph_count(graph_ratio(1.0, t), t) == 64


def test_graph_ratio_rejects_bad_values():
    t = ratio_thresholds(8)
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            graph_ratio(bad, t)


def test_in_graph_masks_equal_masks_for_ratio_and_are_nested():
    torch.manual_seed(0)
    net = HybridNetwork(12, hidden_size=37, num_layers=3)
    gen = torch.Generator().manual_seed(1)
    net.apply_ranking([(torch.rand(37, generator=gen), torch.rand(37, generator=gen))] * 3)
    s_thr, r_thr = unit_thresholds(net)
    t = ratio_thresholds(37)
    prev = None
    for r in np.linspace(0.0, 1.0, 2001):
        ratio = torch.tensor([graph_ratio(float(r), t)], dtype=torch.float32)
        got = masks_from_thresholds(ratio, s_thr, r_thr, torch.float32)
        want = net.masks_for_ratio(float(r))
        assert len(got) == len(want) == 6
        for g, w in zip(got, want):
            assert torch.equal(g, w), r
        if prev is not None:  # spiking sets grow, recurrent sets shrink with r
            for i in range(0, 6, 2):
                assert bool((got[i] >= prev[i]).all()) and bool((got[i + 1] <= prev[i + 1]).all())
        prev = got


def test_masks_stay_exact_when_a_backend_demotes_thresholds_to_fp16():
    """TensorRT --fp16 may compare in half precision: r = 0 and r = 1 must still be the
    pure ends, and for N a power of two every k/N stays exact."""
    torch.manual_seed(0)
    net = HybridNetwork(6, hidden_size=64, num_layers=2)
    gen = torch.Generator().manual_seed(2)
    net.apply_ranking([(torch.rand(64, generator=gen), torch.rand(64, generator=gen))] * 2)
    s_thr, r_thr = (t.half() for t in unit_thresholds(net))
    for r in [0.0, 1.0, *(k / 64 for k in range(1, 64)), 0.3, 0.7]:
        got = masks_from_thresholds(torch.tensor([r]).half(), s_thr, r_thr, torch.float32)
        for g, w in zip(got, net.masks_for_ratio(r)):
            assert torch.equal(g, w), r

"""Heterogeneous pair-based STDP: hand-computed updates, bounds, per-synapse parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.stdp import STDP, STDPConfig


def make_rule(mask, tau_plus, tau_minus, eta_plus, eta_minus, w_min=0.0, w_max=1.0):
    """An STDP rule on ``mask`` with the given per-synapse values (in synapse-list order)."""
    const = Distribution("constant", 1.0, 0.0)
    cfg = STDPConfig(const, const, const, const, w_min=w_min, w_max=w_max)
    rule = STDP(torch.as_tensor(mask), cfg, np.random.default_rng(0)).double()
    rule.tau_plus_steps.copy_(torch.tensor(tau_plus, dtype=torch.float64))
    rule.tau_minus_steps.copy_(torch.tensor(tau_minus, dtype=torch.float64))
    rule.eta_plus.copy_(torch.tensor(eta_plus, dtype=torch.float64))
    rule.eta_minus.copy_(torch.tensor(eta_minus, dtype=torch.float64))
    return rule


def run(rule, weight, pre, post):
    """Feed spike trains pre [T, N_pre], post [T, N_post] (batch 1) and learn every step."""
    state = None
    for t in range(pre.shape[0]):
        dw, state = rule.step(pre[t : t + 1], post[t : t + 1], state)
        rule.apply(weight, dw)
    return weight


def pair_sum(pre_times, post_times, tau_p, tau_m, eta_p, eta_m):
    """All-to-all pair rule written out from the definition (Δt = t_post - t_pre)."""
    total = 0.0
    for tj in pre_times:
        for ti in post_times:
            dt = ti - tj
            if dt >= 0:
                total += eta_p * math.exp(-dt / tau_p)
            else:
                total -= eta_m * math.exp(dt / tau_m)
    return total


def test_single_pairs_match_hand_computed_values():
    # One synapse 0 -> 0. Pre at t=1, post at t=3: Δt = +2 -> +η₊ e^{-2/τ₊}.
    rule = make_rule([[True]], [4.0], [8.0], [0.1], [0.05])
    w = torch.tensor([[0.5]], dtype=torch.float64)
    pre = torch.zeros(6, 1, dtype=torch.float64)
    post = torch.zeros(6, 1, dtype=torch.float64)
    pre[1, 0] = 1
    post[3, 0] = 1
    run(rule, w, pre, post)
    assert w.item() == pytest.approx(0.5 + 0.1 * math.exp(-2 / 4), abs=1e-12)

    # Post at t=1, pre at t=4: Δt = -3 -> -η₋ e^{-3/τ₋}.
    rule = make_rule([[True]], [4.0], [8.0], [0.1], [0.05])
    w = torch.tensor([[0.5]], dtype=torch.float64)
    pre = torch.zeros(6, 1, dtype=torch.float64)
    post = torch.zeros(6, 1, dtype=torch.float64)
    post[1, 0] = 1
    pre[4, 0] = 1
    run(rule, w, pre, post)
    assert w.item() == pytest.approx(0.5 - 0.05 * math.exp(-3 / 8), abs=1e-12)

    # Same step (Δt = 0): a spike delivered in the step of the post spike is causal.
    rule = make_rule([[True]], [4.0], [8.0], [0.1], [0.05])
    w = torch.tensor([[0.5]], dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    dw, _ = rule.step(one, one)
    assert dw.item() == pytest.approx(0.1, abs=1e-15)


def test_per_synapse_parameters_and_all_to_all_sum():
    # Two pre (columns) -> two post (rows); synapses (0,0), (0,1), (1,0); (1,1) absent.
    mask = [[True, True], [True, False]]
    tau_p, tau_m = [3.0, 6.0, 9.0], [5.0, 2.0, 7.0]
    eta_p, eta_m = [0.01, 0.02, 0.03], [0.015, 0.005, 0.02]
    rule = make_rule(mask, tau_p, tau_m, eta_p, eta_m, w_min=-1.0, w_max=1.0)
    assert rule.post_index.tolist() == [0, 0, 1] and rule.pre_index.tolist() == [0, 1, 0]
    t_steps = 20
    pre_times = {0: [2, 9, 15], 1: [5, 12]}
    post_times = {0: [4, 10], 1: [1, 13, 16]}
    pre = torch.zeros(t_steps, 2, dtype=torch.float64)
    post = torch.zeros(t_steps, 2, dtype=torch.float64)
    for j, times in pre_times.items():
        pre[times, j] = 1
    for i, times in post_times.items():
        post[times, i] = 1
    w = torch.zeros(2, 2, dtype=torch.float64)
    run(rule, w, pre, post)
    for s, (i, j) in enumerate([(0, 0), (0, 1), (1, 0)]):
        expected = pair_sum(pre_times[j], post_times[i], tau_p[s], tau_m[s], eta_p[s], eta_m[s])
        assert w[i, j].item() == pytest.approx(expected, abs=1e-12)
    assert w[1, 1].item() == 0.0  # no synapse, never written
    # Different per-synapse values really give different changes for the same timing.
    assert len({round(w[i, j].item(), 9) for i, j in [(0, 0), (0, 1), (1, 0)]}) == 3


def test_bounds_are_respected():
    rule = make_rule([[True, True]], [10.0, 10.0], [10.0, 10.0], [0.5, 0.5], [0.5, 0.5])
    w = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    # pre 0 before post (LTP, would exceed w_max); post before pre 1 (LTD, below w_min).
    pre = torch.zeros(8, 2, dtype=torch.float64)
    post = torch.zeros(8, 1, dtype=torch.float64)
    pre[1, 0] = 1
    post[2, 0] = 1
    pre[3, 1] = 1
    run(rule, w, pre, post)
    assert w[0, 0].item() == 1.0
    assert w[0, 1].item() == 0.0


def test_batch_mean_and_normalization():
    rule = make_rule([[True]], [4.0], [4.0], [0.1], [0.1])
    pre = torch.tensor([[1.0], [0.0]], dtype=torch.float64)  # only sample 0 pairs
    post = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    dw, _ = rule.step(pre, post)
    assert dw.item() == pytest.approx(0.05)  # mean over the batch of 2

    const = Distribution("constant", 5.0, 0.0)
    eta = Distribution("constant", 0.2, 0.0)
    w0 = torch.tensor([[0.3, 0.5]], dtype=torch.float64)
    cfg = STDPConfig(const, const, eta, eta, normalize=True)
    rule = STDP(torch.ones(1, 2, dtype=torch.bool), cfg, np.random.default_rng(0), w0).double()
    w = w0.clone()
    pre = torch.zeros(4, 2, dtype=torch.float64)
    post = torch.zeros(4, 1, dtype=torch.float64)
    pre[0, 0] = 1
    post[1, 0] = 1  # potentiates synapse 0 only
    run(rule, w, pre, post)
    assert w.sum().item() == pytest.approx(0.8)  # row L1 norm kept at its initial value
    assert w[0, 0] / w[0, 1] > 0.3 / 0.5


def test_unknown_distribution_and_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        Distribution("poisson", 1.0, 0.5)
    with pytest.raises(ValueError, match="w_max > w_min"):
        STDPConfig(w_min=1.0, w_max=0.5)

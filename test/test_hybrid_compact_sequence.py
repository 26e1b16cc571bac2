"""compact_forward: only the active units, the masked path's outputs, state and gradients."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch.testing import assert_close

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.compact_sequence import (
    compact_forward,
    compact_forward_with_features,
    compact_supported,
)
from hybrid_snn_control.neurons.fused import leaky_integrate, unfused
from hybrid_snn_control.neurons.rf import linear_scan

RATIOS = [0.0, 0.25, 0.5, 0.75, 1.0]
F64 = {"rtol": 1e-10, "atol": 1e-12}


def make_net(spiking="lif", recurrent="lstm", ratio=0.5, readout=3, hidden=8, **kwargs):
    torch.manual_seed(0)
    net = HybridNetwork(
        6, hidden, 2, spiking, recurrent, readout_size=readout, spiking_ratio=ratio, **kwargs
    ).double()
    # a non-trivial ranking: the active units are scattered, not a prefix
    net.apply_ranking([(torch.randn(hidden), torch.randn(hidden)) for _ in range(2)])
    return net.train()


def seq(steps=15, batch=3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(steps, batch, 6, generator=g, dtype=dtype)


def random_state(net, batch=3):
    """A random initial state, inactive units included (they must not leak), as leaves."""
    g = torch.Generator().manual_seed(2)
    flat = [
        torch.rand(t.shape, generator=g, dtype=t.dtype)
        for t in net.flatten_state(net.initial_state(batch))
    ]
    return net.unflatten_state([t.requires_grad_() for t in flat])


def run(forward, net, x, state):
    """Outputs, final state and the gradients of a loss on both w.r.t. parameters and the
    initial state."""
    out, final = forward(net, x, state)
    weights = torch.linspace(-1.0, 1.0, out.shape[-1], dtype=out.dtype)
    loss = (out * weights).sum()
    loss = loss + sum((t * (i + 1.5)).sum() for i, t in enumerate(net.flatten_state(final)))
    leaves = list(net.parameters())
    if state is not None:
        leaves += list(net.flatten_state(state))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
    return out, net.flatten_state(final), grads


def masked(net, x, state):
    return net(x, state)


def inactive_entries(net, grads):
    """The gradient entries that belong to inactive units only (must be exactly zero)."""
    named = dict(zip([n for n, _ in net.named_parameters()], grads))
    picks, prev_off = [], None
    for i, layer in enumerate(net.layers):
        s_off, r_off = layer.spiking_mask == 0, layer.recurrent_mask == 0
        rows = r_off.repeat(layer.recurrent.gates)  # gate-stacked rows g * N + j
        p = f"layers.{i}."
        picks += [("spiking.fc.weight", s_off), ("spiking.fc.bias", s_off)]
        picks += [("recurrent.weight_ih", rows), ("recurrent.weight_hh", rows)]
        picks += [("recurrent.weight_hh", (slice(None), r_off))]
        picks += [("recurrent.bias_ih", rows), ("recurrent.bias_hh", rows)]
        picks += [(name, s_off) for name in ("spiking.decay", "spiking.threshold")]
        if prev_off is not None:  # columns reading the previous layer's inactive units
            picks += [(name, (slice(None), prev_off)) for name in ("spiking.fc.weight",)]
            picks += [("recurrent.weight_ih", (slice(None), prev_off))]
        picks = [(n if n.startswith("layers") else p + n, idx) for n, idx in picks]
        prev_off = torch.cat([s_off, r_off])
    picks.append(("readout.weight", (slice(None), prev_off)))
    return [named[n][idx] for n, idx in picks if n in named]


def check_equal(net, x, state, tol):
    ref = run(masked, net, x, state)
    got = run(compact_forward, net, x, state)
    assert_close(got[0], ref[0], **tol)
    for a, b in zip(got[1], ref[1]):
        assert_close(a, b, **tol)
    for a, b in zip(got[2], ref[2]):
        assert_close(a, b, **tol)
    for a, b in zip(inactive_entries(net, got[2]), inactive_entries(net, ref[2])):
        assert (a == 0).all() and (b == 0).all()
    assert sum(float(g.abs().sum()) for g in got[2]) > 0  # not vacuous
    return ref


@pytest.mark.parametrize("spiking", ["lif", "alif"])
@pytest.mark.parametrize("recurrent", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("with_state", [False, True])
def test_compact_equals_masked_float64(spiking, recurrent, ratio, with_state):
    net = make_net(spiking, recurrent, ratio)
    assert compact_supported(net)
    x = seq()
    state = random_state(net) if with_state else None
    check_equal(net, x, state, F64)
    if ratio > 0:  # some active spiking unit fired: the spike path is exercised
        spikes, _ = net.layers[0].spiking(x, None, net.layers[0].spiking_mask)
        assert spikes.sum() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reset": "subtract"},
        {"detach_reset": True, "surrogate": "sigmoid"},
        {"reset": "subtract", "detach_reset": True, "surrogate": "arctan"},
        {"learn_decay": True, "learn_threshold": True, "surrogate": "multi_gaussian"},
        {"bias": False, "decay": 0.9, "threshold": 0.3},
    ],
)
@pytest.mark.parametrize("spiking", ["lif", "alif"])
def test_compact_equals_masked_spiking_variants(kwargs, spiking):
    if spiking == "alif" and "learn_decay" in kwargs:
        kwargs = {**kwargs, "learn_adaptation": True}
    net = make_net(spiking, "lstm", 0.5, spiking_kwargs=kwargs)
    check_equal(net, seq(), random_state(net), F64)


def test_compact_equals_masked_no_readout_no_bias_zero_rate_decay():
    net = make_net(
        "lif", "gru", 0.25, readout=None, rate_decay=0.0, recurrent_kwargs={"bias": False}
    )
    check_equal(net, seq(), random_state(net), F64)


def test_compact_equals_masked_float32_bench_shape():
    """float32 at the bench's kind of sizes (more units, longer sequence)."""
    torch.manual_seed(0)
    net = HybridNetwork(20, 64, 2, "lif", "lstm", spiking_ratio=0.5).train()
    net.apply_ranking([(torch.randn(64), torch.randn(64)) for _ in range(2)])
    x = 2.0 * torch.randn(60, 8, 20)
    check_equal(net, x, None, {"rtol": 1e-5, "atol": 1e-5})


def test_features_and_ratio_sampling_match_the_masked_path():
    net = make_net("alif", "lstm", 0.5, ratio_sampling=(0.25, 0.75))
    x = seq()
    random.seed(7)
    out_ref, state_ref, feats_ref = net.forward_with_features(x)
    random.seed(7)  # the same ratio draw as net.forward
    out, state, feats = compact_forward_with_features(net, x)
    assert_close(out, out_ref, **F64)
    assert_close(feats, feats_ref, **F64)
    for a, b in zip(net.flatten_state(state), net.flatten_state(state_ref)):
        assert_close(a, b, **F64)
    assert net.spiking_ratio == 0.5  # sampling leaves the set ratio alone


def test_explicit_masks_and_truncated_bptt_chunks():
    net = make_net("lif", "lstm", 0.5)
    masks = net.masks_for_ratio(0.75)
    x = seq(steps=20)
    y_ref, s_ref = net(x[:8], None, masks)
    y_ref2, s_ref2 = net(x[8:], net.detach_state(s_ref), masks)
    y, s = compact_forward(net, x[:8], None, masks)
    y2, s2 = compact_forward(net, x[8:], net.detach_state(s), masks)
    assert_close(torch.cat([y, y2]), torch.cat([y_ref, y_ref2]), **F64)
    for a, b in zip(net.flatten_state(s2), net.flatten_state(s_ref2)):
        assert_close(a, b, **F64)


def test_unsupported_cells_and_unfused_fall_back_to_the_masked_path():
    net = make_net("rf", "lstm", 0.5)
    assert not compact_supported(net)
    ref, got = run(masked, net, seq(), None), run(compact_forward, net, seq(), None)
    assert torch.equal(got[0], ref[0])
    assert all(torch.equal(a, b) for a, b in zip(got[2], ref[2]))
    net = make_net("lif", "lstm", 0.5)
    with unfused():
        assert not compact_supported(net)
        x = seq()
        y, _ = compact_forward(net, x)
        y_ref, _ = net(x)
    assert torch.equal(y, y_ref)


def test_bad_input_raises_like_forward():
    net = make_net()
    with pytest.raises(ValueError, match="x_seq must be"):
        compact_forward(net, torch.zeros(4, 3, 5, dtype=torch.float64))


# ---- the kernels the compact path leans on --------------------------------------------------
def test_leaky_integrate_equals_linear_scan_with_gradients():
    g = torch.Generator().manual_seed(3)
    u = torch.rand(37, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    z0 = torch.rand(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(37, 4, 5, generator=g, dtype=torch.float64)
    log_kappa = torch.full((5,), math.log(0.8), dtype=torch.float64)
    grads = []
    for fn in (lambda: leaky_integrate(u, z0, 0.8), lambda: linear_scan(log_kappa, u, z0)):
        z = fn()
        grads.append((z, *torch.autograd.grad((z * w).sum(), [u, z0])))
    for a, b in zip(*grads):
        assert_close(a, b, **F64)

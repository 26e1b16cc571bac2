"""HybridNetwork: step == sequence (with a ratio change), live ratio switching, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybrid_snn_control.hybrid import HybridNetwork, unit_counts
from hybrid_snn_control.neurons import RECURRENT_CELLS, SPIKING_CELLS


def make_net(spiking="lif", recurrent="lstm", readout=3, **kwargs):
    torch.manual_seed(0)
    return HybridNetwork(6, 8, 2, spiking, recurrent, readout_size=readout, **kwargs).double()


def seq(steps=12, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(steps, batch, 6, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("spiking", SPIKING_CELLS)
@pytest.mark.parametrize("recurrent", RECURRENT_CELLS)
def test_step_equals_sequence_with_ratio_change_midway(spiking, recurrent):
    net = make_net(spiking, recurrent, spiking_ratio=0.5)
    x = seq()
    y1, s = net(x[:5])
    net.set_ratio(0.25)
    y2, s_seq = net(x[5:], s)
    net.set_ratio(0.5)
    state, ys = None, []
    for t in range(12):
        if t == 5:
            net.set_ratio(0.25)
        y, state = net.step(x[t], state)
        ys.append(y)
    assert torch.allclose(torch.stack(ys), torch.cat([y1, y2]), atol=1e-6, rtol=0)
    for a, b in zip(net.flatten_state(s_seq), net.flatten_state(state)):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    # the ratio change matters (the check above is not vacuous)
    net.set_ratio(0.5)
    y_same, _ = net(x[5:], s)
    assert not torch.allclose(y_same, y2)


def test_set_ratio_changes_masks_only():
    net = make_net()
    storage = {n: p.data_ptr() for n, p in net.named_parameters()}
    buffers = {n: b.data_ptr() for n, b in net.named_buffers()}
    n_params = sum(p.numel() for p in net.parameters())
    x = seq()
    _, state = net(x[:4])
    for r in (0.0, 0.125, 0.9, 1.0, 0.5):
        net.set_ratio(r)
        assert net.spiking_ratio == r
        y, state = net.step(x[4], state)
        assert y.shape == (3, 3)
    assert {n: p.data_ptr() for n, p in net.named_parameters()} == storage
    assert {n: b.data_ptr() for n, b in net.named_buffers()} == buffers
    assert sum(p.numel() for p in net.parameters()) == n_params


def test_set_ratio_keeps_state_of_units_that_stay_active():
    net = make_net("alif", "lstm", spiking_ratio=0.5)
    x = seq()
    _, state = net(x[:6])
    old_s = net.layers[0].spiking_mask.clone()
    old_r = net.layers[0].recurrent_mask.clone()
    net.set_ratio(0.75)  # spiking set grows, recurrent set shrinks (nested)
    new_s, new_r = net.layers[0].spiking_mask, net.layers[0].recurrent_mask
    assert ((old_s == 1) <= (new_s == 1)).all() and ((new_r == 1) <= (old_r == 1)).all()
    _, after = net.step(x[6], state)
    layer = net.layers[0]
    # the spiking units read their previous membrane and adaptation unchanged
    _, expected = layer.spiking.step(x[6], state.layers[0].spiking)
    keep = (old_s == 1) & (new_s == 1)
    assert torch.equal(after.layers[0].spiking.v[:, keep], expected.v[:, keep])
    assert after.layers[0].spiking.v[:, keep].abs().sum() > 0
    # recurrent units that stay active continue from their h, c
    h, c = state.layers[0].recurrent
    h_ref, c_ref = torch.lstm_cell(
        x[6],
        (h * new_r, c),
        layer.recurrent.weight_ih,
        layer.recurrent.weight_hh,
        layer.recurrent.bias_ih,
        layer.recurrent.bias_hh,
    )
    stay = new_r == 1
    assert torch.allclose(after.layers[0].recurrent.h[:, stay], h_ref[:, stay])
    assert torch.allclose(after.layers[0].recurrent.c[:, stay], c_ref[:, stay])
    # units switched off hold zero state
    off = new_r == 0
    assert (after.layers[0].recurrent.h[:, off] == 0).all()


def test_masks_are_nested_and_counts_follow_floor_rule():
    net = make_net()
    net.apply_ranking([(torch.randn(8), torch.randn(8)) for _ in range(2)])
    prev_s = prev_r = None
    for r in np.linspace(0, 1, 41):
        net.set_ratio(float(r))
        n_s, n_r = unit_counts(float(r), 8)
        for layer in net.layers:
            s, rec = layer.spiking_mask.bool(), layer.recurrent_mask.bool()
            assert int(s.sum()) == n_s and int(rec.sum()) == n_r
        s_all = torch.cat([layer.spiking_mask for layer in net.layers]).bool()
        r_all = torch.cat([layer.recurrent_mask for layer in net.layers]).bool()
        if prev_s is not None:
            assert (prev_s <= s_all).all() and (r_all <= prev_r).all()
        prev_s, prev_r = s_all, r_all
    assert unit_counts(0.5, 8) == (4, 4)
    assert unit_counts(0.01, 8) == (1, 7)  # at least one unit of each type for 0 < r < 1
    assert unit_counts(0.99, 8) == (7, 1)
    assert unit_counts(0.0, 8) == (0, 8) and unit_counts(1.0, 8) == (8, 0)
    assert unit_counts(0.3, 10) == (3, 7)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "0.5", True, None, [0.5]])
def test_invalid_ratio_raises_value_error(bad):
    net = make_net()
    masks = [m.clone() for m in net.masks()]
    with pytest.raises(ValueError, match=r"real number in \[0, 1\]"):
        net.set_ratio(bad)
    assert all(torch.equal(a, b) for a, b in zip(masks, net.masks()))
    assert net.spiking_ratio == 0.5


def test_numpy_and_tensor_ratios_accepted():
    net = make_net()
    net.set_ratio(np.float32(0.25))
    assert net.spiking_ratio == 0.25
    net.set_ratio(torch.tensor(0.75))
    assert net.spiking_ratio == 0.75


def test_explicit_masks_equal_set_ratio():
    net = make_net()
    x = seq()
    masks = net.masks_for_ratio(0.25)
    y_explicit, _ = net(x, None, masks)
    assert net.spiking_ratio == 0.5  # untouched
    net.set_ratio(0.25)
    y_ratio, _ = net(x)
    assert torch.equal(y_explicit, y_ratio)
    y_step, _ = net.step(x[0], None, masks)
    assert torch.allclose(y_step, y_ratio[0], atol=1e-12)


def test_ratio_sampling_in_training_uses_explicit_masks():
    net = make_net(ratio_sampling=[0.0, 1.0])
    x = seq()
    net.train()
    outs = {net(x)[0].sum().item() for _ in range(12)}
    net.eval()
    ends = {net(x, None, net.masks_for_ratio(r))[0].sum().item() for r in (0.0, 1.0)}
    assert outs == ends  # every batch ran at one of the sampled ratios, both were used
    assert net.spiking_ratio == 0.5 and net(x)[0].sum().item() not in ends


@pytest.mark.parametrize("spiking", SPIKING_CELLS)
def test_gradients_reach_every_parameter(spiking):
    net = make_net(spiking, "lstm")
    net.set_redundant()
    assert net.spiking_ratio is None
    y, _ = net(seq(steps=15))
    (y * torch.randn_like(y)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_state_helpers_and_output_size():
    net = make_net("stc_alif", "gru")
    assert net.output_size == 3
    assert make_net(readout=None).output_size == 16
    state = net.initial_state(4)
    flat = net.flatten_state(state)
    names = net.state_names()
    assert len(flat) == len(names) == 2 * (3 + 1) + 1
    assert names[0] == "layer0.spiking.v" and names[-1] == "trace"
    x = torch.randn(7, 4, 6, dtype=torch.float64)
    _, state = net(x)
    flat = net.flatten_state(state)
    again = net.unflatten_state(flat)
    assert all(torch.equal(a, b) for a, b in zip(net.flatten_state(again), flat))
    done = torch.tensor([False, True, False, True])
    reset = net.reset_state(state, done)
    for t in net.flatten_state(reset):
        assert (t[done] == 0).all()
    for a, b in zip(net.flatten_state(reset), flat):
        assert torch.equal(a[~done], b[~done])
    assert not any(t.requires_grad for t in net.flatten_state(net.detach_state(state)))


def test_ranking_travels_in_state_dict():
    net = make_net()
    scores = [(torch.arange(8.0), -torch.arange(8.0)) for _ in range(2)]
    net.apply_ranking(scores)
    net.set_ratio(0.25)
    assert net.layers[0].spiking_mask.tolist() == [0] * 6 + [1] * 2  # two best: units 7, 6
    assert net.layers[0].recurrent_mask.tolist() == [1] * 6 + [0] * 2
    sd = net.state_dict()
    assert {"layers.0.spiking_rank", "layers.0.recurrent_importance", "ratio"} <= set(sd)
    other = make_net()
    other.load_state_dict(sd)
    assert other.spiking_ratio == 0.25
    assert all(torch.equal(a, b) for a, b in zip(other.masks(), net.masks()))
    with pytest.raises(ValueError, match="finite"):
        net.apply_ranking([(torch.full((8,), math.nan), torch.zeros(8))] * 2)


def test_bad_input_shape():
    net = make_net()
    with pytest.raises(ValueError, match=r"\[T, B, 6\]"):
        net(torch.zeros(3, 2, 5, dtype=torch.float64))


@pytest.mark.parametrize("rate_decay", [0.0, 0.95])
def test_rate_trace_scan_equals_step(rate_decay):
    net = make_net("lif", "gru", rate_decay=rate_decay)
    x = seq(steps=23)
    y_seq, s_seq = net(x)
    state, ys = None, []
    for t in range(23):
        y, state = net.step(x[t], state)
        ys.append(y)
    assert torch.allclose(torch.stack(ys), y_seq, atol=1e-9)
    assert torch.allclose(state.trace, s_seq.trace, atol=1e-9)
    assert torch.isfinite(y_seq).all()


@pytest.mark.parametrize("spiking", ["lif", "alif", "rf"])
def test_fused_kernels_give_autograd_gradients(spiking):
    from hybrid_snn_control.neurons.fused import unfused

    net = make_net(spiking, "lstm")
    x = seq(steps=19)
    state0 = net.initial_state(3)
    trace0 = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    state0 = state0._replace(trace=trace0)
    grads = []
    for fused in (True, False):
        net.zero_grad()
        trace0.grad = None
        if fused:
            y, _ = net(x, state0)
        else:
            with unfused():
                y, _ = net(x, state0)
        (y * torch.linspace(-1, 1, 3, dtype=y.dtype)).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()] + [trace0.grad.clone()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10)

"""HRSNN layer: heterogeneity draws, one-step == sequence, plasticity switch, Dale, masks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig
from hybrid_snn_control.neurons.stdp import STDPConfig

STRONG_STDP = STDPConfig(
    eta_plus=Distribution("gamma", 0.05, 0.5), eta_minus=Distribution("gamma", 0.06, 0.5)
)


def config(**overrides) -> HRSNNConfig:
    base = HRSNNConfig(
        input_size=12,
        num_neurons=40,
        connection_prob=0.2,
        input_connection_prob=0.5,
        input_scale=6.0,
        recurrent_scale=2.0,
        tau_mem_steps=Distribution("gamma", 5.0, 0.5),
        tau_thr_steps=Distribution("gamma", 10.0, 0.5),
        stdp=STRONG_STDP,
        seed=3,
    )
    return replace(base, **overrides)


def inputs(t=40, b=3, n=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, b, n, generator=g) < 0.3).to(dtype)


def step_loop(layer, x_seq):
    state, outs = None, []
    for t in range(x_seq.shape[0]):
        z, state = layer.step(x_seq[t], state)
        outs.append(z)
    return torch.stack(outs), state


@pytest.mark.parametrize("plastic", [False, True])
def test_inference_steps_see_weight_changes(plastic):
    # Under no_grad (a control loop) step() reuses its effective weights between ticks;
    # STDP, load_state_dict and in-place edits must still reach the next step.
    x = inputs()
    a = HRSNN(config()).double()
    b = HRSNN(config()).double()
    a.plasticity = b.plasticity = plastic
    with torch.no_grad():
        z_step, _ = step_loop(a, x)
        z_seq, _ = b(x)
        assert torch.equal(z_step, z_seq)
        torch.testing.assert_close(a.w_rec, b.w_rec, rtol=0, atol=1e-12)
        a.w_in.mul_(0.0)  # silence the input: the next steps must see it
        z_after, _ = step_loop(a, x[:5])
    assert z_after.sum() == 0


def test_membrane_time_constants_follow_the_configured_gamma():
    dist = Distribution("gamma", 20.0, 0.5)
    layer = HRSNN(config(num_neurons=2000, tau_mem_steps=dist, stdp=None, seed=11))
    tau = layer.tau_mem_steps.double().numpy()
    assert stats.kstest(tau, dist.scipy().cdf).pvalue > 0.01
    # ... and not another gamma with the same mean (the test can fail).
    assert stats.kstest(tau, Distribution("gamma", 20.0, 0.3).scipy().cdf).pvalue < 1e-3
    assert tau.mean() == pytest.approx(20.0, rel=0.05)


def test_stdp_parameters_follow_their_distributions_and_homogeneous_is_constant():
    tau_dist = Distribution("lognormal", 10.0, 0.8)
    cfg = config(num_neurons=150, stdp=STDPConfig(tau_plus_steps=tau_dist), seed=5)
    layer = HRSNN(cfg)
    draws = layer.stdp_rec.tau_plus_steps.double().numpy()
    assert draws.size > 1000
    assert stats.kstest(draws, tau_dist.scipy().cdf).pvalue > 0.01
    homo = HRSNN(
        replace(cfg, stdp=cfg.stdp.homogeneous(), tau_mem_steps=cfg.tau_mem_steps.homogeneous())
    )
    assert torch.all(homo.stdp_rec.tau_plus_steps == 10.0)
    assert torch.all(homo.stdp_rec.eta_plus == cfg.stdp.eta_plus.mean)
    assert torch.all(homo.tau_mem_steps == 5.0)


def test_seeded_construction_is_reproducible():
    a, b = HRSNN(config()), HRSNN(config())
    for (name, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(ta, tb), name
    c = HRSNN(config(seed=4))
    assert not torch.equal(a.w_rec, c.w_rec)


@pytest.mark.parametrize("plastic", [False, True])
def test_one_step_equals_sequence_in_float64(plastic):
    x = inputs()
    a = HRSNN(config(stdp_input=True)).double()
    b = HRSNN(config(stdp_input=True)).double()
    a.plasticity = b.plasticity = plastic
    z_seq, s_seq = a(x)
    z_step, s_step = step_loop(b, x)
    assert z_seq.sum() > 0  # the comparison is not between two silent layers
    assert torch.equal(z_seq, z_step)
    for ta, tb in zip(
        [s_seq.v, s_seq.a, *s_seq.rec_traces, *s_seq.in_traces],
        [s_step.v, s_step.a, *s_step.rec_traces, *s_step.in_traces],
    ):
        torch.testing.assert_close(ta, tb, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.w_rec, b.w_rec, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.w_in, b.w_in, rtol=0, atol=1e-12)
    fresh = HRSNN(config(stdp_input=True)).double()
    assert torch.equal(a.w_rec, fresh.w_rec) != plastic  # learning really happened (or not)
    # Splitting a sequence and passing the state on gives the same result.
    c = HRSNN(config(stdp_input=True)).double()
    c.plasticity = plastic
    z1, s1 = c(x[:15])
    z2, _ = c(x[15:], s1)
    assert torch.equal(torch.cat([z1, z2]), z_seq)


def test_learning_off_leaves_weights_bit_identical():
    layer = HRSNN(config(stdp_input=True))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    z, _ = layer(inputs(dtype=torch.float32))
    assert z.sum() > 0
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key
    layer.plasticity = True
    layer(inputs(dtype=torch.float32))
    assert not torch.equal(layer.w_rec, before["w_rec"])


def test_dale_signs_and_connection_mask_survive_stdp():
    layer = HRSNN(config(stdp_input=True)).double()
    w_rec0 = layer.effective_weights()[1].detach().clone()
    layer.plasticity = True
    for seed in range(4):
        layer(inputs(seed=seed))
    w_in, w_rec = layer.effective_weights()
    assert not torch.equal(w_rec, w_rec0)
    exc = layer.excitatory
    assert torch.all(w_rec[:, exc] >= 0) and torch.all(w_rec[:, ~exc] <= 0)
    assert torch.all(w_in >= 0)
    # No weight where there is no synapse (raw storage included), no self-connections.
    assert torch.all(layer.w_rec[~layer.rec_mask] == 0)
    assert torch.all(layer.w_in[~layer.in_mask] == 0)
    assert torch.all(torch.diagonal(layer.w_rec) == 0)
    lo, hi = layer.config.stdp.w_min, layer.config.stdp.w_max
    assert torch.all((layer.w_rec >= lo) & (layer.w_rec <= hi))


def test_without_dale_weights_take_both_signs():
    cfg = config(dale=False, stdp=replace(STRONG_STDP, w_min=-1.0))
    layer = HRSNN(cfg)
    w = layer.w_rec[layer.rec_mask]
    assert (w < 0).any() and (w > 0).any()
    with pytest.raises(ValueError, match="Dale"):
        HRSNN(config(stdp=replace(STRONG_STDP, w_min=-1.0)))


def test_connectivity_statistics_and_bad_input():
    layer = HRSNN(config(num_neurons=300, connection_prob=0.1, seed=1))
    p_hat = layer.rec_mask.double().sum() / (300 * 299)
    assert abs(p_hat - 0.1) < 0.01
    assert int(layer.excitatory.sum()) == 240
    with pytest.raises(ValueError, match="shape"):
        layer.step(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="connection_prob"):
        config(connection_prob=0.0)


def test_synaptic_operations_count_spikes_times_fan_out():
    layer = HRSNN(config()).double()
    x = inputs()
    with torch.no_grad():
        z, _ = layer(x)
    ops = layer.synaptic_operations(x, z)
    expected_rec = float((z.sum((0, 1)) * layer.rec_mask.sum(0)).sum()) / x.shape[1]
    assert ops["synops_recurrent"] == pytest.approx(expected_rec)
    assert ops["synops_input"] == pytest.approx(
        float((x.sum((0, 1)) * layer.in_mask.sum(0)).sum()) / x.shape[1]
    )


def test_gradients_flow_for_bptt_use():
    layer = HRSNN(config(stdp=None))
    z, _ = layer(inputs(dtype=torch.float32).requires_grad_(False))
    z.sum().backward()
    assert layer.w_in.grad is not None and layer.w_in.grad.abs().sum() > 0
    assert np.isfinite(layer.w_rec.grad.numpy()).all()


def test_unit_mask_silences_units_like_removing_them():
    # The hybrid layer's ratio masks (Cell interface): masked units emit nothing, keep no
    # state and do not influence active units -- the same as cutting their outgoing synapses.
    x = inputs()
    mask = (torch.arange(40) % 2 == 0).double()
    a = HRSNN(config(stdp=None)).double()
    z_masked, state = a(x, mask=mask)
    assert torch.all(z_masked[:, :, mask == 0] == 0)
    assert torch.all(state.v[:, mask == 0] == 0) and torch.all(state.a[:, mask == 0] == 0)
    b = HRSNN(config(stdp=None)).double()
    with torch.no_grad():
        b.w_rec[:, mask == 0] = 0.0
    z_cut, _ = b(x)
    active = mask == 1
    assert z_masked[:, :, active].sum() > 0
    assert torch.equal(z_masked[:, :, active], z_cut[:, :, active])

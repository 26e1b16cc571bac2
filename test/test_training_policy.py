"""The policy model: step == sequence, checkpoint round trip, clear load errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, load_policy, save_policy
from hybrid_snn_control.policy.checkpoint import CheckpointError, load_checkpoint
from hybrid_snn_control.policy.checkpoint import save_checkpoint as raw_save

CFG = PolicyConfig(event_shape=[2, 16, 20], proprio_size=5, hidden_size=12, spiking_ratio=0.5)


def _inputs(T=6, B=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    events = torch.poisson(torch.full((T, B, 2, 16, 20), 0.7), generator=g).to(dtype)
    proprio = torch.randn(T, B, 5, generator=g, dtype=dtype)
    return events, proprio


@pytest.mark.parametrize("encoder", ["conv", "pool"])
def test_step_by_step_equals_sequence_with_ratio_change(encoder):
    torch.manual_seed(0)
    policy = HybridPolicy(dataclasses.replace(CFG, encoder=encoder)).double().eval()
    events, proprio = _inputs(dtype=torch.float64)
    seq, _ = policy(events[:3], proprio[:3])
    state = None
    outs = []
    for t in range(3):
        a, state = policy.step(events[t], proprio[t], state)
        outs.append(a)
    assert torch.allclose(torch.stack(outs), seq, atol=1e-10)
    policy.set_ratio(0.25)  # after a switch, step and sequence still agree from one state
    seq2, _ = policy(events[3:], proprio[3:], state)
    for t in range(3, 6):
        a, state = policy.step(events[t], proprio[t], state)
        assert torch.allclose(a, seq2[t - 3], atol=1e-10)
    assert seq.abs().max() <= 1.0  # tanh head


def _reference_step(policy, events, proprio, state, keep):
    """The core's step written out from its equations (DESIGN §3–4), the unit sets given.

    Per layer: LIF ``u = λ v + W x + b``, ``o = 1[u > θ]``, ``v ← u (1 − o)``; LSTM with
    dropped units' hidden state zeroed before the gates; a dropped unit outputs 0 and holds
    0. Readout ``tanh(W [r, y_L] + b)`` with the rate trace ``r = (κ r + (1 − κ) o_L) m^s``.
    Returns the action and the state as ``{name: tensor}`` in the core's state order.
    """
    core = policy.core
    h = policy.features(events, proprio)
    layers = []
    for layer, (lif_state, (h_prev, c_prev)), (m_s, m_r) in zip(core.layers, state.layers, keep):
        lif, lstm = layer.spiking, layer.recurrent
        u = lif.decay * lif_state.v + lif.fc(h)
        o = (u > lif.threshold).to(u.dtype)
        v = u * (1 - o)
        gates = h @ lstm.weight_ih.T + lstm.bias_ih + (h_prev * m_r) @ lstm.weight_hh.T
        i, f, g, og = (gates + lstm.bias_hh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        y = torch.sigmoid(og) * torch.tanh(c)
        layers.append((v * m_s, y * m_r, c * m_r))
        h = torch.cat([o * m_s, y * m_r], dim=-1)
    kappa = core.rate_decay
    trace = (kappa * state.trace + (1 - kappa) * h[:, : core.hidden_size]) * keep[-1][0]
    action = torch.tanh(core.readout(torch.cat([trace, h[:, core.hidden_size :]], dim=-1)))
    flat = [t for layer in layers for t in layer] + [trace]
    return action, dict(zip(core.state_names(), flat))


def test_ratio_switch_keeps_the_state_of_kept_units_and_masks_the_dropped():
    torch.manual_seed(0)
    policy = HybridPolicy(CFG).double().eval()
    n = CFG.hidden_size
    g = torch.Generator().manual_seed(3)
    scores = [(torch.rand(n, generator=g), torch.rand(n, generator=g)) for _ in policy.core.layers]
    policy.core.apply_ranking(scores)  # not index order: the kept sets come from the ranking

    def keep(n_spiking):  # top-scored units of each type, from the scores (not the buffers)
        out = []
        for s_scores, r_scores in scores:
            m_s, m_r = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
            m_s[torch.topk(s_scores, n_spiking).indices] = 1
            m_r[torch.topk(r_scores, n - n_spiking).indices] = 1
            out.append((m_s, m_r))
        return out

    events, proprio = _inputs(T=5, dtype=torch.float64)
    policy.set_ratio(0.5)  # 6 spiking + 6 recurrent of 12
    state = None
    with torch.no_grad():
        for t in range(4):
            action, new_state = policy.step(events[t], proprio[t], state)
            if state is not None:  # the reference matches the policy before any switch
                ref, _ = _reference_step(policy, events[t], proprio[t], state, keep(6))
                torch.testing.assert_close(action, ref, rtol=0, atol=1e-12)
            state = new_state
        names = policy.core.state_names()
        before = {k: v.clone() for k, v in zip(names, policy.flatten_state(state))}
        assert before["layer0.spiking.v"].abs().sum() > 0  # a state worth keeping

        policy.set_ratio(0.25)  # hot swap: 3 spiking + 9 recurrent, same weights
        action, after_state = policy.step(events[4], proprio[4], state)
        after = dict(zip(names, policy.flatten_state(after_state)))
        ref_action, ref_state = _reference_step(policy, events[4], proprio[4], state, keep(3))
        # the reference again with the kept units' state forgotten: the swap must not do that
        zeroed = policy.core.unflatten_state([torch.zeros_like(v) for v in before.values()])
        forgot, _ = _reference_step(policy, events[4], proprio[4], zeroed, keep(3))

    kept_as_handed = policy.flatten_state(state)  # set_ratio leaves the state alone
    assert all(torch.equal(a, b) for a, b in zip(before.values(), kept_as_handed))
    torch.testing.assert_close(action, ref_action, rtol=0, atol=1e-12)
    for name, value in after.items():
        torch.testing.assert_close(value, ref_state[name], rtol=0, atol=1e-12, msg=name)
    assert (action - forgot).abs().max() > 1e-3  # so the match above needed the kept state
    for i, (m_s, m_r) in enumerate(keep(3)):
        dropped_s, dropped_r = m_s == 0, m_r == 0
        assert torch.all(after[f"layer{i}.spiking.v"][:, dropped_s] == 0)
        assert torch.all(after[f"layer{i}.recurrent.h"][:, dropped_r] == 0)
        assert torch.all(after[f"layer{i}.recurrent.c"][:, dropped_r] == 0)
        newly_recurrent = (m_r == 1) & (keep(6)[i][1] == 0)  # were masked, so start at zero
        assert newly_recurrent.any()
        assert torch.all(before[f"layer{i}.recurrent.h"][:, newly_recurrent] == 0)
    assert torch.all(after["trace"][:, keep(3)[-1][0] == 0] == 0)


def test_save_load_round_trip_reproduces_actions(tmp_path):
    torch.manual_seed(1)
    policy = HybridPolicy(CFG).eval()
    policy.set_normalization(torch.arange(5.0), torch.full((5,), 2.0))
    policy.set_ratio(0.75)
    save_policy(tmp_path / "p.safetensors", policy, extra={"task": "unit-test"})
    loaded, meta = load_policy(tmp_path / "p.safetensors")
    assert meta["task"] == "unit-test" and meta["spiking_ratio"] == 0.75
    assert loaded.spiking_ratio == 0.75 and loaded.cfg == policy.cfg
    events, proprio = _inputs()
    a1, _ = policy(events, proprio)
    a2, _ = loaded(events, proprio)
    assert torch.equal(a1, a2)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    policy = HybridPolicy(CFG)
    path = tmp_path / "p.safetensors"
    save_policy(path, policy)
    tensors, meta = load_checkpoint(path)
    meta["policy_config"]["hidden_size"] = 13  # config no longer fits the weights
    raw_save(path, tensors, meta)
    with pytest.raises(CheckpointError, match="does not fit its config"):
        load_policy(path)
    meta["kind"] = "something_else"
    raw_save(path, tensors, meta)
    with pytest.raises(CheckpointError, match="not a hybrid_policy"):
        load_policy(path)


def test_efficiency_counts_include_the_encoder():
    policy = HybridPolicy(CFG).eval()
    events, proprio = _inputs(T=4, B=2)
    report = policy.measure_efficiency(events, proprio)
    core_only = report.macs_per_step - policy.encoder.macs
    # conv 2->8 on 16x20 -> 8x10, then 8->16 -> 4x5 (3x3 kernels)
    assert policy.encoder.macs == 8 * 8 * 10 * 2 * 9 + 16 * 4 * 5 * 8 * 9
    assert core_only > 0 and report.steps == 4 and report.batch_size == 2
    assert report.energy_pj_per_step == pytest.approx(
        report.macs_per_step * 4.6 + report.synops_per_step * 0.9
    )

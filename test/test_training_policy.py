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
    policy.set_ratio(0.25)  # mid-sequence switch keeps the state of kept units
    seq2, _ = policy(events[3:], proprio[3:], state)
    for t in range(3, 6):
        a, state = policy.step(events[t], proprio[t], state)
        assert torch.allclose(a, seq2[t - 3], atol=1e-10)
    assert seq.abs().max() <= 1.0  # tanh head


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

"""The event-driven spiking conv encoder: SynOps by hand, step == sequence, export, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_fixtures import input_sequence, save_test_policy

from hybrid_snn_control.deploy.runtime import load_runtime
from hybrid_snn_control.neurons.fused import unfused
from hybrid_snn_control.policy import HybridPolicy, PolicyConfig
from hybrid_snn_control.policy.spiking_encoder import SpikingConvEncoder, conv_fan_out

TOL = 1e-5


def _all_ones(enc: SpikingConvEncoder) -> SpikingConvEncoder:
    """Weights 1, threshold 0.5: a neuron fires iff any input spike is in its field."""
    with torch.no_grad():
        for conv in enc.convs:
            conv.weight.fill_(1.0)
    return enc


def test_fan_out_of_a_stride_2_3x3_conv():
    # rows: output 0 reads inputs -1..1, output 1 reads 1..3 -> input 1 feeds both
    fan = conv_fan_out((4, 4), (2, 2))
    want = torch.tensor([1.0, 2.0, 1.0, 1.0])
    torch.testing.assert_close(fan, want[:, None] * want[None, :])


def test_synops_counted_by_hand_on_a_tiny_input():
    """1 × 4 × 4 events, conv 1 → 2 channels (2 × 2 map), then 2 → 3 (1 × 1 map)."""
    enc = _all_ones(SpikingConvEncoder([1, 4, 4], [2, 3], grid=1))
    events = torch.zeros(1, 1, 4, 4)
    events[0, 0, 1, 1] = 3.0  # three events at one pixel: one input spike
    events[0, 0, 3, 0] = 1.0
    feats, _, synops = enc.step(events)
    # layer 0: pixel (1,1) reaches 2 × 2 outputs × 2 channels = 8, pixel (3,0) 1 × 1 × 2 = 2;
    # the fields of outputs (0,0), (0,1), (1,0), (1,1) hold (1,1) or (3,0): all 8 neurons fire.
    # layer 1: the 2 × 2 map feeds the one output position: 8 spikes × 1 × 3 channels = 24;
    # its 3 neurons fire; pooling adds one AC per spike: 3.  Total 8 + 2 + 24 + 3 = 37.
    assert float(synops[0]) == 37.0
    torch.testing.assert_close(feats.detach(), torch.ones(1, 3))
    # an empty scene costs nothing and emits nothing
    feats, _, synops = enc.step(torch.zeros(1, 1, 4, 4))
    assert float(synops[0]) == 0.0 and float(feats.detach().abs().sum()) == 0.0


def test_membranes_carry_over_steps():
    """Below-threshold input integrates: λ = 0.6, θ = 0.5, one weight 0.3 → the third step fires
    (0.3, 0.48, 0.588)."""
    enc = SpikingConvEncoder([1, 2, 2], [1], grid=1)
    with torch.no_grad():
        enc.convs[0].weight.zero_()
        enc.convs[0].weight[0, 0, 1, 1] = 0.3  # the centre tap reads input (0, 0)
    events = torch.zeros(1, 1, 2, 2)
    events[0, 0, 0, 0] = 1.0
    state, fired = None, []
    for _ in range(3):
        feats, state, _ = enc.step(events, state)
        fired.append(float(feats.detach().sum()))
    assert fired == [0.0, 0.0, 1.0]


def _policy(seed: int = 0, **kw) -> HybridPolicy:
    torch.manual_seed(seed)
    cfg = PolicyConfig(
        event_shape=[2, 32, 32], hidden_size=16, encoder="spiking_conv", encoder_grid=3, **kw
    )
    return HybridPolicy(cfg).eval()


@pytest.mark.parametrize("fused", [True, False])
def test_step_equals_sequence_with_state_carried_across_chunks(fused):
    policy = _policy()
    events, proprio = (torch.from_numpy(a) for a in input_sequence(30, 3, (2, 32, 32)))
    with torch.no_grad():
        state, steps = None, []
        for t in range(30):
            a, state = policy.step(events[t], proprio[t], state)
            steps.append(a)
        steps = torch.stack(steps)
        ctx = torch.enable_grad() if fused else unfused()
        with ctx:
            first, s = policy(events[:12], proprio[:12])
            rest, s2 = policy(events[12:], proprio[12:], s)
    torch.testing.assert_close(torch.cat([first, rest]), steps, atol=1e-6, rtol=0)
    for a, b in zip(policy.flatten_state(s2), policy.flatten_state(state)):
        # batched vs per-step convs round differently: ~1e-6 relative on LSTM cells of ~2
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the encoder really spikes on this input (else the test proves little)
    rep = policy.measure_efficiency(events, proprio)
    assert rep.synops_per_step > 1000


def test_fused_and_plain_sequences_give_the_same_gradients():
    policy = _policy().train()
    events, proprio = (torch.from_numpy(a) for a in input_sequence(16, 2, (2, 32, 32)))
    grads = []
    for ctx in (torch.enable_grad(), unfused()):
        policy.zero_grad()
        with ctx:
            a, _ = policy(events, proprio)
            a.pow(2).sum().backward()
        grads.append(policy.encoder.convs[0].weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_reset_zeroes_the_encoder_membranes_of_finished_rows():
    policy = _policy()
    events, proprio = (torch.from_numpy(a) for a in input_sequence(5, 2, (2, 32, 32)))
    with torch.no_grad():
        _, state = policy(events, proprio)
    state = policy.reset_state(state, torch.tensor([True, False]))
    enc = state.encoder
    assert all(float(v[0].abs().sum()) == 0 for v in enc)
    assert any(float(v[1].abs().sum()) > 0 for v in enc)


def _spiking_checkpoint(tmp_path):
    """A small spiking-encoder policy file (32 × 32 events, 8 + 8 units per layer)."""
    return save_test_policy(
        tmp_path / "p.safetensors",
        event_shape=[2, 32, 32],
        hidden_size=8,
        encoder="spiking_conv",
        encoder_grid=3,
    )


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_exported_spiking_encoder_matches_eager_and_reports_its_cost(tmp_path, backend):
    """60 steps, a ratio change at 30, batch 2: actions, every state (encoder membranes
    included) and the per-step cost (encoder SynOps included) equal the eager torch step."""
    ckpt = _spiking_checkpoint(tmp_path)
    events, proprio = input_sequence(60, 2, (2, 32, 32))
    runs = {}
    for name in ("torch", backend):
        rt = load_runtime(ckpt, name, batch_size=2, count_cost=True)
        actions, states, costs = [], [], []
        for t in range(60):
            if t == 30:
                rt.set_ratio(0.25)
            actions.append(rt.step(events[t], proprio[t]))
            states.append(rt.state())
            costs.append((rt.last_cost.synops, rt.last_cost.macs, rt.last_cost.energy_pj))
        runs[name] = (np.array(actions), states, np.array(costs))
    ref_a, ref_s, ref_c = runs["torch"]
    a, s, c = runs[backend]
    assert np.abs(a - ref_a).max() <= TOL
    assert set(s[0]) == set(ref_s[0]) and "encoder.layer0.v" in s[0]
    for x, y in zip(s, ref_s):
        for k in x:
            assert np.abs(x[k] - y[k]).max() <= TOL * max(1.0, float(np.abs(y[k]).max())), k
    assert ref_c[:, 0].min() > 0  # the encoder's SynOps are in the count
    np.testing.assert_allclose(c, ref_c, rtol=1e-5)


def test_energy_falls_with_the_ratio_far_more_than_with_the_dense_encoder():
    """Same core, same inputs: the dense conv encoder's fixed MACs dominate at r = 1; the
    spiking encoder leaves the core's cost to the ratio."""
    events, proprio = (torch.from_numpy(a) for a in input_sequence(20, 2, (2, 32, 32)))
    spread = {}
    for encoder in ("conv", "spiking_conv"):
        torch.manual_seed(0)
        policy = HybridPolicy(
            PolicyConfig(event_shape=[2, 32, 32], encoder=encoder, encoder_grid=3)
        ).eval()
        energy = []
        for r in (0.0, 1.0):
            policy.set_ratio(r)
            energy.append(policy.measure_efficiency(events, proprio).energy_pj_per_step)
        spread[encoder] = energy[0] / energy[1]
    assert spread["conv"] < 2.0
    assert spread["spiking_conv"] > 4.0


def test_fp16_graph_reports_a_busy_scene_s_encoder_synops(tmp_path):
    """A dense scene gives ~10^5 encoder SynOps, beyond fp16's 65504: the graph carries them
    in thousands, so an fp16 TorchScript graph still reports the fp32 count (to fp16
    precision) instead of inf."""
    ckpt = _spiking_checkpoint(tmp_path)
    events = np.ones((2, 32, 32), np.float32)  # every pixel fired
    proprio = np.zeros(8, np.float32)
    costs = []
    for fp16 in (False, True):
        rt = load_runtime(ckpt, "torchscript", fp16=fp16)
        rt.step(events, proprio)
        costs.append(rt.last_cost.synops)
    assert costs[0] > 65504 and np.isfinite(costs[1])
    assert costs[1] == pytest.approx(costs[0], rel=2e-3)

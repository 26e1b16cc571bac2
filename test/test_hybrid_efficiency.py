"""Efficiency accounting: counts from real activity match hand counts on a tiny network."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.efficiency import (
    AC_ENERGY_PJ,
    MAC_ENERGY_PJ,
    count_efficiency,
    measure_efficiency,
)


def tiny_net(recurrent="lstm"):
    """2 layers x (2 spiking + 2 recurrent candidates), ratio 0.5 => 1 + 1 active per layer.

    Layer 0 spiking unit 0 gets current 1.0 > θ = 0.6 every step: it fires every step.
    Layer 1 spiking unit 0 gets current 0.4 (bias only): u = 0.4, 0.64 (spike), 0.4, 0.64 ...
    so it fires every other step.
    """
    torch.manual_seed(0)
    net = HybridNetwork(3, 2, 2, "lif", recurrent, readout_size=1, spiking_ratio=0.5).double()
    with torch.no_grad():
        for layer, bias in zip(net.layers, (1.0, 0.4)):
            layer.spiking.fc.weight.zero_()
            layer.spiking.fc.bias.fill_(bias)
    return net


@pytest.mark.parametrize(("recurrent", "gates"), [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_counts_match_hand_count(recurrent, gates):
    net = tiny_net(recurrent)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    report = measure_efficiency(net, x)
    G = gates
    # per step and sample; n_s = n_r = 1 in both layers
    macs = (
        3 * (1 + G)  # layer 0: dense input (3 values) into 1 spiking + G gate rows
        + G * 1 * 1  # layer 0 recurrent -> recurrent
        + 1 * (1 + G)  # layer 1: the 1 active recurrent output of layer 0, dense
        + G * 1 * 1  # layer 1 recurrent -> recurrent
        + 1 * (1 + 1)  # readout reads rate trace (1) and recurrent state (1)
    )
    acs = 1.0 * (1 + G)  # layer 0 fires 1 spike/step into layer 1's fan-out of 1 + G
    assert report.active_spiking == [1, 1] and report.active_recurrent == [1, 1]
    assert report.firing_rate == [1.0, 0.5]
    assert report.spikes_per_step == [1.0, 0.5]
    assert report.macs_per_step == macs
    assert report.synops_per_step == acs
    assert report.energy_pj_per_step == pytest.approx(macs * 4.6 + acs * 0.9)
    assert report.spiking_ratio == 0.5 and report.steps == 4 and report.batch_size == 2


def test_spike_input_counts_events_and_constants_are_overridable():
    net = tiny_net("rnn")
    x = torch.zeros(4, 2, 3, dtype=torch.float64)
    x[0, 0, 1] = 1.0
    x[2, 1, 0] = 1.0
    x[2, 1, 2] = 1.0  # 3 events over 4 steps x 2 samples
    report = measure_efficiency(net, x, input_is_spikes=True, mac_energy_pj=1.0, ac_energy_pj=0.0)
    # layer 0's input MACs become 3/8 events per step x fan-out (1 spiking + 1 gate row)
    assert report.synops_per_step == pytest.approx(3 / 8 * 2 + 1.0 * 2)
    assert report.macs_per_step == 1 + 1 * 2 + 1 + 2
    assert report.energy_pj_per_step == report.macs_per_step
    assert (MAC_ENERGY_PJ, AC_ENERGY_PJ) == (4.6, 0.9)


def test_counts_follow_the_ratio():
    torch.manual_seed(0)
    net = HybridNetwork(8, 16, 2, "lif", "lstm", readout_size=4).double()
    x = 2 * torch.randn(20, 3, 8, dtype=torch.float64)
    macs = []
    for r in (0.0, 0.25, 0.5, 0.75, 1.0):
        net.set_ratio(r)
        rep = measure_efficiency(net, x)
        macs.append(rep.macs_per_step)
        if r == 0.0:
            assert rep.synops_per_step == 0 and rep.firing_rate == [0.0, 0.0]
    assert macs == sorted(macs, reverse=True)  # fewer recurrent units => fewer MACs
    # counts come from activity: silencing the spiking layer 0 removes its SynOps
    net.set_ratio(0.5)
    _, _, activity = net.forward_with_activity(x)
    silent = activity._replace(spikes=(torch.zeros_like(activity.spikes[0]), activity.spikes[1]))
    assert count_efficiency(net, silent).synops_per_step == 0
    assert count_efficiency(net, activity).synops_per_step > 0


def test_step_with_activity_counts_like_the_sequence():
    net = tiny_net("gru")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    seq_report = measure_efficiency(net, x)
    state, macs, acs, spikes = None, [], [], []
    for t in range(4):
        out, state, activity = net.step_with_activity(x[t], state)
        rep = count_efficiency(net, activity)
        macs.append(rep.macs_per_step)
        acs.append(rep.synops_per_step)
        spikes.append(rep.spikes_per_step[1])
    assert macs == [seq_report.macs_per_step] * 4
    assert sum(acs) / 4 == seq_report.synops_per_step
    assert spikes == [0.0, 1.0, 0.0, 1.0]  # layer 1 fires every other step
    assert torch.allclose(out, net(x)[0][-1])

"""CompactHybridStep: only the active units, same numbers as the masked network step."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.compact import CompactHybridStep


def net_and_input(spiking, recurrent, readout, ratio, subtract=False):
    torch.manual_seed(0)
    kwargs = {"reset": "subtract"} if subtract else {}
    net = (
        HybridNetwork(
            6,
            8,
            2,
            spiking,
            recurrent,
            readout_size=readout,
            spiking_ratio=ratio,
            spiking_kwargs=kwargs,
        )
        .double()
        .eval()
    )
    net.apply_ranking([(torch.randn(8), torch.randn(8)) for _ in range(2)])
    x = 2 * torch.randn(12, 3, 6, dtype=torch.float64)
    return net, x


@pytest.mark.parametrize("spiking", ["lif", "alif"])
@pytest.mark.parametrize("recurrent", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("readout", [3, None])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_compact_step_equals_masked_step(spiking, recurrent, readout, ratio):
    net, x = net_and_input(spiking, recurrent, readout, ratio, subtract=recurrent == "rnn")
    fast = CompactHybridStep(net)
    with torch.no_grad():
        y_ref, s_ref = net(x)
        cstate, ys = fast.initial_state(3), []
        for t in range(12):
            y, cstate = fast(x[t], cstate)
            ys.append(y)
    assert torch.allclose(torch.stack(ys), y_ref, atol=1e-12)
    full = fast.expand_state(cstate)
    for a, b in zip(net.flatten_state(full), net.flatten_state(s_ref)):
        assert torch.allclose(a, b, atol=1e-12)
    n_active = sum(fast.n_s) + sum(fast.n_r)
    assert n_active == 2 * 8  # N active units per layer at any ratio


def test_hot_swap_between_compact_snapshots_keeps_kept_units_state():
    net, x = net_and_input("alif", "lstm", 3, 0.5)
    fast_half = CompactHybridStep(net)
    net.set_ratio(0.75)
    fast_more = CompactHybridStep(net)
    with torch.no_grad():
        net.set_ratio(0.5)
        _, state = net(x[:6])
        cstate = fast_half.compress_state(state)
        net.set_ratio(0.75)
        y_ref, _ = net(x[6:], state)
        cstate = fast_more.compress_state(fast_half.expand_state(cstate))
        ys = []
        for t in range(6, 12):
            y, cstate = fast_more(x[t], cstate)
            ys.append(y)
    assert torch.allclose(torch.stack(ys), y_ref, atol=1e-12)


def test_scripted_compact_step_and_refresh():
    net, x = net_and_input("lif", "lstm", 3, 0.5)
    fast = CompactHybridStep(net)
    scripted = CompactHybridStep(net).scripted(freeze=False)
    frozen = CompactHybridStep(net).scripted()
    with torch.no_grad():
        a, _sa = fast(x[0], fast.initial_state(3))
        b, _sb = scripted(x[0], fast.initial_state(3))
        assert torch.allclose(a, b, atol=1e-12)
        assert torch.allclose(a, frozen(x[0], fast.initial_state(3))[0], atol=1e-12)
        for p in net.parameters():
            p.mul_(1.1)
        fast.refresh()
        y_ref, _ = net.step(x[0])
        y, _ = fast(x[0], fast.initial_state(3))
    assert torch.allclose(y, y_ref, atol=1e-12) and not torch.allclose(y, a)


def test_unsupported_cell():
    net = HybridNetwork(4, 4, 1, "rf", "lstm")
    with pytest.raises(ValueError, match="'lif' and 'alif'"):
        CompactHybridStep(net)

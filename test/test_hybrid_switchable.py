"""SwitchableHybridStep: the compact step at a ratio that changes between steps equals the
masked HybridNetwork.step, before and after a switch, with the kept units' state kept."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.switchable import SwitchableHybridStep


def _net(spiking: str, recurrent: str, ratio: float) -> HybridNetwork:
    torch.manual_seed(0)
    net = HybridNetwork(12, 16, 2, spiking, recurrent, spiking_ratio=ratio, readout_size=3)
    with torch.no_grad():  # lower thresholds: some units spike, so the switch has state
        for layer in net.layers:
            layer.spiking.threshold.mul_(0.3)
    return net.eval()


MODES = {"frozen": {}, "scripted": {"freeze": False}, "eager": {"script": False}}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cells", [("lif", "lstm"), ("lif", "gru"), ("alif", "lstm")])
def test_switch_takes_effect_next_step_and_keeps_the_state_of_kept_units(cells, mode):
    net = _net(*cells, 0.5)
    ref = _net(*cells, 0.5)
    fast = SwitchableHybridStep(net, **MODES[mode])
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(40, 1, 12, generator=gen) * 2
    switches = {8: 0.25, 16: 0.75, 24: 0.5, 32: 0.25}  # the last two return to cached sets
    state, full = fast.initial_state(1), None
    with torch.inference_mode():
        for k, x in enumerate(xs):
            if k in switches:
                r = switches[k]
                state = fast.set_ratio(r, state)
                ref.set_ratio(r)  # the masked path carries its full state unchanged
            out, state = fast.step(x, state)
            want, full = ref.step(x, full)
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
            assert fast.spiking_ratio == ref.spiking_ratio
    assert any(float(s.abs().sum()) > 0 for s in state)
    assert fast.cached_ratios == (3 if mode == "frozen" else 0)


def test_set_ratio_without_state_and_refresh_follow_the_network():
    net = _net("lif", "lstm", 0.5)
    fast = SwitchableHybridStep(net)
    assert fast.set_ratio(1.0) is None and fast.spiking_ratio == 1.0
    x = torch.randn(2, 12)
    with torch.no_grad():
        net.readout.bias.add_(1.0)
        fast.refresh()  # drops the frozen steps of the old weights
        assert fast.cached_ratios == 1
        out, _ = fast.step(x, fast.initial_state(2))
        want, _ = net.step(x, None)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        fast.set_ratio(0.5)  # was cached before the refresh: gathered again, new weights
        out, _ = fast.step(x, fast.initial_state(2))
        want, _ = net.step(x, None)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)

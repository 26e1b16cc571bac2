"""NIR export: parameters survive a write/read round trip, the discrete→continuous LIF
mapping reproduces our network when NIR's equations are stepped with forward Euler, and
parts NIR cannot express are refused with a report naming them."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from hybrid_snn_control.deploy.nir_export import NIRExportError, export_nir, lif_to_nir
from hybrid_snn_control.hybrid.network import HybridNetwork

DT = 1e-3


def _net(ratio=1.0, spiking_cell="lif", **spiking_kwargs) -> HybridNetwork:
    torch.manual_seed(0)
    net = HybridNetwork(
        10,
        hidden_size=16,
        num_layers=2,
        spiking_cell=spiking_cell,
        readout_size=3,
        spiking_ratio=ratio,
        spiking_kwargs=spiking_kwargs or None,
    ).double()
    gen = torch.Generator().manual_seed(3)
    net.apply_ranking([(torch.rand(16, generator=gen), torch.rand(16, generator=gen))] * 2)
    with torch.no_grad():
        for layer in net.layers:
            layer.spiking.fc.weight.mul_(4.0)
    return net.eval()


def _simulate(graph, x_seq: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Step NIR's continuous equations with forward Euler (what the NIR bridges do)."""
    order, node = ["input"], "input"
    succ = dict(graph.edges)
    while node in succ:
        node = succ[node]
        order.append(node)
    state = {k: 0.0 for k in order}
    outs = {k: [] for k in order}
    for x in x_seq:
        h = x
        for k in order[1:]:
            n = graph.nodes[k]
            if isinstance(n, nir.Affine):
                h = n.weight @ h + n.bias
            elif isinstance(n, nir.LIF):
                v = state[k] + dt / n.tau * (n.v_leak - state[k] + n.r * h)
                z = (v > n.v_threshold).astype(float)
                state[k] = np.where(z > 0, n.v_reset, v)
                h = z
            elif isinstance(n, nir.IF):
                v = state[k] + dt * n.r * h
                z = (v > n.v_threshold).astype(float)
                state[k] = np.where(z > 0, n.v_reset, v)
                h = z
            elif isinstance(n, nir.LI):
                state[k] = state[k] + dt / n.tau * (n.v_leak - state[k] + n.r * h)
                h = state[k]
            elif isinstance(n, nir.Output):
                pass
            else:
                raise AssertionError(f"unexpected node {type(n).__name__}")
            outs[k].append(np.array(h, dtype=float))
    return {k: np.array(v) for k, v in outs.items()}


def _inputs(steps=120, seed=0):
    return np.random.default_rng(seed).normal(0.3, 1.0, size=(steps, 10))


def test_lif_mapping_inverts_to_decay_and_unit_gain():
    decay = np.array([0.0, 0.3, 0.6, 0.95])
    node = lif_to_nir(decay, np.full(4, 0.6), DT)
    np.testing.assert_allclose(1.0 - DT / node.tau, decay, atol=1e-15)
    np.testing.assert_allclose(DT / node.tau * node.r, 1.0)
    assert np.all(node.v_leak == 0) and np.all(node.v_reset == 0)
    assert isinstance(lif_to_nir(np.ones(3), np.ones(3), DT), nir.IF)


@pytest.mark.parametrize("kwargs", [{}, {"heterogeneous_tau": 3.0}])
def test_full_spiking_core_round_trips_and_matches_eager(tmp_path, kwargs):
    net = _net(1.0, **kwargs)
    graph, report = export_nir(net, dt=DT)
    assert report.complete
    path = tmp_path / "core.nir"
    nir.write(str(path), graph)
    back = nir.read(str(path))
    assert sorted(back.edges) == sorted(graph.edges)
    assert set(back.nodes) == set(graph.nodes)
    for name, node in graph.nodes.items():
        other = back.nodes[name]
        assert type(other) is type(node)
        for attr in ("weight", "bias", "tau", "r", "v_leak", "v_threshold", "v_reset"):
            if hasattr(node, attr):
                np.testing.assert_array_equal(getattr(other, attr), getattr(node, attr))
    assert float(back.metadata["spiking_ratio"]) == 1.0
    # the read-back graph, stepped with Euler, gives our readout and spikes
    x = _inputs()
    sim = _simulate(back, x, DT)
    state, outs = None, []
    with torch.no_grad():
        for xt in torch.from_numpy(x):
            h = xt[None]
            out, state = net.step(h, state)
            outs.append(out[0].numpy())
    np.testing.assert_allclose(sim["readout"], np.array(outs), atol=1e-9)
    assert sim["layer0.spiking.lif"].mean() > 0.02  # real spiking, not a silent net


def test_partial_ratio_is_refused_strictly_and_exported_partially_on_request():
    net = _net(0.5)
    with pytest.raises(NIRExportError) as err:
        export_nir(net, dt=DT)
    text = str(err.value)
    for part in ("layer0.recurrent", "layer1.recurrent", "layer1.spiking", "trace + readout"):
        assert part in text
    assert "LSTM" in text
    graph, report = export_nir(net, dt=DT, strict=False)
    assert [e.split(" ")[0] for e in report.exported] == ["layer0.spiking"]
    assert set(graph.nodes) == {"input", "layer0.spiking.fc", "layer0.spiking.lif", "output"}
    # the exported part is exactly layer 0's active spiking units
    units = graph.nodes["layer0.spiking.lif"].metadata["units"]
    assert len(units) == 8
    x = _inputs()
    sim = _simulate(graph, x, DT)["layer0.spiking.lif"]
    masks = net.masks()
    with torch.no_grad():
        o, _ = net.layers[0].spiking(torch.from_numpy(x)[:, None], None, masks[0])
    np.testing.assert_array_equal(sim, o[:, 0, units].numpy())


@pytest.mark.parametrize(
    ("cell", "kwargs", "reason"),
    [
        ("alif", {}, "ALIF adaptive threshold"),
        ("stc_lif", {}, "STC"),
        ("rf", {}, "RF complex"),
        ("lif", {"reset": "subtract"}, "subtractive reset"),
    ],
)
def test_units_nir_cannot_express_are_named_not_exported(cell, kwargs, reason):
    net = _net(1.0, spiking_cell=cell, **kwargs)
    with pytest.raises(NIRExportError, match=reason) as err:
        export_nir(net, dt=DT, strict=False)  # nothing expressible: an error even if partial
    assert "layer0.spiking" in str(err.value) and not err.value.report.exported


def test_policy_export_notes_encoder_and_head(tmp_path):
    from deploy_fixtures import make_policy

    policy = make_policy(hidden_size=8)
    graph, report = export_nir(policy, ratio=1.0, dt=DT)
    assert report.complete and any("encoder" in n for n in report.notes)
    assert any("tanh" in n for n in report.notes)
    assert graph.nodes["input"].input_type["input"].tolist() == [policy.core.input_size]

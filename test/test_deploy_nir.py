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


def _simulate_dag(graph, inputs: dict[str, np.ndarray], dt: float) -> dict[str, np.ndarray]:
    """Forward-Euler steps of an acyclic NIR graph with several inputs (edges into a node
    are summed, as NIR defines); Conv2d through torch, in float64."""
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    order, done = [], set()
    while len(order) < len(graph.nodes):
        for k in graph.nodes:
            if k not in done and all(p in done for p in preds[k]):
                order.append(k)
                done.add(k)
    state: dict[str, np.ndarray] = {}
    outs: dict[str, list] = {k: [] for k in order}
    steps = len(next(iter(inputs.values())))
    for t in range(steps):
        val: dict[str, np.ndarray] = {}
        for k in order:
            n = graph.nodes[k]
            h = inputs[k][t] if isinstance(n, nir.Input) else sum(val[p] for p in preds[k])
            if isinstance(n, nir.Threshold):
                h = (h > n.threshold).astype(float)
            elif isinstance(n, nir.Conv2d):
                h = torch.nn.functional.conv2d(
                    torch.from_numpy(h)[None], torch.from_numpy(n.weight), torch.from_numpy(n.bias),
                    stride=tuple(n.stride), padding=tuple(n.padding),
                )[0].numpy()  # fmt: skip
            elif isinstance(n, nir.Flatten):
                h = h.reshape(-1)
            elif isinstance(n, nir.Affine):
                h = n.weight @ h + n.bias
            elif isinstance(n, nir.LIF):
                v = state.get(k, 0.0)
                v = v + dt / n.tau * (n.v_leak - v + n.r * h)
                z = (v > n.v_threshold).astype(float)
                state[k] = np.where(z > 0, n.v_reset, v)
                h = z
            elif isinstance(n, nir.LI):
                state[k] = state.get(k, 0.0) + dt / n.tau * (n.v_leak - state.get(k, 0.0) + n.r * h)
                h = state[k]
            elif not isinstance(n, (nir.Input, nir.Output)):
                raise AssertionError(f"unexpected node {type(n).__name__}")
            val[k] = h
            outs[k].append(np.array(h, dtype=float))
    return {k: np.array(v) for k, v in outs.items()}


# 16 x 16 pools a 4 x 4 map to 2 x 2 (AvgPool2d), 20 x 20 a 5 x 5 map (AdaptivePoolMatmul)
@pytest.mark.parametrize("size", [16, 20])
def test_spiking_conv_encoder_is_exported_in_front_of_the_core(tmp_path, size):
    """events -> Threshold -> (Conv2d -> LIF) x 2 -> Flatten -> layer 0 (+ proprio) -> ...
    -> readout: written, read back, stepped with Euler, it gives the eager pre-tanh action."""
    from deploy_fixtures import make_policy

    policy = make_policy(
        hidden_size=8, encoder="spiking_conv", event_shape=[2, size, size], encoder_grid=2
    ).double()
    graph, report = export_nir(policy, ratio=1.0, dt=DT)
    assert report.complete and report.exported[0].startswith("encoder")
    assert not any("encoder" in n for n in report.notes)  # only the tanh head is left out
    path = tmp_path / "policy.nir"
    nir.write(str(path), graph)
    back = nir.read(str(path))
    assert {"events", "proprio", "encoder.conv1", "encoder.lif1"} <= set(back.nodes)
    rng = np.random.default_rng(0)
    steps = 60
    events = rng.poisson(0.03, size=(steps, 2, size, size)).astype(float)
    proprio = rng.normal(0.0, 1.0, size=(steps, policy.cfg.proprio_size))
    sim = _simulate_dag(back, {"events": events, "proprio": proprio}, DT)
    policy.set_ratio(1.0)
    enc_state = core_state = None
    outs = []
    with torch.no_grad():
        for ev, pr in zip(torch.from_numpy(events), torch.from_numpy(proprio)):
            x, enc_state, _ = policy.encode(ev[None], pr[None], enc_state)
            out, core_state = policy.core.step(x, core_state)
            outs.append(out[0].numpy())
    np.testing.assert_allclose(sim["readout"], np.array(outs), atol=1e-9)
    assert 0.01 < sim["encoder.lif1"].mean() < 0.9  # the encoder really spikes
    assert 0.01 < sim["layer0.spiking.lif"].mean() < 0.9


def test_an_event_floor_keeps_the_spiking_encoder_out_of_nir():
    from deploy_fixtures import make_policy

    policy = make_policy(
        hidden_size=8, encoder="spiking_conv", event_shape=[2, 16, 16], event_floor="quantile"
    )
    graph, report = export_nir(policy, ratio=1.0, dt=DT)
    assert any("event floor" in n for n in report.notes)
    assert "events" not in graph.nodes and "input" in graph.nodes

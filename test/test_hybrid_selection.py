"""Hessian-aware selection: Hutchinson converges to the exact Hessian-diagonal trace."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.selection import (
    global_order,
    hessian_importance,
    hutchinson_unit_traces,
    unit_weight_groups,
)
from hybrid_snn_control.neurons.fused import unfused


def small_problem(spiking="lif", recurrent="lstm"):
    torch.manual_seed(0)
    net = HybridNetwork(
        3, 4, 2, spiking, recurrent, readout_size=2, spiking_kwargs={"surrogate": "sigmoid"}
    ).double()
    net.set_redundant()
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(5, 6, 3, generator=g, dtype=torch.float64)
    target = torch.randn(6, 2, generator=g, dtype=torch.float64)
    return net, (x, target)


def loss_fn(net, batch):
    x, target = batch
    out, _ = net(x)
    return ((out.mean(0) - target) ** 2).mean()


def exact_unit_traces(net, batch, with_std=False):
    """tr(H_jj) per unit from the full Hessian (torch.autograd.functional.hessian).

    With ``with_std``, also the standard deviation of one Rademacher probe's term
    ``v_J^T (H v)_J``: pairs inside J count 4 H_ab^2, pairs leaving J count H_ab^2.
    """
    groups = unit_weight_groups(net)
    weights = [g[2] for g in groups]
    names = {id(p): n for n, p in net.named_parameters()}
    sizes = [w.numel() for w in weights]
    flat0 = torch.cat([w.detach().reshape(-1) for w in weights])

    def loss_of(flat):
        params = {names[id(w)]: p.reshape(w.shape) for w, p in zip(weights, flat.split(sizes))}
        return loss_fn(lambda x: functional_call(net, params, (x,)), batch)

    with unfused():  # the fused LIF kernel has no second derivative
        hessian = torch.autograd.functional.hessian(loss_of, flat0)
    # unit id of every flat weight entry: (layer, type, unit)
    owner = []
    for kind, i, w, _rows, n in groups:
        unit = (torch.arange(w.shape[0]) % n)[:, None].expand(w.shape[0], w[0].numel())
        owner.append(unit.reshape(-1) + n * (2 * i + (0 if kind == "spiking" else 1)))
    owner = torch.cat(owner)
    n_units = int(owner.max()) + 1
    onehot = torch.nn.functional.one_hot(owner, n_units).double()  # [P, U]
    trace = onehot.T @ hessian.diagonal()
    off = hessian**2 - torch.diag(hessian.diagonal() ** 2)
    inside = torch.einsum("au,ab,bu->u", onehot, off, onehot)  # ordered pairs within J
    leaving = torch.einsum("au,ab->u", onehot, off) - inside
    std = torch.sqrt(2 * inside + leaving)  # 4 H^2 per unordered pair = 2 per ordered pair
    n = groups[0][4]

    def shape(t):
        return [
            (t[2 * i * n : (2 * i + 1) * n], t[(2 * i + 1) * n : (2 * i + 2) * n])
            for i in range(len(net.layers))
        ]

    return (shape(trace), shape(std)) if with_std else shape(trace)


def test_hutchinson_converges_to_exact_hessian_diagonal_trace():
    net, batch = small_problem()
    exact, std = exact_unit_traces(net, batch, with_std=True)
    worst = {}
    for probes in (50, 2000):
        est = hutchinson_unit_traces(
            net,
            loss_fn,
            [batch],
            num_probes=probes,
            probes_per_pass=50,
            generator=torch.Generator().manual_seed(3),
        )
        # error in units of the estimator's standard error: must stay within 4 sigma
        z = max(
            ((est[i][k] - exact[i][k]).abs() / (std[i][k] / probes**0.5 + 1e-15)).max()
            for i in range(2)
            for k in range(2)
        )
        assert z < 4.0, (probes, z)
        worst[probes] = max(
            ((est[i][k] - exact[i][k]).abs()).max() for i in range(2) for k in range(2)
        )
    assert worst[2000] < 0.3 * worst[50]  # and the error shrinks like 1/sqrt(M)


def test_unit_without_effect_scores_zero_and_ranks_last():
    net, batch = small_problem()
    n = 4
    with torch.no_grad():  # last layer: spiking unit 1 and recurrent unit 2 feed nothing
        net.readout.weight[:, 1] = 0.0
        net.readout.weight[:, n + 2] = 0.0
        net.layers[1].recurrent.weight_hh[:, 2] = 0.0
    exact = exact_unit_traces(net, batch)
    assert exact[1][0][1] == 0 and exact[1][1][2] == 0  # tr(H_jj) is exactly zero
    scores = hessian_importance(
        net,
        loss_fn,
        [batch],
        num_probes=400,
        probes_per_pass=50,
        generator=torch.Generator().manual_seed(0),
    )
    s_scores, r_scores = scores[1]
    # The spiking unit's Hessian rows vanish (its readout weights are not probed): exactly 0.
    assert s_scores[1] == 0 < s_scores.abs().max()
    # The recurrent unit's rows couple to the probed W_hh[:, 2] (off-diagonal), so its
    # estimate is zero only in expectation: small against the other units.
    assert r_scores[2].abs() < 0.05 * r_scores.abs().max()
    net.apply_ranking(scores)
    assert net.layers[1].spiking_rank[1] > net.layers[1].spiking_rank[s_scores.argmax()]
    net.set_ratio(0.5)
    sd = net.state_dict()
    assert torch.equal(sd["layers.1.spiking_importance"], s_scores.to(sd["ratio"].dtype))
    order = global_order(scores, "recurrent")
    assert order.shape == (8, 2)


def test_batched_probes_equal_one_probe_per_pass():
    net, batch = small_problem("alif", "gru")
    a, b = (
        hutchinson_unit_traces(
            net,
            loss_fn,
            [batch],
            num_probes=6,
            probes_per_pass=k,
            generator=torch.Generator().manual_seed(0),
        )
        for k in (1, 6)
    )
    for (sa, ra), (sb, rb) in zip(a, b):
        assert torch.allclose(sa, sb, atol=1e-12) and torch.allclose(ra, rb, atol=1e-12)
        assert sa.abs().sum() > 0 and ra.abs().sum() > 0


def test_bad_arguments():
    net, batch = small_problem()
    with pytest.raises(ValueError, match="num_probes"):
        hessian_importance(net, loss_fn, [batch], num_probes=0)
    with pytest.raises(ValueError, match="empty"):
        hessian_importance(net, loss_fn, [], num_probes=2)

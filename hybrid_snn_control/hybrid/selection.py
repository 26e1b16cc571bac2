r"""Hessian-aware unit selection (HSTNN stage 2; Wu, Shi et al. 2024).

Unit j's importance is the Hutchinson estimate of the trace of the Hessian block of its
*incoming* weights, normalized per weight and scaled by the weights' squared norm:

.. math::
    I_j = \frac{1}{n_j}\,\frac{1}{M}\sum_{m=1}^{M} (v_m)_j^\top (H v_m)_j
          \cdot \lVert W_{j} \rVert^2,
    \qquad v_m \sim \text{Rademacher}

where :math:`(\cdot)_j` restricts a vector to unit j's ``n_j`` incoming weights (rows of
the input projection — for LSTM/GRU the rows of every gate, for RF both Re B and Im B —
and, for recurrent units, of the recurrent matrix). Because
:math:`E[v v^\top] = I`, :math:`E[(v)_j^\top (Hv)_j] = \mathrm{tr}(H_{jj})`.

Vectorized: one Hessian–vector product (double backward through autograd, surrogate
included) per probe gives every unit's term at once; ``probes_per_pass > 1`` batches
several probes in one call with ``is_grads_batched`` (vmap) where torch supports it.
There is no per-unit loop of backward passes.

Use::

    net.set_redundant()                       # score all 2N units per layer
    scores = hessian_importance(net, loss_fn, batches, num_probes=300)
    net.apply_ranking(scores)                 # ranks -> buffers in the state_dict
    net.set_ratio(0.5)                        # keeps the best ⌊rN⌋ spiking, rest recurrent

Scores are comparable across layers (per-weight normalization), so units can also be
ranked per type across layers with :func:`global_order`; the masks themselves keep a
fixed count per layer (see :mod:`.network`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.fused import unfused


def unit_weight_groups(net: nn.Module) -> list[tuple[str, int, Tensor, int, int]]:
    """``(type, layer, weight, rows_per_unit, hidden_size)`` for every incoming weight."""
    groups = []
    for i, layer in enumerate(net.layers):
        for kind, cell in (("spiking", layer.spiking), ("recurrent", layer.recurrent)):
            for weight, rows_per_unit in cell.incoming_weights():
                groups.append((kind, i, weight, rows_per_unit, layer.hidden_size))
    return groups


def _per_unit(t: Tensor, hidden_size: int) -> Tensor:
    """Sum a weight-shaped tensor over each unit's rows (row r belongs to unit r % N)."""
    rows = t.reshape(t.shape[0], -1).sum(dim=1)
    return rows.reshape(-1, hidden_size).sum(dim=0)


def _rademacher(weights: list[Tensor], generator: torch.Generator | None, probes: int):
    """``probes`` Rademacher vectors per weight, ``[probes, *w.shape]``, from one draw of
    ``[probes, total]`` (probe-major, so batching probes does not change the stream)."""
    sizes = [w.numel() for w in weights]
    bits = torch.randint(0, 2, (probes, sum(sizes)), generator=generator, device="cpu")
    signs = bits.to(weights[0].dtype) * 2 - 1
    return [
        part.reshape(probes, *w.shape).to(w.device)
        for part, w in zip(signs.split(sizes, dim=1), weights)
    ]


def hutchinson_unit_traces(
    net: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    batches: Iterable[Any],
    num_probes: int = 300,
    probes_per_pass: int = 16,
    generator: torch.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Per layer ``(spiking, recurrent)`` Hutchinson estimates of tr(H_jj) (not normalized).

    ``loss_fn(net, batch)`` returns a scalar loss; the estimate averages over the batches
    and ``num_probes`` Rademacher probes per batch.
    """
    if num_probes < 1 or probes_per_pass < 1:
        raise ValueError("num_probes and probes_per_pass must be >= 1")
    groups = unit_weight_groups(net)
    weights = [g[2] for g in groups]
    sums = [torch.zeros(g[4], dtype=g[2].dtype, device=g[2].device) for g in groups]
    n_batches = 0
    with unfused():  # the fused LIF/ALIF kernels have no second derivative
        for batch in batches:
            loss = loss_fn(net, batch)
            grads = torch.autograd.grad(loss, weights, create_graph=True)
            done = 0
            while done < num_probes:
                k = min(probes_per_pass, num_probes - done)
                probes = _rademacher(weights, generator, k)
                if k == 1:
                    hvps = torch.autograd.grad(
                        grads, weights, [p[0] for p in probes], retain_graph=True, allow_unused=True
                    )
                    hvps = [None if h is None else h[None] for h in hvps]
                else:
                    hvps = torch.autograd.grad(
                        grads,
                        weights,
                        probes,
                        retain_graph=True,
                        allow_unused=True,
                        is_grads_batched=True,
                    )
                for s, p, h, g in zip(sums, probes, hvps, groups):
                    if h is not None:
                        s += _per_unit((p * h).sum(0), g[4])
                done += k
            n_batches += 1
    if n_batches == 0:
        raise ValueError("batches is empty")
    total = n_batches * num_probes
    out = [[None, None] for _ in net.layers]
    for (kind, i, _w, _rpu, _n), s in zip(groups, sums):
        slot = 0 if kind == "spiking" else 1
        out[i][slot] = s / total if out[i][slot] is None else out[i][slot] + s / total
    return [(s, r) for s, r in out]


def hessian_importance(
    net: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    batches: Iterable[Any],
    num_probes: int = 300,
    probes_per_pass: int = 16,
    generator: torch.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """HSTNN importance ``I_j = tr̂(H_jj) / n_j · ‖W_j‖²`` per layer ``(spiking, recurrent)``.

    Pass the result to ``net.apply_ranking``. Run on the redundant network
    (``net.set_redundant()``) to score every candidate unit.
    """
    traces = hutchinson_unit_traces(net, loss_fn, batches, num_probes, probes_per_pass, generator)
    groups = unit_weight_groups(net)
    counts = [[0, 0] for _ in net.layers]
    norms = [[0.0, 0.0] for _ in net.layers]
    with torch.no_grad():
        for kind, i, w, rpu, n in groups:
            slot = 0 if kind == "spiking" else 1
            counts[i][slot] += rpu * (w.numel() // w.shape[0])
            norms[i][slot] = norms[i][slot] + _per_unit(w.detach() ** 2, n)
    return [
        (traces[i][0] / counts[i][0] * norms[i][0], traces[i][1] / counts[i][1] * norms[i][1])
        for i in range(len(traces))
    ]


def global_order(scores: list[tuple[Tensor, Tensor]], kind: str = "spiking") -> Tensor:
    """Units of one type ranked across layers: rows ``(layer, unit)``, best first."""
    slot = {"spiking": 0, "recurrent": 1}[kind]
    all_scores = torch.cat([s[slot] for s in scores])
    order = torch.argsort(all_scores, descending=True, stable=True)
    n = scores[0][slot].numel()
    return torch.stack([order // n, order % n], dim=1)

r"""Hybrid spiking–recurrent layer (HSTNN; Wu, Shi et al., Nat. Commun. 2024).

A layer holds ``N`` spiking and ``N`` recurrent *candidate* units (the "redundant"
network). Both populations read the layer input; the output is the concatenation

.. math::
    h_t = [\,m^s \odot o_t,\; m^r \odot y_t\,] \in \mathbb{R}^{2N}

which both populations of the next layer read. Spiking units keep only their own
membrane recurrence; recurrent units have recurrent→recurrent weights. The masks
:math:`m^s, m^r \in \{0,1\}^N` select the active units: a unit with mask 0 outputs 0,
holds zero state and does not influence any active unit.

Which units a ratio keeps is set by a stored per-unit ranking (buffers ``spiking_rank``,
``recurrent_rank``: 0 = most important), so the kept sets are nested: keeping the ``n``
best units of a type for growing ``n`` never drops a unit. The ranking and the
importance scores (``spiking_importance``, ``recurrent_importance``) live in the
state_dict and travel with the weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons import make_recurrent_cell, make_spiking_cell


class HybridLayerState(NamedTuple):
    spiking: Any  # the spiking cell's state NamedTuple (e.g. LIFState)
    recurrent: Any  # the recurrent cell's state NamedTuple (e.g. LSTMState)


class HybridState(NamedTuple):
    """A whole network's state (here, not in ``network.py``, so that modules the network
    dispatches to can build one without importing it)."""

    layers: tuple  # one HybridLayerState per layer
    trace: Tensor  # spike-rate trace of the last layer's spiking units [B, N]


class HybridLayer(nn.Module):
    """One hybrid layer: ``out, state = layer.step(x, state, spiking_mask, recurrent_mask)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        spiking_cell: str = "lif",
        recurrent_cell: str = "lstm",
        spiking_kwargs: dict | None = None,
        recurrent_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size
        self.spiking_kind = spiking_cell
        self.recurrent_kind = recurrent_cell
        self.spiking = make_spiking_cell(
            spiking_cell, input_size, hidden_size, **(spiking_kwargs or {})
        )
        self.recurrent = make_recurrent_cell(
            recurrent_cell, input_size, hidden_size, **(recurrent_kwargs or {})
        )
        ones = torch.ones(hidden_size)
        order = torch.arange(hidden_size)
        self.register_buffer("spiking_mask", ones.clone())
        self.register_buffer("recurrent_mask", ones.clone())
        self.register_buffer("spiking_rank", order.clone())
        self.register_buffer("recurrent_rank", order.clone())
        self.register_buffer("spiking_importance", torch.zeros(hidden_size))
        self.register_buffer("recurrent_importance", torch.zeros(hidden_size))

    def extra_repr(self) -> str:
        return f"{self.input_size} -> 2x{self.hidden_size}"

    def initial_state(self, batch_size: int, device=None, dtype=None) -> HybridLayerState:
        return HybridLayerState(
            self.spiking.initial_state(batch_size, device, dtype),
            self.recurrent.initial_state(batch_size, device, dtype),
        )

    @torch.no_grad()
    def set_counts(self, n_spiking: int, n_recurrent: int) -> None:
        """Keep the ``n_spiking`` / ``n_recurrent`` best-ranked units (in place, no allocation
        of parameters or buffers)."""
        self.spiking_mask.copy_(self.spiking_rank < n_spiking)
        self.recurrent_mask.copy_(self.recurrent_rank < n_recurrent)

    @torch.no_grad()
    def set_ranking(self, spiking_scores: Tensor, recurrent_scores: Tensor) -> None:
        """Store importance scores and the ranks they imply (higher score = lower rank)."""
        for scores, rank, importance in (
            (spiking_scores, self.spiking_rank, self.spiking_importance),
            (recurrent_scores, self.recurrent_rank, self.recurrent_importance),
        ):
            scores = torch.as_tensor(scores).to(importance)
            if scores.shape != importance.shape:
                raise ValueError(
                    f"scores must have shape [{self.hidden_size}], got {tuple(scores.shape)}"
                )
            if not bool(torch.isfinite(scores).all()):
                raise ValueError("importance scores must be finite")
            order = torch.argsort(scores, descending=True, stable=True)
            rank.copy_(torch.empty_like(order).scatter_(0, order, torch.arange(len(order))))
            importance.copy_(scores)

    def step(
        self, x: Tensor, state: HybridLayerState, spiking_mask: Tensor, recurrent_mask: Tensor
    ) -> tuple[Tensor, HybridLayerState]:
        o, s_state = self.spiking.step(x, state.spiking, spiking_mask)
        y, r_state = self.recurrent.step(x, state.recurrent, recurrent_mask)
        return torch.cat([o, y], dim=-1), HybridLayerState(s_state, r_state)

    def forward(
        self, x_seq: Tensor, state: HybridLayerState, spiking_mask: Tensor, recurrent_mask: Tensor
    ) -> tuple[Tensor, HybridLayerState]:
        o, s_state = self.spiking(x_seq, state.spiking, spiking_mask)
        y, r_state = self.recurrent(x_seq, state.recurrent, recurrent_mask)
        return torch.cat([o, y], dim=-1), HybridLayerState(s_state, r_state)

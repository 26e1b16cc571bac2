r"""A ratio-switchable step that pays only for the active units.

:meth:`HybridNetwork.step` computes all ``2N`` candidates of a layer and masks them, so a
ratio change is free but every step costs the whole redundant network.
:class:`~hybrid_snn_control.hybrid.compact.CompactHybridStep` costs only the active units
but is a snapshot of one ratio.  :class:`SwitchableHybridStep` joins the two: one
TorchScript module of the compact step (scripted once, not frozen) whose weights and
unit counts are regathered from the network at :meth:`set_ratio` — a few milliseconds,
well under a control period, and no re-scripting — while the explicit state is remapped
so that units active at both ratios keep theirs.

.. code-block:: python

    fast = SwitchableHybridStep(net)            # at net.spiking_ratio
    state = fast.initial_state(1)               # compact: active units only
    out, state = fast.step(x, state)            # == net.step(x, full_state)[0]
    state = fast.set_ratio(0.25, state)         # takes effect at the next step, state kept
    full = fast.expand_state(state)             # -> HybridState (zeros for inactive units)

Supported cells are those of :class:`CompactHybridStep` (spiking ``lif``/``alif``,
recurrent ``lstm``/``gru``/``rnn``); inference only (no gradients).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hybrid_snn_control.hybrid.compact import CompactHybridStep
from hybrid_snn_control.hybrid.network import HybridNetwork, HybridState

__all__ = ["SwitchableHybridStep"]


class SwitchableHybridStep:
    """Compact step of ``net`` at a ratio that can change between steps (module doc).

    ``script=False`` runs the compact step eagerly (slower per step; no TorchScript).
    The network's weights are read at construction and at every :meth:`set_ratio`; after
    training them further call :meth:`refresh`.
    """

    def __init__(self, net: HybridNetwork, script: bool = True) -> None:
        self.net = net
        self._snapshot = CompactHybridStep(net).eval()
        self._module = self._snapshot.scripted(freeze=False) if script else self._snapshot
        self._scripted = script

    @property
    def spiking_ratio(self) -> float:
        return self._snapshot.spiking_ratio

    def initial_state(self, batch_size: int) -> list[Tensor]:
        return self._snapshot.initial_state(batch_size)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One step on ``x [B, in]``: ``(output, next compact state)``."""
        return self._module(x, state)

    def set_ratio(self, r: float, state: list[Tensor] | None = None) -> list[Tensor] | None:
        """Switch to ratio ``r`` from the next step on; returns ``state`` remapped to the new
        active units (units active before and after keep their state, new ones start at
        zero), or None when no state was given."""
        full = self._snapshot.expand_state(state) if state is not None else None
        self.net.set_ratio(r)
        self._load(CompactHybridStep(self.net).eval())
        return None if full is None else self._snapshot.compress_state(full)

    def refresh(self) -> None:
        """Re-gather the weights at the current ratio (after the network was trained)."""
        self._load(CompactHybridStep(self.net).eval())

    def expand_state(self, state: list[Tensor]) -> HybridState:
        return self._snapshot.expand_state(state)

    def compress_state(self, state: HybridState) -> list[Tensor]:
        return self._snapshot.compress_state(state)

    @torch.no_grad()
    def _load(self, snapshot: CompactHybridStep) -> None:
        """Move ``snapshot``'s weights and unit counts into the running module."""
        self._snapshot = snapshot
        if not self._scripted:
            self._module = snapshot
            return
        module = self._module
        for name, buf in snapshot.named_buffers():
            *path, leaf = name.split(".")
            owner = module
            for p in path:
                owner = getattr(owner, p)
            setattr(owner, leaf, buf)
        module._c.setattr("n_s", list(snapshot.n_s))
        module._c.setattr("n_r", list(snapshot.n_r))
        module._c.setattr("spiking_ratio", snapshot.spiking_ratio)
        layers = module._c.getattr("layers")
        for k, layer in enumerate(snapshot.layers):
            small = layers.getattr(str(k))
            small.setattr("n_s", layer.n_s)
            small.setattr("n_r", layer.n_r)

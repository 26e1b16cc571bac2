r"""A ratio-switchable step that pays only for the active units.

:meth:`HybridNetwork.step` computes all ``2N`` candidates of a layer and masks them, so a
ratio change is free but every step costs the whole redundant network.
:class:`~hybrid_snn_control.hybrid.compact.CompactHybridStep` costs only the active units
but is a snapshot of one ratio.  :class:`SwitchableHybridStep` joins the two: one
TorchScript module of the compact step, scripted once, whose weights and unit counts are
regathered from the network at :meth:`set_ratio`, then frozen (``torch.jit.freeze``:
weights and unit counts become graph constants, ~7 % faster per step than reading them
as attributes).  A frozen step is kept per active-unit set, so returning to a ratio
already visited is a lookup; a first visit costs the gather plus the freeze (~6 ms on a
2-core CPU for 2 x 128 units, under one 100 Hz control period).  The explicit state is
remapped so that units active at both ratios keep theirs.

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

import warnings

import torch
from torch import Tensor

from hybrid_snn_control.hybrid.compact import CompactHybridStep
from hybrid_snn_control.hybrid.network import HybridNetwork, HybridState

__all__ = ["SwitchableHybridStep"]


class SwitchableHybridStep:
    """Compact step of ``net`` at a ratio that can change between steps (module doc).

    ``script=False`` runs the compact step eagerly (slower per step; no TorchScript);
    ``freeze=False`` runs the scripted module unfrozen (no per-ratio cache; a switch
    is the gather alone). The network's weights are read at construction and at the
    first visit of each active-unit set; after training them further call
    :meth:`refresh` (it drops the cache).
    """

    def __init__(self, net: HybridNetwork, script: bool = True, freeze: bool = True) -> None:
        self.net = net
        self._scripted = script
        self._freeze = script and freeze
        self._snapshot = CompactHybridStep(net).eval()
        self._template = self._snapshot.scripted(freeze=False) if script else None
        self._cache: dict[bytes, tuple[CompactHybridStep, torch.nn.Module]] = {}
        self._module = self._install(self._snapshot)

    @property
    def spiking_ratio(self) -> float:
        return self._snapshot.spiking_ratio

    @property
    def cached_ratios(self) -> int:
        """How many active-unit sets have a frozen step ready (a switch to them is a lookup)."""
        return len(self._cache)

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
        cached = self._cache.get(self._active_key()) if self._freeze else None
        if cached is None:
            self._module = self._install(CompactHybridStep(self.net).eval())
        else:
            self._snapshot, self._module = cached
        return None if full is None else self._snapshot.compress_state(full)

    def refresh(self) -> None:
        """Re-gather the weights at the current ratio (after the network was trained)."""
        self._cache.clear()
        self._module = self._install(CompactHybridStep(self.net).eval())

    def expand_state(self, state: list[Tensor]) -> HybridState:
        return self._snapshot.expand_state(state)

    def compress_state(self, state: HybridState) -> list[Tensor]:
        return self._snapshot.compress_state(state)

    def _active_key(self) -> bytes:
        """The network's active units (every layer's two masks) as a cache key."""
        masks = [m for layer in self.net.layers for m in (layer.spiking_mask, layer.recurrent_mask)]
        return torch.cat([m.flatten() for m in masks]).to(torch.bool).cpu().numpy().tobytes()

    @torch.no_grad()
    def _install(self, snapshot: CompactHybridStep) -> torch.nn.Module:
        """Make ``snapshot`` the running step; returns the module :meth:`step` calls."""
        self._snapshot = snapshot
        if not self._scripted:
            return snapshot
        module = self._template
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
        if not self._freeze:
            return module
        with warnings.catch_warnings():  # torch 2.13 deprecates jit.freeze (as in compact.py)
            warnings.simplefilter("ignore", DeprecationWarning)
            frozen = torch.jit.freeze(module)  # a copy: later template edits do not reach it
        self._cache[self._active_key()] = (snapshot, frozen)
        return frozen

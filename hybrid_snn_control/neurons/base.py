"""The one interface every cell (spiking or recurrent) implements.

.. code-block:: python

    y, state = cell.step(x, state)          # one step, x: [B, in]; state None => zeros
    y_seq, state = cell(x_seq, state)       # time-first sequence, x_seq: [T, B, in]

Both paths give the same numbers (tested to 1e-6 in float64). ``mask`` (optional, shape
``[hidden_size]``, 1 = active, 0 = inactive) switches units off: their output and state
are zero and they do not influence active units. The hybrid layer uses it for the
spiking ratio; a plain cell never needs it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class Cell(nn.Module):
    """Base class: subclasses implement ``initial_state`` and ``step``; ``forward`` loops.

    Subclasses override ``forward`` where a whole sequence can be computed faster (input
    projection fused over time, a parallel scan, cuDNN-style fused RNN kernels).
    """

    hidden_size: int
    #: Weight-matrix rows per unit in :meth:`incoming_weights` (4 for LSTM gates).
    gates: int = 1

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Any:
        raise NotImplementedError

    def step(self, x: Tensor, state: Any = None, mask: Tensor | None = None) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def forward(
        self, x_seq: Tensor, state: Any = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        check_sequence(x_seq)
        outputs = []
        for t in range(x_seq.shape[0]):
            y, state = self.step(x_seq[t], state, mask)
            outputs.append(y)
        return torch.stack(outputs), state

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        """``(weight, rows_per_unit)`` for each matrix whose rows feed this cell's units.

        Row ``r`` of a weight with ``rows_per_unit = G`` belongs to unit ``r % hidden_size``
        (torch's gate-stacked layout). Used by Hessian-aware selection and accounting.
        """
        raise NotImplementedError


def check_sequence(x_seq: Tensor) -> None:
    if x_seq.dim() < 3:
        raise ValueError(
            f"sequence input must be time-first [T, B, ...] with at least 3 dims, "
            f"got shape {tuple(x_seq.shape)}"
        )
    if x_seq.shape[0] == 0:
        raise ValueError("sequence input has T = 0 steps")


def as_unit_vector(value: float | Tensor, hidden_size: int, name: str) -> Tensor:
    """A per-neuron parameter vector from a scalar or a ``[hidden_size]`` tensor."""
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
    if t.dim() == 0:
        t = t.expand(hidden_size).clone()
    if t.shape != (hidden_size,):
        raise ValueError(f"{name} must be a scalar or shape [{hidden_size}], got {tuple(t.shape)}")
    return t


def register_vector(module: nn.Module, name: str, value: Tensor, learnable: bool) -> None:
    """Register a per-neuron vector as a Parameter (learnable) or a buffer (fixed)."""
    if learnable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def heterogeneous_decay(
    decay: float, hidden_size: int, gamma_shape: float, generator: torch.Generator | None
) -> Tensor:
    """Per-neuron decays exp(-1/tau), tau ~ Gamma(k, mean = -1/ln(decay)) (HRSNN-style)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"heterogeneous time constants need 0 < decay < 1, got {decay}")
    if gamma_shape <= 0:
        raise ValueError(f"gamma shape must be > 0, got {gamma_shape}")
    tau_mean = -1.0 / torch.log(torch.tensor(decay, dtype=torch.float64))
    # Gamma(k, rate) sampled via torch's standard gamma: X ~ Gamma(k, 1) / rate.
    k = torch.full((hidden_size,), float(gamma_shape), dtype=torch.float64)
    if generator is not None:
        g = torch._standard_gamma(k, generator=generator)
    else:
        g = torch._standard_gamma(k)
    tau = (g / (gamma_shape / tau_mean)).clamp_min(1e-3)
    return torch.exp(-1.0 / tau).to(torch.get_default_dtype())

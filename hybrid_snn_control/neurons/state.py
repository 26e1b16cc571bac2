"""Helpers for explicit recurrent state.

Every cell's state is a ``NamedTuple`` of tensors whose first dimension is the batch
(a network state nests them). These helpers work on any such structure, so trainers
cut BPTT and reset finished episodes the same way for every cell.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def map_state(fn, state: Any) -> Any:
    """Apply ``fn`` to every tensor of a (nested) tuple / NamedTuple state."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple):
        items = [map_state(fn, item) for item in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    if state is None:
        return None
    raise TypeError(f"state must be a tensor or a (named) tuple of tensors, got {type(state)}")


def detach_state(state: Any) -> Any:
    """Cut the autograd graph (truncated BPTT) without copying data."""
    return map_state(lambda t: t.detach(), state)


def reset_state(state: Any, done: Tensor) -> Any:
    """Zero the state of batch elements where ``done`` is true (episode boundaries).

    ``done``: bool or 0/1 tensor of shape ``[B]``. Implemented as a multiply by the keep
    mask (no Python branch on values), so it is traceable and exportable.
    """
    if done.dim() != 1:
        raise ValueError(f"done must have shape [batch], got {tuple(done.shape)}")

    def _reset(t: Tensor) -> Tensor:
        if t.shape[0] != done.shape[0]:
            raise ValueError(
                f"done has batch {done.shape[0]} but a state tensor has shape {tuple(t.shape)}"
            )
        keep = (done == 0).to(t.dtype).reshape((-1,) + (1,) * (t.dim() - 1))
        return t * keep

    return map_state(_reset, state)


def flatten_state(state: Any) -> tuple[Tensor, ...]:
    """Flat tuple of the state's tensors in a fixed order (explicit export I/O)."""
    if isinstance(state, Tensor):
        return (state,)
    out: list[Tensor] = []
    for item in state:
        out.extend(flatten_state(item))
    return tuple(out)


def unflatten_state(template: Any, flat: tuple[Tensor, ...] | list[Tensor]) -> Any:
    """Inverse of :func:`flatten_state`, using ``template`` for the structure."""
    it = iter(flat)
    result = map_state(lambda _t: next(it), template)
    if next(it, None) is not None:
        raise ValueError("more tensors than the state template holds")
    return result


def zeros_like_batch(batch_size: int, size: tuple[int, ...], device, dtype) -> Tensor:
    """Zero state tensor ``[B, *size]`` with torch's default dtype when ``dtype`` is None."""
    return torch.zeros((batch_size, *size), device=device, dtype=dtype)

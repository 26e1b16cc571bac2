"""Neuron models with explicit state and surrogate gradients (plain torch).

One model per file, equations in each module docstring:

* :mod:`.lif` — :class:`LIF` (HSTNN form, hard reset through ``(1 - o)``)
* :mod:`.alif` — :class:`ALIF` (adaptive threshold)
* :mod:`.stc` — :class:`STC` / :class:`ConvSTC` (autaptic modulation on LIF or ALIF)
* :mod:`.rf` — :class:`RF` (resonate-and-fire, diagonal complex SSM, parallel scan)
* :mod:`.recurrent` — :class:`RNNCell`, :class:`GRUCell`, :class:`LSTMCell`
* :mod:`.surrogate` — Heaviside with rectangular / sigmoid / arctan / multi-Gaussian surrogates

Every cell: ``y, state = cell.step(x, state)`` (``state=None`` ⇒ zeros) and
``y_seq, state = cell(x_seq, state)`` for time-first ``[T, B, ...]`` input; both give the
same numbers. States are NamedTuples of ``[B, ...]`` tensors; see :mod:`.state` for
``detach_state`` / ``reset_state`` (per batch element) / ``flatten_state``.
"""

from __future__ import annotations

from hybrid_snn_control.neurons.alif import ALIF, ALIFState
from hybrid_snn_control.neurons.base import Cell
from hybrid_snn_control.neurons.lif import LIF, LIFState
from hybrid_snn_control.neurons.recurrent import GRUCell, LSTMCell, LSTMState, RNNCell, RNNState
from hybrid_snn_control.neurons.rf import RF, RFState
from hybrid_snn_control.neurons.state import (
    detach_state,
    flatten_state,
    reset_state,
    unflatten_state,
)
from hybrid_snn_control.neurons.stc import STC, ConvSTC, STCState, stc_paper_kwargs
from hybrid_snn_control.neurons.surrogate import SURROGATES, heaviside, spike, surrogate_grad

SPIKING_CELLS = ("lif", "alif", "stc_lif", "stc_alif", "rf")
RECURRENT_CELLS = ("lstm", "gru", "rnn")


def make_spiking_cell(kind: str, input_size: int, hidden_size: int, **kwargs) -> Cell:
    """Build a spiking population by name (one of :data:`SPIKING_CELLS`)."""
    if kind == "lif":
        return LIF(input_size, hidden_size, **kwargs)
    if kind == "alif":
        return ALIF(input_size, hidden_size, **kwargs)
    if kind == "stc_lif":
        return STC(input_size, hidden_size, base="lif", **kwargs)
    if kind == "stc_alif":
        return STC(input_size, hidden_size, base="alif", **kwargs)
    if kind == "rf":
        return RF(input_size, hidden_size, **kwargs)
    raise ValueError(f"spiking cell must be one of {SPIKING_CELLS}, got {kind!r}")


def make_recurrent_cell(kind: str, input_size: int, hidden_size: int, **kwargs) -> Cell:
    """Build a recurrent (non-spiking) population by name (one of :data:`RECURRENT_CELLS`)."""
    classes = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}
    if kind not in classes:
        raise ValueError(f"recurrent cell must be one of {RECURRENT_CELLS}, got {kind!r}")
    return classes[kind](input_size, hidden_size, **kwargs)


__all__ = [
    "ALIF",
    "LIF",
    "RECURRENT_CELLS",
    "RF",
    "SPIKING_CELLS",
    "STC",
    "SURROGATES",
    "ALIFState",
    "Cell",
    "ConvSTC",
    "GRUCell",
    "LIFState",
    "LSTMCell",
    "LSTMState",
    "RFState",
    "RNNCell",
    "RNNState",
    "STCState",
    "detach_state",
    "flatten_state",
    "heaviside",
    "make_recurrent_cell",
    "make_spiking_cell",
    "reset_state",
    "spike",
    "stc_paper_kwargs",
    "surrogate_grad",
    "unflatten_state",
]

r"""Non-spiking recurrent cells (vanilla RNN, GRU, LSTM) in the common cell interface.

.. math::
    \text{RNN}: y_t = \tanh(W x_t + U y_{t-1} + b)

    \text{GRU}: r, z = \sigma(\cdot),\;
    n = \tanh(W_n x_t + b_{in} + r \odot (U_n y_{t-1} + b_{hn})),\;
    y_t = (1 - z) \odot n + z \odot y_{t-1}

    \text{LSTM}: i, f, o = \sigma(\cdot),\; g = \tanh(\cdot),\;
    c_t = f \odot c_{t-1} + i \odot g,\; y_t = o \odot \tanh(c_t)

Weights use torch's layout (``weight_ih [G·N, in]``, ``weight_hh [G·N, N]``, gates
stacked), so ``step`` is one ``torch.lstm_cell``/``gru_cell``/``rnn_tanh_cell`` call and a
sequence is one fused ``torch.lstm``/``gru``/``rnn_tanh`` call (input projection over all T
at once). With a unit mask, the recurrent weight *columns* of inactive units are zeroed, so
inactive units never influence active ones in either path.

State: :class:`LSTMState` ``(h, c)`` or :class:`RNNState` ``(h,)`` (RNN and GRU).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.neurons.base import Cell, check_sequence


class RNNState(NamedTuple):
    h: Tensor


class LSTMState(NamedTuple):
    h: Tensor
    c: Tensor


class _Recurrent(Cell):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def incoming_weights(self) -> list[tuple[Tensor, int]]:
        return [(self.weight_ih, self.gates), (self.weight_hh, self.gates)]

    def _zeros(self, batch_size: int, ref: Tensor) -> Tensor:
        return ref.new_zeros(batch_size, self.hidden_size)

    def _weights(self, mask: Tensor | None) -> list[Tensor]:
        w_hh = self.weight_hh if mask is None else self.weight_hh * mask
        weights = [self.weight_ih, w_hh]
        if self.bias_ih is not None:
            weights += [self.bias_ih, self.bias_hh]
        return weights


class _SingleStateRecurrent(_Recurrent):
    """RNN and GRU: one hidden state, torch's fused cell for a step and kernel for a sequence."""

    _cell_fn = staticmethod(torch.rnn_tanh_cell)
    _sequence_fn = staticmethod(torch.rnn_tanh)

    def initial_state(self, batch_size, device=None, dtype=None) -> RNNState:
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        return RNNState(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype))

    def step(self, x: Tensor, state: RNNState | None = None, mask: Tensor | None = None):
        h = self._zeros(x.shape[0], x) if state is None else state.h
        if mask is not None:
            h = h * mask
        h = self._cell_fn(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if mask is not None:
            h = h * mask
        return h, RNNState(h)

    def forward(self, x_seq: Tensor, state: RNNState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        h0 = self._zeros(x_seq.shape[1], x_seq) if state is None else state.h
        if mask is not None:
            h0 = h0 * mask
        out, h = self._sequence_fn(
            x_seq,
            h0[None],
            self._weights(mask),
            self.bias_ih is not None,
            1,
            0.0,
            self.training,
            False,
            False,
        )
        h = h[0]
        if mask is not None:
            out, h = out * mask, h * mask
        return out, RNNState(h)


class RNNCell(_SingleStateRecurrent):
    """Vanilla tanh RNN cell."""

    gates = 1


class GRUCell(_SingleStateRecurrent):
    """GRU cell (torch gate order r, z, n)."""

    gates = 3
    _cell_fn = staticmethod(torch.gru_cell)
    _sequence_fn = staticmethod(torch.gru)


class LSTMCell(_Recurrent):
    """LSTM cell (torch gate order i, f, g, o)."""

    gates = 4

    def initial_state(self, batch_size, device=None, dtype=None) -> LSTMState:
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return LSTMState(z, z.clone())

    def step(self, x: Tensor, state: LSTMState | None = None, mask: Tensor | None = None):
        if state is None:
            h = c = self._zeros(x.shape[0], x)
        else:
            h, c = state
        if mask is not None:
            h = h * mask
        h, c = torch.lstm_cell(
            x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )
        if mask is not None:
            h, c = h * mask, c * mask
        return h, LSTMState(h, c)

    def forward(self, x_seq: Tensor, state: LSTMState | None = None, mask: Tensor | None = None):
        check_sequence(x_seq)
        if state is None:
            h0 = c0 = self._zeros(x_seq.shape[1], x_seq)
        else:
            h0, c0 = state
        out, h, c = torch.lstm(
            x_seq,
            (h0[None], c0[None]),
            self._weights(mask),
            self.bias_ih is not None,
            1,
            0.0,
            self.training,
            False,
            False,
        )
        h, c = h[0], c[0]
        if mask is not None:
            out, h, c = out * mask, h * mask, c * mask
        return out, LSTMState(h, c)

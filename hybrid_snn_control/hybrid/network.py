r"""HybridNetwork: stacked hybrid layers, a spike-rate + recurrent readout, live ratio.

.. math::
    h^{(0)}_t = x_t, \qquad
    h^{(l)}_t, s^{(l)}_t = \mathrm{HybridLayer}_l(h^{(l-1)}_t, s^{(l)}_{t-1})

    r_t = m^s_L \odot (\kappa\, r_{t-1} + (1 - \kappa)\, o^{(L)}_t)
        \qquad \text{(spike-rate trace of the last layer)}

    f_t = [\,r_t,\; y^{(L)}_t\,], \qquad \text{out}_t = W_{out} f_t + b_{out}
        \;\text{(or } f_t \text{ when } \texttt{readout\_size=None})

Public interface (stable; the training and deploy code build on it)::

    net = HybridNetwork(input_size, hidden_size=128, num_layers=2, spiking_cell="lif",
                        recurrent_cell="lstm", readout_size=None, spiking_ratio=0.5)
    out, state = net.step(x, state)            # x [B, in]; state None => zeros
    out_seq, state = net(x_seq, state)         # x_seq [T, B, in], same numbers as step
    state = net.initial_state(batch_size, device=None, dtype=None)
    state = net.reset_state(state, done)       # zero finished episodes, done: [B] bool
    state = net.detach_state(state)            # truncated BPTT
    net.set_ratio(0.25); net.spiking_ratio     # masks only; state of kept units is kept
    net.output_size                            # readout_size or 2 * hidden_size
    masks = net.masks() / net.masks_for_ratio(r)  # flat tuple (s_0, r_0, s_1, r_1, ...)
    out, state = net.step(x, state, masks=masks)  # explicit masks (export: masks as input)
    flat = net.flatten_state(state); state = net.unflatten_state(flat); net.state_names()
    out_seq, state, activity = net.forward_with_activity(x_seq, state)  # efficiency counts
    out, state, activity = net.step_with_activity(x, state)             # one step of it

Ratio: r selects n_s = ⌊r·N⌋ spiking and N − n_s recurrent units per layer by the stored
ranking (for 0 < r < 1 at least one unit of each type per layer, as in the paper). The
sets are nested. ``set_ratio`` writes the mask buffers in place: no new parameters or
buffers, parameters keep their storage, no allocation on the next step beyond the step's
own outputs. ``set_redundant()`` activates all 2N units per layer (stage 1 of HSTNN:
adaptation, and the network on which Hessian-aware selection runs).

Ratio sampling: with ``ratio_sampling=True`` (uniform r ∈ [0, 1]) or a sequence of
ratios, every training-mode sequence call (one batch) uses a random r via explicit masks,
so one set of weights serves every ratio; the ratio set by ``set_ratio`` (used by ``step``
and in eval mode) is left untouched. For truncated BPTT over chunks of one sequence, draw
once per sequence (``masks = net.masks_for_ratio(net.sample_ratio())``) and pass ``masks``
to every chunk, or units would switch type between chunks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hybrid_snn_control.hybrid.layer import HybridLayer, HybridLayerState, HybridState
from hybrid_snn_control.hybrid.ratio import check_ratio, unit_counts
from hybrid_snn_control.neurons import state as state_utils
from hybrid_snn_control.neurons.rf import linear_scan


class HybridActivity(NamedTuple):
    """What happened in a run, for efficiency accounting (all masked, no grad)."""

    spikes: tuple  # per layer: spiking outputs [T, B, N]
    masks: tuple  # flat (spiking_mask_0, recurrent_mask_0, ...) used in the run
    input_nonzero: Tensor  # per step and sample: number of non-zero inputs [T, B]
    #: a spiking event encoder's SynOps per step and sample [T, B] (set by the policy)
    encoder_synops: Tensor | None = None


class HybridNetwork(nn.Module):
    """Stack of :class:`~hybrid_snn_control.hybrid.layer.HybridLayer` (module docstring)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        spiking_cell: str = "lif",
        recurrent_cell: str = "lstm",
        readout_size: int | None = None,
        spiking_ratio: float = 0.5,
        rate_decay: float = 0.8,
        ratio_sampling: bool | Sequence[float] = False,
        spiking_kwargs: dict | None = None,
        recurrent_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                "input_size, hidden_size and num_layers must be >= 1, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        if not 0.0 <= rate_decay < 1.0:
            raise ValueError(f"rate_decay must be in [0, 1), got {rate_decay}")
        if isinstance(ratio_sampling, bool):
            self.ratio_choices: tuple[float, ...] | None = None
            self.ratio_sampling = ratio_sampling
        else:
            self.ratio_choices = tuple(check_ratio(r) for r in ratio_sampling)
            if not self.ratio_choices:
                raise ValueError("ratio_sampling needs at least one ratio")
            self.ratio_sampling = True
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.spiking_cell = spiking_cell
        self.recurrent_cell = recurrent_cell
        self.rate_decay = float(rate_decay)
        #: training-mode sequences through the active units only (see ``forward``)
        self.compact_training = True
        self.layers = nn.ModuleList(
            HybridLayer(
                input_size if i == 0 else 2 * hidden_size,
                hidden_size,
                spiking_cell,
                recurrent_cell,
                spiking_kwargs,
                recurrent_kwargs,
            )
            for i in range(num_layers)
        )
        self.readout = None if readout_size is None else nn.Linear(2 * hidden_size, readout_size)
        self.output_size = 2 * hidden_size if readout_size is None else readout_size
        #: size of the readout's input: spike-rate trace + recurrent state (2N)
        self.feature_size = 2 * hidden_size
        # The current ratio travels in the state_dict; NaN means "redundant" (all units).
        self.register_buffer("ratio", torch.tensor(float("nan")))
        self.set_ratio(spiking_ratio)

    # ---- ratio -----------------------------------------------------------------------------
    @property
    def spiking_ratio(self) -> float | None:
        """The ratio in use (None after :meth:`set_redundant`)."""
        r = float(self.ratio)
        return None if math.isnan(r) else r

    @torch.no_grad()
    def set_ratio(self, r: float) -> None:
        """Switch to spiking ratio r ∈ [0, 1] by rewriting the mask buffers in place.

        Raises ValueError (with the allowed range) for anything but a real number in [0, 1].
        """
        r = check_ratio(r)
        n_s, n_r = unit_counts(r, self.hidden_size)
        for layer in self.layers:
            layer.set_counts(n_s, n_r)
        self.ratio.fill_(r)

    @torch.no_grad()
    def set_redundant(self) -> None:
        """Activate all N spiking and N recurrent units of every layer (HSTNN stage 1)."""
        for layer in self.layers:
            layer.spiking_mask.fill_(1.0)
            layer.recurrent_mask.fill_(1.0)
        self.ratio.fill_(float("nan"))

    def masks(self) -> tuple[Tensor, ...]:
        """The mask buffers in use, flat: ``(spiking_0, recurrent_0, spiking_1, ...)``."""
        out: list[Tensor] = []
        for layer in self.layers:
            out += [layer.spiking_mask, layer.recurrent_mask]
        return tuple(out)

    @torch.no_grad()
    def masks_for_ratio(self, r: float) -> tuple[Tensor, ...]:
        """New mask tensors for ratio r, without changing the network (export input)."""
        n_s, n_r = unit_counts(r, self.hidden_size)
        out: list[Tensor] = []
        for layer in self.layers:
            dtype = layer.spiking_mask.dtype
            out += [(layer.spiking_rank < n_s).to(dtype), (layer.recurrent_rank < n_r).to(dtype)]
        return tuple(out)

    def sample_ratio(self, generator: random.Random | None = None) -> float:
        """A random ratio for one training batch (uniform, or one of ``ratio_sampling``)."""
        rng = generator if generator is not None else random
        if self.ratio_choices is not None:
            return rng.choice(self.ratio_choices)
        return rng.random()

    @torch.no_grad()
    def apply_ranking(self, scores: Sequence[tuple[Tensor, Tensor]]) -> None:
        """Store per-layer ``(spiking_scores, recurrent_scores)`` and re-apply the ratio.

        See :func:`hybrid_snn_control.hybrid.selection.hessian_importance`.
        """
        if len(scores) != self.num_layers:
            raise ValueError(f"need scores for {self.num_layers} layers, got {len(scores)}")
        for layer, (s_scores, r_scores) in zip(self.layers, scores):
            layer.set_ranking(s_scores, r_scores)
        if self.spiking_ratio is not None:
            self.set_ratio(self.spiking_ratio)

    # ---- state -----------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device=None, dtype=None) -> HybridState:
        """Zero state for ``batch_size`` sequences (dtype defaults to the weights' dtype)."""
        ref = self.layers[0].spiking_mask
        device = device if device is not None else ref.device
        dtype = dtype if dtype is not None else ref.dtype
        layers = tuple(layer.initial_state(batch_size, device, dtype) for layer in self.layers)
        trace = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return HybridState(layers, trace)

    @staticmethod
    def reset_state(state: HybridState, done: Tensor) -> HybridState:
        """Zero the state of batch elements where ``done`` (``[B]``) is true."""
        return state_utils.reset_state(state, done)

    @staticmethod
    def detach_state(state: HybridState) -> HybridState:
        return state_utils.detach_state(state)

    @staticmethod
    def flatten_state(state: HybridState) -> tuple[Tensor, ...]:
        """Flat tuple of state tensors, in the order of :meth:`state_names`."""
        return state_utils.flatten_state(state)

    def unflatten_state(self, flat: Sequence[Tensor]) -> HybridState:
        template = self.initial_state(1, device="meta")
        return state_utils.unflatten_state(template, tuple(flat))

    def state_names(self) -> list[str]:
        """Names for the flat state tensors, e.g. ``layer0.spiking.v``, ``trace``."""
        names: list[str] = []
        template = self.initial_state(1, device="meta")
        for i, ls in enumerate(template.layers):
            for part, sub in zip(HybridLayerState._fields, ls):
                names += [f"layer{i}.{part}.{f}" for f in sub._fields]
        return [*names, "trace"]

    # ---- dynamics --------------------------------------------------------------------------
    def _features(self, h: Tensor, trace: Tensor, spiking_mask: Tensor) -> tuple[Tensor, Tensor]:
        n = self.hidden_size
        trace = (self.rate_decay * trace + (1.0 - self.rate_decay) * h[..., :n]) * spiking_mask
        features = torch.cat([trace, h[..., n:]], dim=-1)
        return features, trace

    def step(
        self,
        x: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """One control step: ``x [B, input_size]`` → ``(out [B, output_size], state)``."""
        out, state, _ = self._step(x, state, masks, keep_activity=False)
        return out, state

    @torch.no_grad()
    def step_with_activity(
        self, x: Tensor, state: HybridState | None = None, masks=None
    ) -> tuple[Tensor, HybridState, HybridActivity]:
        """``step`` (no grad) plus a one-step :class:`HybridActivity` for
        :func:`~hybrid_snn_control.hybrid.efficiency.count_efficiency` (plain ``step`` is
        not slowed by any recording)."""
        return self._step(x, state, masks, keep_activity=True)

    def _step(self, x, state, masks, keep_activity: bool):
        if masks is None:
            masks = self.masks()
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        h = x
        layer_states, spikes = [], []
        for i, layer in enumerate(self.layers):
            h, ls = layer.step(h, state.layers[i], masks[2 * i], masks[2 * i + 1])
            layer_states.append(ls)
            if keep_activity:
                spikes.append(h[None, :, : self.hidden_size])
        features, trace = self._features(h, state.trace, masks[-2])
        out = features if self.readout is None else self.readout(features)
        activity = None
        if keep_activity:
            activity = HybridActivity(tuple(spikes), tuple(masks), (x != 0).sum(-1)[None])
        return out, HybridState(tuple(layer_states), trace), activity

    def forward(
        self,
        x_seq: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState]:
        """A time-first sequence ``[T, B, input_size]`` → ``([T, B, output_size], state)``.

        In training mode (``compact_training``, default on) the sequence runs through the
        active units only (:mod:`.compact_sequence`: the same numbers up to rounding, about
        2x faster at r = 0.5); in eval mode through the masked path."""
        out, state, _ = self.forward_with_features(x_seq, state, masks)
        return out, state

    def forward_with_features(
        self,
        x_seq: Tensor,
        state: HybridState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HybridState, Tensor]:
        """Like ``forward``, and also the readout's input ``[T, B, 2N]`` (spike-rate trace and
        recurrent state): what training-only auxiliary heads read."""
        if self.training and self.compact_training:
            from hybrid_snn_control.hybrid.compact_sequence import compact_forward_with_features

            return compact_forward_with_features(self, x_seq, state, masks)
        out, state, _, features = self._sequence(x_seq, state, masks, keep_activity=False)
        return out, state, features

    @torch.no_grad()
    def forward_with_activity(
        self, x_seq: Tensor, state: HybridState | None = None, masks=None
    ) -> tuple[Tensor, HybridState, HybridActivity]:
        """Like ``forward`` (no grad) and also return the :class:`HybridActivity`."""
        out, state, activity, _ = self._sequence(x_seq, state, masks, keep_activity=True)
        return out, state, activity

    def _sequence(self, x_seq, state, masks, keep_activity: bool):
        if x_seq.dim() != 3 or x_seq.shape[-1] != self.input_size:
            raise ValueError(f"x_seq must be [T, B, {self.input_size}], got {tuple(x_seq.shape)}")
        if masks is None:
            if self.training and self.ratio_sampling:
                masks = self.masks_for_ratio(self.sample_ratio())
            else:
                masks = self.masks()
        if state is None:
            state = self.initial_state(x_seq.shape[1], x_seq.device, x_seq.dtype)
        h = x_seq
        layer_states, spikes = [], []
        for i, layer in enumerate(self.layers):
            h, ls = layer(h, state.layers[i], masks[2 * i], masks[2 * i + 1])
            layer_states.append(ls)
            if keep_activity:
                spikes.append(h[..., : self.hidden_size])
        # The rate trace is a linear filter: the same parallel scan as RF instead of a
        # per-step autograd loop (equal to `_features` step by step; tested).
        n = self.hidden_size
        spiking_mask = masks[-2]
        log_kappa = torch.full(
            (n,),
            math.log(self.rate_decay) if self.rate_decay > 0 else -math.inf,
            dtype=h.dtype,
            device=h.device,
        )
        traces = (
            linear_scan(log_kappa, (1.0 - self.rate_decay) * h[..., :n], state.trace) * spiking_mask
        )
        trace = traces[-1]
        features = torch.cat([traces, h[..., n:]], dim=-1)
        out = features if self.readout is None else self.readout(features)
        activity = None
        if keep_activity:
            activity = HybridActivity(tuple(spikes), tuple(masks), (x_seq != 0).sum(-1))
        return out, HybridState(tuple(layer_states), trace), activity, features

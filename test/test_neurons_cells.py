"""Every cell: one step at a time == whole sequence; gradients; state helpers; bad input."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.neurons import (
    ALIF,
    LIF,
    RECURRENT_CELLS,
    SPIKING_CELLS,
    STC,
    ConvSTC,
    detach_state,
    flatten_state,
    make_recurrent_cell,
    make_spiking_cell,
    reset_state,
    stc_paper_kwargs,
    unflatten_state,
)
from hybrid_snn_control.neurons.fused import unfused

ALL_KINDS = SPIKING_CELLS + RECURRENT_CELLS + ("stc_paper", "conv_stc_lif", "conv_stc_alif")


def build(kind: str, in_size: int = 5, hidden: int = 8):
    torch.manual_seed(0)
    if kind in SPIKING_CELLS:
        cell = make_spiking_cell(kind, in_size, hidden)
    elif kind in RECURRENT_CELLS:
        cell = make_recurrent_cell(kind, in_size, hidden)
    elif kind == "stc_paper":
        cell = STC(in_size, hidden, norm_groups=2, **stc_paper_kwargs())
    else:
        cell = ConvSTC(2, 4, base=kind.split("_")[-1], norm_groups=2)
    return cell.double()


def inputs(kind: str, steps: int = 13, batch: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    shape = (steps, batch, 2, 6, 6) if kind.startswith("conv") else (steps, batch, 5)
    return 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)


def run_steps(cell, x_seq, state, mask=None):
    ys = []
    for t in range(x_seq.shape[0]):
        y, state = cell.step(x_seq[t], state, mask)
        ys.append(y)
    return torch.stack(ys), state


def random_state(cell, x_seq):
    _, zero = cell.step(x_seq[0], None)
    g = torch.Generator().manual_seed(2)
    return type(zero)(*[torch.rand(t.shape, generator=g, dtype=t.dtype) for t in zero])


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("use_mask", [False, True])
def test_step_equals_sequence_float64(kind, use_mask):
    cell = build(kind)
    x = inputs(kind)
    mask = None
    if use_mask:
        mask = (torch.arange(cell.hidden_size) % 3 != 1).double()
    for state in (None, random_state(cell, x)):
        y_seq, s_seq = cell(x, state, mask)
        y_step, s_step = run_steps(cell, x, state, mask)
        assert y_seq.shape == y_step.shape
        assert torch.allclose(y_seq, y_step, atol=1e-6, rtol=0)
        for a, b in zip(flatten_state(s_seq), flatten_state(s_step)):
            assert torch.allclose(a, b, atol=1e-6, rtol=0)
        if kind in SPIKING_CELLS:  # the comparison is not vacuous: some units fired
            assert 0 < y_seq.mean() < 1
        if mask is not None:
            off = y_seq[:, :, mask == 0] if kind.startswith("conv") else y_seq[..., mask == 0]
            assert (off == 0).all()


@pytest.mark.parametrize("kind", ["lif", "alif"])
def test_unfused_sequence_equals_step(kind):
    cell = build(kind)
    x = inputs(kind)
    with unfused():
        y_seq, s_seq = cell(x)
    y_step, s_step = run_steps(cell, x, None)
    assert torch.equal(y_seq, y_step)
    assert torch.allclose(s_seq.v, s_step.v, atol=1e-12)


def test_none_state_is_zero_state():
    for kind in SPIKING_CELLS + RECURRENT_CELLS:
        cell = build(kind)
        x = inputs(kind)
        y_none, _ = cell(x, None)
        y_zero, _ = cell(x, cell.initial_state(x.shape[1], dtype=torch.float64))
        assert torch.equal(y_none, y_zero), kind


LEARN_ALL = {
    "lif": {"learn_decay": True, "learn_threshold": True},
    "alif": {"learn_decay": True, "learn_threshold": True, "learn_adaptation": True},
    "stc_lif": {"learn_decay": True, "learn_threshold": True, "norm_groups": 2},
    "stc_alif": {"learn_decay": True, "learn_threshold": True, "norm_groups": 2},
    "rf": {},
}


@pytest.mark.parametrize("kind", SPIKING_CELLS)
@pytest.mark.parametrize("surrogate", ["rectangular", "sigmoid", "arctan", "multi_gaussian"])
def test_surrogate_gradients_reach_every_parameter(kind, surrogate):
    torch.manual_seed(0)
    cell = make_spiking_cell(kind, 5, 8, surrogate=surrogate, **LEARN_ALL[kind]).double()
    x = inputs(kind, steps=20)
    y, _ = cell(x)
    # A loss on spikes only: every gradient must come through the surrogate.
    (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum().backward()
    for name, p in cell.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["conv_stc_lif", "rnn", "gru", "lstm"])
def test_gradients_reach_parameters_other_cells(kind):
    cell = build(kind)
    y, _ = cell(inputs(kind))
    (y * torch.randn_like(y)).sum().backward()
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# every parameter learned, then partly fixed: the kernels skip the gradient sums of
# parameters that are buffers, and what they do compute must still equal autograd's
LEARN = [
    {"learn_decay": True, "learn_threshold": True, "learn_adaptation": True},
    {},
    {"learn_threshold": True},
    {"learn_decay": True},
    {"learn_adaptation": True},
]


CELLS_LEARN = [(LIF, k) for k in LEARN[:-1]] + [(ALIF, k) for k in LEARN]  # LIF: no adaptation


@pytest.mark.parametrize(("cls", "learn"), CELLS_LEARN)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_fused_bptt_equals_autograd(cls, learn, reset, detach_reset):
    torch.manual_seed(0)
    kwargs = {"reset": reset, "detach_reset": detach_reset, "surrogate": "sigmoid", **learn}
    if cls is LIF:
        kwargs.pop("learn_adaptation", None)
    cell = cls(5, 7, **kwargs).double()
    x = inputs("lif", steps=17)
    state0 = random_state(cell, x)
    weights = torch.randn(17, 3, 7, dtype=torch.float64)
    grads = []
    for fused in (True, False):
        cell.zero_grad()
        s0 = type(state0)(*[t.clone().requires_grad_() for t in state0])
        if fused:
            y, s = cell(x, s0)
        else:
            with unfused():
                y, s = cell(x, s0)
        ((y * weights).sum() + sum((t * (i + 1.5)).sum() for i, t in enumerate(s))).backward()
        params = [p.grad.clone() for p in cell.parameters()]
        grads.append([y.detach(), *(t.detach() for t in s), *params, *(t.grad for t in s0)])
    assert grads[0][0].sum() > 0  # some spikes
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10), (a, b)


def test_reset_state_zeros_only_done_elements_and_restarts_them():
    cell = build("alif")
    x = inputs("alif")
    _, state = cell(x[:6])
    done = torch.tensor([False, True, False])
    reset = reset_state(state, done)
    for before, after in zip(state, reset):
        assert (after[1] == 0).all()
        assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
    # element 1 now behaves exactly like a fresh sequence
    y_cont, _ = cell(x[6:], reset)
    y_fresh, _ = cell(x[6:, 1:2], None)
    assert torch.equal(y_cont[:, 1:2], y_fresh)
    with pytest.raises(ValueError, match="batch"):
        reset_state(state, torch.tensor([True, False]))


def test_detach_and_flatten_state():
    cell = build("stc_alif")
    x = inputs("stc_alif").requires_grad_()
    _, state = cell(x)
    assert all(t.requires_grad for t in state)
    detached = detach_state(state)
    assert type(detached) is type(state)
    assert not any(t.requires_grad for t in detached)
    flat = flatten_state(state)
    assert len(flat) == 3
    again = unflatten_state(state, flat)
    assert type(again) is type(state) and all(a is b for a, b in zip(again, state))


def test_heterogeneous_time_constants():
    g = torch.Generator().manual_seed(0)
    cell = LIF(4, 500, decay=0.8, heterogeneous_tau=3.0, generator=g)
    assert cell.decay.std() > 0.01
    assert ((cell.decay > 0) & (cell.decay < 1)).all()
    tau = -1.0 / torch.log(cell.decay.double())
    assert abs(tau.mean().item() - (-1.0 / torch.log(torch.tensor(0.8)).item())) < 0.5


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="surrogate must be one of"):
        LIF(3, 4, surrogate="triangle")
    with pytest.raises(ValueError, match="reset must be one of"):
        LIF(3, 4, reset="soft")
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\]"):
        LIF(3, 4, decay=1.5)
    with pytest.raises(ValueError, match="spiking cell must be one of"):
        make_spiking_cell("izhikevich", 3, 4)
    with pytest.raises(ValueError, match="recurrent cell must be one of"):
        make_recurrent_cell("transformer", 3, 4)
    with pytest.raises(ValueError, match=r"time-first \[T, B"):
        LIF(3, 4)(torch.zeros(2, 3))


def test_fused_kernel_refuses_double_backward():
    cell = build("lif")
    x = inputs("lif")
    y, _ = cell(x)
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), cell.fc.weight, create_graph=True)
    # once_differentiable: the gradient carries no graph, so a second backward fails loudly
    with pytest.raises(RuntimeError, match=r"does not require grad|once_differentiable"):
        torch.autograd.grad(g.sum(), cell.fc.weight)


@pytest.mark.parametrize("base", ["lif", "alif"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_fused_stc_bptt_equals_autograd(base, reset, use_mask):
    torch.manual_seed(0)
    cell = STC(5, 7, base=base, reset=reset, learn_decay=True, learn_threshold=True).double()
    x = inputs("stc", steps=15)
    state0 = random_state(cell, x)
    mask = (torch.arange(7) % 3 != 1).double() if use_mask else None
    weights = torch.randn(15, 3, 7, dtype=torch.float64)
    results = []
    for fused in (True, False):
        cell.zero_grad()
        s0 = type(state0)(*[t.clone().requires_grad_() for t in state0])
        if fused:
            y, s = cell(x, s0, mask)
        else:
            with unfused():
                y, s = cell(x, s0, mask)
        loss = (y * weights).sum() + sum((t * (i + 1.5)).sum() for i, t in enumerate(s))
        loss.backward()
        results.append(
            (y.detach(), [p.grad.clone() for p in cell.parameters()] + [t.grad for t in s0])
        )
    (y_f, g_f), (y_u, g_u) = results
    assert torch.allclose(y_f, y_u, atol=1e-12) and 0 < y_f.mean() < 1
    assert len(g_f) == len(list(cell.parameters())) + 3
    for a, b in zip(g_f, g_u):
        assert torch.allclose(a, b, atol=1e-10), (a, b)

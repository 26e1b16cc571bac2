"""The compiled (numba) LIF / ALIF loops: the same spikes as the TorchScript kernels and the
step path, the same gradients up to rounding, and the layers really run them on CPU."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("numba")

from hybrid_snn_control.neurons import ALIF, LIF, fused, fused_compiled
from hybrid_snn_control.neurons.fused import unfused

SURROGATES = tuple(fused_compiled.SURROGATE_CODES)
TOL = {torch.float32: 2e-6, torch.float64: 1e-12}


def _case(dtype, T=23, B=3, N=9, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)

    return {
        "cur": 2.0 * torch.randn((T, B, N), generator=g, dtype=torch.float64).to(dtype),
        "v0": r(B, N),
        "a0": r(B, N),
        "decay": r(N),
        "threshold": r(N) + 0.3,
        "beta": 0.5 * r(N),
        "rho": r(N),
        "go": torch.randn((T, B, N), generator=g, dtype=torch.float64).to(dtype),
        "gv": r(B, N) - 0.5,
        "ga": r(B, N) - 0.5,
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("subtract", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_lif_kernels_equal_torchscript(dtype, subtract, detach, surrogate):
    c = _case(dtype)
    ours = fused_compiled.lif_forward(c["cur"], c["v0"], c["decay"], c["threshold"], subtract)
    ref = fused._forward_lif(c["cur"], c["v0"], c["decay"], c["threshold"], subtract)
    for a, b in zip(ours, ref):  # u_seq, o_seq, v_T: bit for bit
        assert torch.equal(a, b)
    assert 0 < ours[1].mean() < 1  # some spikes, not all: the comparison is not vacuous
    u_seq, o_seq, _ = ours
    args = (c["decay"], c["threshold"], subtract, detach, surrogate, 0.7)
    g_ours = fused_compiled.lif_backward(c["go"], c["gv"], u_seq, o_seq, *args)
    g_ref = fused._backward_lif(
        c["go"], c["gv"], u_seq, o_seq, c["v0"], *args, fused.BACKWARD_CHUNK, False, False
    )
    for a, b in zip(g_ours, g_ref[:2]):  # dL/d currents, dL/d v0
        assert torch.allclose(a, b, atol=TOL[dtype], rtol=0)
    assert g_ours[0].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("subtract", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_alif_kernels_equal_torchscript(dtype, subtract, detach, surrogate):
    c = _case(dtype, seed=1)
    params = (c["decay"], c["threshold"], c["beta"], c["rho"])
    ours = fused_compiled.alif_forward(c["cur"], c["v0"], c["a0"], *params, subtract)
    ref = fused._forward(c["cur"], c["v0"], c["a0"], *params, subtract)
    for a, b in zip(ours, ref):  # u_seq, o_seq, v_T, a_seq: bit for bit
        assert torch.equal(a, b)
    u_seq, o_seq, _, a_seq = ours
    grads = (c["go"], c["gv"], c["ga"], u_seq, o_seq, a_seq)
    g_ours = fused_compiled.alif_backward(*grads, *params, subtract, detach, surrogate, 0.7)
    g_ref = fused._backward(
        *grads[:5], a_seq, c["v0"], *params, subtract, detach, surrogate, 0.7,
        fused.BACKWARD_CHUNK, False, False, False, False,
    )  # fmt: skip
    for a, b in zip(g_ours, g_ref[:3]):  # dL/d currents, dL/d v0, dL/d a0
        assert torch.allclose(a, b, atol=TOL[dtype], rtol=0)


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(fused_compiled, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(fused_compiled, name, counted)
    return calls


@pytest.mark.parametrize("cls", [LIF, ALIF])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_layer_runs_compiled_kernels_with_autograd_gradients(monkeypatch, cls, reset):
    """Fixed parameters (the default): the layer's sequence runs the compiled loops, and its
    outputs and input / state gradients equal the plain autograd path's."""
    prefix = "lif" if cls is LIF else "alif"
    calls = _count_calls(monkeypatch, f"{prefix}_forward")
    back = _count_calls(monkeypatch, f"{prefix}_backward")
    torch.manual_seed(0)
    cell = cls(5, 7, reset=reset, surrogate="sigmoid").double()
    x = 2.0 * torch.randn(17, 3, 5, dtype=torch.float64)
    weights = torch.randn(17, 3, 7, dtype=torch.float64)
    results = []
    for compiled in (True, False):
        xg = x.clone().requires_grad_()
        if compiled:
            y, s = cell(xg)
        else:
            with unfused():
                y, s = cell(xg)
        ((y * weights).sum() + sum((t * 1.5).sum() for t in s)).backward()
        results.append([y.detach(), *(t.detach() for t in s), xg.grad])
    assert len(calls) == 1 and len(back) == 1  # the compiled pass ran once each way
    assert results[0][0].sum() > 0
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10), (a, b)


def test_trained_parameters_keep_the_torchscript_kernel(monkeypatch):
    """The compiled loops return no parameter gradients: a trained decay goes elsewhere."""
    calls = _count_calls(monkeypatch, "lif_forward")
    cell = LIF(5, 7, learn_decay=True).double()
    y, _ = cell(torch.randn(9, 2, 5, dtype=torch.float64))
    y.sum().backward()
    assert calls == [] and cell.decay.grad is not None


def test_switch_off_and_other_dtypes_fall_back(monkeypatch):
    x = torch.zeros(4, 2, 3)
    assert fused_compiled.supports(x)
    assert not fused_compiled.supports(x.half())
    fused_compiled.set_compiled(False)
    try:
        assert not fused_compiled.supports(x)
        calls = _count_calls(monkeypatch, "lif_forward")
        LIF(3, 3)(x)
        assert calls == []
    finally:
        fused_compiled.set_compiled(True)


def test_strided_and_broadcast_gradients():
    """Autograd hands the backward expanded (stride-0) gradients, e.g. of a plain sum."""
    c = _case(torch.float32)
    u_seq, o_seq, _ = fused_compiled.lif_forward(
        c["cur"], c["v0"], c["decay"], c["threshold"], False
    )
    ones = torch.ones(()).expand(u_seq.shape)
    args = (c["decay"], c["threshold"], False, False, "rectangular", 0.5)
    a = fused_compiled.lif_backward(ones, torch.zeros(()).expand(3, 9), u_seq, o_seq, *args)
    b = fused_compiled.lif_backward(ones.contiguous(), torch.zeros(3, 9), u_seq, o_seq, *args)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

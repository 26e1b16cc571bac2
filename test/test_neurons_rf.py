"""RF: the parallel associative scan equals the step recurrence; HiPPO-LegS init."""

from __future__ import annotations

import torch

from hybrid_snn_control.neurons import RF
from hybrid_snn_control.neurons.fused import unfused
from hybrid_snn_control.neurons.rf import diagonal_linear_scan, hippo_legs_imag


def test_scan_equals_recurrence_complex():
    g = torch.Generator().manual_seed(0)
    n, T, B = 6, 37, 2  # T not a power of two
    log_decay = torch.complex(
        -torch.rand(n, generator=g, dtype=torch.float64),
        3 * torch.randn(n, generator=g, dtype=torch.float64),
    )
    u = torch.randn(T, B, n, generator=g, dtype=torch.complex128)
    z0 = torch.randn(B, n, generator=g, dtype=torch.complex128)
    z_scan = diagonal_linear_scan(torch.exp(log_decay), u, z0, log_decay)
    z, ref = z0, []
    for t in range(T):
        z = torch.exp(log_decay) * z + u[t]
        ref.append(z)
    assert torch.allclose(z_scan, torch.stack(ref), atol=1e-10)


def test_rf_sequence_scan_equals_step_values_and_gradients():
    torch.manual_seed(0)
    cell = RF(4, 16).double()
    x = 3 * torch.randn(50, 3, 4, dtype=torch.float64)
    state = cell.initial_state(3)
    state = type(state)(
        torch.rand(3, 16, dtype=torch.float64).requires_grad_(),
        torch.rand(3, 16, dtype=torch.float64).requires_grad_(),
    )
    w = torch.randn(50, 3, 16, dtype=torch.float64)
    grads = []
    for mode in ("scan", "step"):
        cell.zero_grad()
        for t in state:
            t.grad = None
        if mode == "scan":
            y, s = cell(x, state)
        else:
            ys, s = [], state
            for t in range(50):
                yt, s = cell.step(x[t], s)
                ys.append(yt)
            y = torch.stack(ys)
        ((y * w).sum() + (s.z_re * 0.3 + s.z_im * 0.7).sum()).backward()
        grads.append(
            (
                y.detach(),
                s,
                [p.grad.clone() for p in cell.parameters()] + [t.grad.clone() for t in state],
            )
        )
    (y1, s1, g1), (y2, s2, g2) = grads
    assert 0 < y1.mean() < 1
    assert torch.equal(y1, y2)
    assert torch.allclose(s1.z_re, s2.z_re, atol=1e-9)
    assert torch.allclose(s1.z_im, s2.z_im, atol=1e-9)
    assert len(g1) == 6  # a, omega, log dt, B, and both halves of the initial state
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-8, rtol=1e-6)
    # the hand-written adjoint of the scan equals autograd through the scan
    with unfused():
        cell.zero_grad()
        y, s = cell(x, state)
        ((y * w).sum() + (s.z_re * 0.3 + s.z_im * 0.7).sum()).backward()
    for a, b in zip(g1, [p.grad for p in cell.parameters()]):
        assert torch.allclose(a, b, atol=1e-8, rtol=1e-6)


def test_hippo_init_is_normal_part_of_legs():
    n = 12
    k = torch.arange(n, dtype=torch.float64)
    p = torch.sqrt(1 + 2 * k)
    a = -(torch.tril(p[:, None] * p[None, :]) - torch.diag(k))
    s = a + torch.sqrt(k + 0.5)[:, None] * torch.sqrt(k + 0.5)[None, :]
    eig = torch.linalg.eigvals(s)
    assert torch.allclose(eig.real, torch.full((n,), -0.5, dtype=torch.float64), atol=1e-8)
    omega = hippo_legs_imag(n)
    assert torch.allclose(torch.sort(eig.imag).values, torch.sort(omega).values, atol=1e-8)
    cell = RF(3, n)
    assert torch.allclose(-torch.exp(cell.log_neg_real), torch.tensor(-0.5))
    dt = torch.exp(cell.log_dt)
    assert (dt >= 0.004 - 1e-6).all() and (dt <= 0.1 + 1e-6).all()
    mag = torch.exp(-torch.exp(cell.log_neg_real) * dt)
    assert (mag < 1).all()  # stable

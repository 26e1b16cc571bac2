"""Surrogates: exact Heaviside forward, the documented pseudo-derivatives backward."""

from __future__ import annotations

import math

import pytest
import snntorch.surrogate as sns
import torch

from hybrid_snn_control.neurons import SURROGATES, heaviside, spike, surrogate_grad

X = torch.linspace(-3, 3, 601, dtype=torch.float64)


@pytest.mark.parametrize("name", SURROGATES)
def test_forward_is_exact_heaviside_and_backward_is_g(name):
    x = X.clone().requires_grad_()
    scale = {"rectangular": 0.5, "sigmoid": 4.0, "arctan": 2.0, "multi_gaussian": 0.5}[name]
    y = spike(x, name, scale)
    assert torch.equal(y, (X > 0).double())
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(grad, surrogate_grad(X, name, scale))
    assert torch.equal(spike(X, name, scale), heaviside(X))  # no grad => plain comparison


def test_surrogate_formulas():
    # rectangular: box of height 1/(2l) on |x| < l
    g = surrogate_grad(X, "rectangular", 0.25)
    assert torch.allclose(g, torch.where(X.abs() < 0.25, 2.0, 0.0).double())
    # multi-Gaussian as written in DESIGN.md §3 for sigma = 0.5
    ref = (
        1.15 * torch.exp(-(X**2) / 0.5)
        - 0.15 * torch.exp(-((X - 0.5) ** 2) / 18)
        - 0.15 * torch.exp(-((X + 0.5) ** 2) / 18)
    )
    assert torch.allclose(surrogate_grad(X, "multi_gaussian", 0.5), ref)
    # sigmoid and arctan integrate to ~1 (they are smoothed deltas)
    dx = float(X[1] - X[0])
    wide = torch.linspace(-60, 60, 200001, dtype=torch.float64)
    for name, scale in (("sigmoid", 4.0), ("arctan", 2.0)):
        area = surrogate_grad(wide, name, scale).sum() * float(wide[1] - wide[0])
        assert abs(area.item() - 1.0) < 0.02, name
    assert abs(surrogate_grad(X, "rectangular", 0.5).sum().item() * dx - 1.0) < 0.01


@pytest.mark.parametrize(
    ("name", "scale", "oracle"),
    [("arctan", 2.0, sns.atan(alpha=2.0)), ("sigmoid", 4.0, sns.sigmoid(slope=4.0))],
)
def test_matches_snntorch_surrogates(name, scale, oracle):
    a = X.clone().requires_grad_()
    b = X.clone().requires_grad_()
    spike(a, name, scale).sum().backward()
    oracle(b).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert math.isclose(
        float(surrogate_grad(torch.tensor(0.0), name, scale)), float(b.grad[300]), rel_tol=1e-9
    )


def test_double_backward_through_surrogate():
    x = X.clone().requires_grad_()
    y = spike(x, "sigmoid", 4.0)
    (g,) = torch.autograd.grad((y * x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(h).all() and h.abs().sum() > 0


def test_bad_surrogate_name():
    with pytest.raises(ValueError, match="surrogate must be one of"):
        surrogate_grad(X, "gauss", 1.0)

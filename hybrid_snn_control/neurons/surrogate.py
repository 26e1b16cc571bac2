r"""Heaviside spikes with surrogate gradients.

Forward is the exact step :math:`H(x) = 1[x > 0]` (strict, as in the HSTNN and snnTorch
code); backward replaces :math:`\delta(x)` by a smooth or boxed pseudo-derivative
:math:`g(x)`. ``x`` is always ``u - \theta`` (membrane minus threshold).

.. math::
    \text{rectangular}: g(x) = \frac{1}{2\ell}\,1[|x| < \ell] \quad (\ell = 0.5)

    \text{sigmoid}: g(x) = \alpha\,\sigma(\alpha x)(1 - \sigma(\alpha x)) \quad (\alpha = 4)

    \text{arctan}: g(x) = \frac{\alpha / 2}{1 + (\tfrac{\pi}{2}\alpha x)^2} \quad (\alpha = 2)

    \text{multi\_gaussian}: g(x) = 1.15\,e^{-x^2 / 2\sigma^2}
        - 0.15\,e^{-(x-\sigma)^2 / 2(6\sigma)^2} - 0.15\,e^{-(x+\sigma)^2 / 2(6\sigma)^2}
        \quad (\sigma = 0.5)

The surrogate is a custom :class:`torch.autograd.Function` whose backward is written in
differentiable torch ops, so Hessian-vector products (``create_graph=True``) work through
it. When ``x`` does not require grad (inference, export) :func:`spike` is a plain
comparison: no autograd Function in the deployed graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SURROGATES = ("rectangular", "sigmoid", "arctan", "multi_gaussian")
DEFAULT_SCALE = {"rectangular": 0.5, "sigmoid": 4.0, "arctan": 2.0, "multi_gaussian": 0.5}


def check_surrogate(name: str, scale: float | None) -> float:
    """Validate a surrogate name and return its scale (default when ``scale`` is None)."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {name!r}")
    value = DEFAULT_SCALE[name] if scale is None else float(scale)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"surrogate scale must be a finite number > 0, got {scale!r}")
    return value


def heaviside(x: Tensor) -> Tensor:
    """Exact spike function ``1[x > 0]`` in the dtype of ``x``."""
    return (x > 0).to(x.dtype)


def surrogate_grad(x: Tensor, name: str, scale: float) -> Tensor:
    """The pseudo-derivative g(x) that replaces dH/dx in the backward pass."""
    if name == "rectangular":
        return (x.abs() < scale).to(x.dtype) / (2.0 * scale)
    if name == "sigmoid":
        s = torch.sigmoid(scale * x)
        return scale * s * (1.0 - s)
    if name == "arctan":
        return (0.5 * scale) / (1.0 + (0.5 * math.pi * scale * x) ** 2)
    if name == "multi_gaussian":
        wide = 2.0 * (6.0 * scale) ** 2
        return (
            1.15 * torch.exp(-(x**2) / (2.0 * scale**2))
            - 0.15 * torch.exp(-((x - scale) ** 2) / wide)
            - 0.15 * torch.exp(-((x + scale) ** 2) / wide)
        )
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {name!r}")


class SpikeFunction(torch.autograd.Function):
    """H(x) forward, ``grad * g(x)`` backward (twice differentiable through torch ops)."""

    @staticmethod
    def forward(ctx, x: Tensor, name: str, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.name = name
        ctx.scale = scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_grad(x, ctx.name, ctx.scale), None, None


@torch.jit.unused
def _surrogate_spike(x: Tensor, name: str, scale: float) -> Tensor:
    return SpikeFunction.apply(x, name, scale)


def spike(x: Tensor, name: str = "rectangular", scale: float = 0.5) -> Tensor:
    """Spike ``1[x > 0]``; differentiable with surrogate ``name`` when ``x`` needs grad."""
    if torch.jit.is_scripting():
        return heaviside(x)
    if x.requires_grad:
        return _surrogate_spike(x, name, scale)
    return heaviside(x)

r"""Per-unit parameter distributions for heterogeneous networks (HRSNN).

Chakraborty & Mukhopadhyay (2023) draw each neuron's membrane time constant, and each
synapse's STDP time constants and learning rates, from a distribution instead of
sharing one value. A :class:`Distribution` names that choice by its mean and its
coefficient of variation ``cv = std / mean``, so "homogeneous" is the same mean with
``cv = 0`` and a search can vary the spread without moving the average:

.. math::
    \text{gamma}: k = 1/\mathrm{cv}^2,\ \text{scale} = \text{mean}\cdot\mathrm{cv}^2

    \text{lognormal}: \sigma^2 = \ln(1 + \mathrm{cv}^2),\
        \mu = \ln(\text{mean}) - \sigma^2/2

    \text{uniform}: \text{mean}\cdot[1 - \sqrt{3}\,\mathrm{cv},\ 1 + \sqrt{3}\,\mathrm{cv}]

    \text{constant}: \text{every draw} = \text{mean}

Draws come from a ``numpy.random.Generator`` so a seeded construction is reproducible
across torch versions and devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

KINDS = ("gamma", "lognormal", "uniform", "constant")


@dataclass(frozen=True)
class Distribution:
    """A positive per-unit parameter: ``kind`` with the given ``mean`` and ``cv``."""

    kind: str = "gamma"
    mean: float = 20.0
    cv: float = 0.5  # std / mean; 0 means homogeneous whatever the kind

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"distribution kind must be one of {KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.mean) and self.mean > 0):
            raise ValueError(f"distribution mean must be a finite number > 0, got {self.mean}")
        if not (math.isfinite(self.cv) and self.cv >= 0):
            raise ValueError(f"distribution cv must be a finite number >= 0, got {self.cv}")
        if self.kind == "uniform" and self.cv >= 1.0 / math.sqrt(3.0):
            raise ValueError(
                f"uniform distribution needs cv < 1/sqrt(3) ≈ 0.577 to stay positive, got {self.cv}"
            )

    @property
    def is_homogeneous(self) -> bool:
        return self.kind == "constant" or self.cv == 0.0

    def homogeneous(self) -> Distribution:
        """The same mean with no spread (the control condition of the paper)."""
        return replace(self, kind="constant", cv=0.0)

    def sample(self, shape: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw a float64 array of ``shape``; all values are > 0."""
        if self.is_homogeneous:
            return np.full(shape, float(self.mean))
        if self.kind == "gamma":
            k = 1.0 / self.cv**2
            return rng.gamma(shape=k, scale=self.mean / k, size=shape)
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            mu = math.log(self.mean) - 0.5 * sigma2
            return rng.lognormal(mean=mu, sigma=math.sqrt(sigma2), size=shape)
        half = math.sqrt(3.0) * self.cv * self.mean  # uniform
        return rng.uniform(self.mean - half, self.mean + half, size=shape)

    def scipy(self):
        """The matching frozen ``scipy.stats`` distribution (for tests and plots)."""
        from scipy import stats

        if self.is_homogeneous:
            raise ValueError("a homogeneous distribution has no continuous CDF")
        if self.kind == "gamma":
            k = 1.0 / self.cv**2
            return stats.gamma(a=k, scale=self.mean / k)
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            return stats.lognorm(s=math.sqrt(sigma2), scale=self.mean * math.exp(-0.5 * sigma2))
        half = math.sqrt(3.0) * self.cv * self.mean
        return stats.uniform(loc=self.mean - half, scale=2 * half)

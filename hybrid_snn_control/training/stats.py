"""Paired statistics of evaluations on shared worlds: gap closed, bootstrap CIs, the MDE.

Every model of an evaluation runs on the same worlds (the same world seeds, shift and
episode length; :mod:`.evaluate`), and worlds differ far more from each other than good
controllers do (a target that drifts out of view is hard for everyone).  Comparing
per-world differences removes that spread, so the statistics here all pair by world:

* **gap closed** per world :math:`g_i = (s_i - z_i) / (e_i - z_i)` with :math:`s_i` the
  model's score on world :math:`i`, :math:`z_i` the ``zero_action`` floor's (stand still)
  and :math:`e_i` the privileged ``expert``'s: 0 = no better than doing nothing, 1 = as
  good as the expert.  A raw score of 0.55 means little on its own when standing still
  already scores 0.53.  Worlds where the expert beats the floor by less than
  :data:`GAP_MIN_MARGIN` leave :math:`g_i` undefined (None): nothing there separates
  control from no control, and the ratio would explode.
* :func:`paired_bootstrap_ci`: the mean per-world difference with a 95 % percentile
  bootstrap CI (worlds resampled with replacement).
* :func:`min_detectable_effect`: :math:`(z_{1-\\alpha/2} + z_{power})\\,sd/\\sqrt{n}`
  (≈ 2.8 sd/√n at α 0.05, power 0.8) — differences below it are not resolvable with
  this many worlds.

:func:`with_gap_closed` and :func:`paired_vs_baseline` apply them to evaluation rows,
which carry ``episode_seeds`` and ``episode_scores`` in run order.  The CI is over
worlds for the given policy files: when each seed has its own trained file it does not
include the training-seed spread (the sweep tables' ± over seeds shows that).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "BASELINE_MODELS",
    "GAP_MIN_MARGIN",
    "MDE_Z",
    "Z95",
    "gap_closed",
    "min_detectable_effect",
    "paired_bootstrap_ci",
    "paired_summary",
    "paired_vs_baseline",
    "with_gap_closed",
    "worlds_needed",
]

#: the two reference controllers every evaluation runs on the same worlds
BASELINE_MODELS = ("expert", "zero_action")

#: expert − zero_action score below which a world's gap closed is undefined
GAP_MIN_MARGIN = 0.01

#: z of a two-sided 95 % interval, and z_{0.975} + z_{0.8} of the MDE (α 0.05, power 0.8)
Z95 = NormalDist().inv_cdf(0.975)
MDE_Z = Z95 + NormalDist().inv_cdf(0.8)


def worlds_needed(sd: float, half_width: float) -> int:
    """Worlds for a 95 % CI half-width of ``half_width`` on a mean of differences with ``sd``."""
    return math.ceil((Z95 * sd / half_width) ** 2)


def gap_closed(
    score: Sequence[float],
    zero: Sequence[float],
    expert: Sequence[float],
    min_margin: float = GAP_MIN_MARGIN,
) -> np.ndarray:
    """Per-world :math:`(s - z) / (e - z)`; NaN where :math:`e - z` < ``min_margin``."""
    s, z, e = (np.asarray(x, dtype=float) for x in (score, zero, expert))
    span = e - z
    ok = span >= min_margin
    return np.where(ok, (s - z) / np.where(ok, span, 1.0), np.nan)


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of the paired differences ``a - b`` and its percentile bootstrap CI.

    Pairs (worlds) are resampled with replacement ``n_boot`` times; seeded so a table
    reprints the same interval.  Percentile intervals run a little narrow for a handful
    of worlds: read a CI from 4 worlds as a rough guide.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError(f"need two equally long, non-empty sequences, got differences {d.shape}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // len(d))  # bound the index array's memory
    for k in range(0, n_boot, chunk):
        m = min(chunk, n_boot - k)
        means[k : k + m] = d[rng.integers(0, len(d), size=(m, len(d)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(d.mean()), float(lo), float(hi)


def min_detectable_effect(diffs: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean paired difference a two-sided test at ``alpha`` detects with ``power``.

    :math:`(z_{1-\\alpha/2} + z_{power})\\,sd/\\sqrt{n}` with the sample sd of the
    differences (normal approximation); NaN for fewer than two differences.
    """
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return math.nan
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return float(z * d.std(ddof=1) / math.sqrt(len(d)))


def paired_summary(
    a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """``a − b`` per pair: ``mean`` with its bootstrap CI (``lo``, ``hi``), the sample
    ``sd`` of the differences and the ``mde`` (both NaN below two pairs)."""
    d = np.subtract(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    mean, lo, hi = paired_bootstrap_ci(a, b, n_boot, seed)
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    return {"mean": mean, "lo": lo, "hi": hi, "sd": sd, "mde": min_detectable_effect(d)}


# ---- evaluation rows -----------------------------------------------------------------------------
def _worlds(row: dict[str, Any], key: str = "episode_scores") -> dict[tuple, float]:
    """``(shift, episode_s, world seed) -> value`` of one row (empty without per-world data)."""
    seeds, values = row.get("episode_seeds"), row.get(key)
    if not seeds or values is None:
        return {}
    where = (row["shift"], row.get("episode_s"))
    return {(*where, int(s)): v for s, v in zip(seeds, values)}


def with_gap_closed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``episode_gap_closed`` (per world, None where undefined),
    ``gap_closed`` / ``gap_closed_std`` (mean / std over its defined worlds, None when
    none is) and ``gap_worlds`` (how many), from the ``expert`` and ``zero_action`` rows
    on the same worlds (same shift, episode length and world seed)."""
    base: dict[str, dict[tuple, float]] = {m: {} for m in BASELINE_MODELS}
    for row in rows:
        if row["model"] in base:
            base[row["model"]].update(_worlds(row))
    out = []
    for row in rows:
        worlds = _worlds(row)
        g = [
            gap_closed([s], [base["zero_action"][w]], [base["expert"][w]])[0]
            if w in base["zero_action"] and w in base["expert"]
            else math.nan
            for w, s in worlds.items()
        ]
        defined = [x for x in g if math.isfinite(x)]
        new = dict(row)
        new["episode_gap_closed"] = [float(x) if math.isfinite(x) else None for x in g]
        new["gap_closed"] = float(np.mean(defined)) if defined else None
        new["gap_closed_std"] = float(np.std(defined)) if defined else None
        new["gap_worlds"] = len(defined)
        out.append(new)
    return out


def paired_vs_baseline(
    rows: Sequence[dict[str, Any]],
    baseline: str = "zero_action",
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per (model, ratio, shift): paired differences against ``baseline`` on shared worlds
    (and at the same ratio, when the baseline was evaluated at ratios).

    Pools the worlds of every seed.  Each result has ``worlds`` and ``seeds`` (counts),
    ``score_diff`` with ``score_diff_lo`` / ``score_diff_hi`` (95 % CI),
    ``score_diff_mde`` and ``score_diff_sd`` (None below two worlds), and the same for
    ``gap_closed_diff`` over the worlds where both rows have a gap closed (``gap_worlds``; rows from
    :func:`with_gap_closed`).  Models without a shared world are left out.
    """
    base_rows = [r for r in rows if r["model"] == baseline]
    # a baseline evaluated at ratios (another policy) is paired ratio by ratio; expert and
    # zero_action have none and pair with every ratio
    by_ratio = any(r["ratio"] is not None for r in base_rows)

    def rk(ratio, k: tuple) -> tuple:
        return (ratio if by_ratio else None, *k)

    ref = {rk(r["ratio"], k): v for r in base_rows for k, v in _worlds(r).items()}
    ref_g = {
        rk(r["ratio"], k): v for r in base_rows for k, v in _worlds(r, "episode_gap_closed").items()
    }
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["model"] != baseline:
            groups[(r["model"], r["ratio"], r["shift"])].append(r)
    out = []
    for (model, ratio, shift), rs in groups.items():
        pairs = [
            (v, ref[rk(ratio, k)], r["seed"])
            for r in rs
            for k, v in _worlds(r).items()
            if rk(ratio, k) in ref
        ]
        if not pairs:
            continue
        a, b, seeds = zip(*pairs)
        res: dict[str, Any] = {"model": model, "ratio": ratio, "shift": shift}
        res.update(worlds=len(pairs), seeds=len(set(seeds)))  # seeds with a shared world
        res.update(_diff("score_diff", a, b, n_boot, seed))
        g = [
            (v, ref_g[rk(ratio, k)])
            for r in rs
            for k, v in _worlds(r, "episode_gap_closed").items()
            if v is not None and ref_g.get(rk(ratio, k)) is not None
        ]
        res["gap_worlds"] = len(g)
        if g:
            res.update(_diff("gap_closed_diff", *zip(*g), n_boot, seed))
        out.append(res)
    return out


def _diff(name: str, a, b, n_boot: int, seed: int) -> dict[str, float | None]:
    s = paired_summary(a, b, n_boot, seed)
    out: dict[str, float | None] = {name: s["mean"], f"{name}_lo": s["lo"], f"{name}_hi": s["hi"]}
    for k in ("mde", "sd"):
        out[f"{name}_{k}"] = s[k] if math.isfinite(s[k]) else None  # JSON has no NaN
    return out

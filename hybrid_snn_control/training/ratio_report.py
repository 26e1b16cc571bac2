"""The ratio study's answers from a merged sweep: paired CIs between models at any ratios.

The sweep tables compare every model with ``zero_action``; the ratio study asks questions
between models evaluated at *different* ratios on the same worlds:

(a) does some hybrid (one set of weights, per-ratio restored, directly hybrid) beat both
    separately trained pure ends (``pure_rnn`` at r = 0, ``pure_snn`` at r = 1)?
(b) is the one set of weights within ``tolerance`` gap closed of the per-ratio restored
    models at every ratio (the hot-swap gap)?
(c) how do energy and latency per step move with the ratio for each encoder?

Every comparison pairs per world (same evaluation seed, shift, episode length and world
seed), pools the worlds of all training seeds (seed s's files are evaluated on seed s's
worlds), and reports the mean difference in gap closed with a 95 % bootstrap CI, its
half-width, the minimum detectable effect and the worlds a half-width of ``target`` would
need, :math:`n = (1.96\\,sd / target)^2`.  The CI is over worlds; with one file per
training seed the training-seed spread enters through the worlds of each seed, but five
seeds are few to say much about that spread on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.training.stats import (
    paired_bootstrap_ci,
    paired_summary,
    with_gap_closed,
    worlds_needed,
)

__all__ = [
    "Model",
    "hot_swap",
    "hybrid_vs_ends",
    "paired_models",
    "plot_study",
    "study_markdown",
    "write_study",
]

#: (model name, ratio) — ratio None for the baselines
Model = tuple[str, float | None]


def _values(rows: Sequence[dict[str, Any]], m: Model, shift: str, key: str) -> dict[tuple, float]:
    out = {}
    for r in rows:
        if r["model"] != m[0] or r["shift"] != shift:
            continue
        if m[1] is not None and r["ratio"] is not None and abs(r["ratio"] - m[1]) > 1e-9:
            continue
        for w, v in zip(r.get("episode_seeds") or [], r.get(key) or []):
            if v is not None:
                out[(r["seed"], r.get("episode_s"), int(w))] = float(v)
    return out


def paired_models(
    rows: Sequence[dict[str, Any]],
    a: Model,
    b: Model,
    shift: str = "nominal",
    key: str = "episode_gap_closed",
    target: float = 0.03,
) -> dict[str, Any] | None:
    """``a − b`` per shared world (rows from :func:`~.stats.with_gap_closed`): mean,
    95 % CI, half-width, sd, MDE, worlds, seeds, and the worlds ``target`` would need."""
    va, vb = _values(rows, a, shift, key), _values(rows, b, shift, key)
    shared = sorted(set(va) & set(vb))
    if len(shared) < 2:
        return None
    s = paired_summary([va[k] for k in shared], [vb[k] for k in shared])
    return {
        **_ratio_estimate(rows, a, b, shift, target),
        **s,
        "a": a,
        "b": b,
        "shift": shift,
        "half_width": (s["hi"] - s["lo"]) / 2,
        "worlds": len(shared),
        "seeds": len({k[0] for k in shared}),
        "worlds_for_target": worlds_needed(s["sd"], target),
    }


def _ratio_estimate(rows, a: Model, b: Model, shift: str, target: float) -> dict[str, Any]:
    """The same difference as a ratio of means, ``Σ(s_a − s_b) / Σ(e − z)`` over the shared
    worlds, with a bootstrap CI over worlds: the gap closed of the mean scores.  Worlds
    where the expert barely beats standing still weigh little here, while the per-world
    mean divides by their small margin — so this estimator needs far fewer worlds."""
    sa, sb = (_values(rows, m, shift, "episode_scores") for m in (a, b))
    e, z = (_values(rows, (m, None), shift, "episode_scores") for m in ("expert", "zero_action"))
    shared = sorted(set(sa) & set(sb) & set(e) & set(z))
    if len(shared) < 2:
        return {}
    d = np.array([sa[k] - sb[k] for k in shared])
    span = np.array([e[k] - z[k] for k in shared])
    est = float(d.sum() / span.sum())
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(d), size=(10_000, len(d)))
    boot = d[idx].sum(axis=1) / span[idx].sum(axis=1)
    lo, hi = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    # delta method: the estimator's influence per world is (d − est·span) / mean(span)
    sd = float(np.std((d - est * span) / span.mean(), ddof=1))
    return {
        "ratio_mean": est,
        "ratio_lo": lo,
        "ratio_hi": hi,
        "ratio_half_width": (hi - lo) / 2,
        "ratio_worlds_for_target": worlds_needed(sd, target),
    }


def hybrid_vs_ends(
    rows: Sequence[dict[str, Any]],
    hybrids: Sequence[Model],
    ends: Sequence[Model] = (("pure_rnn", 0.0), ("pure_snn", 1.0)),
    shift: str = "nominal",
) -> list[dict[str, Any]]:
    """Per hybrid: paired gap-closed difference with each pure end; ``beats_both`` when
    every CI lies above zero, ``loses`` when some CI lies below."""
    out = []
    for h in hybrids:
        diffs = [paired_models(rows, h, e, shift) for e in ends]
        if any(d is None for d in diffs):
            continue
        out.append(
            {
                "model": h,
                "shift": shift,
                "diffs": diffs,
                "beats_both": all(d["lo"] > 0 for d in diffs),
                "loses": any(d["hi"] < 0 for d in diffs),
            }
        )
    return out


def hot_swap(
    rows: Sequence[dict[str, Any]],
    one_set: str = "hybrid",
    per_ratio: str = "restored",
    ratios: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    shift: str = "nominal",
    tolerance: float = 0.02,
) -> list[dict[str, Any]]:
    """Per ratio: per-ratio model − one set of weights (gap closed, paired), and whether
    the CI shows them within ``tolerance`` (``within``: CI inside ±tolerance; ``worse``:
    the one set is significantly below)."""
    out = []
    for r in ratios:
        d = paired_models(rows, (per_ratio, r), (one_set, r), shift)
        if d is not None:
            d["ratio"] = r
            d["within"] = -tolerance <= d["lo"] and d["hi"] <= tolerance
            d["worse"] = d["lo"] > 0
            out.append(d)
    return out


def _m(m: Model) -> str:
    return m[0] if m[1] is None else f"{m[0]} r={m[1]:g}"


def _ci(d: dict[str, Any] | None, prefix: str = "") -> str:
    if d is None or f"{prefix}mean" not in d:
        return "–"
    m, lo, hi = (d[f"{prefix}{k}"] for k in ("mean", "lo", "hi"))
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _hw(*ds: dict[str, Any]) -> str:
    """Largest ratio-estimator half-width and worlds needed of some comparisons."""
    if not all("ratio_half_width" in d for d in ds):
        return "–"
    hw = max(d["ratio_half_width"] for d in ds)
    return f"{hw:.3f}, {max(d['ratio_worlds_for_target'] for d in ds)}"


def _cost_rows(rows: Sequence[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    from hybrid_snn_control.training.sweep import aggregate

    agg = [
        a
        for a in aggregate(rows)
        if a["model"] == model and a["shift"] == "nominal" and "energy_pj_per_step" in a
    ]
    return sorted(agg, key=lambda a: a["ratio"])


def study_markdown(
    rows: Sequence[dict[str, Any]],
    hybrids: Sequence[Model],
    shifts: Sequence[str],
    encoders: dict[str, str] | None = None,
    one_set: str = "hybrid",
    per_ratio: str = "restored",
    target: float = 0.03,
    remedies: Sequence[str] = (),
) -> str:
    """The three answers as Markdown tables (module docstring); ``remedies``: other
    one-set-of-weights models (e.g. trained with in-place distillation) whose hot-swap
    gap is tabled too."""
    rows = with_gap_closed(rows)
    lines = [
        "Paired differences in gap closed on the same worlds (all training seeds pooled): "
        "mean [95 % bootstrap CI]; half-width, MDE (80 % power, α 0.05) and the worlds a "
        f"half-width of {target} would need.",
        "",
    ]
    for shift in shifts:
        res = hybrid_vs_ends(rows, hybrids, shift=shift)
        if not res:
            continue
        lines += [
            f"**(a) hybrids vs the pure ends, {shift}**",
            "",
            "| hybrid | vs pure RNN (r = 0) | vs pure SNN (r = 1) | worlds | half-width | "
            f"MDE | worlds for ±{target} | beats both | ratio of means: vs RNN, vs SNN | "
            f"half-width, worlds for ±{target} |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res:
            d0, d1 = r["diffs"]
            hw = max(d0["half_width"], d1["half_width"])
            mde = max(d0["mde"], d1["mde"])
            need = max(d0["worlds_for_target"], d1["worlds_for_target"])
            verdict = "**yes**" if r["beats_both"] else ("no (loses)" if r["loses"] else "no")
            lines.append(
                f"| {_m(r['model'])} | {_ci(d0)} | {_ci(d1)} | {d0['worlds']} | {hw:.3f} | "
                f"{mde:.3f} | {need} | {verdict} | {_ci(d0, 'ratio_')}, {_ci(d1, 'ratio_')} | "
                f"{_hw(d0, d1)} |"
            )
        lines.append("")
    for model, shift in ((m, s) for m in (one_set, *remedies) for s in shifts):
        hs = hot_swap(rows, model, per_ratio, shift=shift)
        if not hs:
            continue
        lines += [
            f"**(b) hot swap, {shift}: per-ratio restored − one set of weights (`{model}`)**",
            "",
            "| ratio | seeds | worlds | difference | half-width | within ±0.02 | one set worse | "
            "ratio of means | half-width, worlds for ±0.03 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for d in hs:
            lines.append(
                f"| {d['ratio']:g} | {d['seeds']} | {d['worlds']} | {_ci(d)} | "
                f"{d['half_width']:.3f} | {'yes' if d['within'] else 'not shown'} | "
                f"{'**yes**' if d['worse'] else 'no'} | {_ci(d, 'ratio_')} | {_hw(d)} |"
            )
        lines.append("")
    for label, model in (encoders or {}).items():
        cost = _cost_rows(rows, model)
        if not cost:
            continue
        lines += [
            f"**(c) cost per step vs ratio, {label}** (`{model}`, nominal worlds, "
            "measured activity)",
            "",
            "| ratio | gap closed | energy (nJ) | SynOps | MACs | step latency (ms) |",
            "|---|---|---|---|---|---|",
        ]
        for a in cost:
            g = a.get("gap_closed")
            lines.append(
                f"| {a['ratio']:g} | {'–' if g is None else f'{g:.2f}'} | "
                f"{a['energy_pj_per_step'] / 1e3:.1f} | {a['synops_per_step']:.0f} | "
                f"{a['macs_per_step']:.0f} | {a['step_latency_ms']:.3f} |"
            )
        e = [a["energy_pj_per_step"] for a in cost]
        lines += ["", f"Energy r = 0 → r = 1: {e[0] / 1e3:.1f} → {e[-1] / 1e3:.1f} nJ "
                  f"({e[0] / e[-1]:.1f}×).", ""]  # fmt: skip
    return "\n".join(lines)


def _band(rows, model: str, shift: str, ratios: Sequence[float]):
    """Mean gap closed per ratio with a 95 % bootstrap CI over worlds."""
    pts = []
    for r in ratios:
        v = list(_values(rows, (model, r), shift, "episode_gap_closed").values())
        if len(v) >= 2:
            mean, lo, hi = paired_bootstrap_ci(v, np.zeros(len(v)))
            pts.append((r, mean, lo, hi))
    return pts


def plot_study(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    shifts: Sequence[str],
    lines: dict[str, str],
    points: Sequence[Model] = (("pure_rnn", 0.0), ("pure_snn", 1.0), ("direct_hybrid", 0.5)),
    encoders: dict[str, str] | None = None,
    ratios: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    pareto: dict[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """``gap_closed_vs_ratio.png`` (one panel per shift, CI bands) and
    ``energy_vs_score.png`` (Pareto front per group of models, default one per encoder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = with_gap_closed(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    cols = min(4, len(shifts))
    rows_n = math.ceil(len(shifts) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.4 * rows_n), squeeze=False)
    for ax in axes.flat[len(shifts) :]:
        ax.set_visible(False)
    for ax, shift in zip(axes.flat, shifts):
        for j, (label, model) in enumerate(lines.items()):  # fixed colours across panels
            pts = _band(rows, model, shift, ratios)
            if pts:
                r, m, lo, hi = map(np.array, zip(*pts))
                ax.plot(r, m, marker="o", label=label, color=f"C{j}")
                ax.fill_between(r, lo, hi, alpha=0.2, color=f"C{j}")
        for i, p in enumerate(points):
            pts = _band(rows, p[0], shift, [p[1]])
            if pts:
                r, m, lo, hi = pts[0]
                ax.errorbar([r], [m], yerr=[[m - lo], [hi - m]], fmt="sD^"[i % 3], capsize=3,
                            color=f"C{3 + i}", label=_m(p))  # fmt: skip
        ax.axhline(0.0, color="k", lw=0.8, ls=":")
        ax.set(title=shift, xlabel="spiking ratio r", ylabel="gap closed")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Gap closed vs ratio (mean, 95 % CI over worlds)")
    fig.tight_layout()
    paths["gap_png"] = out / "gap_closed_vs_ratio.png"
    fig.savefig(paths["gap_png"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    groups = pareto or {label: [model] for label, model in (encoders or {}).items()}
    short = {"hybrid": "", "hybrid_spk": "", "restored": "rest. ", "pure_rnn": "RNN ",
             "pure_snn": "SNN ", "direct_hybrid": "direct "}  # fmt: skip
    for label, models in groups.items():
        pts = sorted(
            (a["energy_pj_per_step"] / 1e3, a["gap_closed"], f"{short.get(m, m)}r={a['ratio']:g}")
            for m in models
            for a in _cost_rows(rows, m)
            if a.get("gap_closed") is not None
        )
        if not pts:
            continue
        e, g, _ = zip(*pts)
        sc = ax.scatter(e, g, label=label)
        for x, y, name in pts:
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front, best = [], -math.inf  # cheapest-first: a point is on the front if it scores best
        for x, y, _ in pts:
            if y > best:
                front.append((x, y))
                best = y
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color=sc.get_facecolor()[0], alpha=0.6)
    ax.set(xscale="log", xlabel="energy per step (nJ, 45 nm)", ylabel="gap closed (nominal)",
           title="Energy vs score (Pareto front per encoder)")  # fmt: skip
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths["pareto_png"] = out / "energy_vs_score.png"
    fig.savefig(paths["pareto_png"], dpi=110)
    plt.close(fig)
    return paths


#: the study sweep's model names (docs/results.md, "The powered ratio study")
STUDY_ENCODERS = {"dense conv encoder": "hybrid", "spiking conv encoder": "hybrid_spk"}
#: the Pareto plot's groups: every dense-encoder model against the spiking-encoder one
STUDY_PARETO = {
    "dense conv encoder": ["hybrid", "restored", "pure_rnn", "pure_snn", "direct_hybrid"],
    "spiking conv encoder": ["hybrid_spk"],
}
STUDY_LINES = {
    "one set of weights (dense enc.)": "hybrid",
    "HSTNN restored per ratio": "restored",
    "one set of weights (spiking enc.)": "hybrid_spk",
}


def write_study(rows: Sequence[dict[str, Any]], out: str | Path) -> dict[str, Path]:
    """``ratio_study.md`` and the two plots for a merged study sweep (the names above:
    ``hybrid``, ``restored``, ``direct_hybrid``, ``pure_rnn``, ``pure_snn``, ``hybrid_spk``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shifts = sorted({r["shift"] for r in rows}, key=lambda s: (s != "nominal", s))
    present = {(r["model"], r["ratio"]) for r in rows}
    hybrids = [
        (m, r)
        for m in ("hybrid", "restored", "direct_hybrid", "hybrid_spk")
        for r in (0.25, 0.5, 0.75)
        if (m, r) in present
    ]
    remedies = [m for m in ("hybrid_distill",) if any(p[0] == m for p in present)]
    md = study_markdown(rows, hybrids, shifts, STUDY_ENCODERS, remedies=remedies)
    paths = {"md": out / "ratio_study.md"}
    paths["md"].write_text(md)
    lines = {k: v for k, v in STUDY_LINES.items() if any(m == v for m, _ in present)}
    paths.update(plot_study(rows, out, shifts, lines, encoders=STUDY_ENCODERS, pareto=STUDY_PARETO))
    return paths

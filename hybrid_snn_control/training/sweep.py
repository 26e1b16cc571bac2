"""Ratio sweeps: models × ratios × shifts × seeds → CSV, JSON, a Markdown summary and plots.

A sweep evaluates *entries*: a model name, the ratios it is evaluated at (all sweep
ratios, or a fixed set — a pure-RNN baseline only at 0) and one policy file per seed (or
one file for every seed).  Seed ``s`` uses model file ``s`` and the evaluation worlds of
seed ``s`` (:func:`~.evaluate.eval_seeds`).  The built-in ``expert`` and ``zero_action``
models run on the same worlds (:func:`~.evaluate.evaluate_baseline`), so every row gets
its gap closed and a paired comparison with the floor (:mod:`.stats`).  Several entries
may share a name (per-ratio restored models: ``restored@0.25``, ``restored@0.5`` …).

Written to ``out_dir``:

* ``sweep.csv`` — one row per (model, ratio, shift, seed) with :data:`~.evaluate.ROW_FIELDS`
  (``gap_closed`` beside ``score``);
* ``sweep.json`` — the rows (with per-world seeds, scores and gap closed), the aggregate
  (mean ± std over seeds), ``paired`` (each model vs ``zero_action`` on the same worlds:
  mean difference, 95 % bootstrap CI, minimum detectable effect) and the settings;
* ``sweep.md`` — score and gap-closed table, the paired comparison, cost, robustness and
  the hot-swap gap;
* ``score_vs_ratio.png`` (one line per shift), ``cost_vs_ratio.png`` (SynOps, MACs,
  energy per step) and ``robustness_vs_ratio.png`` (score under shift / nominal).

The main model (``main``, default ``"hybrid"``) is the one drawn as lines; the others
appear as markers and table rows.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.policy.bundle import load_policy
from hybrid_snn_control.training.evaluate import (
    BASELINE_MODELS,
    METRIC_FIELDS,
    ROW_FIELDS,
    evaluate_baseline,
    evaluate_policy,
)
from hybrid_snn_control.training.rollout import EnvSettings
from hybrid_snn_control.training.stats import paired_vs_baseline, with_gap_closed, worlds_needed

__all__ = [
    "SweepEntry",
    "aggregate",
    "paired_line",
    "parse_entry",
    "run_sweep",
    "write_outputs",
]


@dataclass
class SweepEntry:
    """A model in the sweep: ``name``, its ratios (None = the sweep's) and files per seed."""

    name: str
    paths: list[str]
    ratios: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def path_for(self, seed_index: int) -> str:
        return self.paths[seed_index] if len(self.paths) > 1 else self.paths[0]


def parse_entry(text: str) -> SweepEntry:
    """``NAME[@R1,R2][:online[xRATE]]=PATH[,PATH…]`` (one path per seed, or one for all).

    ``:online`` evaluates with online plasticity (HRSNN-core policies; see
    :func:`~.evaluate.evaluate_policy`), ``:onlinex10`` with 10× its learning rates.
    """
    head, sep, tail = text.partition("=")
    if not sep or not head or not tail:
        raise ValueError(f"model entry must be NAME[@RATIOS][:online]=PATH[,PATH...], got {text!r}")
    head, colon, flag = head.partition(":")
    extra: dict[str, Any] = {}
    if colon:
        word, x, rate = flag.partition("x")
        try:
            if word != "online" or (x and not float(rate) >= 0):
                raise ValueError
            extra = {"online_plasticity": True, "plasticity_rate": float(rate) if x else 1.0}
        except ValueError:
            raise ValueError(
                f"model entry flag must be ':online' or ':onlinexRATE', got {':' + flag!r} "
                f"in {text!r}"
            ) from None
    name, _, ratios = head.partition("@")
    rs = [float(r) for r in ratios.split(",")] if ratios else None
    return SweepEntry(name=name, paths=[p for p in tail.split(",") if p], ratios=rs, extra=extra)


def run_sweep(
    entries: Sequence[SweepEntry],
    settings: EnvSettings,
    ratios: Sequence[float],
    shifts: Sequence[str],
    seeds: Sequence[int],
    episodes: int,
    baselines: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Evaluate every entry at its ratios × shifts × seeds (+ ``expert`` and
    ``zero_action`` on each seed's worlds); return the rows with their gap closed."""
    for e in entries:
        if e.name in BASELINE_MODELS:
            raise ValueError(f"model name {e.name!r} is a built-in baseline; choose another")
        if len(e.paths) not in (1, len(seeds)):
            raise ValueError(
                f"model {e.name}: give one file or one per seed ({len(seeds)}), got {len(e.paths)}"
            )
    rows: list[dict[str, Any]] = []
    for si, seed in enumerate(seeds):
        for shift in shifts:
            for name in BASELINE_MODELS if baselines else ():
                rows.append(evaluate_baseline(name, settings, _shift(shift), episodes, seed))
                _log(log, rows[-1])
            for e in entries:
                policy, _ = load_policy(e.path_for(si))
                own = e.ratios if e.ratios is not None else ratios
                if policy.fixed_ratio is not None:  # e.g. an HRSNN core: all spiking
                    own = [policy.fixed_ratio]
                for r in own:
                    t0 = time.perf_counter()
                    row = evaluate_policy(
                        policy,
                        settings,
                        r,
                        _shift(shift),
                        episodes,
                        seed,
                        online_plasticity=e.extra.get("online_plasticity", False),
                        plasticity_rate=e.extra.get("plasticity_rate", 1.0),
                    )
                    row["model"] = e.name
                    row["eval_s"] = time.perf_counter() - t0
                    rows.append(row)
                    _log(log, row)
    return with_gap_closed(rows)


def _shift(name: str) -> str | None:
    return None if name in ("nominal", "", None) else name


def _log(log, row) -> None:
    if log is not None:
        r = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        log(
            f"{row['model']:>16} r={r} {row['shift']:>12} seed={row['seed']} "
            f"score={row['score']:.3f}±{row['score_std']:.3f}"
        )


# ---- aggregation --------------------------------------------------------------------------------
def _key(row) -> tuple[str, float | None, str]:
    return row["model"], row["ratio"], row["shift"]


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (model, ratio, shift); robustness = shift / nominal."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    nominal = {
        (m, r, row["seed"]): row["score"]
        for row in rows
        for (m, r, s) in [_key(row)]
        if s == "nominal"
    }
    out = []
    for (model, ratio, shift), rs in groups.items():
        agg: dict[str, Any] = {"model": model, "ratio": ratio, "shift": shift, "seeds": len(rs)}
        for k in METRIC_FIELDS:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if k.endswith("_std") or not vals:  # the std here is over seeds
                continue
            agg[k] = float(np.mean(vals))
            agg[k + "_std"] = float(np.std(vals))
        rob = [  # undefined where the nominal score is 0
            r["score"] / nominal[(model, ratio, r["seed"])]
            for r in rs
            if nominal.get((model, ratio, r["seed"]))
        ]
        rob = [x for x in rob if math.isfinite(x)]
        if rob:
            agg["robustness"], agg["robustness_std"] = float(np.mean(rob)), float(np.std(rob))
        out.append(agg)
    return out


# ---- outputs -------------------------------------------------------------------------------------
def write_outputs(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    settings: dict[str, Any] | None = None,
    main: str = "hybrid",
    plots: bool = True,
) -> dict[str, Path]:
    """Write CSV, JSON, Markdown and (optionally) the PNG plots; return their paths.

    The gap closed is (re)computed from the baseline rows among ``rows``, so a merge of
    sweeps pairs a part run without baselines with the baselines of another part's
    identical worlds.
    """
    rows = with_gap_closed(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    paths = {"csv": out / "sweep.csv", "json": out / "sweep.json", "md": out / "sweep.md"}
    lists = {k for r in rows for k, v in r.items() if isinstance(v, list)}  # JSON only
    extra = sorted({k for r in rows for k in r} - set(ROW_FIELDS) - lists)
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*ROW_FIELDS, *extra])
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in w.fieldnames})
    blob = {"settings": settings or {}, "rows": list(rows), "aggregate": agg}
    blob["paired"] = paired_vs_baseline(rows)
    paths["json"].write_text(json.dumps(blob, indent=1))
    paths["md"].write_text(markdown_summary(rows, main))
    if plots:
        paths.update(plot_sweep(agg, out, main))
    return paths


def _fmt(a: dict[str, Any] | None, key: str = "score", digits: int = 3) -> str:
    if a is None or key not in a:
        return "–"
    return f"{a[key]:.{digits}f} ± {a[key + '_std']:.{digits}f}"


def _ratio_str(r) -> str:
    return "–" if r is None else f"{r:g}"


def _order(main: str):
    """Table order: the ceiling, the floor, the main model, then the others by name/ratio."""
    rank = {"expert": 0, "zero_action": 1, main: 2}
    return lambda mr: (rank.get(mr[0], 3), mr[0], -1 if mr[1] is None else mr[1])


def _ci(p: dict[str, Any], key: str, digits: int = 3) -> str:
    if key not in p:
        return "–"
    return f"{p[key]:+.{digits}f} [{p[key + '_lo']:+.{digits}f}, {p[key + '_hi']:+.{digits}f}]"


def merge_sweeps(parts: Sequence[tuple[Sequence[dict[str, Any]], dict[str, str]]]) -> list:
    """The rows of several sweeps as one sweep: each part's models renamed by its mapping
    (e.g. ``{"student": "previous"}``, to compare two files evaluated under one name), and
    an ``expert`` / ``zero_action`` row that repeats one already taken (every sweep runs
    them on the same worlds) dropped. Policy rows are all kept."""
    seen: set[tuple] = set()
    out = []
    for rows, rename in parts:
        for row in rows:
            row = {**row, "model": rename.get(row["model"], row["model"])}
            if row["model"] in BASELINE_MODELS:
                key = (row["model"], row["shift"], row["seed"], row.get("episode_s"))
                if key in seen:
                    continue
                seen.add(key)
            out.append(row)
    return out


def parse_merge_part(text: str) -> tuple[str, dict[str, str]]:
    """``DIR`` or ``DIR:OLD=NEW[,OLD=NEW]`` (``hsc sweep --merge``): a sweep folder and the
    model names to change in it."""
    path, _, spec = text.partition(":")
    rename = {}
    for item in filter(None, spec.split(",")):
        old, eq, new = item.partition("=")
        if not (eq and old and new):
            raise ValueError(f"merge part {text!r}: renames are OLD=NEW, got {item!r}")
        rename[old] = new
    return path, rename


def paired_line(
    p: dict[str, Any], baseline: str = "zero_action", min_detectable: float | None = None
) -> str:
    """One console line of a :func:`~.stats.paired_vs_baseline` result; with
    ``min_detectable`` (a CI half-width in gap closed) also the gap-closed MDE and the
    worlds that half-width would need."""
    r = "-" if p["ratio"] is None else f"{p['ratio']:g}"
    mde = p.get("score_diff_mde")
    line = (
        f"{p['model']} r={r} {p['shift']} vs {baseline}, {p['worlds']} worlds "
        f"({p['seeds']} seeds): Δscore {_ci(p, 'score_diff')} (95 % CI"
        + (f", MDE {mde:.3f})" if mde is not None else ")")
    )
    if "gap_closed_diff" in p:
        line += f", Δgap closed {_ci(p, 'gap_closed_diff', 2)} on {p['gap_worlds']} worlds"
        g_mde, g_sd = p.get("gap_closed_diff_mde"), p.get("gap_closed_diff_sd")
        if min_detectable is not None and g_mde is not None and g_sd is not None:
            need = worlds_needed(g_sd, min_detectable)
            line += f"; gap-closed MDE {g_mde:.3f}, ±{min_detectable:g} needs {need} worlds"
    return line


def markdown_summary(rows: Sequence[dict[str, Any]], main: str = "hybrid") -> str:
    """Tables: score and gap closed per model/ratio × shift, the paired comparison with
    ``zero_action``, cost per ratio, robustness, the hot-swap gap."""
    agg = aggregate(rows)
    by = {(a["model"], a["ratio"], a["shift"]): a for a in agg}
    shifts = sorted({a["shift"] for a in agg}, key=lambda s: (s != "nominal", s))
    models = sorted({(a["model"], a["ratio"]) for a in agg}, key=_order(main))
    seeds = max((a["seeds"] for a in agg), default=0)
    lines = [
        f"Normalized task score (1 = perfect tracking) and gap closed g = (score − zero_action)"
        " / (expert − zero_action), per world then averaged (0 = no better than standing "
        f"still, 1 = as good as the expert); mean ± std over {seeds} seeds.",
        "",
        "| model | ratio | " + " | ".join(f"{s} score | {s} gap closed" for s in shifts) + " |",
        "|---|---|" + "---|---|" * len(shifts),
    ]
    for m, r in models:
        cells = [
            _fmt(by.get((m, r, s))) + " | " + _fmt(by.get((m, r, s)), "gap_closed", 2)
            for s in shifts
        ]
        lines.append(f"| {m} | {_ratio_str(r)} | " + " | ".join(cells) + " |")
    paired = sorted(
        paired_vs_baseline(rows),
        key=lambda p: (_order(main)((p["model"], p["ratio"])), p["shift"] != "nominal", p["shift"]),
    )
    if paired:
        lines += [
            "",
            "Paired with `zero_action` on the same worlds (all seeds pooled): mean difference "
            "[95 % bootstrap CI over worlds]; MDE = smallest score difference detectable with "
            "80 % power at α 0.05 (2.8 sd/√n).",
            "",
            "| model | ratio | shift | worlds | Δ score | MDE | Δ gap closed |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in paired:
            mde = "–" if p.get("score_diff_mde") is None else f"{p['score_diff_mde']:.3f}"
            lines.append(
                f"| {p['model']} | {_ratio_str(p['ratio'])} | {p['shift']} | {p['worlds']} | "
                f"{_ci(p, 'score_diff')} | {mde} | {_ci(p, 'gap_closed_diff', 2)} |"
            )
    shifted = [s for s in shifts if s != "nominal"]
    if shifted:  # nothing to compare with nominal otherwise
        lines += [
            "",
            "Robustness: score under shift / nominal score (same model, ratio and seed).",
            "",
            "| model | ratio | " + " | ".join(shifted) + " |",
            "|---|---|" + "---|" * len(shifted),
        ]
        for m, r in models:
            cells = [_fmt(by.get((m, r, s)), "robustness", 2) for s in shifted]
            lines.append(f"| {m} | {_ratio_str(r)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cost per control step on the nominal worlds (measured activity; energy at 45 nm: "
        "MAC 4.6 pJ, AC 0.9 pJ).",
        "",
        "| model | ratio | SynOps | MACs | energy (nJ) | firing rate | step latency (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in models:
        a = by.get((m, r, "nominal"))
        if m in BASELINE_MODELS or a is None or "macs_per_step" not in a:
            continue
        lines.append(
            f"| {m} | {_ratio_str(r)} | {a['synops_per_step']:.0f} | {a['macs_per_step']:.0f} | "
            f"{a['energy_pj_per_step'] / 1e3:.1f} | {a['firing_rate']:.3f} | "
            f"{a['step_latency_ms']:.3f} |"
        )
    gap = hot_swap_gap(rows, main)
    if gap:
        lines += [
            "",
            f"Hot swap: one set of weights (`{main}`) at each ratio vs per-ratio restored models "
            "(nominal score on the seeds both have; gap = restored − one set).",
            "",
            "| ratio | seeds | one set | restored | gap |",
            "|---|---|---|---|---|",
        ]
        for g in gap:
            lines.append(
                f"| {g['ratio']:g} | {g['seeds']} | {g['one_set']:.3f} | {g['restored']:.3f} | "
                f"{g['gap']:+.3f} ± {g['gap_std']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def hot_swap_gap(
    rows: Sequence[dict[str, Any]], main: str = "hybrid", other: str = "restored"
) -> list[dict[str, Any]]:
    """Per ratio, on the seeds both have: nominal score of the one set of weights (``main``)
    and of the per-ratio restored models (``other``), and the gap (restored − one set)."""
    score = {
        (r["model"], r["ratio"], r["seed"]): r["score"] for r in rows if r["shift"] == "nominal"
    }
    out = []
    for ratio in sorted({k[1] for k in score if k[0] == other and k[1] is not None}):
        seeds = [k[2] for k in score if k[:2] == (other, ratio) and (main, ratio, k[2]) in score]
        if not seeds:
            continue
        one = [score[(main, ratio, s)] for s in seeds]
        res = [score[(other, ratio, s)] for s in seeds]
        gap = np.subtract(res, one)
        out.append(
            {
                "ratio": ratio,
                "seeds": len(seeds),
                "one_set": float(np.mean(one)),
                "restored": float(np.mean(res)),
                "gap": float(np.mean(gap)),
                "gap_std": float(np.std(gap)),
            }
        )
    return out


def plot_sweep(agg: Sequence[dict[str, Any]], out: Path, main: str = "hybrid") -> dict[str, Path]:
    """Score, cost and robustness vs ratio (PNG, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [a for a in agg if a["model"] == main and a["ratio"] is not None]
    shifts = sorted({a["shift"] for a in mine}, key=lambda s: (s != "nominal", s))
    others = [
        a for a in agg if a["model"] not in (main, *BASELINE_MODELS) and a["ratio"] is not None
    ]
    paths: dict[str, Path] = {}

    def line(ax, shift, key):
        pts = sorted(
            (a["ratio"], a[key], a[key + "_std"]) for a in mine if a["shift"] == shift and key in a
        )
        if pts:
            x, y, e = map(np.array, zip(*pts))
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"{main}: {shift}")

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in shifts:
        line(ax, s, "score")
    markers = "sD^v<>pP*X"
    for i, name in enumerate(sorted({a["model"] for a in others})):
        pts = [a for a in others if a["model"] == name and a["shift"] == "nominal"]
        if pts:
            ax.errorbar(
                [a["ratio"] for a in pts],
                [a["score"] for a in pts],
                yerr=[a["score_std"] for a in pts],
                fmt=markers[i % len(markers)],
                capsize=3,
                label=f"{name} (nominal)",
            )
    for name, style in zip(BASELINE_MODELS, ("--", ":")):
        base = [a for a in agg if a["model"] == name and a["shift"] == "nominal"]
        if base:
            ax.axhline(base[0]["score"], color="k", ls=style, lw=1, label=f"{name} (nominal)")
    ax.set(xlabel="spiking ratio r", ylabel="normalized score", title="Task score vs ratio")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    paths["score_png"] = out / "score_vs_ratio.png"
    fig.tight_layout()
    fig.savefig(paths["score_png"], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, key, label in zip(
        axes,
        ("synops_per_step", "macs_per_step", "energy_pj_per_step"),
        ("SynOps / step", "MACs / step", "energy / step (pJ)"),
    ):
        line(ax, "nominal", key)
        ax.set(xlabel="spiking ratio r", ylabel=label)
        ax.grid(alpha=0.3)
    fig.suptitle("Cost per control step vs ratio (nominal worlds)")
    paths["cost_png"] = out / "cost_vs_ratio.png"
    fig.tight_layout()
    fig.savefig(paths["cost_png"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in shifts:
        if s != "nominal":
            line(ax, s, "robustness")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(
        xlabel="spiking ratio r", ylabel="score under shift / nominal", title="Robustness vs ratio"
    )
    if ax.get_legend_handles_labels()[0]:  # a nominal-only sweep has no shifted line
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    paths["robustness_png"] = out / "robustness_vs_ratio.png"
    fig.tight_layout()
    fig.savefig(paths["robustness_png"], dpi=110)
    plt.close(fig)
    return paths

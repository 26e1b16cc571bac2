"""The ratio study's paired answers on synthetic sweeps with a known effect."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_snn_control.training.ratio_report import (
    hot_swap,
    hybrid_vs_ends,
    paired_models,
    study_markdown,
    write_study,
)
from hybrid_snn_control.training.stats import MDE_Z, Z95, with_gap_closed, worlds_needed
from hybrid_snn_control.training.sweep import paired_line

WORLDS = 40


def _row(model, ratio, seed, scores, shift="nominal", **extra):
    return {
        "model": model,
        "ratio": ratio,
        "shift": shift,
        "seed": seed,
        "episode_s": 10.0,
        "episode_seeds": [1000 * seed + i for i in range(len(scores))],
        "episode_scores": [float(s) for s in scores],
        "score": float(np.mean(scores)),
        **extra,
    }


def _sweep(effects: dict, seeds=(0, 1, 2), noise=0.02, rng_seed=0):
    """Worlds whose difficulty varies a lot (0.2-0.8) and models that add a fixed effect
    plus small per-world noise; expert 1, zero_action 0, so gap closed = score."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in seeds:
        world = rng.uniform(0.2, 0.8, WORLDS)
        rows.append(_row("expert", None, seed, np.ones(WORLDS)))
        rows.append(_row("zero_action", None, seed, np.zeros(WORLDS)))
        for (model, ratio), effect in effects.items():
            rows.append(_row(model, ratio, seed, world + effect + rng.normal(0, noise, WORLDS)))
    return rows


def test_a_hybrid_with_a_known_lead_beats_both_ends_and_a_tie_does_not():
    rows = _sweep(
        {
            ("pure_rnn", 0.0): 0.0,
            ("pure_snn", 1.0): 0.0,
            ("hybrid", 0.5): 0.05,
            ("hybrid", 0.25): 0.0,
        }
    )
    res = {
        r["model"]: r
        for r in hybrid_vs_ends(with_gap_closed(rows), [("hybrid", 0.5), ("hybrid", 0.25)])
    }
    lead, tie = res[("hybrid", 0.5)], res[("hybrid", 0.25)]
    assert lead["beats_both"] and not tie["beats_both"]
    for d in lead["diffs"]:
        assert d["lo"] < 0.05 < d["hi"]  # the CI covers the true effect
        assert d["ratio_lo"] < 0.05 < d["ratio_hi"]  # expert 1, zero 0: the same estimate
        assert d["ratio_mean"] == pytest.approx(d["mean"])
        assert d["worlds"] == 3 * WORLDS and d["seeds"] == 3
        # paired: the worlds' spread (sd ≈ 0.17) cancels, only the noise (√2 · 0.02) stays
        assert d["half_width"] < 0.01
    assert all(d["lo"] < 0 < d["hi"] for d in tie["diffs"])


def test_hot_swap_within_tolerance_and_a_real_gap_are_told_apart():
    effects = {("hybrid", r): 0.0 for r in (0.0, 0.5, 1.0)}
    effects |= {("restored", 0.0): 0.0, ("restored", 0.5): 0.0, ("restored", 1.0): 0.08}
    hs = {d["ratio"]: d for d in hot_swap(with_gap_closed(_sweep(effects, noise=0.01)))}
    assert hs[0.0]["within"] and hs[0.5]["within"] and not hs[0.5]["worse"]
    assert hs[1.0]["worse"] and not hs[1.0]["within"]


def test_pairing_uses_only_shared_worlds_across_ratios():
    rows = _sweep({("a", 0.25): 0.1, ("b", 1.0): 0.0}, seeds=(0,))
    rows.append(_row("b", 1.0, 7, np.zeros(5)))  # worlds of another seed: no partner in a
    d = paired_models(with_gap_closed(rows), ("a", 0.25), ("b", 1.0))
    assert d["worlds"] == WORLDS and d["seeds"] == 1
    assert paired_models(with_gap_closed(rows), ("a", 0.5), ("b", 1.0)) is None


def test_worlds_needed_inverts_the_half_width():
    sd, h = 0.25, 0.03
    n = worlds_needed(sd, h)
    assert Z95 * sd / np.sqrt(n) <= h < Z95 * sd / np.sqrt(n - 1)
    assert MDE_Z == pytest.approx(2.8016, abs=1e-4)


def test_min_detectable_line_reports_the_worlds_a_target_needs():
    p = {
        "model": "m",
        "ratio": 0.5,
        "shift": "nominal",
        "worlds": 100,
        "seeds": 5,
        "score_diff": 0.1,
        "score_diff_lo": 0.05,
        "score_diff_hi": 0.15,
        "score_diff_mde": 0.07,
        "gap_worlds": 100,
        "gap_closed_diff": 0.2,
        "gap_closed_diff_lo": 0.1,
        "gap_closed_diff_hi": 0.3,
        "gap_closed_diff_mde": MDE_Z * 0.3 / 10,  # sd 0.3 over 100 worlds
        "gap_closed_diff_sd": 0.3,
    }
    line = paired_line(p, min_detectable=0.03)
    assert f"needs {worlds_needed(0.3, 0.03)} worlds" in line  # (1.96 · 0.3 / 0.03)² → 385
    assert "needs" not in paired_line(p)


def test_study_report_writes_tables_and_plots(tmp_path):
    effects = {("hybrid", r): 0.02 * r for r in (0.0, 0.25, 0.5, 0.75, 1.0)}
    effects |= {("pure_rnn", 0.0): 0.0, ("pure_snn", 1.0): 0.0, ("direct_hybrid", 0.5): 0.0}
    effects |= {("restored", r): 0.0 for r in (0.25, 0.5, 0.75)}
    cost = {"energy_pj_per_step": 1e5, "synops_per_step": 10.0, "macs_per_step": 1e4,
            "step_latency_ms": 0.3}  # fmt: skip
    rows = [dict(r, **cost) if r["model"] == "hybrid" else r for r in _sweep(effects)]
    paths = write_study(rows, tmp_path)
    md = paths["md"].read_text()
    assert "(a) hybrids vs the pure ends, nominal" in md and "hybrid r=0.5" in md
    assert "(b) hot swap, nominal" in md and "(c) cost per step vs ratio, dense conv" in md
    assert paths["gap_png"].stat().st_size > 0 and paths["pareto_png"].stat().st_size > 0
    assert study_markdown(rows, [], ["nominal"]).count("(a)") == 0


def test_ratio_of_means_weighs_small_margin_worlds_less():
    """Half the worlds have expert − zero = 0.05, where a small score difference becomes a
    huge per-world gap closed; the ratio of means is Σ(s_a − s_b) / Σ(e − z)."""
    rows = []
    span = np.r_[np.full(10, 0.05), np.full(10, 0.8)]
    zero = np.full(20, 0.1)
    rows.append(_row("expert", None, 0, zero + span))
    rows.append(_row("zero_action", None, 0, zero))
    diff = np.r_[np.full(10, 0.04), np.full(10, 0.08)]
    rows.append(_row("a", 0.5, 0, zero + 0.01 + diff))
    rows.append(_row("b", 0.5, 0, zero + 0.01))
    d = paired_models(with_gap_closed(rows), ("a", 0.5), ("b", 0.5))
    assert d["ratio_mean"] == pytest.approx(diff.sum() / span.sum())  # 1.2 / 8.5 ≈ 0.14
    assert d["mean"] == pytest.approx(np.mean(diff / span))  # (0.8 + 0.1) / 2 = 0.45

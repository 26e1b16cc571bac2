"""The ratio study: every method at every ratio, summaries, the hot-swap gap, the report."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.hstnn import HSTNNConfig
from hybrid_snn_control.training.ratio_study import (
    METHODS,
    hot_swap_gap,
    plot,
    run_seed,
    summarize,
    write_report,
)


def test_hot_swap_gap_is_per_seed_difference_of_per_ratio_and_shared():
    rows = [
        {"seed": s, "method": m, "ratio": 0.5, "accuracy": acc}
        for s, m, acc in [
            (0, "hstnn_shared", 0.80),
            (0, "hstnn_per_ratio", 0.90),
            (1, "hstnn_shared", 0.70),
            (1, "hstnn_per_ratio", 0.70),
        ]
    ]
    mean, std = hot_swap_gap(rows, [0.5])[0.5]
    assert mean == pytest.approx(0.05) and std == pytest.approx(0.0707107, rel=1e-5)


def test_one_seed_of_the_study_end_to_end(tmp_path):
    torch.set_num_threads(1)
    task = ClassificationTask(
        ClassifyConfig(
            sensor_size=[16, 16], num_classes=2, num_train=16, num_test=8, num_bins=3,
            hidden_size=4, num_layers=1, batch_size=8, efficiency_samples=4,
        )
    )  # fmt: skip
    cfg = HSTNNConfig(
        out_dir=str(tmp_path / "seed0"), adapt_steps=2, restore_steps=1, select_batches=1,
        select_probes=2, progress=False, tensorboard=False,
    )  # fmt: skip
    ratios = [0.0, 1.0]
    rows = run_seed(task, cfg, ratios, log=lambda msg: None)
    assert sorted((r["method"], r["ratio"]) for r in rows) == sorted(
        (m, r) for m in METHODS for r in ratios
    )
    summary = summarize(rows, ratios)
    assert summary["direct"][1.0]["n"] == 1
    study = {
        "ratios": ratios,
        "summary": summary,
        "hot_swap_gap": hot_swap_gap(rows, ratios),
    }
    images = plot(summary, ratios, tmp_path / "img", "t")
    assert all(p.stat().st_size > 1000 for p in images)
    doc = tmp_path / "r.md"
    write_report(study, doc, images)
    text = doc.read_text()
    assert "| r = 0 | r = 1 |" in text and "img/t_accuracy_vs_ratio.png" in text

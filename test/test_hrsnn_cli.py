"""``hsc hrsnn search`` / ``compare`` on a tiny synthetic task (end to end, no downloads)."""

from __future__ import annotations

import json

from hybrid_snn_control.cli import main

TINY = [
    "--classes",
    "2",
    "--train",
    "12",
    "--eval",
    "12",
    "--steps",
    "8",
    "--sensor",
    "16",
    "--neurons",
    "20",
]


def test_search_then_compare_with_the_found_parameters(tmp_path, capsys):
    het, hom = tmp_path / "het.json", tmp_path / "hom.json"
    assert main(["hrsnn", "search", *TINY, "--trials", "2", "--out", str(het)]) == 0
    args = ["hrsnn", "search", *TINY, "--trials", "1", "--condition", "hom-hom"]
    assert main([*args, "--out", str(hom)]) == 0
    found = json.loads(het.read_text())
    assert len(found["trials"]) == 2 and found["condition"] == "het-het"
    assert 0.0 <= found["best_validation_accuracy"] <= 1.0
    assert "tau_mem_cv" in found["best_params"]
    assert "tau_mem_cv" not in json.loads(hom.read_text())["best_params"]  # fixed at 0

    runs = tmp_path / "runs.json"
    args = ["hrsnn", "compare", *TINY, "--seeds", "0", "--params", str(het), str(hom)]
    assert main([*args, "--json", str(runs)]) == 0
    rows = json.loads(runs.read_text())["rows"]
    assert [r["condition"] for r in rows] == [
        "linear readout on input",
        "heterogeneous neurons + heterogeneous STDP",
        "homogeneous neurons + homogeneous STDP",
    ]
    assert "| condition |" in capsys.readouterr().out


def test_bad_pooling_is_a_clear_error(capsys):
    assert main(["hrsnn", "compare", *TINY, "--pool", "3"]) == 2
    assert "multiple of --pool" in capsys.readouterr().err

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
    out = tmp_path / "search.json"
    assert main(["hrsnn", "search", *TINY, "--trials", "2", "--out", str(out)]) == 0
    found = json.loads(out.read_text())
    assert len(found["trials"]) == 2
    assert 0.0 <= found["best_validation_accuracy"] <= 1.0
    assert "tau_mem_cv" in found["best_params"]

    runs = tmp_path / "runs.json"
    args = ["hrsnn", "compare", *TINY, "--seeds", "0", "--params", str(out), "--json", str(runs)]
    assert main(args) == 0
    rows = json.loads(runs.read_text())["rows"]
    assert {r["condition"] for r in rows} >= {
        "linear readout on input",
        "heterogeneous neurons + heterogeneous STDP",
        "homogeneous neurons + homogeneous STDP",
    }
    assert "| condition |" in capsys.readouterr().out


def test_bad_pooling_is_a_clear_error(capsys):
    assert main(["hrsnn", "compare", *TINY, "--pool", "3"]) == 2
    assert "multiple of --pool" in capsys.readouterr().err

"""``hsc export`` and ``hsc bench`` end to end on a small real checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_fixtures import save_test_policy

from hybrid_snn_control.cli import main
from hybrid_snn_control.deploy.runtime import load_runtime


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_test_policy(tmp_path_factory.mktemp("cli") / "small.safetensors", hidden_size=16)


@pytest.mark.parametrize(
    ("fmt", "backend"), [("torchscript", "torchscript"), ("onnx", "onnxruntime")]
)
def test_hsc_export_writes_a_loadable_artefact(checkpoint, tmp_path, capsys, fmt, backend):
    out = tmp_path / f"p.{fmt}"
    args = ["export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out)]
    if fmt == "onnx":
        args += ["--onnx-exporter", "torchscript"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "spiking_ratio" in text and "next_state.trace" in text
    if fmt == "onnx":
        assert "--minShapes=events:1x2x64x64,proprio:1x8,state.layer0.spiking.v:1x16" in text
    meta = json.loads((tmp_path / f"p.{fmt}.json").read_text())
    assert meta["format"] == fmt
    rt = load_runtime(out, backend)
    ref = load_runtime(checkpoint, "torch")
    ev = np.ones((2, 64, 64), np.float32)
    pr = np.zeros(8, np.float32)
    for _ in range(3):
        np.testing.assert_allclose(rt.step(ev, pr), ref.step(ev, pr), atol=1e-5)


def test_hsc_export_nir_refuses_hybrid_ratio_unless_partial(checkpoint, tmp_path, capsys):
    out = tmp_path / "p.nir"
    base = ["export", "--checkpoint", str(checkpoint), "--format", "nir", "--out", str(out)]
    assert main(base) == 2  # ratio 0.5: LSTM units present → clear error, nothing written
    assert "NOT exported: layer0.recurrent" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--partial"]) == 0
    assert "exported:     layer0.spiking" in capsys.readouterr().out
    assert out.exists()
    assert main([*base, "--ratio", "1.0"]) == 0


def test_hsc_export_cuda_without_cuda_is_a_clear_error(checkpoint, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    args = ["export", "--checkpoint", str(checkpoint), "--format", "torchscript"]
    assert main([*args, "--device", "cuda", "--out", str(tmp_path / "x.pt")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_hsc_bench_reports_percentiles_and_ratio_to_eager(checkpoint, capsys):
    args = ["bench", "--checkpoint", str(checkpoint), "--threads", "1", "--steps", "40"]
    assert main([*args, "--warmup", "8", "--rounds", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {(r["backend"], r["mode"]): r for r in result["rows"]}
    assert set(rows) == {
        (b, m)
        for b in ("torch", "torchscript", "onnxruntime")
        for m in ("fixed_ratio", "ratio_change")
    }
    for r in rows.values():
        assert r["samples"] == 40 and 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"]
    assert rows[("torch", "fixed_ratio")]["x_eager"] == 1.0
    for mode in ("fixed_ratio", "ratio_change"):
        best = result["best"][mode]
        assert best["backend"] in ("torchscript", "onnxruntime")
        assert best["x_best_eager"] == best["p50_us"] / best["eager_p50_us"]


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--checkpoint", str(tmp_path / "nope.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err

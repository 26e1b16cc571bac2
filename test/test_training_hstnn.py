"""HSTNN stages over the classification task: end to end, ranking in the checkpoint, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hybrid_snn_control.policy.checkpoint import CheckpointError, load_checkpoint, split_prefix
from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.hstnn import HSTNNConfig, adapt, direct, pipeline, restore, select
from hybrid_snn_control.training.hstnn_run import run_hstnn, run_stage
from hybrid_snn_control.training.loop import TrainRun
from hybrid_snn_control.training.task import Task, core_of, load_model

RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)


def tiny_config(cache_dir: Path) -> ClassifyConfig:
    return ClassifyConfig(
        sensor_size=[16, 16],
        num_classes=2,
        num_train=24,
        num_test=8,
        num_bins=4,
        pool=2,
        hidden_size=8,
        num_layers=2,
        batch_size=8,
        efficiency_samples=8,
        cache_dir=str(cache_dir),
    )


def tiny_hstnn(out_dir: Path, **kw) -> HSTNNConfig:
    base = HSTNNConfig(
        out_dir=str(out_dir),
        adapt_steps=12,
        restore_steps=6,
        select_batches=2,
        select_probes=4,
        probes_per_pass=4,
        checkpoint_every=4,
        log_every=2,
        progress=False,
        tensorboard=False,
    )
    return replace(base, **kw)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> ClassificationTask:
    return ClassificationTask(tiny_config(tmp_path_factory.mktemp("cls_cache")))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return split_prefix(load_checkpoint(path)[0], "model")


def test_classification_task_satisfies_the_protocol(task):
    assert isinstance(task, Task)


def test_pipeline_end_to_end_trains_ranks_and_evaluates_every_ratio(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, adapt_steps=30, adapt_lr=1e-2, tensorboard=True)
    untrained = task.build_model()
    untrained.core.set_redundant()
    loss_before = task.evaluate(untrained, None, split="train")["loss"]

    paths = pipeline(task, cfg)
    assert all(p.exists() for p in paths.values())
    assert list((tmp_path / "adapt" / "tb").glob("events.out.tfevents.*"))

    adapted, meta = load_model(paths["adapt"], task)
    assert meta["stage"] == "adapt" and core_of(adapted).spiking_ratio is None
    assert task.evaluate(adapted, None, split="train")["loss"] < loss_before

    restored, meta = load_model(paths["restore"], task)
    assert meta["restore_ratios"] == list(RATIOS)
    results = [task.evaluate(restored, r) for r in RATIOS]
    assert all(0.0 <= res["accuracy"] <= 1.0 for res in results)
    macs = [res["macs_per_step"] for res in results]
    assert macs == sorted(macs, reverse=True) and macs[0] > macs[-1]  # LSTM units cost MACs
    assert results[0]["synops_per_step"] >= 0 and results[-1]["macs_per_step"] > 0  # readout


def test_ranking_is_stored_in_the_checkpoint_and_reloaded(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, ratio=0.25)
    selected = select(task, cfg, adapt(task, cfg))
    tensors = _state(selected)
    model, meta = load_model(selected, task)
    core = core_of(model)
    assert meta["stage"] == "select" and core.spiking_ratio == 0.25
    for i, layer in enumerate(core.layers):
        for kind in ("spiking", "recurrent"):
            importance = tensors[f"core.layers.{i}.{kind}_importance"]
            rank = tensors[f"core.layers.{i}.{kind}_rank"]
            assert bool(importance.abs().sum() > 0)  # Hessian scores, not the zero default
            best_first = torch.argsort(importance, descending=True, stable=True)
            assert torch.equal(torch.argsort(rank), best_first)
            assert meta["ranking"][i][kind] == best_first.tolist()
            assert torch.equal(getattr(layer, f"{kind}_rank"), rank)  # reloaded
        # ratio 0.25 of 8 units keeps the 2 most important spiking units
        keep = torch.argsort(tensors[f"core.layers.{i}.spiking_importance"], descending=True)[:2]
        assert torch.equal(layer.spiking_mask.nonzero().flatten().sort().values, keep.sort().values)
    # restoration keeps the ranking it was given
    restored = restore(task, cfg, selected, ratios=[0.25])
    r_tensors = _state(restored)
    assert all(torch.equal(r_tensors[k], tensors[k]) for k in tensors if k.endswith("_rank"))
    assert load_model(restored, task)[1]["spiking_ratio"] == 0.25


def test_direct_baselines_train_a_fixed_split(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, adapt_steps=4, restore_steps=2)
    for r in (0.0, 1.0):
        model, meta = load_model(direct(task, cfg, r), task)
        core = core_of(model)
        assert meta["stage"] == "direct" and core.spiking_ratio == r
        assert meta["train"]["steps"] == 6
        assert torch.equal(core.layers[0].spiking_rank, torch.arange(8))  # no selection


WORKER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from hybrid_snn_control.training import loop
from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.hstnn import HSTNNConfig, adapt
cls_cfg, h_cfg, kill_at = {cls_cfg!r}, {h_cfg!r}, {kill_at}
original_log = loop.TrainRun.log
def log(self, **metrics):
    original_log(self, **metrics)
    if self.step == kill_at:  # after a checkpoint at an earlier step: lose some work
        os.kill(os.getpid(), signal.SIGKILL)
loop.TrainRun.log = log
adapt(ClassificationTask(ClassifyConfig(**cls_cfg)), HSTNNConfig(**h_cfg))
"""


def test_stages_read_the_previous_stage_from_out_dir_and_name_one_ratio_restores(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, adapt_steps=4, restore_steps=2, select_batches=1, select_probes=2)
    assert run_stage(task, cfg, "adapt") == {"adapt": tmp_path / "adapt.safetensors"}
    selected = run_stage(task, cfg, "select", ratio=0.25)["select"]  # reads adapt.safetensors
    assert load_model(selected, task)[1]["spiking_ratio"] == 0.25  # --ratio: the stored ratio
    paths = run_stage(task, cfg, "restore", ratios=[0.75])  # reads select.safetensors
    assert paths == {"restore": tmp_path / "restore_r0.75.safetensors"}
    assert load_model(paths["restore"], task)[1]["restore_ratios"] == [0.75]
    result = run_hstnn(task, cfg, "eval", model=paths["restore"])  # at the restore ratios
    assert [row["ratio"] for row in result.evaluations] == list(RATIOS) and result.is_main
    with pytest.raises(ValueError, match="stage must be one of"):
        run_stage(task, cfg, "finetune")


def test_resume_after_sigkill_reaches_the_uninterrupted_weights(task, tmp_path):
    from dataclasses import asdict

    cfg_full = tiny_hstnn(tmp_path / "full", adapt_ratio_sampling=True)  # RNG used per step
    cfg_kill = tiny_hstnn(tmp_path / "killed", adapt_ratio_sampling=True)
    full = adapt(task, cfg_full)

    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(WORKER).format(cls_cfg=asdict(task.cfg), h_cfg=asdict(cfg_kill), kill_at=10)
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    state_file = tmp_path / "killed" / "adapt" / "train_state.safetensors"
    assert load_checkpoint(state_file)[1]["step"] == 8  # checkpoint_every=4, killed in step 10
    assert not (tmp_path / "killed" / "adapt.safetensors").exists()

    resumed = adapt(task, cfg_kill)  # a fresh process would do the same: all state is on disk
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:  # bit-exact (NaN == NaN for the redundant network's ratio buffer)
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, equal_nan=True, msg=k)
    assert os.path.getsize(full) > 0


def test_resume_refuses_a_run_dir_of_other_settings(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, adapt_steps=4)
    adapt(task, cfg)
    with pytest.raises(CheckpointError, match="total_steps"):
        adapt(task, replace(cfg, adapt_steps=5))


def test_load_model_rejects_other_tasks_and_architectures(task, tmp_path):
    path = adapt(task, tiny_hstnn(tmp_path, adapt_steps=1))
    wider = ClassificationTask(replace(task.cfg, hidden_size=16), data=task.data)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(path, wider)

    class Other(ClassificationTask):
        name = "other"

    with pytest.raises(CheckpointError, match="classify"):
        load_model(path, Other(task.cfg, data=task.data))


def test_train_run_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainRun(tmp_path, 10, checkpoint_every=0)
    with pytest.raises(ValueError, match="device"):
        TrainRun(tmp_path, 10, device="tpu")


def test_hsc_hstnn_pipeline_command_writes_the_three_stages(task, tmp_path, capsys):
    from hybrid_snn_control.cli import main

    sets = [
        "adapt_steps=4", "restore_steps=2", "select_probes=2", "select_batches=1",
        "tensorboard=false", "num_train=24", "num_test=8", "num_classes=2", "num_bins=4",
        "sensor_size=[16, 16]", "hidden_size=8", "batch_size=8", "efficiency_samples=8",
        f"cache_dir={task.cfg.cache_dir}",
    ]  # fmt: skip
    args = ["hstnn", "pipeline", "--task", "classify", "--out", str(tmp_path), "--no-progress"]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert all((tmp_path / f"{s}.safetensors").exists() for s in ("adapt", "select", "restore"))
    assert out.count('"accuracy"') == len(RATIOS)  # evaluated at every restore ratio
    assert main(["hstnn", "adapt", "--set", "adapt_stepz=3"]) == 2  # typo: clear error
    assert "adapt_stepz" in capsys.readouterr().err


def test_a_corrupted_train_state_is_a_clear_error_not_a_silent_restart(task, tmp_path):
    cfg = tiny_hstnn(tmp_path, adapt_steps=4)
    adapt(task, cfg)
    state = tmp_path / "adapt" / "train_state.safetensors"
    blob = bytearray(state.read_bytes())
    blob[-5] ^= 0xFF  # flip bits in the last tensor's bytes
    state.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="content check"):
        adapt(task, cfg)

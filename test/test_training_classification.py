"""Event classification: rate-coded loss, data sources and cache, evaluation, learning."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from hybrid_snn_control.events.synthetic import SyntheticConfig, generate_dataset, save_dataset
from hybrid_snn_control.training.classification import (
    ClassificationTask,
    ClassifyConfig,
    load_event_tensors,
)
from hybrid_snn_control.training.loop import TrainRun

TINY = ClassifyConfig(
    sensor_size=[16, 16],
    num_classes=2,
    num_train=16,
    num_test=8,
    num_bins=4,
    pool=2,
    hidden_size=16,
    num_layers=1,
    batch_size=8,
    efficiency_samples=8,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> ClassificationTask:
    return ClassificationTask(replace(TINY, cache_dir=str(tmp_path_factory.mktemp("cache"))))


def test_loss_is_cross_entropy_of_the_readout_averaged_over_all_time_steps(task):
    torch.manual_seed(0)
    model = task.build_model()
    frames, labels = next(iter(task.loss_batches(model, 1)))
    per_step = model.sequence_logits(frames)  # [T, B, K]
    assert per_step.shape == (TINY.num_bins, TINY.batch_size, 2)
    expected = F.cross_entropy(per_step.mean(0), labels)
    torch.testing.assert_close(task.loss(model, (frames, labels)), expected)
    # every step contributes: silencing the later bins changes the rate-coded output
    early = frames.clone()
    early[:, 1:] = 0
    assert not torch.allclose(model(early), model(frames))


def test_frames_of_the_wrong_shape_are_a_clear_error(task):
    model = task.build_model()
    with pytest.raises(ValueError, match="frames must be"):
        model(torch.zeros(2, 4, 2, 9, 9))


def test_cache_returns_the_same_tensors(task):
    again = load_event_tensors(task.cfg)  # from the .npz written by the fixture
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(again[k], task.data[k])
    assert again["classes"] == ("right", "left")
    assert task.data["x_train"].shape == (16, 4, 2, 8, 8)
    assert sorted(task.data["y_train"].tolist()) == [0] * 8 + [1] * 8  # balanced


def test_reads_an_event_folder_with_a_seeded_split(tmp_path):
    syn = SyntheticConfig(num_classes=3, sensor_size=(16, 16))
    save_dataset(generate_dataset(10, syn, seed=1), tmp_path / "data", syn.classes)
    cfg = replace(TINY, data_dir=str(tmp_path / "data"), test_fraction=0.3)
    data = load_event_tensors(cfg)
    assert data["classes"] == tuple(sorted(syn.classes))  # class folders, sorted
    assert len(data["y_test"]) == 3 and len(data["y_train"]) == 7
    assert torch.equal(load_event_tensors(cfg)["y_test"], data["y_test"])  # same split again
    task = ClassificationTask(cfg, data=data)
    assert task.build_model().core.readout.out_features == 3


def test_evaluate_reports_cost_and_leaves_the_model_as_it_was(task):
    model = task.build_model()
    model.core.set_ratio(0.25)
    model.train()
    res = {r: task.evaluate(model, r) for r in (0.0, 1.0)}
    assert model.core.spiking_ratio == 0.25 and model.training
    assert res[1.0]["energy_pj_per_step"] < res[0.0]["energy_pj_per_step"]
    assert res[0.0]["synops_per_step"] > 0  # event input drives accumulates
    assert 0.0 <= res[1.0]["accuracy"] <= 1.0 and res[1.0]["score"] == res[1.0]["accuracy"]
    assert task.evaluate(model, None)["ratio"] is None and model.core.spiking_ratio == 0.25


def test_training_fits_the_training_clips(task, tmp_path):
    torch.manual_seed(0)
    model = task.build_model()
    model.core.set_ratio(0.5)
    before = task.evaluate(model, 0.5, split="train")["loss"]
    run = TrainRun(tmp_path, 60, lr=1e-2, seed=0, progress=False, tensorboard=False)
    task.train(model, run)
    after = task.evaluate(model, 0.5, split="train")
    assert after["loss"] < 0.5 * before
    assert after["accuracy"] >= 0.9  # 16 clips of two time-reversed motions

"""The BPTT-trained hybrid on the HRSNN comparison's data (``training/hrsnn_bptt.py``)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from hybrid_snn_control.cli import main
from hybrid_snn_control.training.hrsnn import synthetic_event_task
from hybrid_snn_control.training.hrsnn_bptt import (
    BPTTSettings,
    _build,
    classification_task,
    pick_epochs,
    stratified_holdout,
    train_and_evaluate_bptt,
)

TINY = BPTTSettings(hidden_size=16, batch_size=8)


@pytest.fixture(scope="module")
def tiny_task():
    """2 classes (right / left: time-reversed twins), 32 + 32 clips, 10 steps, 128 inputs."""
    torch.set_num_threads(1)
    train = synthetic_event_task(32, 0, num_classes=2, sensor_size=(16, 16), num_steps=10)
    test = synthetic_event_task(32, 1, num_classes=2, sensor_size=(16, 16), num_steps=10)
    return train, test


def test_trained_hybrid_beats_its_untrained_self_on_held_out_clips(tiny_task):
    train, test = tiny_task
    untrained = train_and_evaluate_bptt(train, test, 2, 0.5, seed=0, epochs=0, settings=TINY)
    trained = train_and_evaluate_bptt(train, test, 2, 0.5, seed=0, epochs=10, settings=TINY)
    assert trained["accuracy"] >= 0.9  # chance is 0.5
    assert trained["accuracy"] > untrained["accuracy"]
    assert trained["steps"] == 10 * 32 // 8
    # r = 0.5 keeps half of each layer's 16 candidates of each type
    assert (trained["num_spiking"], trained["num_recurrent"]) == (16, 16)
    assert trained["num_neurons"] == 32 and trained["num_candidate_units"] == 64


def test_cost_per_clip_follows_the_efficiency_accounting(tiny_task):
    train, test = tiny_task
    snn = train_and_evaluate_bptt(train, test, 2, 1.0, seed=0, epochs=1, settings=TINY)
    rnn = train_and_evaluate_bptt(train, test, 2, 0.0, seed=0, epochs=1, settings=TINY)
    t, k, n = 10, 2, 16
    assert snn["macs_per_clip"] == pytest.approx(t * k * n)  # only the readout is dense
    assert snn["synops_per_clip"] > 0 and snn["firing_rate"] > 0
    # all-LSTM (4 gates): recurrent 4n·n per layer, layer 2 reads layer 1's n dense
    # outputs (4n·n), readout k·n; the event input is accumulates, not MACs
    assert rnn["macs_per_clip"] == pytest.approx(t * (3 * 4 * n * n + k * n))
    assert rnn["synops_per_clip"] > 0 and rnn["firing_rate"] == 0.0
    assert rnn["energy_uj_per_clip"] > snn["energy_uj_per_clip"]


def test_the_network_sees_exactly_the_given_tensors(tiny_task):
    (x, y), test = tiny_task
    task = classification_task((x, y), test, 2, TINY)
    model = task.build_model()
    assert torch.equal(
        model.core_input(task.data["x_train"][:4]), torch.log1p(x[:4]).transpose(0, 1)
    )


def test_validation_split_is_stratified_and_leaves_three_quarters():
    labels = torch.tensor([0, 1] * 8 + [2] * 4)
    held = stratified_holdout(labels, 3)
    assert int(held.sum()) == 2 + 2 + 1
    assert [int((labels[held] == c).sum()) for c in range(3)] == [2, 2, 1]
    with pytest.raises(ValueError, match="every"):
        stratified_holdout(labels, 3, every=1)


def test_pick_epochs_ignores_a_lone_lucky_point_and_prefers_fewer_epochs():
    accs = [0.5, 0.9, 0.5, 0.5, 0.8, 0.8, 0.8, 0.8]
    curve = [{"epoch": 5 * (i + 1), "val_accuracy": a} for i, a in enumerate(accs)]
    assert pick_epochs(curve) == 30  # first point inside the plateau, not the spike at 10
    assert pick_epochs(curve, smooth=1) == 10
    with pytest.raises(ValueError):
        pick_epochs([])


def test_cli_chooses_epochs_on_validation_and_writes_every_run(tmp_path, capsys):
    out = tmp_path / "bptt.json"
    args = ["hrsnn", "bptt", "--classes", "2", "--train", "16", "--eval", "8", "--steps", "6"]
    args += ["--sensor", "16", "--hidden", "8", "--batch-size", "4", "--seeds", "0", "1"]
    args += ["--ratios", "0", "1", "--max-epochs", "4", "--eval-every", "2"]
    args += ["--select-seeds", "0", "--json", str(out)]
    assert main(args) == 0
    found = json.loads(out.read_text())
    assert [(r["ratio"], r["seed"]) for r in found["rows"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for chosen in found["selection"]:
        assert chosen["epochs"] in (2, 4)
        assert [p["epoch"] for p in chosen["curves"][0]] == [2, 4]
    assert "| LIF/LSTM 2 × 8 | 0 | 2 |" in capsys.readouterr().out


def test_cli_bad_pooling_is_a_clear_error(capsys):
    assert main(["hrsnn", "bptt", "--sensor", "16", "--pool", "3"]) == 2
    assert "multiple of --pool" in capsys.readouterr().err


def test_spiking_kwargs_reach_every_layers_cells(tiny_task):
    train, test = tiny_task
    settings = replace(TINY, spiking_kwargs={"decay": 0.85, "heterogeneous_tau": 1.0})
    task = classification_task(train, test, 2, settings)
    model = _build(task, settings)
    for layer in model.core.layers:
        assert layer.spiking.decay.unique().numel() == 16  # one τ per neuron
    plain = _build(task, TINY)
    assert bool((plain.core.layers[0].spiking.decay == 0.6).all())
    assert model(task.data["x_test"][:3].float()).shape == (3, 2)

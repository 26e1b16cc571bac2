"""The BPTT-trained hybrid on the HRSNN comparison's data (issue 8's baseline).

The HRSNN (``training/hrsnn.py``) learns its layer without labels (STDP) and fits only a
ridge readout. This module trains the package's :class:`~hybrid_snn_control.hybrid.
HybridNetwork` end to end by backpropagation through time on *the same tensors*
(``x [n, T, F]`` event counts, labels ``[n]``), with the classification task's own
pieces — :class:`~.classification.EventClassifier` (``log1p`` input, rate-coded readout),
:meth:`~.classification.ClassificationTask.train` (Adam, rate-coded cross entropy over all
steps, grad-norm clipping) and :meth:`~.classification.ClassificationTask.evaluate`
(accuracy and the ``hybrid/efficiency.py`` counts). One network per spiking ratio, trained
at that fixed ratio (r = 0 all LSTM, r = 1 all LIF).

How long to train is chosen without the test set: :func:`validation_curve` trains on three
quarters of the training clips (a stratified split, :func:`stratified_holdout`) and scores
the held-out quarter every few epochs; :func:`pick_epochs` takes the best point. The final
model is then trained on all training clips for that many epochs and scored once on test.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.hrsnn import stratified_holdout
from hybrid_snn_control.training.loop import TrainRun, seed_everything

__all__ = [
    "BPTTSettings",
    "classification_task",
    "pick_epochs",
    "stratified_holdout",
    "summarize_bptt",
    "train_and_evaluate_bptt",
    "validation_curve",
]


@dataclass(frozen=True)
class BPTTSettings:
    """Model size and optimizer of the BPTT baseline (the classification defaults)."""

    hidden_size: int = 64  # units per type per layer; a ratio keeps hidden_size active
    num_layers: int = 2
    lr: float = 3e-3
    batch_size: int = 32
    grad_clip: float = 1.0
    rate_decay: float = 0.8
    spiking_cell: str = "lif"
    recurrent_cell: str = "lstm"
    # extra spiking-cell arguments, e.g. {"decay": 0.85, "heterogeneous_tau": 1.0}
    spiking_kwargs: dict[str, Any] | None = None


def classification_task(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    settings: BPTTSettings = BPTTSettings(),
) -> ClassificationTask:
    """A :class:`ClassificationTask` over given ``x [n, T, F]`` tensors (no generation).

    The features become ``[n, T, 1, 1, F]`` "frames" (a view: ``EventClassifier``
    flattens them back, so the network sees exactly ``x``).
    """
    x_train, y_train = train
    x_test, y_test = test
    if x_train.dim() != 3 or x_test.dim() != 3 or x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"train and test x must be [n, T, F] with the same T, F; got "
            f"{tuple(x_train.shape)} and {tuple(x_test.shape)}"
        )
    n_features = x_train.shape[-1]
    cfg = ClassifyConfig(
        num_classes=min(max(num_classes, 2), 8),  # only read by the synthetic generator
        num_train=len(y_train),
        num_test=len(y_test),
        num_bins=x_train.shape[1],
        hidden_size=settings.hidden_size,
        num_layers=settings.num_layers,
        spiking_cell=settings.spiking_cell,
        recurrent_cell=settings.recurrent_cell,
        rate_decay=settings.rate_decay,
        batch_size=min(settings.batch_size, len(y_train)),
        efficiency_samples=len(y_test),  # cost over the whole test set
        grad_clip=settings.grad_clip,
    )
    data = {
        "x_train": x_train.reshape(*x_train.shape[:2], 1, 1, n_features),
        "y_train": y_train.long(),
        "x_test": x_test.reshape(*x_test.shape[:2], 1, 1, n_features),
        "y_test": y_test.long(),
        "classes": tuple(str(k) for k in range(num_classes)),
    }
    return ClassificationTask(cfg, data)


class _EpochRun(TrainRun):
    """A :class:`TrainRun` that calls ``on_epoch(epoch)`` after every ``every``-th epoch."""

    def __init__(self, *args, steps_per_epoch: int, every: int, on_epoch: Callable, **kw):
        super().__init__(*args, **kw)
        self.steps_per_epoch, self.every, self.on_epoch = steps_per_epoch, every, on_epoch

    def steps(self) -> Iterator[int]:
        for step in super().steps():
            yield step
            done = step + 1
            if done % (self.steps_per_epoch * self.every) == 0:
                self.on_epoch(done // self.steps_per_epoch)


def _build(task: ClassificationTask, settings: BPTTSettings):
    """``task.build_model()``, with the core rebuilt when ``spiking_kwargs`` are given
    (``EventClassifier`` has no place for them)."""
    model = task.build_model()
    if settings.spiking_kwargs:
        core = model.core
        model.core = HybridNetwork(
            core.input_size,
            core.hidden_size,
            core.num_layers,
            core.spiking_cell,
            core.recurrent_cell,
            core.output_size,
            rate_decay=core.rate_decay,
            spiking_kwargs=dict(settings.spiking_kwargs),
        )
    return model


def _train(
    task: ClassificationTask,
    settings: BPTTSettings,
    ratio: float,
    seed: int,
    epochs: int,
    eval_every: int = 0,
    on_epoch: Callable[[Any, int], None] | None = None,
):
    """Build (seeded), fix the ratio, run ``task.train`` for ``epochs``; ``(model, wall_s)``."""
    seed_everything(seed)
    model = _build(task, settings)
    model.core.set_ratio(ratio)
    per_epoch = len(task.data["y_train"]) // task.cfg.batch_size
    with tempfile.TemporaryDirectory(prefix="hsc_bptt_") as run_dir:
        common = dict(
            lr=settings.lr, seed=seed, checkpoint_every=10**9, progress=False, tensorboard=False
        )
        if eval_every > 0 and on_epoch is not None:
            run = _EpochRun(
                run_dir,
                epochs * per_epoch,
                steps_per_epoch=per_epoch,
                every=eval_every,
                on_epoch=lambda epoch: on_epoch(model, epoch),
                **common,
            )
        else:
            run = TrainRun(run_dir, epochs * per_epoch, **common)
        start = time.perf_counter()
        task.train(model, run)
        wall_s = time.perf_counter() - start
    return model, wall_s


def validation_curve(
    train: tuple[Tensor, Tensor],
    num_classes: int,
    ratio: float,
    seed: int = 0,
    max_epochs: int = 120,
    eval_every: int = 5,
    settings: BPTTSettings = BPTTSettings(),
) -> list[dict[str, float]]:
    """Validation accuracy every ``eval_every`` epochs, training on 3/4 of ``train``.

    The held-out quarter (:func:`stratified_holdout`) stands in for the test set; the
    test clips are not touched. Returns ``[{"epoch", "val_accuracy", "val_loss",
    "train_accuracy"}, ...]`` (train accuracy on the 3/4 it trains on).
    """
    x, y = train
    held = stratified_holdout(y, num_classes)
    task = classification_task((x[~held], y[~held]), (x[held], y[held]), num_classes, settings)
    curve: list[dict[str, float]] = []

    def score(model, epoch: int) -> None:
        val = task.evaluate(model, ratio, split="test")
        fit = task.evaluate(model, ratio, split="train")
        curve.append(
            {
                "epoch": epoch,
                "val_accuracy": val["accuracy"],
                "val_loss": val["loss"],
                "train_accuracy": fit["accuracy"],
            }
        )

    _train(task, settings, ratio, seed, max_epochs, eval_every, score)
    return curve


def pick_epochs(curve: list[dict[str, float]], smooth: int = 3) -> int:
    """The epoch of the best validation accuracy, averaged over ``smooth`` neighbouring
    points (one lucky evaluation should not decide); ties go to the fewer epochs."""
    if not curve:
        raise ValueError("empty validation curve")
    acc = [p["val_accuracy"] for p in curve]
    half = smooth // 2
    smoothed = [
        sum(acc[max(0, i - half) : i + half + 1]) / len(acc[max(0, i - half) : i + half + 1])
        for i in range(len(acc))
    ]
    best = max(range(len(acc)), key=lambda i: (smoothed[i], -i))
    return int(curve[best]["epoch"])


def train_and_evaluate_bptt(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    ratio: float,
    seed: int,
    epochs: int,
    settings: BPTTSettings = BPTTSettings(),
) -> dict[str, Any]:
    """Train one hybrid at ``ratio`` on all of ``train`` for ``epochs``; score on ``test``.

    Returns test/train accuracy, training wall time, unit counts and cost per clip
    (``hybrid/efficiency.py`` per-step numbers × T, measured on every test clip).
    """
    task = classification_task(train, test, num_classes, settings)
    model, wall_s = _train(task, settings, ratio, seed, epochs)
    start = time.perf_counter()
    test_eval = task.evaluate(model, ratio, split="test")
    eval_wall_s = time.perf_counter() - start
    train_eval = task.evaluate(model, ratio, split="train")
    num_steps = train[0].shape[1]
    core = model.core
    n_spiking = int(sum(layer.spiking_mask.sum() for layer in core.layers))
    n_recurrent = int(sum(layer.recurrent_mask.sum() for layer in core.layers))
    return {
        "ratio": ratio,
        "seed": seed,
        "epochs": epochs,
        "steps": epochs * (len(train[1]) // task.cfg.batch_size),
        "accuracy": test_eval["accuracy"],
        "test_loss": test_eval["loss"],
        "train_accuracy": train_eval["accuracy"],
        "train_wall_s": wall_s,
        "test_eval_wall_s": eval_wall_s,
        "num_neurons": n_spiking + n_recurrent,
        "num_spiking": n_spiking,
        "num_recurrent": n_recurrent,
        "num_candidate_units": 2 * settings.hidden_size * settings.num_layers,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "firing_rate": float(sum(test_eval["firing_rate"]) / len(test_eval["firing_rate"])),
        "synops_per_clip": test_eval["synops_per_step"] * num_steps,
        "macs_per_clip": test_eval["macs_per_step"] * num_steps,
        "energy_uj_per_clip": test_eval["energy_pj_per_step"] * num_steps * 1e-6,
        "settings": asdict(settings),
    }


SUMMARY_KEYS = (
    "accuracy",
    "train_accuracy",
    "synops_per_clip",
    "macs_per_clip",
    "energy_uj_per_clip",
    "firing_rate",
    "train_wall_s",
)


def summarize_bptt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (population std over seeds) per (cells, size, ratio), first-seen order."""

    def model_of(row: dict[str, Any]) -> tuple:
        s = row["settings"]
        extra = json.dumps(s.get("spiking_kwargs") or {}, sort_keys=True)
        return (s["spiking_cell"], s["recurrent_cell"], s["num_layers"], s["hidden_size"], extra)

    out: list[dict[str, Any]] = []
    for model, ratio in dict.fromkeys((model_of(r), r["ratio"]) for r in rows):
        group = [r for r in rows if (model_of(r), r["ratio"]) == (model, ratio)]
        first = group[0]
        summary: dict[str, Any] = {
            "ratio": ratio,
            "spiking_cell": model[0],
            "recurrent_cell": model[1],
            "num_layers": model[2],
            "hidden_size": model[3],
            "spiking_kwargs": json.loads(model[4]),
            "runs": len(group),
            "epochs": first["epochs"],
            "num_neurons": first["num_neurons"],
            "num_parameters": first["num_parameters"],
        }
        for key in SUMMARY_KEYS:
            values = torch.tensor([float(r[key]) for r in group], dtype=torch.float64)
            finite = values[torch.isfinite(values)]
            summary[f"{key}_mean"] = float(finite.mean()) if finite.numel() else math.nan
            summary[f"{key}_std"] = float(finite.std(unbiased=False)) if finite.numel() else 0.0
        out.append(summary)
    return out

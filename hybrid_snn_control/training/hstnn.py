r"""HSTNN three-stage training over any :class:`~.task.Task` (Wu, Shi et al., Nat. Commun. 2024).

1. **adapt** — train the *redundant* network (N spiking + N recurrent units per layer,
   ``core.set_redundant()``); optionally with ratio sampling, so the sub-networks the
   later ratios pick are already trained.
2. **select** — Hessian-aware importance of every unit,
   :math:`I_j = \widehat{\mathrm{tr}}(H_{jj}) / n_j \cdot \lVert W_j \rVert^2`
   (Hutchinson, Rademacher probes, :func:`~hybrid_snn_control.hybrid.selection.hessian_importance`)
   on ``task.loss_batches``; ``core.apply_ranking`` writes the ranking into buffers of the
   state_dict, so the checkpoint carries it and *any* ratio is a pair of masks.
3. **restore** — fine-tune at one ratio (``ratios=[r]``) or across ratios (several ratios,
   or ``[]`` for uniform r ∈ [0, 1]) with ratio sampling: one set of weights for every r.

Baselines, with the same total step budget (adapt + restore steps) from scratch:
``direct`` at a fixed split (index-order units, no selection) — "directly hybrid" for
0 < r < 1, pure RNN at r = 0, pure SNN at r = 1.

Every stage is a :class:`~.loop.TrainRun` under ``out_dir/<stage>/`` (resumable, TensorBoard)
and ends in a model file ``out_dir/<stage>.safetensors`` (:func:`~.task.save_model`)::

    paths = pipeline(task, HSTNNConfig(out_dir="runs/cls", adapt_steps=600))
    model, meta = load_model(paths["restore"], task)
    task.evaluate(model, ratio=0.25)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hybrid_snn_control.config import param, to_mapping
from hybrid_snn_control.hybrid.selection import hessian_importance
from hybrid_snn_control.training.loop import TrainRun, seed_everything
from hybrid_snn_control.training.task import Task, core_of, load_model, save_model

__all__ = ["HSTNNConfig", "adapt", "direct", "pipeline", "restore", "select"]


@dataclass
class HSTNNConfig:
    """Settings of the three stages and the baselines (section ``hsc_hstnn``)."""

    out_dir: str = "runs/hstnn"
    seed: int = 0
    device: str = field(default="cpu", metadata=param(description="cpu or cuda[:N]"))
    adapt_steps: int = field(default=600, metadata=param(range=(0, 10_000_000)))
    adapt_lr: float = field(default=3e-3, metadata=param(range=(0.0, 10.0)))
    adapt_ratio_sampling: bool = False
    select_batches: int = field(default=4, metadata=param(range=(1, 100_000)))
    select_probes: int = field(default=64, metadata=param(range=(1, 100_000)))
    probes_per_pass: int = field(default=16, metadata=param(range=(1, 1024)))
    ratio: float = field(
        default=0.5, metadata=param(range=(0.0, 1.0), description="ratio stored after select")
    )
    restore_steps: int = field(default=300, metadata=param(range=(0, 10_000_000)))
    restore_lr: float = field(default=1e-3, metadata=param(range=(0.0, 10.0)))
    restore_ratios: list[float] = field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0],
        metadata=param(
            description="one ratio: fine-tune there; several: ratio sampling; "
            "empty: uniform r in [0, 1]"
        ),
    )
    checkpoint_every: int = field(default=100, metadata=param(range=(1, 10_000_000)))
    log_every: int = field(default=10, metadata=param(range=(1, 10_000_000)))
    progress: bool = True
    tensorboard: bool = True


def _run(cfg: HSTNNConfig, task: Task, stage: str, steps: int, lr: float, **kw: Any) -> TrainRun:
    meta = {"stage": stage, "task": task.name, "hstnn_config": to_mapping(cfg)}
    return TrainRun(
        Path(cfg.out_dir) / stage,
        steps,
        lr=lr,
        seed=cfg.seed,
        device=cfg.device,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        progress=cfg.progress,
        tensorboard=cfg.tensorboard,
        metadata=meta,
        desc=stage,
        **kw,
    )


def _new_model(task: Task, cfg: HSTNNConfig) -> torch.nn.Module:
    seed_everything(cfg.seed)  # the initial weights are a function of the seed
    return task.build_model().to(cfg.device)


def adapt(task: Task, cfg: HSTNNConfig, **run_kw: Any) -> Path:
    """Stage 1: train the redundant network; return ``out_dir/adapt.safetensors``."""
    model = _new_model(task, cfg)
    core = core_of(model)
    core.set_redundant()
    if cfg.adapt_ratio_sampling:
        core.ratio_sampling, core.ratio_choices = True, None
    t0 = time.perf_counter()
    metrics = task.train(model, _run(cfg, task, "adapt", cfg.adapt_steps, cfg.adapt_lr, **run_kw))
    core.ratio_sampling = False
    path = Path(cfg.out_dir) / "adapt.safetensors"
    extra = {"stage": "adapt", "seed": cfg.seed, "train": metrics}
    if run_kw.get("rank", 0) == 0:
        save_model(path, task, model, {**extra, "train_s": time.perf_counter() - t0})
    return path


def select(task: Task, cfg: HSTNNConfig, adapted: str | Path) -> Path:
    """Stage 2: Hessian-aware ranking of the adapted model; ``out_dir/select.safetensors``.

    The ranking (``spiking_rank``/``recurrent_rank`` and the importance scores) is in the
    saved state_dict; the model is stored at ``cfg.ratio``.
    """
    model, _ = load_model(adapted, task, cfg.device)
    core = core_of(model)
    core.set_redundant()  # score every candidate unit
    model.eval()  # no ratio sampling, no dropout while probing
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    batches = list(task.loss_batches(model, cfg.select_batches))
    scores = hessian_importance(
        core,
        lambda _core, batch: task.loss(model, batch),
        batches,
        num_probes=cfg.select_probes,
        probes_per_pass=cfg.probes_per_pass,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    core.apply_ranking(scores)
    core.set_ratio(cfg.ratio)
    path = Path(cfg.out_dir) / "select.safetensors"
    save_model(
        path,
        task,
        model,
        {
            "stage": "select",
            "seed": cfg.seed,
            "select_s": time.perf_counter() - t0,
            "select_probes": cfg.select_probes,
            "select_batches": len(batches),
        },
    )
    return path


def restore(
    task: Task,
    cfg: HSTNNConfig,
    selected: str | Path,
    ratios: list[float] | None = None,
    name: str = "restore",
    **run_kw: Any,
) -> Path:
    """Stage 3: fine-tune the selected model at one ratio or across ``ratios``.

    ``ratios`` defaults to ``cfg.restore_ratios``; one ratio fine-tunes that sub-network,
    several (or an empty list: uniform) use ratio sampling so one set of weights serves
    all of them.  Returns ``out_dir/<name>.safetensors``.
    """
    ratios = list(cfg.restore_ratios if ratios is None else ratios)
    model, _ = load_model(selected, task, cfg.device)
    core = core_of(model)
    if len(ratios) == 1:
        core.set_ratio(ratios[0])
    else:
        core.set_ratio(cfg.ratio)
        core.ratio_sampling = True
        core.ratio_choices = tuple(ratios) if ratios else None
    t0 = time.perf_counter()
    metrics = task.train(model, _run(cfg, task, name, cfg.restore_steps, cfg.restore_lr, **run_kw))
    core.ratio_sampling, core.ratio_choices = False, None
    path = Path(cfg.out_dir) / f"{name}.safetensors"
    extra = {"stage": "restore", "seed": cfg.seed, "restore_ratios": ratios, "train": metrics}
    if run_kw.get("rank", 0) == 0:
        save_model(path, task, model, {**extra, "train_s": time.perf_counter() - t0})
    return path


def pipeline(task: Task, cfg: HSTNNConfig) -> dict[str, Path]:
    """adapt → select → restore; the paths of the three model files."""
    adapted = adapt(task, cfg)
    selected = select(task, cfg, adapted)
    return {"adapt": adapted, "select": selected, "restore": restore(task, cfg, selected)}


def direct(task: Task, cfg: HSTNNConfig, ratio: float, name: str | None = None, **run_kw) -> Path:
    """Baseline: a fixed split trained from scratch for ``adapt_steps + restore_steps``.

    No redundant stage, no selection: units are kept in index order (the untrained
    ranking).  ``ratio`` 0 is the pure RNN, 1 the pure SNN, anything between "directly
    hybrid".  Trained at ``adapt_lr``.
    """
    name = name or f"direct_r{ratio:g}"
    model = _new_model(task, cfg)
    core_of(model).set_ratio(ratio)
    steps = cfg.adapt_steps + cfg.restore_steps
    t0 = time.perf_counter()
    metrics = task.train(model, _run(cfg, task, name, steps, cfg.adapt_lr, **run_kw))
    path = Path(cfg.out_dir) / f"{name}.safetensors"
    extra = {"stage": "direct", "seed": cfg.seed, "train": metrics}
    if run_kw.get("rank", 0) == 0:
        save_model(path, task, model, {**extra, "train_s": time.perf_counter() - t0})
    return path

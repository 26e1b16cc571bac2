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
and ends in a model file ``out_dir/<stage>.safetensors`` (:func:`~.task.save_model`).
:func:`pipeline_stages` is *the* adapt → select → restore sequence (plus per-ratio
restorations of the one selected model); ``hsc hstnn`` (:mod:`.hstnn_run`) and ``hsc train``
(:mod:`.imitation_policy`) run it; settings :mod:`.hstnn_config`, read by :mod:`.hstnn_settings`::

    paths = pipeline(task, HSTNNConfig(out_dir="runs/cls", adapt_steps=600))
    model, meta = load_model(paths["restore"], task)
    task.evaluate(model, ratio=0.25)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.hybrid.selection import hessian_importance
from hybrid_snn_control.training.distributed import DistContext, barrier
from hybrid_snn_control.training.hstnn_config import HSTNNConfig
from hybrid_snn_control.training.loop import TrainRun, seed_everything
from hybrid_snn_control.training.task import Task, core_of, load_model, save_model

__all__ = [
    "HSTNNConfig",
    "adapt",
    "direct",
    "pipeline",
    "pipeline_stages",
    "restore",
    "restore_name",
    "select",
]


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


def restore_name(ratios: Sequence[float] | None) -> str:
    """``restore_r<R>`` for a fine-tune at the one ratio R, else ``restore`` (ratio sampling)."""
    return f"restore_r{ratios[0]:g}" if ratios is not None and len(ratios) == 1 else "restore"


def pipeline_stages(
    task: Task,
    cfg: HSTNNConfig,
    ratios: Sequence[float] | None = None,
    *,
    ratio: float | None = None,
    restore_each: Sequence[float] = (),
    ctx: DistContext | None = None,
) -> Iterator[tuple[str, Path]]:
    """adapt → select → restore; yields ``(stage, model file)`` as each stage ends.

    ``ratios``: the restoration's ratios (None: ``cfg.restore_ratios``; one ratio R writes
    ``restore_r<R>``; the stage is yielded as ``"restore"`` either way).  ``ratio``: the
    ratio selection stores, if not ``cfg.ratio`` (adaptation runs with ``cfg`` as given).
    ``restore_each``: one more restoration per ratio, each of the selected model, yielded
    under its file name; a task whose ``train`` keeps data between calls (DAgger's
    aggregate) offers ``rewind_point()``, and each of them starts from the data
    adaptation left.  ``ctx``: a data-parallel run — every rank trains, rank 0 alone selects.
    """
    run_kw = ctx.run_kwargs() if ctx is not None else {}
    adapted = adapt(task, cfg, **run_kw)
    barrier()
    yield "adapt", adapted
    rewind = task.rewind_point() if hasattr(task, "rewind_point") else None
    if ratio is not None:
        cfg = replace(cfg, ratio=ratio)
    if ctx is None or ctx.is_main:
        selected = select(task, cfg, adapted)
    else:
        selected = Path(cfg.out_dir) / "select.safetensors"
    barrier()
    yield "select", selected
    name = restore_name(ratios)
    yield "restore", restore(task, cfg, selected, ratios, name=name, **run_kw)
    barrier()
    for r in restore_each:
        if rewind is not None:
            rewind()
        name = restore_name([r])
        yield name, restore(task, cfg, selected, [r], name=name, **run_kw)
        barrier()


def pipeline(task: Task, cfg: HSTNNConfig, **kw: Any) -> dict[str, Path]:
    """:func:`pipeline_stages` run to the end: ``{"adapt": …, "select": …, "restore": …}``."""
    return dict(pipeline_stages(task, cfg, **kw))


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

"""One ``hsc hstnn`` stage as a library call: which stages run, their inputs, the evaluation.

``adapt``, ``select``, ``restore`` and ``direct`` run one stage of :mod:`.hstnn`; ``pipeline``
runs :func:`~.hstnn.pipeline_stages`; ``eval`` trains nothing.  A stage reads its input
model from ``source`` or else from the previous stage's file in ``out_dir``.  After
``pipeline`` (the restored model) and ``eval`` (``model``), rank 0 evaluates at every
ratio of ``ratios`` (default: the restoration ratios, else the stored ratio).  Under
``torchrun`` the process joins the group first (:mod:`.distributed`)::

    cfg, task = load_hstnn_settings("classify", out_dir="runs/cls")
    result = run_hstnn(task, cfg, "pipeline")
    result.paths["restore"], result.evaluations[0]["accuracy"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hybrid_snn_control.training import hstnn
from hybrid_snn_control.training.distributed import (
    DistContext,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from hybrid_snn_control.training.hstnn_config import HSTNNConfig
from hybrid_snn_control.training.task import Task, load_model

__all__ = ["STAGES", "HSTNNRunResult", "evaluate_model", "run_hstnn", "run_stage"]

STAGES = ("adapt", "select", "restore", "pipeline", "direct", "eval")


@dataclass
class HSTNNRunResult:
    """Model files by stage, the evaluation rows, and whether this is the rank that reports."""

    paths: dict[str, Path]
    evaluations: list[dict[str, Any]]
    is_main: bool


def run_stage(
    task: Task,
    cfg: HSTNNConfig,
    stage: str,
    *,
    source: str | Path | None = None,
    ratio: float | None = None,
    ratios: Sequence[float] | None = None,
    ctx: DistContext | None = None,
) -> dict[str, Path]:
    """Train ``stage``; the model files it wrote (module docstring).

    ``ratio``: the ratio selection stores (``select``, ``pipeline``) or the fixed split
    (``direct``); ``ratios``: the restoration ratios (``restore``, ``pipeline``).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if stage == "pipeline":
        return dict(hstnn.pipeline_stages(task, cfg, ratios, ratio=ratio, ctx=ctx))
    run_kw = ctx.run_kwargs() if ctx is not None else {}
    out = Path(cfg.out_dir)
    paths: dict[str, Path] = {}
    if stage == "adapt":
        paths["adapt"] = hstnn.adapt(task, cfg, **run_kw)
    elif stage == "select":
        cfg = cfg if ratio is None else replace(cfg, ratio=ratio)
        if ctx is None or ctx.is_main:
            paths["select"] = hstnn.select(task, cfg, source or out / "adapt.safetensors")
    elif stage == "restore":
        selected = source or out / "select.safetensors"
        name = hstnn.restore_name(ratios)
        paths["restore"] = hstnn.restore(task, cfg, selected, ratios, name=name, **run_kw)
    elif stage == "direct":
        paths["direct"] = hstnn.direct(task, cfg, cfg.ratio if ratio is None else ratio, **run_kw)
    barrier()
    return paths


def evaluate_model(
    task: Task, path: str | Path, ratios: Sequence[float], device: str = "cpu"
) -> list[dict[str, Any]]:
    """``task.evaluate`` of one model file at each ratio (the hot swap: one load, masks)."""
    model, _ = load_model(path, task, device)
    return [task.evaluate(model, r) for r in ratios]


def run_hstnn(
    task: Task,
    cfg: HSTNNConfig,
    stage: str,
    *,
    source: str | Path | None = None,
    ratio: float | None = None,
    ratios: Sequence[float] | None = None,
    model: str | Path | None = None,
) -> HSTNNRunResult:
    """What ``hsc hstnn STAGE`` does (module docstring); ``model`` is ``eval``'s input."""
    if stage == "eval" and model is None:
        raise ValueError("stage eval needs a model file")
    ctx = init_distributed(cfg.device)
    cfg = replace(cfg, device=ctx.device)
    finished = False
    try:
        paths = run_stage(task, cfg, stage, source=source, ratio=ratio, ratios=ratios, ctx=ctx)
        rows: list[dict[str, Any]] = []
        if ctx.is_main and stage in ("pipeline", "eval"):
            stored = cfg.ratio if ratio is None or stage == "eval" else ratio
            if ratios is None:
                ratios = cfg.restore_ratios or [stored]
            evaluated = model if stage == "eval" else paths["restore"]
            rows = evaluate_model(task, evaluated, ratios, cfg.device)
        finished = True
    finally:
        shutdown_distributed(wait_for_peers=finished)
    return HSTNNRunResult(paths, rows, ctx.is_main)

"""``hsc hstnn adapt|select|restore|pipeline|direct|eval --task classify``: HSTNN training.

Settings come from a parameter file (default: the shipped ``config/train.yaml``): section
``hsc_hstnn`` (stages, :class:`~hybrid_snn_control.training.hstnn.HSTNNConfig`) and the
task's own section (``hsc_classify`` for ``--task classify``, ``hsc_imitation`` for
``--task pursuit``; a task section with its own ``hstnn`` block uses that instead).
``--set key=value`` overrides one setting of either (stage settings first).
Files land in ``--out``::

    hsc hstnn pipeline --task classify --out runs/cls --seed 1
    hsc hstnn restore --task classify --out runs/cls --ratios 0.25    # one more fine-tune
    hsc hstnn direct --task classify --out runs/cls --ratio 0         # pure-RNN baseline
    hsc hstnn eval --task classify --model runs/cls/restore.safetensors
    torchrun --standalone --nproc_per_node 2 $(which hsc) hstnn adapt --task classify
"""

from __future__ import annotations

import argparse
import importlib
import json

# task name -> "module:function(config_path, overrides) -> Task"
TASKS: dict[str, str] = {
    "classify": "hybrid_snn_control.training.classification:load_task",
    "pursuit": "hybrid_snn_control.training.imitation:load_task",
}

STAGES = ("adapt", "select", "restore", "pipeline", "direct", "eval")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hstnn", help="HSTNN three-stage training (adapt, select, restore)")
    hsub = p.add_subparsers(dest="hstnn_stage", metavar="STAGE")
    helps = {
        "adapt": "stage 1: train the redundant network",
        "select": "stage 2: Hessian-aware unit ranking (stored in the checkpoint)",
        "restore": "stage 3: fine-tune at one ratio or across ratios",
        "pipeline": "adapt -> select -> restore, then evaluate at every restore ratio",
        "direct": "baseline: fixed split from scratch (r=0 pure RNN, r=1 pure SNN)",
        "eval": "evaluate a model file at ratios",
    }
    for stage in STAGES:
        s = hsub.add_parser(stage, help=helps[stage])
        s.add_argument("--task", default="classify", choices=sorted(TASKS))
        s.add_argument("--config", default="train", help="parameter file (name or path)")
        s.add_argument("--out", default=None, help="output folder (default: out_dir setting)")
        s.add_argument("--seed", type=int, default=None)
        s.add_argument("--device", default=None, help="cpu or cuda")
        s.add_argument("--from", dest="source", default=None, help="input model file")
        s.add_argument("--ratio", type=float, default=None, help="ratio (select, direct)")
        s.add_argument("--ratios", default=None, help="comma-separated ratios (restore, eval)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
        s.add_argument(
            "--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)"
        )
        if stage == "eval":
            s.add_argument("--model", required=True, help="model file to evaluate")
        s.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _ratios(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--ratios must be comma-separated numbers, got {text!r}") from None


def load_settings(args: argparse.Namespace):
    """``(HSTNNConfig, Task)`` from the parameter file, ``--set`` and the flags."""
    import dataclasses

    from hybrid_snn_control.config import from_mapping, load_node_params, to_mapping
    from hybrid_snn_control.paths import config_file
    from hybrid_snn_control.training.hstnn import HSTNNConfig

    path = config_file(args.config)
    overrides = _parse_overrides(args.overrides)
    names = {f.name for f in dataclasses.fields(HSTNNConfig)}
    stage_over = {k: v for k, v in overrides.items() if k.split(".")[0] in names}
    task_over = {k: v for k, v in overrides.items() if k not in stage_over}
    for flag, key in (("out", "out_dir"), ("seed", "seed"), ("device", "device")):
        if getattr(args, flag) is not None:
            stage_over[key] = getattr(args, flag)
    if args.no_progress:
        stage_over["progress"] = False
    module, _, fn = TASKS[args.task].partition(":")
    task = getattr(importlib.import_module(module), fn)(path, task_over)
    own = getattr(task.cfg, "hstnn", None)  # a task section may carry its own stage settings
    if isinstance(own, HSTNNConfig):
        cfg = from_mapping(HSTNNConfig, {**to_mapping(own), **stage_over}, source="--set")
    else:
        cfg = load_node_params(path, "hsc_hstnn", HSTNNConfig, stage_over)
    return cfg, task


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from hybrid_snn_control.training import hstnn
    from hybrid_snn_control.training.distributed import (
        barrier,
        init_distributed,
        shutdown_distributed,
    )
    from hybrid_snn_control.training.task import load_model

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    stage = args.hstnn_stage
    cfg, task = load_settings(args)
    ctx = init_distributed(cfg.device)
    cfg.device = ctx.device
    out = Path(cfg.out_dir)
    ratios = _ratios(args.ratios)
    results: dict = {}
    try:
        if stage in ("adapt", "pipeline"):
            results["adapt"] = hstnn.adapt(task, cfg, **ctx.run_kwargs())
            barrier()
        if stage in ("select", "pipeline"):
            if args.ratio is not None:
                cfg.ratio = args.ratio
            source = (stage == "select" and args.source) or out / "adapt.safetensors"
            if ctx.is_main:
                results["select"] = hstnn.select(task, cfg, source)
            barrier()
        if stage in ("restore", "pipeline"):
            source = (stage == "restore" and args.source) or out / "select.safetensors"
            name = "restore" if ratios is None or len(ratios) != 1 else f"restore_r{ratios[0]:g}"
            results["restore"] = hstnn.restore(
                task, cfg, source, ratios, name=name, **ctx.run_kwargs()
            )
            barrier()
        if stage == "direct":
            ratio = cfg.ratio if args.ratio is None else args.ratio
            results["direct"] = hstnn.direct(task, cfg, ratio, **ctx.run_kwargs())
        if ctx.is_main:
            for k, v in results.items():
                print(f"{k}: {v}")
            if stage in ("pipeline", "eval"):
                model_path = args.model if stage == "eval" else results["restore"]
                model, _ = load_model(model_path, task, cfg.device)
                for r in ratios if ratios is not None else cfg.restore_ratios or [cfg.ratio]:
                    res = task.evaluate(model, r)
                    print(json.dumps({k: v for k, v in res.items() if k != "firing_rate"}))
    finally:
        shutdown_distributed()
    return 0

"""``hsc hstnn adapt|select|restore|pipeline|direct|eval --task classify``: HSTNN training.

Settings come from a parameter file (default: the shipped ``config/train.yaml``): section
``hsc_hstnn`` (stages, :class:`~hybrid_snn_control.training.hstnn_config.HSTNNConfig`) and the
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
import json

from hybrid_snn_control.training.hstnn_settings import TASKS

STAGE_HELP = {
    "adapt": "stage 1: train the redundant network",
    "select": "stage 2: Hessian-aware unit ranking (stored in the checkpoint)",
    "restore": "stage 3: fine-tune at one ratio or across ratios",
    "pipeline": "adapt -> select -> restore, then evaluate at every restore ratio",
    "direct": "baseline: fixed split from scratch (r=0 pure RNN, r=1 pure SNN)",
    "eval": "evaluate a model file at ratios",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hstnn", help="HSTNN three-stage training (adapt, select, restore)")
    hsub = p.add_subparsers(dest="hstnn_stage", metavar="STAGE")
    for stage, help_text in STAGE_HELP.items():
        s = hsub.add_parser(stage, help=help_text)
        s.add_argument("--task", default="classify", choices=sorted(TASKS))
        s.add_argument("--config", default="train", help="parameter file (name or path)")
        s.add_argument("--out", default=None, help="output folder (default: out_dir setting)")
        s.add_argument("--seed", type=int, default=None)
        s.add_argument("--device", default=None, help="cpu or cuda")
        s.add_argument("--from", dest="source", default=None, help="input model file")
        s.add_argument("--ratio", type=float, default=None, help="ratio (select, direct)")
        s.add_argument("--ratios", default=None, help="comma-separated ratios (restore, eval)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        s.add_argument(
            "--no-progress", action="store_true", help="no progress bar: a line per checkpoint"
        )
        s.add_argument(
            "--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)"
        )
        if stage == "eval":
            s.add_argument("--model", required=True, help="model file to evaluate")
        s.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _ratios(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--ratios must be comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import torch

    from hybrid_snn_control.training.allocator import keep_freed_memory
    from hybrid_snn_control.training.hstnn_run import run_hstnn
    from hybrid_snn_control.training.hstnn_settings import load_hstnn_settings, parse_overrides

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    cfg, task = load_hstnn_settings(
        args.task,
        args.config,
        parse_overrides(args.overrides),
        out_dir=args.out,
        seed=args.seed,
        device=args.device,
        progress=False if args.no_progress else None,
    )
    result = run_hstnn(
        task,
        cfg,
        args.hstnn_stage,
        source=args.source,
        ratio=args.ratio,
        ratios=_ratios(args.ratios),
        model=getattr(args, "model", None),
    )
    if result.is_main:
        for stage, path in result.paths.items():
            print(f"{stage}: {path}")
        for row in result.evaluations:
            print(json.dumps({k: v for k, v in row.items() if k != "firing_rate"}))
    return 0

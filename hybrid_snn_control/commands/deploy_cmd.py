"""``hsc export`` (TorchScript / ONNX / NIR step graphs) and ``hsc bench`` (step latency).

    hsc export --checkpoint policy.safetensors --format onnx [--fp16] [--device cpu|cuda]
    hsc export --checkpoint policy.safetensors --format nir [--ratio 1.0]
    hsc bench  --checkpoint policy.safetensors [--backends torch torchscript onnxruntime]
               [--threads 1 2] [--steps 2000] [--json]

See docs/deploy.md for the artefact's inputs/outputs and the Jetson / TensorRT route.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXPORT_FORMATS = ("torchscript", "onnx", "nir")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx", "nir": ".nir"}


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "export",
        help="export a policy checkpoint as a stateful step graph (TorchScript, ONNX, NIR)",
        description="Write the policy's control step with explicit state inputs/outputs and "
        "a live spiking_ratio input; metadata embedded and written to <out>.json.",
    )
    ex.add_argument("--checkpoint", required=True, help="policy .safetensors (save_policy)")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    ex.add_argument(
        "--out",
        default=None,
        help="output file (default: <checkpoint name>.<format> in the working directory)",
    )
    ex.add_argument("--fp16", action="store_true", help="half-precision weights and I/O")
    ex.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ex.add_argument(
        "--onnx-exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch.onnx exporter (both produce a graph with a dynamic batch dimension)",
    )
    ex.add_argument("--no-spike-counts", action="store_true", help="omit the spike_count output")
    ex.add_argument(
        "--ratio", type=float, default=None, help="NIR only: spiking ratio to export at"
    )
    ex.add_argument("--dt", type=float, default=1e-3, help="NIR only: time step in seconds")
    ex.add_argument(
        "--partial",
        action="store_true",
        help="NIR only: write the expressible parts even if others (recurrent, ALIF, ...) "
        "are left out (they are listed)",
    )
    ex.set_defaults(func=run_export)

    be = sub.add_parser(
        "bench",
        help="step latency p50/p90/p99 per backend and thread count, eager PyTorch included",
    )
    be.add_argument("--checkpoint", required=True, help="policy .safetensors")
    be.add_argument(
        "--backends",
        nargs="+",
        default=["torch", "torchscript", "onnxruntime"],
        choices=("torch", "torchscript", "onnxruntime"),
    )
    be.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    be.add_argument("--steps", type=int, default=2000, help="timed steps per configuration")
    be.add_argument("--warmup", type=int, default=200)
    be.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    be.add_argument("--batch", type=int, default=1)
    be.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    be.add_argument("--fp16", action="store_true")
    be.add_argument("--json", action="store_true", help="print the result as JSON")
    be.set_defaults(func=run_bench_cmd)


def default_export_path(checkpoint: Path, fmt: str) -> Path:
    """``<checkpoint stem>.<format suffix>`` in the working directory: beside the checkpoint
    would write into the installed package for the shipped policy (site-packages)."""
    return Path.cwd() / checkpoint.with_suffix(SUFFIX[fmt]).name


def run_export(args: argparse.Namespace) -> int:
    from hybrid_snn_control.deploy.runtime import require_policy_file

    ckpt = require_policy_file(args.checkpoint, "checkpoint")
    out = Path(args.out) if args.out else default_export_path(ckpt, args.format)
    if args.format == "nir":
        from hybrid_snn_control.deploy.nir_export import NIRExportError, export_nir_checkpoint

        try:
            report = export_nir_checkpoint(
                ckpt, out, ratio=args.ratio, dt=args.dt, strict=not args.partial
            )
        except NIRExportError as exc:
            hint = "" if args.partial else "\n--partial writes the exported parts anyway"
            raise ValueError(f"{exc}{hint}") from None
        print(report.summary())
        print(f"wrote {out}")
        return 0
    from hybrid_snn_control.deploy.export import export_checkpoint

    meta = export_checkpoint(
        ckpt,
        out,
        args.format,
        fp16=args.fp16,
        device=args.device,
        exporter=args.onnx_exporter,
        spike_counts=not args.no_spike_counts,
    )
    print(f"wrote {out} and {out}.json ({meta['dtype']}, checkpoint {ckpt.name})")
    for group in ("inputs", "outputs"):
        print(f"{group}:")
        for io in meta[group]:
            print(f"  {io['name']:<32} {io['dtype']:<8} {io['shape']}")
    if args.format == "onnx":
        from hybrid_snn_control.deploy.export import trtexec_command

        print("TensorRT engine on a Jetson (batch 1, see docs/deploy.md):")
        print("  " + trtexec_command(meta, out.name))
    return 0


def run_bench_cmd(args: argparse.Namespace) -> int:
    from hybrid_snn_control.deploy.bench import format_table, run_bench
    from hybrid_snn_control.deploy.runtime import require_policy_file

    require_policy_file(args.checkpoint, "checkpoint")
    result = run_bench(
        args.checkpoint,
        backends=tuple(args.backends),
        threads=tuple(args.threads),
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        batch=args.batch,
        device=args.device,
        fp16=args.fp16,
    )
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0

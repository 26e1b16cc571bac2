"""Control-step latency of the deploy runtimes vs eager PyTorch, in the same run (issue 9).

A thin driver around ``hsc bench`` (``hybrid_snn_control/deploy/bench.py``): exports the
checkpoint to TorchScript and ONNX (dynamo exporter), then times one control step at
batch 1 (numpy in/out, state kept inside the runtime, as the policy node calls it) for
eager ``policy.step``, the frozen TorchScript trace and ONNX Runtime, at each thread
count, with a fixed ratio and with a ``set_ratio`` before every step. Percentiles are
over interleaved rounds; ``x eager`` is p50 / eager p50 at the same threads and mode.
Target: best exported CPU backend <= 0.5x eager at batch 1.

Without ``--checkpoint`` a policy with the default PolicyConfig (events 2x64x64,
proprio 8, 2 hybrid layers of 64+64 units) and random weights is used: latency depends on
shapes, not on trained values. Wall-clock time: the machine is shared, so run it a few
times (``--repeats``) and read the medians.

    .venv/bin/python bench/bench_deploy.py [--checkpoint P] [--threads 1 2] [--steps N]
                                           [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _default_checkpoint(tmp: str) -> Path:
    import torch

    from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy

    torch.manual_seed(0)
    path = Path(tmp) / "default_policy.safetensors"
    save_policy(path, HybridPolicy(PolicyConfig()).eval(), extra={"task": "bench"})
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--backends", nargs="+", default=["torch", "torchscript", "onnxruntime"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1, help="whole runs; medians reported")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from hybrid_snn_control.deploy.bench import format_table, run_bench

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or _default_checkpoint(tmp)
        results = [
            run_bench(
                ckpt,
                backends=tuple(args.backends),
                threads=tuple(args.threads),
                steps=args.steps,
                rounds=args.rounds,
                device=args.device,
                fp16=args.fp16,
            )
            for _ in range(args.repeats)
        ]
    result = results[0]
    if args.repeats > 1:  # median over repeats of each row's percentiles
        for i, row in enumerate(result["rows"]):
            for key in ("p50_us", "p90_us", "p99_us", "x_eager"):
                row[key] = statistics.median(r["rows"][i][key] for r in results)
        for mode, best in (result["best"] or {}).items():
            for key in ("p50_us", "eager_p50_us", "x_best_eager"):
                best[key] = statistics.median(r["best"][mode][key] for r in results)
        result["repeats"] = args.repeats
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Step-latency benchmark of the runtimes, eager PyTorch measured in the same run.

What one sample is: the wall time of one control step as the policy node makes it
(``rt.step(events, proprio)`` with numpy in and out, state kept inside), plus — in the
``ratio_change`` mode — a ``rt.set_ratio`` call before every step (alternating 0.25 /
0.75, the worst case for a live ratio). Configurations are measured in interleaved
rounds (every backend × threads × mode once per round) so slow drifts of a shared
machine hit all of them alike; percentiles are over all samples of a configuration.
``x_eager`` is the p50 of a configuration divided by the eager PyTorch p50 at the same
thread count and mode.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.deploy.runtime import BACKENDS, PolicyRuntime, load_runtime

MODES = ("fixed_ratio", "ratio_change")


@dataclass
class BenchRow:
    backend: str
    threads: int
    mode: str
    p50_us: float
    p90_us: float
    p99_us: float
    samples: int
    x_eager: float | None = None


def _inputs(rt: PolicyRuntime, batch: int, n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (n, batch, *rt.event_shape) if batch > 1 else (n, *rt.event_shape)
    pshape = (n, batch, rt.proprio_size) if batch > 1 else (n, rt.proprio_size)
    events = rng.poisson(0.3, size=shape).astype(np.float32)
    proprio = rng.normal(size=pshape).astype(np.float32)
    return events, proprio


def _measure(rt: PolicyRuntime, events, proprio, steps: int, ratio_change: bool) -> np.ndarray:
    out = np.empty(steps, dtype=np.int64)
    n = len(events)
    ratios = (0.25, 0.75)
    clock = time.perf_counter_ns
    for i in range(steps):
        ev, pr = events[i % n], proprio[i % n]
        t0 = clock()
        if ratio_change:
            rt.set_ratio(ratios[i & 1])
        rt.step(ev, pr)
        out[i] = clock() - t0
    return out


def export_artefacts(
    checkpoint: str | Path, out_dir: str | Path, fp16: bool = False, device: str = "cpu"
) -> dict[str, Path]:
    """TorchScript and ONNX (dynamo exporter) files of a checkpoint, as a user deploys them."""
    from hybrid_snn_control.deploy.export import export_checkpoint

    out_dir = Path(out_dir)
    paths = {"torchscript": out_dir / "policy.pt", "onnxruntime": out_dir / "policy.onnx"}
    export_checkpoint(checkpoint, paths["torchscript"], "torchscript", fp16=fp16, device=device)
    export_checkpoint(checkpoint, paths["onnxruntime"], "onnx", fp16=fp16, device="cpu")
    return paths


def run_bench(
    checkpoint: str | Path,
    backends: tuple[str, ...] = BACKENDS,
    threads: tuple[int, ...] = (1, 2),
    steps: int = 2000,
    warmup: int = 200,
    rounds: int = 4,
    batch: int = 1,
    device: str = "cpu",
    fp16: bool = False,
    artefact_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Measure every backend × threads × mode; eager ``torch`` is always included."""
    import torch

    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"backends must be among {BACKENDS}, got {b!r}")
    if steps < rounds or rounds < 1:
        raise ValueError(f"need steps >= rounds >= 1, got steps={steps}, rounds={rounds}")
    backends = ("torch", *[b for b in backends if b != "torch"])
    tmp = None
    if artefact_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hsc_bench_")
        artefact_dir = tmp.name
    try:
        paths = export_artefacts(checkpoint, artefact_dir, fp16, device)
        paths["torch"] = Path(checkpoint)
        runtimes: dict[tuple[str, int], PolicyRuntime] = {}
        for b in backends:
            for t in threads:
                # eager without per-step cost accounting: the same work as the graphs
                runtimes[(b, t)] = load_runtime(
                    paths[b],
                    b,
                    batch_size=batch,
                    threads=t,
                    device=device,
                    fp16=fp16,
                    count_cost=False,
                )
        events, proprio = _inputs(runtimes[(backends[0], threads[0])], batch)
        samples: dict[tuple[str, int, str], list[np.ndarray]] = {}
        per_round = steps // rounds
        for _ in range(rounds):
            for (b, t), rt in runtimes.items():
                if b != "onnxruntime":
                    torch.set_num_threads(t)
                for mode in MODES:
                    _measure(rt, events, proprio, max(1, warmup // rounds), mode != MODES[0])
                    ns = _measure(rt, events, proprio, per_round, mode != MODES[0])
                    samples.setdefault((b, t, mode), []).append(ns)
    finally:
        if tmp is not None:
            tmp.cleanup()
    rows = []
    for (b, t, mode), chunks in samples.items():
        us = np.concatenate(chunks) / 1e3
        p50, p90, p99 = np.percentile(us, [50, 90, 99])
        rows.append(BenchRow(b, t, mode, float(p50), float(p90), float(p99), len(us)))
    eager = {(r.threads, r.mode): r.p50_us for r in rows if r.backend == "torch"}
    for r in rows:
        r.x_eager = r.p50_us / eager[(r.threads, r.mode)]
    best = _best(rows)
    return {
        "checkpoint": str(checkpoint),
        "device": device,
        "fp16": fp16,
        "batch": batch,
        "steps_per_config": steps,
        "rounds": rounds,
        "rows": [asdict(r) for r in rows],
        "best": best,
        "environment": _environment(),
    }


def _best(rows: list[BenchRow]) -> dict[str, Any] | None:
    """Per mode: the fastest exported configuration against the fastest eager one (any
    thread count on both sides, so a slow multi-threaded eager run cannot flatter it)."""
    out: dict[str, Any] = {}
    for mode in MODES:
        eager = [r for r in rows if r.backend == "torch" and r.mode == mode]
        other = [r for r in rows if r.backend != "torch" and r.mode == mode]
        if not eager or not other:
            return None
        e = min(eager, key=lambda r: r.p50_us)
        o = min(other, key=lambda r: r.p50_us)
        out[mode] = {
            "backend": o.backend,
            "threads": o.threads,
            "p50_us": o.p50_us,
            "eager_threads": e.threads,
            "eager_p50_us": e.p50_us,
            "x_best_eager": o.p50_us / e.p50_us,
        }
    return out


def _environment() -> dict[str, Any]:
    import onnxruntime
    import torch

    env = {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        env["load_avg_1min"] = os.getloadavg()[0]
    return env


def format_table(result: dict[str, Any]) -> str:
    """The rows as a fixed-width table (one line per backend × threads × mode)."""
    lines = [
        f"{'backend':<12} {'threads':>7} {'mode':<13} {'p50 µs':>9} {'p90 µs':>9} "
        f"{'p99 µs':>9} {'x eager':>8}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['backend']:<12} {r['threads']:>7} {r['mode']:<13} {r['p50_us']:>9.1f} "
            f"{r['p90_us']:>9.1f} {r['p99_us']:>9.1f} {r['x_eager']:>8.2f}"
        )
    for mode, b in (result.get("best") or {}).items():
        lines.append(
            f"{mode}: best {b['backend']} ({b['threads']} thr) p50 {b['p50_us']:.1f} µs = "
            f"{b['x_best_eager']:.2f}x best eager ({b['eager_threads']} thr, "
            f"{b['eager_p50_us']:.1f} µs)"
        )
    env = result["environment"]
    lines.append(
        f"device {result['device']}, batch {result['batch']}, fp16 {result['fp16']}, "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
        f"{env['cpu_count']} CPUs, load {env.get('load_avg_1min', float('nan')):.1f}"
    )
    return "\n".join(lines)

"""What the event floor costs per control step: the shipped policy with its floor against
the same weights without it, in the same run, eager torch and ONNX Runtime (batch 1,
interleaved rounds, the policy node's call: numpy in, action out, state in the runtime).

Inputs are pursuit-like frames (2 × 32 × 32 counts; a few percent of the pixels active,
every 4th frame with 25 % of the pixels firing, as under flicker) so the top-k sees both
a zero and a non-zero floor.

    .venv/bin/python bench/bench_event_floor.py [--steps 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _frames(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    active = np.where(np.arange(n) % 4 == 3, 0.25, 0.02)[:, None, None, None]
    counts = rng.integers(1, 4, size=(n, *shape))
    return (counts * (rng.random((n, *shape)) < active)).astype(np.float32)[:, None]


def _without_floor(src: Path, dst: Path) -> Path:
    from hybrid_snn_control.policy import HybridPolicy, load_policy, save_policy

    policy, meta = load_policy(src)
    plain = HybridPolicy(dataclasses.replace(policy.cfg, event_floor="none"))
    plain.load_state_dict(policy.state_dict())
    save_policy(dst, plain.eval(), extra={"task": meta.get("task", "bench")})
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped policy")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import torch

    from hybrid_snn_control.deploy.runtime import load_runtime
    from hybrid_snn_control.policy import default_policy_path, load_policy

    torch.set_num_threads(1)
    src = Path(args.checkpoint or default_policy_path())
    policy, _ = load_policy(src)
    if policy.cfg.event_floor == "none":
        print(f"{src} has no event floor (event_floor: none): nothing to compare")
        return 2
    shape = tuple(policy.cfg.event_shape)
    frames = _frames(args.steps, shape)
    proprio = np.zeros((args.steps, 1, policy.cfg.proprio_size), np.float32)
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"floor": src, "no floor": _without_floor(src, Path(tmp) / "plain.safetensors")}
        runtimes = {
            (backend, name): load_runtime(path, backend, batch_size=1)
            for backend in ("torch", "onnxruntime")
            for name, path in files.items()
        }
        for _ in range(args.rounds):  # interleaved: machine drift hits every contender
            for key, rt in runtimes.items():
                rt.reset()
                t0 = time.perf_counter()
                for t in range(args.steps):
                    rt.step(frames[t], proprio[t])
                times.setdefault(key, []).append((time.perf_counter() - t0) / args.steps)
    print(f"{src.name}: event_floor={policy.cfg.event_floor}, batch 1, 1 thread, "
          f"{args.rounds} rounds x {args.steps} steps (median of rounds)")  # fmt: skip
    print("| backend | with floor µs | without µs | floor cost µs | ratio |")
    print("|---|---:|---:|---:|---:|")
    for backend in ("torch", "onnxruntime"):
        a = statistics.median(times[(backend, "floor")]) * 1e6
        b = statistics.median(times[(backend, "no floor")]) * 1e6
        print(f"| {backend} | {a:.1f} | {b:.1f} | {a - b:+.1f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

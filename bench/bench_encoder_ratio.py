"""Energy and latency per control step across the ratio: spiking vs dense conv encoder (issue 16).

The reference is the dense conv encoder (``encoder: conv``, the shipped policies' front
end); both policies have the pursuit student's shapes (events 2 × 32 × 32, channels 8 → 16,
3 × 3 grid, 2 layers × (64 LIF + 64 LSTM)).  Both run in this one process on the same
recorded pursuit events (one expert-driven 10 s episode, so the target moves): per ratio,

* energy per step from the measured activity (45 nm: MAC 4.6 pJ, AC 0.9 pJ), the
  encoder's SynOps or MACs included;
* latency p50 / p90 of one control step at batch 1, one thread, eager ``policy.step``
  and the exported ONNX Runtime graph (numpy in/out, state kept in the runtime), rounds
  interleaved between the two encoders so machine load hits both alike.

Prints a table and the spiking / dense ratio of each figure.  Timings are wall clock on
a shared machine: read them with ``ps`` quiet (see the closing notes).

    .venv/bin/python bench/bench_encoder_ratio.py [--dense P] [--spiking P] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("MUJOCO_GL", "egl")

RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _policy(encoder: str, path: str | None, tmp: str) -> Path:
    import torch

    from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy

    if path:
        return Path(path)
    torch.manual_seed(0)
    cfg = PolicyConfig(event_shape=[2, 32, 32], encoder=encoder, encoder_grid=3)
    out = Path(tmp) / f"{encoder}.safetensors"
    save_policy(out, HybridPolicy(cfg).eval(), extra={"task": "bench"})
    return out


def _events(seconds: float = 10.0):
    """One expert-driven pursuit episode's events and proprioception (seed 7)."""
    from hybrid_snn_control.training.imitation import load_task
    from hybrid_snn_control.training.rollout import collect_episodes, make_envs

    env = load_task("train", {"env.num_envs": 1, "env.episode_s": seconds}).cfg.env
    envs = make_envs(env, num_envs=1)
    try:
        (ep,), _ = collect_episodes(envs, None, [7])
    finally:
        envs.close()
    return ep.events.astype(np.float32), ep.proprio


def _energy(path: Path, events, proprio) -> dict[float, float]:
    import torch

    from hybrid_snn_control.policy import load_policy

    policy, _ = load_policy(path)
    ev, pr = torch.from_numpy(events)[:, None], torch.from_numpy(proprio)[:, None]
    out = {}
    for r in RATIOS:
        policy.set_ratio(r)
        out[r] = policy.measure_efficiency(ev, pr).energy_pj_per_step / 1e3
    return out


def _time(rt, events, proprio, steps: int) -> list[float]:
    ts = []
    n = len(events)
    for t in range(steps):
        t0 = time.perf_counter()
        rt.step(events[t % n], proprio[t % n])
        ts.append(time.perf_counter() - t0)
    return ts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", default=None, help="a conv-encoder policy (default: random)")
    ap.add_argument("--spiking", default=None, help="a spiking_conv policy (default: random)")
    ap.add_argument("--steps", type=int, default=400, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from hybrid_snn_control.deploy.export import export_checkpoint
    from hybrid_snn_control.deploy.runtime import load_runtime

    events, proprio = _events()
    active = float((events > 0).mean()) * 100
    print(f"recorded {len(events)} steps; {active:.2f} % of pixels active")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "dense": _policy("conv", args.dense, tmp),
            "spiking": _policy("spiking_conv", args.spiking, tmp),
        }
        energy = {k: _energy(p, events, proprio) for k, p in paths.items()}
        graphs = {}
        for k, p in paths.items():
            graphs[k] = Path(tmp) / f"{k}.onnx"
            export_checkpoint(p, graphs[k], "onnx", exporter="dynamo")
        lat: dict[tuple, list[float]] = {}
        for _ in range(args.rounds):
            for r in RATIOS:
                for k in paths:  # interleaved: the same load on both encoders
                    for backend, src in (("torch", paths[k]), ("onnxruntime", graphs[k])):
                        rt = load_runtime(src, backend, batch_size=1)
                        rt.set_ratio(r)
                        _time(rt, events, proprio, 50)  # warm-up
                        lat.setdefault((k, backend, r), []).extend(
                            _time(rt, events, proprio, args.steps)
                        )

    def p(k, b, r, q):
        return float(np.percentile(lat[(k, b, r)], q)) * 1e3

    print(
        "\n| ratio | energy dense (nJ) | energy spiking (nJ) | spiking/dense | "
        "torch p50 dense / spiking (ms) | ORT p50 dense / spiking (ms) | ORT spiking/dense |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in RATIOS:
        ed, es = energy["dense"][r], energy["spiking"][r]
        td, ts_ = p("dense", "torch", r, 50), p("spiking", "torch", r, 50)
        od, os_ = p("dense", "onnxruntime", r, 50), p("spiking", "onnxruntime", r, 50)
        print(
            f"| {r:g} | {ed:.1f} | {es:.1f} | {es / ed:.2f} | {td:.3f} / {ts_:.3f} | "
            f"{od:.3f} / {os_:.3f} | {os_ / od:.2f} |"
        )
    for k in paths:
        e = energy[k]
        print(f"{k}: energy r=0 -> r=1 {e[0.0]:.1f} -> {e[1.0]:.1f} nJ ({e[0.0] / e[1.0]:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""policy_node's control step with an HRSNN core (online plasticity off / on) vs the hybrid.

Times :meth:`PolicyController.step` — what the node runs per control period: event frame
+ proprioception in, action and per-step cost out (torch backend, batch 1, one thread) —
on the same recorded pursuit observations for:

* the BPTT-trained hybrid policy (the shipped one, or ``--hybrid``) at its stored ratio;
* an HRSNN-core policy (``--hrsnn``; default: a fresh untrained one of the shipped
  ``hsc_hrsnn_policy`` architecture — the step cost does not depend on training) with
  ``online_plasticity`` off and on.

Prints medians (µs) and the ratio to the hybrid's step.  The machine is shared: repeat.

    .venv/bin/python bench/bench_policy_step_hrsnn.py [--hrsnn FILE] [--steps 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hybrid_snn_control.robot.controller import PolicyController


def observations(steps: int, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """Events and proprioception of an expert-driven pursuit episode (what a node sees)."""
    from hybrid_snn_control.training.rollout import EnvSettings, collect_episodes, make_envs

    envs = make_envs(EnvSettings(camera_size=camera, episode_s=steps / 50.0), 1)
    try:
        (episode,), _ = collect_episodes(envs, None, [2_000_000_000])
    finally:
        envs.close()
    return episode.events.astype(np.float32), episode.proprio


def fresh_hrsnn(path: str, camera: int) -> None:
    from hybrid_snn_control.config import load_node_params
    from hybrid_snn_control.paths import config_file
    from hybrid_snn_control.policy import PolicyConfig, save_policy
    from hybrid_snn_control.policy.hrsnn_policy import HRSNNPolicy
    from hybrid_snn_control.training.hrsnn_policy import HRSNNPolicyTrainConfig

    cfg = load_node_params(config_file("train"), "hsc_hrsnn_policy", HRSNNPolicyTrainConfig)
    pcfg = PolicyConfig(
        event_shape=[2, camera, camera],
        encoder="pool",
        encoder_grid=cfg.encoder_grid,
        core="hrsnn",
        hrsnn=cfg.hrsnn,
    )
    save_policy(path, HRSNNPolicy(pcfg), extra={})


def time_steps(controller: PolicyController, events, proprio) -> list[float]:
    controller.reset()
    times = []
    for ev, pr in zip(events, proprio):
        t0 = time.perf_counter()
        controller.step(ev, pr)
        times.append(time.perf_counter() - t0)
    return times[10:]  # skip warm-up


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hybrid", default=None, help="hybrid policy (default: the shipped one)")
    ap.add_argument("--hrsnn", default=None, help="HRSNN policy (default: fresh, untrained)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--camera", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from hybrid_snn_control.policy.shipped import default_policy_path

    events, proprio = observations(args.steps, args.camera)
    with tempfile.TemporaryDirectory() as tmp:
        hrsnn_path = args.hrsnn or os.path.join(tmp, "hrsnn.safetensors")
        if args.hrsnn is None:
            fresh_hrsnn(hrsnn_path, args.camera)
        hybrid = PolicyController(args.hybrid or default_policy_path())
        hrsnn = PolicyController(hrsnn_path)
        rows = {"hybrid (BPTT), stored ratio": time_steps(hybrid, events, proprio)}
        rows["HRSNN core, plasticity off"] = time_steps(hrsnn, events, proprio)
        hrsnn.set_plasticity(True)
        rows["HRSNN core, online plasticity on"] = time_steps(hrsnn, events, proprio)
    base = statistics.median(rows["hybrid (BPTT), stored ratio"])
    result = {
        "machine": platform.processor() or platform.machine(),
        "steps": len(events),
        "median_us": {k: 1e6 * statistics.median(v) for k, v in rows.items()},
        "p99_us": {k: 1e6 * float(np.percentile(v, 99)) for k, v in rows.items()},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"PolicyController.step, batch 1, 1 thread, {len(events)} pursuit steps")
    print(f"{'contender':36} {'median µs':>10} {'p99 µs':>9} {'x hybrid':>9}")
    for k, v in rows.items():
        med = statistics.median(v)
        p99 = float(np.percentile(v, 99))
        print(f"{k:36} {1e6 * med:10.1f} {1e6 * p99:9.1f} {med / base:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

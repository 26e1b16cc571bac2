"""Env steps/s per core of the simulation harness: event camera at 1, 2, 4 sub-frames vs camera off.

Every configuration runs in this one process, pinned to one CPU core (llvmpipe's
rasterizer threads inherit the pinning, so the number is per core), with the same
action sequence, in the same run; the table shows the median of ``--repeats`` runs and
the cost relative to the camera-off env.  Besides wall-clock steps/s it reports steps per
CPU-second of the process (all its threads), which other load on a shared machine inflates
much less than wall time.  Target (issue 5): >= 500 env steps/s per core
at 64x64 with one sub-frame.

    .venv/bin/python bench/bench_sim.py [--env Pursuit] [--steps 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def measure(
    env_id: str, steps: int, size: int, subframes: int, camera: bool
) -> tuple[float, float]:
    """(steps per wall-clock second, steps per CPU second of this process: all its threads)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(
        env_id,
        camera_width=size,
        camera_height=size,
        subframes=subframes,
        event_camera=camera,
        episode_s=(steps + 40) / 50.0,  # no resets inside the timed loop
        disable_env_checker=True,
    )
    rng = np.random.default_rng(0)
    actions = np.clip(np.cumsum(rng.normal(0, 0.2, (steps, 2)), axis=0), -1, 1).astype(np.float32)
    env.reset(seed=0)
    for a in actions[:20]:  # warm-up: first frames, lazy imports
        env.step(a)
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        env.step(a)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return steps / wall, steps / cpu


def breakdown(env_id: str, size: int, repeats: int = 5, n: int = 200) -> dict[str, float]:
    """Per-part cost (ms, minimum over repeats: robust to other load) of one 1-sub-frame step."""
    import gymnasium as gym
    import mujoco
    import numpy as np

    env = gym.make(env_id, camera_width=size, camera_height=size, disable_env_checker=True)
    env.reset(seed=0)
    base = env.unwrapped
    m, d = base.model, base.data
    for _ in range(20):
        env.step(np.array([0.3, 0.6], np.float32))
    frames, times_us = [], []
    for _ in range(n + 1):  # a real frame sequence (turning: many events)
        mujoco.mj_step(m, d, nstep=base.n_physics)
        frames.append(base._render_eye().copy())
        times_us.append(round(d.time * 1e6))

    def best(fn) -> float:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) / n * 1e3)
        return min(out)

    def physics():
        for _ in range(n):
            mujoco.mj_step(m, d, nstep=base.n_physics)

    def render():
        for _ in range(n):
            base._render_eye()

    def feed():
        sim = base._events_sim
        sim.reset(seed=1)
        sim.feed(frames[0], times_us[0])
        for f, t in zip(frames[1:], times_us[1:]):
            sim.feed(f, t)

    sim = base._events_sim
    sim.reset(seed=1)
    sim.feed(frames[0], times_us[0])
    evs = [sim.feed(f, t) for f, t in zip(frames[1:], times_us[1:])]

    def counts():
        for ev in evs:
            base._event_counts(ev)

    def whole_step():
        for _ in range(n):
            env.step(np.array([0.3, 0.6], np.float32))

    result = {
        f"physics_{base.n_physics}_steps_ms": best(physics),
        "render_frame_ms": best(render),
        "event_sim_feed_ms": best(feed),
        "event_counts_ms": best(counts),
        "whole_step_ms": best(whole_step),
        "events_per_frame": float(np.mean([len(e) for e in evs])),
    }
    env.close()
    return {k: round(v, 4) for k, v in result.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pursuit", choices=["Pursuit", "Navigation"])
    p.add_argument("--steps", type=int, default=1000, help="timed control steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=64, help="camera width = height (pixels)")
    p.add_argument("--subframes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args()

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    import torch

    torch.set_num_threads(1)
    import hybrid_snn_control.sim  # noqa: F401  (registers the envs, sets MUJOCO_GL)

    env_id = f"hybrid_snn_control/{args.env}-v0"
    configs = [("camera off", 1, False)] + [
        (f"events, {k} sub-frame(s)", k, True) for k in args.subframes
    ]
    runs: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    cpu_runs: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    for _ in range(args.repeats):  # interleaved, so load changes hit every config alike
        for name, k, cam in configs:
            wall_rate, cpu_rate = measure(env_id, args.steps, args.size, k, cam)
            runs[name].append(wall_rate)
            cpu_runs[name].append(cpu_rate)
    parts = breakdown(env_id, args.size)
    off = statistics.median(runs["camera off"])
    cpu_off = statistics.median(cpu_runs["camera off"])
    rows = []
    for name, k, cam in configs:
        med = statistics.median(runs[name])
        cpu_med = statistics.median(cpu_runs[name])
        rows.append(
            {
                "config": name,
                "subframes": k if cam else 0,
                "steps_per_s": round(med, 1),
                "steps_per_cpu_s": round(cpu_med, 1),
                "ms_per_step": round(1e3 / med, 3),
                "ratio_to_camera_off": round(med / off, 3),
                "cpu_ratio_to_camera_off": round(cpu_med / cpu_off, 3),
                "runs": [round(r, 1) for r in runs[name]],
            }
        )
    result = {
        "env": env_id,
        "camera": f"{args.size}x{args.size}",
        "steps": args.steps,
        "repeats": args.repeats,
        "pinned_cpu": args.cpu,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "lp_num_threads": os.environ.get("LP_NUM_THREADS"),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "target_steps_per_s_1_subframe": 500,
        "results": rows,
        "breakdown_min_ms": parts,
        "loadavg_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{env_id}, camera {args.size}x{args.size}, {args.steps} steps x {args.repeats} repeats, "
        f"pinned to cpu {args.cpu}, MUJOCO_GL={result['mujoco_gl']}"
    )
    print(f"{'config':<24} {'steps/s':>9} {'ms/step':>8} {'vs off':>7} {'steps/cpu-s':>12}  runs")
    for r in rows:
        print(
            f"{r['config']:<24} {r['steps_per_s']:>9.1f} {r['ms_per_step']:>8.3f} "
            f"{r['ratio_to_camera_off']:>7.3f} {r['steps_per_cpu_s']:>12.1f}  {r['runs']}"
        )
    print("breakdown of one 1-sub-frame step (min over repeats, ms):", parts)
    print(f"load average (1 min) at the end: {result['loadavg_1min']:.2f} on {os.cpu_count()} cpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())

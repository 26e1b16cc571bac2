"""Privileged expert scores per task and held-out shift (mean +- std of normalized score).

The experts read ground truth, so sensor shifts (dim, flicker, noisy_sensor) only change
the world draw, not what they see; physical shifts (slippery, laggy, heavy, fast_target)
degrade them.  Episodes run with the event camera off (the expert does not use it), seeds
0..episodes-1 for every shift.

    .venv/bin/python bench/sim_expert_scores.py [--episodes 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def run_episode(env, seed: int, shift: str | None) -> dict[str, float]:
    env.reset(seed=seed, options={"shift": shift})
    base = env.unwrapped
    while True:
        _, _, terminated, truncated, info = env.step(base.expert_action())
        if terminated or truncated:
            return info["episode_metrics"]


def event_rates(env_id: str, shift: str | None, seeds: range, steps: int) -> list[float]:
    """Mean events per control step (64x64, 1 sub-frame) per seed while the expert drives."""
    import gymnasium as gym

    env = gym.make(env_id)
    rates = []
    for seed in seeds:
        env.reset(seed=seed, options={"shift": shift})
        total = 0.0
        for _ in range(steps):
            obs, *_ = env.step(env.unwrapped.expert_action())
            total += float(obs["events"].sum())
        rates.append(total / steps)
    env.close()
    return rates


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--env", nargs="+", default=["Pursuit", "Navigation"])
    p.add_argument(
        "--event-steps", type=int, default=0, help="also count events/step (camera on), 3 seeds"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import gymnasium as gym

    import hybrid_snn_control.sim  # noqa: F401

    out: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    for name in args.env:
        env = gym.make(f"hybrid_snn_control/{name}-v0", event_camera=False)
        shifts = ["nominal", *env.unwrapped.supported_shifts()]
        out[name] = {}
        for shift in shifts:
            eps = [run_episode(env, s, shift) for s in range(args.episodes)]
            row = {}
            for key in eps[0]:
                vals = [e[key] for e in eps]
                row[key] = statistics.fmean(vals)
                row[key + "_std"] = statistics.pstdev(vals)
            if args.event_steps:
                rates = event_rates(
                    f"hybrid_snn_control/{name}-v0", shift, range(3), args.event_steps
                )
                row["events_per_step"] = statistics.fmean(rates)
                row["events_per_step_std"] = statistics.pstdev(rates)
            out[name][shift] = row
        env.close()
    elapsed = time.perf_counter() - t0
    if args.json:
        result = {"episodes": args.episodes, "elapsed_s": elapsed, "scores": out}
        print(json.dumps(result, indent=2))
        return 0
    for name, rows in out.items():
        keys = [k for k in next(iter(rows.values())) if not k.endswith("_std")]
        print(f"\n{name}-v0 expert, {args.episodes} episodes per shift (mean ± std)")
        print(f"{'shift':<13}" + "".join(f"{k:>26}" for k in keys))
        for shift, row in rows.items():
            cells = "".join(f"{row[k]:>17.3f} ± {row[k + '_std']:<6.3f}" for k in keys)
            print(f"{shift:<13}{cells}")
    print(f"\n({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

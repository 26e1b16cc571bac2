"""Issue 14 diagnosis, offline: does a finer encoder grid let a student resolve the target's
bearing?  A fixed-ratio student is trained by BC on recorded DAgger rounds (with the event
floor on, as the shipped recipe), then scored on held-out recorded episodes.

    .venv/bin/python docs/studies/grid_bc.py GRID STEPS RATIO OUT.json \\
        --train 'runs/student_v5/*/dagger_*.npz' \\
        --test plain='runs/v6_edge_floor/*/dagger_003.npz' \\
        --test pushed='runs/v7_push/*/dagger_003.npz'

Scores per test set (60 episodes each): turn R² and slope of the student's command against
the expert's label, over all steps, in view, and in view with the target past half a
field of view; speed R².
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import random
import time

import numpy as np
import torch
import yaml

from hybrid_snn_control.config import from_mapping
from hybrid_snn_control.policy import HybridPolicy
from hybrid_snn_control.training.imitation import (
    ImitationConfig,
    ImitationTask,
    StudentWithAux,
    tbptt_pass,
)
from hybrid_snn_control.training.rollout import EpisodeDataset


def load(pattern: str, limit: int | None = None) -> EpisodeDataset:
    eps = [e for f in sorted(glob.glob(pattern)) for e in EpisodeDataset.load(f).episodes]
    return EpisodeDataset(eps[:limit])


def r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    return float(1 - ((y - y_hat) ** 2).mean() / y.var())


def slope(x: np.ndarray, y: np.ndarray) -> float | None:
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 10 else None


@torch.no_grad()
def score(policy: HybridPolicy, test: EpisodeDataset) -> dict:
    s_all, e_all, p_all = [], [], []
    for i in range(0, len(test), 20):
        b = test.collate(list(range(i, min(i + 20, len(test)))))
        a, _ = policy(b["events"].float(), b["proprio"])
        m = b["mask"].bool()
        s_all.append(a[m].numpy())
        e_all.append(b["expert"][m].numpy())
        p_all.append(b["privileged"][m].numpy())
    s, e, p = np.concatenate(s_all), np.concatenate(e_all), np.concatenate(p_all)
    iv = p[:, 2] > 0.5
    edge = iv & (np.abs(p[:, 0]) > 0.5)
    return {
        "steps": len(e),
        "in_view": float(iv.mean()),
        "turn_r2": r2(e[:, 1], s[:, 1]),
        "turn_r2_in_view": r2(e[iv, 1], s[iv, 1]),
        "turn_slope_in_view": slope(e[iv, 1], s[iv, 1]),
        "turn_slope_edge": slope(e[edge, 1], s[edge, 1]),
        "speed_r2": r2(e[:, 0], s[:, 0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("ratio", type=float)
    ap.add_argument("out")
    ap.add_argument("--train", default="runs/student_v5/*/dagger_*.npz")
    ap.add_argument("--test", action="append", default=[], help="NAME=GLOB (60 episodes)")
    ap.add_argument("--config", default="config/train.yaml")
    ap.add_argument("--channels", type=int, nargs="+", default=None, help="encoder channels")
    ap.add_argument("--keypoints", action="store_true", help="policy.encoder_keypoints")
    args = ap.parse_args()
    torch.set_num_threads(1)
    raw = yaml.safe_load(open(args.config))["hsc_imitation"]["ros__parameters"]
    raw["policy"].update(
        encoder_grid=args.grid, event_floor="quantile", encoder_keypoints=args.keypoints
    )
    if args.channels:
        raw["policy"]["encoder_channels"] = args.channels
    cfg = from_mapping(ImitationConfig, raw)
    torch.manual_seed(0)
    policy_cfg = dataclasses.replace(ImitationTask(cfg).policy_config(), spiking_ratio=args.ratio)
    policy = HybridPolicy(policy_cfg)
    policy.core.set_ratio(args.ratio)
    train = load(args.train)
    policy.set_normalization(*train.proprio_stats())
    student = StudentWithAux(policy, 3)
    optimizer = torch.optim.Adam(student.parameters(), lr=0.003)
    rng, t0 = random.Random(0), time.time()
    for step in range(args.steps):
        idx = rng.sample(range(len(train)), cfg.batch_episodes)
        loss = tbptt_pass(student, train.collate(idx), cfg, None, optimizer)
        if step % 100 == 0:
            print(f"step {step} loss {loss:.4f} {time.time() - t0:.0f} s", flush=True)
    policy.eval()
    result = {
        "grid": args.grid,
        "channels": list(policy.cfg.encoder_channels),
        "keypoints": policy.cfg.encoder_keypoints,
        "steps": args.steps,
        "ratio": args.ratio,
        "train_episodes": len(train),
        "encoder_features": policy.encoder.out_features,
        "wall_s": time.time() - t0,
    }
    for spec in args.test:
        name, pattern = spec.split("=", 1)
        result[name] = score(policy, load(pattern, 60))
    print(json.dumps(result))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

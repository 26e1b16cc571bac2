"""A short RL fine-tune of the shipped policy on its closed-loop score (issue 14).

Imitation pulls the turn towards the mean of the expert's labels where the student cannot
place the target; the score it is judged on is closed-loop.  This fine-tunes on that score
directly, with antithetic evolution strategies (Salimans et al. 2017) on the readout columns
that read the spike-rate trace (``core.readout.weight[:, :N]``): at r = 1 they are the whole
readout, at r = 0 they read nothing (no spiking units), so the all-spiking end, the one that
misses the issue's bar, is what moves.  Each iteration draws fresh *training* worlds
(``episode_seeds(--seed, …)``: below 10⁹, never an evaluation world) in the env's default
ranges, 20 s episodes, and scores every perturbation of the pair on the same worlds, so
the pair's difference is not the worlds' difficulty.

    python docs/studies/es_readout.py --out runs/es/policy.safetensors \
        [--iterations 16] [--pairs 4] [--episodes 8] [--sigma 0.02] [--ratio 1] [--workers 2]

Writes the policy (the shipped file's metadata, plus ``es_readout``: the settings and the
per-iteration fitness) and prints one JSON line per iteration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import numpy as np
import torch

_WORKER: dict = {}


def _init(ratio: float, episodes: int) -> None:
    from hybrid_snn_control.policy import load_default_policy
    from hybrid_snn_control.training.evaluate import evaluation_settings
    from hybrid_snn_control.training.rollout import make_envs

    torch.set_num_threads(1)
    policy, meta = load_default_policy()
    policy.set_ratio(ratio)
    settings = evaluation_settings(meta)
    n = min(settings.num_envs, episodes)
    _WORKER.update(policy=policy, envs=make_envs(settings, n), base=_columns(policy).clone())


def _columns(policy) -> torch.Tensor:
    n = policy.core.readout.weight.shape[1] // 2
    return policy.core.readout.weight.data[:, :n]


def _score(task: tuple[np.ndarray, list[int]]) -> float:
    """Mean normalized score of the base columns + ``delta`` on the worlds ``seeds``."""
    from hybrid_snn_control.training.rollout import collect_episodes

    delta, seeds = task
    policy = _WORKER["policy"]
    cols = _columns(policy)
    cols.copy_(_WORKER["base"] + torch.as_tensor(delta, dtype=cols.dtype).view_as(cols))
    _, metrics = collect_episodes(_WORKER["envs"], policy, seeds, beta=0.0, record=False)
    return float(np.mean([m["normalized_score"] for m in metrics]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=4, help="antithetic pairs per iteration")
    ap.add_argument("--episodes", type=int, default=8, help="worlds per perturbation")
    ap.add_argument("--sigma", type=float, default=0.02, help="perturbation std (weights)")
    ap.add_argument("--step", type=float, default=1.0, help="update, in units of sigma")
    ap.add_argument("--ratio", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7, help="training-world run seed")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from hybrid_snn_control.policy import load_default_policy, save_policy
    from hybrid_snn_control.training.rollout import episode_seeds

    policy, meta = load_default_policy()
    cols = _columns(policy)
    theta = np.zeros(cols.numel())
    rng = np.random.default_rng(args.seed)
    history = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, _init, (args.ratio, args.episodes)) as pool:
        for it in range(args.iterations):
            t0 = time.time()
            seeds = episode_seeds(args.seed, it * args.episodes, args.episodes)
            eps = rng.normal(size=(args.pairs, theta.size))
            tasks = [(theta + s * args.sigma * e, seeds) for e in eps for s in (1.0, -1.0)]
            f = np.array(pool.map(_score, tasks)).reshape(args.pairs, 2)
            diff = f[:, 0] - f[:, 1]
            scale = diff.std() + 1e-8
            theta = theta + args.step * args.sigma * (diff / scale) @ eps / args.pairs
            row = {
                "iteration": it,
                "mean_fitness": float(f.mean()),
                "pair_diffs": [round(float(d), 4) for d in diff],
                "theta_norm": float(np.linalg.norm(theta)),
                "wall_s": round(time.time() - t0, 1),
            }
            history.append(row)
            print(json.dumps(row), flush=True)
    cols.add_(torch.as_tensor(theta, dtype=cols.dtype).view_as(cols))
    own = ("kind", "policy_config", "spiking_ratio", "package_version", "torch_version")
    extra = {k: v for k, v in meta.items() if k not in own}
    extra["es_readout"] = {**vars(args), "history": history}
    save_policy(args.out, policy, extra=extra)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

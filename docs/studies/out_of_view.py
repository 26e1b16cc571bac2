"""What a student does while the target is out of view, and how often its training saw that.

    python docs/studies/out_of_view.py rollouts [POLICY] [--seed 60] [--episodes 8]
    python docs/studies/out_of_view.py data RUN_DIR [RUN_DIR ...]
    python docs/studies/out_of_view.py offline POLICY RUN_DIR [RUN_DIR ...]

``rollouts``: the student drives (β = 0) ``--episodes`` 20 s worlds of evaluation seed
``--seed`` at r = 0 and r = 1; per world it prints the score, the share of steps with the
target out of the camera's view (ground truth, ``privileged_state``), and over those steps
the student's mean |turn| against the expert label's and how often their signs agree.
``data``: the share of out-of-view steps in the ``dagger_*.npz`` rounds under the run
folders (what the imitation loss saw).
``offline``: the policy replays the recorded episodes under the run folders that ever lose
the target (open loop, its own state carried over each episode) at r = 0 and r = 1; over
the out-of-view steps, its mean |turn| against the expert label's and the sign agreement.
Unlike ``rollouts`` it is not biased towards the lost steps a policy failed to end.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from hybrid_snn_control.policy.bundle import load_policy
from hybrid_snn_control.training.evaluate import eval_seeds
from hybrid_snn_control.training.rollout import (
    EpisodeDataset,
    collect_episodes,
    make_envs,
    policy_env_settings,
)

SHIPPED = "hybrid_snn_control/policies/pursuit_default.safetensors"


def rollouts(path: str, seed: int, episodes: int, shift: str) -> None:
    torch.set_num_threads(1)
    policy, meta = load_policy(path)
    policy.eval()
    settings = dataclasses.replace(policy_env_settings(meta), episode_s=20.0)
    for ratio in (0.0, 1.0):
        policy.set_ratio(ratio)
        envs = make_envs(settings, 4, None if shift == "nominal" else shift)
        try:
            eps, _ = collect_episodes(envs, policy, eval_seeds(seed, episodes), beta=0.0)
        finally:
            envs.close()
        for ep in eps:
            events = torch.as_tensor(ep.events, dtype=torch.float32)[:, None]
            with torch.no_grad():  # the same actions it took (deterministic step)
                act, _ = policy(events, torch.as_tensor(ep.proprio)[:, None])
            turn, label = act[:, 0, 1].numpy(), ep.expert[:, 1]
            out = ep.privileged[:, 2] < 0.5
            line = f"r={ratio:g} score {ep.score:.2f} out of view {out.mean():.2f}"
            if out.any():
                agree = np.mean(np.sign(turn[out]) == np.sign(label[out]))
                line += (
                    f"  |turn| student {np.abs(turn[out]).mean():.2f} expert "
                    f"{np.abs(label[out]).mean():.2f}  sign agreement {agree:.2f}"
                )
            print(line, flush=True)


def data(folders: list[str]) -> None:
    total = out = episodes = touched = 0
    for folder in folders:
        for f in sorted(Path(folder).rglob("dagger_*.npz")):
            for ep in EpisodeDataset.load(f).episodes:
                if ep.privileged is None:
                    continue
                o = ep.privileged[:, 2] < 0.5
                total, out = total + o.size, out + int(o.sum())
                episodes, touched = episodes + 1, touched + int(o.any())
    print(
        f"{episodes} episodes, {total} steps: out of view {out} steps ({out / max(total, 1):.2%}), "
        f"in {touched} episodes"
    )


def offline(path: str, folders: list[str]) -> None:
    torch.set_num_threads(1)
    policy, _ = load_policy(path)
    policy.eval()
    eps = [
        ep
        for folder in folders
        for f in sorted(Path(folder).rglob("dagger_*.npz"))
        for ep in EpisodeDataset.load(f).episodes
        if ep.privileged is not None and (ep.privileged[:, 2] < 0.5).any()
    ]
    batch = EpisodeDataset(eps).collate(range(len(eps)))
    lost = (batch["mask"] > 0) & (batch["privileged"][..., 2] < 0.5)
    label = batch["expert"][..., 1][lost]
    for ratio in (0.0, 1.0):
        policy.set_ratio(ratio)
        with torch.no_grad():
            turn = policy(batch["events"].float(), batch["proprio"])[0][..., 1][lost]
        agree = float(((turn * label) > 0).float().mean())
        print(
            f"r={ratio:g}: {len(eps)} episodes, {int(lost.sum())} out-of-view steps  |turn| "
            f"student {float(turn.abs().mean()):.2f} expert {float(label.abs().mean()):.2f}  "
            f"sign agreement {agree:.2f}",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("rollouts")
    r.add_argument("policy", nargs="?", default=SHIPPED)
    r.add_argument("--seed", type=int, default=60)
    r.add_argument("--episodes", type=int, default=8)
    r.add_argument("--shift", default="nominal")
    d = sub.add_parser("data")
    d.add_argument("runs", nargs="+")
    o = sub.add_parser("offline")
    o.add_argument("policy")
    o.add_argument("runs", nargs="+")
    a = p.parse_args()
    if a.what == "rollouts":
        rollouts(a.policy, a.seed, a.episodes, a.shift)
    elif a.what == "offline":
        offline(a.policy, a.runs)
    else:
        data(a.runs)


if __name__ == "__main__":
    main()

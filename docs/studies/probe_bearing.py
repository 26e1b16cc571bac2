"""Issue 14 diagnosis: is the target's bearing (and the expert's command) linearly decodable
from a student's core features along its own trajectories?

    .venv/bin/python docs/studies/probe_bearing.py POLICY RATIO SHIFT

12 worlds (evaluation seeds 50-51, the tuning pilot's); ridge probes fit on the even
episodes, scored on the odd ones, beside the policy's own readout.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from hybrid_snn_control.policy.bundle import load_policy
from hybrid_snn_control.training.evaluate import eval_seeds, evaluation_settings
from hybrid_snn_control.training.rollout import collect_episodes, make_envs


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1e-2) -> np.ndarray:
    xb = np.c_[x, np.ones(len(x))]
    return np.linalg.solve(xb.T @ xb + lam * len(x) * np.eye(xb.shape[1]), xb.T @ y)


def r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    return float(1 - ((y - y_hat) ** 2).mean() / y.var())


def main() -> None:
    torch.set_num_threads(1)
    path, ratio, shift = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    policy, meta = load_policy(path)
    policy.set_ratio(ratio)
    policy.eval()
    envs = make_envs(evaluation_settings(meta), 6, None if shift == "nominal" else shift)
    eps, _ = collect_episodes(envs, policy, eval_seeds(50, 6) + eval_seeds(51, 6), beta=0.0)
    envs.close()
    feats, acts = [], []
    with torch.no_grad():
        for ep in eps:
            events = torch.as_tensor(ep.events[:, None]).float()
            a, _, f = policy.forward_with_features(events, torch.as_tensor(ep.proprio[:, None]))
            feats.append(f[:, 0].numpy())
            acts.append(a[:, 0].numpy())
    expert = [ep.expert for ep in eps]
    priv = [ep.privileged for ep in eps]

    def split(parts: list, part: int) -> np.ndarray:
        return np.concatenate(parts[part::2])

    x_tr, x_te = split(feats, 0), split(feats, 1)
    p_tr, p_te = split(priv, 0), split(priv, 1)
    e_tr, e_te = split(expert, 0), split(expert, 1)
    a_te = split(acts, 1)
    iv_tr, iv_te = p_tr[:, 2] > 0.5, p_te[:, 2] > 0.5
    print(f"{shift} r={ratio}: {len(eps)} episodes, {x_tr.shape[1]} features")
    w = ridge(x_tr[iv_tr], p_tr[iv_tr, 0])
    y_hat = np.c_[x_te[iv_te], np.ones(iv_te.sum())] @ w
    print(f"  probe -> in-view bearing: R2 {r2(p_te[iv_te, 0], y_hat):.2f}")
    for j, name in ((1, "turn"), (0, "speed")):
        w = ridge(x_tr, e_tr[:, j])
        y_hat = np.c_[x_te, np.ones(len(x_te))] @ w
        print(
            f"  probe -> expert {name}: R2 {r2(e_te[:, j], y_hat):.2f}; "
            f"the policy's own: R2 {r2(e_te[:, j], a_te[:, j]):.2f}"
        )


if __name__ == "__main__":
    main()

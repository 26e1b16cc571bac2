"""What the readout could know: linear probes on the core's signals at r = 0 and r = 1.

    python docs/studies/readout_probe.py POLICY RUN_DIR [RUN_DIR ...] [--episodes 80]

The policy replays recorded episodes (``dagger_*.npz`` under the run folders, open loop,
its own state carried) one step at a time. Per step it keeps the encoder's output (the
core's input), the readout's input (last layer: spike-rate trace and recurrent output)
and the last layer's spiking membrane potentials. A ridge probe fit on half the episodes
predicts the expert's turn label and, on in-view steps, the target's bearing (privileged,
in half fields of view) on the other half; printed as R². If the membrane says much more
than the trace at r = 1, a membrane (non-spiking) readout is worth a retrain.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hybrid_snn_control.policy.bundle import load_policy
from hybrid_snn_control.training.rollout import EpisodeDataset


def ridge_r2(x: np.ndarray, y: np.ndarray, fit: np.ndarray, lam: float = 1.0) -> float:
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    a = z[fit]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y[fit])
    test = ~fit
    res = y[test] - z[test] @ w
    return float(1 - res.var() / y[test].var())


def signals(policy, batch: dict, ratio: float) -> dict[str, np.ndarray]:
    policy.set_ratio(ratio)
    events, proprio = batch["events"].float(), batch["proprio"]
    state, keep = None, {"encoder": [], "readout input": [], "membrane": []}
    with torch.no_grad():
        for t in range(events.shape[0]):
            enc_state, core_state = policy._split(state)
            x, enc_state, _ = policy.encode(events[t], proprio[t], enc_state)
            _, core_state = policy.core.step(x, core_state)
            state = policy._join(enc_state, core_state)
            last = core_state.layers[-1]
            s_mask, r_mask = policy.core.masks()[-2:]
            rec = last.recurrent[0] * r_mask  # LSTM hidden h (0 where inactive)
            keep["encoder"].append(x)
            keep["readout input"].append(torch.cat([core_state.trace, rec], -1))
            keep["membrane"].append(last.spiking.v * s_mask)
    return {k: torch.stack(v).numpy() for k, v in keep.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("policy")
    p.add_argument("runs", nargs="+")
    p.add_argument("--episodes", type=int, default=80)
    a = p.parse_args()
    torch.set_num_threads(1)
    policy, _ = load_policy(a.policy)
    policy.eval()
    eps = [
        ep
        for folder in a.runs
        for f in sorted(Path(folder).rglob("dagger_*.npz"))
        for ep in EpisodeDataset.load(f).episodes
    ][: a.episodes]
    batch = EpisodeDataset(eps).collate(range(len(eps)))
    valid = (batch["mask"] > 0).numpy()
    in_view = valid & (batch["privileged"][..., 2] > 0.5).numpy()
    fit_ep = np.arange(len(eps)) % 2 == 0  # even episodes fit, odd ones score
    fit = np.broadcast_to(fit_ep, valid.shape)
    turn, bearing = batch["expert"][..., 1].numpy(), batch["privileged"][..., 0].numpy()
    print(f"{len(eps)} episodes, {int(valid.sum())} steps ({int(in_view.sum())} in view)")
    for ratio in (0.0, 1.0):
        sig = signals(policy, batch, ratio)
        for name, x in sig.items():
            r_turn = ridge_r2(x[valid], turn[valid], fit[valid])
            r_bear = ridge_r2(x[in_view], bearing[in_view], fit[in_view])
            print(
                f"r={ratio:g} {name:14s} dims {x.shape[-1]:4d}  R² expert turn {r_turn:+.2f}  "
                f"bearing in view {r_bear:+.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

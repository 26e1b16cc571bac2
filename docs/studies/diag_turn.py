"""Issue 14 diagnosis: how a student's commands differ from the expert's labels along the
student's own trajectories, in view (by bearing) and out of view.

    .venv/bin/python docs/studies/diag_turn.py POLICY RATIO SHIFT [SHIFT ...]

Runs 6 worlds of evaluation seed 50 (the tuning pilot's, never the ship sweep's) per shift.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from hybrid_snn_control.policy.bundle import load_policy
from hybrid_snn_control.training.evaluate import eval_seeds, evaluation_settings
from hybrid_snn_control.training.rollout import collect_episodes, make_envs


def slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    torch.set_num_threads(1)
    path, ratio, shifts = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    policy, meta = load_policy(path)
    settings = evaluation_settings(meta)
    policy.set_ratio(ratio)
    policy.eval()
    for shift in shifts:
        envs = make_envs(settings, 6, None if shift == "nominal" else shift)
        eps, metrics = collect_episodes(envs, policy, eval_seeds(50, 6), beta=0.0)
        envs.close()
        score = np.mean([m["normalized_score"] for m in metrics])
        in_view = np.mean([m["time_in_view"] for m in metrics])
        print(f"{shift} r={ratio}: score {score:.3f}, time in view {in_view:.2f}")
        s_all, e_all, p_all = [], [], []
        with torch.no_grad():  # the student's commands on the recorded inputs (one sequence)
            for ep in eps:
                a, _ = policy(
                    torch.as_tensor(ep.events[:, None]).float(),
                    torch.as_tensor(ep.proprio[:, None]),
                )
                s_all.append(a[:, 0].numpy())
                e_all.append(ep.expert)
                p_all.append(ep.privileged)
        s, e, p = np.concatenate(s_all), np.concatenate(e_all), np.concatenate(p_all)
        for j, name in enumerate(("speed", "turn")):
            print(
                f"  {name}: expert |.| {np.abs(e[:, j]).mean():.3f}, student |.| "
                f"{np.abs(s[:, j]).mean():.3f}, corr {np.corrcoef(e[:, j], s[:, j])[0, 1]:.2f}, "
                f"slope {slope(e[:, j], s[:, j]):.2f}"
            )
        iv = p[:, 2] > 0.5
        for name, m in (("in view", iv), ("out of view", ~iv)):
            if m.sum() >= 10:
                print(
                    f"  {name} ({m.mean():.2f} of steps): turn expert |.| "
                    f"{np.abs(e[m, 1]).mean():.3f}, student |.| {np.abs(s[m, 1]).mean():.3f}, "
                    f"slope {slope(e[m, 1], s[m, 1]):.2f}"
                )
        bearing = p[iv, 0]
        for lo, hi in ((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
            m = (np.abs(bearing) >= lo) & (np.abs(bearing) < hi)
            if m.any():
                sign = np.sign(bearing[m])
                want, got = np.mean(e[iv][m, 1] * sign), np.mean(s[iv][m, 1] * sign)
                print(
                    f"    |bearing| {lo:.2f}-{hi:.2f} half-FOV ({m.mean():.2f}): turn towards "
                    f"it, expert {want:+.3f}, student {got:+.3f}"
                )


if __name__ == "__main__":
    main()

r"""Training a policy whose core is an HRSNN (:mod:`hybrid_snn_control.policy.hrsnn_policy`).

.. math::
    x_t = [\,\mathrm{pool}(\log(1 + E_t)),\; (p_t - \mu_p) / \sigma_p\,], \quad
    z_t, s_t = \mathrm{HRSNN}(x_t, s_{t-1}), \quad
    r_t = d\, r_{t-1} + z_t, \quad
    a_t = \tanh(W [\,r_t,\; x_t\,] + b)

The encoder is fixed average pooling (nothing to learn), the HRSNN's recurrent synapses
are shaped by unsupervised heterogeneous STDP on the robot's own event streams, and the
linear readout ``W`` from the spike traces ``r_t`` (plus the layer input with
``readout_skip``, the "extended state" of reservoir computing) is fitted in closed form
by ridge regression on the privileged expert's actions — BC, then DAgger rounds that
refit on the aggregate.  Recipe (:func:`train_hrsnn_policy`)::

    expert episodes ──► proprio normalization ──► STDP phase (layer.plasticity = True)
        ──► frozen features ──► ridge readout ──► DAgger: student drives, expert labels,
        refit on all data ──► save_policy (same file format as the hybrid policy)

On the robot, ``set_plasticity(True)`` (the policy node's ``online_plasticity``) lets
STDP keep changing the recurrent weights from the live events while the readout stays
fixed; ``weight_norms()`` is what the node reports.  The spiking ratio of this core is
fixed at 1 (every unit spikes).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid_snn_control.config import param, to_mapping
from hybrid_snn_control.policy.bundle import save_policy
from hybrid_snn_control.policy.config import HRSNNCoreConfig
from hybrid_snn_control.policy.hrsnn_policy import HRSNNPolicy
from hybrid_snn_control.training.hrsnn import RidgeReadout
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    config_from_env,
    episode_seeds,
    make_envs,
    round_up,
    summarize_episodes,
)

__all__ = ["HRSNNPolicyTrainConfig", "search_core", "train_hrsnn_policy"]

#: Expert actions are clipped to this before ``atanh`` (the readout is fitted pre-tanh).
ACTION_CLIP = 0.95
L2_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


# ---- training ------------------------------------------------------------------------------------
@dataclass
class HRSNNPolicyTrainConfig:
    """STDP + ridge + DAgger settings (section ``hsc_hrsnn_policy`` of ``config/train.yaml``)."""

    seed: int = 0
    env: EnvSettings = field(default_factory=EnvSettings)
    encoder_grid: int = field(default=8, metadata=param(range=(1, 64)))
    hrsnn: HRSNNCoreConfig = field(default_factory=HRSNNCoreConfig)
    bc_episodes: int = field(default=16, metadata=param(range=(1, 100_000)))
    dagger_iterations: int = field(default=4, metadata=param(range=(0, 1000)))
    dagger_episodes: int = field(default=8, metadata=param(range=(1, 100_000)))
    beta_start: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    beta_decay: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    stdp_epochs: int = field(
        default=1, metadata=param(range=(0, 1000), description="0: no STDP phase")
    )
    stdp_batch_episodes: int = field(default=4, metadata=param(range=(1, 4096)))
    l2: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1e9),
            description="ridge penalty; 0: chosen on every 4th episode (held out) per fit",
        ),
    )
    readout: str = field(
        default="hrsnn",
        metadata=param(
            choices=("hrsnn", "input"),
            description="input: a linear policy on the layer input only (the control)",
        ),
    )

    def beta(self, k: int) -> float:
        return 1.0 if k == 0 else self.beta_start * self.beta_decay ** (k - 1)


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def run_stdp_phase(
    policy: HRSNNPolicy, data: EpisodeDataset, epochs: int, batch_episodes: int
) -> dict[str, float]:
    """Unsupervised: STDP shapes the recurrent weights on the recorded event streams."""
    w0 = policy.hrsnn.w_rec.detach().clone()
    policy.set_plasticity(True)
    start, steps = time.perf_counter(), 0
    try:
        for _ in range(epochs):
            for idx in _batches(len(data), batch_episodes):
                batch = data.collate(idx)
                x = policy.features(batch["events"].float(), batch["proprio"])
                policy.hrsnn(x)
                steps += x.shape[0]
    finally:
        policy.set_plasticity(False)
    dw = (policy.hrsnn.w_rec.detach() - w0)[policy.hrsnn.rec_mask]
    return {
        "stdp_wall_s": time.perf_counter() - start,
        "stdp_layer_steps": float(steps),
        "stdp_mean_abs_dw": float(dw.abs().mean()) if dw.numel() else 0.0,
    }


@torch.no_grad()
def episode_features(
    policy: HRSNNPolicy, data: EpisodeDataset, batch_episodes: int = 16
) -> list[tuple[Tensor, Tensor]]:
    """Per episode: (readout inputs ``[T, F]``, expert actions ``[T, A]``), weights frozen."""
    out = []
    for idx in _batches(len(data), batch_episodes):
        batch = data.collate(idx)
        feats, _ = policy.readout_features(batch["events"].float(), batch["proprio"])
        for j in range(len(idx)):
            valid = batch["mask"][:, j] > 0
            out.append((feats[valid, j].double(), batch["expert"][valid, j].double()))
    return out


def _fit(feats: Sequence[tuple[Tensor, Tensor]], l2: float) -> RidgeReadout:
    x = torch.cat([f for f, _ in feats])
    y = torch.cat([a for _, a in feats]).clamp(-ACTION_CLIP, ACTION_CLIP)
    return RidgeReadout.fit(x, torch.atanh(y), l2)


def fit_readout(
    policy: HRSNNPolicy, feats: Sequence[tuple[Tensor, Tensor]], l2: float, kind: str = "hrsnn"
) -> dict[str, float]:
    """Ridge readout (pre-``tanh``) on the features; ``l2 = 0`` picks it on held-out episodes
    (every 4th; the last of fewer than 4; a single episode gets ``l2 = 1``).

    ``kind="input"`` fits on the layer input only (HRSNN columns stay zero): a linear policy.
    """
    n = policy.hrsnn.hidden_size
    cols = slice(n, None) if kind == "input" else slice(None)
    if kind == "input" and not policy.cfg.hrsnn.readout_skip:
        raise ValueError("readout 'input' needs hrsnn.readout_skip: true")
    feats = [(f[:, cols], a) for f, a in feats]
    info: dict[str, float] = {}
    if l2 <= 0 and len(feats) < 2:
        l2 = 1.0  # nothing to hold out: a middle-of-the-grid penalty
    if l2 <= 0:
        # every 4th episode held out (the last one when there are fewer than 4)
        held_idx = set(range(3, len(feats), 4)) or {len(feats) - 1}
        held = [f for i, f in enumerate(feats) if i in held_idx]
        train = [f for i, f in enumerate(feats) if i not in held_idx]
        errors = {}
        for lam in L2_GRID:
            r = _fit(train, lam)
            pred = torch.tanh(r.predict(torch.cat([f for f, _ in held])))
            errors[lam] = float(((pred - torch.cat([a for _, a in held])) ** 2).mean())
        l2 = min(errors, key=errors.get)
        info["heldout_mse"] = errors[l2]
    readout = _fit(feats, l2)
    weight = (readout.weight / readout.std[:, None]).t()  # fold the standardization in
    bias = readout.bias - (readout.mean / readout.std) @ readout.weight
    full = torch.zeros_like(policy.readout.weight, dtype=torch.float64)
    full[:, cols] = weight
    policy.readout.weight.copy_(full)
    policy.readout.bias.copy_(bias)
    x = torch.cat([f for f, _ in feats])
    a = torch.cat([a for _, a in feats])
    info.update(l2=l2, train_mse=float(((torch.tanh(readout.predict(x)) - a) ** 2).mean()))
    return info


def train_hrsnn_policy(
    cfg: HRSNNPolicyTrainConfig,
    out: str | Path,
    log: Callable[[str], None] | None = print,
) -> tuple[HRSNNPolicy, dict[str, Any]]:
    """BC + STDP phase + ridge readout, then DAgger rounds refitting the readout; saves ``out``."""
    log = log or (lambda _msg: None)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()
    envs = make_envs(cfg.env)
    try:
        pcfg = config_from_env(
            envs.envs[0],
            encoder="pool",
            encoder_grid=cfg.encoder_grid,
            spiking_ratio=1.0,
            core="hrsnn",
            hrsnn=dataclasses.replace(cfg.hrsnn, seed=cfg.hrsnn.seed + cfg.seed),
        )
        policy = HRSNNPolicy(pcfg).eval()
        n = envs.num_envs
        data = EpisodeDataset()
        history: list[dict[str, Any]] = []
        offset = 0
        for k in range(cfg.dagger_iterations + 1):
            count = round_up(cfg.bc_episodes if k == 0 else cfg.dagger_episodes, n)
            seeds = episode_seeds(cfg.seed, offset, count)
            offset += count
            t0 = time.perf_counter()
            eps, metrics = collect_episodes(
                envs, None if k == 0 else policy, seeds, beta=cfg.beta(k), rng=rng
            )
            data.add(eps)
            row: dict[str, Any] = {
                "round": k,
                "beta": cfg.beta(k),
                "episodes": len(data),
                "collect_score": float(np.mean([m["normalized_score"] for m in metrics])),
                "collect_s": time.perf_counter() - t0,
            }
            if k == 0:
                mean, std = data.proprio_stats()
                policy.set_normalization(mean, std)
                if policy.hrsnn.stdp_rec is not None and cfg.stdp_epochs > 0:
                    row.update(
                        run_stdp_phase(policy, data, cfg.stdp_epochs, cfg.stdp_batch_episodes)
                    )
            t0 = time.perf_counter()
            row.update(fit_readout(policy, episode_features(policy, data), cfg.l2, cfg.readout))
            row["fit_s"] = time.perf_counter() - t0
            history.append(row)
            log(
                f"round {k}: beta {row['beta']:.3f}, {len(data)} episodes, "
                f"collected score {row['collect_score']:.3f}, ridge l2 {row['l2']:g}, "
                f"train mse {row['train_mse']:.4f}"
                + (f", STDP {row['stdp_wall_s']:.1f} s" if "stdp_wall_s" in row else "")
            )
    finally:
        envs.close()
    meta = {
        "env": to_mapping(cfg.env),
        "train": to_mapping(cfg),
        "history": history,
        "train_s": time.perf_counter() - t_start,
        "task": cfg.env.env_id,
    }
    if out:
        save_policy(out, policy, extra=meta)
    return policy, meta


# ---- hyperparameter search (Optuna) ------------------------------------------------------------
#: Validation worlds of the search: disjoint from training (< 10⁹) and evaluation (≥ 2·10⁹).
SEARCH_SEED_BASE = 1_500_000_000


def suggest_core(trial, base: HRSNNCoreConfig) -> HRSNNCoreConfig:
    """Optuna search space: heterogeneity distributions (means, spreads) and scales."""
    return dataclasses.replace(
        base,
        tau_mem_mean=trial.suggest_float("tau_mem_mean", 1.0, 20.0, log=True),
        tau_mem_cv=trial.suggest_float("tau_mem_cv", 0.0, 1.5),
        tau_thr_mean=trial.suggest_float("tau_thr_mean", 5.0, 200.0, log=True),
        tau_thr_cv=trial.suggest_float("tau_thr_cv", 0.0, 1.5),
        input_scale=trial.suggest_float("input_scale", 3.0, 30.0, log=True),
        recurrent_scale=trial.suggest_float("recurrent_scale", 0.3, 3.0, log=True),
        trace_decay=trial.suggest_float("trace_decay", 0.5, 0.95),
    )


def search_core(
    cfg: HRSNNPolicyTrainConfig,
    n_trials: int,
    episodes: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
):
    """Optuna TPE over :func:`suggest_core`, maximizing the closed-loop score on validation
    worlds (``SEARCH_SEED_BASE`` up); returns the ``optuna.Study``."""
    import optuna

    def objective(trial) -> float:
        trial_cfg = dataclasses.replace(cfg, hrsnn=suggest_core(trial, cfg.hrsnn))
        policy, meta = train_hrsnn_policy(trial_cfg, "", log=None)
        envs = make_envs(cfg.env, min(cfg.env.num_envs, episodes))
        try:
            seeds = [SEARCH_SEED_BASE + i for i in range(round_up(episodes, envs.num_envs))]
            _, metrics = collect_episodes(envs, policy, seeds, beta=0.0, record=False)
        finally:
            envs.close()
        score = summarize_episodes(metrics[:episodes])["score"]
        trial.set_user_attr("train_s", meta["train_s"])
        if log:
            log(f"trial {trial.number}: score {score:.3f} {trial.params}")
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return study

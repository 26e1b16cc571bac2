r"""A control policy whose core is an HRSNN: no backprop anywhere, so it can keep learning.

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
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_snn_control.config import param, to_mapping
from hybrid_snn_control.hybrid.efficiency import AC_ENERGY_PJ, MAC_ENERGY_PJ, EfficiencyReport
from hybrid_snn_control.hybrid.network import check_ratio
from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig, HRSNNState
from hybrid_snn_control.neurons.stdp import STDPConfig
from hybrid_snn_control.training.evaluate import round_up, summarize_episodes
from hybrid_snn_control.training.hrsnn import RidgeReadout
from hybrid_snn_control.training.imitation import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    episode_seeds,
    make_envs,
)
from hybrid_snn_control.training.policy import (
    HRSNNCoreConfig,
    PolicyConfig,
    PolicyInput,
    config_from_env,
    save_policy,
)

__all__ = [
    "HRSNNPolicy",
    "HRSNNPolicyState",
    "HRSNNPolicyTrainConfig",
    "layer_config",
    "train_hrsnn_policy",
]

#: Expert actions are clipped to this before ``atanh`` (the readout is fitted pre-tanh).
ACTION_CLIP = 0.95
L2_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


def layer_config(h: HRSNNCoreConfig, input_size: int) -> HRSNNConfig:
    """The :class:`HRSNNConfig` a policy's ``hrsnn`` section describes."""
    stdp = None
    if h.stdp:
        stdp = STDPConfig(
            eta_plus=Distribution("gamma", h.stdp_eta, 0.5),
            eta_minus=Distribution("gamma", 1.05 * h.stdp_eta, 0.5),
            normalize=h.stdp_normalize,
        )
        if not h.stdp_heterogeneous:
            stdp = stdp.homogeneous()
    return HRSNNConfig(
        input_size=input_size,
        num_neurons=h.num_neurons,
        excitatory_fraction=h.excitatory_fraction,
        connection_prob=h.connection_prob,
        input_connection_prob=h.input_connection_prob,
        input_scale=h.input_scale,
        recurrent_scale=h.recurrent_scale,
        tau_mem_steps=Distribution("gamma", h.tau_mem_mean, h.tau_mem_cv),
        tau_thr_steps=Distribution("gamma", h.tau_thr_mean, h.tau_thr_cv),
        threshold_adaptation=h.threshold_adaptation,
        stdp=stdp,
        seed=h.seed,
    )


class HRSNNPolicyState(NamedTuple):
    layer: HRSNNState  # the HRSNN's state (membranes, spikes, adaptation, STDP traces)
    trace: Tensor  # readout spike trace r_t [B, N]


class HRSNNPolicy(PolicyInput):
    """Pooled events + proprioception → HRSNN → ridge readout on spike traces → ``tanh``.

    Same interface as :class:`~.policy.HybridPolicy` (``step``/``forward`` with explicit
    state, ``initial_state``, ``measure_efficiency``, ``save_policy``/``load_policy``), so
    evaluation, sweeps and the policy node run it unchanged.
    """

    #: An HRSNN core is all spiking: the ratio cannot be changed.
    fixed_ratio: float | None = 1.0

    def __init__(self, cfg: PolicyConfig) -> None:
        if cfg.core != "hrsnn":
            raise ValueError(f"HRSNNPolicy needs core 'hrsnn', got {cfg.core!r}")
        super().__init__(cfg)
        self.input_size = self.encoder.out_features + cfg.proprio_size
        self.hrsnn = HRSNN(layer_config(cfg.hrsnn, self.input_size))
        width = cfg.hrsnn.num_neurons + (self.input_size if cfg.hrsnn.readout_skip else 0)
        self.readout = nn.Linear(width, cfg.action_size)
        nn.init.zeros_(self.readout.weight)  # untrained: zero action
        nn.init.zeros_(self.readout.bias)
        for p in self.parameters():  # trained by STDP and least squares, never by autograd
            p.requires_grad_(False)

    # ---- ratio, plasticity, state ------------------------------------------------------------
    @property
    def spiking_ratio(self) -> float:
        return 1.0

    def set_ratio(self, r: float) -> None:
        if check_ratio(r) != 1.0:
            raise ValueError(
                f"this policy's core is an HRSNN (all spiking): spiking_ratio is fixed at 1, "
                f"got {r}"
            )

    @property
    def plasticity(self) -> bool:
        return self.hrsnn.plasticity

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        """Online STDP on the recurrent synapses from the next step on (readout fixed).

        ``rate`` scales the STDP learning rates (None: keep the current scale, 1 at start).
        """
        if on and self.hrsnn.stdp_rec is None:
            raise ValueError("this policy's HRSNN was built without STDP (hrsnn.stdp: false)")
        if rate is not None:
            if not (math.isfinite(rate) and rate >= 0):
                raise ValueError(f"plasticity rate must be a finite number >= 0, got {rate}")
            self.hrsnn.plasticity_rate = float(rate)
        self.hrsnn.plasticity = bool(on)

    def weight_norms(self) -> dict[str, float]:
        return self.hrsnn.weight_norms()

    def initial_state(self, batch_size: int, device=None, dtype=None) -> HRSNNPolicyState:
        layer = self.hrsnn.initial_state(batch_size, device, dtype)
        return HRSNNPolicyState(layer, torch.zeros_like(layer.v))

    def reset_state(self, state: HRSNNPolicyState, done: Tensor) -> HRSNNPolicyState:
        """Zero the state of the batch rows where ``done``."""
        keep = (~done.bool()).to(state.trace.dtype)[:, None]
        return _map_state(state, lambda t: t * keep if t.numel() else t)

    def flatten_state(self, state: HRSNNPolicyState) -> list[Tensor]:
        layer = state.layer
        return [layer.v, layer.z, layer.a, *layer.rec_traces, *layer.in_traces, state.trace]

    # ---- inference ---------------------------------------------------------------------------
    def readout_input(self, trace: Tensor, x: Tensor) -> Tensor:
        return torch.cat([trace, x], dim=-1) if self.cfg.hrsnn.readout_skip else trace

    def _step(self, x: Tensor, state: HRSNNPolicyState | None):
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        z, layer = self.hrsnn.step(x, state.layer)
        trace = self.cfg.hrsnn.trace_decay * state.trace + z
        out = torch.tanh(self.readout(self.readout_input(trace, x)))
        return out, HRSNNPolicyState(layer, trace), z

    def step(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HRSNNPolicyState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HRSNNPolicyState]:
        """One control step: ``events [B, C, H, W]``, ``proprio [B, P]`` → ``action [B, A]``."""
        if masks is not None:
            raise ValueError("an HRSNN core has no unit masks")
        with torch.no_grad():
            out, state, _ = self._step(self.features(events, proprio), state)
        return out, state

    def forward(
        self,
        events: Tensor,
        proprio: Tensor,
        state: HRSNNPolicyState | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, HRSNNPolicyState]:
        """A sequence ``[T, B, …]`` → ``[T, B, A]``: exactly a loop of :meth:`step`."""
        outs = []
        for t in range(events.shape[0]):
            out, state = self.step(events[t], proprio[t], state, masks)
            outs.append(out)
        return torch.stack(outs), state

    @torch.no_grad()
    def readout_features(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(readout inputs [T, B, F], spikes [T, B, N])`` of a sequence (weights as they are)."""
        x = self.features(events, proprio)
        z_seq, _ = self.hrsnn(x, None if state is None else state.layer)
        trace = torch.zeros_like(z_seq[0]) if state is None else state.trace
        traces = []
        for z in z_seq:
            trace = self.cfg.hrsnn.trace_decay * trace + z
            traces.append(trace)
        return self.readout_input(torch.stack(traces), x), z_seq

    # ---- cost (DESIGN §9) --------------------------------------------------------------------
    def _report(self, x: Tensor, z: Tensor) -> EfficiencyReport:
        """Cost per step and sample of inputs ``x [..., F]`` and spikes ``z [..., N]``.

        The layer input is analog (pooled log counts, proprioception): each nonzero input
        × its fan-out is a MAC; each spike × its fan-out an accumulate (SynOp); the
        readout is dense MACs.
        """
        steps = x.reshape(-1, x.shape[-1]).shape[0]
        fan_in = self.hrsnn.fan_out_in.to(x.dtype)
        fan_rec = self.hrsnn.fan_out_rec.to(z.dtype)
        in_macs = float(((x != 0).to(x.dtype) * fan_in).sum()) / steps
        synops = float((z * fan_rec).sum()) / steps
        macs = in_macs + self.readout.in_features * self.readout.out_features
        spikes = float(z.sum()) / steps
        return EfficiencyReport(
            steps=x.shape[0] if x.dim() == 3 else 1,
            batch_size=x.shape[-2],
            spiking_ratio=1.0,
            macs_per_step=macs + self.encoder.macs,
            synops_per_step=synops,
            energy_pj_per_step=(macs + self.encoder.macs) * MAC_ENERGY_PJ + synops * AC_ENERGY_PJ,
            firing_rate=[spikes / self.hrsnn.hidden_size],
            spikes_per_step=[spikes],
            active_spiking=[self.hrsnn.hidden_size],
            active_recurrent=[0],
        )

    @torch.no_grad()
    def step_with_efficiency(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> tuple[Tensor, HRSNNPolicyState, EfficiencyReport]:
        """:meth:`step` plus the cost of that very step."""
        x = self.features(events, proprio)
        out, state, z = self._step(x, state)
        return out, state, self._report(x, z)

    @torch.no_grad()
    def measure_efficiency(
        self, events: Tensor, proprio: Tensor, state: HRSNNPolicyState | None = None
    ) -> EfficiencyReport:
        """Cost per step of a run over ``events [T, B, C, H, W]`` (weights frozen)."""
        previous = self.hrsnn.plasticity
        self.hrsnn.plasticity = False
        try:
            x = self.features(events, proprio)
            z_seq, _ = self.hrsnn(x, None if state is None else state.layer)
        finally:
            self.hrsnn.plasticity = previous
        return self._report(x, z_seq)


def _map_state(state: HRSNNPolicyState, fn: Callable[[Tensor], Tensor]) -> HRSNNPolicyState:
    layer = state.layer
    return HRSNNPolicyState(
        type(layer)(
            fn(layer.v),
            fn(layer.z),
            fn(layer.a),
            type(layer.rec_traces)(*(fn(t) for t in layer.rec_traces)),
            type(layer.in_traces)(*(fn(t) for t in layer.in_traces)),
        ),
        fn(state.trace),
    )


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

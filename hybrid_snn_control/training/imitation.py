r"""Imitation in the randomized sim: behavior cloning, then DAgger with the privileged expert.

The story (Ross, Gordon & Bagnell 2011), read top to bottom in :meth:`ImitationTask.train`:

1. **BC** — the expert drives (:math:`\beta_0 = 1`) ``bc_episodes`` episodes in worlds drawn
   from the randomization ranges; every visited step is stored with the expert's action.
2. **DAgger** collection :math:`k = 1 … K` — per env and step the executed action is the
   expert's with probability :math:`\beta_k = \beta_1 d^{\,k-1}` and the student's
   otherwise; the expert *labels every visited state*; the episodes join the aggregate
   :math:`\mathcal D \leftarrow \mathcal D \cup \mathcal D_k`.
3. Between collections the student trains on :math:`\mathcal D`. One step of the run is
   one batch of whole episodes, walked in windows of ``chunk_steps`` (truncated BPTT with
   surrogate gradients; one Adam update per window; the state is carried, detached,
   into the next window):

   .. math::
       \mathcal L = \frac{1}{|M|} \sum_{(t, b) \in M}
           \ell\big(\pi_\theta(o_{\le t}^{b}),\, a^{*}_{t,b}\big),
       \qquad \ell \in \{\text{MSE}, \text{Huber}, L_1\}

   with :math:`M` the valid (unpadded) steps.

The run's ``total_steps`` are split evenly over the ``1 + K`` collections (a later call
on existing data — HSTNN restoration — runs ``restore_iterations`` DAgger rounds). The unit set
is whatever the caller configured on the policy's core (HSTNN contract, :mod:`.task`):
redundant (adaptation), a fixed ratio, or **ratio sampling** — a ratio is drawn per batch
(and per rollout group for the student), so one set of weights serves every ratio.

Reproducible and resumable: worlds are seeded from ``(seed, stage directory name, round,
episode)`` (:func:`~.rollout.episode_seeds`, below 10⁹; evaluation worlds start at 2·10⁹),
the β coin flips and student ratio draws from ``(seed, round)``, batches and per-batch
ratio draws by :class:`~.loop.TrainRun` per step; each
collection is written to ``run_dir/dagger_k.npz`` before it is trained on, so a killed
run resumes to the same weights.  Settings: :class:`ImitationConfig` (section
``hsc_imitation`` of ``config/train.yaml``).  Envs, rollouts and the episode data set are
:mod:`.rollout`'s (evaluation shares them).

Usage::

    task = load_task("train")                       # section hsc_imitation of config/train.yaml
    policy = task.build_model()
    task.configure(policy, "sampling")             # or let hstnn.pipeline(task, ...) do it
    task.train(policy, TrainRun("runs/pursuit", total_steps=200, lr=3e-3))
    task.evaluate(policy, ratio=0.5, shift="dim", episodes=8)
"""

from __future__ import annotations

import dataclasses
import math
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_snn_control.config import from_mapping, load_node_params, param
from hybrid_snn_control.paths import config_file
from hybrid_snn_control.policy.config import PolicyConfig
from hybrid_snn_control.policy.hybrid_policy import HybridPolicy
from hybrid_snn_control.training.evaluate import evaluate_policy
from hybrid_snn_control.training.hstnn_config import HSTNNConfig
from hybrid_snn_control.training.loop import TrainRun
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    episode_seeds,
    make_envs,
)

__all__ = [
    "ImitationConfig",
    "ImitationTask",
    "PolicySettings",
    "action_loss",
    "load_task",
    "lost_target_labels",
    "tbptt_pass",
]


# ---- hyperparameters ---------------------------------------------------------------------------
@dataclass
class PolicySettings:
    """The student's architecture (a subset of :class:`PolicyConfig`; shapes come from the env)."""

    hidden_size: int = field(default=64, metadata=param(range=(1, 4096)))
    num_layers: int = field(default=2, metadata=param(range=(1, 16)))
    spiking_cell: Literal["lif", "alif", "stc_lif", "stc_alif", "rf"] = "lif"
    recurrent_cell: Literal["lstm", "gru", "rnn"] = "lstm"
    encoder: Literal["conv", "pool", "spiking_conv"] = "conv"
    encoder_channels: list[int] = field(default_factory=lambda: [8, 16])
    encoder_grid: int = field(default=3, metadata=param(range=(1, 64)))
    encoder_keypoints: bool = False
    encoder_decay: float = field(default=0.6, metadata=param(range=(0.0, 0.999)))
    encoder_threshold: float = field(default=0.5, metadata=param(range=(1e-3, 100.0)))
    event_floor: Literal["none", "mean", "quantile"] = "none"
    event_floor_quantile: float = field(default=0.97, metadata=param(range=(0.5, 0.9999)))


@dataclass
class ImitationConfig:
    """BC + DAgger hyperparameters (section ``hsc_imitation`` of ``config/train.yaml``)."""

    seed: int = 0
    env: EnvSettings = field(default_factory=EnvSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    # data collection
    bc_episodes: int = field(default=16, metadata=param(range=(1, 100_000)))
    dagger_iterations: int = field(default=3, metadata=param(range=(0, 1000)))
    dagger_episodes: int = field(
        default=8, metadata=param(range=(1, 100_000), description="episodes per DAgger round")
    )
    beta_start: float = field(
        default=0.5, metadata=param(range=(0.0, 1.0), description="β of DAgger round 1")
    )
    beta_decay: float = field(
        default=0.5, metadata=param(range=(0.0, 1.0), description="β_k = β_1 · decay^(k-1)")
    )
    # optimization
    batch_episodes: int = field(default=8, metadata=param(range=(1, 4096)))
    chunk_steps: int = field(
        default=50, metadata=param(range=(1, 100_000), description="truncated-BPTT window")
    )
    weight_decay: float = field(default=0.0, metadata=param(range=(0.0, 1.0)))
    grad_clip: float = field(default=1.0, metadata=param(range=(0.0, 1e6)))
    loss: Literal["mse", "huber", "l1"] = "mse"
    action_noise: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1.0),
            description="DART: std of the noise on the expert's executed action in collection "
            "(labels stay clean)",
        ),
    )
    disturbance: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1.0),
            description="collection: stationary std of a slow (Ornstein-Uhlenbeck) push on "
            "every executed action, expert's or student's (labels stay clean): recovery "
            "states with the target near the edge of the view or out of it; 0: off",
        ),
    )
    disturbance_tau_s: float = field(
        default=0.5,
        metadata=param(range=(0.01, 60.0), description="correlation time of the push, seconds"),
    )
    sandwich: bool = field(
        default=False,
        metadata=param(
            description="with ratio sampling: every batch also trains the smallest and largest "
            "ratio (gradients summed, one update)"
        ),
    )
    sandwich_top_weight: float = field(
        default=1.0,
        metadata=param(
            range=(0.0, 100.0),
            description="with sandwich: weight of the largest ratio's (the all-spiking "
            "end's) action loss in each batch's objective; 1: equal to the others",
        ),
    )
    distill_weight: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1.0),
            description="with sandwich: in-place distillation (slimmable networks) — every "
            "other ratio of a batch learns (1-w) x the expert's action + w x the r = 0 "
            "network's own (detached) action; 0: off",
        ),
    )
    aux_weight: float = field(
        default=0.0,
        metadata=param(
            range=(0.0, 1e3),
            description="weight of the training-only auxiliary heads that predict the env's "
            "privileged state (target bearing, distance, in view) from the core's features; "
            "0: none",
        ),
    )
    lost_target_weight: float = field(
        default=1.0,
        metadata=param(
            range=(0.0, 1e3),
            description="weight of the action loss on steps where the target is out of view "
            "(privileged in_view = 0; training only): those steps are ~1 % of the data but "
            "lose the episode; 1: plain mean",
        ),
    )
    lost_target_label: Literal["expert", "last_seen"] = field(
        default="expert",
        metadata=param(
            description="turn label while the target is out of view: the expert's (towards "
            "where the target is now, which the events cannot show) or last_seen (the "
            "expert's turn rate towards the side where the target was last in view, which "
            "the student's memory can know)"
        ),
    )
    restore_iterations: int = field(
        default=1,
        metadata=param(
            range=(0, 1000),
            description="DAgger rounds of a train call that "
            "continues on existing data (HSTNN restoration)",
        ),
    )
    # the HSTNN stages on this task (adapt -> select -> restore; baselines)
    hstnn: HSTNNConfig = field(
        default_factory=lambda: HSTNNConfig(
            out_dir="runs/pursuit",
            adapt_steps=150,
            restore_steps=100,
            select_batches=2,
            select_probes=32,
            checkpoint_every=25,
        )
    )
    eval_episodes: int = field(default=8, metadata=param(range=(1, 100_000)))

    def beta(self, k: int) -> float:
        """Probability that the expert acts in collection ``k`` (0 = BC)."""
        return 1.0 if k == 0 else self.beta_start * self.beta_decay ** (k - 1)


# ---- loss ----------------------------------------------------------------------------------------
def step_losses(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """The action loss of every step, ``[T, B]`` (mean over the action's components)."""
    if kind == "mse":
        return (pred - target).pow(2).mean(-1)
    if kind == "huber":
        return nn.functional.huber_loss(pred, target, reduction="none", delta=0.2).mean(-1)
    if kind == "l1":
        return (pred - target).abs().mean(-1)
    raise ValueError(f"loss must be 'mse', 'huber' or 'l1', got {kind!r}")


def weighted_mean(per: Tensor, weight: Tensor) -> Tensor:
    """``per`` averaged with per-step weights (a 0/1 mask: the mean over the valid steps)."""
    return (per * weight).sum() / weight.sum().clamp_min(1.0)


def action_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "mse") -> Tensor:
    """Mean per-step action loss over the valid steps (``mask [T, B]``)."""
    return weighted_mean(step_losses(pred, target, kind), mask)


def lost_target_labels(
    batch: dict[str, Tensor], names: Sequence[str], weight: float, label: str
) -> dict[str, Tensor]:
    """The batch with per-step loss weights (``weight``) and, with ``label="last_seen"``,
    turn labels for the steps where the target is out of view.

    Uses the privileged columns ``in_view`` and ``bearing_half_fov`` (training labels only;
    the deployed step never sees them). ``last_seen`` keeps the expert's turn rate but
    points it to the side of the last in-view bearing of the same episode (forward-filled
    over time, vectorized); steps before the first sighting keep the expert's label.
    Action column 1 is the turn rate (the rover's ``[speed, turn]``).
    """
    if weight == 1.0 and label == "expert":
        return batch
    if "privileged" not in batch or not {"in_view", "bearing_half_fov"} <= set(names):
        raise ValueError("lost_target_* needs the env's privileged in_view and bearing columns")
    if label not in ("expert", "last_seen"):
        raise ValueError(f"lost_target_label must be 'expert' or 'last_seen', got {label!r}")
    priv = batch["privileged"]
    in_view = priv[..., names.index("in_view")] > 0.5
    lost = ~in_view & (batch["mask"] > 0)
    out = dict(batch)
    out["weight"] = batch["mask"] * torch.where(lost, weight, 1.0).to(batch["mask"].dtype)
    if label == "last_seen":
        t = torch.arange(priv.shape[0], device=priv.device).unsqueeze(1).expand_as(in_view)
        last = torch.where(in_view, t, -1).cummax(0).values
        seen = priv[..., names.index("bearing_half_fov")].gather(0, last.clamp_min(0))
        expert = batch["expert"].clone()
        turn = expert[..., 1]
        side = torch.where(seen >= 0, 1.0, -1.0).to(turn.dtype)
        expert[..., 1] = torch.where(lost & (last >= 0), side * turn.abs(), turn)
        out["expert"] = expert
    return out


class StudentWithAux(nn.Module):
    """A policy plus training-only auxiliary heads on its core's features.

    The heads predict the env's privileged state (``privileged_state()``: target bearing,
    distance error, in view) from the readout input of every step, which pushes the
    encoder and core to represent where the target is.  They live here, beside the
    policy: ``policy`` is what is saved, exported and deployed, without them.
    """

    def __init__(self, policy: HybridPolicy, num_privileged: int) -> None:
        super().__init__()
        self.policy = policy
        self.aux = nn.Linear(policy.core.feature_size, num_privileged)

    @property
    def core(self) -> nn.Module:
        return self.policy.core

    def forward(self, events, proprio, state=None, masks=None):
        actions, state, feats = self.policy.forward_with_features(events, proprio, state, masks)
        return actions, state, self.aux(feats)


def tbptt_pass(
    policy: nn.Module,
    batch: dict[str, Tensor],
    cfg: ImitationConfig,
    masks: Sequence[Tensor] | Sequence[Sequence[Tensor]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> float:
    """Walk a padded episode batch in ``chunk_steps`` windows; the step-weighted mean loss.

    With an optimizer: one update per window (truncated BPTT, state carried detached).
    Without: evaluation only (call under ``torch.no_grad()``).  A
    :class:`StudentWithAux` adds ``aux_weight`` × the MSE of its privileged-state
    predictions to the loss that is optimized (the returned loss is the action loss).
    ``masks`` may be a list of mask sets (several ratios of one batch, each with its own
    state): their losses are summed into one update per window and averaged in the result.
    With ``distill_weight`` w > 0 the first set (the sandwich's smallest ratio, r = 0) is
    the teacher: the others learn ``(1 − w)·L(expert) + w·L(teacher's detached action)``
    (in-place distillation, Yu & Huang 2019); the reported loss stays the expert loss.
    With ``sandwich`` the last set (the largest ratio) counts ``sandwich_top_weight`` times.
    """
    core = policy.module.core if hasattr(policy, "module") else policy.core
    mask_sets = list(masks) if masks is not None and not torch.is_tensor(masks[0]) else [masks]
    states: list[Any] = [None] * len(mask_sets)
    total, weight = 0.0, 0.0
    for t0 in range(0, batch["expert"].shape[0], cfg.chunk_steps):
        w = slice(t0, t0 + cfg.chunk_steps)
        m = batch["mask"][w]
        loss, objective, teacher = 0.0, 0.0, None
        for i, ms in enumerate(mask_sets):
            pred, states[i], *aux = policy(
                batch["events"][w].float(), batch["proprio"][w], states[i], ms
            )
            per = step_losses(pred, batch["expert"][w], cfg.loss)
            part = weighted_mean(per, m)
            loss = loss + part / len(mask_sets)
            if "weight" in batch:  # lost-target weighting: optimized, not reported
                part = weighted_mean(per, batch["weight"][w])
            if cfg.sandwich and len(mask_sets) > 1 and i == len(mask_sets) - 1:  # largest r
                part = cfg.sandwich_top_weight * part
            if teacher is None:  # mask set 0: the smallest ratio, the teacher
                teacher = pred.detach()
                objective = objective + part
            else:
                d = cfg.distill_weight
                own = action_loss(pred, teacher, m, cfg.loss) if d > 0 else 0.0
                objective = objective + (1.0 - d) * part + d * own
            if aux and cfg.aux_weight > 0:
                aux_loss = action_loss(aux[0], batch["privileged"][w], m)
                objective = objective + cfg.aux_weight * aux_loss
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            optimizer.step()
        states = [core.detach_state(st) for st in states]
        n = float(m.sum())
        total, weight = total + float(loss.detach()) * n, weight + n
    return total / max(weight, 1.0)


# ---- the task ------------------------------------------------------------------------------------
class ImitationTask:
    """BC + DAgger on a sim env, as a :class:`~.task.Task` for the HSTNN stages.

    ``data`` (the aggregate) persists across ``train`` calls in one process, so the
    selection and restoration stages see the adaptation stage's episodes.
    """

    def __init__(self, cfg: ImitationConfig | None = None) -> None:
        self.cfg = cfg or ImitationConfig()
        self.name = self.cfg.env.env_id.split("/")[-1].split("-")[0].lower()  # "pursuit"
        self.data = EpisodeDataset()
        self.history: list[dict[str, Any]] = []
        self._spaces: tuple[Any, Any] | None = None
        self._aux: StudentWithAux | None = None

    # -- model
    def policy_config(self) -> PolicyConfig:
        if self._spaces is None:
            envs = make_envs(self.cfg.env, num_envs=1)
            self._spaces = (envs.single_observation_space, envs.single_action_space)
            envs.close()
        obs_space, act_space = self._spaces
        return PolicyConfig(
            event_shape=list(obs_space["events"].shape),
            proprio_size=int(obs_space["proprio"].shape[0]),
            action_size=int(act_space.shape[0]),
            spiking_ratio=self.cfg.hstnn.ratio,
            **dataclasses.asdict(self.cfg.policy),
        )

    def build_model(self) -> HybridPolicy:
        return HybridPolicy(self.policy_config())

    def configure(self, policy: HybridPolicy, mode: str) -> None:
        """Set the unit set to train (the HSTNN stages do this themselves).

        ``"sampling"``: ratio sampling over ``hstnn.restore_ratios`` (one set of weights),
        ``"fixed"``: ``hstnn.ratio``, ``"redundant"``: all 2N units.
        """
        core, h = policy.core, self.cfg.hstnn
        core.ratio_sampling, core.ratio_choices = False, None
        if mode == "redundant":
            core.set_redundant()
        elif mode == "fixed":
            core.set_ratio(h.ratio)
        elif mode == "sampling":
            core.set_ratio(h.ratio)
            core.ratio_sampling = True
            core.ratio_choices = tuple(h.restore_ratios) or None
        else:
            raise ValueError(f"mode must be 'sampling', 'fixed' or 'redundant', got {mode!r}")

    # -- the training loop
    def train(self, model: nn.Module, run: TrainRun) -> dict[str, Any]:
        """BC, then DAgger rounds, training on the aggregate in between (module docstring)."""
        cfg, policy = self.cfg, model
        core = policy.core
        envs = make_envs(cfg.env, train=True)
        names = tuple(envs.get_attr("privileged_names")[0])
        trained = self._student(policy, names).to(run.device)
        optimizer = torch.optim.Adam(trained.parameters(), lr=run.lr, weight_decay=cfg.weight_decay)
        run.resume(trained, optimizer)
        net = run.wrap(trained)
        first_bc = len(self.data) == 0
        n_collect = cfg.dagger_iterations + 1 if first_bc else cfg.restore_iterations
        per_collect = max(run.total_steps // max(n_collect, 1), 1)
        base = EpisodeDataset(self.data.episodes)  # data of earlier train calls
        rounds = {  # rounds a killed (or finished) run of this stage already collected
            j: EpisodeDataset.load(run.run_dir / f"dagger_{j:03d}.npz")
            for j in range(n_collect)
            if (run.run_dir / f"dagger_{j:03d}.npz").exists()
        }
        loss = float("nan")
        policy.train()
        for step in run.steps():
            k = max(min(step // per_collect, n_collect - 1), 0)
            for j in range(min(k + 1, n_collect)):  # round k is collected at its first step
                if j not in rounds:
                    rounds[j] = self._collect(policy, envs, run, j, first_bc)
            data = EpisodeDataset(
                base.episodes + [e for j in sorted(rounds) for e in rounds[j].episodes]
            )
            if policy.proprio_std.eq(1).all():  # an untrained student: fit on the first data
                policy.set_normalization(*data.proprio_stats())
            idx = run.batch_indices(
                len(data), min(cfg.batch_episodes, len(data)), step - k * per_collect
            )
            masks = None
            if core.ratio_sampling and core.spiking_ratio is not None:
                masks = [core.masks_for_ratio(r) for r in self._batch_ratios(core)]
            batch = lost_target_labels(
                data.collate(idx, run.device), names, cfg.lost_target_weight, cfg.lost_target_label
            )
            loss = tbptt_pass(net, batch, cfg, masks, optimizer)
            run.log(loss=loss, beta=self._beta(k, first_bc), episodes=len(data))
        run.close()
        envs.close()
        for j in sorted(rounds):
            self.data.add(rounds[j].episodes)
        return {"final_loss": loss, "steps": run.step, "episodes": len(self.data)}

    def _batch_ratios(self, core: nn.Module) -> list[float]:
        """The ratios one batch trains: one sampled ratio, or with ``sandwich`` also the
        smallest and largest of the choices (the slimmable networks' sandwich rule: the
        pure ends, which share the fewest units with the rest, get a gradient every step)."""
        r = core.sample_ratio()
        if not self.cfg.sandwich:
            return [r]
        choices = core.ratio_choices or (0.0, 1.0)
        return sorted({min(choices), max(choices), r})

    def _student(self, policy: HybridPolicy, names: Sequence[str]) -> nn.Module:
        """What the optimizer trains: the policy, or the policy with auxiliary heads on the
        env's privileged state ``names`` (``aux_weight > 0``; one set of heads per task,
        kept across the HSTNN stages)."""
        if self.cfg.aux_weight <= 0:
            return policy
        if not names:
            raise ValueError(f"aux_weight > 0 but {self.cfg.env.env_id} has no privileged state")
        if self._aux is None or self._aux.policy is not policy:
            aux = StudentWithAux(policy, len(names))
            if self._aux is not None:  # same task, next stage: keep the trained heads
                aux.aux.load_state_dict(self._aux.aux.state_dict())
            self._aux = aux
        return self._aux

    def rewind_point(self) -> Callable[[], None]:
        """A function that puts the aggregate back to what it holds now.

        ``train`` adds every collection to :attr:`data`; the HSTNN pipeline calls this after
        adaptation so that each per-ratio restoration starts from the same episodes.
        """
        episodes = list(self.data.episodes)

        def rewind() -> None:
            self.data = EpisodeDataset(episodes)

        return rewind

    def _beta(self, k: int, bc: bool) -> float:
        """β of round ``k``: BC (1) first in a fresh run, DAgger rounds 1, 2, … after it."""
        return self.cfg.beta(k if bc else k + 1)

    def _collect(
        self, policy: HybridPolicy, envs: Any, run: TrainRun, k: int, bc: bool
    ) -> EpisodeDataset:
        """Collection round ``k`` of this run: from ``run_dir`` if a killed run wrote it."""
        path = run.run_dir / f"dagger_{k:03d}.npz"
        if path.exists():
            return EpisodeDataset.load(path)
        cfg = self.cfg
        beta = self._beta(k, bc)
        count = cfg.bc_episodes if (bc and k == 0) else cfg.dagger_episodes
        count = math.ceil(count / envs.num_envs) * envs.num_envs
        start = _run_offset(run) + 1000 * k
        coin = np.random.default_rng([cfg.seed, k, _run_offset(run)])
        ratio_rng = random.Random(f"{cfg.seed}/{k}/{_run_offset(run)}")
        core = policy.core

        def masks_fn():
            if core.ratio_sampling and core.spiking_ratio is not None:
                return core.masks_for_ratio(core.sample_ratio(ratio_rng))
            return None

        episodes, metrics = collect_episodes(
            envs,
            None if beta >= 1.0 else policy,
            episode_seeds(cfg.seed, start, count),
            beta,
            coin,
            masks_fn,
            action_noise=cfg.action_noise,
            disturbance=cfg.disturbance,
            disturbance_tau_steps=cfg.disturbance_tau_s * envs.get_attr("control_hz")[0],
        )
        data = EpisodeDataset(episodes)
        if run.is_main:
            data.save(path)
        score = float(np.mean([m["normalized_score"] for m in metrics]))
        self.history.append({"run": str(run.run_dir), "round": k, "beta": beta, "score": score})
        run.log_scalars(k, rollout_score=score, rollout_beta=beta)
        return data

    # -- selection and evaluation
    def loss_batches(self, model: nn.Module, n: int) -> Iterator[dict[str, Tensor]]:
        """``n`` batches of ``chunk_steps``-long windows from the aggregate (for the Hessian)."""
        if len(self.data) == 0:
            raise ValueError("no imitation data yet: train (adapt) before selection")
        rng = random.Random(self.cfg.seed)
        device = next(model.parameters()).device
        for _ in range(n):
            idx = rng.sample(range(len(self.data)), min(self.cfg.batch_episodes, len(self.data)))
            t_min = min(len(self.data.episodes[i]) for i in idx)
            t0 = rng.randrange(0, max(t_min - self.cfg.chunk_steps, 0) + 1)
            yield self.data.collate(idx, device, slice(t0, t0 + self.cfg.chunk_steps))

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        pred, _ = model(batch["events"].float(), batch["proprio"])
        return action_loss(pred, batch["expert"], batch["mask"], self.cfg.loss)

    def evaluate(
        self,
        model: nn.Module,
        ratio: float | None,
        shift: str | None = None,
        episodes: int | None = None,
        seed: int = 12345,
        **_: Any,
    ) -> dict[str, Any]:
        """Closed-loop score in the env at ``ratio`` and ``shift`` (see :mod:`.evaluate`)."""
        return evaluate_policy(
            model, self.cfg.env, ratio, shift, episodes or self.cfg.eval_episodes, seed
        )


def load_task(
    config_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ImitationTask:
    """The task with settings from the ``hsc_imitation`` section of a parameter file."""
    if config_path is None:
        return ImitationTask(from_mapping(ImitationConfig, overrides or {}, source="overrides"))
    cfg = load_node_params(
        config_file(str(config_path)), "hsc_imitation", ImitationConfig, overrides
    )
    return ImitationTask(cfg)


def _run_offset(run: TrainRun) -> int:
    """Distinct world seeds for each stage's run directory (stable across restarts)."""
    return zlib.crc32(run.run_dir.name.encode()) % 997 * 10_000

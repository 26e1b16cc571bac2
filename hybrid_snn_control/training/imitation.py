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
episode)`` (:func:`episode_seeds`, below 10⁹; evaluation worlds start at 2·10⁹), the β coin
flips and student ratio draws from ``(seed, round)``, batches and per-batch ratio draws
by :class:`~.loop.TrainRun` per step; each
collection is written to ``run_dir/dagger_k.npz`` before it is trained on, so a killed
run resumes to the same weights.  Settings: :class:`ImitationConfig` (section
``hsc_imitation`` of ``config/train.yaml``).

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
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from hybrid_snn_control.config import param
from hybrid_snn_control.policy.config import PolicyConfig
from hybrid_snn_control.policy.hybrid_policy import HybridPolicy
from hybrid_snn_control.training.hstnn import HSTNNConfig
from hybrid_snn_control.training.loop import TrainRun

__all__ = [
    "EnvSettings",
    "Episode",
    "EpisodeDataset",
    "ImitationConfig",
    "ImitationTask",
    "PolicySettings",
    "action_loss",
    "collect_episodes",
    "config_from_env",
    "load_task",
    "make_envs",
]


# ---- hyperparameters ---------------------------------------------------------------------------
@dataclass
class EnvSettings:
    """Which env and at what size (kwargs of ``gym.make``; see the env's docstring table)."""

    env_id: str = "hybrid_snn_control/Pursuit-v0"
    camera_size: int = field(default=32, metadata=param(range=(8, 512)))
    episode_s: float = field(default=8.0, metadata=param(range=(0.02, 600.0)))
    subframes: int = field(default=1, metadata=param(range=(1, 10)))
    num_envs: int = field(
        default=4, metadata=param(range=(1, 256), description="SyncVectorEnv width")
    )

    def make_kwargs(self) -> dict[str, Any]:
        return {
            "camera_width": self.camera_size,
            "camera_height": self.camera_size,
            "episode_s": self.episode_s,
            "subframes": self.subframes,
        }


@dataclass
class PolicySettings:
    """The student's architecture (a subset of :class:`PolicyConfig`; shapes come from the env)."""

    hidden_size: int = field(default=64, metadata=param(range=(1, 4096)))
    num_layers: int = field(default=2, metadata=param(range=(1, 16)))
    spiking_cell: Literal["lif", "alif", "stc_lif", "stc_alif", "rf"] = "lif"
    recurrent_cell: Literal["lstm", "gru", "rnn"] = "lstm"
    encoder: Literal["conv", "pool"] = "conv"
    encoder_channels: list[int] = field(default_factory=lambda: [8, 16])
    encoder_grid: int = field(default=3, metadata=param(range=(1, 64)))


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


# ---- data ----------------------------------------------------------------------------------------
@dataclass
class Episode:
    """One visited trajectory with the expert's labels (events as uint8 counts, clipped)."""

    events: np.ndarray  # [T, C, H, W] uint8
    proprio: np.ndarray  # [T, P] float32
    expert: np.ndarray  # [T, A] float32
    score: float  # normalized score of the executed (β-mixed) policy
    beta: float

    def __len__(self) -> int:
        return len(self.expert)


class EpisodeDataset:
    """The aggregate DAgger data set: whole episodes, batched as padded ``[T, B, …]`` tensors."""

    def __init__(self, episodes: Sequence[Episode] = ()) -> None:
        self.episodes: list[Episode] = list(episodes)

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, episodes: Sequence[Episode]) -> None:
        self.episodes.extend(episodes)

    @property
    def steps(self) -> int:
        return sum(len(e) for e in self.episodes)

    def proprio_stats(self) -> tuple[Tensor, Tensor]:
        allp = np.concatenate([e.proprio for e in self.episodes])
        return torch.from_numpy(allp.mean(0)), torch.from_numpy(allp.std(0) + 1e-3)

    def collate(
        self, idx: Sequence[int], device: str | torch.device = "cpu", window: slice | None = None
    ) -> dict[str, Tensor]:
        """Episodes ``idx`` (optionally a time window) as ``events/proprio/expert/mask``."""
        eps = [self.episodes[i] for i in idx]
        window = window or slice(None)
        parts = [(e.events[window], e.proprio[window], e.expert[window]) for e in eps]
        t_max, b = max(len(p[2]) for p in parts), len(parts)
        events = torch.zeros(t_max, b, *parts[0][0].shape[1:], dtype=torch.uint8)
        proprio = torch.zeros(t_max, b, parts[0][1].shape[1])
        expert = torch.zeros(t_max, b, parts[0][2].shape[1])
        mask = torch.zeros(t_max, b)
        for j, (ev, pr, ex) in enumerate(parts):
            n = len(ex)
            events[:n, j] = torch.from_numpy(ev)
            proprio[:n, j] = torch.from_numpy(pr)
            expert[:n, j] = torch.from_numpy(ex)
            mask[:n, j] = 1.0
        out = {"events": events, "proprio": proprio, "expert": expert, "mask": mask}
        return {k: v.to(device) for k, v in out.items()}

    def save(self, path: str | Path) -> None:
        """One ``.npz`` (no pickle), written atomically."""
        arrays: dict[str, np.ndarray] = {}
        for i, e in enumerate(self.episodes):
            arrays[f"{i}.events"], arrays[f"{i}.proprio"] = e.events, e.proprio
            arrays[f"{i}.expert"], arrays[f"{i}.info"] = e.expert, np.array([e.score, e.beta])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> EpisodeDataset:
        with np.load(path, allow_pickle=False) as z:
            n = len({k.split(".")[0] for k in z.files})
            return cls(
                [
                    Episode(
                        z[f"{i}.events"],
                        z[f"{i}.proprio"],
                        z[f"{i}.expert"],
                        float(z[f"{i}.info"][0]),
                        float(z[f"{i}.info"][1]),
                    )
                    for i in range(n)
                ]
            )


# ---- envs and rollouts ---------------------------------------------------------------------------
def config_from_env(env: Any, **overrides: Any) -> PolicyConfig:
    """A :class:`PolicyConfig` whose input shapes match a sim env's observation space."""
    space = env.observation_space
    return dataclasses.replace(
        PolicyConfig(),
        event_shape=list(space["events"].shape),
        proprio_size=int(space["proprio"].shape[0]),
        action_size=int(env.action_space.shape[0]),
        **overrides,
    )


def make_envs(settings: EnvSettings, num_envs: int | None = None, shift: str | None = None):
    """A ``SyncVectorEnv`` (Sync beats Async on 2 cores, DESIGN §10) without autoreset."""
    import gymnasium as gym

    import hybrid_snn_control.sim  # noqa: F401  (registers the env ids)

    n = num_envs or settings.num_envs
    kwargs = {**settings.make_kwargs(), "shift": shift}
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(settings.env_id, **kwargs) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )


@torch.no_grad()
def collect_episodes(
    envs: Any,
    policy: HybridPolicy | None,
    seeds: Sequence[int],
    beta: float = 1.0,
    rng: np.random.Generator | None = None,
    masks_fn: Callable[[], Sequence[Tensor] | None] | None = None,
    record: bool = True,
    on_step: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> tuple[list[Episode], list[dict[str, float]]]:
    """Run one episode per seed (``len(seeds)`` a multiple of the vector width).

    Per env and step the expert acts with probability ``beta``, the student otherwise
    (``policy=None``: expert only); the expert labels every visited state.  ``masks_fn``
    gives the student's unit masks per group of ``num_envs`` episodes (None: its own).
    ``on_step(obs)`` sees every observation the policy sees.  Returns the recorded
    episodes and each episode's ``info["episode_metrics"]`` (+ ``return``,
    ``expert_fraction``).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n = envs.num_envs
    if len(seeds) % n:
        raise ValueError(f"len(seeds)={len(seeds)} must be a multiple of num_envs={n}")
    if policy is None and beta < 1.0:
        raise ValueError("beta < 1 needs a student policy")
    device = next(policy.parameters()).device if policy is not None else torch.device("cpu")
    was_training = policy.training if policy is not None else False
    if policy is not None:
        policy.eval()
    episodes: list[Episode] = []
    metrics: list[dict[str, float]] = []
    for k in range(0, len(seeds), n):
        obs, _ = envs.reset(seed=[int(s) for s in seeds[k : k + n]])
        masks = masks_fn() if (masks_fn is not None and policy is not None) else None
        state = policy.initial_state(n, device) if policy is not None else None
        buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        alive = np.ones(n, bool)
        length, ret, by_expert = np.zeros(n, int), np.zeros(n), np.zeros(n)
        ep_metrics: list[dict[str, float]] = [{} for _ in range(n)]
        while alive.any():
            expert = np.stack(envs.call("expert_action")).astype(np.float32)
            if record:
                events_u8 = np.clip(obs["events"], 0, 255).astype(np.uint8)
                buf.append((events_u8, obs["proprio"].copy(), expert))
            if on_step is not None:
                on_step(obs)
            action, use_expert = expert, np.ones(n, bool)
            if policy is not None:
                ev = torch.as_tensor(obs["events"], device=device)
                pr = torch.as_tensor(obs["proprio"], device=device)
                student, state = policy.step(ev, pr, state, masks)
                use_expert = rng.random(n) < beta
                action = np.where(use_expert[:, None], expert, student.cpu().numpy())
            obs, reward, term, trunc, info = envs.step(action.astype(np.float32))
            length += alive
            ret += reward * alive
            by_expert += use_expert * alive
            done = (term | trunc) & alive
            for j in np.flatnonzero(done):
                m = {
                    key: float(v[j]) for key, v in info["episode_metrics"].items() if key[0] != "_"
                }
                m.update(expert_fraction=by_expert[j] / length[j], length=float(length[j]))
                m["return"] = float(ret[j])
                ep_metrics[j] = m
            alive &= ~done
        metrics += ep_metrics
        if record:
            for j in range(n):
                t = length[j]
                episodes.append(
                    Episode(
                        events=np.stack([b[0][j] for b in buf[:t]]),
                        proprio=np.stack([b[1][j] for b in buf[:t]]).astype(np.float32),
                        expert=np.stack([b[2][j] for b in buf[:t]]),
                        score=ep_metrics[j]["normalized_score"],
                        beta=beta,
                    )
                )
    if policy is not None:
        policy.train(was_training)
    return episodes, metrics


def episode_seeds(seed: int, start: int, count: int) -> list[int]:
    """Training world seeds: disjoint per run seed (below 10⁹; evaluation uses 2·10⁹ up)."""
    return [(seed * 10_000_000 + start + i) % 1_000_000_000 for i in range(count)]


# ---- loss ----------------------------------------------------------------------------------------
def action_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "mse") -> Tensor:
    """Mean per-step action loss over the valid steps (``mask [T, B]``)."""
    if kind == "mse":
        per = (pred - target).pow(2).mean(-1)
    elif kind == "huber":
        per = nn.functional.huber_loss(pred, target, reduction="none", delta=0.2).mean(-1)
    elif kind == "l1":
        per = (pred - target).abs().mean(-1)
    else:
        raise ValueError(f"loss must be 'mse', 'huber' or 'l1', got {kind!r}")
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


def tbptt_pass(
    policy: nn.Module,
    batch: dict[str, Tensor],
    cfg: ImitationConfig,
    masks: Sequence[Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> float:
    """Walk a padded episode batch in ``chunk_steps`` windows; the step-weighted mean loss.

    With an optimizer: one update per window (truncated BPTT, state carried detached).
    Without: evaluation only (call under ``torch.no_grad()``).
    """
    core = policy.module.core if hasattr(policy, "module") else policy.core
    state, total, weight = None, 0.0, 0.0
    for t0 in range(0, batch["expert"].shape[0], cfg.chunk_steps):
        w = slice(t0, t0 + cfg.chunk_steps)
        pred, state = policy(batch["events"][w].float(), batch["proprio"][w], state, masks)
        m = batch["mask"][w]
        loss = action_loss(pred, batch["expert"][w], m, cfg.loss)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            optimizer.step()
        state = core.detach_state(state)
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
        policy.to(run.device)
        optimizer = torch.optim.Adam(policy.parameters(), lr=run.lr, weight_decay=cfg.weight_decay)
        run.resume(policy, optimizer)
        net = run.wrap(policy)
        envs = make_envs(cfg.env)
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
                masks = core.masks_for_ratio(core.sample_ratio())  # one ratio per batch
            loss = tbptt_pass(net, data.collate(idx, run.device), cfg, masks, optimizer)
            run.log(loss=loss, beta=self._beta(k, first_bc), episodes=len(data))
        run.close()
        envs.close()
        for j in sorted(rounds):
            self.data.add(rounds[j].episodes)
        return {"final_loss": loss, "steps": run.step, "episodes": len(self.data)}

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
        from hybrid_snn_control.training.evaluate import evaluate_policy

        return evaluate_policy(
            model, self.cfg.env, ratio, shift, episodes or self.cfg.eval_episodes, seed
        )


def load_task(
    config_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ImitationTask:
    """The task with settings from the ``hsc_imitation`` section of a parameter file."""
    from hybrid_snn_control.config import from_mapping, load_node_params
    from hybrid_snn_control.paths import config_file

    if config_path is None:
        return ImitationTask(from_mapping(ImitationConfig, overrides or {}, source="overrides"))
    cfg = load_node_params(
        config_file(str(config_path)), "hsc_imitation", ImitationConfig, overrides
    )
    return ImitationTask(cfg)


def _run_offset(run: TrainRun) -> int:
    """Distinct world seeds for each stage's run directory (stable across restarts)."""
    import zlib

    return zlib.crc32(run.run_dir.name.encode()) % 997 * 10_000

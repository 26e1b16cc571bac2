"""Rollouts in the sim, shared by imitation (:mod:`.imitation`) and evaluation (:mod:`.evaluate`).

What both need and neither owns: which env at what size (:class:`EnvSettings`), a vector of
envs (:func:`make_envs`), running whole episodes with the privileged expert labelling every
visited state and a student (or the expert) acting (:func:`collect_episodes`), the
recorded episodes (:class:`Episode`, :class:`EpisodeDataset`), the training world seeds
(:func:`episode_seeds`, below 10⁹; evaluation worlds start at 2·10⁹ in :mod:`.evaluate`)
and the per-episode summary (:func:`summarize_episodes`).  Keeping them here lets the
trainer import the evaluator without the evaluator importing the trainer::

    envs = make_envs(EnvSettings(camera_size=32, episode_s=5.0, num_envs=4))
    episodes, metrics = collect_episodes(envs, policy, episode_seeds(0, 0, 8), beta=0.5)
    EpisodeDataset(episodes).save("runs/p/dagger_001.npz")
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

import hybrid_snn_control.sim  # noqa: F401  (registers the env ids)
from hybrid_snn_control.config import from_mapping, param
from hybrid_snn_control.policy.config import PolicyConfig
from hybrid_snn_control.policy.hybrid_policy import HybridPolicy
from hybrid_snn_control.sim.randomization import TRAINING_RANGES, training_ranges
from hybrid_snn_control.sim.wrappers import PrivilegedProprio

__all__ = [
    "EnvSettings",
    "Episode",
    "EpisodeDataset",
    "collect_episodes",
    "config_from_env",
    "episode_seeds",
    "make_envs",
    "policy_env_settings",
    "round_up",
    "summarize_episodes",
]


# ---- settings ------------------------------------------------------------------------------------
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
    observation: str = field(
        default="events",
        metadata=param(
            choices=("events", "privileged"),
            description="events: what a robot sees; privileged: diagnosis only, ground-truth "
            "target state appended to proprio and no events (sim/wrappers.py)",
        ),
    )
    train_ranges: str = field(
        default="default",
        metadata=param(
            choices=tuple(TRAINING_RANGES),
            description="randomization ranges of training collection (evaluation always "
            "uses the env's defaults): default, or wide_sensor (sim/randomization.py)",
        ),
    )

    def make_kwargs(self) -> dict[str, Any]:
        kwargs = {
            "camera_width": self.camera_size,
            "camera_height": self.camera_size,
            "episode_s": self.episode_s,
            "subframes": self.subframes,
        }
        if self.observation == "privileged":
            kwargs["event_camera"] = False
        return kwargs


def policy_env_settings(meta: Mapping[str, Any]) -> EnvSettings:
    """The env a policy was trained for (its metadata's ``env``), defaults otherwise."""
    return from_mapping(EnvSettings, meta.get("env", {}), source="policy metadata env")


# ---- data ----------------------------------------------------------------------------------------
@dataclass
class Episode:
    """One visited trajectory with the expert's labels (events as uint8 counts, clipped)."""

    events: np.ndarray  # [T, C, H, W] uint8
    proprio: np.ndarray  # [T, P] float32
    expert: np.ndarray  # [T, A] float32
    score: float  # normalized score of the executed (β-mixed) policy
    beta: float
    privileged: np.ndarray | None = None  # [T, K] float32 training labels (env.privileged_state)

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
        """Episodes ``idx`` (optionally a time window) as ``events/proprio/expert/mask``
        (+ ``privileged`` when every episode carries it)."""
        eps = [self.episodes[i] for i in idx]
        window = window or slice(None)
        t_max = max(len(e.expert[window]) for e in eps)
        fields = {"events": torch.uint8, "proprio": torch.float32, "expert": torch.float32}
        if all(e.privileged is not None for e in eps):
            fields["privileged"] = torch.float32
        out = {
            name: torch.zeros(t_max, len(eps), *getattr(eps[0], name).shape[1:], dtype=dtype)
            for name, dtype in fields.items()
        }
        out["mask"] = torch.zeros(t_max, len(eps))
        for j, e in enumerate(eps):
            n = len(e.expert[window])
            for name in fields:
                out[name][:n, j] = torch.from_numpy(getattr(e, name)[window])
            out["mask"][:n, j] = 1.0
        return {k: v.to(device) for k, v in out.items()}

    def save(self, path: str | Path) -> None:
        """One ``.npz`` (no pickle), written atomically."""
        arrays: dict[str, np.ndarray] = {}
        for i, e in enumerate(self.episodes):
            arrays[f"{i}.events"], arrays[f"{i}.proprio"] = e.events, e.proprio
            arrays[f"{i}.expert"], arrays[f"{i}.info"] = e.expert, np.array([e.score, e.beta])
            if e.privileged is not None:
                arrays[f"{i}.privileged"] = e.privileged
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
                        z[f"{i}.privileged"] if f"{i}.privileged" in z.files else None,
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


def make_envs(
    settings: EnvSettings,
    num_envs: int | None = None,
    shift: str | None = None,
    train: bool = False,
) -> gym.vector.SyncVectorEnv:
    """A ``SyncVectorEnv`` (Sync beats Async on 2 cores, DESIGN §10) without autoreset.

    ``train``: worlds from ``settings.train_ranges`` (training collection); otherwise the
    env's default ranges, so evaluation worlds never depend on how a policy was trained.
    """
    n = num_envs or settings.num_envs
    kwargs = {**settings.make_kwargs(), "shift": shift}
    if train and settings.train_ranges != "default":
        kwargs["ranges"] = training_ranges(settings.train_ranges)
    wrap = PrivilegedProprio if settings.observation == "privileged" else (lambda env: env)
    return gym.vector.SyncVectorEnv(
        [lambda: wrap(gym.make(settings.env_id, **kwargs)) for _ in range(n)],
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
    action_noise: float = 0.0,
    disturbance: float = 0.0,
    disturbance_tau_steps: float = 25.0,
) -> tuple[list[Episode], list[dict[str, float]]]:
    """Run one episode per seed (``len(seeds)`` a multiple of the vector width).

    Per env and step the expert acts with probability ``beta``, the student otherwise
    (``policy=None``: expert only); the expert labels every visited state.  ``masks_fn``
    gives the student's unit masks per group of ``num_envs`` episodes (None: its own).
    ``on_step(obs)`` sees every observation the policy sees.  ``action_noise`` (DART,
    Laskey et al. 2017): where the expert acts, its executed action is perturbed by
    N(0, σ²) (clipped to [-1, 1]) so the data covers the states a student's errors lead
    to; the labels stay the expert's clean actions.  ``disturbance``: whoever acts, the
    executed action also gets a slow push, an Ornstein–Uhlenbeck process of stationary
    std ``disturbance`` and correlation time ``disturbance_tau_steps`` (white noise
    averages out within a few steps; a push lasting ~½ s turns the rover away until the
    target nears the edge of the view or leaves it, the states a fast target causes),
    again with clean labels.  Episodes also record
    ``env.privileged_state()`` per step (training-only labels).  Returns the recorded
    episodes and each episode's ``info["episode_metrics"]`` (+ ``return``,
    ``expert_fraction``).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n = envs.num_envs
    if len(seeds) % n:
        raise ValueError(f"len(seeds)={len(seeds)} must be a multiple of num_envs={n}")
    if policy is None and beta < 1.0:
        raise ValueError("beta < 1 needs a student policy")
    if disturbance < 0 or disturbance_tau_steps <= 0:
        raise ValueError(
            f"need disturbance >= 0 and disturbance_tau_steps > 0, got {disturbance}, "
            f"{disturbance_tau_steps}"
        )
    # OU: x <- keep x + kick eps; a correlation time under one step is white noise (keep 0)
    keep = 1.0 - 1.0 / max(disturbance_tau_steps, 1.0)
    kick = disturbance * math.sqrt(1.0 - keep**2)
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
        push = np.zeros((n, envs.single_action_space.shape[0]))
        while alive.any():
            expert = np.stack(envs.call("expert_action")).astype(np.float32)
            if record:
                events_u8 = np.clip(obs["events"], 0, 255).astype(np.uint8)
                privileged = np.stack(envs.call("privileged_state")).astype(np.float32)
                buf.append((events_u8, obs["proprio"].copy(), expert, privileged))
            if on_step is not None:
                on_step(obs)
            action, use_expert = expert, np.ones(n, bool)
            if policy is not None:
                ev = torch.as_tensor(obs["events"], device=device)
                pr = torch.as_tensor(obs["proprio"], device=device)
                student, state = policy.step(ev, pr, state, masks)
                use_expert = rng.random(n) < beta
                action = np.where(use_expert[:, None], expert, student.cpu().numpy())
            if action_noise > 0:  # only where the expert acts: its label stays clean
                noise = rng.normal(0.0, action_noise, action.shape) * use_expert[:, None]
                action = np.clip(action + noise, -1.0, 1.0)
            if disturbance > 0:  # whoever acts; labels stay clean
                push = keep * push + kick * rng.normal(size=push.shape)
                action = np.clip(action + push, -1.0, 1.0)
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
                        privileged=np.stack([b[3][j] for b in buf[:t]]),
                    )
                )
    if policy is not None:
        policy.train(was_training)
    return episodes, metrics


def episode_seeds(seed: int, start: int, count: int) -> list[int]:
    """Training world seeds: disjoint per run seed (below 10⁹; evaluation uses 2·10⁹ up)."""
    return [(seed * 10_000_000 + start + i) % 1_000_000_000 for i in range(count)]


def round_up(n: int, k: int) -> int:
    """``n`` rounded up to a multiple of ``k`` (whole batches of ``k`` envs)."""
    return -(-n // k) * k


def summarize_episodes(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every episode metric, plus ``score`` / ``score_std`` (normalized score)."""
    keys = [k for k in metrics[0] if all(k in m for m in metrics)]
    out = {k: float(np.mean([m[k] for m in metrics])) for k in keys}
    scores = [m["normalized_score"] for m in metrics]
    out["score"] = float(np.mean(scores))
    out["score_std"] = float(np.std(scores))
    return out

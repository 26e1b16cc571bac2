"""Resumable training loop utilities: one :class:`TrainRun` per training run.

A trainer keeps its loop visible (CleanRL style) and lets the run do the bookkeeping::

    run = TrainRun("runs/adapt", total_steps=2000, lr=1e-3, seed=0, device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=run.lr)
    run.resume(model, optimizer)                      # loads runs/adapt/train_state.* if any
    for step in run.steps():                          # tqdm bar; RNGs seeded from (seed, step)
        idx = run.batch_indices(len(data), batch_size, step)
        loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
        run.log(loss=loss.item())                     # tqdm postfix + TensorBoard
    run.close()                                       # after the last step: a checkpoint

Why a resumed run reaches the *same weights* as an uninterrupted one:

* **No hidden state.**  Before every step the torch, numpy and Python RNGs are seeded from
  ``(seed, step)`` (:func:`step_seed`), and the data order of step ``s`` is a pure
  function of ``(seed, epoch, rank)`` (:meth:`TrainRun.batch_indices`, built on
  ``DistributedSampler``).  Anything random inside the step (ratio sampling in
  :class:`~hybrid_snn_control.hybrid.HybridNetwork`, dropout, augmentation) therefore
  replays exactly after a restart.
* **Everything else is in the checkpoint.**  Model, optimizer (Adam moments and step
  counts), the step counter and, for good measure, the RNG states, written atomically
  every ``checkpoint_every`` steps to ``<run_dir>/train_state.safetensors`` (safetensors
  + JSON via :mod:`.checkpoint`; no pickle).  A kill at any moment loses at most the
  steps since the last checkpoint, which are then recomputed identically.

In data-parallel runs only rank 0 writes checkpoints and logs; every rank resumes from
the same file.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from hybrid_snn_control.policy.checkpoint import (
    CheckpointError,
    load_checkpoint,
    pack_state,
    save_checkpoint,
    split_prefix,
    unpack_state,
    with_prefix,
)

__all__ = [
    "TRAIN_STATE_FILE",
    "TrainRun",
    "capture_rng_state",
    "resolve_device",
    "restore_rng_state",
    "seed_everything",
    "step_seed",
    "unwrap",
]

TRAIN_STATE_FILE = "train_state.safetensors"


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda`` (``cuda:N``); a clear error when CUDA is asked for but absent."""
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device")
    return torch.device(device)


def step_seed(seed: int, step: int) -> int:
    """A 32-bit seed for one step, derived from the run seed (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG third-party code uses)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU/CUDA, numpy, Python) as tensors + JSON values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    legacy = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    np.random.set_state(legacy)  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


class TrainRun:
    """Step counter, seeding, data order, checkpoints, progress bar and TensorBoard of a run.

    ``run_dir`` holds ``train_state.safetensors`` (the resumable state) and ``tb/`` (the
    TensorBoard logs).  ``total_steps`` counts optimizer steps.  ``metadata`` (JSON) is
    stored in every checkpoint (e.g. the stage and the task config).
    """

    def __init__(
        self,
        run_dir: str | Path,
        total_steps: int,
        *,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
        checkpoint_every: int = 100,
        log_every: int = 10,
        progress: bool = True,
        tensorboard: bool = True,
        rank: int = 0,
        world_size: int = 1,
        metadata: Mapping[str, Any] | None = None,
        desc: str = "train",
    ) -> None:
        if total_steps < 0 or checkpoint_every < 1 or log_every < 1:
            raise ValueError(
                "total_steps must be >= 0, checkpoint_every and log_every >= 1; got "
                f"{total_steps}, {checkpoint_every}, {log_every}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got {rank} of {world_size}")
        self.run_dir = Path(run_dir)
        self.total_steps = int(total_steps)
        self.lr = float(lr)
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.checkpoint_every = int(checkpoint_every)
        self.log_every = int(log_every)
        self.progress = progress
        self.tensorboard = tensorboard
        self.rank, self.world_size = int(rank), int(world_size)
        self.metadata = dict(metadata or {})
        self.desc = desc
        self.step = 0
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.history: list[dict[str, float]] = []  # logged metrics of this process
        self._bar = None
        self._writer = None
        self._pending: dict[str, float] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def state_path(self) -> Path:
        return self.run_dir / TRAIN_STATE_FILE

    # ---- resume / checkpoint ---------------------------------------------------------------
    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Attach model + optimizer; load ``train_state.safetensors`` if present; return step."""
        self.model, self.optimizer = model, optimizer
        self.step = 0
        if self.state_path.exists():
            tensors, meta = load_checkpoint(self.state_path, "cpu")
            if meta.get("kind") != "train_state":
                raise CheckpointError(f"{self.state_path} is a '{meta.get('kind')}' file")
            if meta.get("total_steps") != self.total_steps or meta.get("seed") != self.seed:
                raise CheckpointError(
                    f"{self.state_path} belongs to a run with total_steps="
                    f"{meta.get('total_steps')}, seed={meta.get('seed')}; this run has "
                    f"{self.total_steps}, {self.seed}: use a new run_dir or the same settings"
                )
            try:
                unwrap(model).load_state_dict(split_prefix(tensors, "model"))
            except RuntimeError as exc:
                raise CheckpointError(f"{self.state_path} does not fit the model: {exc}") from None
            optimizer.load_state_dict(unpack_state(meta["optimizer"], tensors))
            restore_rng_state(unpack_state(meta["rng"], tensors))
            self.step = int(meta["step"])
            self.history = list(meta.get("history", []))
        self._open_logs()
        return self.step

    def save(self) -> None:
        """Write the resumable state atomically (rank 0 only)."""
        if not self.is_main or self.model is None or self.optimizer is None:
            return
        opt_tensors, opt_tree = pack_state(self.optimizer.state_dict(), "optim")
        rng_tensors, rng_tree = pack_state(capture_rng_state(), "rng")
        tensors = {
            **with_prefix(unwrap(self.model).state_dict(), "model"),
            **opt_tensors,
            **rng_tensors,
        }
        meta = {
            **self.metadata,
            "kind": "train_state",
            "step": self.step,
            "total_steps": self.total_steps,
            "seed": self.seed,
            "lr": self.lr,
            "optimizer": opt_tree,
            "rng": rng_tree,
            "history": self.history[-1000:],
        }
        save_checkpoint(self.state_path, tensors, meta)

    # ---- the loop --------------------------------------------------------------------------
    def steps(self) -> Iterator[int]:
        """Yield the remaining step indices; seed before, checkpoint and count after each."""
        if self.model is None:
            raise RuntimeError("call run.resume(model, optimizer) before run.steps()")
        t0, first = time.monotonic(), self.step
        for step in range(self.step, self.total_steps):
            seed_everything(step_seed(self.seed, step))
            yield step
            self.step = step + 1
            if self._bar is not None:
                self._bar.update(1)
            if self.step % self.checkpoint_every == 0 or self.step == self.total_steps:
                self.save()
                if self.is_main and not self.progress:  # no bar: one line per checkpoint
                    self._print_checkpoint(time.monotonic() - t0, self.step - first)

    def _print_checkpoint(self, elapsed_s: float, done: int) -> None:
        """``desc: step 150/800  loss=0.021  312 s, ~1,361 s left`` on stderr, where tqdm's
        bar goes (stdout stays the command's output)."""
        left = elapsed_s / max(done, 1) * (self.total_steps - self.step)
        metrics = "  ".join(f"{k}={v:.4g}" for k, v in self._pending.items())
        print(
            f"{self.desc}: step {self.step}/{self.total_steps}  {metrics}  "
            f"{elapsed_s:.0f} s, ~{left:,.0f} s left",
            file=sys.stderr,
            flush=True,
        )

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)`` in a data-parallel run, else ``model`` itself.

        Call after :meth:`resume` (every rank has then loaded the same state).
        """
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def log(self, **metrics: float) -> None:
        """Record metrics of the current step (tqdm postfix, TensorBoard every log_every)."""
        step = self.step
        self._pending = {k: float(v) for k, v in metrics.items()}
        if step % self.log_every == 0 or step + 1 == self.total_steps:
            self.history.append({"step": step, **self._pending})
            if self._writer is not None:
                for k, v in self._pending.items():
                    self._writer.add_scalar(f"{self.desc}/{k}", v, step)
            if self._bar is not None:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in self._pending.items()})

    def log_scalars(self, step: int, **metrics: float) -> None:
        """Extra scalars (e.g. validation accuracy) at an explicit step."""
        if self._writer is not None:
            for k, v in metrics.items():
                self._writer.add_scalar(f"{self.desc}/{k}", float(v), step)

    def batch_indices(self, n: int, batch_size: int, step: int, shuffle: bool = True) -> list[int]:
        """This rank's sample indices for global ``step`` (a pure function of seed and step).

        Epoch ``e = step // steps_per_epoch`` is a ``DistributedSampler`` permutation seeded
        by ``(seed, e)``; each rank reads its own shard, so ranks see disjoint samples.
        """
        sampler = DistributedSampler(
            range(n), num_replicas=self.world_size, rank=self.rank, shuffle=shuffle, seed=self.seed
        )
        per_epoch = len(sampler) // batch_size
        if per_epoch < 1:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(sampler)} samples per rank")
        epoch, i = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        order = list(sampler)
        return order[i * batch_size : (i + 1) * batch_size]

    def _open_logs(self) -> None:
        if not self.is_main:
            return
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total_steps, initial=self.step, desc=self.desc, dynamic_ncols=True
            )
        if self.tensorboard and self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events logged after the checkpoint by a killed process
            self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""The :class:`Task` protocol the HSTNN stages run on, and model checkpoints of a task.

The three HSTNN stages (:mod:`.hstnn`: adapt → select → restore) are the same for every
task; what differs is the model, the data, the loss and the score.  A task supplies
those five things and the stages do the rest::

    class Task(Protocol):
        name: str                                   # "classify", "pursuit", ...
        cfg: Any                                    # settings dataclass (stored in checkpoints)
        def build_model(self) -> nn.Module          # is, or has as .core, a HybridNetwork
        def train(self, model, run) -> dict         # a visible loop over run.steps()
        def loss_batches(self, model, n) -> Iterable    # batches for the Hessian estimate
        def loss(self, model, batch) -> Tensor      # scalar loss of one such batch
        def evaluate(self, model, ratio, **kw) -> dict  # {"score": ..., efficiency ...}

Contract for ``train``: it trains the model *as configured by the caller*.  The stage
decides the unit set before calling it — ``core.set_redundant()`` (adaptation), a fixed
ratio ``core.set_ratio(r)`` (restoration, baselines) or ratio sampling
(``core.ratio_sampling = True`` / a tuple in ``core.ratio_choices``) — and ``train`` only
calls the model in training mode, so :class:`~hybrid_snn_control.hybrid.HybridNetwork`
applies whichever it is.  It uses :class:`~.loop.TrainRun` (``run.lr``, ``run.steps()``,
``run.batch_indices()``, ``run.log()``) so that it resumes exactly after a kill, and it
leaves the model's ratio / masks as it found them.

Optional: a task whose ``train`` keeps state between calls (the DAgger aggregate of
:class:`~.imitation.ImitationTask`) offers ``rewind_point() -> Callable[[], None]``; the
pipeline (:func:`~.hstnn.pipeline_stages`) takes one after adaptation and calls it
before each per-ratio restoration, so they all start from the same data.

``evaluate(model, ratio)`` sets the ratio (``None`` = redundant, all units), runs the
task's held-out data and returns at least ``score`` (higher is better) and the
:class:`~hybrid_snn_control.hybrid.efficiency.EfficiencyReport` per-step numbers
(``macs_per_step``, ``synops_per_step``, ``energy_pj_per_step``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from hybrid_snn_control import __version__
from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.policy.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
    with_prefix,
)
from hybrid_snn_control.training.loop import TrainRun

__all__ = ["Task", "core_of", "load_model", "ranking_summary", "save_model"]


@runtime_checkable
class Task(Protocol):
    """What the HSTNN stages need from a task (module docstring)."""

    name: str
    cfg: Any

    def build_model(self) -> nn.Module: ...

    def train(self, model: nn.Module, run: TrainRun) -> dict[str, Any]: ...

    def loss_batches(self, model: nn.Module, n: int) -> Iterable[Any]: ...

    def loss(self, model: nn.Module, batch: Any) -> Tensor: ...

    def evaluate(self, model: nn.Module, ratio: float | None, **kw: Any) -> dict[str, Any]: ...


def core_of(model: nn.Module) -> HybridNetwork:
    """The model's :class:`HybridNetwork` (the model itself or ``model.core``)."""
    model = model.module if hasattr(model, "module") else model  # DDP
    core = model if isinstance(model, HybridNetwork) else getattr(model, "core", None)
    if not isinstance(core, HybridNetwork):
        raise TypeError(
            f"{type(model).__name__} is not a HybridNetwork and has no HybridNetwork .core"
        )
    return core


def ranking_summary(core: HybridNetwork) -> list[dict[str, list[int]]]:
    """Per layer, unit indices best first (readable copy of the rank buffers for metadata)."""
    out = []
    for layer in core.layers:
        out.append(
            {
                "spiking": torch.argsort(layer.spiking_rank).tolist(),
                "recurrent": torch.argsort(layer.recurrent_rank).tolist(),
            }
        )
    return out


def save_model(
    path: str | Path, task: Task, model: nn.Module, extra: Mapping[str, Any] | None = None
) -> str:
    """Write a task model (weights, ranking buffers, ratio, task config) atomically."""
    core = core_of(model)
    model = model.module if hasattr(model, "module") else model
    meta = {
        "kind": "task_model",
        "task": task.name,
        "task_config": to_mapping(task.cfg) if task.cfg is not None else None,
        "spiking_ratio": core.spiking_ratio,
        "ranking": ranking_summary(core),
        "package_version": __version__,
        "torch_version": torch.__version__,
        **dict(extra or {}),
    }
    return save_checkpoint(path, with_prefix(model.state_dict(), "model"), meta)


def load_model(
    path: str | Path, task: Task, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``task``'s model and load ``path`` into it (ratio restored; None = redundant)."""
    tensors, meta = load_checkpoint(path, map_location)
    if meta.get("kind") != "task_model":
        raise CheckpointError(f"{path} holds a '{meta.get('kind')}', not a task_model")
    if meta.get("task") != task.name:
        raise CheckpointError(f"{path} was trained on task '{meta.get('task')}', not '{task.name}'")
    model = task.build_model().to(map_location)
    state = split_prefix(tensors, "model")
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the task's model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]} (was it trained with other settings?)"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise CheckpointError(
            f"{path} does not fit the task's model ({_config_diff(meta, task)}): {first[0].strip()}"
        ) from None
    core = core_of(model)
    ratio = meta.get("spiking_ratio")
    if ratio is None:
        core.set_redundant()
    else:
        core.set_ratio(ratio)
    return model, meta


def _config_diff(meta: Mapping[str, Any], task: Task) -> str:
    stored = meta.get("task_config") or {}
    current = to_mapping(task.cfg) if task.cfg is not None else {}
    diff = [
        f"{k}: file {stored[k]!r}, now {current[k]!r}"
        for k in sorted(set(stored) & set(current))
        if stored[k] != current[k]
    ]
    return "settings differ: " + "; ".join(diff) if diff else "same settings"

"""``hsc train``: an imitation policy by the HSTNN stages (or a direct baseline), as policy files.

The stages (:func:`~.hstnn.pipeline_stages`, or :func:`~.hstnn.direct` at a fixed ratio)
train under ``run_dir``, which must be empty unless ``resume`` continues a killed run
(every stage resumes from its ``train_state``; a finished one trains no further steps).
Each resulting model becomes a deployable policy file
(:func:`~hybrid_snn_control.policy.bundle.save_policy`) carrying what its users read: the
env it was trained for (``env``), the unit ranking (``ranking``), its ratio, the settings,
the DAgger rollout scores and the training wall time.  This is how the shipped default
policy is made::

    task = load_task("train", {"hstnn.adapt_steps": 300})
    files = train_policy(task, "runs/p/policy.safetensors", restore_each=[0.0, 1.0])
    files["hstnn"], files["restore_r0"], files["restore_r1"]

``pipeline="finetune"`` continues a trained policy instead (``init``: a policy file or a
task model): the restoration stage again — ratio sampling over the restoration ratios,
sandwich, ``restore_steps`` at ``restore_lr`` — with ``restore_iterations`` new DAgger
rounds in the task's training ranges, on top of the episodes already collected under
``data`` (run folders whose ``dagger_*.npz`` rounds seed the aggregate)::

    task = load_task("train", {"env.train_ranges": "to_the_edge"})
    train_policy(task, "runs/v6/policy.safetensors", run_dir="runs/v6",
                 pipeline="finetune", init="runs/v5/restore.safetensors", data=["runs/v5"])
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.policy.bundle import load_policy, save_policy
from hybrid_snn_control.policy.checkpoint import CheckpointError, load_checkpoint
from hybrid_snn_control.training import hstnn
from hybrid_snn_control.training.hstnn_config import HSTNNConfig
from hybrid_snn_control.training.imitation import ImitationTask
from hybrid_snn_control.training.rollout import EpisodeDataset
from hybrid_snn_control.training.task import load_model, ranking_summary, save_model

__all__ = ["PIPELINES", "load_episode_rounds", "stage_settings", "train_policy"]

PIPELINES = ("hstnn", "direct", "finetune")


def stage_settings(
    task: ImitationTask,
    run_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    ratio: float | None = None,
) -> HSTNNConfig:
    """The task's ``hstnn`` block with the run's seed, folder, device and stored ratio."""
    cfg = task.cfg
    stages = replace(
        cfg.hstnn,
        seed=cfg.seed,
        out_dir=str(run_dir) if run_dir is not None else cfg.hstnn.out_dir,
        device=device or cfg.hstnn.device,
        progress=cfg.hstnn.progress and progress,
    )
    return stages if ratio is None else replace(stages, ratio=ratio)


def train_policy(
    task: ImitationTask,
    out: str | Path | None = None,
    *,
    run_dir: str | Path | None = None,
    pipeline: str = "hstnn",
    ratio: float | None = None,
    restore_each: Sequence[float] = (),
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    init: str | Path | None = None,
    data: Sequence[str | Path] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Train and write the policy files; ``{kind: file}`` (module docstring).

    ``pipeline``: ``"hstnn"`` (stored at ``ratio``, default the configured one; plus one
    policy per ratio of ``restore_each``, ``<out stem>_r<R>``), ``"direct"`` (a fixed
    split at ``ratio``, required) or ``"finetune"`` (``init`` continued, module
    docstring).  ``out`` defaults to ``<run_dir>/policy.safetensors``.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    if (pipeline == "finetune") != (init is not None):
        raise ValueError("--init FILE goes with --pipeline finetune (and finetune needs it)")
    if data and pipeline != "finetune":  # adaptation would skip its BC round on seeded data
        raise ValueError("--data seeds a fine-tune's aggregate: use it with --pipeline finetune")
    stages = stage_settings(task, run_dir, device, progress, ratio)
    run_dir = Path(stages.out_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise ValueError(
            f"{run_dir} is not empty: pass --resume to continue it, or another --run-dir"
        )
    out = Path(out or run_dir / "policy.safetensors")
    if data:
        task.data.add(load_episode_rounds(data).episodes)
        log(f"aggregate seeded with {len(task.data)} episodes ({task.data.steps} steps)")
    t0 = time.perf_counter()
    models: dict[str, tuple[Path, float]] = {}  # kind -> (model file, ratio of the policy)
    if pipeline == "direct":
        if ratio is None:
            raise ValueError("--pipeline direct needs --ratio (0 = pure RNN, 1 = pure SNN)")
        models["direct"] = (hstnn.direct(task, stages, ratio), ratio)
        wall_s = time.perf_counter() - t0
    elif pipeline == "finetune":
        start = _start_model(task, Path(init), run_dir)
        name = _finetune_stage(Path(init))
        models["finetune"] = (hstnn.restore(task, stages, start, name=name), stages.ratio)
        wall_s = time.perf_counter() - t0
    else:
        per_ratio = {hstnn.restore_name([r]): r for r in restore_each}
        for name, path in hstnn.pipeline_stages(task, stages, restore_each=restore_each):
            if name == "restore":
                wall_s = time.perf_counter() - t0  # the main policy's training time
                models["hstnn"] = (path, stages.ratio)
            elif name in per_ratio:
                models[name] = (path, per_ratio[name])
    files: dict[str, Path] = {}
    for kind, (model_path, policy_ratio) in models.items():
        files[kind] = out if kind in ("hstnn", "direct", "finetune") else _sibling(out, kind)
        _export(task, model_path, files[kind], kind, policy_ratio, wall_s)
        log(f"wrote {files[kind]} ({files[kind].stat().st_size / 1024:.0f} KiB)")
    log(f"training wall time: {wall_s:.0f} s")
    return files


def load_episode_rounds(folders: Sequence[str | Path]) -> EpisodeDataset:
    """Every ``dagger_*.npz`` round under ``folders`` (searched recursively, in path order)."""
    data = EpisodeDataset()
    for folder in map(Path, folders):
        files = sorted(folder.rglob("dagger_*.npz"))
        if not files:
            raise ValueError(f"no dagger_*.npz episode rounds under {folder}")
        for f in files:
            data.add(EpisodeDataset.load(f).episodes)
    return data


def _finetune_stage(init: Path) -> str:
    """``finetune-<hash of init>``: the stage folder names the training worlds' seed block
    (:func:`~.imitation._run_offset`), so a fine-tune of a fine-tune collects new worlds."""
    return f"finetune-{hashlib.sha256(init.read_bytes()).hexdigest()[:8]}"


def _start_model(task: ImitationTask, init: Path, run_dir: Path) -> Path:
    """``init`` as a task model file: itself, or a policy file converted into ``run_dir``.

    A policy file must have the architecture the task's settings build (checked key by key
    and shape by shape by the load), so a fine-tune cannot silently start from another net.
    """
    _, meta = load_checkpoint(init)
    if meta.get("kind") == "task_model":
        return init
    if meta.get("kind") != "hybrid_policy":
        raise CheckpointError(f"{init} is neither a policy file nor a task model")
    policy, _ = load_policy(init)
    model = task.build_model()
    try:
        model.load_state_dict(policy.state_dict())
    except RuntimeError as exc:
        raise CheckpointError(
            f"{init} does not fit the task's policy settings: {str(exc).splitlines()[0]}"
        ) from None
    model.set_ratio(policy.spiking_ratio)
    path = run_dir / "init.safetensors"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # a resumed fine-tune keeps the file it started from
        save_model(path, task, model, {"stage": "init", "source": str(init)})
    return path


def _sibling(out: Path, kind: str) -> Path:
    """``runs/p/policy.safetensors`` + ``restore_r0.5`` -> ``runs/p/policy_r0.5.safetensors``."""
    return out.with_name(f"{out.stem}_{kind.removeprefix('restore_')}{out.suffix}")


def _export(
    task: ImitationTask, model_path: Path, policy_path: Path, kind: str, ratio: float, wall_s: float
) -> None:
    """One stage's model file as a policy file at ``ratio``, with the trainer's metadata."""
    model, meta = load_model(model_path, task, "cpu")
    model.set_ratio(ratio)
    save_policy(
        policy_path,
        model,
        extra={
            "task": task.name,
            "env": to_mapping(task.cfg.env),
            "imitation_config": to_mapping(task.cfg),
            "pipeline": kind,
            "ranking": ranking_summary(model.core),
            "train_wall_s": wall_s,
            "stage_meta": {k: meta.get(k) for k in ("stage", "train", "train_s", "seed")},
            "rollouts": task.history,
        },
    )

"""Settings of an HSTNN run on a named task, from a parameter file, ``--set`` and flags.

The stage settings (:class:`~.hstnn_config.HSTNNConfig`) are section ``hsc_hstnn`` of
``config/train.yaml``; a task's own section (``hsc_classify``, ``hsc_imitation``) may carry
its own ``hstnn`` block, which then wins.  :func:`load_hstnn_settings` is what ``hsc hstnn``
and the ratio study read their settings with::

    cfg, task = load_hstnn_settings("classify", "train", parse_overrides(["adapt_steps=50"]))

Torch-free on import (like :mod:`hybrid_snn_control.node_params`): :data:`TASKS` names each
task's loader as ``"module:function"``, so ``hsc --help`` lists the task names without
loading torch, and a task's module (MuJoCo for ``pursuit``) loads only when it runs.  No
training module imports this one, so the registry never points back at an importer.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hybrid_snn_control.config import from_mapping, load_node_params, to_mapping
from hybrid_snn_control.paths import config_file
from hybrid_snn_control.training.hstnn_config import HSTNNConfig

if TYPE_CHECKING:
    from hybrid_snn_control.training.task import Task

__all__ = ["TASKS", "load_hstnn_settings", "load_task", "parse_overrides"]

#: task name -> ``"module:function(config_path, overrides) -> Task"``
TASKS: dict[str, str] = {
    "classify": "hybrid_snn_control.training.classification:load_task",
    "pursuit": "hybrid_snn_control.training.imitation:load_task",
}


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` (``--set``) as a mapping; values are read as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_task(
    name: str, config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Task:
    """Task ``name`` of :data:`TASKS` with its section of the parameter file ``config``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    module, _, fn = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), fn)(config, dict(overrides or {}))


def load_hstnn_settings(
    task: str,
    config: str | Path = "train",
    overrides: Mapping[str, Any] | None = None,
    *,
    out_dir: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> tuple[HSTNNConfig, Task]:
    """``(HSTNNConfig, Task)`` from a parameter file, overrides and the command's flags.

    An override whose first dotted part is a stage setting goes to the stages, any other
    to the task's section; ``out_dir``, ``seed``, ``device`` and ``progress`` (None: as
    configured) win over both.
    """
    path = config_file(str(config))
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(HSTNNConfig)}
    stage_over = {k: v for k, v in overrides.items() if k.split(".")[0] in names}
    task_over = {k: v for k, v in overrides.items() if k not in stage_over}
    for key, value in (("out_dir", out_dir), ("seed", seed), ("device", device)):
        if value is not None:
            stage_over[key] = value
    if progress is not None:
        stage_over["progress"] = progress
    loaded = load_task(task, path, task_over)
    own = getattr(loaded.cfg, "hstnn", None)  # a task section may carry its own stage settings
    if isinstance(own, HSTNNConfig):
        cfg = from_mapping(HSTNNConfig, {**to_mapping(own), **stage_over}, source="--set")
    else:
        cfg = load_node_params(path, "hsc_hstnn", HSTNNConfig, stage_over)
    return cfg, loaded

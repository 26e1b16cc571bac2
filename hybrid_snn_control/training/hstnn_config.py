"""Settings of the HSTNN stages and baselines: section ``hsc_hstnn`` of ``config/train.yaml``.

A module of its own, torch-free, so that the tasks (:mod:`.imitation` carries an ``hstnn``
block), the settings loader (:mod:`.hstnn_settings`) and ``hsc config check`` read it
without loading the stages' torch code (:mod:`.hstnn`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hybrid_snn_control.config import param

__all__ = ["HSTNNConfig"]


@dataclass
class HSTNNConfig:
    """Settings of the three stages and the baselines (section ``hsc_hstnn``)."""

    out_dir: str = "runs/hstnn"
    seed: int = 0
    device: str = field(default="cpu", metadata=param(description="cpu or cuda[:N]"))
    adapt_steps: int = field(default=600, metadata=param(range=(0, 10_000_000)))
    adapt_lr: float = field(default=3e-3, metadata=param(range=(0.0, 10.0)))
    adapt_ratio_sampling: bool = False
    select_batches: int = field(default=4, metadata=param(range=(1, 100_000)))
    select_probes: int = field(default=64, metadata=param(range=(1, 100_000)))
    probes_per_pass: int = field(default=16, metadata=param(range=(1, 1024)))
    ratio: float = field(
        default=0.5, metadata=param(range=(0.0, 1.0), description="ratio stored after select")
    )
    restore_steps: int = field(default=300, metadata=param(range=(0, 10_000_000)))
    restore_lr: float = field(default=1e-3, metadata=param(range=(0.0, 10.0)))
    restore_ratios: list[float] = field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0],
        metadata=param(
            description="one ratio: fine-tune there; several: ratio sampling; "
            "empty: uniform r in [0, 1]"
        ),
    )
    checkpoint_every: int = field(default=100, metadata=param(range=(1, 10_000_000)))
    log_every: int = field(default=10, metadata=param(range=(1, 10_000_000)))
    progress: bool = True
    tensorboard: bool = True

"""Settings of ``hsc demo``: plain Python, no rclpy.

Section ``hsc_demo`` of ``config/sim.yaml``.  Kept apart from the demo itself (which
needs rclpy, MuJoCo and matplotlib) so that ``hsc config check`` can validate the section
without importing any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hybrid_snn_control.config import param

__all__ = ["DemoParams"]


@dataclass
class DemoParams:
    """Settings of ``hsc demo`` (section ``hsc_demo`` of the config file)."""

    ratios: list[float] = field(
        default_factory=lambda: [0.5, 0.25, 1.0],
        metadata=param(description="spiking_ratio per segment (one episode each)"),
    )
    episode_s: float = field(
        default=5.0,
        metadata=param(
            range=(0.5, 600.0),
            description="sim seconds per episode (the shipped policy was trained on 5 s)",
        ),
    )
    episodes_per_segment: int = field(
        default=3, metadata=param(range=(1, 1000), description="episodes at each ratio")
    )
    real_time_factor: float = field(
        default=1.0, metadata=param(range=(0.05, 10.0), description="sim s per wall s")
    )
    lockstep: bool = field(
        default=False,
        metadata=param(
            description="sim waits for each step's command (the loop then replays the direct "
            "rollout exactly); false: real time, late commands are counted"
        ),
    )
    compare_direct: bool = field(
        default=True,
        metadata=param(description="also roll the policy out directly in gym (same seeds)"),
    )
    out_dir: str = field(default="runs/demo", metadata=param(description="report folder"))
    record: str = field(
        default="",
        metadata=param(
            description="MCAP file to record the run's topics to (empty: no recording); "
            "`hsc replay <file>` checks the policy's commands against it"
        ),
    )
    timeout_s: float = field(default=600.0, metadata=param(range=(1.0, 7200.0)))

    def __post_init__(self) -> None:
        # list items carry no range metadata, so the ratios are checked here
        if not self.ratios:
            raise ValueError("ratios must name at least one spiking_ratio")
        for r in self.ratios:
            if not 0.0 <= r <= 1.0:  # NaN fails this too
                raise ValueError(f"ratios must be in [0, 1], got {r}")

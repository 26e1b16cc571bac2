"""What a deployable policy is: its architecture (:class:`PolicyConfig`) and the robot it
drives (:class:`RobotSpec`), both stored in every policy file.

Torch-free on purpose: the ONNX Runtime path of the policy node reads these from the
artefact metadata on a robot that has no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hybrid_snn_control.config import param

__all__ = ["PLASTICITY_NEEDS_HRSNN", "HRSNNCoreConfig", "PolicyConfig", "RobotSpec"]

#: why a hybrid-core policy refuses online plasticity (eager and exported runtimes alike)
PLASTICITY_NEEDS_HRSNN = (
    "online plasticity needs a policy with an HRSNN core (core: hrsnn); this policy's core "
    "is the BPTT-trained hybrid network"
)


@dataclass
class RobotSpec:
    """The robot constants a policy was trained for (defaults: the sim rover, assets/rover.xml).

    Declared once: the sim env builds its rover from these, the training run stores them in
    the policy file (``policy_config.robot``), and the policy node reads them from there;
    node parameters may override them for a different robot.  The event sensor size is the
    policy's ``event_shape`` (``[2, height, width]``), not repeated here.
    """

    wheel_radius_m: float = field(default=0.035, metadata=param(range=(1e-4, 10.0)))
    track_width_m: float = field(default=0.17, metadata=param(range=(1e-3, 10.0)))
    wheel_speed_max_radps: float = field(
        default=22.0,
        metadata=param(range=(0.1, 1e4), description="proprio normalization of wheel speeds"),
    )
    max_linear_mps: float = field(
        default=0.6, metadata=param(range=(0.0, 100.0), description="linear speed at action +1")
    )
    max_angular_rps: float = field(
        default=4.0, metadata=param(range=(0.0, 100.0), description="turn rate at action +1")
    )
    gravity_mps2: float = field(
        default=9.81,
        metadata=param(range=(0.1, 100.0), description="proprio normalization of accelerations"),
    )


@dataclass
class HRSNNCoreConfig:
    """The HRSNN core of a policy with ``core: hrsnn`` (see :mod:`.hrsnn_policy`).

    Time constants are in control steps (20 ms at 50 Hz), drawn per neuron from a gamma
    distribution with the given mean and coefficient of variation (cv 0 = homogeneous).
    """

    num_neurons: int = field(default=200, metadata=param(range=(2, 100_000)))
    excitatory_fraction: float = field(default=0.8, metadata=param(range=(0.0, 1.0)))
    connection_prob: float = field(default=0.1, metadata=param(range=(1e-6, 1.0)))
    input_connection_prob: float = field(default=0.2, metadata=param(range=(1e-6, 1.0)))
    input_scale: float = field(default=10.0, metadata=param(range=(0.0, 1e6)))
    recurrent_scale: float = field(default=1.0, metadata=param(range=(0.0, 1e6)))
    tau_mem_mean: float = field(default=3.0, metadata=param(range=(0.1, 1e6)))
    tau_mem_cv: float = field(default=1.0, metadata=param(range=(0.0, 10.0)))
    tau_thr_mean: float = field(default=30.0, metadata=param(range=(0.1, 1e6)))
    tau_thr_cv: float = field(default=1.0, metadata=param(range=(0.0, 10.0)))
    threshold_adaptation: float = field(default=0.2, metadata=param(range=(0.0, 1e3)))
    stdp: bool = True
    stdp_heterogeneous: bool = True
    stdp_eta: float = field(default=1e-3, metadata=param(range=(0.0, 1.0)))
    stdp_normalize: bool = field(
        default=True,
        metadata=param(description="synaptic scaling: rows keep their L1 norm under STDP"),
    )
    trace_decay: float = field(
        default=0.8, metadata=param(range=(0.0, 0.999), description="readout spike trace")
    )
    readout_skip: bool = field(
        default=True,
        metadata=param(description="the readout also sees the layer's input (extended state)"),
    )
    seed: int = 0


@dataclass
class PolicyConfig:
    """Architecture of a policy and the robot it drives (stored in every policy file)."""

    event_shape: list[int] = field(default_factory=lambda: [2, 64, 64])
    proprio_size: int = 8
    action_size: int = 2
    encoder: Literal["conv", "pool", "spiking_conv"] = field(
        default="conv",
        metadata=param(
            description="conv: dense strided convs (fixed MACs); pool: average pooling; "
            "spiking_conv: conv LIF layers on the events, cost counted as SynOps"
        ),
    )
    event_floor: Literal["none", "mean", "quantile"] = field(
        default="none",
        metadata=param(
            description="per-frame background subtraction before the encoder (flicker, "
            "sensor noise; policy/event_floor.py): none, mean, or the event_floor_quantile "
            "of each polarity's pixel counts"
        ),
    )
    event_floor_quantile: float = field(default=0.97, metadata=param(range=(0.5, 0.9999)))
    encoder_channels: list[int] = field(default_factory=lambda: [8, 16])
    encoder_grid: int = field(default=4, metadata=param(range=(1, 64)))
    encoder_keypoints: bool = field(
        default=False,
        metadata=param(
            description="conv/pool encoders: add each last-layer channel's spatial "
            "soft-argmax (x, y) to the grid features (policy/keypoints.py)"
        ),
    )
    encoder_decay: float = field(default=0.6, metadata=param(range=(0.0, 0.999)))
    encoder_threshold: float = field(default=0.5, metadata=param(range=(1e-3, 100.0)))
    hidden_size: int = field(default=64, metadata=param(range=(1, 4096)))
    num_layers: int = field(default=2, metadata=param(range=(1, 16)))
    spiking_cell: Literal["lif", "alif", "stc_lif", "stc_alif", "rf"] = "lif"
    recurrent_cell: Literal["lstm", "gru", "rnn"] = "lstm"
    spiking_ratio: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    rate_decay: float = field(default=0.8, metadata=param(range=(0.0, 0.999)))
    core: Literal["hybrid", "hrsnn"] = field(
        default="hybrid",
        metadata=param(
            description="hybrid: BPTT-trained HybridNetwork; hrsnn: STDP-shaped HRSNN with a "
            "ridge readout (no backprop; encoder must be pool)"
        ),
    )
    hrsnn: HRSNNCoreConfig = field(default_factory=HRSNNCoreConfig)
    robot: RobotSpec = field(default_factory=RobotSpec)

    @property
    def sensor_size(self) -> tuple[int, int]:
        """``(width, height)`` of the event input the policy reads."""
        return int(self.event_shape[2]), int(self.event_shape[1])

    def __post_init__(self) -> None:
        if len(self.event_shape) != 3 or min(self.event_shape) < 1:
            raise ValueError(f"event_shape must be [C, H, W] > 0, got {self.event_shape}")
        if self.core == "hrsnn" and self.encoder != "pool":
            raise ValueError(
                "core 'hrsnn' is trained without backprop, so its encoder cannot be learned: "
                f"use encoder 'pool', got {self.encoder!r}"
            )
        if self.encoder_keypoints and self.encoder == "spiking_conv":
            raise ValueError("encoder_keypoints needs a dense encoder (conv or pool)")

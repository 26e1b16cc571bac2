"""The policy node's control step without ROS: events in, velocities and cost out.

One control step is::

    event packets since the last step ──► EventAccumulator (vectorized counts [2, H, W])
    wheel speeds + IMU ──► proprio_vector (the sim env's 8-vector, same normalization)
            └──► PolicyController.step ──► action in [-1, 1]² ──► (v m/s, ω rad/s) + cost

``ros/policy_node.py`` only turns messages into these calls; the unit tests drive the
same code with numpy arrays, and ``hsc demo`` / the closed-loop test compare it with a
direct gym rollout of the same controller.

The spiking ratio is a mask change on the loaded weights (``HybridNetwork.set_ratio``):
no reload, no allocation in the loop, and the state of units that stay active is kept
(DESIGN §4).  Cost per step (SynOps, MACs, energy at 45 nm, firing rates; DESIGN §9) is
counted on the step that actually ran (``step_with_activity``, no second forward) with
the ``torch`` backend; the exported backends (``torchscript``, ``onnxruntime``, through
:mod:`hybrid_snn_control.deploy.runtime`) report latency only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.events.arrays import EVENT_DTYPE
from hybrid_snn_control.hybrid.ratio import check_ratio

__all__ = [
    "ControlStep",
    "EventAccumulator",
    "PolicyController",
    "StepCost",
    "proprio_vector",
    "wheel_speeds_from_twist",
]

# The sim rover's proprioception layout (sim/rover_env.py PROPRIO_NAMES):
# [left, right wheel speed / wheel_speed_max, gyro x, y, z (rad/s), accel x, y, z / g]
GRAVITY_MPS2 = 9.81
PROPRIO_SIZE = 8


def proprio_vector(
    wheel_radps: tuple[float, float] | None,
    gyro_radps: tuple[float, float, float] | None,
    accel_mps2: tuple[float, float, float] | None,
    wheel_speed_max_radps: float,
) -> np.ndarray:
    """The policy's 8-vector from robot measurements (missing parts are zero).

    Same arithmetic as the sim env (float64, then one cast to float32), so the same
    measurements give bit-identical inputs.
    """
    out = np.zeros(PROPRIO_SIZE, np.float32)
    if wheel_radps is not None:
        out[0] = wheel_radps[0] / wheel_speed_max_radps
        out[1] = wheel_radps[1] / wheel_speed_max_radps
    if gyro_radps is not None:
        out[2:5] = gyro_radps
    if accel_mps2 is not None:
        out[5:8] = np.asarray(accel_mps2, np.float64) / GRAVITY_MPS2
    return out


def wheel_speeds_from_twist(
    linear_mps: float, angular_rps: float, track_width_m: float, wheel_radius_m: float
) -> tuple[float, float]:
    """Differential-drive inverse kinematics: body twist → (left, right) wheel rad/s."""
    half = angular_rps * track_width_m / 2
    return (linear_mps - half) / wheel_radius_m, (linear_mps + half) / wheel_radius_m


class EventAccumulator:
    """Counts of the events received since the last control step, ON then OFF.

    ``push`` adds a decoded packet with one ``np.bincount`` (the layout of
    ``events.encoders.event_frame`` and of the sim env's ``events`` observation); packets
    with events outside the sensor are dropped whole and counted.  ``take`` returns the
    frame and the newest event time, and starts the next window.
    """

    def __init__(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"sensor size must be >= 1x1, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self._counts = np.zeros(2 * self.height * self.width, np.int64)
        self.events = 0
        self.newest_t_us: int | None = None
        self.packets = 0
        self.dropped_packets = 0

    def push(self, events: np.ndarray, stamp_us: int | None = None) -> str | None:
        """Add one packet; returns why it was dropped (None: accepted).

        ``stamp_us`` (the packet's header stamp) stands in for the newest event time of
        an empty packet, so a step on an empty window is still stamped with sensor time.
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
            self.dropped_packets += 1
            return f"events must be an EVENT_DTYPE array, got {getattr(events, 'dtype', events)}"
        if events.size:
            x_max, y_max = int(events["x"].max()), int(events["y"].max())
            if x_max >= self.width or y_max >= self.height:
                self.dropped_packets += 1
                return (
                    f"events outside the policy's {self.width}x{self.height} input "
                    f"(max x={x_max}, y={y_max})"
                )
            hw = self.height * self.width
            flat = (events["p"] < 0).astype(np.int64) * hw
            flat += events["y"].astype(np.int64) * self.width + events["x"]
            self._counts += np.bincount(flat, minlength=2 * hw)
            newest = int(events["t"].max())
        else:
            newest = stamp_us
        if newest is not None and (self.newest_t_us is None or newest > self.newest_t_us):
            self.newest_t_us = int(newest)
        self.events += int(events.size)
        self.packets += 1
        return None

    def take(self) -> tuple[np.ndarray, int | None, int]:
        """``(frame [2, H, W] float32, newest event µs or None, events)``; then empty."""
        frame = self._counts.astype(np.float32).reshape(2, self.height, self.width)
        out = (frame, self.newest_t_us, self.events)
        self._counts[:] = 0
        self.events = 0
        self.newest_t_us = None
        self.packets = 0
        return out


@dataclass
class StepCost:
    """Cost of one control step at the ratio it ran with (DESIGN §9, 45 nm constants)."""

    synops: float
    macs: float
    energy_pj: float
    firing_rate: list[float] = field(default_factory=list)  # per hybrid layer


@dataclass
class ControlStep:
    """What one control step produced."""

    action: np.ndarray  # [A] in [-1, 1]
    linear_mps: float
    angular_rps: float
    spiking_ratio: float
    latency_s: float  # wall time of the policy step (encode + network + cost)
    cost: StepCost | None


class PolicyController:
    """A loaded policy with its recurrent state, ratio and velocity scaling.

    ``backend``: ``torch`` (eager, with per-step cost accounting), ``torchscript`` or
    ``onnxruntime`` (the exported step graphs of :mod:`hybrid_snn_control.deploy.runtime`).
    ``max_linear_mps`` / ``max_angular_rps`` map the action's [-1, 1] to velocities
    (the sim rover's 0.6 m/s and 4 rad/s by default).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        backend: str = "torch",
        device: str = "cpu",
        spiking_ratio: float | None = None,
        max_linear_mps: float = 0.6,
        max_angular_rps: float = 4.0,
        threads: int | None = 1,
    ) -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"policy checkpoint {path} does not exist")
        self.backend = backend
        self.device = device
        self.max_linear_mps = float(max_linear_mps)
        self.max_angular_rps = float(max_angular_rps)
        self._policy = None
        self._runtime = None
        if backend == "torch":
            import torch

            from hybrid_snn_control.policy import load_policy

            if device not in ("cpu", "cuda"):
                raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
            if device == "cuda" and not torch.cuda.is_available():
                raise ValueError("device cuda: CUDA is not available to torch on this machine")
            if threads:
                torch.set_num_threads(int(threads))
            self._policy, self.meta = load_policy(path, map_location=device)
            cfg = self._policy.cfg
            self.event_shape = tuple(cfg.event_shape)
            self.proprio_size = cfg.proprio_size
            self._torch = torch
        else:
            from hybrid_snn_control.deploy.runtime import load_runtime

            self._runtime = load_runtime(path, backend=backend, threads=threads, device=device)
            self.meta = self._runtime.meta
            self.event_shape = tuple(self._runtime.event_shape)
            self.proprio_size = self._runtime.proprio_size
        if self.fixed_ratio is not None:  # e.g. an HRSNN core: all spiking, whatever was asked
            spiking_ratio = self.fixed_ratio
        elif spiking_ratio is None:  # the checkpoint's own ratio (0.0 is a valid one)
            stored = self.meta.get("spiking_ratio")
            spiking_ratio = 0.5 if stored is None else stored
        self.set_ratio(spiking_ratio)
        self.reset()

    # ---- state and ratio ---------------------------------------------------------------------
    @property
    def spiking_ratio(self) -> float:
        return self._ratio

    def set_ratio(self, r: Any) -> float:
        """Switch the ratio from the next step on (ValueError outside [0, 1] / NaN / non-real)."""
        r = check_ratio(r)
        if self._policy is not None:
            self._policy.set_ratio(r)  # masks only: weights and state untouched
        else:
            self._runtime.set_ratio(r)
        self._ratio = r
        return r

    @property
    def fixed_ratio(self) -> float | None:
        """The only ratio this policy runs at (an HRSNN core: 1.0), None if any ratio works."""
        return self._policy.fixed_ratio if self._policy is not None else None

    @property
    def plasticity(self) -> bool:
        return self._policy is not None and self._policy.plasticity

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        """Online STDP from the live events (HRSNN cores only; ValueError otherwise);
        ``rate`` scales its learning rates (None: unchanged)."""
        if on and self._policy is None:
            raise ValueError(f"online plasticity needs the torch backend, not {self.backend}")
        if self._policy is not None:
            self._policy.set_plasticity(bool(on), rate)

    def weight_norms(self) -> dict[str, float]:
        """Norms of the plastic weights (empty for a policy without plasticity)."""
        return self._policy.weight_norms() if self._policy is not None else {}

    def reset(self) -> None:
        """Zero the recurrent state (episode start, or the ``reset`` service)."""
        if self._policy is not None:
            self._device = next(self._policy.parameters()).device
            self._state = self._policy.initial_state(1, self._device)
        else:
            self._runtime.reset()

    def state_arrays(self) -> list[np.ndarray]:
        """A copy of the recurrent state (for tests: what reset and ratio changes keep)."""
        if self._policy is not None:
            return [
                t.detach().cpu().numpy().copy() for t in self._policy.flatten_state(self._state)
            ]
        return list(self._runtime.state().values())

    # ---- the step ----------------------------------------------------------------------------
    def step(self, events_frame: np.ndarray, proprio: np.ndarray) -> ControlStep:
        """One control step on ``events_frame [C, H, W]`` (counts) and ``proprio [P]``."""
        if events_frame.shape != self.event_shape:
            raise ValueError(f"events frame must be {self.event_shape}, got {events_frame.shape}")
        if proprio.shape != (self.proprio_size,):
            raise ValueError(f"proprio must be [{self.proprio_size}], got {proprio.shape}")
        t0 = time.perf_counter()
        cost = None
        if self._policy is not None:
            action, cost = self._torch_step(events_frame, proprio)
        else:
            action = self._runtime.step(events_frame, proprio)
        latency = time.perf_counter() - t0
        action = np.asarray(action, np.float64).reshape(-1)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"policy produced a non-finite action {action}")
        return ControlStep(
            action=action,
            linear_mps=float(action[0]) * self.max_linear_mps,
            angular_rps=float(action[1]) * self.max_angular_rps,
            spiking_ratio=self._ratio,
            latency_s=latency,
            cost=cost,
        )

    def _torch_step(self, frame: np.ndarray, proprio: np.ndarray):
        torch, policy = self._torch, self._policy
        dev = self._device
        with torch.inference_mode():
            ev = torch.from_numpy(np.ascontiguousarray(frame, np.float32))[None].to(dev)
            pr = torch.from_numpy(np.ascontiguousarray(proprio, np.float32))[None].to(dev)
            action, self._state, report = policy.step_with_efficiency(ev, pr, self._state)
            action = action[0].cpu().numpy()
        cost = StepCost(
            synops=report.synops_per_step,
            macs=report.macs_per_step,
            energy_pj=report.energy_pj_per_step,
            firing_rate=[float(r) for r in report.firing_rate],
        )
        return action, cost


def percentiles_ms(samples_s: list[float], qs=(50, 90, 99)) -> dict[str, float]:
    """``{"p50": ms, ...}`` of latency samples in seconds (NaN when empty)."""
    if not samples_s:
        return {f"p{q}": math.nan for q in qs}
    arr = np.asarray(samples_s) * 1e3
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


def rollout_episode(
    controller: PolicyController, env: Any, seed: int, v_max_mps: float, omega_max_rps: float
) -> dict[str, float]:
    """One lock-step gym episode of ``controller`` (the reference for the ROS closed loop).

    The action goes through the same arithmetic as the ROS path (scaled to m/s and rad/s,
    then back to the env's normalized action by sim_node), so a closed loop where every
    command arrives in time reproduces this episode.  Like policy_node, which also steps on
    the terminal observation sim_node publishes (its command is never applied), the
    controller steps once more at the end: that only matters with online plasticity, whose
    weight update of that step carries into the next episode.
    """
    obs, _ = env.reset(seed=seed)
    controller.reset()
    while True:
        out = controller.step(obs["events"], obs["proprio"])
        action = np.clip([out.linear_mps / v_max_mps, out.angular_rps / omega_max_rps], -1, 1)
        obs, _, terminated, truncated, info = env.step(action.astype(np.float32))
        if terminated or truncated:
            controller.step(obs["events"], obs["proprio"])
            return {k: float(v) for k, v in info["episode_metrics"].items()}

"""The policy node's control step without ROS: events in, velocities and cost out.

One control step is::

    event packets since the last step ──► EventAccumulator (vectorized counts [2, H, W])
    wheel speeds + IMU ──► proprio_vector (the sim env's 8-vector, same normalization)
            └──► PolicyController.step ──► runtime.step ──► action in [-1, 1]²
                 ──► (v m/s, ω rad/s) scaled by the RobotSpec + cost of the step

``ros/policy_node.py`` only turns messages into these calls; the unit tests drive the
same code with numpy arrays, and ``hsc demo`` / the closed-loop test compare it with a
direct gym rollout of the same controller.

Input is never trusted: packets whose events fall outside the sensor or whose times a ROS
stamp cannot carry are dropped whole and counted; non-finite inputs to the step are zeroed
(= missing) and counted; a non-finite action, whatever its cause, becomes a zero command,
is counted and clears the recurrent state it would otherwise poison for good — the node
keeps running (:mod:`hybrid_snn_control.robot.proprio` validates the sensor readings).

The controller holds one runtime (:mod:`hybrid_snn_control.deploy.runtime`: ``torch``,
``torchscript`` or ``onnxruntime``), which owns the ratio, the recurrent state and the
cost; the controller adds the robot: the :class:`~hybrid_snn_control.policy.config.RobotSpec`
stored with the policy (action scales, wheel geometry, proprio normalization), of which
node parameters may override single values.  A ratio change is a mask change on the
loaded weights (no reload, state of kept units kept; DESIGN §4).  With ``onnxruntime``
on an ``.onnx`` file nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.config import from_mapping
from hybrid_snn_control.deploy.runtime import (
    StepCost,
    load_runtime,
    require_policy_file,
    resolve_backend,
)
from hybrid_snn_control.events.arrays import EVENT_DTYPE, empty_events
from hybrid_snn_control.events.codecs import EventTimeError, check_times_us
from hybrid_snn_control.policy.config import RobotSpec

__all__ = [
    "ControlStep",
    "EventAccumulator",
    "PolicyController",
    "StepCost",
    "policy_robot_spec",
    "proprio_vector",
    "resolve_backend",
    "wheel_speeds_from_twist",
]

# The sim rover's proprioception layout (sim/rover_env.py PROPRIO_NAMES):
# [left, right wheel speed / wheel_speed_max, gyro x, y, z (rad/s), accel x, y, z / g]
PROPRIO_SIZE = 8


def proprio_vector(
    wheel_radps: tuple[float, float] | None,
    gyro_radps: tuple[float, float, float] | None,
    accel_mps2: tuple[float, float, float] | None,
    wheel_speed_max_radps: float,
    gravity_mps2: float = RobotSpec.gravity_mps2,
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
        out[5:8] = np.asarray(accel_mps2, np.float64) / gravity_mps2
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
    with events outside the sensor (``dropped_outside_sensor``) or with times a ROS stamp
    cannot carry (``dropped_bad_time``: before 1970, after 2038) are dropped whole and
    counted.  ``take`` returns the frame and the newest event time, and starts the next
    window.
    """

    def __init__(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"sensor size must be >= 1x1, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self._counts = np.zeros(2 * self.height * self.width, np.int64)
        self.events = 0
        self.newest_t_us: int | None = None
        self.packet_t_us: int | None = None  # of the last accepted packet: newest event / stamp
        self.packets = 0
        self.dropped_packets = 0
        self.dropped_outside_sensor = 0
        self.dropped_bad_time = 0

    def push(self, events: np.ndarray, stamp_us: int | None = None) -> str | None:
        """Add one packet; returns why it was dropped (None: accepted).

        ``stamp_us`` (the packet's header stamp) stands in for the newest event time of
        an empty packet, so a step on an empty window is still stamped with sensor time.
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
            self.dropped_packets += 1
            return f"events must be an EVENT_DTYPE array, got {getattr(events, 'dtype', events)}"
        try:  # the newest time stamps the command: a wrapped stamp must never come of it
            check_times_us(events, stamp_us if not events.size else None)
        except EventTimeError as exc:
            self.dropped_packets += 1
            self.dropped_bad_time += 1
            return str(exc)
        if events.size:
            x_max, y_max = int(events["x"].max()), int(events["y"].max())
            if x_max >= self.width or y_max >= self.height:
                self.dropped_packets += 1
                self.dropped_outside_sensor += 1
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
        self.packet_t_us = None if newest is None else int(newest)
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
class ControlStep:
    """What one control step produced."""

    action: np.ndarray  # [A] in [-1, 1]
    linear_mps: float
    angular_rps: float
    spiking_ratio: float
    latency_s: float  # wall time of the policy step (encode + network + cost)
    cost: StepCost | None
    fault: str | None = None  # why the action was replaced by zero (None: a normal step)


def policy_robot_spec(meta: Mapping[str, Any]) -> RobotSpec:
    """The :class:`RobotSpec` stored in a policy's (or an artefact's) metadata; policies
    saved before the spec was stored were all trained on the sim rover: its defaults."""
    stored = meta.get("policy_config", {}).get("robot")
    return RobotSpec() if stored is None else from_mapping(RobotSpec, stored, "policy robot")


class PolicyController:
    """A loaded policy's runtime plus the robot it drives.

    ``backend``: ``torch`` (eager, any core), ``torchscript`` or ``onnxruntime`` (the
    exported step graphs), or ``auto`` (:func:`~hybrid_snn_control.deploy.runtime.resolve_backend`);
    every backend reports each step's cost.  ``robot_overrides`` replaces single
    :class:`RobotSpec` values of the policy's stored spec (e.g. ``{"max_linear_mps": 0.3}``
    on a robot slower than the one the policy was trained for).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        backend: str = "torch",
        device: str = "cpu",
        spiking_ratio: float | None = None,
        robot_overrides: Mapping[str, float] | None = None,
        threads: int | None = 1,
    ) -> None:
        path = require_policy_file(checkpoint, "policy checkpoint")
        self.device = device
        self.runtime = load_runtime(path, backend=backend, threads=threads, device=device)
        self.backend = self.runtime.backend  # what "auto" resolved to
        self.meta = self.runtime.meta
        self.event_shape = tuple(self.runtime.event_shape)
        self.proprio_size = self.runtime.proprio_size
        #: steps whose inputs held NaN / inf (zeroed) and steps whose action did (zero command)
        self.nonfinite_inputs = 0
        self.nonfinite_actions = 0
        self._stored_robot = policy_robot_spec(self.meta)
        self.set_robot_overrides(robot_overrides or {})
        if spiking_ratio is not None and self.runtime.fixed_ratio is None:
            self.set_ratio(spiking_ratio)  # else the stored ratio (or the fixed one) stays

    def set_robot_overrides(self, overrides: Mapping[str, float]) -> RobotSpec:
        """The policy's stored RobotSpec with ``overrides`` replacing single values (an empty
        mapping restores the stored spec); applies from the next step."""
        self.robot = dataclasses.replace(self._stored_robot, **overrides)
        return self.robot

    # ---- ratio, plasticity, state: the runtime's -----------------------------------------
    @property
    def spiking_ratio(self) -> float:
        return self.runtime.spiking_ratio

    def set_ratio(self, r: Any) -> float:
        """Switch the ratio from the next step on (ValueError outside [0, 1] / NaN / non-real)."""
        return self.runtime.set_ratio(r)

    @property
    def fixed_ratio(self) -> float | None:
        """The only ratio this policy runs at (an HRSNN core: 1.0), None if any ratio works."""
        return self.runtime.fixed_ratio

    @property
    def plasticity(self) -> bool:
        return self.runtime.plasticity

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        """Online STDP from the live events (torch backend, HRSNN cores; ValueError otherwise);
        ``rate`` scales its learning rates (None: unchanged)."""
        self.runtime.set_plasticity(on, rate)

    def weight_norms(self) -> dict[str, float]:
        """Norms of the plastic weights (empty for a policy without plasticity)."""
        return self.runtime.weight_norms()

    def reset(self) -> None:
        """Zero the recurrent state (episode start, or the ``reset`` service)."""
        self.runtime.reset()

    def state_arrays(self) -> list[np.ndarray]:
        """A copy of the recurrent state (for tests: what reset and ratio changes keep)."""
        return list(self.runtime.state().values())

    # ---- the step ----------------------------------------------------------------------------
    def proprio(
        self,
        wheel_radps: tuple[float, float] | None,
        gyro_radps: tuple[float, float, float] | None,
        accel_mps2: tuple[float, float, float] | None,
    ) -> np.ndarray:
        """:func:`proprio_vector` normalized with this robot's spec."""
        r = self.robot
        return proprio_vector(
            wheel_radps, gyro_radps, accel_mps2, r.wheel_speed_max_radps, r.gravity_mps2
        )

    def step(self, events_frame: np.ndarray, proprio: np.ndarray) -> ControlStep:
        """One control step on ``events_frame [C, H, W]`` (counts) and ``proprio [P]``.

        Never returns a non-finite command: NaN / inf inputs are zeroed (counted in
        ``nonfinite_inputs``); a non-finite action gives a zero command with ``fault`` set
        (counted in ``nonfinite_actions``) and resets the recurrent state, which would
        otherwise carry the NaN into every later step.
        """
        if events_frame.shape != self.event_shape:
            raise ValueError(f"events frame must be {self.event_shape}, got {events_frame.shape}")
        if proprio.shape != (self.proprio_size,):
            raise ValueError(f"proprio must be [{self.proprio_size}], got {proprio.shape}")
        fault = None
        # a finite sum proves every element finite (one cheap reduction per step); the exact
        # elementwise test runs only when it is not
        if not (math.isfinite(proprio.sum()) and math.isfinite(events_frame.sum())) and not (
            np.isfinite(proprio).all() and np.isfinite(events_frame).all()
        ):
            self.nonfinite_inputs += 1
            proprio = np.where(np.isfinite(proprio), proprio, 0).astype(proprio.dtype)
            events_frame = np.where(np.isfinite(events_frame), events_frame, 0).astype(
                events_frame.dtype
            )
        t0 = time.perf_counter()
        action = self.runtime.step(events_frame, proprio)
        latency = time.perf_counter() - t0
        action = np.asarray(action, np.float64).reshape(-1)
        if not math.isfinite(action.sum()) and not np.isfinite(action).all():
            self.nonfinite_actions += 1
            fault = (
                f"policy produced a non-finite action {action}: zero command, recurrent state reset"
            )
            action = np.zeros_like(action)
            self.runtime.reset()
        return ControlStep(
            action=action,
            linear_mps=float(action[0]) * self.robot.max_linear_mps,
            angular_rps=float(action[1]) * self.robot.max_angular_rps,
            spiking_ratio=self.runtime.spiking_ratio,
            latency_s=latency,
            cost=self.runtime.last_cost,
            fault=fault,
        )


def percentiles_ms(samples_s: list[float], qs=(50, 90, 99)) -> dict[str, float]:
    """``{"p50": ms, ...}`` of latency samples in seconds (NaN when empty)."""
    if not samples_s:
        return {f"p{q}": math.nan for q in qs}
    arr = np.asarray(samples_s) * 1e3
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


def rollout_episode(
    controller: PolicyController,
    env: Any,
    seed: int,
    v_max_mps: float,
    omega_max_rps: float,
    adaptive: Any = None,
) -> dict[str, float]:
    """One lock-step gym episode of ``controller`` (the reference for the ROS closed loop).

    The action goes through the same arithmetic as the ROS path (scaled to m/s and rad/s,
    then back to the env's normalized action by sim_node), so a closed loop where every
    command arrives in time reproduces this episode.  Like policy_node, which also steps on
    the terminal observation sim_node publishes (its command is never applied), the
    controller steps once more at the end: that only matters with online plasticity, whose
    weight update of that step carries into the next episode.

    ``adaptive`` (an :class:`~hybrid_snn_control.robot.adaptive_ratio.AdaptiveRatio`) sees
    each step's raw events after the step, as policy_node's governor does (the reset
    observation has none: sim_node publishes it empty); the metrics then carry the
    governor's switches and the mean energy per step.
    """
    obs, _ = env.reset(seed=seed)
    controller.reset()
    if adaptive is not None:
        adaptive.reset()
    events = empty_events()
    energy: list[float] = []
    while True:
        out = controller.step(obs["events"], obs["proprio"])
        if adaptive is not None:
            adaptive.after_step(events, out)
        if out.cost is not None:
            energy.append(out.cost.energy_pj)
        action = np.clip([out.linear_mps / v_max_mps, out.angular_rps / omega_max_rps], -1, 1)
        obs, _, terminated, truncated, info = env.step(action.astype(np.float32))
        last = env.unwrapped.last_events
        events = empty_events() if last is None else last
        if terminated or truncated:
            controller.step(obs["events"], obs["proprio"])
            metrics = {k: float(v) for k, v in info["episode_metrics"].items()}
            if energy:
                metrics["energy_nj_per_step"] = float(np.mean(energy)) * 1e-3
            if adaptive is not None:
                metrics["ratio_switches"] = float(adaptive.governor.counters.switches)
                budget = adaptive.governor.energy_budget_nj
                if budget and energy:  # the share of steps that kept the energy budget
                    metrics["steps_within_energy_budget"] = float(
                        np.mean(np.asarray(energy) * 1e-3 <= budget)
                    )
            return metrics

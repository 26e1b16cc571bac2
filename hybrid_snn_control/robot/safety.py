"""The last gate before the motors: velocity/acceleration limits, a watchdog and an e-stop latch.

Plain Python (no rclpy), so the rules a robot relies on are unit-tested without ROS;
``ros/actuator_node.py`` only turns messages into calls of :class:`CommandGate`.
Velocities are 6-tuples ``(linear x, y, z, angular x, y, z)`` in m/s and rad/s, the
order of ``geometry_msgs/Twist``.  Times are seconds of a monotonic clock.

States::

    IDLE ──command──► ACTIVE ──no command for cmd_timeout_s──► TIMED_OUT ──command──► ACTIVE
    any ──estop(True)──► ESTOP ──estop(False)──► IDLE   (needs a fresh command to move again)

* IDLE: not armed. Nothing is published, so the gate never fights another source of
  ``cmd_vel`` before the policy has spoken.
* ACTIVE: each accepted command is clamped to the velocity limits and passed through at
  once, with the change from the last output limited by the acceleration limits
  (``|Δv| ≤ a_max · Δt``, ``Δt`` capped at ``max_step_s`` so a pause does not allow a jump);
  :meth:`CommandGate.on_tick` keeps ramping towards the last command between commands.
  An axis within one step of its goal lands *on* it (``cur + (goal − cur)`` is not always
  ``goal`` in floating point), so a ramp ends and ticks stop re-sending.
* TIMED_OUT / ESTOP: the output is zero, immediately (a stop is never slowed down by the
  acceleration limit), and :meth:`CommandGate.on_tick` keeps asserting zero.
* The e-stop is a latch: one ``True`` holds it even if its publisher dies; only an
  explicit ``False`` clears it, and commands received while it was engaged are dropped.
* Non-finite commands (NaN, ±inf) are rejected and counted; the previous output stays.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

__all__ = [
    "ZERO",
    "CommandGate",
    "Decision",
    "GateCounters",
    "GateState",
    "SafetyLimits",
    "Velocity",
    "wheel_velocities",
]

Velocity = tuple[float, float, float, float, float, float]
ZERO: Velocity = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SafetyLimits:
    """Per-axis limits, in ``Twist`` order. An acceleration limit of 0 means "no limit"."""

    max_velocity: Velocity
    max_accel: Velocity
    cmd_timeout_s: float
    max_step_s: float

    def __post_init__(self) -> None:
        for name in ("max_velocity", "max_accel"):
            values = getattr(self, name)
            if len(values) != 6 or any(not math.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"{name} must be 6 finite values >= 0, got {values!r}")
        if not self.cmd_timeout_s > 0 or not self.max_step_s > 0:
            raise ValueError(
                f"cmd_timeout_s and max_step_s must be > 0, got "
                f"{self.cmd_timeout_s!r} and {self.max_step_s!r}"
            )

    @classmethod
    def ground_robot(
        cls,
        *,
        max_linear_mps: float,
        max_lateral_mps: float,
        max_angular_rps: float,
        max_linear_accel_mps2: float,
        max_angular_accel_rps2: float,
        cmd_timeout_s: float,
        max_step_s: float,
    ) -> SafetyLimits:
        """A planar robot: moves along x (and y if holonomic) and turns about z only."""
        return cls(
            max_velocity=(max_linear_mps, max_lateral_mps, 0.0, 0.0, 0.0, max_angular_rps),
            max_accel=(
                *(max_linear_accel_mps2, max_linear_accel_mps2, 0.0),
                *(0.0, 0.0, max_angular_accel_rps2),
            ),
            cmd_timeout_s=cmd_timeout_s,
            max_step_s=max_step_s,
        )


class GateState(enum.Enum):
    IDLE = "idle"
    ACTIVE = "active"
    TIMED_OUT = "timed_out"
    ESTOP = "estop"


@dataclass
class GateCounters:
    """What the gate did since start; reported on ``/diagnostics``."""

    commands_accepted: int = 0
    rejected_nonfinite: int = 0
    ignored_during_estop: int = 0
    velocity_clamped: int = 0
    accel_limited: int = 0
    timeouts: int = 0
    estops: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Decision(NamedTuple):
    """What to do with one input: ``publish`` (None: nothing) and why a command was dropped."""

    publish: Velocity | None
    rejected: str | None = None


class CommandGate:
    """The actuator's state machine (see the module docstring)."""

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self.state = GateState.IDLE
        self.counters = GateCounters()
        self.output: Velocity = ZERO
        self.target: Velocity = ZERO
        self._last_command_s: float | None = None
        self._last_output_s: float | None = None

    def command_age_s(self, now_s: float) -> float | None:
        """Seconds since the last accepted command (None before the first)."""
        return None if self._last_command_s is None else now_s - self._last_command_s

    def on_command(self, velocity: Sequence[float], now_s: float) -> Decision:
        """A new velocity command: validate, clamp, rate-limit; the output to publish now."""
        v = tuple(float(c) for c in velocity)
        if len(v) != 6:
            raise ValueError(f"a velocity command has 6 components, got {len(v)}")
        if not all(math.isfinite(c) for c in v):
            self.counters.rejected_nonfinite += 1
            return Decision(None, "non-finite value (NaN or inf) in command")
        if self.state is GateState.ESTOP:
            self.counters.ignored_during_estop += 1
            return Decision(None, "e-stop engaged")
        target = _clamp(v, self.limits.max_velocity)
        if target != v:
            self.counters.velocity_clamped += 1
        self.counters.commands_accepted += 1
        self.target = target
        self.state = GateState.ACTIVE
        self._last_command_s = now_s
        return Decision(self._step(now_s))

    def on_tick(self, now_s: float) -> Velocity | None:
        """The periodic check: watchdog, ramping between commands, asserting zero when stopped."""
        if self.state is GateState.IDLE:
            return None
        if self.state is GateState.ACTIVE and now_s - self._last_command_s >= (
            self.limits.cmd_timeout_s
        ):
            self.counters.timeouts += 1
            self.state = GateState.TIMED_OUT
        if self.state in (GateState.TIMED_OUT, GateState.ESTOP):
            return self._hold_zero(now_s)
        if self.output != self.target:
            return self._step(now_s)
        return None

    def on_estop(self, engaged: bool, now_s: float) -> Velocity | None:
        """Engage (zero now, latched) or clear (back to IDLE: wait for a fresh command)."""
        if engaged:
            if self.state is not GateState.ESTOP:
                self.counters.estops += 1
                self.state = GateState.ESTOP
            return self._hold_zero(now_s)
        if self.state is GateState.ESTOP:
            self.state = GateState.IDLE
        return None

    def stop(self, now_s: float) -> Velocity:
        """Shutdown: zero, whatever the state."""
        self.state = GateState.IDLE
        return self._hold_zero(now_s)

    def _hold_zero(self, now_s: float) -> Velocity:
        self.output = self.target = ZERO
        self._last_output_s = now_s
        return ZERO

    def _step(self, now_s: float) -> Velocity:
        if self._last_output_s is None:
            dt = self.limits.max_step_s
        else:
            dt = min(max(now_s - self._last_output_s, 0.0), self.limits.max_step_s)
        out = []
        limited = False
        for cur, goal, a_max in zip(self.output, self.target, self.limits.max_accel):
            delta = goal - cur
            if a_max > 0.0 and abs(delta) > a_max * dt:
                out.append(cur + math.copysign(a_max * dt, delta))
                limited = True
            else:
                out.append(goal)
        if limited:
            self.counters.accel_limited += 1
        self.output = tuple(out)  # type: ignore[assignment]
        self._last_output_s = now_s
        return self.output


def _clamp(v: Velocity, limit: Velocity) -> Velocity:
    return tuple(min(max(c, -m), m) for c, m in zip(v, limit))  # type: ignore[return-value]


def wheel_velocities(
    velocity: Sequence[float],
    wheel_separation_m: float,
    wheel_radius_m: float,
    wheels_per_side: int = 1,
) -> list[float]:
    """Differential-drive inverse kinematics: wheel speeds in rad/s, left wheels then right.

    ``ω_left = (v_x − ω_z·s/2) / r``, ``ω_right = (v_x + ω_z·s/2) / r``; the order matches the
    ``joints`` list of a ros2_control forward velocity controller configured left-first.
    """
    if wheel_separation_m <= 0 or wheel_radius_m <= 0 or wheels_per_side < 1:
        raise ValueError(
            "wheel_separation_m and wheel_radius_m must be > 0 and wheels_per_side >= 1, got "
            f"{wheel_separation_m!r}, {wheel_radius_m!r}, {wheels_per_side!r}"
        )
    v_x, w_z = float(velocity[0]), float(velocity[5])
    left = (v_x - w_z * wheel_separation_m / 2.0) / wheel_radius_m
    right = (v_x + w_z * wheel_separation_m / 2.0) / wheel_radius_m
    return [left] * wheels_per_side + [right] * wheels_per_side

"""Proprioception as the policy sees it: validated like event input, held, and aged out.

Wheel speeds and IMU readings arrive on their own topics at their own rates; the control
step reads the latest *good* value of each part.  A reading with a NaN / ±inf or a
magnitude no real sensor produces (a driver fault, a corrupted message, ``1e300``) is
dropped and counted, and the last good value is held — one bad message must not reach
the network, whose recurrent state it would poison for good.  A held value older than
``stale_after_s`` counts as missing (zero, the same as a sensor that never spoke): a
sensor that only sends garbage must not freeze the policy's view of the robot.

Plain Python and numpy (no rclpy), so the rule is unit-tested without ROS; times are
seconds of a monotonic clock, given by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

__all__ = ["ProprioCounters", "ProprioFilter", "ProprioLimits"]

PARTS = {"wheels": 2, "gyro": 3, "accel": 3}


@dataclass(frozen=True)
class ProprioLimits:
    """Largest magnitudes accepted per part, and how long a good value is held."""

    max_wheel_radps: float
    # ~5700 °/s and ~200 g: beyond the full scale of any MEMS IMU, so only faults exceed them
    max_gyro_radps: float = 100.0
    max_accel_mps2: float = 2000.0
    stale_after_s: float = 0.5

    @classmethod
    def for_wheels(cls, wheel_speed_max_radps: float, **kw: float) -> ProprioLimits:
        """Wheel speeds up to 10× the robot's normalization (slip and spin-up included)."""
        return cls(max_wheel_radps=10.0 * float(wheel_speed_max_radps), **kw)

    def bound(self, part: str) -> float:
        return {
            "wheels": self.max_wheel_radps,
            "gyro": self.max_gyro_radps,
            "accel": self.max_accel_mps2,
        }[part]


@dataclass
class ProprioCounters:
    """What the filter dropped since start; reported in ``~/status`` and ``/diagnostics``."""

    proprio_dropped_nonfinite: int = 0
    proprio_dropped_out_of_range: int = 0
    proprio_went_stale: int = 0  # times a held part aged out and became zero

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ProprioFilter:
    """Latest good wheel speeds, gyro and accelerometer readings (see the module docstring)."""

    def __init__(self, limits: ProprioLimits) -> None:
        self.limits = limits
        self.counters = ProprioCounters()
        self._value: dict[str, tuple[float, ...]] = {}
        self._time_s: dict[str, float] = {}
        self._stale: set[str] = set()

    def update(self, part: str, values: Sequence[float], now_s: float) -> str | None:
        """Take one reading of ``part`` (wheels / gyro / accel); returns why it was dropped."""
        try:
            v = tuple(float(c) for c in values)
        except (TypeError, ValueError):
            self.counters.proprio_dropped_nonfinite += 1
            return f"{part}: not numbers"
        if len(v) != PARTS[part]:
            raise ValueError(f"{part} has {PARTS[part]} components, got {len(v)}")
        if not all(math.isfinite(c) for c in v):
            self.counters.proprio_dropped_nonfinite += 1
            return f"{part} {_show(v)}: non-finite value (NaN or inf)"
        bound = self.limits.bound(part)
        if any(abs(c) > bound for c in v):
            self.counters.proprio_dropped_out_of_range += 1
            return f"{part} {_show(v)}: beyond ±{bound:g}"
        self._value[part] = v
        self._time_s[part] = now_s
        self._stale.discard(part)
        return None

    def current(self, now_s: float) -> dict[str, tuple[float, ...] | None]:
        """``{part: latest good value, or None when never seen or older than stale_after_s}``."""
        out: dict[str, tuple[float, ...] | None] = {}
        for part in PARTS:
            t = self._time_s.get(part)
            if t is not None and now_s - t > self.limits.stale_after_s:
                if part not in self._stale:
                    self._stale.add(part)
                    self.counters.proprio_went_stale += 1
                out[part] = None
            else:
                out[part] = self._value.get(part)
        return out


def _show(v: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{c:.4g}" for c in v) + ")"

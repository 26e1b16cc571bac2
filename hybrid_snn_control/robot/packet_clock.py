"""When a packet-driven controller (``trigger: events``) may step: at most once per control
period of *packet time*, whatever the packet rate.

A simulator in lock-step, or a driver that sends one packet per control period, gets one
step per packet; a flood (10,000 empty packets/s, a driver misconfigured to 1 kHz) gets
the configured rate.  Packets that do not step are coalesced: their events stay in the
accumulator and go into the next step, so nothing is lost but the extra steps.

The rule is a token bucket in packet time (the packet's newest event, or its stamp when
it is empty): ``rate_hz`` tokens per second of packet time, at most ``burst`` (2) held, one
per step.  Two tokens make one-packet-per-period sources exact even though a packet's
time may fall anywhere inside its period: with packet ``k`` in ``((k − 1)·P, k·P]`` the
bucket never holds less than one token when a packet arrives.  Packet time is measured
against the newest time seen (a packet from the past earns nothing); a jump back by more
than ``restart_s`` (a sensor or simulator restart) starts a new time line.
"""

from __future__ import annotations

__all__ = ["PacketStepGate"]

_EPS = 1e-6  # tokens: float rounding of exact one-per-period stamps


class PacketStepGate:
    """``due(t_us)``: True when a packet of packet time ``t_us`` should trigger a step."""

    def __init__(self, rate_hz: float, burst: float = 2.0, restart_s: float = 1.0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_us = rate_hz * 1e-6
        self.burst = float(burst)
        self.restart_us = restart_s * 1e6
        self.tokens = self.burst
        self.newest_us: int | None = None
        self.coalesced = 0  # packets that did not step (their events went into the next step)
        self.restarts = 0  # time lines restarted by a backward jump

    def due(self, t_us: int) -> bool:
        newest = self.newest_us
        if newest is None:
            self.newest_us = t_us
        elif t_us > newest:
            self.tokens = min(self.burst, self.tokens + (t_us - newest) * self.rate_per_us)
            self.newest_us = t_us
        elif newest - t_us > self.restart_us:
            self.restarts += 1
            self.newest_us = t_us
        if self.tokens >= 1.0 - _EPS:
            self.tokens -= 1.0
            return True
        self.coalesced += 1
        return False

    def reset(self) -> None:
        """A new episode: forget the time line, the next packets step."""
        self.tokens = self.burst
        self.newest_us = None

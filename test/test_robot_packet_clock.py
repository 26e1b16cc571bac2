"""The packet-time step gate of ``trigger: events`` (issue 18, finding 4)."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_snn_control.robot.packet_clock import PacketStepGate

P = 20_000  # µs: 50 Hz


def test_one_packet_per_period_steps_every_packet_wherever_its_time_falls_in_the_period():
    # a simulator's packet carries the time of its newest event, anywhere in its period,
    # or the step time when it is empty: every packet must still step (lock-step == gym)
    rng = np.random.default_rng(0)
    gate = PacketStepGate(50.0)
    t0 = 1_700_000_000_000_000
    times = [t0] + [t0 + k * P - int(rng.integers(0, P)) for k in range(1, 5000)]
    times[1::7] = [t0 + k * P for k in range(1, 5000, 7)]  # some empty packets: the step time
    times[2::5] = [t0 + (k - 1) * P + 1 for k in range(2, 5000, 5)]  # right after the last tick
    assert all(gate.due(t) for t in times)
    assert gate.coalesced == 0


def test_a_flood_is_held_to_the_configured_rate_and_its_packets_are_coalesced():
    gate = PacketStepGate(100.0)
    t0 = 1_700_000_000_000_000
    stamps = t0 + np.arange(0, 10_000_000, 100)  # 10 kHz for 10 s of packet time
    steps = sum(gate.due(int(t)) for t in stamps)
    assert 1000 <= steps <= 1002  # 100 Hz (+ the initial burst of 2)
    assert gate.coalesced == stamps.size - steps


def test_a_backward_jump_restarts_the_time_line_and_old_packets_earn_nothing():
    gate = PacketStepGate(50.0)
    t0 = 1_700_000_000_000_000
    assert gate.due(t0) and gate.due(t0 + P)
    # duplicates and small reorders (older than the newest) earn no tokens
    assert sum(gate.due(t0 + P - 5) for _ in range(100)) <= 1
    # a sensor restart: time goes back by more than restart_s; the new line runs at rate
    back = t0 - 10_000_000
    steps = sum(gate.due(back + k * 1000) for k in range(1, 1001))  # 1 kHz for 1 s
    assert gate.restarts == 1 and 49 <= steps <= 52


def test_reset_lets_the_next_packet_step():
    gate = PacketStepGate(50.0)
    t0 = 1_700_000_000_000_000
    assert gate.due(t0) and gate.due(t0 + 1) and not gate.due(t0 + 2)
    gate.reset()
    assert gate.due(t0 + 3)


@pytest.mark.parametrize("rate, burst", [(0.0, 2.0), (-1.0, 2.0), (50.0, 0.5)])
def test_bad_gate_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        PacketStepGate(rate, burst)

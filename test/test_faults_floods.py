"""Floods against running nodes (issue 18, finding 4), each from a separate process.

policy_node + actuator_node run in one child process (as ``hsc bringup`` runs them), the
flooder in another; this process records ``cmd_vel`` and the policy's ``~/status`` and
samples the stack's RSS (:mod:`hybrid_snn_control.ros.flood`).  Before the fix, 10,000
empty packets/s with ``trigger: events`` stepped the policy 300×/s and ``cmd_vel`` ran at
250–500 Hz; now the step keeps its configured rate, extra packets are coalesced and
counted, and drops in transport are counted.  The bounds here are loose (a shared 2-core
CI machine); ``python -m hybrid_snn_control.ros.flood --seconds 20`` prints the figures.
"""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from hybrid_snn_control.ros.flood import run_flood

RATE_HZ = 100.0
CMD_TIMEOUT_S = 0.25


def _held(r) -> None:
    # rate and gaps of the actuator's publications (their DDS source timestamps): what the
    # stack did.  Arrival gaps here also hold this process's own delays under the flood (CI
    # once saw a 348 ms arrival gap), so they are printed, not asserted.
    assert abs(r.cmd_vel_hz - RATE_HZ) <= 0.1 * RATE_HZ, r.line()  # 100 Hz, not 300
    assert r.max_gap_ms < 1e3 * CMD_TIMEOUT_S, r.line()  # never long enough to time out


def test_empty_packet_flood_with_trigger_events_keeps_the_configured_rate():
    r = run_flood(
        "empty", seconds=5.0, trigger="events", rate_hz=RATE_HZ, cmd_timeout=CMD_TIMEOUT_S
    )
    _held(r)
    assert r.sent > 20_000  # the flood really ran (10 kHz)
    s = r.status
    assert s["packets_coalesced"] > 1000 and s["packets_in"] > s["step"]
    assert s["packets_in"] + s["dropped_in_transport"] > 0.9 * r.sent  # every packet accounted
    assert r.rss_growth_mb <= 50


def test_10_mev_per_s_flood_with_trigger_timer_keeps_the_rate_and_counts_losses():
    r = run_flood("big", seconds=5.0, trigger="timer", rate_hz=RATE_HZ, cmd_timeout=CMD_TIMEOUT_S)
    _held(r)
    s = r.status
    lost = max(s["dropped_in_transport"], s["lost_in_middleware"])
    assert s["packets_in"] > 0 and s["packets_in"] + lost > 0.9 * r.sent
    assert r.rss_growth_mb <= 50


def test_50_mb_packets_are_cut_before_decoding_and_memory_stays_bounded():
    r = run_flood("huge", seconds=6.0, trigger="timer", rate_hz=RATE_HZ, cmd_timeout=CMD_TIMEOUT_S)
    _held(r)
    s = r.status
    delivered = s["packets_in"]
    # best effort over UDP loses most 50 MB samples; the middleware reports those it knows
    assert delivered + max(s["dropped_in_transport"], s["lost_in_middleware"]) >= 1
    if delivered:  # each 5.5 M-event packet was cut to max_events_per_packet (1 M) first
        assert s["dropped_overflow_events"] >= delivered * 4_000_000
    # what stays is Fast DDS's reassembly buffer of one 50 MB sample (47.8 MB measured with
    # no packet delivered at all): the 50 MB, +10 % for allocator noise
    assert r.rss_growth_mb <= 55, r.line()
    assert r.rss_peak_growth_mb <= 6 * 50, r.line()  # at most the queue (depth 5) + one


def test_a_parameter_request_flood_is_answered_and_does_not_stall_the_loop():
    # finding 6: ratio toggled at ~600 requests/s; every change is a mask change between
    # steps, logged at most once a second (a guard: this held before the fix here too)
    r = run_flood(
        "params", seconds=5.0, trigger="timer", rate_hz=RATE_HZ, cmd_timeout=CMD_TIMEOUT_S
    )
    _held(r)
    assert r.sent > 2000 and r.answered >= 0.95 * r.sent, r.line()
    assert r.status["ratio_changes"] >= 0.95 * r.sent  # applied by the node, not just answered


def test_a_packet_above_max_events_is_cut_to_its_newest_points_before_decoding():
    import numpy as np

    from hybrid_snn_control.events.arrays import EVENT_DTYPE
    from hybrid_snn_control.ros.event_msgs import events_to_pointcloud2, pointcloud2_to_events

    ev = np.zeros(1000, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = np.arange(1000) % 32, np.arange(1000) // 32, 1
    ev["t"] = 1_700_000_000_000_000 + np.arange(1000)
    msg = events_to_pointcloud2(ev, "cam")
    out = pointcloud2_to_events(msg, max_events=100)
    np.testing.assert_array_equal(out, ev[-100:])
    np.testing.assert_array_equal(pointcloud2_to_events(msg, max_events=5000), ev)
    msg.data = bytes(msg.data)[:-9]  # truncated: still refused, not silently cut
    with pytest.raises(ValueError):
        pointcloud2_to_events(msg, max_events=100)

"""The actuator's rules without ROS: a fake clock makes every transition exact."""

from __future__ import annotations

import itertools
import math

import pytest

from hybrid_snn_control.robot.safety import (
    ZERO,
    CommandGate,
    GateState,
    SafetyLimits,
    wheel_velocities,
)


def gate(timeout_s=0.5, step_s=0.02, v=(1.0, 0.0, 2.0), a=(0.0, 0.0)) -> CommandGate:
    return CommandGate(
        SafetyLimits.ground_robot(
            max_linear_mps=v[0],
            max_lateral_mps=v[1],
            max_angular_rps=v[2],
            max_linear_accel_mps2=a[0],
            max_angular_accel_rps2=a[1],
            cmd_timeout_s=timeout_s,
            max_step_s=step_s,
        )
    )


def cmd(vx=0.0, wz=0.0, vy=0.0):
    return (vx, vy, 0.0, 0.0, 0.0, wz)


def test_not_armed_before_the_first_command():
    g = gate()
    for t in range(100):
        assert g.on_tick(t * 0.1) is None
    assert g.state is GateState.IDLE
    assert g.on_command(cmd(0.3), 10.0).publish == cmd(0.3)
    assert g.state is GateState.ACTIVE


def test_watchdog_zeroes_exactly_at_cmd_timeout_and_rearms_on_a_command():
    g = gate(timeout_s=0.5)
    g.on_command(cmd(0.3, 1.0), 0.0)
    assert g.on_tick(0.49) is None  # fresh, nothing to ramp
    assert g.on_tick(0.5) == ZERO
    assert g.state is GateState.TIMED_OUT and g.counters.timeouts == 1
    assert g.on_tick(0.6) == ZERO  # keeps asserting zero
    assert g.counters.timeouts == 1
    assert g.on_command(cmd(0.2), 0.7).publish == cmd(0.2)
    assert g.state is GateState.ACTIVE


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_commands_are_rejected_counted_and_leave_the_output(bad):
    g = gate()
    g.on_command(cmd(0.3), 0.0)
    d = g.on_command(cmd(bad), 0.01)
    assert d.publish is None and "non-finite" in d.rejected
    d = g.on_command((0.1, 0.0, 0.0, 0.0, bad, 0.0), 0.02)
    assert d.publish is None
    assert g.counters.rejected_nonfinite == 2 and g.counters.commands_accepted == 1
    assert g.output == cmd(0.3)


def test_nan_before_the_first_command_does_not_arm():
    g = gate()
    assert g.on_command(cmd(math.nan), 0.0).publish is None
    assert g.state is GateState.IDLE and g.on_tick(1.0) is None


def test_velocity_limits_clamp_each_axis_and_zero_the_axes_a_ground_robot_lacks():
    g = gate(v=(0.5, 0.0, 1.5))
    out = g.on_command((3.0, 1.0, 1.0, 1.0, 1.0, -9.0), 0.0).publish
    assert out == (0.5, 0.0, 0.0, 0.0, 0.0, -1.5)
    assert g.counters.velocity_clamped == 1
    g.on_command(cmd(0.1), 0.01)
    assert g.counters.velocity_clamped == 1


def test_acceleration_limit_ramps_per_real_time_and_ticks_continue_the_ramp():
    g = gate(timeout_s=5.0, step_s=0.02, a=(1.0, 4.0))  # 1 m/s², 4 rad/s²
    out = g.on_command(cmd(0.5, 2.0), 0.0).publish
    assert out[0] == pytest.approx(0.02) and out[5] == pytest.approx(0.08)
    outs = [g.on_tick(0.02 * k) for k in range(1, 40)]
    vx = [o[0] for o in outs if o is not None]
    assert all(b - a <= 0.02 + 1e-12 for a, b in itertools.pairwise(vx))
    assert vx[-1] == pytest.approx(0.5)
    assert g.on_tick(0.02 * 40) is None  # reached: nothing more to publish
    # a long pause must not allow a jump: Δt is capped at max_step_s
    out = g.on_command(cmd(-0.5), 0.02 * 40 + 0.3).publish
    assert out[0] == pytest.approx(0.48)
    assert g.counters.accel_limited > 0


def test_estop_latches_until_an_explicit_clear_and_then_needs_a_fresh_command():
    g = gate(a=(1.0, 1.0))
    for k in range(30):
        g.on_command(cmd(0.5), 0.02 * k)
    assert g.output[0] > 0
    assert g.on_estop(True, 1.0) == ZERO  # immediate, not ramped down
    assert g.state is GateState.ESTOP and g.counters.estops == 1
    for k in range(10):  # commands keep coming, the latch holds
        assert g.on_command(cmd(0.5), 1.0 + 0.01 * k).publish is None
        assert g.on_tick(1.0 + 0.01 * k) == ZERO
    assert g.on_tick(100.0) == ZERO  # holds forever, no timeout transition
    assert g.counters.ignored_during_estop == 10
    assert g.on_estop(True, 100.1) == ZERO and g.counters.estops == 1
    assert g.on_estop(False, 101.0) is None
    assert g.state is GateState.IDLE and g.on_tick(101.5) is None
    assert g.on_command(cmd(0.5), 102.0).publish[0] == pytest.approx(0.02)  # ramps from 0


def test_stop_returns_zero_from_any_state():
    g = gate()
    g.on_command(cmd(0.4), 0.0)
    assert g.stop(0.1) == ZERO and g.output == ZERO


def test_limits_reject_negative_or_non_finite_values():
    with pytest.raises(ValueError, match="max_velocity"):
        SafetyLimits((1, 1, 1, 1, 1, -1), (0,) * 6, 0.5, 0.02)
    with pytest.raises(ValueError, match="max_accel"):
        SafetyLimits((1,) * 6, (0, 0, 0, 0, 0, math.nan), 0.5, 0.02)
    with pytest.raises(ValueError, match="cmd_timeout_s"):
        SafetyLimits((1,) * 6, (0,) * 6, 0.0, 0.02)


def test_wheel_velocities_are_differential_drive_inverse_kinematics():
    # v = 0.2 m/s, ω = 1 rad/s, track 0.3 m, radius 0.05 m
    assert wheel_velocities(cmd(0.2, 1.0), 0.3, 0.05) == pytest.approx([1.0, 7.0])
    assert wheel_velocities(cmd(0.2, 1.0), 0.3, 0.05, 2) == pytest.approx([1, 1, 7, 7])
    assert wheel_velocities(ZERO, 0.3, 0.05) == [0.0, 0.0]
    with pytest.raises(ValueError, match="wheel_radius_m"):
        wheel_velocities(ZERO, 0.3, 0.0)

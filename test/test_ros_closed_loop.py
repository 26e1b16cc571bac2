"""The closed loop with real rclpy: sim_node → policy_node → actuator_node → sim_node.

No ROS mocks: the nodes run in one executor (as under ``hsc bringup``; the whole loop
through ``hsc demo``'s own harness, ``ros/closed_loop.py``), the policy node in its own
process where the test kills it.  Every test uses its own namespace.  The shipped pursuit
policy drives the sim; time bounds are generous upper limits (the machine is shared),
measured values are printed with ``-s``.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from hybrid_snn_control import cli  # noqa: E402
from hybrid_snn_control.events.arrays import EVENT_DTYPE  # noqa: E402
from hybrid_snn_control.ros.actuator_node import ActuatorNode  # noqa: E402
from hybrid_snn_control.ros.closed_loop import ClosedLoop, as_parameters, call_service  # noqa: E402
from hybrid_snn_control.ros.direct_rollout import direct_scores  # noqa: E402
from hybrid_snn_control.ros.event_msgs import events_to_pointcloud2  # noqa: E402
from hybrid_snn_control.ros.policy_node import PolicyNode, policy_node_controller  # noqa: E402
from hybrid_snn_control.ros.runner import run_nodes  # noqa: E402
from hybrid_snn_control.ros.settings import PolicySettings, SimSettings  # noqa: E402
from hybrid_snn_control.ros.sim_node import SimNode  # noqa: E402

SEED = 2_000_000_007
EPISODE_S = 2.5
SIM_ACTUATOR = {
    "stamp_source": "command",
    "max_linear_mps": 0.6,
    "max_angular_rps": 4.0,
    "max_linear_accel_mps2": 0.0,
    "max_angular_accel_rps2": 0.0,
}


@pytest.fixture(scope="module")
def direct_episode_scores() -> list[float]:
    """The shipped policy lock-step in the gym env on sim_node's first two worlds, no ROS."""
    controller = policy_node_controller(PolicySettings(spiking_ratio=0.5))
    (scores,) = direct_scores(
        controller, SimSettings(episode_s=EPISODE_S), [(0.5, (SEED, SEED + 1))]
    )
    return scores


def test_closed_loop_through_topics_matches_the_direct_gym_score_and_ratio_switches_live(
    ros_context, direct_episode_scores
):
    loop = ClosedLoop(
        ros_context,
        namespace="loop_score",
        actuator=SIM_ACTUATOR,
        policy={"trigger": "events", "spiking_ratio": 0.5},
        sim={"seed": SEED, "episode_s": EPISODE_S, "lockstep": True},
    )
    with loop:
        policy, sim, statuses = loop.policy, loop.sim, loop.statuses
        # 1. two whole episodes at ratio 0.5: the scores through topics vs the direct rollout
        assert loop.spin_until(lambda: len(sim.episodes) >= 2, 120.0), "episodes did not finish"
        for ep, direct in zip(sim.episodes, direct_episode_scores):
            score = ep["normalized_score"]
            print(
                f"\nclosed loop score {score:.4f} vs direct {direct:.4f} "
                f"({ep['late_commands']}/{ep['steps']} late commands, "
                f"loop latency p50 {ep.get('loop_latency_p50_ms', math.nan):.2f} ms)"
            )
            # With lockstep every sim step waits for the command answering the previous
            # one, so the loop through topics is the lock-step gym rollout: same
            # observations, same arithmetic, the same score (the second episode also checks
            # that the state reset at the episode boundary lands between the episodes).
            # Only a step that waited past lockstep_timeout_s (0.5 s; a stalled machine)
            # reuses the previous command; such a step can move a short pursuit score by a
            # few hundredths: 0.05 per step.
            assert abs(score - direct) <= 1e-6 + 0.05 * ep["late_commands"]
        # the starts of episodes 0, 1 and 2 each reset the recurrent state
        assert loop.spin_until(lambda: policy.resets >= 3, 5.0)

        # 2. SetParameters from another node: accepted, in effect within one control period
        n_before = len(statuses)
        macs_before = np.mean([s["macs"] for s in statuses[-20:]])
        res = loop.set_policy_parameter("spiking_ratio", 0.25)
        assert res.successful, res.reason
        step_at_accept = policy.steps
        assert loop.spin_until(
            lambda: any(s["step"] > step_at_accept for s in statuses[n_before:]), 5.0
        )
        first_after = next(s for s in statuses[n_before:] if s["step"] > step_at_accept)
        assert first_after["spiking_ratio"] == 0.25  # the very next step runs at the new ratio
        assert first_after["macs"] != macs_before  # and the status shows the new cost

        # 3. invalid values are rejected with a reason; the ratio stays 0.25
        for bad in (1.5, -0.2, float("nan"), "half"):
            res = loop.set_policy_parameter("spiking_ratio", bad)
            assert not res.successful and res.reason, bad
            assert policy.controller.spiking_ratio == 0.25
        print(f"rejection reason for 1.5: {loop.set_policy_parameter('spiking_ratio', 1.5).reason}")


def test_a_live_shift_mid_episode_is_seeded_logged_and_the_loop_still_equals_gym(ros_context):
    """sim_node starts noisy_sensor at 1 s of each episode; the lock-step loop through
    topics gives the same score as the direct rollout with the same plan, and the episode
    metrics split the score at the shift."""
    live = {"live_shift": "noisy_sensor", "live_shift_at_s": 1.0}
    controller = policy_node_controller(PolicySettings(spiking_ratio=0.5))
    ((direct,),) = direct_scores(
        controller, SimSettings(episode_s=EPISODE_S, **live), [(0.5, (SEED,))]
    )
    loop = ClosedLoop(
        ros_context,
        namespace="loop_live_shift",
        actuator=SIM_ACTUATOR,
        policy={"trigger": "events", "spiking_ratio": 0.5},
        sim={"seed": SEED, "episode_s": EPISODE_S, "lockstep": True, **live},
    )
    with loop:
        assert loop.spin_until(lambda: len(loop.sim.episodes) >= 1, 120.0)
        ep = loop.sim.episodes[0]
        assert ep["shift_step"] == 50  # 1 s at 50 Hz
        assert 0 <= ep["score_before_shift"] <= 1 and 0 <= ep["score_after_shift"] <= 1
        w = loop.sim.sim.world
        assert 8.0 <= w["shot_noise_rate_hz"] <= 20.0 and 0.06 <= w["threshold_sigma"] <= 0.1
        assert abs(ep["normalized_score"] - direct) <= 1e-6 + 0.05 * ep["late_commands"]


#: a profile in which noisy_sensor favours r = 0 and nominal r = 0.5 (synthetic numbers)
GOVERNOR_PROFILE = {
    "ratios": [0.0, 0.5, 1.0],
    "conditions": {
        label: [
            {"ratio": r, "score": s, "energy_nj": e, "latency_ms": 1.0}
            for r, s, e in zip((0.0, 0.5, 1.0), scores, (900.0, 700.0, 550.0))
        ]
        for label, scores in {
            "nominal": (0.78, 0.80, 0.55),
            "noisy_sensor": (0.60, 0.30, 0.20),
            "flicker": (0.60, 0.50, 0.20),
        }.items()
    },
}
#: detection bound: the noise estimate's 0.5 s window needs <= 20 steps at the weakest
#: noisy_sensor rate (8 Hz/px vs the 6 Hz/px threshold), then 10 confirming steps
DETECTION_BOUND_STEPS = 30


def test_the_governor_detects_a_mid_episode_noise_shift_and_the_loop_equals_gym(
    ros_context, tmp_path
):
    """ratio_mode adaptive in policy_node, noisy_sensor switched on at 1 s: the governor
    switches to the profile's best ratio for it within the bound, and the lock-step loop
    through topics gives the direct rollout's score with the same governor."""
    from hybrid_snn_control.robot.adaptive_ratio import AdaptiveRatio, load_profile
    from hybrid_snn_control.robot.controller import rollout_episode
    from hybrid_snn_control.ros.sim_node import make_env
    from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS

    profile = tmp_path / "policy.profile.json"
    profile.write_text(json.dumps(GOVERNOR_PROFILE))
    live = {"live_shift": "noisy_sensor", "live_shift_at_s": 1.0}
    sim = SimSettings(episode_s=EPISODE_S, **live)
    controller = policy_node_controller(PolicySettings(spiking_ratio=0.5))
    adaptive = AdaptiveRatio(controller, load_profile(profile), "adaptive", rate_hz=50.0)
    env = make_env(sim)
    try:
        direct = rollout_episode(controller, env, SEED, V_MAX_MPS, OMEGA_MAX_RADPS, adaptive)
    finally:
        env.close()
    (switch,) = adaptive.switch_log
    assert switch["ratio"] == 0.0 and "noisy_sensor" in switch["reason"]
    shift_step = 50  # 1 s at 50 Hz; the governor's step count starts at the reset observation
    assert 0 < switch["step"] - shift_step <= DETECTION_BOUND_STEPS, switch
    print(f"\ndetected after {switch['step'] - shift_step} steps: {switch['reason']}")

    loop = ClosedLoop(
        ros_context,
        namespace="loop_governor",
        actuator=SIM_ACTUATOR,
        policy={
            "trigger": "events",
            "spiking_ratio": 0.5,
            "ratio_mode": "adaptive",
            "ratio_profile": str(profile),
        },
        sim={"seed": SEED, "episode_s": EPISODE_S, "lockstep": True, **live},
    )
    with loop:
        assert loop.spin_until(lambda: len(loop.sim.episodes) >= 1, 120.0)
        ep = loop.sim.episodes[0]
        assert (
            abs(ep["normalized_score"] - direct["normalized_score"])
            <= 1e-6 + 0.05 * ep["late_commands"]
        )
        governed = [s for s in loop.statuses if s.get("governor_switches")]
        assert governed and governed[0]["condition"] == "noisy_sensor"
        assert governed[0]["spiking_ratio"] == 0.0 or governed[-1]["spiking_ratio"] == 0.0
        # /diagnostics carries the estimates and the switch
        from diagnostic_msgs.msg import DiagnosticArray

        diags: list = []
        loop.operator.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: diags.extend(m.status), 10
        )
        assert loop.spin_until(
            lambda: any(
                kv.key == "governor_switches" and int(kv.value) >= 1
                for d in diags
                for kv in d.values
            ),
            5.0,
        )
        # a manual set puts the governor in fixed mode
        assert loop.set_policy_parameter("spiking_ratio", 0.25).successful
        assert loop.policy.adaptive.governor.mode == "fixed"
        assert loop.set_policy_parameter("ratio_mode", "adaptive").successful
        assert loop.policy.adaptive.governor.mode == "adaptive"


def packet_msg(n: int, stamp_ns: int, width: int = 32) -> PointCloud2:
    rng = np.random.default_rng(n)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, width, n), rng.integers(0, 32, n)
    ev["t"] = stamp_ns // 1000
    ev["p"] = rng.choice([-1, 1], n)
    return events_to_pointcloud2(ev, "event_camera")


def test_reset_service_clears_state_and_malformed_packets_are_dropped(ros_context, spin):
    ns = "policy_reset"
    ex = SingleThreadedExecutor(context=ros_context)
    policy = PolicyNode(
        context=ros_context, namespace=ns, parameter_overrides=as_parameters({"trigger": "events"})
    )
    driver = Node("driver", namespace=ns, context=ros_context)
    pub = driver.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
    cmds: list[TwistStamped] = []
    driver.create_subscription(TwistStamped, "cmd", cmds.append, 10)
    reset = driver.create_client(Trigger, f"/{ns}/policy_node/reset")
    ex.add_node(policy)
    ex.add_node(driver)
    assert spin(ex, lambda: pub.get_subscription_count() > 0, 10.0)
    now_ns = time.time_ns()
    for k in range(5):  # one control period (50 Hz) apart: one step each
        pub.publish(packet_msg(300, now_ns + k * 20_000_000))
        assert spin(ex, lambda k=k: policy.steps == k + 1, 5.0)
    assert any(np.abs(s).sum() > 0 for s in policy.controller.state_arrays())
    newest_ns = (now_ns + 4 * 20_000_000) // 1000 * 1000  # the command carries the event time
    assert spin(
        ex,
        lambda: any(c.header.stamp.sec * 10**9 + c.header.stamp.nanosec == newest_ns for c in cmds),
        5.0,
    )
    res = call_service(ex, reset, Trigger.Request())
    assert res.success
    assert all(np.abs(s).sum() == 0 for s in policy.controller.state_arrays())
    # malformed: x outside the policy's 32x32 input, and a truncated data buffer
    pub.publish(packet_msg(50, now_ns, width=40))
    assert spin(ex, lambda: policy.dropped_out_of_range == 1, 5.0)
    bad = packet_msg(50, now_ns)
    bad.data = bytes(bad.data)[:-7]
    pub.publish(bad)
    assert spin(ex, lambda: policy.dropped_malformed == 1, 5.0)
    pub.publish(packet_msg(10, now_ns + 100_000_000))  # the loop keeps running
    assert spin(ex, lambda: policy.steps == 6, 5.0)
    ex.shutdown()
    policy.destroy_node()
    driver.destroy_node()


def test_corrupt_or_missing_checkpoint_is_a_startup_error(tmp_path, capfd):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00" * 64)
    code = run_nodes([PolicyNode], args=["--ros-args", "-p", f"checkpoint:={bad}"])
    assert code == 2
    code = run_nodes(
        [PolicyNode], args=["--ros-args", "-p", f"checkpoint:={tmp_path / 'missing.safetensors'}"]
    )
    assert code == 2
    err = capfd.readouterr().err
    assert "PolicyNode could not start" in err and "does not exist" in err


def test_killing_the_policy_node_makes_the_actuator_send_zero_within_cmd_timeout(ros_context, spin):
    ns = "policy_killed"
    timeout_s = 0.3
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybrid_snn_control.ros.policy_node",
            "--ros-args",
            "-r",
            f"__ns:=/{ns}",
            "-p",
            "trigger:=events",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ex = SingleThreadedExecutor(context=ros_context)
        actuator = ActuatorNode(
            context=ros_context,
            namespace=ns,
            parameter_overrides=as_parameters({**SIM_ACTUATOR, "cmd_timeout": timeout_s}),
        )
        driver = Node("driver", namespace=ns, context=ros_context)
        pub = driver.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
        out: list[tuple[float, float]] = []
        driver.create_subscription(
            TwistStamped,
            "cmd_vel",
            lambda m: out.append((time.monotonic(), m.twist.angular.z)),
            100,
        )
        driver.create_timer(0.02, lambda: pub.publish(packet_msg(200, time.time_ns())))
        ex.add_node(actuator)
        ex.add_node(driver)
        assert spin(ex, lambda: len(out) >= 10, 60.0), "policy process did not drive cmd_vel"
        assert any(w != 0.0 for _, w in out)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        killed = time.monotonic()
        n = len(out)
        assert spin(ex, lambda: any(w == 0.0 for _, w in out[n:]), 5.0)
        t_zero = next(t for t, w in out[n:] if w == 0.0)
        last_cmd = max((t for t, w in out[:n] if w != 0.0), default=killed)
        print(f"\npolicy killed: zero {1e3 * (t_zero - last_cmd):.0f} ms after its last command")
        assert t_zero - last_cmd >= timeout_s - 0.05  # the watchdog, not something else
        assert t_zero - last_cmd < timeout_s + 1.0
        ex.shutdown()
        actuator.destroy_node()
        driver.destroy_node()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_hsc_demo_switches_the_ratio_through_set_parameters_and_writes_the_report(tmp_path, capsys):
    argv = ["demo", "--ratios", "0.5,0.25", "--episode-s", "1", "--episodes", "1"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert [s["ratio"] for s in result["segments"]] == [0.5, 0.25]
    assert result["switches"][0]["ok"] and result["switches"][0]["ratio"] == 0.25
    assert not result["rejected"]["accepted"] and result["rejected"]["ratio_after"] == 0.25
    for seg in result["segments"]:
        assert 0.0 <= seg["score"] <= 1.0 and 0.0 <= seg["direct_score"] <= 1.0
        assert seg["energy_nj_per_step"] > 0
    assert (tmp_path / "demo.png").stat().st_size > 0
    assert "SetParameters" in (tmp_path / "report.md").read_text()
    assert "score (ROS loop)" in capsys.readouterr().out


def test_sim_node_takes_twist_resets_episodes_and_keeps_the_clock_monotonic(ros_context, spin):
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import UInt32

    from hybrid_snn_control.ros.actuator_node import COMMAND_QOS, ESTOP_QOS

    ns = "sim_alone"
    ex = SingleThreadedExecutor(context=ros_context)
    sim = SimNode(
        context=ros_context,
        namespace=ns,
        parameter_overrides=as_parameters({"cmd_type": "twist", "episode_s": 10.0}),
    )
    driver = Node("driver", namespace=ns, context=ros_context)
    cmd = driver.create_publisher(Twist, "cmd_vel", COMMAND_QOS)
    episodes: list[int] = []
    driver.create_subscription(UInt32, "episode", lambda m: episodes.append(m.data), ESTOP_QOS)
    metrics: list[dict] = []
    driver.create_subscription(
        String, f"/{ns}/sim_node/metrics", lambda m: metrics.append(json.loads(m.data)), 10
    )
    odom: list[Odometry] = []
    driver.create_subscription(Odometry, "odom", odom.append, 100)
    clock_ns: list[int] = []
    driver.create_subscription(
        Clock, "/clock", lambda m: clock_ns.append(m.clock.sec * 10**9 + m.clock.nanosec), 100
    )
    reset = driver.create_client(Trigger, f"/{ns}/sim_node/reset_episode")
    ex.add_node(sim)
    ex.add_node(driver)
    assert spin(ex, lambda: cmd.get_subscription_count() > 0, 10.0)
    go = Twist()
    go.linear.x = 0.6  # full speed ahead: action (1, 0)
    cmd.publish(go)
    assert spin(ex, lambda: len(odom) >= 25, 10.0)
    np.testing.assert_allclose(sim.action, [1.0, 0.0])
    assert odom[-1].twist.twist.linear.x > 0.1  # the rover drives
    res = call_service(ex, reset, Trigger.Request())
    assert res.success
    assert spin(ex, lambda: len(metrics) == 1 and 1 in episodes, 5.0)
    assert metrics[0]["reset_by_service"] and "normalized_score" not in metrics[0]
    n = len(clock_ns)
    assert spin(ex, lambda: len(clock_ns) >= n + 5, 5.0)
    assert all(b > a for a, b in itertools.pairwise(clock_ns))  # /clock never goes back
    ex.shutdown()
    sim.destroy_node()
    driver.destroy_node()


def test_timer_trigger_steps_at_rate_hz_on_the_events_since_the_last_step(ros_context, spin):
    ns = "policy_timer"
    ex = SingleThreadedExecutor(context=ros_context)
    policy = PolicyNode(
        context=ros_context,
        namespace=ns,
        parameter_overrides=as_parameters({"trigger": "timer", "rate_hz": 50.0}),
    )
    driver = Node("driver", namespace=ns, context=ros_context)
    pub = driver.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
    statuses: list[dict] = []
    driver.create_subscription(
        String, f"/{ns}/policy_node/status", lambda m: statuses.append(json.loads(m.data)), 100
    )
    ex.add_node(policy)
    ex.add_node(driver)
    assert spin(ex, lambda: len(statuses) >= 3, 5.0)  # steps without any events, too
    assert all(s["events"] == 0 for s in statuses)
    n = len(statuses)
    for k in range(3):  # three packets between two ticks are one step's events
        pub.publish(packet_msg(100, time.time_ns() + k))
    assert spin(ex, lambda: sum(s["events"] for s in statuses[n:]) >= 300, 5.0)
    assert max(s["events"] for s in statuses[n:]) > 100  # accumulated, not one step each
    ex.shutdown()
    policy.destroy_node()
    driver.destroy_node()


def test_sim_images_through_event_camera_node_become_event_packets(ros_context, spin):
    from hybrid_snn_control.ros.event_camera_node import EventCameraNode

    ns = "sim_images"
    ex = SingleThreadedExecutor(context=ros_context)
    sim = SimNode(
        context=ros_context,
        namespace=ns,
        parameter_overrides=as_parameters({"publish_images": True, "publish_events": False}),
    )
    camera = EventCameraNode(
        context=ros_context,
        namespace=ns,
        parameter_overrides=as_parameters({"width": 32, "height": 32, "packet_ms": 0.0}),
    )
    driver = Node("driver", namespace=ns, context=ros_context)
    packets: list[PointCloud2] = []
    driver.create_subscription(PointCloud2, "events", packets.append, qos_profile_sensor_data)
    cmd = driver.create_publisher(TwistStamped, "cmd_vel", 1)
    for n in (sim, camera, driver):
        ex.add_node(n)
    turn = TwistStamped()
    turn.twist.angular.z = 3.0  # turning makes the whole view move: events for sure
    assert spin(ex, lambda: cmd.get_subscription_count() > 0, 10.0)
    cmd.publish(turn)
    assert spin(ex, lambda: len(packets) >= 3, 10.0), "no events from the image path"
    assert camera.stream.counters.dropped_malformed == 0
    assert all(p.width > 0 for p in packets)
    ex.shutdown()
    for n in (driver, camera, sim):
        n.destroy_node()


def test_governed_modes_need_a_ratio_profile(ros_context, tmp_path):
    import shutil

    from hybrid_snn_control.policy import default_policy_path

    bare = tmp_path / "policy.safetensors"  # no policy.profile.json beside it
    shutil.copy(default_policy_path(), bare)
    with pytest.raises(ValueError, match="needs the policy's ratio profile"):
        PolicyNode(
            context=ros_context,
            namespace="no_profile",
            parameter_overrides=as_parameters({"checkpoint": str(bare), "ratio_mode": "adaptive"}),
        )
    node = PolicyNode(
        context=ros_context, namespace="no_profile2", parameter_overrides=as_parameters(
            {"checkpoint": str(bare)})
    )  # fmt: skip
    try:
        res = node.set_parameters([rclpy.parameter.Parameter("ratio_mode", value="budget")])[0]
        assert not res.successful and "profile" in res.reason
        assert node.adaptive is None and node.get_parameter("ratio_mode").value == "fixed"
    finally:
        node.destroy_node()


def test_hsc_eval_ratio_mode_runs_the_governor_with_the_baselines(capsys):
    import json as _json

    code = cli.main(
        ["eval", "--ratio-mode", "adaptive", "--live-shift", "noisy_sensor", "--live-shift-at-s",
         "1", "--episode-s", "2", "--episodes", "1", "--seed", "40", "--json"]
    )  # fmt: skip
    assert code == 0
    out = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = out["table"]
    assert set(table) == {"expert", "zero_action", "adaptive"}
    (row,) = [r for r in out["rows"] if r["model"] == "adaptive"]
    assert row["shift_step"] == 50 and row["ratio_switches"] >= 1  # the shift was detected
    assert "adaptive" not in out["paired"] and "expert" in out["paired"]

"""Hostile parameter files and values (issue 18, findings 2, 3 and the duplicate-key item).

* a YAML alias bomb inside a parameter value (a few hundred bytes, billions of values
  once expanded) must be rejected quickly, not expanded into an error message;
* an integer for a float parameter (``spiking_ratio: 1``, ``cmd_timeout: 1``) must be
  taken the same way by ``hsc config check`` and by the nodes ``hsc bringup`` starts,
  and a live integer ``SetParameters`` must be accepted as that float;
* duplicate keys must be an error, not "the last one wins".

The bomb runs in a child process with an address-space limit and a timeout, in its own
process group, so a regression fails the test instead of hanging or swapping CI.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hybrid_snn_control.config import ConfigError, coerce_value, load_parameter_file, param
from hybrid_snn_control.node_params import validate_file

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from hybrid_snn_control.ros.actuator_node import ActuatorNode  # noqa: E402
from hybrid_snn_control.ros.params import ParameterBinding  # noqa: E402
from hybrid_snn_control.ros.policy_node import PolicyNode  # noqa: E402

BOMB_LIMIT_AS = 1 << 30  # 1 GiB of address space: the import of the CLI needs ~0.3
BOMB_TIMEOUT_S = 60.0


def alias_bomb(levels: int = 9, fan: int = 9) -> str:
    """A policy_node section whose ``spiking_ratio`` holds ``fan ** levels`` strings."""
    items = ["&a0 [" + ", ".join(["lol"] * fan) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "policy_node:\n  ros__parameters:\n    spiking_ratio: [" + ", ".join(items) + "]\n"


def _limit_child() -> None:
    os.setsid()  # its own group: the timeout kills everything it started
    resource.setrlimit(resource.RLIMIT_AS, (BOMB_LIMIT_AS, BOMB_LIMIT_AS))


def run_hsc_limited(args: list[str], cwd: Path) -> tuple[int, str, float]:
    """``hsc <args>`` in a memory-limited child; ``(exit code, stderr, seconds)``."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybrid_snn_control.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_child,
    )
    try:
        _, err = proc.communicate(timeout=BOMB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hsc {' '.join(args)} still running after {BOMB_TIMEOUT_S} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err, time.monotonic() - t0


@pytest.mark.parametrize(
    "command", [["config", "check"], ["bringup", "--duration", "1", "--config"]]
)
def test_alias_bomb_is_rejected_fast_by_config_check_and_bringup(tmp_path, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert bomb.stat().st_size < 600
    code, err, seconds = run_hsc_limited([*command, str(bomb)], tmp_path)
    print(
        f"hsc {command[0]} on a {bomb.stat().st_size}-byte alias bomb: exit {code}, {seconds:.2f} s"
    )
    assert code == 2, err[-2000:]
    assert "expands to more than" in err and "bomb.yaml" in err
    assert "Traceback" not in err


def test_small_anchors_aliases_and_merge_keys_still_load(tmp_path):
    p = tmp_path / "anchors.yaml"
    p.write_text(
        "/**:\n  ros__parameters: &common\n    rate_hz: 50.0\n    frame_id: base\n"
        "policy_node:\n  ros__parameters:\n    <<: *common\n    rate_hz: 20.0\n"
    )
    assert load_parameter_file(p) == {
        "/**": {"rate_hz": 50.0, "frame_id": "base"},
        "policy_node": {"rate_hz": 20.0, "frame_id": "base"},  # a merge overridden: no duplicate
    }


def test_recursive_alias_is_a_config_error(tmp_path):
    p = tmp_path / "loop.yaml"
    p.write_text("policy_node:\n  ros__parameters:\n    spiking_ratio: &x [1, *x]\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_parameter_file(p)


def test_error_messages_echo_a_bounded_value():
    big = [list(range(1000))] * 1000  # a million numbers, cheap to build by sharing
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        coerce_value(big, float, "spiking_ratio", param(range=(0.0, 1.0)))
    seconds, message = time.perf_counter() - t0, str(err.value)
    assert len(message) < 200, f"{len(message)} characters: {message[:200]}"
    assert seconds < 0.5
    assert "parameter 'spiking_ratio' must be a number" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("policy_node:\n  ros__parameters:\n    spiking_ratio: 0.5\n    spiking_ratio: 0.9\n", 3),
        ("policy_node:\n  ros__parameters: {}\npolicy_node:\n  ros__parameters: {}\n", 1),
    ],
)
def test_duplicate_keys_are_rejected_with_both_lines(tmp_path, capsys, text, line):
    p = tmp_path / "dup.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=f"duplicate key .*first at line {line}"):
        load_parameter_file(p)
    from hybrid_snn_control.cli import main

    assert main(["config", "check", str(p)]) == 2
    assert "duplicate key" in capsys.readouterr().err


# ---- integers for floats: check, bringup and live sets agree ------------------------------
INT_FOR_FLOAT = """\
policy_node:
  ros__parameters:
    spiking_ratio: 1
    trigger: events
actuator_node:
  ros__parameters:
    cmd_timeout: 1
"""


def test_config_check_takes_an_integer_as_the_float(tmp_path):
    p = tmp_path / "ints.yaml"
    p.write_text(INT_FOR_FLOAT)
    assert validate_file(p) == [("policy_node", "ok"), ("actuator_node", "ok")]


def test_nodes_started_from_the_file_take_the_integer_as_the_float(tmp_path, ros_context):
    """What ``hsc bringup`` does: each node reads its section through ``--params-file``."""
    p = tmp_path / "ints.yaml"
    p.write_text(INT_FOR_FLOAT)
    args = ["--ros-args", "--params-file", str(p)]
    actuator = ActuatorNode(context=ros_context, cli_args=args)
    policy = PolicyNode(context=ros_context, cli_args=args)
    try:
        assert actuator.params.values.cmd_timeout == 1.0
        assert actuator.gate.limits.cmd_timeout_s == 1.0
        assert actuator.get_parameter("cmd_timeout").type_ is Parameter.Type.DOUBLE
        assert policy.controller.spiking_ratio == 1.0
        assert policy.get_parameter("spiking_ratio").value == 1.0
    finally:
        actuator.destroy_node()
        policy.destroy_node()


def test_hsc_bringup_runs_a_file_with_integers_for_floats(tmp_path):
    p = tmp_path / "ints.yaml"
    p.write_text("/**/actuator_node:\n  ros__parameters:\n    cmd_timeout: 1\n    rate_hz: 50\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybrid_snn_control.cli",
            "bringup",
            "--config",
            str(p),
            "--duration",
            "1.5",
            "--ros-args",
            "-r",
            "__ns:=/ints_bringup",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert "cmd_timeout 1.0 s" in out


@dataclass
class RatioSettings:
    spiking_ratio: float = field(default=0.5, metadata=param(range=(0.0, 1.0)))
    gains: list[float] = field(default_factory=lambda: [1.0, 2.0])


def _set(ex, client, spin, name, value):
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    fut = client.call_async(req)
    assert spin(ex, fut.done)
    return fut.result().results[0]


def test_live_integer_set_of_a_float_parameter_is_taken_as_the_float(ros_context, spin):
    node = Node("policy", namespace="live_int", context=ros_context)
    binding = ParameterBinding(node, RatioSettings)
    seen: list[float] = []
    binding.on_change("spiking_ratio", seen.append)
    caller = Node("caller", namespace="live_int", context=ros_context)
    client = caller.create_client(SetParameters, "/live_int/policy/set_parameters")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(caller)
    try:
        assert spin(ex, client.service_is_ready)
        res = _set(ex, client, spin, "spiking_ratio", 1)  # ros2 param set … spiking_ratio 1
        assert res.successful, res.reason
        assert binding.values.spiking_ratio == 1.0 and seen == [1.0]
        assert node.get_parameter("spiking_ratio").type_ is Parameter.Type.DOUBLE
        res = _set(ex, client, spin, "spiking_ratio", 2)  # an integer out of range: the range
        assert not res.successful and "out of range" in res.reason, res.reason
        assert "value: 2.0" in res.reason  # rclpy's range check, on the float
        res = _set(ex, client, spin, "gains", [3, 4])
        assert res.successful, res.reason
        assert binding.values.gains == [3.0, 4.0]
        assert binding.values.spiking_ratio == 1.0 and seen == [1.0]
    finally:
        ex.shutdown()
        node.destroy_node()
        caller.destroy_node()

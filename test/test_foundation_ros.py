"""Real rclpy (PyPI wheels or a ROS install): pub/sub and the SetParameters protocol.

``ros2 param set`` is a ``rcl_interfaces/srv/SetParameters`` call; here another node
makes that call, so the accept/reject path is the one users hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from hybrid_snn_control.config import param

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")

from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from hybrid_snn_control.ros.params import ParameterBinding  # noqa: E402


@dataclass
class RatioSettings:
    spiking_ratio: float = field(
        default=0.5, metadata=param(range=(0.0, 1.0), description="fraction of spiking units")
    )
    rate_hz: float = 50.0
    label: str = "x"


def test_two_nodes_exchange_a_message(ros_context, spin):
    talker = Node("talker", context=ros_context)
    listener = Node("listener", context=ros_context)
    got: list[str] = []
    listener.create_subscription(String, "chatter", lambda m: got.append(m.data), 10)
    pub = talker.create_publisher(String, "chatter", 10)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(talker)
    ex.add_node(listener)
    assert spin(ex, lambda: pub.get_subscription_count() > 0)
    pub.publish(String(data="hello"))
    assert spin(ex, lambda: got == ["hello"])


def _set(ex, client, spin, name, value):
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    fut = client.call_async(req)
    assert spin(ex, fut.done)
    return fut.result().results[0]


def test_set_parameters_service_accepts_valid_and_rejects_invalid(ros_context, spin):
    node = Node("policy", context=ros_context)
    binding = ParameterBinding(node, RatioSettings)
    seen: list[float] = []
    binding.on_change("spiking_ratio", seen.append)
    desc = node.describe_parameter("spiking_ratio")
    assert desc.floating_point_range[0].from_value == 0.0
    assert desc.floating_point_range[0].to_value == 1.0

    caller = Node("param_caller", context=ros_context)
    client = caller.create_client(SetParameters, "/policy/set_parameters")
    getter = caller.create_client(GetParameters, "/policy/get_parameters")
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    ex.add_node(caller)
    assert spin(ex, lambda: client.service_is_ready() and getter.service_is_ready())

    ok = _set(ex, client, spin, "spiking_ratio", 0.25)
    assert ok.successful, ok.reason
    assert binding.values.spiking_ratio == 0.25 and seen == [0.25]

    for bad, why in [(1.5, "out of range"), (math.nan, "out of range"), ("half", "type")]:
        res = _set(ex, client, spin, "spiking_ratio", bad)
        assert not res.successful
        assert why in res.reason, res.reason
    assert binding.values.spiking_ratio == 0.25 and seen == [0.25]

    fut = getter.call_async(GetParameters.Request(names=["spiking_ratio"]))
    assert spin(ex, fut.done)
    assert fut.result().values[0].double_value == 0.25

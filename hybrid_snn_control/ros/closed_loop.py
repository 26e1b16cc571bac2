"""The simulated closed loop in one process: the harness of ``hsc demo`` and its tests.

sim_node → policy_node → actuator_node → sim_node, plus an *operator* node, all in one
single-threaded executor (as under ``hsc bringup``).  The operator does what a person
with ``ros2 param set`` does — ``SetParameters`` on policy_node through the real service,
so validation and the in-effect-next-step switch are exercised, not bypassed — and
collects policy_node's ``~/status``.  ``hsc demo`` and ``test/test_ros_closed_loop.py``
drive the loop through this one harness, so the tests check the loop the demo shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NamedTuple

from rcl_interfaces.srv import SetParameters
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from hybrid_snn_control.ros.actuator_node import ActuatorNode
from hybrid_snn_control.ros.policy_node import PolicyNode
from hybrid_snn_control.ros.sim_node import SimNode

__all__ = ["ClosedLoop", "SetResult", "as_parameters", "call_service", "spin_until"]

_SLICE_S = 0.01  # spin_once returns as soon as work is ready; this only bounds idle waits
STATUS_DEPTH = 100


def as_parameters(values: Mapping[str, Any]) -> list[Parameter]:
    """``{"name": value}`` → rclpy parameters (the ROS type follows the Python type)."""
    return [Parameter(name, value=value) for name, value in values.items()]


def spin_until(executor: Executor, done: Callable[[], bool], timeout_s: float) -> bool:
    """Spin ``executor`` until ``done()``; False when ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=_SLICE_S)
    return True


def call_service(executor: Executor, client: Client, request: Any, timeout_s: float = 10.0) -> Any:
    """Call a service and spin ``executor`` until it answers (TimeoutError if it does not)."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError(f"service {client.service_name} did not appear within {timeout_s} s")
    future = client.call_async(request)
    if not spin_until(executor, future.done, timeout_s):
        client.remove_pending_request(future)
        raise TimeoutError(f"service {client.service_name} did not answer within {timeout_s} s")
    return future.result()


class SetResult(NamedTuple):
    """policy_node's answer to one SetParameters call."""

    successful: bool
    reason: str
    call_s: float  # wall time from the request to the answer


class ClosedLoop:
    """The four nodes of the simulated loop in one executor; :meth:`close` stops them.

    ``actuator`` / ``policy`` / ``sim`` are parameter overrides per node (on top of the
    context's ``--params-file``, if any).  Nodes are created in loop order, which is also
    the order one executor runs their ready callbacks.
    """

    def __init__(
        self,
        context: Context,
        *,
        namespace: str = "",
        actuator: Mapping[str, Any] | None = None,
        policy: Mapping[str, Any] | None = None,
        sim: Mapping[str, Any] | None = None,
        record: str | None = None,
    ) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        self.recorder = None
        self.nodes: list[Node] = []
        self.statuses: list[dict[str, Any]] = []  # policy_node's ~/status, in arrival order
        ns = {"context": context, "namespace": namespace or None}
        try:
            self.actuator = self._add(
                ActuatorNode(**ns, parameter_overrides=as_parameters(actuator or {}))
            )
            self.policy = self._add(
                PolicyNode(**ns, parameter_overrides=as_parameters(policy or {}))
            )
            if record:  # before the sim: its first episode starts when it is created
                self.recorder = self._recorder(Node("hsc_recorder", **ns), record)
            self.sim = self._add(SimNode(**ns, parameter_overrides=as_parameters(sim or {})))
            self.operator = self._add(Node("operator", **ns))
        except BaseException:
            self.close()
            raise
        self.operator.create_subscription(
            String,
            "policy_node/status",
            lambda m: self.statuses.append(json.loads(m.data)),
            STATUS_DEPTH,
        )
        self._set_parameters = self.operator.create_client(
            SetParameters, "policy_node/set_parameters"
        )

    def _recorder(self, node: Node, path: str) -> Any:
        """An MCAP recorder of the loop's topics, with policy_node's parameters for replay."""
        from hybrid_snn_control.ros.mcap_record import McapRecorder, policy_metadata

        self._add(node)
        return McapRecorder(node, path, metadata=policy_metadata(self.policy.params.values))

    def close_recording(self) -> Any:
        """Finish the MCAP file (if recording); its path, or None."""
        if self.recorder is None:
            return None
        path, self.recorder = self.recorder.close(), None
        return path

    def _add(self, node: Node) -> Any:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Run the loop until ``done()``; False when ``timeout_s`` passed first."""
        return spin_until(self.executor, done, timeout_s)

    def set_policy_parameter(self, name: str, value: Any, timeout_s: float = 10.0) -> SetResult:
        """``SetParameters`` on policy_node from the operator node, as ``ros2 param set``."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]
        )
        t0 = time.monotonic()
        (result,) = call_service(self.executor, self._set_parameters, request, timeout_s).results
        return SetResult(result.successful, result.reason, time.monotonic() - t0)

    def close(self) -> None:
        """Zero command from the actuator (as at any shutdown), then destroy every node."""
        self.close_recording()
        if self.nodes and isinstance(self.nodes[0], ActuatorNode):
            try:
                self.nodes[0].safe_stop()
            except Exception:  # noqa: BLE001 - the nodes must be destroyed regardless
                pass
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []

    def __enter__(self) -> ClosedLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""One ``/diagnostics`` status per node, in the ``diagnostic_msgs`` shape the ROS tools read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.publisher import Publisher

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

# rclpy adds two QoS-event waitables (incompatible QoS / type) to every publisher and
# subscription, and its executor rebuilds the wait set over all of them on every wait
# (~1 ms per wait with ~60 entities on this 2-core machine).  A best-effort, volatile
# subscription is compatible with any publisher, and status / diagnostics are best
# observed, not guarded, so those go without; commands, e-stop and `episode` keep the
# warnings.
QUIET_SUB = {"event_callbacks": SubscriptionEventCallbacks(use_default_callbacks=False)}
QUIET_PUB = {"event_callbacks": PublisherEventCallbacks(use_default_callbacks=False)}


def publish_status(
    node: Node,
    publisher: Publisher,
    level: bytes,
    title: str,
    message: str,
    values: Mapping[str, Any],
) -> None:
    """Publish one status named ``"<node>: <title>"`` with ``values`` as key/value strings."""
    status = DiagnosticStatus(
        level=level,
        name=f"{node.get_name()}: {title}",
        message=message,
        hardware_id=node.get_fully_qualified_name(),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(array)

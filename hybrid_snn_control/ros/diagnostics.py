"""One ``/diagnostics`` status per node, in the ``diagnostic_msgs`` shape the ROS tools read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.publisher import Publisher


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

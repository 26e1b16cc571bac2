"""Record a run's topics to MCAP the way ``ros2 bag record -s mcap`` does.

Each topic is one channel with ``message_encoding: cdr`` (the bytes as they came off the
wire: the subscriptions are ``raw``, nothing is deserialized on the way) and a
``ros2msg`` schema built from the installed ``.msg`` files with their dependencies
appended (``MSG: pkg/Type`` sections), so Foxglove, ``mcap`` tools, ``mcap_ros2`` and
``ros2 bag play`` read it without this package.  The file is written as ``<path>.part``
and renamed when it is complete (a crash leaves a ``.part`` that MCAP readers can still
scan, never a truncated file under the final name).  ``metadata`` (a ``hsc`` record:
checkpoint, policy parameters) lets :mod:`hybrid_snn_control.ros.replay` rebuild the node.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_TOPICS",
    "McapRecorder",
    "message_counts",
    "policy_metadata",
    "recorder_node_class",
    "ros2msg_schema",
]

#: topic (relative to the run's namespace unless absolute) → ROS type: what ``hsc demo
#: --record`` and ``hsc bringup --record`` write.  The inputs of policy_node (events,
#: joint_states, imu, episode, parameter events) are all here, so ``hsc replay`` can
#: drive it again.
RUN_TOPICS: dict[str, str] = {
    # policy_node's inputs first, in the order it subscribes (one executor runs ready
    # callbacks in creation order, so the log keeps the order the policy saw)
    "joint_states": "sensor_msgs/msg/JointState",
    "odom": "nav_msgs/msg/Odometry",
    "imu": "sensor_msgs/msg/Imu",
    "episode": "std_msgs/msg/UInt32",
    "events": "sensor_msgs/msg/PointCloud2",
    "/parameter_events": "rcl_interfaces/msg/ParameterEvent",
    "cmd": "geometry_msgs/msg/TwistStamped",
    "cmd_vel": "geometry_msgs/msg/TwistStamped",
    "policy_node/status": "std_msgs/msg/String",
    "sim_node/metrics": "std_msgs/msg/String",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}

_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}  # fmt: skip
_SEPARATOR = "=" * 80


def _msg_file(pkg: str, name: str) -> Path:
    """The installed ``.msg`` of ``pkg/name`` (ament index, then this interpreter's prefix)."""
    roots: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(pkg)))
    except Exception:  # noqa: BLE001 - not indexed: try the prefix below
        pass
    roots.append(Path(sys.prefix) / "share" / pkg)
    for root in roots:
        path = root / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {pkg}/msg/{name}.msg under {', '.join(map(str, roots))}")


def _dependencies(pkg: str, text: str) -> list[tuple[str, str]]:
    deps = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line.split()[0] or len(line.split()) < 2:
            continue
        base = re.sub(r"\[.*\]$", "", line.split()[0])
        base = re.sub(r"<=\d+$", "", base)  # bounded strings
        if base in _PRIMITIVES:
            continue
        if re.match(r"^[A-Z]", line.split()[1]) and "=" in line:  # a constant
            continue
        parts = base.split("/")
        deps.append((parts[0], parts[-1]) if len(parts) > 1 else (pkg, base))
    return deps


def ros2msg_schema(type_name: str) -> str:
    """The ``ros2msg`` schema of ``pkg/msg/Type``: its definition, then each dependency's."""
    pkg, _, name = type_name.split("/")
    top = _msg_file(pkg, name).read_text()
    sections: list[str] = []
    seen: set[tuple[str, str]] = set()
    todo = _dependencies(pkg, top)
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        text = _msg_file(*dep).read_text()
        sections.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text}")
        todo.extend(_dependencies(dep[0], text))
    return "\n".join([top, *sections])


def policy_metadata(settings: Any) -> dict[str, str]:
    """The ``hsc`` record :mod:`~hybrid_snn_control.ros.replay` rebuilds policy_node from:
    its parameters (a ``PolicySettings``) and the checkpoint they resolve to."""
    from hybrid_snn_control.ros.policy_node import resolve_checkpoint

    return {
        "checkpoint": resolve_checkpoint(settings.checkpoint),
        "policy_node": json.dumps(dataclasses.asdict(settings)),
    }


def _qos(type_name: str, topic: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if type_name.startswith("sensor_msgs/") or topic == "odom":
        return QoSProfile(
            depth=200,
            reliability=qos_profile_sensor_data.reliability,
            history=qos_profile_sensor_data.history,
        )  # best effort: takes every publisher, never slows one down
    return QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


class McapRecorder:
    """Raw subscriptions on ``node`` for ``topics``, written to ``path`` until :meth:`close`."""

    def __init__(
        self,
        node: Any,
        path: str | os.PathLike,
        topics: Mapping[str, str] = RUN_TOPICS,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        from mcap.writer import CompressionType, Writer

        from hybrid_snn_control import __version__

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = self.path.with_name(self.path.name + ".part")
        self._file = open(self._part, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library=f"hybrid_snn_control {__version__}")
        if metadata:
            self._writer.add_metadata("hsc", {k: str(v) for k, v in metadata.items()})
        self.counts: dict[str, int] = {}
        self._clock = node.get_clock()
        self._subs = []
        schemas: dict[str, int] = {}
        for topic, type_name in topics.items():
            if type_name not in schemas:
                schemas[type_name] = self._writer.register_schema(
                    name=type_name, encoding="ros2msg", data=ros2msg_schema(type_name).encode()
                )
            sub = node.create_subscription(
                _message_type(type_name), topic, lambda _m: None, _qos(type_name, topic), raw=True
            )
            full = sub.topic_name  # resolved: namespace applied
            channel = self._writer.register_channel(
                topic=full, message_encoding="cdr", schema_id=schemas[type_name]
            )
            sub.callback = self._writer_for(channel, full)  # type: ignore[method-assign]
            self.counts[full] = 0
            self._subs.append(sub)
        self._node = node
        self._closed = False

    def _writer_for(self, channel: int, topic: str):
        def write(data: bytes) -> None:
            if self._closed:
                return
            now = self._clock.now().nanoseconds
            n = self.counts[topic]
            self._writer.add_message(
                channel_id=channel, log_time=now, publish_time=now, sequence=n, data=data
            )
            self.counts[topic] = n + 1

        return write

    def close(self) -> Path:
        """Stop recording, finish the file (summary, index) and move it into place."""
        if self._closed:
            return self.path
        self._closed = True
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._writer.finish()
        self._file.close()
        os.replace(self._part, self.path)
        return self.path


def _message_type(type_name: str) -> type:
    """``pkg/msg/Type`` → the message class (``importlib``; no rosidl_runtime_py needed)."""
    import importlib

    pkg, sub, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


def message_counts(path: str | os.PathLike) -> dict[str, int]:
    """Messages per topic in an MCAP file (from its summary)."""
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    if summary is None or summary.statistics is None:
        raise ValueError(f"{path}: no MCAP summary (an unfinished recording?)")
    by_id = {c.id: c.topic for c in summary.channels.values()}
    counts = summary.statistics.channel_message_counts
    return {by_id[i]: int(n) for i, n in counts.items()}


def recorder_node_class(path: str | os.PathLike, metadata: Mapping[str, str] | None = None):
    """A node class for :func:`~hybrid_snn_control.ros.runner.run_nodes` that records
    :data:`RUN_TOPICS` (under the process's namespace) to ``path`` until it is stopped."""
    from rclpy.node import Node

    class RecorderNode(Node):
        def __init__(self, node_name: str = "hsc_recorder", **kwargs) -> None:
            super().__init__(node_name, **kwargs)
            self.recorder = McapRecorder(self, path, metadata=metadata)
            self.get_logger().info(f"recording {len(RUN_TOPICS)} topics to {path}")

        def safe_stop(self) -> None:
            out = self.recorder.close()
            counts = ", ".join(f"{t} {n}" for t, n in self.recorder.counts.items() if n)
            self.get_logger().info(f"recorded {out}: {counts}")

    return RecorderNode

"""``hsc replay run.mcap``: drive policy_node again with a recorded run's inputs and check
that it gives the recorded commands.

A recording from ``hsc demo --record`` / ``hsc bringup --record`` holds every input of
policy_node (events, joint_states / odom, imu, episode, parameter events) and its ``cmd``
output, plus a ``hsc`` metadata record with the node's parameters.  The replay builds a
fresh PolicyNode with those parameters and calls its subscription callbacks with the
recorded messages, lock-step and in the order the node saw them:

* in log order, except that each event packet is preceded by the proprioception of its
  control step (the messages stamped at or before the step; the recorder may have logged
  them a moment after the packet, the node's executor takes them first);
* ``spiking_ratio`` changes from ``/parameter_events`` go through ``set_parameters``,
  episode messages through the episode callback (state reset).

Each ``cmd`` the node publishes after the first recorded episode start (before it, the
recorded node's state is unknown) is matched to the recorded one with the same stamp (the
newest event time); the policy is deterministic, so they agree to float rounding.
No transport sits between the file and the callbacks: what is compared is the policy
node, not DDS.
"""

from __future__ import annotations

import bisect
import copy
import json
import os
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """How the replayed commands compare with the recorded ones."""

    packets: int
    recorded_cmds: int
    replayed_cmds: int
    matched: int
    max_abs_diff: float
    unmatched_stamps: int
    ratio_changes: int
    resets: int
    tolerance: float
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.matched > 0
            and self.max_abs_diff <= self.tolerance
            and self.matched == self.replayed_cmds
        )

    def line(self) -> str:
        return (
            f"replayed {self.packets} packets: {self.replayed_cmds} commands, "
            f"{self.matched} matched to the {self.recorded_cmds} recorded (max |diff| "
            f"{self.max_abs_diff:.3g}, tolerance {self.tolerance:g}); {self.unmatched_stamps} "
            f"unmatched stamps; {self.ratio_changes} ratio changes, {self.resets} resets: "
            f"{'MATCH' if self.ok else 'MISMATCH'}"
        )


class _Capture:
    """Stands in for the ``cmd`` publisher: keeps what the node publishes.

    A copy, as a real publisher serializes at once: the node reuses its message object."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []

    def publish(self, msg: Any) -> None:
        self.msgs.append(copy.deepcopy(msg))


def _stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _read(path: str | os.PathLike) -> tuple[dict[str, str], list[tuple[str, int, Any]]]:
    """The ``hsc`` metadata and ``(kind, log_time, message)`` in log order; ``events``
    stay serialized, as policy_node takes them."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from hybrid_snn_control.ros.mcap_record import RUN_TOPICS, _message_type

    types = {(t if t.startswith("/") else t.rsplit("/", 1)[-1]): ty for t, ty in RUN_TOPICS.items()}
    wanted = {"events", "joint_states", "odom", "imu", "episode", "/parameter_events", "cmd"}
    meta: dict[str, str] = {}
    out: list[tuple[str, int, Any]] = []
    with open(path, "rb") as f:
        reader = make_reader(f)
        for record in reader.iter_metadata():
            if record.name == "hsc":
                meta = dict(record.metadata)
        for _schema, channel, message in reader.iter_messages(log_time_order=True):
            topic = channel.topic
            kind = topic if topic.startswith("/parameter_events") else topic.rsplit("/", 1)[-1]
            if topic.endswith("policy_node/status") or kind not in wanted:
                continue
            if kind == "events":
                out.append((kind, message.log_time, bytes(message.data)))
                continue
            cls = _message_type(types[kind])
            out.append((kind, message.log_time, deserialize_message(message.data, cls)))
    if not meta:
        raise ValueError(f"{path}: no 'hsc' metadata record (not written by hsc --record?)")
    return meta, out


def replay(path: str | os.PathLike, tolerance: float = 1e-6) -> ReplayResult:
    """Replay ``path`` through a fresh policy_node (see the module docstring)."""
    import rclpy
    from rclpy.parameter import Parameter

    from hybrid_snn_control.ros.closed_loop import as_parameters
    from hybrid_snn_control.ros.event_msgs import pointcloud2_to_events, stamp_us_of
    from hybrid_snn_control.ros.pointcloud2_cdr import read_pointcloud2
    from hybrid_snn_control.ros.policy_node import PolicyNode

    meta, msgs = _read(path)
    params = json.loads(meta["policy_node"])
    params["checkpoint"] = meta.get("checkpoint", params.get("checkpoint", ""))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    overrides = as_parameters(params)
    node = PolicyNode(context=ctx, namespace="hsc_replay", parameter_overrides=overrides)
    try:
        capture = _Capture()
        node._cmd = capture  # type: ignore[assignment] - compare, not transport
        proprio = [(_stamp_ns(m) // 1000, i, k, m) for i, (k, _, m) in enumerate(msgs)
                   if k in ("joint_states", "odom", "imu")]  # fmt: skip
        proprio.sort(key=lambda p: (p[0], p[1]))
        stamps = [p[0] for p in proprio]
        applied = 0
        recorded: dict[int, deque] = defaultdict(deque)
        n_recorded = packets = ratio_changes = resets = skipped = 0
        packet_log: list[int] = []  # per replayed command: log time of its packet
        last_cmd_log = max((log for k, log, _ in msgs if k == "cmd"), default=0)
        callbacks = {
            "joint_states": node._on_joint_states,
            "odom": node._on_odom,
            "imu": node._on_imu,
        }
        for kind, _log, msg in msgs:
            if kind == "cmd":
                recorded[_stamp_ns(msg)].append((msg.twist.linear.x, msg.twist.angular.z))
                n_recorded += 1
            elif kind == "episode":
                node._on_episode(msg)
                if not resets:
                    skipped = len(capture.msgs)  # before the first reset: state unknown
                resets += 1
            elif kind == "/parameter_events":
                if not msg.node.endswith("policy_node"):
                    continue
                for p in msg.changed_parameters:
                    if p.name == "spiking_ratio":
                        ratio = Parameter("spiking_ratio", value=p.value.double_value)
                        node.set_parameters([ratio])
                        ratio_changes += 1
            elif kind == "events":
                try:
                    packet = read_pointcloud2(msg)
                    ev = pointcloud2_to_events(packet)
                    t_us = max(
                        int(ev["t"].max()) if ev.size else 0,
                        stamp_us_of(packet),
                    )
                except ValueError:
                    t_us = 0
                # this step's proprioception: everything stamped up to the step's time
                upto = bisect.bisect_left(stamps, t_us)
                if upto < len(stamps):
                    upto = bisect.bisect_right(stamps, stamps[upto])  # the step's own stamp
                for _, _, k, m in proprio[applied:upto]:
                    callbacks[k](m)
                applied = max(applied, upto)
                node._on_events(msg, None)
                packet_log.extend([_log] * (len(capture.msgs) - len(packet_log)))
                packets += 1
        matched, worst, unmatched, mismatches = 0, 0.0, 0, []
        # compared: from the first episode start up to the last recorded answer (packets
        # logged after it were still being answered when the recording stopped)
        replayed = [
            out
            for out, log in zip(capture.msgs[skipped:], packet_log[skipped:], strict=True)
            if log <= last_cmd_log
        ] if resets else []  # fmt: skip
        for out in replayed:
            queue = recorded.get(_stamp_ns(out))
            if not queue:
                unmatched += 1
                continue
            v, w = queue.popleft()
            diff = max(abs(v - out.twist.linear.x), abs(w - out.twist.angular.z))
            worst = max(worst, diff)
            matched += 1
            if diff > tolerance and len(mismatches) < 10:
                got = (out.twist.linear.x, out.twist.angular.z)
                mismatches.append({"stamp_ns": _stamp_ns(out), "recorded": (v, w), "replayed": got})
        return ReplayResult(
            packets=packets,
            recorded_cmds=n_recorded,
            replayed_cmds=len(replayed),
            matched=matched,
            max_abs_diff=worst,
            unmatched_stamps=unmatched,
            ratio_changes=ratio_changes,
            resets=resets,
            tolerance=tolerance,
            mismatches=mismatches,
        )
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)

"""MCAP recording of runs and ``hsc replay`` (issue 18).

``hsc demo --record`` writes every expected topic with ROS 2 (``cdr`` + ``ros2msg``)
encoding, so the ``mcap`` library with ``mcap_ros2`` decodes it without this package;
``hsc replay`` feeds the recorded inputs back into a fresh policy_node and reproduces the
recorded commands within 1e-6, and reports a mismatch when the recording was altered.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")
pytest.importorskip("mcap", reason="mcap missing: install the [robot] extra")

from hybrid_snn_control import cli
from hybrid_snn_control.ros.mcap_record import message_counts, ros2msg_schema
from hybrid_snn_control.ros.replay import replay


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path_factory.mktemp("demo")
    path = out / "run.mcap"
    code = cli.main(
        ["demo", "--episode-s", "2", "--episodes", "1", "--ratios", "0.5,1", "--no-compare",
         "--out", str(out), "--record", str(path)]
    )  # fmt: skip
    assert code == 0
    return str(path)


def test_schema_carries_every_dependency_once():
    text = ros2msg_schema("sensor_msgs/msg/PointCloud2")
    assert text.count("MSG: std_msgs/Header") == 1 and "MSG: builtin_interfaces/Time" in text
    assert "MSG: sensor_msgs/PointField" in text


def test_demo_record_writes_every_topic_and_mcap_ros2_decodes_it(recording):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    assert not os.path.exists(recording + ".part")  # finished and moved into place
    counts = message_counts(recording)
    steps = counts["/events"]
    assert steps > 150  # two 2 s episodes at 50 Hz (+ their reset observations)
    for topic in ("/joint_states", "/imu", "/odom"):
        assert counts[topic] == steps, (topic, counts)
    for topic in ("/cmd", "/policy_node/status"):  # the last answer may still be in flight
        assert steps - 1 <= counts[topic] <= steps, (topic, counts)
    assert counts["/cmd_vel"] >= steps - 2 and counts["/episode"] == 2  # the last may be in flight
    assert counts["/sim_node/metrics"] == 2 and counts["/diagnostics"] >= 2
    assert counts["/parameter_events"] >= 1
    ratios = []
    with open(recording, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _s, channel, _m, msg in reader.iter_decoded_messages(
            topics=["/events", "/cmd_vel", "/parameter_events"]
        ):
            if channel.topic == "/events":
                assert msg.point_step == 9 and len(msg.data) == msg.width * 9
            elif channel.topic == "/cmd_vel":
                assert msg.header.stamp.sec >= 0
            else:
                ratios += [p.value.double_value for p in msg.changed_parameters
                           if p.name == "spiking_ratio"]  # fmt: skip
    assert ratios == [1.0]  # the demo's live switch 0.5 → 1 (1.5 is rejected: no event)


def test_replay_reproduces_the_recorded_commands(recording):
    result = replay(recording)
    assert result.ok, result.line()
    assert result.matched == result.replayed_cmds > 150 and result.max_abs_diff <= 1e-6
    assert result.ratio_changes == 1 and result.resets == 2


def test_replay_reports_an_altered_recording(recording, tmp_path):
    from geometry_msgs.msg import TwistStamped
    from mcap.reader import make_reader
    from mcap.writer import Writer
    from rclpy.serialization import deserialize_message, serialize_message

    altered = tmp_path / "altered.mcap"
    with open(recording, "rb") as f, open(altered, "wb") as g:
        reader = make_reader(f)
        writer = Writer(g)
        writer.start(profile="ros2")
        for m in reader.iter_metadata():
            writer.add_metadata(m.name, dict(m.metadata))
        schemas, channels, n_cmd = {}, {}, 0
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            if schema.id not in schemas:
                schemas[schema.id] = writer.register_schema(
                    schema.name, schema.encoding, schema.data
                )
            if channel.id not in channels:
                channels[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding, schemas[schema.id]
                )
            data = message.data
            if channel.topic == "/cmd":
                n_cmd += 1
                if n_cmd == 100:  # one command, 0.01 m/s off
                    cmd = deserialize_message(data, TwistStamped)
                    cmd.twist.linear.x += 0.01
                    data = serialize_message(cmd)
            writer.add_message(channels[channel.id], message.log_time, data, message.publish_time)
        writer.finish()
    result = replay(str(altered))
    assert not result.ok and len(result.mismatches) == 1
    # one bad command among all the others, every one of them still compared
    assert result.matched == result.replayed_cmds > 150
    assert abs(result.max_abs_diff - 0.01) < 1e-6
    assert cli.main(["replay", str(altered)]) == 1

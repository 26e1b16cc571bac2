"""Simulated closed loop: ``ros2 launch hybrid_snn_control sim.launch.py``.

    sim_node ─► event_camera_node ─► policy_node ─► actuator_node ─► cmd_vel ─► sim_node

Every node reads its section of one parameter file (``config:=``, default the shipped
``sim.yaml``), the same file ``hsc bringup --config sim`` uses without ``ros2 launch``.
sim_node publishes the env's own events on ``events`` (what the policy was trained on)
and ``/clock``; event_camera_node runs on the sim's images when ``publish_images`` is on
(its output then goes to ``camera_events``; remap to ``events`` to drive the policy with
it).  Arguments: ``config``, ``use_sim_time`` (default true: sim_node publishes
``/clock``), ``checkpoint`` (empty: the shipped policy), ``spiking_ratio``,
``online_plasticity`` (HRSNN-core policies), ``image_topic``, ``cmd_vel_topic``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "hybrid_snn_control"


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory(PACKAGE), "config", "sim.yaml")
    config = LaunchConfiguration("config")
    use_sim_time = LaunchConfiguration("use_sim_time")
    parameters = [config, {"use_sim_time": use_sim_time}]
    policy_parameters = [
        config,
        {
            "use_sim_time": use_sim_time,
            "checkpoint": LaunchConfiguration("checkpoint"),
            "spiking_ratio": ParameterValue(LaunchConfiguration("spiking_ratio"), value_type=float),
            "online_plasticity": ParameterValue(
                LaunchConfiguration("online_plasticity"), value_type=bool
            ),
        },
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config", default_value=default_config, description="parameter file (all nodes)"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="true",
                description="follow /clock (published by sim_node)",
            ),
            DeclareLaunchArgument(
                "checkpoint",
                default_value="",
                description="policy file (.safetensors / .pt / .onnx); empty: the shipped policy",
            ),
            DeclareLaunchArgument(
                "spiking_ratio",
                default_value="0.5",
                description="initial spiking ratio in [0, 1] (change live with ros2 param set)",
            ),
            DeclareLaunchArgument(
                "online_plasticity",
                default_value="false",
                description="HRSNN-core policies: keep learning by STDP from the live events",
            ),
            DeclareLaunchArgument(
                "image_topic", default_value="image", description="simulated camera images"
            ),
            DeclareLaunchArgument(
                "cmd_vel_topic", default_value="cmd_vel", description="velocity output topic"
            ),
            Node(
                package=PACKAGE,
                executable="event_camera_node",
                name="event_camera_node",
                parameters=parameters,
                remappings=[
                    ("image", LaunchConfiguration("image_topic")),
                    ("events", "camera_events"),
                ],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package=PACKAGE,
                executable="policy_node",
                name="policy_node",
                parameters=policy_parameters,
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                parameters=parameters,
                remappings=[
                    ("image", LaunchConfiguration("image_topic")),
                    ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
                ],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package=PACKAGE,
                executable="actuator_node",
                name="actuator_node",
                parameters=parameters,
                remappings=[("cmd_vel", LaunchConfiguration("cmd_vel_topic"))],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )

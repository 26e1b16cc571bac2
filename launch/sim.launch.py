"""Simulated closed loop: ``ros2 launch hybrid_snn_control sim.launch.py``.

    sim_node ─► event_camera_node ─► policy_node ─► actuator_node ─► cmd_vel ─► sim_node

Every node reads its section of one parameter file (``config:=``, default the shipped
``sim.yaml``), the same file ``hsc bringup --config sim`` uses without ``ros2 launch``.
Nodes are added here as they land in the package; today: event_camera_node and
actuator_node.  Arguments: ``config``, ``use_sim_time`` (true once sim_node publishes
``/clock``), ``image_topic`` (the simulator's camera), ``cmd_vel_topic``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "hybrid_snn_control"


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory(PACKAGE), "config", "sim.yaml")
    config = LaunchConfiguration("config")
    use_sim_time = LaunchConfiguration("use_sim_time")
    parameters = [config, {"use_sim_time": use_sim_time}]
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config", default_value=default_config, description="parameter file (all nodes)"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="follow /clock (needs a simulator publishing it)",
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
                remappings=[("image", LaunchConfiguration("image_topic"))],
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

"""On a robot: ``ros2 launch hybrid_snn_control robot.launch.py cmd_vel_topic:=/base/cmd_vel``.

    camera driver ─► event_camera_node ─► policy_node ─► actuator_node ─► your controller

Every node reads its section of one parameter file (``config:=``, default the shipped
``robot.yaml``: conservative limits, a short watchdog).  The robot-side topics are launch
arguments, so no remapping file is needed: ``cmd_vel_topic`` (e.g. a
diff_drive_controller's ``~/cmd_vel``, or a forward velocity controller's ``~/commands``
with ``output_type: wheel_velocities``), ``estop_topic`` and ``event_topic`` (the camera
driver's EventPacket topic).  ``checkpoint`` (empty: the shipped policy),
``spiking_ratio`` and ``online_plasticity`` (HRSNN-core policies) set the policy;
``joint_states_topic`` / ``imu_topic`` its proprioception.
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
    default_config = os.path.join(get_package_share_directory(PACKAGE), "config", "robot.yaml")
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
                "use_sim_time", default_value="false", description="follow /clock (bag replay)"
            ),
            DeclareLaunchArgument(
                "cmd_vel_topic",
                default_value="cmd_vel",
                description="where velocity commands go (your base controller's input)",
            ),
            DeclareLaunchArgument(
                "estop_topic", default_value="estop", description="std_msgs/Bool e-stop input"
            ),
            DeclareLaunchArgument(
                "event_topic",
                default_value="/event_camera/events",
                description="the camera driver's event_camera_msgs/EventPacket topic",
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
                "joint_states_topic",
                default_value="/joint_states",
                description="wheel velocities (sensor_msgs/JointState)",
            ),
            DeclareLaunchArgument(
                "imu_topic", default_value="/imu", description="sensor_msgs/Imu of the base"
            ),
            Node(
                package=PACKAGE,
                executable="event_camera_node",
                name="event_camera_node",
                parameters=parameters,
                remappings=[("event_packet", LaunchConfiguration("event_topic"))],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package=PACKAGE,
                executable="policy_node",
                name="policy_node",
                parameters=policy_parameters,
                remappings=[
                    ("joint_states", LaunchConfiguration("joint_states_topic")),
                    ("imu", LaunchConfiguration("imu_topic")),
                ],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package=PACKAGE,
                executable="actuator_node",
                name="actuator_node",
                parameters=parameters,
                remappings=[
                    ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
                    ("estop", LaunchConfiguration("estop_topic")),
                ],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )

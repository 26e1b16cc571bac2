"""ROS-free cores of the robot-side nodes: the policy controller (one runtime + the robot's
spec), the actuator's safety filter and the event-camera stream.

Imports ``policy/`` (torch-free parts), ``deploy/`` runtimes, ``events/`` and ``config``;
never ``training/``, ``sim/``, ``commands/``, MuJoCo, gymnasium, optuna or tensorboard
(DESIGN §2): a robot runs a policy, it does not train one.
"""

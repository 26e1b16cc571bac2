"""hybrid_snn_control: hybrid spiking-recurrent neural network control for ROS 2 robots.

Core layers (``neurons``, ``hybrid``, ``events``) are plain torch/numpy; ``sim`` adds
MuJoCo and gymnasium; ``ros`` holds the rclpy nodes.  Importing this package imports
none of them, so ``hsc --help`` and the ROS nodes stay quick to start.
"""

from hybrid_snn_control._version import __version__

__all__ = ["__version__"]

"""Setup for hybrid_snn_control (ament_python; also a plain pip package).

The version has one source of truth: ``package.xml``.  ``packages=`` is explicit
because the flat ament layout (``launch/``, ``config/``, ``test/`` next to the
package) makes automatic discovery fail with "Multiple top-level packages".
"""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "hybrid_snn_control"
HERE = Path(__file__).resolve().parent
VERSION = re.search(r"<version>([^<]+)</version>", (HERE / "package.xml").read_text()).group(1)

# Install extras follow the layer cut (DESIGN.md §2).  Each list names what that part of
# the package imports (checked with an ast scan of hybrid_snn_control/**.py):
#   base   config.py, paths.py, events/ (arrays, codecs, simulator), hybrid/ratio.py,
#          robot/, ros/ (numpy, yaml; rclpy and the messages come from ROS or [ros])
#   robot  deploy/runtime.py's ONNX Runtime path: onnxruntime runs the graph and reads the
#          ``hsc_meta`` stored in the .onnx file.  No torch, no safetensors, no onnx.
#          ros/mcap_record.py + replay.py: mcap writes / reads run recordings.
#          events/evt3_compiled.py: numba compiles our EVT 3.0 decoder for
#          event_camera_node's EventPackets; events/evt3_stream.py: evt3 (Rust EVT 3.0
#          decoder) the next choice.  Both optional (numpy decodes the same events, slower).
#          numba also compiles the LIF / ALIF training loops (neurons/fused_compiled.py)
#          where it is installed ([train] includes [robot]); TorchScript kernels otherwise.
#   torch  neurons/, hybrid/, policy/ (safetensors.torch checkpoints), events/encoders,
#          the torch / TorchScript runtimes
#   sim    sim/ (mujoco, gymnasium, scipy.sparse), `hsc sim` / `hsc events` previews
#          (imageio, pillow)
#   train  training/, deploy/export.py + nir_export.py, studies and plots: everything above
#          plus onnx, onnxscript, optuna, tensorboard, matplotlib, tqdm, h5py (events/readers),
#          nir
BASE = [
    "numpy>=1.24",
    "pyyaml>=6",
]
ROBOT = [
    "onnxruntime>=1.18",
    "mcap>=1.1",
    "evt3>=0.4",  # manylinux wheels
    "numba>=0.60",  # manylinux / aarch64 wheels (llvmlite)
]
TORCH = [
    # The CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
    "torch==2.13.0",
    "safetensors>=0.4",
]
SIM = [
    "mujoco>=3.2",
    "gymnasium>=1.0",
    "scipy>=1.10",
    "imageio>=2.30",
    "pillow>=10",
]
TRAIN_ONLY = [
    "onnx>=1.16",
    "optuna>=3.5",
    "tensorboard>=2.14",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "h5py>=3.8",
    "nir>=1.0",
    "onnxscript>=0.1",
]
# Only for machines without a ROS 2 distro: the Kilted wheels from PyPI.
ROS_WHEELS = [
    "ros-wheels-bootstrapper",
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "ros-std-msgs",
    "ros-std-srvs",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-nav-msgs",
    "ros-diagnostic-msgs",
    "ros-rosgraph-msgs",
    "ros-builtin-interfaces",
    "ros-rcl-interfaces",
    "ros-ament-index-python",
]
# mcap-ros2-support: tests decode recordings the way Foxglove / other tools do
DEV = [
    "pytest>=7",
    "pytest-timeout>=2",
    "ruff>=0.4",
    "snntorch>=0.9",
    "mcap-ros2-support>=0.5",
    "evt3>=0.4",  # the maintained Rust EVT 3.0 decoder: reference in tests and bench
]


def _union(*groups: list[str]) -> list[str]:
    return list(dict.fromkeys(req for group in groups for req in group))


EXTRAS = {
    "robot": ROBOT,
    "torch": TORCH,
    "sim": SIM,
    "train": _union(SIM, TORCH, ROBOT, TRAIN_ONLY),
    "ros": ROS_WHEELS,
    "dev": DEV,
}
# Everything but the ROS wheels (a ROS distro may provide them) and the dev tools.
EXTRAS["all"] = _union(*(EXTRAS[name] for name in ("robot", "torch", "sim", "train")))

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["sim/assets/*.xml", "sim/assets/*.png", "policies/*", "py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    install_requires=BASE,
    extras_require=EXTRAS,
    zip_safe=False,
    maintainer="hybrid_snn_control maintainers",
    maintainer_email="maintainers@hybrid-snn-control.dev",
    description="Hybrid spiking-recurrent neural network control for ROS 2 robots",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hsc = hybrid_snn_control.cli:main",
            "actuator_node = hybrid_snn_control.ros.actuator_node:main",
            "event_camera_node = hybrid_snn_control.ros.event_camera_node:main",
            "policy_node = hybrid_snn_control.ros.policy_node:main",
            "sim_node = hybrid_snn_control.ros.sim_node:main",
        ],
    },
)

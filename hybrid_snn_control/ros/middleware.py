"""The opt-in Fast DDS profile for high-rate event streams (``config/fastdds.xml``).

Its 16 MiB shared-memory segment delivers 100,000-event packets at 100 Hz in full, where
Fast DDS's default 512 KiB segment lost 80-87 % of them; but it also delivers hostile
50 MB packets, whose deserialization in rclpy (before any node code runs) stalled the
control loop by up to 0.45 s in the flood tests, past the actuator's command timeout. So
it is not the default: ``HSC_FASTDDS_PROFILE=shipped`` in the environment turns it on for
the package's processes (:func:`~hybrid_snn_control.ros.runner.run_nodes`: every node's
``main``, ``ros2 launch``, ``hsc bringup``). Fast DDS reads its profile file once per
process, when the first participant is created, hence an environment variable and not a
ROS parameter. A profile the user set, or another RMW, is left alone.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from hybrid_snn_control.paths import share_file

__all__ = [
    "OPT_IN_VARIABLE",
    "PROFILE_VARIABLES",
    "apply_profile_choice",
    "use_shipped_fastdds_profile",
]

#: ``shipped`` turns the profile on for the package's processes
OPT_IN_VARIABLE = "HSC_FASTDDS_PROFILE"

#: what Fast DDS 3 and its older name read
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def use_shipped_fastdds_profile(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point Fast DDS at the shipped profile; returns its path, or None when a profile is
    already chosen, the RMW is not Fast DDS, or the file is not installed."""
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in PROFILE_VARIABLES):
        return None
    if not env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return None
    try:
        path = str(share_file("config/fastdds.xml"))
    except FileNotFoundError:
        return None
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    return path


def apply_profile_choice(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The shipped profile when ``HSC_FASTDDS_PROFILE=shipped`` asks for it, else nothing."""
    env = os.environ if environ is None else environ
    if env.get(OPT_IN_VARIABLE, "") != "shipped":
        return None
    return use_shipped_fastdds_profile(env)

"""The Fast DDS profile of the package's processes (``config/fastdds.xml``).

Fast DDS reads its default profile file once per process, when the first participant is
created, so :func:`use_shipped_fastdds_profile` runs before ``rclpy.init`` (in
:func:`~hybrid_snn_control.ros.runner.run_nodes`: every node's ``main``, ``ros2 launch``,
``hsc bringup``).  A profile the user set, or another RMW, is left alone.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from hybrid_snn_control.paths import share_file

__all__ = ["PROFILE_VARIABLES", "use_shipped_fastdds_profile"]

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

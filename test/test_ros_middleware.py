"""The shipped Fast DDS profile: set for the package's processes unless the user chose one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hybrid_snn_control.ros.middleware import apply_profile_choice, use_shipped_fastdds_profile


def test_the_shipped_profile_is_set_once_and_never_over_a_users_choice():
    env: dict[str, str] = {}
    path = use_shipped_fastdds_profile(env)
    assert path is not None and env["FASTDDS_DEFAULT_PROFILES_FILE"] == path
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(path).getroot()
    sizes = [int(e.text) for e in root.iterfind(".//d:segment_size", ns)]
    assert sizes and min(sizes) >= 4 * 1024 * 1024  # a 100k-event packet (900 KB) fits
    mine = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}
    assert use_shipped_fastdds_profile(mine) is None and "FASTDDS_DEFAULT_PROFILES_FILE" not in mine
    other_rmw = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_shipped_fastdds_profile(other_rmw) is None and len(other_rmw) == 1


def test_the_profile_is_opt_in():
    assert apply_profile_choice({}) is None  # Fast DDS's own settings by default
    env = {"HSC_FASTDDS_PROFILE": "shipped"}
    assert apply_profile_choice(env) == env["FASTDDS_DEFAULT_PROFILES_FILE"]

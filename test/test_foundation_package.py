"""The package as installed: metadata, version source, console scripts, share files."""

from __future__ import annotations

import importlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from launch_static import ROOT, check_launch_file, console_scripts

import hybrid_snn_control
from hybrid_snn_control.paths import config_file

PACKAGE_XML = ET.parse(ROOT / "package.xml").getroot()


def test_package_xml_is_format3_ament_python_with_required_dependencies():
    assert PACKAGE_XML.get("format") == "3"
    assert PACKAGE_XML.findtext("name") == "hybrid_snn_control"
    assert PACKAGE_XML.findtext("license") == "Apache-2.0"
    assert PACKAGE_XML.find("maintainer").get("email")
    assert PACKAGE_XML.findtext("export/build_type") == "ament_python"
    exec_deps = {e.text for e in PACKAGE_XML.findall("exec_depend")}
    for dep in (
        "rclpy",
        "std_msgs",
        "sensor_msgs",
        "geometry_msgs",
        "rcl_interfaces",
        "launch",
        "launch_ros",
        "python3-numpy",
        "python3-torch",
    ):
        assert dep in exec_deps, dep
    test_deps = {e.text for e in PACKAGE_XML.findall("test_depend")}
    assert {"ament_flake8", "ament_pep257", "ament_copyright", "python3-pytest"} <= test_deps


def test_version_has_one_source_of_truth():
    assert hybrid_snn_control.__version__ == PACKAGE_XML.findtext("version")
    out = subprocess.run(
        [sys.executable, "-m", "hybrid_snn_control.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"hsc {PACKAGE_XML.findtext('version')}"


def test_every_console_script_resolves_to_a_callable():
    text = (ROOT / "setup.py").read_text()
    assert "tests_require" not in text
    scripts = console_scripts()
    assert "hsc" in scripts
    from importlib.metadata import entry_points

    installed = {ep.name: ep for ep in entry_points(group="console_scripts")}
    for name in scripts:
        assert name in installed, f"{name} registered in setup.py but not installed"
        module, _, attr = installed[name].value.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_setup_installs_launch_and_config_under_share():
    text = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in text and 'glob("config/*.yaml")' in text
    assert (ROOT / "resource" / "hybrid_snn_control").is_file()
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/hybrid_snn_control" in cfg
    assert "install_scripts=$base/lib/hybrid_snn_control" in cfg


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a directory of no importance, as a user does, with no HSC_SHARE_DIR."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HSC_SHARE_DIR", raising=False)
    return cwd


def test_config_file_resolves_every_shipped_name_to_the_checkout_file(elsewhere):
    shipped = sorted((ROOT / "config").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"sim", "robot"}
    for path in shipped:
        for name in (path.stem, path.name):  # "sim" and "sim.yaml" name the same file
            found = config_file(name)
            assert found.is_absolute() and found.parent.name == "config", name
            assert found.name == path.name and found.read_bytes() == path.read_bytes(), name


def test_config_file_prefers_hsc_share_dir_and_falls_back_for_what_it_lacks(
    elsewhere, tmp_path, monkeypatch
):
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    mine = share / "config" / "sim.yaml"
    mine.write_text("sim_node:\n  ros__parameters:\n    seed: 7\n")
    monkeypatch.setenv("HSC_SHARE_DIR", str(share))
    assert config_file("sim") == mine
    robot = config_file("robot")  # not in HSC_SHARE_DIR: the next share directory's
    assert robot.read_bytes() == (ROOT / "config" / "robot.yaml").read_bytes()
    with pytest.raises(FileNotFoundError, match=r"config/no_such_config\.yaml not found") as err:
        config_file("no_such_config")
    assert str(share / "config" / "no_such_config.yaml") in str(err.value)  # where it looked


def test_config_file_returns_a_user_path_unchanged_and_names_a_missing_one(elsewhere):
    own = elsewhere / "my_robot.yaml"
    own.write_text("actuator_node:\n  ros__parameters:\n    cmd_timeout: 0.2\n")
    assert config_file(str(own)) == own
    assert config_file("my_robot.yaml") == own.relative_to(elsewhere)  # relative, from cwd
    with pytest.raises(FileNotFoundError, match=r"gone\.yaml does not exist"):
        config_file(str(elsewhere / "gone.yaml"))


def test_a_shipped_name_is_not_shadowed_by_a_config_folder_in_the_working_directory(elsewhere):
    (elsewhere / "config").mkdir()
    (elsewhere / "config" / "sim.yaml").write_text("other_package_node: {}\n")
    assert config_file("sim").read_bytes() == (ROOT / "config" / "sim.yaml").read_bytes()


def test_every_launch_file_passes_static_checks():
    scripts = console_scripts()
    for launch in sorted((ROOT / "launch").glob("*.launch.py")):
        assert check_launch_file(launch, scripts, ROOT / "config") == []


def test_static_launch_check_catches_bad_executables_and_missing_configs(tmp_path: Path):
    bad = tmp_path / "bad.launch.py"
    bad.write_text(
        "from launch_ros.actions import Node\n"
        "def generate_launch_description():\n"
        "    return [Node(package='hybrid_snn_control', executable='no_such_node',\n"
        "                 parameters=['missing.yaml'])]\n"
    )
    problems = check_launch_file(bad, {"hsc"}, ROOT / "config")
    assert any("no_such_node" in p for p in problems)
    assert any("missing.yaml" in p for p in problems)
    good = tmp_path / "good.launch.py"
    good.write_text(
        "from launch_ros.actions import Node\n"
        "def generate_launch_description():\n"
        "    return [Node(package='hybrid_snn_control', executable='hsc',\n"
        "                 parameters=['sim.yaml'])]\n"
    )
    assert check_launch_file(good, {"hsc"}, ROOT / "config") == []

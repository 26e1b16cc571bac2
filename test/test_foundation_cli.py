"""The ``hsc`` command as a user runs it (the installed console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_snn_control.cli import build_parser


def _hsc() -> str:
    exe = Path(sys.executable).with_name("hsc")
    return str(exe) if exe.exists() else (shutil.which("hsc") or pytest.fail("hsc not installed"))


def test_help_lists_subcommands():
    out = subprocess.run([_hsc(), "--help"], capture_output=True, text=True, check=True).stdout
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sub.choices, "no sub-commands registered"
    for name in sub.choices:
        assert name in out


def test_version_flag():
    out = subprocess.run([_hsc(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("hsc ")


def test_config_check_reports_bad_file_with_its_name_and_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hsc_demo:\n  ros__parameters:\n    messagez: 3\n")
    res = subprocess.run([_hsc(), "config", "check", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert str(bad) in res.stderr and "messagez" in res.stderr


def test_config_check_accepts_shipped_file():
    res = subprocess.run([_hsc(), "config", "check", "sim"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "hsc_demo: ok" in res.stdout


def test_every_command_module_is_registered():
    """A command module that is not in COMMAND_MODULES is unreachable from ``hsc``."""
    from hybrid_snn_control import cli

    folder = Path(cli.__file__).with_name("commands")
    modules = {f"hybrid_snn_control.commands.{p.stem}" for p in folder.glob("*.py")}
    modules.discard("hybrid_snn_control.commands.__init__")
    assert modules <= set(cli.COMMAND_MODULES), modules - set(cli.COMMAND_MODULES)

"""Static checks of launch files, for machines where ROS 2 ``launch`` is not installable.

A launch file is parsed (never executed): it must compile, define
``generate_launch_description``, name only executables that ``setup.py`` registers as
console scripts, and name only parameter files that exist in ``config/`` and load.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hybrid_snn_control.config import ConfigError
from hybrid_snn_control.node_params import validate_file

ROOT = Path(__file__).resolve().parents[1]


def console_scripts(setup_py: Path = ROOT / "setup.py") -> set[str]:
    """Console script names registered in setup.py (parsed, not imported)."""
    text = setup_py.read_text()
    return set(re.findall(r"[\"']\s*([A-Za-z0-9_\-]+)\s*=\s*[\w.]+:\w+\s*[\"']", text))


def check_launch_file(path: Path, scripts: set[str], config_dir: Path) -> list[str]:
    """Problems found in one launch file (empty list: fine)."""
    problems: list[str] = []
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        return [f"{path.name}: syntax error: {exc}"]
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if "generate_launch_description" not in funcs:
        problems.append(f"{path.name}: no generate_launch_description()")
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        for kw in call.keywords:
            if kw.arg == "executable" and isinstance(kw.value, ast.Constant):
                if kw.value.value not in scripts:
                    problems.append(
                        f"{path.name}: executable '{kw.value.value}' is not a console script"
                    )
            if kw.arg == "package" and isinstance(kw.value, ast.Constant):
                if kw.value.value != "hybrid_snn_control":
                    problems.append(f"{path.name}: unexpected package '{kw.value.value}'")
    for const in (n for n in ast.walk(tree) if isinstance(n, ast.Constant)):
        if isinstance(const.value, str) and re.fullmatch(r"[\w\-]+\.ya?ml", const.value):
            cfg = config_dir / const.value
            if not cfg.is_file():
                problems.append(f"{path.name}: parameter file {const.value} not in config/")
                continue
            try:
                validate_file(cfg)
            except (ConfigError, ImportError) as exc:
                problems.append(f"{path.name}: parameter file {const.value} does not load: {exc}")
    return problems

"""Find the package's shared files (config, launch, shipped policies) wherever it is installed.

Three install shapes exist and each puts ``share/`` files somewhere else:

* ``colcon build`` / ROS install: ``<prefix>/share/hybrid_snn_control`` found through
  the ament index;
* ``pip install .``: ``<sys.prefix>/share/hybrid_snn_control`` (``data_files``), with no
  ament index (PyPI rclpy leaves ``AMENT_PREFIX_PATH`` unset);
* ``pip install -e .``: editable installs skip ``data_files`` (pypa/setuptools#3399), so
  the files are only in the source checkout next to the package.

Everything that needs such a file calls :func:`share_file` instead of guessing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "hybrid_snn_control"
_PACKAGE_DIR = Path(__file__).resolve().parent


def share_dirs() -> list[Path]:
    """Candidate share directories, most specific first (existing ones only)."""
    candidates: list[Path] = []
    env = os.environ.get("HSC_SHARE_DIR")
    if env:
        candidates.append(Path(env))
    try:  # the ament index knows about colcon workspaces and ROS installs
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - not installed, no index, or no ament at all
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    candidates.append(_PACKAGE_DIR.parent)  # source checkout (editable install)
    seen: list[Path] = []
    for c in candidates:
        if c.is_dir() and c not in seen:
            seen.append(c)
    return seen


def share_file(relative: str | os.PathLike[str]) -> Path:
    """Resolve ``relative`` (e.g. ``"config/sim.yaml"``) in the first share dir that has it.

    An absolute or existing path is returned unchanged, so users can always pass their
    own file.  Raises ``FileNotFoundError`` naming every place that was searched.
    """
    path = Path(relative)
    if path.is_absolute() or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    return _shipped_file(path)


def _shipped_file(path: Path) -> Path:
    """``path`` in the share directories only (never the working directory)."""
    searched = []
    for base in share_dirs():
        candidate = base / path
        searched.append(str(candidate))
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{path!s} not found in the package share directories: {', '.join(searched) or 'none'}"
    )


def config_file(name: str) -> Path:
    """A shipped parameter file by name (``"sim"`` or ``"sim.yaml"``) or a user path.

    A bare name is looked up in the share directories only, so a ``config/`` folder in the
    working directory cannot shadow the shipped file.
    """
    p = Path(name)
    if p.suffix in {".yaml", ".yml"} and (p.is_absolute() or p.exists() or len(p.parts) > 1):
        return share_file(p)
    return _shipped_file(Path("config") / (name if p.suffix else f"{name}.yaml"))


def package_data(relative: str) -> Path:
    """A file shipped inside the Python package itself (assets, the default policy)."""
    path = _PACKAGE_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"package data {relative} not found at {path}")
    return path

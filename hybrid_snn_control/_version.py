"""The package version, read from its one source of truth: ``package.xml``.

Installed (pip or colcon) the version comes from the distribution metadata that
``setup.py`` wrote from ``package.xml``; in a bare source checkout it is parsed from
``package.xml`` directly.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    source_xml = Path(__file__).resolve().parents[1] / "package.xml"
    if source_xml.is_file():
        match = re.search(r"<version>([^<]+)</version>", source_xml.read_text())
        if match:
            return match.group(1).strip()
    try:
        return metadata.version("hybrid_snn_control")
    except metadata.PackageNotFoundError:  # pragma: no cover - neither installed nor a checkout
        return "0+unknown"


__version__ = _read_version()

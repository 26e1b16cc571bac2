"""Exported artefacts' metadata: where it is stored and how to read it without torch.

Every exported step graph carries a JSON description (input/output names, state names,
ratio thresholds, the policy config with its robot spec; see
:func:`hybrid_snn_control.deploy.export.artefact_metadata`) embedded in the file
(TorchScript ``_extra_files['hsc_meta.json']``, ONNX ``metadata_props['hsc_meta']``) and
beside it as ``<file>.json``.  This module reads it with what a robot has: an ONNX
Runtime session, or the onnx package when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META_KEY = "hsc_meta"  # ONNX metadata_props key; TorchScript extra file "hsc_meta.json"

__all__ = ["META_KEY", "read_onnx_metadata", "session_metadata"]


def session_metadata(session, path: str | Path) -> dict[str, Any]:
    """The ``hsc_meta`` JSON of an ONNX model through its ONNX Runtime session (no onnx
    package needed), falling back to ``<file>.json`` beside it."""
    stored = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if stored is not None:
        return json.loads(stored)
    return _sidecar_metadata(path)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``hsc_meta`` JSON stored in an exported ONNX file (falls back to ``<file>.json``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            return json.loads(prop.value)
    return _sidecar_metadata(path)


def _sidecar_metadata(path: str | Path) -> dict[str, Any]:
    side = Path(f"{path}.json")
    if side.is_file():
        return json.loads(side.read_text())
    raise ValueError(f"{path} carries no hsc_meta metadata: not exported by hsc export?")

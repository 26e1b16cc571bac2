"""Checkpoints: safetensors weights with JSON metadata in one atomically written file.

Why this shape:

* **No pickle.**  ``torch.load`` of an untrusted file can run code; safetensors holds
  only tensors, and our metadata is JSON in the safetensors header (key ``hsc``).
* **One file, one ``os.replace``.**  Weights and metadata cannot get out of step, and a
  crash mid-write leaves the previous checkpoint intact (write to a temp file in the
  same directory, ``fsync``, rename).
* **Content hash.**  ``sha256`` over every tensor (name, dtype, shape, bytes) and the
  metadata, stored in the header and checked on load: a corrupted or edited file is a
  clear error, not a silently different policy.

Tensors are grouped by prefix (``model.``, ``optim.``, ``rng.`` …) so one file can hold
a deployable policy or a full resumable training state.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT = "hybrid_snn_control/checkpoint"
# 2: a policy's policy_config carries its RobotSpec (``robot``), which version-1 readers
# reject as an unknown parameter; the version check says "upgrade" instead.
FORMAT_VERSION = 2

__all__ = [
    "CheckpointError",
    "content_hash",
    "load_checkpoint",
    "pack_state",
    "read_header",
    "save_checkpoint",
    "split_prefix",
    "unpack_state",
    "with_prefix",
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, tampered with or does not fit the model."""


def content_hash(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> str:
    """sha256 over tensors (sorted by name, with dtype and shape) and canonical JSON metadata."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
) -> str:
    """Write ``tensors`` + JSON-able ``metadata`` to ``path`` atomically; return the hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # unshare
    meta = dict(metadata)
    digest = content_hash(clean, meta)
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "hsc": json.dumps(meta, sort_keys=True),
        "sha256": digest,
    }
    blob = st_save(clean, metadata=header)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; return ``(tensors, metadata)``.

    Raises :class:`CheckpointError` naming the file for: a missing or unreadable file
    (permissions), bytes that are not safetensors, a file not written by this package, an
    unreadable format version, or a hash mismatch.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a directory, expected a file") from None
    except OSError as exc:  # permissions, I/O errors: the same one line, not a traceback
        raise CheckpointError(f"could not load {path}: {exc.strerror or exc}") from None
    try:
        tensors = st_load(blob)
        header = _read_header(blob)
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file: {exc}"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} was not written by hybrid_snn_control")
    try:
        version = int(header.get("format_version", "0"))
    except (TypeError, ValueError):
        raise CheckpointError(
            f"checkpoint {path} has an unreadable format version "
            f"{str(header.get('format_version'))[:40]!r} (expected an integer)"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {header['format_version']}, "
            f"this package reads up to {FORMAT_VERSION}: upgrade hybrid_snn_control"
        )
    try:
        meta = json.loads(header["hsc"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has no valid metadata: {exc}") from None
    digest = content_hash(tensors, meta)
    if digest != header.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} failed its content check (sha256 {digest[:12]}… != stored "
            f"{str(header.get('sha256'))[:12]}…): the file is corrupted or was modified"
        )
    if str(map_location) != "cpu":
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return tensors, meta


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors ``__metadata__`` of a checkpoint file (not verified: for the stored
    sha256 and format fields; :func:`load_checkpoint` verifies)."""
    try:
        return _read_header(Path(path).read_bytes())
    except OSError as exc:
        raise CheckpointError(f"could not load {path}: {exc.strerror or exc}") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"could not read checkpoint {path}: {exc}") from None


def _read_header(blob: bytes) -> dict[str, str]:
    if len(blob) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError("header length exceeds file size")
    header = json.loads(blob[8 : 8 + n])
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise ValueError("safetensors header is not a JSON object with a __metadata__ map")
    return meta


def split_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.`` with the prefix removed (e.g. a model's state_dict)."""
    p = prefix.rstrip(".") + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def with_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``tensors`` renamed to ``prefix.<name>`` (to group several state dicts in one file)."""
    p = prefix.rstrip(".") + "."
    return {p + k: v for k, v in tensors.items()}


def pack_state(obj: Any, prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (optimizer ``state_dict``, RNG states …) into tensors + JSON.

    Every tensor is replaced by ``{"__tensor__": name}`` and returned under
    ``prefix.<path>``; what is left is plain JSON.  :func:`unpack_state` inverts it.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            tensors[path] = x
            return {"__tensor__": path}
        if isinstance(x, Mapping):
            return {
                "__dict__": [
                    [walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")]
                    for i, (k, v) in enumerate(x.items())
                ]
            }
        if isinstance(x, (list, tuple)):
            items = [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
            return {"__tuple__": items} if isinstance(x, tuple) else items
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} at {path} in a checkpoint")

    return tensors, walk(obj, prefix.rstrip("."))


def unpack_state(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Rebuild what :func:`pack_state` split, taking tensors from ``tensors``."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            try:
                return tensors[tree["__tensor__"]]
            except KeyError:
                raise CheckpointError(f"checkpoint lacks tensor {tree['__tensor__']}") from None
        if "__dict__" in tree:
            return {unpack_state(k, tensors): unpack_state(v, tensors) for k, v in tree["__dict__"]}
        if "__tuple__" in tree:
            return tuple(unpack_state(v, tensors) for v in tree["__tuple__"])
    if isinstance(tree, list):
        return [unpack_state(v, tensors) for v in tree]
    return tree

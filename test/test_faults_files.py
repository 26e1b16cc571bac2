"""Bad policy files, decoder arguments and export paths (issue 18, finding 6).

Every bad file a user can hand the package ends in one clear line naming the file (exit 2
from ``hsc``, "could not start" from a node), never a traceback or a policy that only
fails at its first step; every event decoder raises ``ValueError`` (or counts, in
non-strict mode) and nothing else; ``hsc export`` without ``--out`` writes into the
working directory, not beside a checkpoint that may live in site-packages.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from hybrid_snn_control.cli import main
from hybrid_snn_control.deploy.runtime import load_runtime
from hybrid_snn_control.events.arrays import EVENT_DTYPE
from hybrid_snn_control.events.codecs import (
    FLOAT64,
    INT8,
    UINT16,
    DecodeStats,
    PointFieldSpec,
    evt3_decode,
    mono_decode,
    mono_encode,
    pointcloud2_decode,
    pointcloud2_encode,
)
from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, load_policy, save_policy
from hybrid_snn_control.policy.checkpoint import (
    FORMAT,
    CheckpointError,
    content_hash,
    load_checkpoint,
    with_prefix,
)
from hybrid_snn_control.robot.controller import PolicyController


def tiny_policy(seed: int = 0) -> HybridPolicy:
    torch.manual_seed(seed)
    cfg = PolicyConfig(event_shape=[2, 16, 16], hidden_size=16, encoder_channels=[4])
    return HybridPolicy(cfg).eval()


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("good") / "tiny.safetensors"
    save_policy(path, tiny_policy())
    return path


def export_args(checkpoint, out=None) -> list[str]:
    args = ["export", "--checkpoint", str(checkpoint), "--format", "torchscript"]
    return [*args, "--out", str(out)] if out is not None else args


# ---- non-finite weights --------------------------------------------------------------------
def test_checkpoint_with_nan_weights_is_refused_at_load_and_export(tmp_path, capsys):
    policy = tiny_policy()
    with torch.no_grad():
        next(p for n, p in policy.named_parameters() if n.endswith("weight"))[0, 0] = float("nan")
    path = tmp_path / "diverged.safetensors"
    save_policy(path, policy)
    with pytest.raises(CheckpointError, match=r"diverged\.safetensors holds non-finite"):
        load_policy(path)
    out = tmp_path / "diverged.pt"
    assert main(export_args(path, out)) == 2
    err = capsys.readouterr().err
    assert "diverged.safetensors holds non-finite" in err and "Traceback" not in err
    assert not out.exists()


# ---- unreadable files: one "could not load <file>: <reason>" line -------------------------
@pytest.mark.parametrize(
    ("name", "backend"), [("garbage.onnx", "onnxruntime"), ("garbage.pt", "torchscript")]
)
def test_garbage_exported_artefact_is_a_clear_load_error(tmp_path, name, backend):
    path = tmp_path / name
    path.write_bytes(b"this is not a model\x00\x01" * 10)
    with pytest.raises(ValueError, match=rf"could not load .*{name}: "):
        load_runtime(path, backend=backend)
    with pytest.raises(ValueError, match=rf"could not load .*{name}: "):
        PolicyController(path, backend=backend)


def test_policy_node_with_a_garbage_onnx_says_could_not_load(tmp_path, capfd):
    pytest.importorskip("rclpy", reason="rclpy missing: install the [ros] extra")
    from hybrid_snn_control.ros.policy_node import PolicyNode
    from hybrid_snn_control.ros.runner import run_nodes

    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"not a protobuf" * 8)
    args = ["--ros-args", "-p", f"checkpoint:={path}", "-p", "backend:=onnxruntime"]
    assert run_nodes([PolicyNode], args=args) == 2
    err = capfd.readouterr().err
    assert f"could not load {path}: " in err and "Traceback" not in err


@pytest.fixture
def unreadable(tmp_path, good_checkpoint, monkeypatch) -> pathlib.Path:
    """A chmod-000 copy of a good checkpoint; as root (whom chmod does not stop) its reads
    raise the PermissionError an ordinary user gets."""
    path = tmp_path / "locked.safetensors"
    path.write_bytes(good_checkpoint.read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:
        real = pathlib.Path.read_bytes

        def read_bytes(self: pathlib.Path) -> bytes:
            if self.resolve() == path.resolve():
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    yield path
    path.chmod(0o600)


def test_unreadable_checkpoint_is_a_clear_error_not_a_traceback(unreadable, tmp_path, capsys):
    with pytest.raises(CheckpointError, match=r"could not load .*locked\.safetensors: Permission"):
        load_checkpoint(unreadable)
    with pytest.raises(CheckpointError, match="could not load"):
        PolicyController(unreadable)
    assert main(export_args(unreadable, tmp_path / "x.pt")) == 2
    err = capsys.readouterr().err
    assert "could not load" in err and "locked.safetensors" in err and "Permission" in err


def test_directory_as_checkpoint_says_it_is_a_directory(tmp_path, capsys):
    d = tmp_path / "policy.safetensors"
    d.mkdir()
    for args in (export_args(d), ["bench", "--checkpoint", str(d)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "is a directory" in err and "does not exist" not in err, err
    with pytest.raises(ValueError, match="is a directory"):
        PolicyController(d)
    with pytest.raises(ValueError, match="is a directory"):
        load_runtime(d)


def test_unreadable_format_version_names_the_file(tmp_path, capsys):
    tensors = with_prefix(tiny_policy().state_dict(), "model")
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = {"kind": "hybrid_policy"}
    header = {
        "format": FORMAT,
        "format_version": "abc",
        "hsc": json.dumps(meta, sort_keys=True),
        "sha256": content_hash(tensors, meta),
    }
    path = tmp_path / "odd_version.safetensors"
    path.write_bytes(st_save(tensors, metadata=header))
    with pytest.raises(CheckpointError, match=r"odd_version\.safetensors has an unreadable format"):
        load_checkpoint(path)
    assert main(export_args(path, tmp_path / "x.pt")) == 2
    assert "odd_version.safetensors" in capsys.readouterr().err


# ---- hsc export without --out ----------------------------------------------------------------
def test_export_without_out_writes_to_the_working_directory(good_checkpoint, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    beside = good_checkpoint.with_suffix(".pt")
    beside.unlink(missing_ok=True)
    assert main(export_args(good_checkpoint)) == 0
    assert (work / "tiny.pt").is_file() and (work / "tiny.pt.json").is_file()
    assert not beside.exists()


# ---- decoders: ValueError and nothing else ------------------------------------------------------
def _events(n: int = 5) -> np.ndarray:
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = np.arange(n), np.arange(n), 1000 + np.arange(n), 1
    return ev


LAST_STAMP_NS = (2**31 - 1) * 10**9 + 999_999_999  # builtin_interfaces/Time: int32 sec
PC = pointcloud2_encode(_events())
MONO, TB = mono_encode(_events())
FLOAT_T = (
    PointFieldSpec("x", 0, UINT16),
    PointFieldSpec("y", 2, UINT16),
    PointFieldSpec("t", 4, FLOAT64),
    PointFieldSpec("p", 12, INT8),
)


def _float_t_cloud(t_s: float) -> bytes:
    dt = np.dtype({"names": list("xytp"), "formats": ["<u2", "<u2", "<f8", "i1"],
                   "offsets": [0, 2, 4, 12], "itemsize": 13})  # fmt: skip
    pts = np.zeros(2, dt)
    pts["t"] = t_s
    pts["p"] = 1
    return pts.tobytes()


BAD_DECODER_CALLS = {
    "mono time_base 2^63": lambda: mono_decode(MONO, 2**63),
    "mono time_base 2^64": lambda: mono_decode(MONO, 2**64 + 5),
    "mono time_base < 0": lambda: mono_decode(MONO, -1),
    "mono events past 2038": lambda: mono_decode(MONO, LAST_STAMP_NS - 1000),
    "mono time_base str": lambda: mono_decode(MONO, "0"),
    "mono time_base None": lambda: mono_decode(MONO, None),
    "mono payload str": lambda: mono_decode("abcdefgh", TB),
    "mono payload None": lambda: mono_decode(None, TB),
    "mono payload int": lambda: mono_decode(12345678, TB),
    "evt3 payload str": lambda: evt3_decode("abcd"),
    "evt3 payload list": lambda: evt3_decode([1, 2, 3]),
    "pc2 fields None": lambda: pointcloud2_decode(PC.data, fields=None),
    "pc2 fields ints": lambda: pointcloud2_decode(PC.data, fields=[1, 2, 3, 4]),
    "pc2 fields dicts missing keys": lambda: pointcloud2_decode(
        PC.data, fields=[{"name": n} for n in "xytp"]
    ),
    "pc2 offset str": lambda: pointcloud2_decode(
        PC.data, fields=[{"name": n, "offset": "a", "datatype": 2, "count": 1} for n in "xytp"]
    ),
    "pc2 point_step None": lambda: pointcloud2_decode(PC.data, point_step=None),
    "pc2 point_step str": lambda: pointcloud2_decode(PC.data, point_step="9"),
    "pc2 width str": lambda: pointcloud2_decode(PC.data, width="5"),
    "pc2 stamp 2^70": lambda: pointcloud2_decode(PC.data, stamp_us=2**70),
    "pc2 stamp None": lambda: pointcloud2_decode(PC.data, stamp_us=None),
    "pc2 data str": lambda: pointcloud2_decode("x" * 45),
    "pc2 data None": lambda: pointcloud2_decode(None),
    "pc2 t_scale str": lambda: pointcloud2_decode(_float_t_cloud(1.0), FLOAT_T, 13, t_scale_us="s"),
    "pc2 float t 1e13 s": lambda: pointcloud2_decode(_float_t_cloud(1e13), FLOAT_T, 13),
    "pc2 float t -1e300 s": lambda: pointcloud2_decode(_float_t_cloud(-1e300), FLOAT_T, 13),
}


@pytest.mark.parametrize("call", list(BAD_DECODER_CALLS.values()), ids=list(BAD_DECODER_CALLS))
def test_decoders_raise_value_error_and_nothing_else(call):
    with pytest.raises(ValueError):
        call()


def test_non_strict_mono_counts_a_bad_time_base_instead_of_raising():
    stats = DecodeStats()
    out = mono_decode(MONO, 2**63, strict=False, stats=stats)
    assert out.size == 0 and stats.dropped_events == 5 and stats.messages


def test_random_pointcloud2_layouts_raise_only_value_error():
    rng = np.random.default_rng(18)
    data = rng.integers(0, 256, 13 * 7, dtype=np.uint8).tobytes()
    for _ in range(300):
        fields = [
            {
                "name": name,
                "offset": int(rng.integers(-2, 14)),
                "datatype": int(rng.integers(0, 10)),
                "count": int(rng.integers(0, 3)),
            }
            for name in "xytp"
        ]
        try:
            pointcloud2_decode(data, fields, 13, int(rng.integers(0, 2**40)))
        except ValueError:
            pass

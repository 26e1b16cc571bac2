"""Checkpoints: round trip, atomic replace, tamper detection, no pickle, resumable state."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from hybrid_snn_control.policy.checkpoint import (
    CheckpointError,
    load_checkpoint,
    pack_state,
    save_checkpoint,
    split_prefix,
    unpack_state,
    with_prefix,
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GRU(8, 8))


def test_round_trip_is_exact_and_metadata_survives(tmp_path):
    m = _model()
    m.register_buffer("ranking", torch.tensor([3, 1, 0, 2]))
    meta = {"config": {"hidden": 8, "cell": "gru"}, "spiking_ratio": 0.25, "seed": 7}
    digest = save_checkpoint(tmp_path / "p.safetensors", with_prefix(m.state_dict(), "model"), meta)
    tensors, got = load_checkpoint(tmp_path / "p.safetensors")
    assert got == meta
    sd = split_prefix(tensors, "model")
    assert sd.keys() == m.state_dict().keys()
    for k, v in m.state_dict().items():
        assert torch.equal(sd[k], v) and sd[k].dtype == v.dtype
    assert len(digest) == 64


def test_tampered_weights_or_metadata_are_detected(tmp_path):
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, {"w": torch.arange(16, dtype=torch.float32)}, {"ratio": 0.5})
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x40  # flip a bit inside the tensor data
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="content check"):
        load_checkpoint(path)
    save_checkpoint(path, {"w": torch.arange(16, dtype=torch.float32)}, {"ratio": 0.5})
    path.write_bytes(path.read_bytes().replace(b'\\"ratio\\": 0.5', b'\\"ratio\\": 0.9'))
    with pytest.raises(CheckpointError, match="content check"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"", "not a readable"), (b"\x00" * 4, "not a readable"), (b"garbage" * 20, "not a readable")],
)
def test_corrupted_files_give_clear_errors(tmp_path, content, fragment):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=fragment):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not written by hybrid_snn_control"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    # a pickle is never unpickled: it is just not a safetensors file
    torch.save({"w": torch.zeros(2)}, tmp_path / "pickle.pt")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "pickle.pt")


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, {"w": torch.ones(3)}, {"step": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)}, {"step": 2})
    monkeypatch.undo()
    tensors, meta = load_checkpoint(path)
    assert meta == {"step": 1} and torch.equal(tensors["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]  # no temp file left


def test_optimizer_and_rng_state_round_trip(tmp_path):
    m = _model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m[0](torch.randn(2, 4)).sum().backward()
    opt.step()
    rng = np.random.default_rng(3)
    rng.random(5)
    state = {
        "optim": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "np_rng": rng.bit_generator.state,
        "epoch": 4,
    }
    tensors, tree = pack_state(state, "train")
    save_checkpoint(tmp_path / "s.safetensors", tensors, {"train": tree})
    t2, meta = load_checkpoint(tmp_path / "s.safetensors")
    back = unpack_state(meta["train"], t2)
    opt2 = torch.optim.Adam(_model().parameters(), lr=1e-3)
    opt2.load_state_dict(back["optim"])
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(opt2.state_dict()["state"][0][k]), torch.as_tensor(v))
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = back["np_rng"]
    assert rng2.random() == rng.random()
    assert back["epoch"] == 4

"""The per-frame event floor (policy/event_floor.py): what it removes, what it keeps, and
that it is part of every deployed graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_fixtures import backend_actions, make_policy, save_test_policy, step_and_sequence

from hybrid_snn_control.deploy.runtime import load_runtime
from hybrid_snn_control.policy import load_policy
from hybrid_snn_control.policy.event_floor import EventFloor

TOL_FP32 = 1e-5


def _sparse_frame(seed: int = 0, shape=(2, 32, 32), active: float = 0.02) -> torch.Tensor:
    """A nominal-like frame: about 2 % of the pixels with 1-5 events (a moving edge)."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 6, shape, generator=g).float()
    return counts * (torch.rand(shape, generator=g) < active)


def test_a_sparse_frame_passes_the_quantile_floor_unchanged():
    frame = _sparse_frame()
    floor = EventFloor("quantile", 0.97, 32, 32)
    assert torch.equal(floor(frame), frame)
    assert floor.k == 31  # ceil(0.03 * 1024)
    # the mean floor is never exactly 0 on a frame with events: it shifts every count
    assert not torch.equal(EventFloor("mean", 0.97, 32, 32)(frame), frame)
    assert torch.equal(EventFloor("none", 0.97, 32, 32)(frame), frame)


@pytest.mark.parametrize("level", [1.0, 2.0, 3.0])
def test_a_global_brightness_step_is_removed_per_polarity(level):
    """Flicker: every pixel fires ``level`` more ON events; the moving edge stays."""
    frame = _sparse_frame(1)
    flicker = frame.clone()
    flicker[0] += level  # ON everywhere, OFF untouched
    out = EventFloor("quantile", 0.97, 32, 32)(flicker)
    assert torch.equal(out, frame)


def test_dense_shot_noise_is_mostly_removed_and_a_strong_edge_kept():
    g = torch.Generator().manual_seed(2)
    noise = (torch.rand(2, 32, 32, generator=g) < 0.3).float()  # 30 % of pixels, 1 event
    edge = torch.zeros(2, 32, 32)
    edge[0, 10:14, 16] = 4.0
    out = EventFloor("quantile", 0.97, 32, 32)(noise + edge)
    assert out[0, 10:14, 16].min() >= 3.0  # the edge keeps all but the noise level
    assert (out > 0).float().mean() < 0.01  # about 30 % -> under 1 % of the pixels


def test_leading_dimensions_are_independent_frames():
    frames = torch.stack([_sparse_frame(s) + s for s in range(6)]).reshape(2, 3, 2, 32, 32)
    floor = EventFloor("quantile", 0.9, 32, 32)
    want = torch.stack([floor(f) for f in frames.reshape(6, 2, 32, 32)]).reshape(frames.shape)
    assert torch.equal(floor(frames), want)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="event_floor must be"):
        EventFloor("median", 0.97, 8, 8)
    with pytest.raises(ValueError, match="quantile"):
        EventFloor("quantile", 1.0, 8, 8)


@pytest.mark.parametrize("encoder", ["conv", "spiking_conv"])
def test_policy_with_a_floor_step_equals_sequence(encoder):
    policy = make_policy(
        hidden_size=8, event_shape=[2, 16, 16], encoder=encoder, event_floor="quantile"
    ).eval()
    stepped, seq = step_and_sequence(policy)
    torch.testing.assert_close(stepped, seq, atol=1e-6, rtol=0)
    # and the floor changes what the policy does on these dense frames
    plain = make_policy(hidden_size=8, event_shape=[2, 16, 16], encoder=encoder).eval()
    assert not torch.allclose(step_and_sequence(plain)[1], seq)


@pytest.mark.parametrize("mode", ["quantile", "mean"])
def test_exported_graphs_carry_the_floor(tmp_path, mode):
    """TorchScript and ONNX Runtime against eager over 30 steps of dense Poisson frames
    (where the floor is not 0), batch 2, with a ratio change."""
    ckpt = save_test_policy(tmp_path / "p.safetensors", hidden_size=8, event_floor=mode)
    policy, _ = load_policy(ckpt)
    assert policy.cfg.event_floor == mode
    runs = backend_actions(ckpt)
    for backend in ("torchscript", "onnxruntime"):
        assert np.abs(runs[backend] - runs["torch"]).max() <= TOL_FP32, backend


def test_shipped_policy_fp16_onnx_keeps_the_floor(tmp_path):
    """The shipped file's floor (a TopK) in a half-precision ONNX graph, as a Jetson runs
    it: its actions track the fp32 eager policy on frames with a non-zero floor (within
    the 2e-2 of the other fp16 checks) and not the same weights without the floor."""
    import dataclasses

    from hybrid_snn_control.deploy.export import export_checkpoint
    from hybrid_snn_control.policy import HybridPolicy, default_policy_path, save_policy

    ckpt = default_policy_path()
    policy, _ = load_policy(ckpt)
    if policy.cfg.event_floor == "none":
        pytest.skip("the shipped policy has no event floor")
    export_checkpoint(ckpt, tmp_path / "half.onnx", "onnx", fp16=True)
    half = load_runtime(tmp_path / "half.onnx", "onnxruntime", batch_size=1)
    eager = load_runtime(ckpt, "torch", batch_size=1)
    plain = HybridPolicy(dataclasses.replace(policy.cfg, event_floor="none"))
    plain.load_state_dict(policy.state_dict())
    save_policy(tmp_path / "plain.safetensors", plain.eval(), extra={"task": "test"})
    no_floor = load_runtime(tmp_path / "plain.safetensors", "torch", batch_size=1)
    rng = np.random.default_rng(0)
    proprio = np.zeros((1, policy.cfg.proprio_size), np.float32)
    worst, apart = 0.0, 0.0
    for t in range(60):
        active = 0.25 if t % 3 == 2 else 0.02  # every third frame: a flicker-like floor
        frame = rng.integers(1, 4, (1, 2, 32, 32)) * (rng.random((1, 2, 32, 32)) < active)
        want = eager.step(frame.astype(np.float32), proprio)
        got = half.step(frame.astype(np.float16), proprio.astype(np.float16))
        other = no_floor.step(frame.astype(np.float32), proprio)
        worst = max(worst, float(np.abs(np.asarray(got, np.float32) - want).max()))
        apart = max(apart, float(np.abs(other - want).max()))
    assert worst <= 2e-2 and apart > 0.1

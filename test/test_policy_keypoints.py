"""The encoder's spatial soft-argmax (policy/keypoints.py): it places a feature where it is,
and a policy with it keeps every equivalence (step == sequence, eager == exported)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_fixtures import backend_actions, make_policy, save_test_policy, step_and_sequence

from hybrid_snn_control.policy import PolicyConfig, load_default_policy, load_policy
from hybrid_snn_control.policy.keypoints import SpatialSoftArgmax

TOL_FP32 = 1e-5


def test_a_single_hot_pixel_is_placed_at_its_coordinates():
    """Channel 0 has one active cell at row 2, column 5 of an 8 x 8 map; coordinates run
    from -1 (left, top) to +1 in steps of 2/7.  Channel 1 is empty: the centre."""
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 2, 5] = 5.0
    out = SpatialSoftArgmax(2, 8, 8, beta=10.0)(maps)
    x, y = -1 + 5 * 2 / 7, -1 + 2 * 2 / 7
    torch.testing.assert_close(out[0, :2], torch.tensor([x, y]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, 2:], torch.zeros(2), atol=1e-6, rtol=0)


def test_a_feature_moving_right_moves_its_x_and_not_its_y():
    xs = []
    for col in range(8):
        maps = torch.zeros(1, 1, 8, 8)
        maps[0, 0, 4, col] = 1.0
        maps[0, 0, 3, col] = 1.0  # rows 3 and 4 of 0..7: y halfway, the centre
        xs.append(SpatialSoftArgmax(1, 8, 8)(maps)[0])
    xs = torch.stack(xs)
    assert (xs[1:, 0] > xs[:-1, 0]).all()
    torch.testing.assert_close(xs[:, 1], torch.zeros(8), atol=1e-6, rtol=0)


def test_the_temperature_is_learned():
    kp = SpatialSoftArgmax(1, 4, 4)
    maps = torch.rand(3, 1, 4, 4)
    kp(maps).sum().backward()
    assert kp.log_beta.grad is not None and kp.log_beta.grad.abs().item() > 0


def test_keypoints_add_two_features_per_channel_and_old_files_load_without_them():
    plain = make_policy(hidden_size=8, event_shape=[2, 32, 32], encoder_grid=3)
    kp = make_policy(hidden_size=8, event_shape=[2, 32, 32], encoder_grid=3, encoder_keypoints=True)
    assert kp.encoder.out_features == plain.encoder.out_features + 2 * 16
    assert kp.encoder.macs > plain.encoder.macs
    # the conv weights keep their names: files written before the option load as before
    assert set(plain.state_dict()) < set(kp.state_dict())
    shipped, _ = load_default_policy()
    assert shipped.cfg.encoder_keypoints is False and shipped.encoder.keypoints is None


def test_spiking_encoder_rejects_keypoints():
    with pytest.raises(ValueError, match="encoder_keypoints"):
        PolicyConfig(encoder="spiking_conv", encoder_keypoints=True)


@pytest.mark.parametrize("encoder", ["conv", "pool"])
def test_policy_with_keypoints_step_equals_sequence(encoder):
    policy = make_policy(
        hidden_size=8, event_shape=[2, 16, 16], encoder=encoder, encoder_keypoints=True
    ).eval()
    stepped, seq = step_and_sequence(policy)
    torch.testing.assert_close(stepped, seq, atol=1e-6, rtol=0)


def test_exported_graphs_carry_the_keypoints(tmp_path):
    """TorchScript and ONNX Runtime against eager over 30 steps, batch 2, with a ratio
    change; the policy file records the option."""
    ckpt = save_test_policy(tmp_path / "kp.safetensors", hidden_size=8, encoder_keypoints=True)
    policy, _ = load_policy(ckpt)
    assert policy.cfg.encoder_keypoints and policy.encoder.keypoints is not None
    runs = backend_actions(ckpt)
    for backend in ("torchscript", "onnxruntime"):
        assert np.abs(runs[backend] - runs["torch"]).max() <= TOL_FP32, backend

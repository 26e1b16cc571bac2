"""The policy controller starts at the checkpoint's stored ratio, including r = 0."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy
from hybrid_snn_control.robot.controller import PolicyController


@pytest.mark.parametrize("stored", [0.0, 0.25, 1.0])
def test_stored_ratio_is_used_when_none_is_given(tmp_path, stored):
    torch.manual_seed(0)
    policy = HybridPolicy(PolicyConfig(event_shape=[2, 8, 8], proprio_size=4, hidden_size=8))
    policy.set_ratio(stored)
    path = tmp_path / "p.safetensors"
    save_policy(path, policy)
    assert PolicyController(path).spiking_ratio == stored
    assert PolicyController(path, spiking_ratio=0.75).spiking_ratio == 0.75

"""The policy node's core without ROS: event accumulation, the control step, hot swap, reset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybrid_snn_control.events.arrays import EVENT_DTYPE
from hybrid_snn_control.events.encoders import event_frame
from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, load_policy, save_policy
from hybrid_snn_control.policy.checkpoint import CheckpointError
from hybrid_snn_control.robot.controller import (
    EventAccumulator,
    PolicyController,
    proprio_vector,
    resolve_backend,
    wheel_speeds_from_twist,
)


def random_events(n: int, w: int, h: int, seed: int = 0, t0: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["t"] = t0 + np.sort(rng.integers(0, 20_000, n))
    ev["p"] = rng.choice([-1, 1], n)
    return ev


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = PolicyConfig(event_shape=[2, 16, 16], hidden_size=16, encoder_channels=[4])
    policy = HybridPolicy(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_policy(path, policy)
    return path


def test_accumulated_frame_equals_event_frame_of_all_packets():
    acc = EventAccumulator(16, 12)
    a, b = random_events(500, 16, 12, 1), random_events(300, 16, 12, 2, t0=50_000)
    assert acc.push(a) is None and acc.push(b) is None
    frame, newest, n = acc.take()
    expected = event_frame(np.concatenate([a, b]), (16, 12)).numpy()
    np.testing.assert_array_equal(frame, expected)
    assert newest == int(b["t"].max()) and n == 800
    frame2, newest2, n2 = acc.take()  # the window restarts empty
    assert frame2.sum() == 0 and newest2 is None and n2 == 0


def test_empty_packet_stamps_the_step_and_out_of_range_packets_are_dropped():
    acc = EventAccumulator(16, 12)
    assert acc.push(np.zeros(0, EVENT_DTYPE), stamp_us=777) is None
    bad = random_events(10, 16, 12)
    bad["x"][3] = 16
    assert "outside" in acc.push(bad)
    assert acc.dropped_packets == 1
    frame, newest, n = acc.take()
    assert newest == 777 and n == 0 and frame.sum() == 0  # nothing of the bad packet counted


def test_proprio_vector_matches_the_env_layout_and_odom_inversion():
    p = proprio_vector((11.0, -22.0), (0.1, 0.2, 0.3), (0.0, 0.0, 9.81), 22.0)
    np.testing.assert_allclose(p, [0.5, -1.0, 0.1, 0.2, 0.3, 0.0, 0.0, 1.0], rtol=1e-6)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(proprio_vector(None, None, None, 22.0), np.zeros(8))
    # sim_node's odometry twist from wheel speeds, inverted back
    left, right, r, s = 3.0, 5.0, 0.035, 0.17
    v, w = r * (left + right) / 2, r * (right - left) / s
    np.testing.assert_allclose(wheel_speeds_from_twist(v, w, s, r), (left, right))


def test_controller_step_equals_policy_step_and_scales_to_velocities(tiny_checkpoint):
    ctl = PolicyController(tiny_checkpoint, robot_overrides={"max_angular_rps": 3.0})
    assert ctl.robot.max_linear_mps == 0.6 and ctl.robot.max_angular_rps == 3.0  # stored + override
    ref, _ = load_policy(tiny_checkpoint)
    ref.set_ratio(ctl.spiking_ratio)
    state = None
    rng = np.random.default_rng(0)
    for _ in range(5):
        frame = rng.poisson(0.5, (2, 16, 16)).astype(np.float32)
        proprio = rng.normal(size=8).astype(np.float32)
        out = ctl.step(frame, proprio)
        with torch.no_grad():
            a, state = ref.step(
                torch.from_numpy(frame)[None], torch.from_numpy(proprio)[None], state
            )
        np.testing.assert_allclose(out.action, a[0].numpy(), atol=1e-6)
        assert math.isclose(out.linear_mps, out.action[0] * 0.6)
        assert math.isclose(out.angular_rps, out.action[1] * 3.0)
        assert out.cost is not None and out.cost.macs > 0 and out.cost.energy_pj > 0


def _replay(checkpoint, frames, switch_at, ratio_after, reset_at_switch=False):
    """Reference: the policy itself, stepped with the same inputs and one ratio change."""
    policy, _ = load_policy(checkpoint)
    policy.set_ratio(0.5)
    state, actions = None, []
    with torch.no_grad():
        for k, frame in enumerate(frames):
            if k == switch_at:
                policy.set_ratio(ratio_after)
                if reset_at_switch:
                    state = None
            a, state = policy.step(torch.from_numpy(frame)[None], torch.zeros(1, 8), state)
            actions.append(a[0].numpy())
    return np.array(actions), [t.numpy() for t in policy.flatten_state(state)]


def test_ratio_switch_is_masks_only_and_keeps_the_state(tiny_checkpoint):
    ctl = PolicyController(tiny_checkpoint, spiking_ratio=0.5)
    policy = ctl.runtime.policy
    rng = np.random.default_rng(3)
    frames = [rng.poisson(1.0, (2, 16, 16)).astype(np.float32) for _ in range(8)]
    actions = [ctl.step(f, np.zeros(8, np.float32)).action for f in frames[:4]]
    weights = {k: v.data_ptr() for k, v in policy.state_dict().items()}
    macs_half = ctl.runtime.last_cost.macs
    before = ctl.state_arrays()
    ctl.set_ratio(0.25)
    for x, y in zip(before, ctl.state_arrays()):
        np.testing.assert_array_equal(x, y)  # nothing reset or reallocated by the switch
    assert {k: v.data_ptr() for k, v in policy.state_dict().items()} == weights
    outs = [ctl.step(f, np.zeros(8, np.float32)) for f in frames[4:]]
    assert outs[0].spiking_ratio == 0.25 and outs[0].cost.macs != macs_half  # fewer spiking units
    actions += [o.action for o in outs]
    # the steps after the switch continue from the kept state: equal to a replay that
    # keeps it, different from one that starts the new ratio from zeros
    kept, kept_state = _replay(tiny_checkpoint, frames, 4, 0.25)
    np.testing.assert_allclose(np.array(actions), kept, atol=1e-6)
    for x, y in zip(ctl.state_arrays(), kept_state):
        np.testing.assert_allclose(x, y, atol=1e-6)
    fresh, _ = _replay(tiny_checkpoint, frames, 4, 0.25, reset_at_switch=True)
    assert np.abs(fresh[4] - kept[4]).max() > 1e-4
    # the first new step is one step of the ratio-0.25 network from the state held just
    # before the switch
    ref, _ = load_policy(tiny_checkpoint)
    ref.set_ratio(0.25)
    held = ref.core.unflatten_state([torch.from_numpy(x) for x in before])
    with torch.no_grad():
        a, _ = ref.step(torch.from_numpy(frames[4])[None], torch.zeros(1, 8), held)
    np.testing.assert_allclose(outs[0].action, a[0].numpy(), atol=1e-6)
    for bad in (1.5, -0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError):
            ctl.set_ratio(bad)
        assert ctl.spiking_ratio == 0.25


def test_reset_zeroes_the_recurrent_state(tiny_checkpoint):
    ctl = PolicyController(tiny_checkpoint)
    for _ in range(3):
        ctl.step(np.full((2, 16, 16), 2.0, np.float32), np.ones(8, np.float32))
    assert any(np.abs(s).sum() > 0 for s in ctl.state_arrays())
    ctl.reset()
    assert all(np.abs(s).sum() == 0 for s in ctl.state_arrays())


def test_wrong_shapes_are_rejected(tiny_checkpoint):
    ctl = PolicyController(tiny_checkpoint)
    with pytest.raises(ValueError, match="events frame"):
        ctl.step(np.zeros((2, 8, 8), np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="proprio"):
        ctl.step(np.zeros((2, 16, 16), np.float32), np.zeros(3, np.float32))


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PolicyController(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError):
        PolicyController(bad)
    with pytest.raises(ValueError, match="device"):
        PolicyController(bad, device="tpu")


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_exported_backends_give_the_torch_actions_and_switch_ratio(tiny_checkpoint, backend):
    eager = PolicyController(tiny_checkpoint, spiking_ratio=0.5)
    other = PolicyController(tiny_checkpoint, backend=backend, spiking_ratio=0.5)
    rng = np.random.default_rng(1)
    for k in range(6):
        if k == 3:
            eager.set_ratio(0.25)
            other.set_ratio(0.25)
        frame = rng.poisson(0.5, (2, 16, 16)).astype(np.float32)
        proprio = rng.normal(size=8).astype(np.float32)
        a, b = eager.step(frame, proprio), other.step(frame, proprio)
        np.testing.assert_allclose(b.action, a.action, atol=1e-5)
        assert b.spiking_ratio == a.spiking_ratio
        # the graph's cost comes from its spike counts, without a second pass in Python
        assert (b.cost.macs, b.cost.synops, b.cost.firing_rate) == (
            a.cost.macs,
            a.cost.synops,
            a.cost.firing_rate,
        )
        assert b.cost.energy_pj == pytest.approx(a.cost.energy_pj, rel=1e-12)
    other.reset()
    assert all(np.abs(s).sum() == 0 for s in other.state_arrays())


def test_auto_backend_runs_the_exported_graph_unless_only_eager_torch_can(tiny_checkpoint):
    import importlib.util

    graph = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torchscript"
    assert PolicyController(tiny_checkpoint, backend="auto").backend == graph
    assert resolve_backend(tiny_checkpoint, "auto") == graph
    assert resolve_backend(tiny_checkpoint, "auto", plasticity=True) == "torch"
    assert resolve_backend(tiny_checkpoint, "torchscript", plasticity=True) == "torchscript"
    assert resolve_backend("policy.onnx", "auto") == "onnxruntime"
    assert resolve_backend("policy.pt", "auto") == "torchscript"


def test_robot_spec_travels_with_the_policy_and_parameters_override_it(tmp_path):
    from hybrid_snn_control.deploy.export import export_checkpoint
    from hybrid_snn_control.policy import RobotSpec, default_policy_path

    torch.manual_seed(0)
    spec = RobotSpec(max_linear_mps=0.3, max_angular_rps=1.5, wheel_speed_max_radps=10.0)
    cfg = PolicyConfig(event_shape=[2, 16, 16], hidden_size=8, encoder_channels=[4], robot=spec)
    path = tmp_path / "slow.safetensors"
    save_policy(path, HybridPolicy(cfg))
    export_checkpoint(path, tmp_path / "slow.onnx", "onnx", exporter="torchscript")
    frame = np.ones((2, 16, 16), np.float32)
    for ctl in (PolicyController(path), PolicyController(tmp_path / "slow.onnx", "onnxruntime")):
        assert ctl.robot == spec  # stored in the file and in the exported artefact
        out = ctl.step(frame, ctl.proprio((5.0, -5.0), (0.0, 0.0, 0.1), (0.0, 0.0, 9.81)))
        assert math.isclose(out.linear_mps, out.action[0] * 0.3)
        assert math.isclose(out.angular_rps, out.action[1] * 1.5)
    np.testing.assert_allclose(ctl.proprio((5.0, -5.0), None, None)[:2], [0.5, -0.5])
    ctl.set_robot_overrides({"max_linear_mps": 0.2})
    assert ctl.robot.max_linear_mps == 0.2 and ctl.robot.max_angular_rps == 1.5
    assert ctl.set_robot_overrides({}) == spec
    # a file saved before the spec was stored: the sim rover every such policy was trained on
    from hybrid_snn_control.policy.checkpoint import load_checkpoint, save_checkpoint

    tensors, meta = load_checkpoint(path)
    del meta["policy_config"]["robot"]
    save_checkpoint(tmp_path / "old.safetensors", tensors, meta)
    assert PolicyController(tmp_path / "old.safetensors").robot == RobotSpec()
    assert PolicyController(default_policy_path()).robot == RobotSpec()  # the shipped one

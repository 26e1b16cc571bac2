"""The HRSNN as a policy core: interface, readout fit, online plasticity, training recipe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hybrid_snn_control.policy import (
    HRSNNCoreConfig,
    PolicyConfig,
    load_policy,
    save_policy,
)
from hybrid_snn_control.policy.hrsnn_policy import HRSNNPolicy
from hybrid_snn_control.robot.controller import PolicyController
from hybrid_snn_control.training.evaluate import evaluate_policy
from hybrid_snn_control.training.hrsnn_policy import (
    HRSNNPolicyTrainConfig,
    fit_readout,
    train_hrsnn_policy,
)
from hybrid_snn_control.training.rollout import EnvSettings, collect_episodes, make_envs
from hybrid_snn_control.training.sweep import parse_entry


def make_policy(**hrsnn) -> HRSNNPolicy:
    cfg = PolicyConfig(
        event_shape=[2, 16, 16],
        proprio_size=8,
        encoder="pool",
        encoder_grid=4,
        core="hrsnn",
        hrsnn=HRSNNCoreConfig(num_neurons=60, **hrsnn),
    )
    policy = HRSNNPolicy(cfg)
    g = torch.Generator().manual_seed(0)
    torch.nn.init.normal_(policy.readout.weight, std=0.2, generator=g)
    return policy


def inputs(t: int, b: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    events = torch.poisson(torch.full((t, b, 2, 16, 16), 0.2, dtype=dtype), generator=g)
    return events, torch.randn(t, b, 8, generator=g, dtype=dtype)


def test_core_hrsnn_needs_the_fixed_pool_encoder():
    with pytest.raises(ValueError, match="encoder 'pool'"):
        PolicyConfig(core="hrsnn", encoder="conv")


@pytest.mark.parametrize("plastic", [False, True])
def test_one_step_equals_the_sequence_with_and_without_online_plasticity(plastic):
    policy = make_policy().double()
    events, proprio = inputs(25, 3, dtype=torch.float64)
    w0 = policy.hrsnn.w_rec.detach().clone()
    policy.set_plasticity(plastic)
    seq, _ = policy(events, proprio)
    w_seq = policy.hrsnn.w_rec.detach().clone()
    with torch.no_grad():
        policy.hrsnn.w_rec.copy_(w0)
    state, steps = None, []
    for t in range(events.shape[0]):
        action, state, report = policy.step_with_efficiency(events[t], proprio[t], state)
        steps.append(action)
    torch.testing.assert_close(torch.stack(steps), seq, rtol=0, atol=1e-12)
    torch.testing.assert_close(policy.hrsnn.w_rec.detach(), w_seq, rtol=0, atol=1e-12)
    assert torch.equal(w_seq, w0) != plastic  # learning off: bit-identical; on: changed
    assert report.spiking_ratio == 1.0 and report.active_spiking == [60]
    assert report.synops_per_step == pytest.approx(
        float((state.layer.z * policy.hrsnn.fan_out_rec).sum()) / 3
    )


def test_saved_policy_loads_as_hrsnn_acts_the_same_and_keeps_its_ratio_fixed(tmp_path):
    policy = make_policy()
    policy.set_normalization(torch.arange(8.0), torch.full((8,), 2.0))
    events, proprio = inputs(10, 2)
    path = tmp_path / "h.safetensors"
    save_policy(path, policy, extra={"env": {"camera_size": 16}})
    loaded, meta = load_policy(path)
    assert isinstance(loaded, HRSNNPolicy) and meta["policy_config"]["core"] == "hrsnn"
    torch.testing.assert_close(loaded(events, proprio)[0], policy(events, proprio)[0])
    assert loaded.spiking_ratio == 1.0
    loaded.set_ratio(1.0)
    with pytest.raises(ValueError, match="fixed at 1"):
        loaded.set_ratio(0.5)


def test_readout_fit_recovers_a_linear_pre_tanh_map_on_raw_features():
    """Standardization is folded into the Linear layer: raw features in, actions out."""
    policy = make_policy()
    width = policy.readout.in_features
    g = torch.Generator().manual_seed(1)
    w_true = torch.randn(2, width, generator=g, dtype=torch.float64) * 0.02
    feats = []
    for _ in range(8):
        x = torch.randn(50, width, generator=g, dtype=torch.float64) * 3 + 5  # off-center
        feats.append((x, torch.tanh(x @ w_true.t() - (5 * w_true.sum(1)))))
    info = fit_readout(policy, feats, l2=1e-6)
    x = torch.cat([f for f, _ in feats]).float()
    pred = torch.tanh(policy.readout(x))
    target = torch.cat([a for _, a in feats]).float()
    mask = target.abs() < 0.9  # the fit is on clipped targets
    assert float(((pred - target)[mask] ** 2).mean()) < 1e-3
    assert info["train_mse"] < 1e-2


def test_input_only_readout_leaves_the_hrsnn_columns_zero():
    policy = make_policy()
    n, width = policy.hrsnn.hidden_size, policy.readout.in_features
    g = torch.Generator().manual_seed(2)
    feats = [
        (torch.randn(40, width, generator=g), torch.rand(40, 2, generator=g) - 0.5)
        for _ in range(4)
    ]
    fit_readout(policy, feats, l2=1.0, kind="input")
    assert torch.all(policy.readout.weight[:, :n] == 0)
    assert torch.any(policy.readout.weight[:, n:] != 0)


def test_controller_runs_an_hrsnn_policy_at_ratio_1_and_online_plasticity_moves_weights(
    tmp_path,
):
    path = tmp_path / "h.safetensors"
    save_policy(path, make_policy(), extra={})
    c = PolicyController(path, spiking_ratio=0.5)  # the node's default: not this core's
    assert c.spiking_ratio == 1.0 and c.fixed_ratio == 1.0
    # "auto" (the node's default backend) keeps an HRSNN core on eager torch
    assert PolicyController(path, backend="auto").backend == "torch"
    with pytest.raises(ValueError, match="fixed at 1"):
        c.set_ratio(0.25)
    rng = np.random.default_rng(0)
    frames = rng.poisson(0.3, (40, 2, 16, 16)).astype(np.float32)
    proprio = np.zeros(8, np.float32)
    before = c.weight_norms()
    for f in frames:
        out = c.step(f, proprio)
    assert c.weight_norms() == before  # learning off: weights untouched
    assert out.cost.synops >= 0 and out.spiking_ratio == 1.0
    c.set_plasticity(True)
    for f in frames:
        c.step(f, proprio)
    assert c.plasticity and c.weight_norms()["w_rec_norm"] != before["w_rec_norm"]


def test_online_plasticity_is_refused_for_a_hybrid_policy():
    from hybrid_snn_control.policy.shipped import default_policy_path

    c = PolicyController(default_policy_path())
    c.set_plasticity(False)
    with pytest.raises(ValueError, match="HRSNN core"):
        c.set_plasticity(True)
    assert c.weight_norms() == {} and not c.plasticity


def test_sweep_entry_online_flag():
    e = parse_entry("hrsnn:online=a.safetensors,b.safetensors")
    assert e.name == "hrsnn" and len(e.paths) == 2
    assert e.extra == {"online_plasticity": True, "plasticity_rate": 1.0}
    assert parse_entry("h:onlinex10=a").extra["plasticity_rate"] == 10.0
    assert parse_entry("hybrid@0,1=x").extra == {}
    for bad in ("hrsnn:offline=a", "hrsnn:onlinexfast=a", "hrsnn:onlinex-1=a"):
        with pytest.raises(ValueError, match=":online"):
            parse_entry(bad)


def test_plasticity_rate_scales_the_online_updates():
    events, proprio = inputs(20, 2)
    moved = {}
    for rate in (0.0, 1.0, 10.0):
        policy = make_policy()
        w0 = policy.hrsnn.w_rec.detach().clone()
        policy.set_plasticity(True, rate)
        policy(events, proprio)
        moved[rate] = float((policy.hrsnn.w_rec - w0).abs().sum())
    assert moved[0.0] == 0.0 and moved[10.0] > 3 * moved[1.0] > 0
    with pytest.raises(ValueError, match="rate"):
        make_policy().set_plasticity(True, float("nan"))


def tiny_train_config(episode_s: float, neurons: int, **over) -> HRSNNPolicyTrainConfig:
    """16 × 16 events, 2 envs, a few episodes: seconds of training."""
    return HRSNNPolicyTrainConfig(
        env=EnvSettings(camera_size=16, episode_s=episode_s, num_envs=2),
        encoder_grid=4,
        hrsnn=HRSNNCoreConfig(num_neurons=neurons),
        **over,
    )


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    cfg = tiny_train_config(1.0, 40, bc_episodes=4, dagger_iterations=1, dagger_episodes=2)
    out = tmp_path_factory.mktemp("hrsnn") / "p.safetensors"
    policy, meta = train_hrsnn_policy(cfg, out, log=None)
    return cfg, out, policy, meta


def test_training_recipe_runs_stdp_fits_the_readout_and_saves_a_loadable_policy(tiny_trained):
    cfg, out, policy, meta = tiny_trained
    rounds = meta["history"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[0]["stdp_mean_abs_dw"] > 0
    loaded, saved = load_policy(out)
    assert isinstance(loaded, HRSNNPolicy) and saved["env"]["camera_size"] == 16
    assert torch.equal(loaded.readout.weight, policy.readout.weight)
    assert torch.any(loaded.readout.weight != 0)
    # the fitted readout explains the expert far better than the zero action does
    envs = make_envs(cfg.env)
    eps, _ = collect_episodes(envs, None, [123, 124])
    envs.close()
    expert = torch.from_numpy(np.concatenate([e.expert for e in eps]))
    acts = []
    for e in eps:
        events = torch.from_numpy(e.events[:, None]).float()
        acts.append(loaded(events, torch.from_numpy(e.proprio[:, None]))[0][:, 0])
    acts = torch.cat(acts)
    assert float(((acts - expert) ** 2).mean()) < 0.5 * float((expert**2).mean())


def test_evaluation_with_online_plasticity_restores_the_trained_weights(tiny_trained):
    cfg, _, policy, _ = tiny_trained
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    env = dataclasses.replace(cfg.env, episode_s=0.5)
    row = evaluate_policy(policy, env, None, "dim", episodes=2, online_plasticity=True)
    assert row["online_plasticity"] and row["w_rec_drift"] > 0 and row["ratio"] == 1.0
    assert len(row["episode_scores"]) == 2
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert not policy.plasticity


def test_export_refuses_an_hrsnn_policy_with_the_reason(tmp_path):
    from hybrid_snn_control.deploy.export import export_checkpoint
    from hybrid_snn_control.policy.checkpoint import CheckpointError

    path = tmp_path / "h.safetensors"
    save_policy(path, make_policy(), extra={})
    with pytest.raises(CheckpointError, match="HRSNN core"):
        export_checkpoint(path, tmp_path / "h.onnx", "onnx")
    with pytest.raises(CheckpointError, match="HRSNN core"):
        PolicyController(path, backend="onnxruntime")


def test_policy_search_scores_trials_in_closed_loop_on_validation_worlds():
    from hybrid_snn_control.training.hrsnn_policy import search_core

    cfg = tiny_train_config(0.3, 20, bc_episodes=2, dagger_iterations=0)
    study = search_core(cfg, n_trials=2, episodes=2, log=None)
    assert len(study.trials) == 2
    assert all(0.0 <= t.value <= 1.0 and "tau_mem_cv" in t.params for t in study.trials)

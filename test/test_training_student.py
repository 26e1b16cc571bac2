"""The student recipe's pieces (issue 14): episode cache, DART noise, privileged labels,
auxiliary heads that never reach the deployed graph, disjoint training / held-out ranges."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import onnx
import pytest
import torch

from hybrid_snn_control.deploy.export import StepGraph, export_policy
from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy
from hybrid_snn_control.policy.checkpoint import load_checkpoint
from hybrid_snn_control.sim.randomization import SHIFTS, TRAINING_RANGES, training_ranges
from hybrid_snn_control.training.imitation import ImitationConfig, StudentWithAux, tbptt_pass
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    EpisodeDataset,
    collect_episodes,
    make_envs,
)

TINY_ENV = EnvSettings(camera_size=16, episode_s=1.0, num_envs=2)


@pytest.fixture(scope="module")
def noisy_expert_data() -> tuple[EpisodeDataset, list[dict]]:
    envs = make_envs(TINY_ENV, train=True)
    try:
        eps, metrics = collect_episodes(
            envs, None, [11, 12], rng=np.random.default_rng(0), action_noise=0.3
        )
    finally:
        envs.close()
    return EpisodeDataset(eps), metrics


def test_episode_cache_round_trips_exactly(tmp_path, noisy_expert_data):
    data, _ = noisy_expert_data
    path = tmp_path / "cache" / "round_000.npz"
    data.save(path)
    back = EpisodeDataset.load(path)
    assert len(back) == len(data) == 2
    for a, b in zip(data.episodes, back.episodes):
        for name in ("events", "proprio", "expert", "privileged"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        assert (a.score, a.beta) == (b.score, b.beta)
    assert path.stat().st_size < sum(e.events.nbytes for e in data.episodes)  # compressed


def test_privileged_labels_are_the_envs_ground_truth(noisy_expert_data):
    data, _ = noisy_expert_data
    priv = data.episodes[0].privileged
    assert priv.shape == (50, 3) and priv.dtype == np.float32
    assert np.abs(priv[0, 0]) < 0.3 / 0.6  # starts within 0.3 rad of the axis (fovx/2 > 0.6)
    assert set(np.unique(priv[:, 2])) <= {0.0, 1.0}  # in view is a flag
    batch = data.collate([0, 1])
    assert batch["privileged"].shape == (50, 2, 3)


def test_dart_noise_perturbs_the_executed_action_not_the_label():
    envs = make_envs(TINY_ENV)
    try:
        clean, _ = collect_episodes(envs, None, [5, 6])
        noisy, _ = collect_episodes(
            envs, None, [5, 6], rng=np.random.default_rng(1), action_noise=0.5
        )
    finally:
        envs.close()
    # same worlds, different trajectories: the noise was executed
    assert not np.array_equal(clean[0].proprio[5:], noisy[0].proprio[5:])
    # every label is the expert's clean action at the visited state: replay the noisy run
    env = make_envs(TINY_ENV, num_envs=1)
    try:
        env.reset(seed=[5])
        rng = np.random.default_rng(1)
        for t in range(len(noisy[0])):
            label = np.stack(env.call("expert_action"))[0]
            np.testing.assert_array_equal(noisy[0].expert[t], label)
            executed = np.clip(label + rng.normal(0.0, 0.5, (2, 2))[0], -1, 1)
            env.step(executed[None].astype(np.float32))
    finally:
        env.close()


def test_disturbance_is_a_slow_push_on_the_executed_action_with_clean_labels():
    envs = make_envs(TINY_ENV)
    try:
        clean, _ = collect_episodes(envs, None, [5, 6])
        rng = np.random.default_rng(2)
        pushed, _ = collect_episodes(
            envs, None, [5, 6], rng=rng, disturbance=0.5, disturbance_tau_steps=10.0
        )
        with pytest.raises(ValueError, match="disturbance"):
            collect_episodes(envs, None, [5, 6], disturbance=-0.1)
    finally:
        envs.close()
    assert not np.array_equal(clean[0].proprio[5:], pushed[0].proprio[5:])
    # replay: labels are the expert's clean actions; the executed action is label + an
    # OU push (keep = 1 - 1/tau, stationary std 0.5) drawn for both envs each step
    env = make_envs(TINY_ENV, num_envs=1)
    rng, push = np.random.default_rng(2), np.zeros((2, 2))
    keep = 1.0 - 1.0 / 10.0
    pushes = []
    try:
        env.reset(seed=[5])
        for t in range(len(pushed[0])):
            label = np.stack(env.call("expert_action"))[0]
            np.testing.assert_array_equal(pushed[0].expert[t], label)
            push = keep * push + 0.5 * np.sqrt(1 - keep**2) * rng.normal(size=(2, 2))
            pushes.append(push[0].copy())
            env.step(np.clip(label + push[0], -1, 1)[None].astype(np.float32))
    finally:
        env.close()
    lag1 = np.corrcoef(np.array(pushes)[1:, 0], np.array(pushes)[:-1, 0])[0, 1]
    assert lag1 > 0.6  # slow: consecutive pushes are alike (white noise would give ~0)


def _aux_student() -> StudentWithAux:
    torch.manual_seed(0)
    cfg = PolicyConfig(event_shape=[2, 16, 16], hidden_size=8, encoder_channels=[4])
    return StudentWithAux(HybridPolicy(cfg), num_privileged=3)


def test_aux_heads_train_with_the_policy_and_change_its_gradient(noisy_expert_data):
    data, _ = noisy_expert_data
    batch = data.collate([0, 1])
    grads = {}
    for weight in (0.0, 1.0):
        student = _aux_student()
        opt = torch.optim.SGD(student.parameters(), lr=0.0)
        cfg = ImitationConfig(chunk_steps=50, aux_weight=weight)
        tbptt_pass(student, batch, cfg, optimizer=opt)
        grads[weight] = student.policy.encoder.net[0].weight.grad.clone()
        assert (student.aux.weight.grad is not None) == (weight > 0)
    assert not torch.equal(grads[0.0], grads[1.0])  # the heads shape the encoder


def test_aux_heads_are_absent_from_the_policy_file_and_the_exported_graphs(tmp_path):
    student = _aux_student()
    aux_shape = tuple(student.aux.weight.shape)
    save_policy(tmp_path / "p.safetensors", student.policy)
    tensors, _ = load_checkpoint(tmp_path / "p.safetensors")
    assert not [k for k in tensors if "aux" in k]
    assert all(tuple(t.shape) != aux_shape for t in tensors.values())
    graph = StepGraph(student.policy)
    assert not [n for n, _ in graph.named_parameters() if "aux" in n]
    meta = export_policy(student.policy, tmp_path / "p.onnx", "onnx", exporter="torchscript")
    assert meta["outputs"][0]["name"] == "action"
    model = onnx.load(str(tmp_path / "p.onnx"))
    shapes = {tuple(i.dims) for i in model.graph.initializer}
    assert aux_shape not in shapes and (aux_shape[1], aux_shape[0]) not in shapes
    assert len(model.graph.output) == len(meta["outputs"])
    export_policy(student.policy, tmp_path / "p.pt", "torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit
        ts = torch.jit.load(str(tmp_path / "p.pt"))
    assert all(tuple(p.shape) != aux_shape for p in ts.state_dict().values())


@pytest.mark.parametrize("variant", sorted(TRAINING_RANGES))
def test_training_ranges_never_reach_into_a_held_out_shift(variant):
    train = training_ranges(variant)
    for shift, ranges in SHIFTS.items():
        for name, held_out in ranges.items():
            assert not getattr(train, name).overlaps(held_out), (variant, shift, name)


def test_wide_sensor_ranges_are_used_for_training_collection_only():
    wide = training_ranges("wide_sensor")
    assert wide.shot_noise_rate_hz.hi > training_ranges("default").shot_noise_rate_hz.hi
    settings = EnvSettings(camera_size=16, episode_s=0.1, num_envs=1, train_ranges="wide_sensor")
    for train, want in ((True, wide), (False, training_ranges("default"))):
        envs = make_envs(settings, train=train)
        try:
            assert envs.envs[0].unwrapped.base_ranges == want
        finally:
            envs.close()


def test_tiny_recipe_run_lowers_held_out_loss_and_closes_more_gap_than_untrained(tmp_path):
    """BC + DAgger with DART noise, auxiliary heads and wide sensor ranges on a tiny world
    set: the held-out action loss drops and the closed-loop gap closed (vs zero_action and
    the expert on the same worlds) rises above the untrained policy's."""
    from hybrid_snn_control.training.evaluate import evaluate_baseline, evaluate_policy
    from hybrid_snn_control.training.imitation import ImitationTask, PolicySettings
    from hybrid_snn_control.training.loop import TrainRun
    from hybrid_snn_control.training.stats import gap_closed

    torch.set_num_threads(1)
    env = EnvSettings(camera_size=16, episode_s=1.0, num_envs=2, train_ranges="wide_sensor")
    cfg = ImitationConfig(
        env=env,
        policy=PolicySettings(hidden_size=16, encoder_channels=[4, 8], encoder_grid=2),
        bc_episodes=8,
        dagger_iterations=1,
        dagger_episodes=4,
        batch_episodes=6,
        chunk_steps=25,
        action_noise=0.2,
        aux_weight=1.0,
    )
    task = ImitationTask(cfg)
    torch.manual_seed(0)
    policy = task.build_model()
    task.configure(policy, "fixed")
    held_out_envs = make_envs(TINY_ENV)
    try:
        held_out, _ = collect_episodes(held_out_envs, None, [900_000_011, 900_000_012])
    finally:
        held_out_envs.close()
    batch = EpisodeDataset(held_out).collate([0, 1])
    worlds = dataclasses.replace(env, episode_s=3.0)  # evaluation worlds, default ranges

    def scores(model) -> np.ndarray:
        return np.array(evaluate_policy(model, worlds, 0.5, episodes=4, seed=3)["episode_scores"])

    zero = evaluate_baseline("zero_action", worlds, episodes=4, seed=3)["episode_scores"]
    expert = evaluate_baseline("expert", worlds, episodes=4, seed=3)["episode_scores"]
    with torch.no_grad():
        loss_before = tbptt_pass(policy.eval(), batch, cfg)
    gap_before = np.nanmean(gap_closed(scores(policy), zero, expert))
    run = TrainRun(tmp_path / "run", 60, lr=3e-3, seed=0, progress=False, tensorboard=False)
    task.train(policy, run)
    with torch.no_grad():
        loss_after = tbptt_pass(policy.eval(), batch, cfg)
    gap_after = np.nanmean(gap_closed(scores(policy), zero, expert))
    assert loss_after < 0.6 * loss_before, (loss_before, loss_after)
    assert gap_after > gap_before + 0.1, (gap_before, gap_after)


def test_sandwich_trains_the_pure_ends_in_every_batch(noisy_expert_data):
    from hybrid_snn_control.training.imitation import ImitationTask

    cfg = ImitationConfig(env=TINY_ENV, chunk_steps=25, sandwich=True)
    task = ImitationTask(cfg)
    policy = HybridPolicy(PolicyConfig(event_shape=[2, 16, 16], hidden_size=8))
    core = policy.core
    core.ratio_sampling, core.ratio_choices = True, (0.0, 0.25, 0.5, 0.75, 1.0)
    for _ in range(20):
        ratios = task._batch_ratios(core)
        assert ratios[0] == 0.0 and ratios[-1] == 1.0 and len(ratios) in (2, 3)
    # several mask sets: one summed update, the mean of each ratio's own loss reported
    batch = noisy_expert_data[0].collate([0, 1])
    sets = [core.masks_for_ratio(r) for r in (0.0, 1.0)]
    with torch.no_grad():
        each = [tbptt_pass(policy, batch, cfg, s) for s in sets]
        both = tbptt_pass(policy, batch, cfg, sets)
    assert both == pytest.approx(sum(each) / 2, rel=1e-6)

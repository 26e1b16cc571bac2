"""Imitation (BC + DAgger) on the pursuit sim: data, learning, reproducibility, resume, HSTNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybrid_snn_control.training import hstnn, imitation
from hybrid_snn_control.training.imitation import (
    ImitationConfig,
    ImitationTask,
    PolicySettings,
    action_loss,
    lost_target_labels,
    tbptt_pass,
)
from hybrid_snn_control.training.loop import TrainRun
from hybrid_snn_control.training.rollout import (
    EnvSettings,
    Episode,
    EpisodeDataset,
    collect_episodes,
    make_envs,
)
from hybrid_snn_control.training.task import Task, load_model

TINY_ENV = EnvSettings(camera_size=16, episode_s=1.0, num_envs=2)  # 50 steps per episode
TINY_POLICY = PolicySettings(hidden_size=16, encoder_channels=[4, 8], encoder_grid=2)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread (two threads thrash on a loaded 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_cfg(**kw) -> ImitationConfig:
    cfg = ImitationConfig(
        env=TINY_ENV,
        policy=TINY_POLICY,
        bc_episodes=4,
        dagger_iterations=1,
        dagger_episodes=2,
        batch_episodes=4,
        chunk_steps=25,
        **kw,
    )
    cfg.hstnn.progress = False
    cfg.hstnn.tensorboard = False
    return cfg


def run(path, steps: int, **kw) -> TrainRun:
    return TrainRun(path, steps, lr=3e-3, seed=0, progress=False, tensorboard=False, **kw)


@pytest.fixture(scope="module")
def expert_data() -> EpisodeDataset:
    """Expert-driven held-out episodes (worlds the training never sees)."""
    envs = make_envs(TINY_ENV)
    eps, _ = collect_episodes(envs, None, [900_000_001, 900_000_002, 900_000_003, 900_000_004])
    envs.close()
    return EpisodeDataset(eps)


def test_collect_labels_every_visited_step_and_mixes_by_beta():
    task = ImitationTask(tiny_cfg())
    policy = task.build_model()
    envs = make_envs(TINY_ENV)
    eps, metrics = collect_episodes(envs, policy, [1, 2], beta=0.0)
    assert [len(e) for e in eps] == [50, 50]
    assert eps[0].events.dtype == np.uint8 and eps[0].events.shape == (50, 2, 16, 16)
    assert all(m["expert_fraction"] == 0.0 for m in metrics)  # the student drove
    assert np.abs(eps[0].expert).max() <= 1.0 and np.abs(eps[0].expert).sum() > 0
    eps1, metrics1 = collect_episodes(envs, policy, [1, 2], beta=1.0)
    assert all(m["expert_fraction"] == 1.0 for m in metrics1)
    # same worlds, different driver: the first observation is identical, the path is not
    np.testing.assert_array_equal(eps[0].proprio[0], eps1[0].proprio[0])
    assert metrics1[0]["normalized_score"] > metrics[0]["normalized_score"]
    with pytest.raises(ValueError, match="multiple of num_envs"):
        collect_episodes(envs, policy, [1, 2, 3])
    envs.close()


def test_dataset_roundtrip_and_padding(tmp_path, expert_data):
    short = Episode(
        expert_data.episodes[0].events[:10],
        expert_data.episodes[0].proprio[:10],
        expert_data.episodes[0].expert[:10],
        0.5,
        1.0,
    )
    data = EpisodeDataset([expert_data.episodes[1], short])
    batch = data.collate([0, 1])
    assert batch["events"].shape[:2] == (50, 2) and batch["mask"][:, 1].sum() == 10
    assert batch["mask"][:, 0].sum() == 50
    data.save(tmp_path / "d.npz")
    back = EpisodeDataset.load(tmp_path / "d.npz")
    assert [len(e) for e in back.episodes] == [50, 10]
    np.testing.assert_array_equal(back.episodes[1].events, short.events)


def test_action_loss_masks_padding_and_rejects_unknown_kinds():
    pred, target = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    target[1:, 1] = 100.0  # padded steps must not count
    target[2] = 100.0
    assert action_loss(pred, target, mask, "mse").item() == pytest.approx(1.0)
    assert action_loss(pred, target, mask, "l1").item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mse"):
        action_loss(pred, target, mask, "hinge")


def test_bc_dagger_learns_and_resumes_to_the_same_weights(tmp_path, expert_data, monkeypatch):
    cfg = tiny_cfg()
    task = ImitationTask(cfg)
    assert isinstance(task, Task)
    torch.manual_seed(0)
    policy = task.build_model()
    task.configure(policy, "sampling")
    with torch.no_grad():
        before = tbptt_pass(policy.eval(), expert_data.collate(range(4)), cfg)
    policy.train()
    result = task.train(policy, run(tmp_path / "a" / "run", 30))
    assert result["episodes"] == 6  # 4 BC + 2 DAgger
    assert [h["beta"] for h in task.history] == [1.0, 0.5]
    with torch.no_grad():
        after = tbptt_pass(policy.eval(), expert_data.collate(range(4)), cfg)
    assert after < 0.6 * before, (before, after)  # held-out worlds, seeded

    # the same run killed after step 20 and resumed in a fresh task reaches the same weights
    torch.manual_seed(0)
    task2 = ImitationTask(cfg)
    policy2 = task2.build_model()
    task2.configure(policy2, "sampling")
    real, calls = imitation.tbptt_pass, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] > 20:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(imitation, "tbptt_pass", dying)
    with pytest.raises(KeyboardInterrupt):
        task2.train(policy2, run(tmp_path / "b" / "run", 30, checkpoint_every=8))
    monkeypatch.setattr(imitation, "tbptt_pass", real)
    torch.manual_seed(123)  # a fresh process: nothing but the run directory carries over
    task3 = ImitationTask(cfg)
    policy3 = task3.build_model()
    task3.configure(policy3, "sampling")
    task3.train(policy3, run(tmp_path / "b" / "run", 30, checkpoint_every=8))
    for (name, a), b in zip(policy.state_dict().items(), policy3.state_dict().values()):
        assert torch.equal(a, b), name


def test_hstnn_pipeline_runs_on_pursuit(tmp_path):
    cfg = tiny_cfg()
    cfg.hstnn.out_dir = str(tmp_path)
    cfg.hstnn.adapt_steps, cfg.hstnn.restore_steps = 6, 4
    cfg.hstnn.select_probes, cfg.hstnn.select_batches = 4, 1
    task = ImitationTask(cfg)
    paths = hstnn.pipeline(task, cfg.hstnn)
    model, _ = load_model(paths["restore"], task)
    ranks = [layer.spiking_rank for layer in model.core.layers]
    assert all(sorted(r.tolist()) == list(range(16)) for r in ranks)
    assert any(not torch.equal(r, torch.arange(16)) for r in ranks)  # Hessian order, not index
    assert len(task.data) == 4 + 2 + 2  # BC, one DAgger round, one restoration round
    row = task.evaluate(model, 0.25, episodes=2)
    assert 0.0 <= row["score"] <= 1.0 and row["ratio"] == 0.25


def one_sgd_update(task, batch, masks, **cfg_overrides):
    """The parameter change of one SGD step (one TBPTT window) from a fixed initial policy at
    ratio 0.5, and the loss the pass reports."""
    torch.manual_seed(0)
    policy = task.build_model()
    policy.set_ratio(0.5)
    before = [p.detach().clone() for p in policy.parameters()]
    cfg = tiny_cfg(**cfg_overrides)
    cfg.chunk_steps = 100  # one window: one update
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy.train()
    loss = tbptt_pass(policy, batch, cfg, masks, opt)
    delta = [(p.detach() - b).flatten() for p, b in zip(policy.parameters(), before)]
    return torch.cat(delta), loss


def ratio_half_masks(task):
    m = task.build_model()
    m.set_ratio(0.5)
    return m.core.masks()


def test_in_place_distillation_labels_the_other_ratios_with_the_r0_action(expert_data):
    """Two mask sets per batch (sandwich): with distill_weight 0 both learn from the expert
    (twice the single-set update), with 1 the second learns only the first's detached
    action — identical masks make that loss zero, so the update equals one set's."""
    task = ImitationTask(tiny_cfg())
    batch = expert_data.collate(range(2))
    ms = ratio_half_masks(task)
    one, _ = one_sgd_update(task, batch, [ms], distill_weight=0.0)
    assert one.abs().sum() > 0
    two, _ = one_sgd_update(task, batch, [ms, ms], distill_weight=0.0)
    torch.testing.assert_close(two, 2 * one, atol=1e-6, rtol=1e-4)
    distilled, _ = one_sgd_update(task, batch, [ms, ms], distill_weight=1.0)
    torch.testing.assert_close(distilled, one, atol=1e-6, rtol=1e-4)


def test_sandwich_top_weight_scales_the_largest_ratios_loss(expert_data):
    """With the sandwich, the last mask set (the largest ratio) counts sandwich_top_weight
    times: identical masks make the update (1 + w) x one set's; the reported loss is not
    reweighted."""
    task = ImitationTask(tiny_cfg())
    batch = expert_data.collate(range(2))
    ms = ratio_half_masks(task)
    # a single set is not a sandwich: the weight is unused
    one, loss_one = one_sgd_update(task, batch, [ms], sandwich=True, sandwich_top_weight=3.0)
    assert one.abs().sum() > 0
    for top in (0.0, 0.5):
        both, loss = one_sgd_update(task, batch, [ms, ms], sandwich=True, sandwich_top_weight=top)
        torch.testing.assert_close(both, (1 + top) * one, atol=1e-6, rtol=1e-4)
        assert loss == pytest.approx(loss_one, rel=1e-5)


PRIV = ("bearing_half_fov", "distance_error_m", "in_view")


def lost_batch() -> dict[str, torch.Tensor]:
    """Two episodes of 6 steps: in view (1) or lost (0), bearings, expert turns, padding."""
    in_view = torch.tensor([[0, 1], [1, 1], [0, 1], [0, 0], [1, 0], [0, 0]]).float()
    bearing = torch.tensor([[5, -0.5], [-0.8, -0.9], [2, 0.3], [3, 2], [0.4, -3], [-2, -3]])
    turn = torch.tensor(
        [[0.9, 0.1], [0.2, 0.3], [0.9, 0.4], [-0.9, 0.9], [0.1, -0.9], [-0.9, -0.9]]
    )
    priv = torch.stack([bearing, torch.zeros(6, 2), in_view], -1)
    expert = torch.stack([torch.full((6, 2), 0.5), turn], -1)
    mask = torch.ones(6, 2)
    mask[5, 1] = 0  # padding is never weighted
    return {"privileged": priv, "expert": expert, "mask": mask}


def test_lost_target_labels_weight_lost_steps_and_point_turns_to_the_last_seen_side():
    """Lost steps (in_view 0) get the weight; last_seen turns them with the expert's rate
    towards the side of the last in-view bearing of the same episode; before the first
    sighting, in view, the speed column and padding keep the expert's label."""
    b = lost_batch()
    assert lost_target_labels(b, PRIV, 1.0, "expert") is b  # off: the batch as it is
    out = lost_target_labels(b, PRIV, 10.0, "last_seen")
    expected_w = torch.tensor([[10, 1], [1, 1], [10, 1], [10, 10], [1, 10], [10, 0]]).float()
    torch.testing.assert_close(out["weight"], expected_w)
    expected_turn = torch.tensor(
        [[0.9, 0.1], [0.2, 0.3], [-0.9, 0.4], [-0.9, 0.9], [0.1, 0.9], [0.9, -0.9]]
    )
    torch.testing.assert_close(out["expert"][..., 1], expected_turn)
    torch.testing.assert_close(out["expert"][..., 0], b["expert"][..., 0])
    assert torch.equal(b["expert"][..., 1][2], torch.tensor([0.9, 0.4]))  # input untouched
    weighted = lost_target_labels(b, PRIV, 10.0, "expert")
    assert torch.equal(weighted["expert"], b["expert"])
    with pytest.raises(ValueError, match="in_view"):
        lost_target_labels(b, ("bearing_half_fov",), 10.0, "expert")
    with pytest.raises(ValueError, match="lost_target_label"):
        lost_target_labels(b, PRIV, 1.0, "nearest")


def test_lost_target_weight_scales_the_update_of_lost_steps_only(expert_data):
    """Weight w on every step is the plain mean (same update); on lost steps only it
    changes the update but not the reported (plain) loss."""
    task = ImitationTask(tiny_cfg())
    batch = expert_data.collate(range(2))
    ms = ratio_half_masks(task)
    plain, loss = one_sgd_update(task, batch, [ms])
    all_weighted = dict(batch, weight=batch["mask"] * 7.0)
    same, loss_same = one_sgd_update(task, all_weighted, [ms])
    torch.testing.assert_close(same, plain, atol=1e-6, rtol=1e-4)
    some = batch["mask"].clone()
    some[: some.shape[0] // 2] *= 10.0
    moved, loss_moved = one_sgd_update(task, dict(batch, weight=some), [ms])
    assert (moved - plain).abs().max() > 1e-4
    assert loss_same == pytest.approx(loss, rel=1e-6) and loss_moved == pytest.approx(
        loss, rel=1e-6
    )

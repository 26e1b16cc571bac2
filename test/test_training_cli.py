"""``hsc train`` end to end on a tiny config: the policy files it writes and resuming a killed run.

``hsc train`` makes the shipped policy; here it runs the real command (``cli.main``) on a
16×16, 20-step pursuit env with a 4-unit network, in a few seconds.
"""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.cli import main
from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.policy import load_policy
from hybrid_snn_control.training import imitation
from hybrid_snn_control.training.rollout import EnvSettings, policy_env_settings

TINY_ENV = EnvSettings(camera_size=16, episode_s=0.4, num_envs=2)  # 20 control steps
ADAPT_STEPS, RESTORE_STEPS, CHECKPOINT_EVERY = 6, 2, 2
TINY_YAML = f"""
hsc_imitation:
  ros__parameters:
    seed: 3
    env: {{env_id: {TINY_ENV.env_id}, camera_size: 16, episode_s: 0.4, num_envs: 2}}
    policy: {{hidden_size: 4, num_layers: 1, encoder: pool, encoder_grid: 2}}
    bc_episodes: 2
    dagger_iterations: 1
    dagger_episodes: 2
    restore_iterations: 1
    batch_episodes: 2
    chunk_steps: 10
    hstnn:
      adapt_steps: {ADAPT_STEPS}
      select_batches: 1
      select_probes: 2
      probes_per_pass: 2
      ratio: 0.5
      restore_steps: {RESTORE_STEPS}
      restore_ratios: [0.0, 0.5, 1.0]
      checkpoint_every: {CHECKPOINT_EVERY}
      log_every: 1
      tensorboard: false
"""


@pytest.fixture(autouse=True)
def _restore_threads():
    """``hsc train`` sets one torch thread for the process; put the count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _train(config, run_dir, out, *extra: str) -> int:
    args = ["train", "--config", str(config), "--run-dir", str(run_dir), "--out", str(out)]
    return main([*args, "--restore-each", "1", "--no-progress", *extra])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny_train.yaml"
    path.write_text(TINY_YAML)
    return path


@pytest.fixture(scope="module")
def trained(config, tmp_path_factory):
    """One uninterrupted ``hsc train`` run: its policy file."""
    root = tmp_path_factory.mktemp("train")
    n = torch.get_num_threads()
    assert _train(config, root / "run", root / "policy.safetensors") == 0
    torch.set_num_threads(n)
    return root / "policy.safetensors"


def test_hsc_train_writes_a_loadable_policy_with_ranking_ratio_and_env(trained, capsys):
    policy, meta = load_policy(trained)
    assert meta["task"] == "pursuit" and meta["pipeline"] == "hstnn"
    assert policy.spiking_ratio == meta["spiking_ratio"] == 0.5  # hstnn.ratio of the config
    assert policy_env_settings(meta) == TINY_ENV and meta["env"] == to_mapping(TINY_ENV)
    assert policy.cfg.hidden_size == 4 and policy.cfg.event_shape == [2, 16, 16]
    (layer,) = policy.core.layers
    (summary,) = meta["ranking"]
    assert torch.argsort(layer.spiking_rank).tolist() == summary["spiking"]
    assert torch.argsort(layer.recurrent_rank).tolist() == summary["recurrent"]
    assert sorted(summary["spiking"]) == sorted(summary["recurrent"]) == [0, 1, 2, 3]
    assert meta["imitation_config"]["hstnn"]["adapt_steps"] == ADAPT_STEPS
    # BC and one DAgger round (adapt), one round per restoration (shared, then r = 1)
    assert [r["beta"] for r in meta["rollouts"]] == [1.0, 0.5, 0.5, 0.5]
    assert meta["stage_meta"]["stage"] == "restore" and meta["train_wall_s"] > 0

    per_ratio, meta_r1 = load_policy(trained.with_name("policy_r1.safetensors"))
    assert meta_r1["pipeline"] == "restore_r1" and per_ratio.spiking_ratio == 1.0
    assert meta_r1["ranking"] == meta["ranking"]  # both restored from the one selected model
    # each restoration trained on adaptation's 4 episodes plus its own round of 2
    assert meta["stage_meta"]["train"]["episodes"] == meta_r1["stage_meta"]["train"]["episodes"]
    assert meta_r1["stage_meta"]["train"]["episodes"] == 4 + 2
    with torch.no_grad():
        action, _ = policy.step(torch.ones(1, 2, 16, 16), torch.zeros(1, policy.cfg.proprio_size))
    assert action.shape == (1, 2) and torch.all(action.abs() <= 1.0)


def test_hsc_train_resumes_a_killed_run_to_the_same_policy(
    trained, config, tmp_path, monkeypatch, capsys
):
    kill_at_step = 4  # adaptation dies in step 4, just after the checkpoint of step 4
    assert kill_at_step % CHECKPOINT_EVERY == 0
    real, updates = imitation.tbptt_pass, {"n": 0, "kill": True}

    def counting(*a, **k):  # one call = one training step of a stage
        updates["n"] += 1
        if updates["kill"] and updates["n"] == kill_at_step + 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(imitation, "tbptt_pass", counting)
    run_dir, out = tmp_path / "run", tmp_path / "policy.safetensors"
    assert _train(config, run_dir, out) == 130  # killed
    assert not out.exists()
    assert _train(config, run_dir, out) == 2  # a run dir with work in it needs --resume
    assert "--resume" in capsys.readouterr().err

    updates.update(n=0, kill=False)
    assert _train(config, run_dir, out, "--resume") == 0
    # the steps after the checkpoint and the two restorations; a restart would redo all
    assert updates["n"] == (ADAPT_STEPS - kill_at_step) + 2 * RESTORE_STEPS
    resumed, _ = load_policy(out)
    uninterrupted, _ = load_policy(trained)
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_hsc_train_finetune_continues_a_policy_file_on_its_run_data(
    trained, config, tmp_path, capsys
):
    """``--pipeline finetune``: starts from the given policy's weights and ranking, seeds the
    aggregate with the earlier run's episode rounds, adds its own DAgger rounds in the
    training ranges it is given, and refuses a policy of another architecture."""
    start, start_meta = load_policy(trained)
    earlier = trained.parent / "run"
    run_dir, out = tmp_path / "ft", tmp_path / "ft.safetensors"
    args = ["train", "--config", str(config), "--run-dir", str(run_dir), "--out", str(out)]
    ft = ["--pipeline", "finetune", "--init", str(trained), "--no-progress"]
    edge = ["--set", "env.train_ranges=to_the_edge"]
    assert main([*args, *ft, "--data", str(earlier), *edge]) == 0
    # no bar: a log file still gets one line per checkpoint (restore_steps 2, every 2), on
    # stderr like the bar's
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " step " in ln]
    assert len(lines) == 1 and f"step {RESTORE_STEPS}/{RESTORE_STEPS}" in lines[0], lines
    assert "loss=" in lines[0] and "s left" in lines[0]
    policy, meta = load_policy(out)
    assert meta["pipeline"] == "finetune" and meta["ranking"] == start_meta["ranking"]
    assert meta["imitation_config"]["env"]["train_ranges"] == "to_the_edge"
    assert policy.spiking_ratio == start.spiking_ratio
    # the earlier run's 4 + 2 + 2 episodes, then one DAgger round of 2 (beta_1 = 0.5)
    assert meta["stage_meta"]["train"]["episodes"] == 8 + 2
    assert [r["beta"] for r in meta["rollouts"]] == [0.5]
    (stage,) = run_dir.glob("finetune-*/")  # named by the start file: new worlds per start
    assert sorted(p.name for p in stage.glob("dagger_*.npz")) == ["dagger_000.npz"]
    changed = [
        n for n, a in start.state_dict().items() if not torch.equal(a, policy.state_dict()[n])
    ]
    assert changed  # trained further, from the start weights (the ranking buffers kept)
    assert not any(n.endswith("_rank") for n in changed)

    bigger = ["--set", "policy.hidden_size=6"]
    assert main([*args[:4], str(tmp_path / "ft2"), *args[5:], *ft, *bigger]) == 2
    assert main([*args[:4], str(tmp_path / "ft3"), *args[5:], "--init", str(trained)]) == 2
    assert main([*args[:4], str(tmp_path / "ft4"), *args[5:], "--data", str(earlier)]) == 2

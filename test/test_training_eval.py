"""Closed-loop evaluation, sweeps (CSV/JSON/MD/PNG), ``hsc eval/sweep``, the shipped policy."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from hybrid_snn_control.cli import main
from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.policy import default_policy_path, load_default_policy, save_policy
from hybrid_snn_control.training.evaluate import ROW_FIELDS, evaluate_expert, evaluate_policy
from hybrid_snn_control.training.imitation import ImitationConfig, ImitationTask, PolicySettings
from hybrid_snn_control.training.rollout import EnvSettings, make_envs, policy_env_settings

TINY_ENV = EnvSettings(camera_size=16, episode_s=1.0, num_envs=2)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """An untrained policy with a non-trivial ranking, saved like ``hsc train`` does."""
    cfg = ImitationConfig(
        env=TINY_ENV, policy=PolicySettings(hidden_size=8, encoder_channels=[4], encoder_grid=2)
    )
    torch.manual_seed(0)
    policy = ImitationTask(cfg).build_model()
    g = torch.Generator().manual_seed(1)
    policy.core.apply_ranking([(torch.rand(8, generator=g), torch.rand(8, generator=g))] * 2)
    policy.set_ratio(0.5)
    path = tmp_path_factory.mktemp("pol") / "tiny.safetensors"
    save_policy(path, policy, extra={"env": to_mapping(TINY_ENV)})
    return policy, path


def test_evaluate_policy_row_has_score_cost_and_latency(tiny_policy):
    policy, _ = tiny_policy
    rows = {r: evaluate_policy(policy, TINY_ENV, r, None, episodes=2, seed=0) for r in (0.0, 1.0)}
    for row in rows.values():
        assert set(ROW_FIELDS) <= set(row)
        assert 0.0 <= row["score"] <= 1.0 and row["episodes"] == 2
        assert row["macs_per_step"] > 0 and row["step_latency_ms"] > 0
    assert rows[0.0]["synops_per_step"] == 0.0  # no spiking units at r = 0
    assert rows[1.0]["macs_per_step"] < rows[0.0]["macs_per_step"]  # spikes replace MACs
    assert policy.spiking_ratio == 0.5  # restored after evaluation
    again = evaluate_policy(policy, TINY_ENV, 0.0, None, episodes=2, seed=0)
    assert again["score"] == rows[0.0]["score"]  # same worlds, deterministic policy
    expert = evaluate_expert(TINY_ENV, "dim", episodes=2, seed=0)
    assert expert["shift"] == "dim" and expert["score"] > 0.8 and expert["macs_per_step"] is None


def test_sweep_writes_csv_json_markdown_and_plots(tiny_policy, tmp_path, capsys):
    _, path = tiny_policy
    out = tmp_path / "sweep"
    args = ["sweep", "--model", f"hybrid={path}", "--model", f"restored@1={path}"]
    args += ["--ratios", "0", "1", "--shifts", "nominal", "dim", "--seeds", "0", "1"]
    assert main([*args, "--episodes", "1", "--out", str(out)]) == 0
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    # expert 2 shifts x 2 seeds, hybrid 2 ratios x 2 x 2, restored 1 ratio x 2 x 2
    assert len(rows) == 4 + 8 + 4
    assert set(ROW_FIELDS) <= set(rows[0])
    blob = json.loads((out / "sweep.json").read_text())
    agg = {(a["model"], a["ratio"], a["shift"]): a for a in blob["aggregate"]}
    assert agg[("hybrid", 0.0, "dim")]["seeds"] == 2 and "robustness" in agg[("hybrid", 0.0, "dim")]
    md = (out / "sweep.md").read_text()
    assert "| hybrid | 0 |" in md and "Hot swap" in md and "| 1 |" in md
    for png in ("score_vs_ratio.png", "cost_vs_ratio.png", "robustness_vs_ratio.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # merging two sweeps gives the union of their rows
    assert main(["sweep", "--merge", str(out), str(out), "--out", str(tmp_path / "m")]) == 0
    assert len(json.loads((tmp_path / "m" / "sweep.json").read_text())["rows"]) == 32


def test_hsc_eval_json_and_bad_input(tiny_policy, capsys):
    _, path = tiny_policy
    assert main(["eval", "--checkpoint", str(path), "--ratio", "0.25", "--episodes", "2",
                 "--expert", "--json"]) == 0  # fmt: skip
    policy_row, expert_row = json.loads(capsys.readouterr().out)
    assert policy_row["ratio"] == 0.25 and expert_row["model"] == "expert"
    assert main(["eval", "--checkpoint", str(path), "--shift", "moon"]) == 2
    assert "unknown shift" in capsys.readouterr().err


def test_shipped_policy_loads_and_carries_its_ranking():
    assert default_policy_path().stat().st_size < 600_000
    policy, meta = load_default_policy()
    assert meta["task"] == "pursuit" and meta["pipeline"] == "hstnn"
    n = policy.cfg.hidden_size
    for layer, summary in zip(policy.core.layers, meta["ranking"]):
        assert sorted(summary["spiking"]) == list(range(n))
        assert torch.argsort(layer.spiking_rank).tolist() == summary["spiking"]
    assert any(s["spiking"] != list(range(n)) for s in meta["ranking"])  # a real selection


def _masks_from_ranking(ranking: list[dict], n_spiking: int, n: int) -> tuple:
    """The unit masks the metadata's ranking (unit indices, best first) gives for a split."""
    masks = []
    for layer in ranking:
        spiking, recurrent = torch.zeros(n), torch.zeros(n)
        spiking[layer["spiking"][:n_spiking]] = 1.0
        recurrent[layer["recurrent"][: n - n_spiking]] = 1.0
        masks += [spiking, recurrent]
    return tuple(masks)


def test_shipped_policy_hot_swap_keeps_the_state_of_kept_units():
    """Switching the ratio between steps of a running policy is a mask change: the units that
    stay active continue from their state, the dropped ones hold zero. The reference is the
    same weights, never switched, stepped with masks built from the file's ranking."""
    policy, meta = load_default_policy()
    reference, _ = load_default_policy()
    n = policy.cfg.hidden_size
    envs = make_envs(dataclasses.replace(policy_env_settings(meta), episode_s=0.4), 1)
    obs, _ = envs.reset(seed=[3])
    state = None
    with torch.no_grad():
        for r, n_spiking in ((0.5, n // 2), (0.5, n // 2), (0.0, 0), (0.5, n // 2), (1.0, n)):
            policy.set_ratio(r)  # hot swap between steps
            events, proprio = torch.from_numpy(obs["events"]), torch.from_numpy(obs["proprio"])
            action, new_state = policy.step(events, proprio, state)
            masks = _masks_from_ranking(meta["ranking"], n_spiking, n)
            expected, expected_state = reference.step(events, proprio, state, masks)
            assert torch.equal(action, expected), r
            got, want = policy.flatten_state(new_state), reference.flatten_state(expected_state)
            assert all(torch.equal(a, b) for a, b in zip(got, want)), r
            if state is not None:  # the match needed the carried state: a fresh one differs
                _, fresh = reference.step(events, proprio, None, masks)
                assert any(not torch.equal(a, b) for a, b in zip(got, policy.flatten_state(fresh)))
            for i, layer in enumerate(new_state.layers):  # dropped units hold zero state
                assert torch.all(layer.spiking.v[:, masks[2 * i] == 0] == 0)
                assert torch.all(layer.recurrent.h[:, masks[2 * i + 1] == 0] == 0)
                assert torch.all(layer.recurrent.c[:, masks[2 * i + 1] == 0] == 0)
            assert action.shape == (1, 2) and torch.all(action.abs() <= 1.0)
            obs, *_ = envs.step(action.numpy())
            state = new_state
    envs.close()

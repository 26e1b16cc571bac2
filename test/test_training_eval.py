"""Closed-loop evaluation, sweeps (CSV/JSON/MD/PNG), ``hsc eval/sweep``, the shipped policy.

The CLI tests evaluate at the tiny policy's own 1 s training episodes (``--episode-s
policy``); the 20 s default is checked in ``test_training_baselines.py`` without rollouts.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from hybrid_snn_control.cli import main
from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.policy import default_policy_path, load_default_policy, save_policy
from hybrid_snn_control.training.evaluate import ROW_FIELDS, evaluate_baseline, evaluate_policy
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
    assert again["episode_seeds"] == rows[1.0]["episode_seeds"] and again["episode_s"] == 1.0
    expert = evaluate_baseline("expert", TINY_ENV, "dim", episodes=2, seed=0)
    assert expert["shift"] == "dim" and expert["score"] > 0.8 and expert["macs_per_step"] is None
    assert expert["episode_seeds"] == again["episode_seeds"]  # the same worlds


def test_sweep_writes_csv_json_markdown_and_plots(tiny_policy, tmp_path, capsys):
    _, path = tiny_policy
    out = tmp_path / "sweep"
    args = ["sweep", "--model", f"hybrid={path}", "--model", f"restored@1={path}"]
    args += ["--ratios", "0", "1", "--shifts", "nominal", "dim", "--seeds", "0", "1"]
    assert main([*args, "--episodes", "2", "--episode-s", "policy", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    # expert + zero_action 2 shifts x 2 seeds, hybrid 2 ratios x 2 x 2, restored 1 ratio x 2 x 2
    assert len(rows) == 8 + 8 + 4
    assert set(ROW_FIELDS) <= set(rows[0]) and all(r["episode_s"] == "1.0" for r in rows)
    blob = json.loads((out / "sweep.json").read_text())
    agg = {(a["model"], a["ratio"], a["shift"]): a for a in blob["aggregate"]}
    assert agg[("hybrid", 0.0, "dim")]["seeds"] == 2 and "robustness" in agg[("hybrid", 0.0, "dim")]
    # gap closed beside the score: 1 for the expert and 0 for the floor on every world
    for row in blob["rows"]:
        defined = [g for g in row["episode_gap_closed"] if g is not None]
        assert len(row["episode_scores"]) == 2 and row["gap_worlds"] == len(defined)
        if row["model"] in ("expert", "zero_action"):
            assert defined == [float(row["model"] == "expert")] * len(defined)
    assert all(r["gap_closed"] != "" for r in rows)  # every world has a defined gap here
    # paired with zero_action on the same worlds: 2 seeds x 2 episodes pooled
    paired = {(p["model"], p["ratio"], p["shift"]): p for p in blob["paired"]}
    assert "zero_action" not in {k[0] for k in paired}
    p = paired[("hybrid", 1.0, "nominal")]
    assert p["worlds"] == 4 and p["seeds"] == 2
    assert p["score_diff_lo"] <= p["score_diff"] <= p["score_diff_hi"]
    assert p["score_diff_mde"] > 0
    zero = {
        (r["seed"], s): x
        for r in blob["rows"]
        if r["model"] == "zero_action" and r["shift"] == "nominal"
        for s, x in zip(r["episode_seeds"], r["episode_scores"])
    }
    diffs = [
        x - zero[(r["seed"], s)]
        for r in blob["rows"]
        if (r["model"], r["ratio"], r["shift"]) == ("hybrid", 1.0, "nominal")
        for s, x in zip(r["episode_seeds"], r["episode_scores"])
    ]
    assert p["score_diff"] == pytest.approx(sum(diffs) / 4)
    md = (out / "sweep.md").read_text()
    assert "| hybrid | 0 |" in md and "Hot swap" in md and "| 1 |" in md
    assert "nominal gap closed" in md and "| expert | – | " in md and "| zero_action | – |" in md
    assert "Paired with `zero_action`" in md and "| hybrid | 1 | nominal | 4 |" in md
    assert "hybrid r=1 nominal vs zero_action, 4 worlds (2 seeds): Δscore" in printed
    for png in ("score_vs_ratio.png", "cost_vs_ratio.png", "robustness_vs_ratio.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # merging two sweeps gives the union of their rows, the shared baseline rows once
    assert main(["sweep", "--merge", str(out), str(out), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "sweep.json").read_text())
    n_base = sum(r["model"] in ("expert", "zero_action") for r in merged["rows"])
    assert n_base and len(merged["rows"]) == 40 - n_base and merged["paired"]


def test_hsc_eval_json_and_bad_input(tiny_policy, capsys):
    _, path = tiny_policy
    assert main(["eval", "--checkpoint", str(path), "--ratio", "0.25", "--episodes", "2",
                 "--episode-s", "policy", "--json"]) == 0  # fmt: skip
    blob = json.loads(capsys.readouterr().out)
    policy_row, expert_row, zero_row = blob["rows"]
    assert policy_row["ratio"] == 0.25 and policy_row["episode_s"] == 1.0
    assert (expert_row["model"], zero_row["model"]) == ("expert", "zero_action")
    assert (expert_row["gap_closed"], zero_row["gap_closed"]) == (1.0, 0.0)
    (paired,) = blob["paired"]
    assert paired["model"] == "tiny" and paired["worlds"] == 2
    assert main(["eval", "--checkpoint", str(path), "--episodes", "1", "--episode-s", "0.5",
                 "--no-baselines"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("0.5 s episodes") and "tiny: ratio 0.5" in out and "expert" not in out
    assert main(["eval", "--checkpoint", str(path), "--shift", "moon"]) == 2
    assert "unknown shift" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not seconds, not 'policy'
        main(["eval", "--checkpoint", str(path), "--episode-s", "long"])


def test_shipped_policy_loads_and_carries_its_ranking():
    assert default_policy_path().stat().st_size < 600_000
    policy, meta = load_default_policy()
    # the HSTNN stages, then fine-tunes with the event floor (docs/studies/train_shipped.sh)
    assert meta["task"] == "pursuit" and meta["pipeline"] in ("hstnn", "finetune")
    assert policy.cfg.event_floor == meta["imitation_config"]["policy"]["event_floor"]
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

"""Exported step graphs (TorchScript, ONNX via both exporters) reproduce eager PyTorch.

What is compared: actions and every state tensor at every step of a 240-step run with
ratio changes at steps 100 (0.5 → 0.2) and 170 (→ 0.9), batch 1 and batch 3. Spikes are
thresholds, so a 1e-7 difference could in principle flip a spike and make runs diverge;
in float32 no flip happens on these policies (spike counts are compared exactly). The
tolerance is 1e-5 absolute on actions and 1e-5 relative to max(1, |value|) on states.
fp16 (CPU): see test_fp16_*.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_fixtures import input_sequence, make_policy, run_runtime, save_test_policy

from hybrid_snn_control.deploy.export import (
    StepGraph,
    export_checkpoint,
    onnx_bytes,
    trace_torchscript,
)
from hybrid_snn_control.deploy.runtime import (
    OnnxRuntimeRuntime,
    load_runtime,
    ort_session,
)

REPO = str(Path(__file__).resolve().parents[1])
STEPS = 240
CHANGES = {100: 0.2, 170: 0.9}
TOL_FP32 = 1e-5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_test_policy(tmp_path_factory.mktemp("deploy") / "policy.safetensors")


@pytest.fixture(scope="module")
def artefacts(checkpoint, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artefacts")
    paths = {
        "torchscript": out / "policy.pt",
        "onnx_dynamo": out / "policy_dynamo.onnx",
        "onnx_ts": out / "policy_ts.onnx",
    }
    export_checkpoint(checkpoint, paths["torchscript"], "torchscript")
    export_checkpoint(checkpoint, paths["onnx_dynamo"], "onnx", exporter="dynamo")
    export_checkpoint(checkpoint, paths["onnx_ts"], "onnx", exporter="torchscript")
    return paths


def _run(rt, events, proprio, changes=CHANGES):
    """:func:`run_runtime` with this module's ratio changes by default."""
    return run_runtime(rt, events, proprio, changes)


def _max_state_diff(a, b):
    """Largest state difference relative to max(1, |reference|): membranes and LSTM cell
    states of a trained policy reach tens, where float32 rounding alone is ~1e-6."""
    return max(
        float((np.abs(x[k] - y[k]) / np.maximum(1.0, np.abs(y[k]))).max())
        for x, y in zip(a, b)
        for k in x
    )


@pytest.mark.parametrize("batch", [1, 3])
def test_artefacts_match_eager_over_240_steps_with_ratio_changes(checkpoint, artefacts, batch):
    events, proprio = input_sequence(STEPS, batch)
    if batch == 1:  # unbatched calls, as the policy node makes them
        events, proprio = events[:, 0], proprio[:, 0]
    ref_a, ref_s, _ = _run(load_runtime(checkpoint, "torch", batch_size=batch), events, proprio)
    assert np.abs(ref_a).max() > 0.05  # the policy does something
    runs = {
        "torchscript": load_runtime(artefacts["torchscript"], "torchscript", batch_size=batch),
        "onnx_dynamo": load_runtime(artefacts["onnx_dynamo"], "onnxruntime", batch_size=batch),
        "onnx_ts": load_runtime(artefacts["onnx_ts"], "onnxruntime", batch_size=batch),
    }
    spikes = {}
    for name, rt in runs.items():
        a, s, spikes[name] = _run(rt, events, proprio)
        assert a.shape == ref_a.shape
        assert np.abs(a - ref_a).max() <= TOL_FP32, name
        assert _max_state_diff(s, ref_s) <= TOL_FP32, name
    # spikes agree exactly between the graphs, and there are spikes in both halves
    counts = np.array(spikes["torchscript"])
    for name in ("onnx_dynamo", "onnx_ts"):
        np.testing.assert_array_equal(np.array(spikes[name]), counts)
    assert counts[:100].sum() > 0 and counts[170:].sum() > counts[100:170].sum()


def test_spike_count_output_equals_eager_spikes(checkpoint):
    """The graph's extra output is the number of spikes of each layer's active units."""
    policy = make_policy()
    graph = StepGraph(policy).eval()
    events, proprio = input_sequence(20, 2)
    net = policy.core
    state = policy.initial_state(2)
    flat = list(net.flatten_state(state))
    ratio = torch.tensor([0.5])
    with torch.no_grad():
        for t in range(20):
            ev, pr = torch.from_numpy(events[t]), torch.from_numpy(proprio[t])
            x = policy.features(ev, pr)
            h, want = x, []
            for i, layer in enumerate(net.layers):
                h, _ = layer.step(h, state.layers[i], *net.masks()[2 * i : 2 * i + 2])
                want.append(h[:, : net.hidden_size].sum(1))
            action, state = policy.step(ev, pr, state)
            out = graph(ev, pr, *flat, ratio)
            flat = list(out[1:-1])
            assert torch.equal(out[0], action)
            assert torch.equal(out[-1], torch.stack(want, 1))


def test_reset_returns_to_the_initial_trajectory(artefacts):
    events, proprio = input_sequence(30, 1)
    rt = load_runtime(artefacts["onnx_ts"], "onnxruntime")
    first = np.array([rt.step(events[t, 0], proprio[t, 0]) for t in range(30)])
    assert any(np.abs(v).max() > 0 for v in rt.state().values())
    rt.reset()
    assert all(np.abs(v).max() == 0 for v in rt.state().values())
    again = np.array([rt.step(events[t, 0], proprio[t, 0]) for t in range(30)])
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("backend", ["torch", "torchscript", "onnxruntime"])
def test_partial_reset_zeroes_only_done_elements(checkpoint, artefacts, backend):
    path = {"torch": checkpoint, "torchscript": artefacts["torchscript"]}.get(
        backend, artefacts["onnx_ts"]
    )
    rt = load_runtime(path, backend, batch_size=3)
    events, proprio = input_sequence(5, 3)
    for t in range(5):
        rt.step(events[t], proprio[t])
    before = rt.state()
    rt.reset(done=np.array([False, True, False]))
    after = rt.state()
    for k in before:
        assert np.abs(after[k][1]).max() == 0
        np.testing.assert_array_equal(after[k][[0, 2]], before[k][[0, 2]])


def test_runtime_validates_inputs(artefacts):
    rt = load_runtime(artefacts["onnx_ts"], "onnxruntime", batch_size=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rt.set_ratio(1.2)
    with pytest.raises(ValueError, match="events must have shape"):
        rt.step(np.zeros((2, 2, 32, 32)), np.zeros((2, 8)))
    with pytest.raises(ValueError, match="proprio must have shape"):
        rt.step(np.zeros((2, 2, 64, 64)), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="backend must be one of"):
        load_runtime(artefacts["onnx_ts"], "tensorflow")


def test_metadata_is_embedded_and_beside_the_file(checkpoint, artefacts):
    from hybrid_snn_control.deploy.artefact import read_onnx_metadata
    from hybrid_snn_control.deploy.export import checkpoint_sha256

    meta = read_onnx_metadata(artefacts["onnx_dynamo"])
    side = json.loads(Path(f"{artefacts['onnx_dynamo']}.json").read_text())
    assert meta == side
    assert meta["checkpoint_sha256"] == checkpoint_sha256(checkpoint) is not None
    names = [i["name"] for i in meta["inputs"]]
    assert names[:2] == ["events", "proprio"] and names[-1] == "spiking_ratio"
    assert [f"state.{n}" for n in meta["state_names"]] == names[2:-1]
    assert meta["policy_config"]["event_shape"] == [2, 64, 64]
    assert len(meta["ratio_thresholds"]) == meta["policy_config"]["hidden_size"]
    assert len(meta["spiking_rank"]) == meta["policy_config"]["num_layers"]


_NO_PACKAGE = r"""
import sys, json, os
repo = os.path.realpath(sys.argv[3])
sys.path = [p for p in sys.path
            if p and not os.path.realpath(p).startswith(os.path.join(repo, 'test'))
            and os.path.realpath(p) != repo]
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
import numpy as np, torch, onnxruntime as ort
try:
    import hybrid_snn_control  # noqa
    raise SystemExit('package still importable')
except ImportError:
    pass
pt, onnx_path = sys.argv[1], sys.argv[2]
extra = {'hsc_meta.json': ''}
m = torch.jit.load(pt, _extra_files=extra)
meta = json.loads(extra['hsc_meta.json'])
n = meta['policy_config']['hidden_size']
state = [torch.zeros(1, n) for _ in meta['state_names']]
ev = torch.ones(1, 2, 64, 64); pr = torch.zeros(1, 8); r = torch.tensor([0.3])
out = m(ev, pr, *state, r)
s = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
feed = {'events': ev.numpy(), 'proprio': pr.numpy(), 'spiking_ratio': r.numpy()}
feed.update({f'state.{k}': v.numpy() for k, v in zip(meta['state_names'], state)})
o = s.run(None, feed)
assert np.abs(o[0] - out[0].numpy()).max() < 1e-5, (o[0], out[0])
print('ok', out[0].shape)
"""


def test_exported_files_load_without_the_package(artefacts, tmp_path):
    script = tmp_path / "no_package.py"
    script.write_text(_NO_PACKAGE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(artefacts["torchscript"]),
            str(artefacts["onnx_dynamo"]),
            REPO,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_onnx_batch_dimension_is_dynamic_for_both_exporters():
    graph = StepGraph(make_policy()).eval()
    for exporter in ("dynamo", "torchscript"):
        session = ort_session(onnx_bytes(graph, exporter))
        for batch in (1, 2, 5):
            inputs = graph.example_inputs(batch, ratio=0.25)
            with torch.no_grad():
                want = graph(*inputs)
            feed = {n: t.numpy() for n, t in zip(graph.input_names(), inputs)}
            got = session.run(None, feed)
            for g, w in zip(got, want):
                assert g.shape == tuple(w.shape)
                assert np.abs(g - w.numpy()).max() <= TOL_FP32


def test_torchscript_trace_generalizes_over_batch_and_ratio():
    graph = StepGraph(make_policy()).eval()
    module = trace_torchscript(graph)
    for batch, ratio in ((1, 0.0), (4, 1.0), (2, 0.33)):
        inputs = graph.example_inputs(batch, ratio)
        with torch.no_grad():
            for g, w in zip(module(*inputs), graph(*inputs)):
                assert torch.equal(g, w)


def _assert_fp16_tracks_fp32(ref, half):
    """What is compared for fp16: actions over the steps before the first spike flip (a
    half-precision membrane near θ can flip a spike, and then the runs diverge as any two
    precisions do) within 2e-2, and the spike agreement over the whole run (>= 80 %)."""
    events, proprio = input_sequence(60, 1)
    a32, _, s32 = _run(ref, events[:, 0], proprio[:, 0], changes={30: 0.2})
    a16, _, s16 = _run(half, events[:, 0], proprio[:, 0], changes={30: 0.2})
    s32, s16 = np.array(s32, np.float32), np.array(s16, np.float32)
    same = np.all(s32 == s16, axis=(1, 2))
    first_flip = int(np.argmin(same)) if not same.all() else len(same)
    assert first_flip >= 5
    assert np.abs(a16[:first_flip] - a32[:first_flip]).max() <= 2e-2
    agreement = 1.0 - np.abs(s16 - s32).sum() / max(1.0, s32.sum())
    assert agreement >= 0.8


def test_fp16_torchscript_on_cpu_tracks_fp32(checkpoint):
    half = load_runtime(checkpoint, "torchscript", fp16=True)
    assert half.dtype == np.float16
    _assert_fp16_tracks_fp32(load_runtime(checkpoint, "torchscript"), half)


def test_fp16_onnx_on_cpu_tracks_fp32(checkpoint, artefacts, tmp_path):
    out = tmp_path / "half.onnx"
    meta = export_checkpoint(checkpoint, out, "onnx", fp16=True, exporter="torchscript")
    assert meta["dtype"] == "float16"
    assert [i["dtype"] for i in meta["inputs"]][-1] == "float32"  # the ratio stays float32
    half = load_runtime(out, "onnxruntime")
    assert half.dtype == np.float16
    _assert_fp16_tracks_fp32(load_runtime(artefacts["onnx_ts"], "onnxruntime"), half)


def test_cuda_requests_fail_clearly_without_cuda(checkpoint, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the cuda path is exercised by hsc export/bench instead")
    with pytest.raises(ValueError, match="CUDA is not available"):
        export_checkpoint(checkpoint, tmp_path / "x.pt", "torchscript", device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_runtime(checkpoint, "torch", device="cuda")


def test_onnx_runtime_class_is_what_the_loader_builds(artefacts):
    assert isinstance(load_runtime(artefacts["onnx_ts"], "onnxruntime"), OnnxRuntimeRuntime)


def test_exported_graphs_select_the_eager_units_for_a_dense_grid_of_ratios(checkpoint, artefacts):
    """One step from a non-zero state at each ratio: the ONNX and TorchScript graphs fed
    float32(r) give the action and state eager PyTorch gives with masks_for_ratio(r)."""
    import onnxruntime as ort

    from hybrid_snn_control.policy import load_policy

    policy, _ = load_policy(checkpoint)
    net = policy.core
    n = net.hidden_size
    ratios = sorted({*np.linspace(0, 1, 201).tolist(), *(k / n for k in range(n + 1)), 1e-7})
    events, proprio = input_sequence(4, 1)
    ev, pr = torch.from_numpy(events), torch.from_numpy(proprio)  # [T, 1, ...]
    with torch.no_grad():  # a non-zero state, so masked-off units would show
        state = None
        for t in range(3):
            _, state = policy.step(ev[t], pr[t], state)
    flat = [s.numpy() for s in net.flatten_state(state)]
    session = ort.InferenceSession(str(artefacts["onnx_dynamo"]))
    names = [f"state.{k}" for k in net.state_names()]
    module = load_runtime(artefacts["torchscript"], "torchscript").module
    for r in ratios:
        with torch.no_grad():
            want_a, want_s = policy.step(ev[3], pr[3], state, masks=net.masks_for_ratio(r))
        want = [want_a.numpy(), *(s.numpy() for s in net.flatten_state(want_s))]
        r32 = np.array([r], np.float32)  # what a caller without this package sends
        feed = {"events": events[3], "proprio": proprio[3], "spiking_ratio": r32}
        feed.update(zip(names, flat))
        got_onnx = session.run(None, feed)
        with torch.no_grad():
            got_ts = module(ev[3], pr[3], *map(torch.from_numpy, flat), torch.from_numpy(r32))
        for w, g_onnx, g_ts in zip(want, got_onnx, got_ts):
            assert np.abs(g_onnx - w).max() <= TOL_FP32, r
            assert np.abs(g_ts.numpy() - w).max() <= TOL_FP32, r


@pytest.mark.parametrize(
    ("spiking", "recurrent"),
    [("alif", "lstm"), ("stc_lif", "lstm"), ("stc_alif", "gru"), ("rf", "lstm"), ("lif", "rnn")],
)
def test_every_cell_kind_exports_and_matches_eager(tmp_path, spiking, recurrent):
    """Small policies of every spiking / recurrent cell kind: 40 steps with a ratio change,
    TorchScript and ONNX (graph built in memory) against eager, batch 2."""
    ckpt = save_test_policy(
        tmp_path / "p.safetensors", hidden_size=8, spiking_cell=spiking, recurrent_cell=recurrent
    )
    events, proprio = input_sequence(40, 2)
    changes = {20: 0.25}
    ref_a, ref_s, _ = _run(load_runtime(ckpt, "torch", batch_size=2), events, proprio, changes)
    for backend in ("torchscript", "onnxruntime"):
        rt = load_runtime(ckpt, backend, batch_size=2)
        a, s, _ = _run(rt, events, proprio, changes)
        assert np.abs(a - ref_a).max() <= TOL_FP32, backend
        assert _max_state_diff(s, ref_s) <= TOL_FP32, backend


def test_policy_node_controller_behaves_the_same_on_every_backend(checkpoint, artefacts):
    """The policy node's core (deploy/controller.py) on torch / torchscript / onnxruntime:
    same actions over 60 steps with a live ratio change, same reset."""
    from hybrid_snn_control.robot.controller import PolicyController

    events, proprio = input_sequence(60, 1)
    paths = {
        "torch": checkpoint,
        "torchscript": artefacts["torchscript"],
        "onnxruntime": artefacts["onnx_dynamo"],
    }
    runs = {}
    for backend, path in paths.items():
        ctl = PolicyController(path, backend=backend)
        actions = []
        for t in range(60):
            if t == 30:
                ctl.set_ratio(0.75)
            actions.append(ctl.step(events[t, 0], proprio[t, 0]).action)
        ctl.reset()
        assert all(np.abs(s).max() == 0 for s in ctl.state_arrays())
        runs[backend] = np.array(actions)
    for backend in ("torchscript", "onnxruntime"):
        assert np.abs(runs[backend] - runs["torch"]).max() <= TOL_FP32, backend


@pytest.mark.parametrize(
    ("in_hw", "out_hw"), [((8, 8), (3, 3)), ((7, 9), (3, 4)), ((16, 16), (5, 5))]
)
def test_adaptive_pool_as_matmul_equals_adaptive_avg_pool(in_hw, out_hw):
    from hybrid_snn_control.policy.hybrid_policy import AdaptivePoolMatmul

    x = torch.randn(3, 4, *in_hw)
    want = torch.nn.AdaptiveAvgPool2d(out_hw)(x)
    torch.testing.assert_close(AdaptivePoolMatmul(in_hw, out_hw)(x), want, atol=1e-6, rtol=0)


def test_encoder_grid_not_dividing_the_feature_map_exports(tmp_path):
    """encoder_grid 3 on a 16x16 map (the shipped policy has 3 on 8x8): adaptive pool."""
    ckpt = save_test_policy(tmp_path / "g3.safetensors", hidden_size=8, encoder_grid=3)
    events, proprio = input_sequence(20, 2)
    ref_a, ref_s, _ = _run(load_runtime(ckpt, "torch", batch_size=2), events, proprio, {})
    for backend in ("torchscript", "onnxruntime"):
        a, s, _ = _run(load_runtime(ckpt, backend, batch_size=2), events, proprio, {})
        assert np.abs(a - ref_a).max() <= TOL_FP32 and _max_state_diff(s, ref_s) <= TOL_FP32


def test_shipped_pursuit_policy_in_closed_loop(tmp_path):
    """The shipped trained policy drives the MuJoCo pursuit task for 240 steps (ratio
    0.5, then 0.25 from step 120); the recorded observations replayed through the
    exported ONNX (dynamo) and TorchScript files give the same actions and states."""
    import gymnasium as gym

    import hybrid_snn_control.sim  # noqa: F401  (registers the envs)
    from hybrid_snn_control.deploy.artefact import read_onnx_metadata
    from hybrid_snn_control.policy.shipped import default_policy_path

    ckpt = default_policy_path()
    if not ckpt.is_file():
        pytest.skip("no shipped policy in this checkout")
    onnx_path, ts_path = tmp_path / "pursuit.onnx", tmp_path / "pursuit.pt"
    export_checkpoint(ckpt, onnx_path, "onnx")
    export_checkpoint(ckpt, ts_path, "torchscript")
    cfg = read_onnx_metadata(onnx_path)["policy_config"]
    _, height, width = cfg["event_shape"]
    env = gym.make("hybrid_snn_control/Pursuit-v0", camera_width=width, camera_height=height)
    ref = load_runtime(ckpt, "torch")
    obs, _ = env.reset(seed=3)
    events, proprio, ref_a, ref_s = [], [], [], []
    for t in range(240):
        if t == 120:
            ref.set_ratio(0.25)
        events.append(obs["events"])
        proprio.append(obs["proprio"])
        ref_a.append(ref.step(obs["events"], obs["proprio"]))
        ref_s.append(ref.state())
        obs, _, terminated, truncated, _ = env.step(ref_a[-1])
        if terminated or truncated:
            break
    env.close()
    assert len(ref_a) >= 100 and np.mean([e.sum() for e in events]) > 0  # it saw events
    for path, backend in ((onnx_path, "onnxruntime"), (ts_path, "torchscript")):
        rt = load_runtime(path, backend)
        a, s, _ = _run(rt, np.array(events), np.array(proprio), {120: 0.25})
        assert np.abs(a - np.array(ref_a)).max() <= TOL_FP32, backend
        assert _max_state_diff(s, ref_s) <= TOL_FP32, backend

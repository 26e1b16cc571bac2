r"""Export a :class:`~hybrid_snn_control.policy.HybridPolicy` as a stateful step graph.

The deployable artefact is one explicit control step (legged_gym / IsaacLab style):

.. code-block:: text

    inputs : events [B, C, H, W], proprio [B, P],
             state.<name> [B, N] ... (one per tensor of net.state_names()),
             spiking_ratio [1] float32
    outputs: action [B, A],
             next_state.<name> [B, N] ...,
             spike_count [B, L]  (spikes of each layer's active spiking units this step)

The caller owns the state: start from zeros (reset = zeros), feed ``next_state.*`` back as
``state.*``. The ratio is a graph input, so it can change on every step without re-export;
the graph turns it into unit masks with one float32 comparison per unit against
thresholds derived from the stored ranking (:mod:`.ratio_graph`), reproducing
``HybridNetwork.masks_for_ratio`` exactly. Spikes are a plain ``u > θ`` comparison (the
surrogate-gradient Function is never reached because nothing requires grad).

How the graph is made: :class:`StepGraph` wraps the policy's one explicit step
(:meth:`HybridPolicy.step_with_activity`, the same code eager inference runs) with the
ratio → masks conversion in front and the spike counts behind; it is recorded with
``torch.jit.trace`` (TorchScript) or
``torch.onnx.export`` (ONNX; dynamo or TorchScript-based exporter). Tracing is correct
here because every Python branch in the step depends on the configuration (cell kind,
reset mode, masks given), never on tensor values; the equivalence tests run the
artefacts against eager PyTorch over hundreds of steps with ratio changes and batch 1 / N.

fp16: the weights and every tensor input/output except ``spiking_ratio`` are float16
(the ratio stays float32 so the mask thresholds compare exactly).

Metadata (JSON; :func:`artefact_metadata`): input/output names, shapes and dtypes, state
names, the ratio thresholds and per-unit ranking, the PolicyConfig, the package and
torch versions and the sha256 of the source checkpoint. It is embedded (TorchScript
``_extra_files['hsc_meta.json']``, ONNX ``metadata_props['hsc_meta']``) and written
beside the file as ``<file>.json``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hybrid_snn_control import __version__
from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.deploy.artefact import META_KEY
from hybrid_snn_control.deploy.graph_cost import ENCODER_SYNOPS_UNIT, GraphCostModel
from hybrid_snn_control.deploy.ratio_graph import masks_from_thresholds, unit_thresholds
from hybrid_snn_control.hybrid.efficiency import AC_ENERGY_PJ, GATES, MAC_ENERGY_PJ, spiking_rows
from hybrid_snn_control.hybrid.ratio import ratio_thresholds
from hybrid_snn_control.policy.bundle import load_hybrid_policy
from hybrid_snn_control.policy.checkpoint import read_header
from hybrid_snn_control.policy.hybrid_policy import HybridPolicy

FORMATS = ("torchscript", "onnx")
ONNX_EXPORTERS = ("dynamo", "torchscript")
ONNX_OPSET = 18

__all__ = [
    "FORMATS",
    "StepGraph",
    "artefact_metadata",
    "build_graph",
    "export_checkpoint",
    "export_policy",
    "onnx_bytes",
    "trace_torchscript",
    "trtexec_command",
]


class StepGraph(nn.Module):
    """One control step of a policy with explicit state and a ratio input (see module doc).

    ``forward(events, proprio, *state, spiking_ratio) -> (action, *next_state, spike_count)``
    """

    def __init__(self, policy: HybridPolicy, spike_counts: bool = True) -> None:
        super().__init__()
        self.policy = policy
        self.spike_counts = spike_counts
        net = policy.core
        self.state_names = policy.state_names()
        self.state_sizes = policy.state_sizes()
        #: a spiking encoder's SynOps ride along as one more ``spike_count`` column
        self.encoder_column = policy.stateful_encoder
        self.num_layers = net.num_layers
        self.hidden_size = net.hidden_size
        s_thr, r_thr = unit_thresholds(net)
        dev = net.layers[0].spiking_mask.device
        self.register_buffer("spiking_threshold", s_thr.to(dev))
        self.register_buffer("recurrent_threshold", r_thr.to(dev))

    def forward(self, events: Tensor, proprio: Tensor, *args: Tensor):
        *flat_state, ratio = args
        dtype = events.dtype
        masks = masks_from_thresholds(
            ratio.to(torch.float32), self.spiking_threshold, self.recurrent_threshold, dtype
        )
        state = self.policy.unflatten_state(list(flat_state))
        action, state, activity = self.policy.step_with_activity(events, proprio, state, masks)
        outputs = [action, *self.policy.flatten_state(state)]
        if self.spike_counts:
            counts = [s[0].sum(dim=1) for s in activity.spikes]
            if activity.encoder_synops is not None:
                # in thousands: an fp16 graph holds at most 65504 (a busy 32 x 32 scene
                # reaches ~10^5 encoder SynOps); the cost model scales it back
                counts.append(activity.encoder_synops[0].float() / ENCODER_SYNOPS_UNIT)
            outputs.append(torch.stack(counts, dim=1))
        # explicit casts pin every output to the I/O dtype (the TorchScript-based ONNX
        # exporter otherwise promotes the fp16 LIF membrane to float32)
        return tuple(o.to(dtype) for o in outputs)

    # ---- names and example inputs -----------------------------------------------------------
    def input_names(self) -> list[str]:
        return ["events", "proprio", *(f"state.{n}" for n in self.state_names), "spiking_ratio"]

    def output_names(self) -> list[str]:
        names = ["action", *(f"next_state.{n}" for n in self.state_names)]
        return [*names, "spike_count"] if self.spike_counts else names

    def example_inputs(self, batch_size: int = 2, ratio: float = 0.5) -> tuple[Tensor, ...]:
        cfg = self.policy.cfg
        p = next(self.policy.parameters())
        gen = torch.Generator().manual_seed(0)
        events = torch.poisson(torch.full((batch_size, *cfg.event_shape), 0.3), generator=gen)
        proprio = torch.randn(batch_size, cfg.proprio_size, generator=gen)
        state = self.policy.flatten_state(self.policy.initial_state(batch_size))
        return (
            events.to(p),
            proprio.to(p),
            *(s.to(p) for s in state),
            torch.tensor([ratio], dtype=torch.float32, device=p.device),
        )


def _check_exportable(policy: HybridPolicy, fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def _prepare(policy: HybridPolicy, fp16: bool, device: str) -> HybridPolicy:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda: CUDA is not available on this machine (torch "
            f"{torch.__version__}); export with --device cpu (the ONNX file runs on any device)"
        )
    policy = policy.eval().to(device)
    if fp16:
        policy = policy.half()
    return policy


def trace_torchscript(graph: StepGraph, batch_size: int = 2) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` + ``freeze`` of the step (see module doc for why tracing is right)."""
    example = graph.example_inputs(batch_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
        traced = torch.jit.trace(graph.eval(), example, check_trace=False)
        frozen = torch.jit.freeze(traced)
    return frozen


def onnx_bytes(graph: StepGraph, exporter: str = "dynamo", batch_size: int = 2) -> bytes:
    """Serialized ONNX model of the step, batch dimension dynamic."""
    if exporter not in ONNX_EXPORTERS:
        raise ValueError(f"exporter must be one of {ONNX_EXPORTERS}, got {exporter!r}")
    example = graph.example_inputs(batch_size)
    in_names, out_names = graph.input_names(), graph.output_names()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            # forward(events, proprio, *args): *args is one tuple for torch.export
            args_dyn = (*({0: batch} for _ in graph.state_names), None)
            program = torch.onnx.export(
                graph.eval(),
                example,
                dynamo=True,
                input_names=in_names,
                output_names=out_names,
                dynamic_shapes=({0: batch}, {0: batch}, args_dyn),
                opset_version=ONNX_OPSET,
                optimize=True,
                verbose=False,
            )
            return program.model_proto.SerializeToString()
        axes = {name: {0: "batch"} for name in in_names + out_names if name != "spiking_ratio"}
        torch.onnx.export(
            graph.eval(),
            example,
            buf,
            dynamo=False,
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )
    return buf.getvalue()


def artefact_metadata(
    graph: StepGraph, fmt: str | None, fp16: bool, checkpoint_meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything a caller without this package needs to drive the artefact."""
    policy = graph.policy
    cfg = policy.cfg
    dtype = "float16" if fp16 else "float32"
    layers = cfg.num_layers
    inputs = [
        {"name": "events", "shape": ["batch", *cfg.event_shape], "dtype": dtype},
        {"name": "proprio", "shape": ["batch", cfg.proprio_size], "dtype": dtype},
        *(
            {"name": f"state.{s}", "shape": ["batch", n], "dtype": dtype}
            for s, n in zip(graph.state_names, graph.state_sizes)
        ),
        {"name": "spiking_ratio", "shape": [1], "dtype": "float32"},
    ]
    outputs = [
        {"name": "action", "shape": ["batch", cfg.action_size], "dtype": dtype},
        *(
            {"name": f"next_state.{s}", "shape": ["batch", n], "dtype": dtype}
            for s, n in zip(graph.state_names, graph.state_sizes)
        ),
    ]
    if graph.spike_counts:
        columns = layers + int(graph.encoder_column)
        outputs.append({"name": "spike_count", "shape": ["batch", columns], "dtype": dtype})
    ckpt = checkpoint_meta or {}
    return {
        "format": fmt,
        "format_version": 1,
        "dtype": dtype,
        "inputs": inputs,
        "outputs": outputs,
        "state_names": list(graph.state_names),
        "state_reset": "zeros",
        "spiking_ratio": policy.spiking_ratio,
        "ratio_rule": (
            "n_spiking = #{k : spiking_ratio >= ratio_thresholds[k]}; spiking unit j on iff "
            "rank < n_spiking, recurrent unit j on iff rank < hidden_size - n_spiking"
        ),
        "ratio_thresholds": [float(x) for x in ratio_thresholds(cfg.hidden_size)],
        "spiking_rank": [layer.spiking_rank.tolist() for layer in policy.core.layers],
        "recurrent_rank": [layer.recurrent_rank.tolist() for layer in policy.core.layers],
        "policy_config": to_mapping(cfg),
        "cost_model": graph_cost_model(policy).as_dict(),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "checkpoint_sha256": ckpt.get("sha256"),
        "checkpoint_path": ckpt.get("path"),
    }


def graph_cost_model(policy: HybridPolicy) -> GraphCostModel:
    """The ratio-only part of the policy's per-step cost, so an exported graph's runtime
    turns its ``spike_count`` output into the eager backend's :class:`StepCost`."""
    net = policy.core
    return GraphCostModel(
        hidden_size=net.hidden_size,
        num_layers=net.num_layers,
        input_size=net.input_size,
        gates=GATES[net.recurrent_cell],
        spiking_rows=spiking_rows(net),
        readout_size=net.readout.out_features if net.readout is not None else 0,
        encoder_macs=float(policy.encoder.macs),
        encoder_synops_column=policy.stateful_encoder,
        mac_energy_pj=MAC_ENERGY_PJ,
        ac_energy_pj=AC_ENERGY_PJ,
    )


def trtexec_command(meta: dict[str, Any], onnx_path: str | Path, batch_size: int = 1) -> str:
    """A ``trtexec`` line that builds an fp16 TensorRT engine for ``batch_size`` (Jetson)."""
    shapes = ",".join(
        f"{io['name']}:" + "x".join(str(batch_size if d == "batch" else d) for d in io["shape"])
        for io in meta["inputs"]
        if "batch" in io["shape"]
    )
    engine = Path(onnx_path).with_suffix(".engine").name
    return (
        f"trtexec --onnx={onnx_path} --saveEngine={engine} --fp16 "
        f"--minShapes={shapes} --optShapes={shapes} --maxShapes={shapes}"
    )


def checkpoint_sha256(path: str | Path) -> str | None:
    """The content hash stored in a checkpoint header (verified by ``load_policy``)."""
    return read_header(path).get("sha256")


def build_graph(
    checkpoint: str | Path, fp16: bool = False, device: str = "cpu", spike_counts: bool = True
) -> tuple[StepGraph, dict[str, Any]]:
    """Load a policy checkpoint and wrap it; return ``(graph, metadata)`` (format unset)."""
    policy, _ = load_hybrid_policy(checkpoint)
    policy = _prepare(policy, fp16, device)
    graph = StepGraph(policy, spike_counts=spike_counts)
    ckpt = {"sha256": checkpoint_sha256(checkpoint), "path": str(checkpoint)}
    return graph, artefact_metadata(graph, None, fp16, ckpt)


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, fmt: str = "onnx", **kwargs: Any
) -> dict[str, Any]:
    """:func:`export_policy` for a checkpoint file (its sha256 goes into the metadata)."""
    policy, _ = load_hybrid_policy(checkpoint)
    ckpt = {"sha256": checkpoint_sha256(checkpoint), "path": str(checkpoint)}
    return export_policy(policy, out, fmt, checkpoint_meta=ckpt, **kwargs)


def export_policy(
    policy: HybridPolicy,
    out: str | Path,
    fmt: str = "onnx",
    fp16: bool = False,
    device: str = "cpu",
    exporter: str = "dynamo",
    spike_counts: bool = True,
    checkpoint_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the step graph to ``out`` (+ ``out.json``); return the metadata."""
    _check_exportable(policy, fmt)
    policy = _prepare(policy, fp16, device)
    graph = StepGraph(policy, spike_counts=spike_counts)
    meta = artefact_metadata(graph, fmt, fp16, checkpoint_meta)
    if fmt == "onnx":
        meta["onnx_exporter"] = exporter
        meta["onnx_opset"] = ONNX_OPSET
    meta_json = json.dumps(meta, indent=1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        module = trace_torchscript(graph)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(module, str(out), _extra_files={f"{META_KEY}.json": meta_json})
    else:
        import onnx

        model = onnx.load_from_string(onnx_bytes(graph, exporter))
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, meta_json
        model.producer_name = "hybrid_snn_control"
        model.producer_version = __version__
        onnx.save(model, str(out))
    Path(f"{out}.json").write_text(meta_json + "\n")
    return meta

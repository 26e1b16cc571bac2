"""One stepping interface over eager PyTorch, TorchScript and ONNX Runtime.

.. code-block:: python

    rt = load_runtime("policy.onnx", backend="onnxruntime", threads=1)
    rt.reset()                      # zero state (all, or where done[b])
    rt.set_ratio(0.25)              # takes effect on the next step; state of kept units kept
    action = rt.step(events, proprio)   # numpy in, numpy out: [C,H,W]+[P] -> [A] or batched

The policy node (``backend: torch | torchscript | onnxruntime``) builds one of these and
never looks at which: all three hold the recurrent state between calls, give the same
actions (tested to 1e-5 in float32), accept a new ratio at any step and reset the same way.

``path`` may be a training checkpoint (``.safetensors``; TorchScript / ONNX graphs are then
built in memory at load) or an exported artefact (``.pt`` TorchScript, ``.onnx``).
Threads (default 1: batch-1 control steps are fastest single-threaded, see ``hsc bench``,
and a robot computer runs other nodes): ``threads`` sets ONNX Runtime's intra-op pool per
session; for the torch backends it calls ``torch.set_num_threads`` (process-wide, as torch
has no per-module pool; ``threads=None`` leaves torch's setting alone).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.hybrid.ratio import check_ratio, graph_ratio

BACKENDS = ("torch", "torchscript", "onnxruntime")
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript", ".jit")

__all__ = [
    "BACKENDS",
    "OnnxRuntimeRuntime",
    "PolicyRuntime",
    "TorchRuntime",
    "TorchScriptRuntime",
    "load_runtime",
]


class PolicyRuntime:
    """Base: state bookkeeping, ratio validation and input shaping shared by the backends."""

    backend = "base"

    def __init__(self, meta: dict[str, Any], batch_size: int, spiking_ratio: float | None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.meta = meta
        self.batch_size = batch_size
        cfg = meta["policy_config"]
        self.event_shape = tuple(cfg["event_shape"])
        self.proprio_size = int(cfg["proprio_size"])
        self.hidden_size = int(cfg["hidden_size"])
        self.state_names: list[str] = list(meta["state_names"])
        self.thresholds = np.asarray(meta["ratio_thresholds"], dtype=np.float32)
        self.dtype = np.float16 if meta.get("dtype") == "float16" else np.float32
        self.last_spike_count: np.ndarray | None = None
        r = meta.get("spiking_ratio") if spiking_ratio is None else spiking_ratio
        self.set_ratio(0.5 if r is None else r)
        self.reset()

    # ---- public interface -------------------------------------------------------------------
    @property
    def spiking_ratio(self) -> float:
        return self._ratio

    def set_ratio(self, r: float) -> None:
        """Use spiking ratio ``r`` ∈ [0, 1] from the next step on (ValueError otherwise)."""
        self._ratio = check_ratio(r)
        self._ratio32 = graph_ratio(self._ratio, self.thresholds)
        self._apply_ratio()

    def reset(self, done: Any = None) -> None:
        """Zero the whole state, or only batch elements where ``done`` ``[B]`` is true."""
        shape = (self.batch_size, self.hidden_size)
        if done is None:
            state = [np.zeros(shape, self.dtype) for _ in self.state_names]
        else:
            keep = ~np.asarray(done, dtype=bool).reshape(-1)
            if keep.shape != (self.batch_size,):
                raise ValueError(f"done must have shape [{self.batch_size}], got {keep.shape}")
            keep = keep[:, None].astype(self.dtype)
            state = [self._to_numpy(s) * keep for s in self._state]
        self._state = [self._from_numpy(s) for s in state]

    def step(self, events: Any, proprio: Any) -> np.ndarray:
        """One control step: ``events [B,C,H,W]`` or ``[C,H,W]``, ``proprio [B,P]`` or ``[P]``."""
        ev = np.asarray(events, dtype=self.dtype)
        pr = np.asarray(proprio, dtype=self.dtype)
        single = ev.ndim == 3
        if single:
            ev, pr = ev[None], pr[None]
        if ev.shape != (self.batch_size, *self.event_shape):
            raise ValueError(
                f"events must have shape {self.event_shape} or "
                f"[{self.batch_size}, {', '.join(map(str, self.event_shape))}], got {ev.shape}"
            )
        if pr.shape != (self.batch_size, self.proprio_size):
            raise ValueError(
                f"proprio must have shape [{self.proprio_size}] or "
                f"[{self.batch_size}, {self.proprio_size}], got {pr.shape}"
            )
        action = np.asarray(self._step(ev, pr), dtype=np.float32)
        return action[0] if single else action

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the recurrent state (names as in the artefact metadata)."""
        return {
            n: np.array(self._to_numpy(s), np.float32)
            for n, s in zip(self.state_names, self._state)
        }

    # ---- backend hooks ----------------------------------------------------------------------
    def _apply_ratio(self) -> None:
        pass

    def _to_numpy(self, s: Any) -> np.ndarray:
        return s

    def _from_numpy(self, a: np.ndarray) -> Any:
        return a

    def _step(self, events: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _TorchStateMixin:
    device: str

    def _to_numpy(self, s):
        return s.detach().cpu().numpy()

    def _from_numpy(self, a):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)


class TorchRuntime(_TorchStateMixin, PolicyRuntime):
    """Eager PyTorch: ``policy.step`` with the ratio set by ``policy.set_ratio`` (in place)."""

    backend = "torch"

    def __init__(self, policy, meta, batch_size=1, spiking_ratio=None, device="cpu"):
        self.policy = policy.eval().to(device)
        self.device = device
        super().__init__(meta, batch_size, spiking_ratio)

    def _apply_ratio(self) -> None:
        self.policy.set_ratio(self._ratio)

    def _step(self, events, proprio):
        import torch

        net = self.policy.core
        with torch.inference_mode():
            state = net.unflatten_state(self._state)
            action, state = self.policy.step(
                self._from_numpy(events), self._from_numpy(proprio), state
            )
            self._state = list(net.flatten_state(state))
        return action.cpu().numpy()


class TorchScriptRuntime(_TorchStateMixin, PolicyRuntime):
    """A traced, frozen step graph (``hsc export --format torchscript`` or built in memory)."""

    backend = "torchscript"

    def __init__(self, module, meta, batch_size=1, spiking_ratio=None, device="cpu"):
        self.module = module
        self.device = device
        super().__init__(meta, batch_size, spiking_ratio)

    def _apply_ratio(self) -> None:
        import torch

        self._ratio_t = torch.tensor([self._ratio32], dtype=torch.float32, device=self.device)

    def _step(self, events, proprio):
        import torch

        with torch.inference_mode():
            out = self.module(
                self._from_numpy(events), self._from_numpy(proprio), *self._state, self._ratio_t
            )
        n = len(self._state)
        self._state = list(out[1 : 1 + n])
        if len(out) > 1 + n:
            self.last_spike_count = out[1 + n].cpu().numpy()
        return out[0].cpu().numpy()


class OnnxRuntimeRuntime(PolicyRuntime):
    """ONNX Runtime session over the exported step graph (CPU, CUDA or TensorRT EP)."""

    backend = "onnxruntime"

    def __init__(self, session, meta, batch_size=1, spiking_ratio=None):
        self.session = session
        self._in_state = [f"state.{n}" for n in meta["state_names"]]
        self._outputs = [o.name for o in session.get_outputs()]
        super().__init__(meta, batch_size, spiking_ratio)

    def _apply_ratio(self) -> None:
        self._ratio_a = np.array([self._ratio32], dtype=np.float32)

    def _step(self, events, proprio):
        feed = {"events": events, "proprio": proprio, "spiking_ratio": self._ratio_a}
        feed.update(zip(self._in_state, self._state))
        out = self.session.run(self._outputs, feed)
        n = len(self._state)
        self._state = out[1 : 1 + n]
        if len(out) > 1 + n:
            self.last_spike_count = out[1 + n]
        return out[0]


# ---- loading ------------------------------------------------------------------------------------
def ort_session(
    model: str | Path | bytes,
    threads: int | None = 1,
    device: str = "cpu",
    providers: list | None = None,
):
    """An ONNX Runtime session tuned for batch-1 latency (full graph optimization,
    sequential execution, ``threads`` intra-op threads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    if providers is None:
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(
                    "device cuda: this onnxruntime has no CUDAExecutionProvider (available: "
                    f"{ort.get_available_providers()}); install onnxruntime-gpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=providers)


def _check_device(device: str) -> None:
    import torch

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: CUDA is not available to torch on this machine")


def load_runtime(
    path: str | Path,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = 1,
    device: str = "cpu",
    spiking_ratio: float | None = None,
    fp16: bool = False,
    providers: list | None = None,
) -> PolicyRuntime:
    """Build a runtime from a checkpoint (``.safetensors``) or an exported artefact."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} does not exist")
    is_checkpoint = path.suffix == ".safetensors"
    if backend == "onnxruntime":
        if is_checkpoint:
            from hybrid_snn_control.deploy.export import build_graph, onnx_bytes

            graph, meta = build_graph(path, fp16=fp16, device="cpu")
            model: bytes | Path = onnx_bytes(graph, exporter="torchscript")
        elif path.suffix == ".onnx":
            model, meta = path, read_onnx_metadata(path)
        else:
            raise ValueError(f"backend onnxruntime needs a .onnx or .safetensors file, got {path}")
        session = ort_session(model, threads, device, providers)
        return OnnxRuntimeRuntime(session, meta, batch_size, spiking_ratio)

    import torch

    _check_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if backend == "torch":
        if not is_checkpoint:
            raise ValueError(f"backend torch needs a .safetensors checkpoint, got {path}")
        from hybrid_snn_control.deploy.export import build_graph

        graph, meta = build_graph(path, fp16=fp16, device=device)
        return TorchRuntime(graph.policy, meta, batch_size, spiking_ratio, device)
    if is_checkpoint:
        from hybrid_snn_control.deploy.export import build_graph, trace_torchscript

        graph, meta = build_graph(path, fp16=fp16, device=device)
        module = trace_torchscript(graph)
    elif path.suffix in TORCHSCRIPT_SUFFIXES:
        extra = {"hsc_meta.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        meta = json.loads(extra["hsc_meta.json"])
    else:
        raise ValueError(
            f"backend torchscript needs one of {TORCHSCRIPT_SUFFIXES} or .safetensors, got {path}"
        )
    return TorchScriptRuntime(module, meta, batch_size, spiking_ratio, device)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``hsc_meta`` JSON stored in an exported ONNX file (falls back to ``<file>.json``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "hsc_meta":
            return json.loads(prop.value)
    side = Path(f"{path}.json")
    if side.is_file():
        return json.loads(side.read_text())
    raise ValueError(f"{path} carries no hsc_meta metadata: not exported by hsc export?")

"""One stepping interface over eager PyTorch, TorchScript and ONNX Runtime.

.. code-block:: python

    rt = load_runtime("policy.onnx", backend="onnxruntime", threads=1)
    rt.reset()                      # zero state (all, or where done[b])
    rt.set_ratio(0.25)              # takes effect on the next step; state of kept units kept
    action = rt.step(events, proprio)   # numpy in, numpy out: [C,H,W]+[P] -> [A] or batched
    rt.last_cost                    # StepCost of that step (None: not counted)

A runtime owns everything that changes while a policy runs: the spiking ratio (validated
here, once), the recurrent state and the cost of the last step.  The policy node's
controller holds one runtime and never looks at which: all three give the same actions
(tested to 1e-5 in float32), accept a new ratio at any step and reset the same way.
The torch backend runs any policy core (hybrid or HRSNN, with online plasticity) and
counts the cost of every step on the step that ran; the exported graphs run hybrid
policies and report their spike counts (``last_spike_count``), from which the same
``StepCost`` is computed in numpy (:mod:`hybrid_snn_control.deploy.graph_cost`).

``backend="auto"`` (the policy node's default) picks the fastest correct path: ONNX
Runtime when it is installed, else the TorchScript graph; eager torch for an HRSNN core or
when online plasticity is asked for (only eager torch has it).

``path`` may be a training checkpoint (``.safetensors``; TorchScript / ONNX graphs are then
built in memory at load) or an exported artefact (``.pt`` TorchScript, ``.onnx``).  Loading
an ``.onnx`` file with ``onnxruntime`` imports neither torch nor onnx: the ratio rule is
numpy (:mod:`hybrid_snn_control.hybrid.ratio`) and the metadata is read through the
session.  Threads (default 1: batch-1 control steps are fastest single-threaded, see
``hsc bench``, and a robot computer runs other nodes): ``threads`` sets ONNX Runtime's
intra-op pool per session; for the torch backends it calls ``torch.set_num_threads``
(process-wide, as torch has no per-module pool; ``threads=None`` leaves it alone).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.deploy.artefact import META_KEY, session_metadata
from hybrid_snn_control.deploy.graph_cost import GraphCostModel, StepCost
from hybrid_snn_control.hybrid.ratio import check_ratio, graph_ratio
from hybrid_snn_control.policy.config import PLASTICITY_NEEDS_HRSNN

BACKENDS = ("torch", "torchscript", "onnxruntime")
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript", ".jit")

__all__ = [
    "BACKENDS",
    "OnnxRuntimeRuntime",
    "PolicyFileError",
    "PolicyRuntime",
    "StepCost",
    "TorchRuntime",
    "TorchScriptRuntime",
    "load_runtime",
    "require_policy_file",
    "resolve_backend",
]


class PolicyFileError(ValueError):
    """A policy file exists but cannot be loaded; the message names the file and why."""


def require_policy_file(path: str | Path, what: str = "policy file") -> Path:
    """``path`` if it is a file; ``FileNotFoundError`` if absent, :class:`PolicyFileError`
    if it is a directory (a directory "does not exist" would send the user looking
    for a typo)."""
    path = Path(path)
    if path.is_dir():
        raise PolicyFileError(f"{what} {path} is a directory, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def _load_failed(path: Path, exc: BaseException) -> PolicyFileError:
    """One clear line for whatever a loader raised (protobuf, zip, permission errors …)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = " ".join(reason.split())
    if len(reason) > 300:
        reason = reason[:300] + " …"
    return PolicyFileError(f"could not load {path}: {reason or type(exc).__name__}")


class PolicyRuntime:
    """Base: the ratio, input shaping and the interface every backend has."""

    backend = "base"

    def __init__(self, meta: dict[str, Any], batch_size: int, spiking_ratio: float | None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.meta = meta
        self.batch_size = batch_size
        cfg = meta["policy_config"]
        self.event_shape = tuple(cfg["event_shape"])
        self.proprio_size = int(cfg["proprio_size"])
        self.dtype = np.float16 if meta.get("dtype") == "float16" else np.float32
        #: cost of the last step (None: this backend does not count it)
        self.last_cost: StepCost | None = None
        #: spikes per layer of the last step (exported graphs), else None
        self.last_spike_count: np.ndarray | None = None
        if self.fixed_ratio is not None:
            r = self.fixed_ratio
        else:
            r = meta.get("spiking_ratio") if spiking_ratio is None else spiking_ratio
        self.set_ratio(0.5 if r is None else r)
        self.reset()

    # ---- ratio --------------------------------------------------------------------------------
    @property
    def fixed_ratio(self) -> float | None:
        """The only ratio this policy runs at (an HRSNN core: 1.0); None: any ratio."""
        return None

    @property
    def spiking_ratio(self) -> float:
        return self._ratio

    def set_ratio(self, r: Any) -> float:
        """Use spiking ratio ``r`` ∈ [0, 1] from the next step on; masks only, the state of
        units that stay active is kept.  ValueError outside [0, 1], NaN, non-real, or a
        ratio other than a fixed-ratio policy's."""
        r = check_ratio(r)
        if self.fixed_ratio is not None and r != self.fixed_ratio:
            raise ValueError(
                f"this policy's core is all spiking: spiking_ratio is fixed at "
                f"{self.fixed_ratio:g}, got {r:g}"
            )
        self._ratio = r
        self._apply_ratio()
        return r

    # ---- online plasticity (torch backend, HRSNN cores) -------------------------------------
    @property
    def plasticity(self) -> bool:
        return False

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        """Online STDP from the live events; only the torch backend of an HRSNN core has it."""
        if on and self.meta["policy_config"].get("core", "hybrid") != "hrsnn":
            raise ValueError(PLASTICITY_NEEDS_HRSNN)
        if on:
            raise ValueError(f"online plasticity needs the torch backend, not {self.backend}")

    def weight_norms(self) -> dict[str, float]:
        """Norms of the plastic weights (empty for a policy without plasticity)."""
        return {}

    # ---- the step -----------------------------------------------------------------------------
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

    # ---- backend hooks ------------------------------------------------------------------------
    def reset(self, done: Any = None) -> None:
        """Zero the whole state, or only batch elements where ``done`` ``[B]`` is true."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """A copy of the recurrent state by name (float32 arrays)."""
        raise NotImplementedError

    def _keep_rows(self, done: Any) -> np.ndarray:
        keep = ~np.asarray(done, dtype=bool).reshape(-1)
        if keep.shape != (self.batch_size,):
            raise ValueError(f"done must have shape [{self.batch_size}], got {keep.shape}")
        return keep

    def _apply_ratio(self) -> None:
        raise NotImplementedError

    def _step(self, events: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TorchRuntime(PolicyRuntime):
    """Eager PyTorch on the policy itself (any core): ``set_ratio`` rewrites the masks in
    place and, with ``count_cost``, every step reports its cost (``last_cost``) from the
    activity of the step that ran (no second forward)."""

    backend = "torch"

    def __init__(
        self,
        policy,
        meta: dict[str, Any],
        batch_size: int = 1,
        spiking_ratio: float | None = None,
        device: str = "cpu",
        count_cost: bool = True,
    ) -> None:
        import torch

        self._torch = torch
        self.policy = policy.eval().to(device)
        self.device = torch.device(device)
        self.count_cost = count_cost
        self.state_names = list(policy.state_names())
        super().__init__(meta, batch_size, spiking_ratio)

    @property
    def fixed_ratio(self) -> float | None:
        return self.policy.fixed_ratio

    def _apply_ratio(self) -> None:
        if self.fixed_ratio is None:
            self.policy.set_ratio(self._ratio)

    @property
    def plasticity(self) -> bool:
        return self.policy.plasticity

    def set_plasticity(self, on: bool, rate: float | None = None) -> None:
        self.policy.set_plasticity(bool(on), rate)  # ValueError for a core without STDP

    def weight_norms(self) -> dict[str, float]:
        return self.policy.weight_norms()

    def reset(self, done: Any = None) -> None:
        dtype = self._torch.float16 if self.dtype == np.float16 else None
        if done is None:
            self._state = self.policy.initial_state(self.batch_size, self.device, dtype)
            return
        rows = self._torch.from_numpy(~self._keep_rows(done)).to(self.device)
        self._state = self.policy.reset_state(self._state, rows)

    def state(self) -> dict[str, np.ndarray]:
        flat = self.policy.flatten_state(self._state)
        return {n: t.detach().float().cpu().numpy() for n, t in zip(self.state_names, flat)}

    def _step(self, events, proprio):
        torch = self._torch
        with torch.inference_mode():
            ev = torch.from_numpy(events).to(self.device)
            pr = torch.from_numpy(proprio).to(self.device)
            if not self.count_cost:
                action, self._state = self.policy.step(ev, pr, self._state)
                return action.cpu().numpy()
            action, self._state, report = self.policy.step_with_efficiency(ev, pr, self._state)
        self.last_cost = StepCost(
            synops=report.synops_per_step,
            macs=report.macs_per_step,
            energy_pj=report.energy_pj_per_step,
            firing_rate=[float(r) for r in report.firing_rate],
        )
        return action.cpu().numpy()


class _GraphRuntime(PolicyRuntime):
    """An exported step graph: state is a flat list of ``[B, N]`` arrays fed back each step,
    the ratio a float32 graph input chosen so the graph selects the eager unit counts."""

    def __init__(self, meta: dict[str, Any], batch_size: int, spiking_ratio: float | None):
        self.state_names: list[str] = list(meta["state_names"])
        sizes = {io["name"]: io["shape"][-1] for io in meta["inputs"]}
        self.state_sizes = [int(sizes[f"state.{n}"]) for n in self.state_names]
        self.thresholds = np.asarray(meta["ratio_thresholds"], dtype=np.float32)
        #: turns the graph's spike counts into the eager backend's StepCost (None: an
        #: artefact exported without a cost model, or without the spike_count output)
        self.cost_model = GraphCostModel.from_meta(meta)
        self._ratio_cost = None
        super().__init__(meta, batch_size, spiking_ratio)

    def _apply_ratio(self) -> None:
        self._set_graph_ratio(graph_ratio(self._ratio, self.thresholds))
        if self.cost_model is not None:
            self._ratio_cost = self.cost_model.at_ratio(self._ratio)

    def reset(self, done: Any = None) -> None:
        if done is None:
            state = [np.zeros((self.batch_size, n), self.dtype) for n in self.state_sizes]
        else:
            keep = self._keep_rows(done)[:, None].astype(self.dtype)
            state = [self._to_numpy(s) * keep for s in self._state]
        self._state = [self._from_numpy(s) for s in state]

    def state(self) -> dict[str, np.ndarray]:
        return {
            n: np.array(self._to_numpy(s), np.float32)
            for n, s in zip(self.state_names, self._state)
        }

    def _take_outputs(self, out: list) -> Any:
        """``(action, *next_state, spike_count)`` → action; keeps state and spike counts."""
        n = len(self._state)
        self._state = list(out[1 : 1 + n])
        if len(out) > 1 + n:
            self.last_spike_count = self._to_numpy(out[1 + n])
            if self._ratio_cost is not None:
                self.last_cost = self._ratio_cost.step(self.last_spike_count)
        return self._to_numpy(out[0])

    def _set_graph_ratio(self, r32: float) -> None:
        raise NotImplementedError

    def _to_numpy(self, s: Any) -> np.ndarray:
        return s

    def _from_numpy(self, a: np.ndarray) -> Any:
        return a


class TorchScriptRuntime(_GraphRuntime):
    """A traced, frozen step graph (``hsc export --format torchscript`` or built in memory)."""

    backend = "torchscript"

    def __init__(self, module, meta, batch_size=1, spiking_ratio=None, device="cpu"):
        import torch

        self._torch = torch
        self.module = module
        self.device = device
        super().__init__(meta, batch_size, spiking_ratio)

    def _set_graph_ratio(self, r32: float) -> None:
        self._ratio_t = self._torch.tensor([r32], dtype=self._torch.float32, device=self.device)

    def _to_numpy(self, s):
        return s.detach().cpu().numpy()

    def _from_numpy(self, a):
        return self._torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _step(self, events, proprio):
        with self._torch.inference_mode():
            out = self.module(
                self._from_numpy(events), self._from_numpy(proprio), *self._state, self._ratio_t
            )
        return self._take_outputs(list(out))


class OnnxRuntimeRuntime(_GraphRuntime):
    """ONNX Runtime session over the exported step graph (CPU, CUDA or TensorRT EP)."""

    backend = "onnxruntime"

    def __init__(self, session, meta, batch_size=1, spiking_ratio=None):
        self.session = session
        self._in_state = [f"state.{n}" for n in meta["state_names"]]
        self._outputs = [o.name for o in session.get_outputs()]
        super().__init__(meta, batch_size, spiking_ratio)

    def _set_graph_ratio(self, r32: float) -> None:
        self._ratio_a = np.array([r32], dtype=np.float32)

    def _step(self, events, proprio):
        feed = {"events": events, "proprio": proprio, "spiking_ratio": self._ratio_a}
        feed.update(zip(self._in_state, self._state))
        return self._take_outputs(self.session.run(self._outputs, feed))


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


def _checkpoint_core(path: Path) -> str:
    """``policy_config.core`` of a checkpoint from its header alone (no weights loaded)."""
    from hybrid_snn_control.policy.checkpoint import read_header

    try:
        meta = json.loads(read_header(path).get("hsc", "{}"))
    except (ValueError, TypeError):
        return "hybrid"  # the loader reports what is wrong with the file
    cfg = meta.get("policy_config") if isinstance(meta, dict) else None
    return str(cfg.get("core", "hybrid")) if isinstance(cfg, dict) else "hybrid"


def resolve_backend(path: str | Path, backend: str = "auto", plasticity: bool = False) -> str:
    """The backend ``auto`` means for ``path``: ONNX Runtime when installed, else the
    TorchScript graph; eager torch for an HRSNN core or when ``plasticity`` is wanted
    (only eager torch adapts weights online). Any other ``backend`` is returned as is."""
    if backend != "auto":
        return backend
    path = Path(path)
    if path.suffix == ".onnx":
        return "onnxruntime"
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    if plasticity or _checkpoint_core(path) == "hrsnn":
        return "torch"
    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torchscript"


def load_runtime(
    path: str | Path,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = 1,
    device: str = "cpu",
    spiking_ratio: float | None = None,
    fp16: bool = False,
    providers: list | None = None,
    count_cost: bool = True,
) -> PolicyRuntime:
    """Build a runtime from a checkpoint (``.safetensors``) or an exported artefact.

    ``count_cost`` (torch backend): report each step's cost in ``last_cost``.
    ``backend="auto"``: see :func:`resolve_backend`.
    """
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"backend must be one of {(*BACKENDS, 'auto')}, got {backend!r}")
    path = require_policy_file(path)
    backend = resolve_backend(path, backend)
    is_checkpoint = path.suffix == ".safetensors"
    if backend == "onnxruntime":
        if is_checkpoint:
            from hybrid_snn_control.deploy.export import build_graph, onnx_bytes

            graph, meta = build_graph(path, fp16=fp16, device="cpu")
            model = onnx_bytes(graph, exporter="torchscript")
            session = ort_session(model, threads, device, providers)
        elif path.suffix == ".onnx":
            try:
                session = ort_session(path, threads, device, providers)
                meta = session_metadata(session, path)
            except Exception as exc:  # noqa: BLE001 - ORT raises its own types (InvalidProtobuf …)
                raise _load_failed(path, exc) from None
        else:
            raise ValueError(f"backend onnxruntime needs a .onnx or .safetensors file, got {path}")
        return OnnxRuntimeRuntime(session, meta, batch_size, spiking_ratio)

    import torch

    _check_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if backend == "torch":
        if not is_checkpoint:
            raise ValueError(f"backend torch needs a .safetensors checkpoint, got {path}")
        from hybrid_snn_control.policy.bundle import load_policy

        policy, meta = load_policy(path, map_location=device)
        if fp16:
            policy = policy.half()
        meta = {**meta, "dtype": "float16" if fp16 else "float32"}
        return TorchRuntime(policy, meta, batch_size, spiking_ratio, device, count_cost)
    if is_checkpoint:
        from hybrid_snn_control.deploy.export import build_graph, trace_torchscript

        graph, meta = build_graph(path, fp16=fp16, device=device)
        module = trace_torchscript(graph)
    elif path.suffix in TORCHSCRIPT_SUFFIXES:
        extra = {f"{META_KEY}.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit
                module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
            meta = json.loads(extra[f"{META_KEY}.json"])
        except Exception as exc:  # noqa: BLE001 - a zip/pickle RuntimeError, a bad JSON …
            raise _load_failed(path, exc) from None
    else:
        raise ValueError(
            f"backend torchscript needs one of {TORCHSCRIPT_SUFFIXES} or .safetensors, got {path}"
        )
    return TorchScriptRuntime(module, meta, batch_size, spiking_ratio, device)

r"""NIR export of the parts of a hybrid network that NIR's primitives express.

NIR (Neuromorphic Intermediate Representation, ``nir`` package) describes networks with
continuous-time neurons; simulators and chips (Norse, snnTorch, Lava/Loihi, SpiNNaker,
Xylo, ...) discretize them again. Our LIF is already discrete (DESIGN §3):

.. math::
    u_t = \lambda\, u_{t-1}(1 - o_{t-1}) + W x_t + b, \qquad o_t = H(u_t - \theta)

NIR's LIF is :math:`\tau \dot v = (v_{leak} - v) + R\,I`, spike when :math:`v > v_{thr}`,
then :math:`v \leftarrow v_{reset}`. Its forward-Euler step of length :math:`\Delta t`
(the convention the snnTorch and Norse NIR bridges use) is

.. math::
    v_t = (1 - \tfrac{\Delta t}{\tau})\, v_{t-1} + \tfrac{\Delta t}{\tau} R\, I_t
          + \tfrac{\Delta t}{\tau} v_{leak}

so matching coefficients gives

.. math::
    \tau = \frac{\Delta t}{1 - \lambda}, \quad R = \frac{\tau}{\Delta t} = \frac{1}{1 - \lambda},
    \quad v_{leak} = 0, \quad v_{thr} = \theta, \quad v_{reset} = 0

with :math:`I_t = W x_t + b` as an ``Affine`` node before the neuron, and the hard reset
:math:`u(1 - o)` = reset to 0 (both use the strict :math:`v > \theta`). λ = 1 (no leak)
maps to NIR ``IF`` with :math:`R = 1/\Delta t`. (An exact-exponential reader would use
:math:`\tau = -\Delta t / \ln\lambda` instead; the Euler form is the one the bridges
invert, so ``λ = 1 - Δt/τ`` comes back exactly.)
The spike-rate trace :math:`r_t = \kappa r_{t-1} + (1 - \kappa) o_t` is NIR ``LI`` with
:math:`\tau = \Delta t / (1 - \kappa)`, :math:`R = 1`, :math:`v_{leak} = 0`; the readout
is an ``Affine``.

The spiking conv encoder (``encoder: spiking_conv``, no event floor) is exported in front
of the core: a ``Threshold`` at 0.5 (event counts are whole numbers: > 0.5 is the encoder's
"at least one event"), then per layer a ``Conv2d`` (3 × 3, stride 2, no bias) into a ``LIF``
over the whole ``C × H × W`` map (same mapping as the core's), then a ``Flatten``.  Its
average pooling and the core's layer-0 weights on the pooled features are one linear map,
written as one ``Affine`` (``W_enc · P``); the normalized proprioception is a second
``Input`` whose ``Affine`` (``W_prop / σ``, bias ``−W_prop μ / σ``) feeds the same layer-0
neurons (NIR sums the edges into a node).

What NIR cannot express is reported, never approximated: recurrent units (LSTM, GRU,
RNN: gates and tanh/sigmoid), ALIF (adaptive threshold), STC (multiplicative autaptic
modulation), RF (complex resonators), LIF with subtractive reset, the dense conv encoder
(ReLU, log1p), the event floor (a per-frame quantile) and the tanh action head.
A hybrid layer's spiking units of layer :math:`l > 0` read the recurrent units of layer
:math:`l-1`, so at a ratio < 1 only layer 0's spiking population is a self-contained
spiking part; at ratio 1 (all units spiking) the whole core — LIF layers, rate trace and
readout — is exported. Only active units (by the stored ranking) are written; their
indices are in the node metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybrid_snn_control.hybrid.network import HybridNetwork
from hybrid_snn_control.hybrid.ratio import check_ratio, unit_counts
from hybrid_snn_control.policy.bundle import load_hybrid_policy

ENCODER_NOTE = (
    "encoder and event floor not exported (log1p + conv/ReLU, top-k: NIR has no ReLU, log or "
    "top-k); the graph input is the core input [encoder features, normalized proprio]"
)
#: the spiking conv encoder behind an event floor: the floor (a per-frame quantile) is not
#: expressible, so neither is what it feeds
SPIKING_ENCODER_NOTE = (
    "event floor and spiking conv encoder not exported (the floor subtracts a per-frame "
    "quantile: no NIR primitive); the graph input is the core input [pooled encoder spikes, "
    "normalized proprio]"
)
HEAD_NOTE = (
    "tanh action head not exported (no NIR primitive); the graph output is the pre-tanh readout"
)

__all__ = ["NIRExportError", "NIRReport", "export_nir", "export_nir_checkpoint", "lif_to_nir"]


class NIRExportError(ValueError):
    """Raised when (the requested part of) a network is not expressible in NIR."""

    def __init__(self, report: NIRReport) -> None:
        self.report = report
        super().__init__(report.summary())


@dataclass
class NIRReport:
    """Which parts went into the NIR graph and which did not (with the reason)."""

    ratio: float
    dt: float
    exported: list[str] = field(default_factory=list)
    not_exported: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # outside the core (encoder, head)

    @property
    def complete(self) -> bool:
        return not self.not_exported

    def summary(self) -> str:
        lines = [f"NIR export at spiking ratio {self.ratio:g}, dt {self.dt:g} s"]
        lines += [f"  exported:     {name}" for name in self.exported] or [
            "  exported:     nothing"
        ]
        lines += [f"  NOT exported: {name} — {why}" for name, why in self.not_exported]
        lines += [f"  note:         {note}" for note in self.notes]
        return "\n".join(lines)


def lif_to_nir(decay: np.ndarray, threshold: np.ndarray, dt: float):
    """NIR ``LIF`` (or ``IF`` when λ = 1 for every unit) for our discrete LIF (module doc)."""
    import nir

    decay = np.asarray(decay, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    if np.all(decay == 1.0):
        return nir.IF(r=np.full_like(decay, 1.0 / dt), v_threshold=threshold.copy())
    if np.any(decay >= 1.0) or np.any(decay < 0.0):
        raise ValueError("LIF decay must be in [0, 1) for every unit (or 1 for all: IF)")
    tau = dt / (1.0 - decay)
    return nir.LIF(
        tau=tau,
        r=tau / dt,
        v_leak=np.zeros_like(decay),
        v_threshold=threshold.copy(),
        v_reset=np.zeros_like(decay),
    )


def _lif_problem(cell, kind: str) -> str | None:
    if kind != "lif":
        why = {
            "alif": "ALIF adaptive threshold has no NIR primitive",
            "stc_lif": "STC multiplicative autaptic modulation has no NIR primitive",
            "stc_alif": "STC multiplicative autaptic modulation has no NIR primitive",
            "rf": "RF complex resonate-and-fire dynamics have no NIR primitive",
        }
        return why.get(kind, f"spiking cell {kind!r} has no NIR mapping")
    if cell.subtract_reset:
        return "LIF with subtractive reset: NIR LIF resets to v_reset"
    decay = cell.effective_decay().detach().cpu().numpy()
    if np.any(decay >= 1.0) and not np.all(decay >= 1.0):
        return "LIF with some (not all) decays = 1: mixes LIF and IF units"
    return None


def export_nir(
    model, ratio: float | None = None, dt: float = 1e-3, strict: bool = True
) -> tuple[object | None, NIRReport]:
    """NIR graph of a :class:`HybridPolicy` or :class:`HybridNetwork` at spiking ratio ``r``.

    Returns ``(graph, report)``; ``graph`` is None when nothing is expressible. With
    ``strict`` (default) any part left out raises :class:`NIRExportError` carrying the report.
    """
    import nir

    net: HybridNetwork = model.core if hasattr(model, "core") else model
    if not isinstance(net, HybridNetwork):
        raise TypeError(f"need a HybridPolicy or HybridNetwork, got {type(model).__name__}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    if ratio is None:
        ratio = net.spiking_ratio if net.spiking_ratio is not None else 1.0
    ratio = check_ratio(ratio)
    report = NIRReport(ratio, dt)
    with_encoder = hasattr(model, "core") and model.stateful_encoder and model.floor.mode == "none"
    if hasattr(model, "core"):
        if not with_encoder:
            report.notes.append(SPIKING_ENCODER_NOTE if model.stateful_encoder else ENCODER_NOTE)
        report.notes.append(HEAD_NOTE)
    n = net.hidden_size
    n_s, n_r = unit_counts(ratio, n)
    nodes: dict[str, object] = {"input": nir.Input({"input": np.array([net.input_size])})}
    edges: list[tuple[str, str]] = []
    prev, prev_cols = "input", np.arange(net.input_size)
    encoder = None
    if with_encoder:
        del nodes["input"]
        encoder = _encoder_nodes(model, dt, nodes, edges)
        prev = encoder.output
    complete_chain = True
    for i, layer in enumerate(net.layers):
        active_s = np.sort(np.nonzero(layer.spiking_rank.cpu().numpy() < n_s)[0])
        if n_r > 0:
            report.not_exported.append(
                (
                    f"layer{i}.recurrent",
                    f"{n_r} {net.recurrent_cell.upper()} units: gated "
                    "non-spiking recurrence has no NIR primitive",
                )
            )
        problem = _lif_problem(layer.spiking, net.spiking_cell)
        if not complete_chain or problem or n_s == 0:
            why = problem or (
                "no active spiking units at this ratio"
                if n_s == 0
                else f"reads layer{i - 1}'s recurrent (or unexported) units"
            )
            report.not_exported.append((f"layer{i}.spiking", why))
            complete_chain = False
            continue
        cell = layer.spiking
        w = cell.fc.weight.detach().cpu().double().numpy()[active_s][:, prev_cols]
        b = cell.fc.bias
        b = np.zeros(len(active_s)) if b is None else b.detach().cpu().double().numpy()[active_s]
        units = {"units": active_s.tolist()}
        if i == 0 and encoder is not None:  # events and proprio in, summed at the LIF
            w, b = encoder.attach(w, b, nodes, edges, dict(units))
        nodes[f"layer{i}.spiking.fc"] = nir.Affine(w, b, metadata=dict(units))
        decay = cell.effective_decay().detach().cpu().double().numpy()[active_s]
        theta = cell.threshold.detach().cpu().double().numpy()[active_s]
        neuron = lif_to_nir(decay, theta, dt)
        neuron.metadata.update(units)
        nodes[f"layer{i}.spiking.lif"] = neuron
        edges += [(prev, f"layer{i}.spiking.fc"), (f"layer{i}.spiking.fc", f"layer{i}.spiking.lif")]
        report.exported.append(
            f"layer{i}.spiking ({len(active_s)} LIF units: Affine -> {type(neuron).__name__})"
        )
        prev, prev_cols = f"layer{i}.spiking.lif", active_s
        if n_r > 0:  # the next layer reads this layer's recurrent units too
            complete_chain = False
    if complete_chain and n_r == 0:
        kappa = np.full(len(prev_cols), net.rate_decay)
        nodes["trace"] = nir.LI(
            tau=dt / (1.0 - kappa),
            r=np.ones_like(kappa),
            v_leak=np.zeros_like(kappa),
            metadata={"units": prev_cols.tolist()},
        )
        edges.append((prev, "trace"))
        prev = "trace"
        report.exported.append(f"trace (LI, kappa={net.rate_decay:g})")
        if net.readout is not None:
            w = net.readout.weight.detach().cpu().double().numpy()[:, prev_cols]
            b = net.readout.bias.detach().cpu().double().numpy()
            nodes["readout"] = nir.Affine(w, b)
            edges.append(("trace", "readout"))
            prev = "readout"
            report.exported.append(f"readout (Affine {len(prev_cols)} -> {w.shape[0]})")
    else:
        report.not_exported.append(
            ("trace + readout", "read the last layer's recurrent or unexported units")
        )
    if encoder is not None:
        if "layer0.spiking.fc" in nodes:
            report.exported.insert(0, encoder.summary)
        else:  # nothing of the core to feed: the encoder goes too
            for name in encoder.names:
                nodes.pop(name)
            edges = [e for e in edges if e[0] in nodes and e[1] in nodes]
            report.not_exported.insert(0, ("encoder", "feeds no unit NIR expresses"))
    if not report.exported:
        raise NIRExportError(report)
    if strict and not report.complete:
        raise NIRExportError(report)
    out_size = nodes[prev].output_type["output"] if prev != "input" else [net.input_size]
    nodes["output"] = nir.Output({"output": np.array(out_size)})
    edges.append((prev, "output"))
    meta = {
        "producer": "hybrid_snn_control",
        "spiking_ratio": ratio,
        "dt_s": dt,
        "discretization": "forward Euler: lambda = 1 - dt/tau, R = 1/(1 - lambda)",
        "exported": "; ".join(report.exported),
        "not_exported": "; ".join(f"{a}: {b}" for a, b in report.not_exported),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta), report


@dataclass
class _Encoder:
    """The spiking conv encoder's nodes and how layer 0 attaches to them."""

    output: str  # the flattened last LIF map
    names: list[str]
    summary: str
    pool: np.ndarray  # [features, C·H·W]: the average pooling as a matrix
    n_features: int
    proprio_mean: np.ndarray
    proprio_std: np.ndarray

    def attach(self, w: np.ndarray, b: np.ndarray, nodes: dict, edges: list, units: dict):
        """Split layer 0's ``[W_enc | W_prop]`` into the events Affine (returned, pooling
        folded in) and a proprio Affine (normalization folded in) added to ``nodes``."""
        import nir

        w_enc, w_prop = w[:, : self.n_features], w[:, self.n_features :]
        w_prop = w_prop / self.proprio_std
        nodes["layer0.spiking.fc_proprio"] = nir.Affine(
            w_prop, -w_prop @ self.proprio_mean, metadata=units
        )
        edges += [("proprio", "layer0.spiking.fc_proprio")]
        edges += [("layer0.spiking.fc_proprio", "layer0.spiking.lif")]
        self.names.append("layer0.spiking.fc_proprio")
        return w_enc @ self.pool, b


def _encoder_nodes(policy, dt: float, nodes: dict, edges: list) -> _Encoder:
    """Add the spiking conv encoder's nodes (module docstring) from the ``events`` input."""
    import nir
    import torch

    enc = policy.encoder
    c, h, w = (int(v) for v in policy.cfg.event_shape)
    names = ["events", "proprio", "encoder.binarize"]
    nodes["events"] = nir.Input({"input": np.array([c, h, w])})
    nodes["proprio"] = nir.Input({"input": np.array([policy.cfg.proprio_size])})
    nodes["encoder.binarize"] = nir.Threshold(np.full((c, h, w), 0.5))
    edges.append(("events", "encoder.binarize"))
    prev = "encoder.binarize"
    decay, theta = float(enc.decay), float(enc.threshold)
    for i, (conv, (oc, oh, ow)) in enumerate(zip(enc.convs, enc.maps)):
        weight = conv.weight.detach().cpu().double().numpy()
        nodes[f"encoder.conv{i}"] = nir.Conv2d(
            input_shape=(h, w),
            weight=weight,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=np.zeros(weight.shape[0]),
        )
        nodes[f"encoder.lif{i}"] = lif_to_nir(
            np.full((oc, oh, ow), decay), np.full((oc, oh, ow), theta), dt
        )
        edges += [(prev, f"encoder.conv{i}"), (f"encoder.conv{i}", f"encoder.lif{i}")]
        names += [f"encoder.conv{i}", f"encoder.lif{i}"]
        prev, h, w = f"encoder.lif{i}", oh, ow
    oc = enc.maps[-1][0]
    nodes["encoder.flatten"] = nir.Flatten({"input": np.array([oc, h, w])}, start_dim=0)
    edges.append((prev, "encoder.flatten"))
    names.append("encoder.flatten")
    # the encoder's own pooling module applied to unit impulses: its matrix, whichever
    # module it is (AvgPool2d or AdaptivePoolMatmul)
    dtype = next(enc.pool.buffers(), enc.convs[0].weight).dtype
    impulses = torch.eye(h * w, dtype=dtype).reshape(h * w, 1, h, w)
    with torch.no_grad():
        per_map = enc.pool(impulses).reshape(h * w, -1).T.double().numpy()
    g = round(per_map.shape[0] ** 0.5)
    pool = np.kron(np.eye(oc), per_map)
    layers = " -> ".join(f"Conv2d -> LIF {m[0]}x{m[1]}x{m[2]}" for m in enc.maps)
    summary = (
        f"encoder (events {'x'.join(map(str, policy.cfg.event_shape))}: Threshold 0.5 -> "
        f"{layers} -> Flatten; its {g}x{g} average pooling folded into layer 0's Affine)"
    )
    return _Encoder(
        output="encoder.flatten",
        names=names,
        summary=summary,
        pool=pool,
        n_features=enc.out_features,
        proprio_mean=policy.proprio_mean.detach().cpu().double().numpy(),
        proprio_std=policy.proprio_std.detach().cpu().double().numpy(),
    )


def export_nir_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    ratio: float | None = None,
    dt: float = 1e-3,
    strict: bool = False,
) -> NIRReport:
    """Load a policy checkpoint, export what NIR expresses, write it; return the report."""
    import nir

    policy, _ = load_hybrid_policy(checkpoint)
    graph, report = export_nir(policy, ratio, dt, strict=strict)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(out), graph)
    return report

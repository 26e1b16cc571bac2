"""The cost of one step of an exported graph, from the spike counts the graph outputs.

The eager torch backend counts each step's MACs and synaptic operations from the activity
of the step it ran (:func:`hybrid_snn_control.hybrid.efficiency.count_efficiency`).  An
exported step graph (ONNX Runtime, TorchScript) outputs only ``spike_count [B, L]``; the
rest of the count depends on the ratio alone, so it is fixed per ratio and computed here in
plain numpy (no torch: the ONNX Runtime path runs without it).  The static part is taken
from the artefact metadata's ``cost_model`` (written at export), so a graph reports the
same :class:`StepCost` as the eager step it was exported from without a second pass of
Python over the network.

Per sample and step (the conventions of ``hybrid/efficiency.py``), layer ``l`` with
``n_s`` spiking and ``n_r`` recurrent active units, ``G`` gate rows per recurrent unit and
``q`` weight rows per spiking unit:

* ``fan_out = q·n_s + G·n_r``; layer 0's dense input adds ``input_size · fan_out`` MACs;
* a layer above adds ``n_r(below) · fan_out`` MACs and ``spikes(below) · fan_out`` ACs;
* every layer adds ``G·n_r²`` recurrent MACs; the readout ``readout_size · (n_s + n_r)``;
* the encoder's MACs are a constant; a spiking encoder's SynOps vary with the events and
  arrive as one more ``spike_count`` column (``encoder_synops_column``, in thousands:
  :data:`ENCODER_SYNOPS_UNIT`, so an fp16 graph holds it), added to the ACs;
  energy ``MACs · mac_pj + ACs · ac_pj``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid_snn_control.hybrid.ratio import unit_counts

__all__ = ["ENCODER_SYNOPS_UNIT", "GraphCostModel", "StepCost"]


@dataclass
class StepCost:
    """Cost of one control step at the ratio it ran with (DESIGN §9, 45 nm constants)."""

    synops: float
    macs: float
    energy_pj: float
    firing_rate: list[float] = field(default_factory=list)  # per layer


#: the encoder SynOps column of ``spike_count`` counts in this unit (fp16's max is 65504)
ENCODER_SYNOPS_UNIT = 1000.0


@dataclass(frozen=True)
class GraphCostModel:
    """The ratio-only part of the per-step count of a hybrid policy (see module doc)."""

    hidden_size: int
    num_layers: int
    input_size: int
    gates: int
    spiking_rows: int
    readout_size: int
    encoder_macs: float
    mac_energy_pj: float
    ac_energy_pj: float
    #: a spiking encoder: ``spike_count`` has one more column, the encoder's SynOps
    encoder_synops_column: bool = False

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> GraphCostModel | None:
        """The model stored in an artefact's metadata (None: exported before it existed)."""
        m = meta.get("cost_model")
        if not m:
            return None
        return cls(**{k: m[k] for k in cls.__dataclass_fields__ if k in m})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def at_ratio(self, ratio: float) -> RatioCost:
        """Everything but the spikes, for one ratio (compute once per ratio change)."""
        n_s, n_r = unit_counts(ratio, self.hidden_size)
        fan_out = float(self.spiking_rows * n_s + self.gates * n_r)
        macs = self.encoder_macs + self.input_size * fan_out
        macs += (self.num_layers - 1) * n_r * fan_out  # dense recurrent outputs, layers > 0
        macs += self.num_layers * self.gates * n_r * n_r
        macs += self.readout_size * (n_s + n_r)
        return RatioCost(self, n_s, fan_out, macs)


@dataclass(frozen=True)
class RatioCost:
    """:class:`GraphCostModel` at one ratio: a step's cost is then one dot product."""

    model: GraphCostModel
    n_spiking: int
    fan_out: float
    macs: float

    def step(self, spike_count: np.ndarray) -> StepCost:
        """The cost of a step whose graph output ``spike_count [B, L]`` (mean over B)."""
        m = self.model
        columns = m.num_layers + int(m.encoder_synops_column)
        spikes = np.asarray(spike_count).reshape(-1, columns)
        # batch 1 (a robot) in plain floats: this runs on every control step
        per_layer = (
            spikes[0] if len(spikes) == 1 else spikes.mean(axis=0, dtype=np.float64)
        ).tolist()
        encoder_acs = per_layer.pop() * ENCODER_SYNOPS_UNIT if m.encoder_synops_column else 0.0
        acs = float(sum(per_layer[:-1])) * self.fan_out  # spikes feed the layer above
        acs += encoder_acs
        n_s = self.n_spiking
        return StepCost(
            synops=acs,
            macs=self.macs,
            energy_pj=self.macs * m.mac_energy_pj + acs * m.ac_energy_pj,
            firing_rate=[float(r) / n_s if n_s else 0.0 for r in per_layer],
        )

r"""Efficiency accounting from the real activity of a run (SNN-paper conventions).

Per inference step and sample, for layer l with ``n_s`` active spiking and ``n_r`` active
recurrent units (``G`` gate rows per recurrent unit: LSTM 4, GRU 3, RNN 1; ``q`` weight
rows per spiking unit: 1, RF 2 for Re/Im B):

* a **dense** (real-valued) input feeds every active unit's weights by multiply-accumulate:
  ``MACs += d_in · (q·n_s + G·n_r)``; recurrent units add ``G·n_r·n_r`` MACs
  (recurrent→recurrent);
* a **spike** only triggers accumulates: ``SynOps (ACs) += spikes · fan-out`` with
  ``fan-out = q·n_s + G·n_r`` of the next layer (STC adds ``2·n_s`` per own previous spike
  for its two modulating pathways);
* the readout reads the rate trace and recurrent state densely:
  ``MACs += readout_size · (n_s + n_r)`` of the last layer.

Layer 0's input counts as dense, except its exact zeros are skipped when
``input_is_spikes=True`` (event input: each non-zero is one event × fan-out ACs).
Elementwise neuron updates (leak, gates' nonlinearities) are not counted, as in the SNN
literature. Energy: ``MACs · 4.6 pJ + ACs · 0.9 pJ`` (45 nm, Horowitz 2014; overridable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from hybrid_snn_control.hybrid.network import HybridActivity, HybridNetwork, HybridState

MAC_ENERGY_PJ = 4.6
AC_ENERGY_PJ = 0.9
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class EfficiencyReport:
    """Per-step, per-sample averages over a run (``*_per_step``) and per-layer detail."""

    steps: int
    batch_size: int
    spiking_ratio: float | None
    macs_per_step: float
    synops_per_step: float
    energy_pj_per_step: float
    firing_rate: list[float] = field(default_factory=list)  # spikes / (active unit · step)
    spikes_per_step: list[float] = field(default_factory=list)
    active_spiking: list[int] = field(default_factory=list)
    active_recurrent: list[int] = field(default_factory=list)
    mac_energy_pj: float = MAC_ENERGY_PJ
    ac_energy_pj: float = AC_ENERGY_PJ

    def as_dict(self) -> dict:
        return asdict(self)


def spiking_rows(net: HybridNetwork) -> int:
    """Weight rows per spiking unit: 2 for RF (Re/Im), else 1."""
    return 2 if net.spiking_cell == "rf" else 1


def count_efficiency(
    net: HybridNetwork,
    activity: HybridActivity,
    input_is_spikes: bool = False,
    mac_energy_pj: float = MAC_ENERGY_PJ,
    ac_energy_pj: float = AC_ENERGY_PJ,
) -> EfficiencyReport:
    """Turn a recorded :class:`HybridActivity` into counts (see module docstring)."""
    T, B = activity.input_nonzero.shape
    G = GATES[net.recurrent_cell]
    q = spiking_rows(net)
    stc = net.spiking_cell.startswith("stc")
    macs = 0.0
    acs = 0.0
    rates, spikes_per_step, n_sp, n_rec = [], [], [], []
    for i in range(net.num_layers):
        n_s = int(activity.masks[2 * i].sum())
        n_r = int(activity.masks[2 * i + 1].sum())
        fan_out = q * n_s + G * n_r
        if i == 0:
            if input_is_spikes:
                acs += float(activity.input_nonzero.sum()) / (T * B) * fan_out
            else:
                macs += net.input_size * fan_out
        else:
            macs += n_rec[-1] * fan_out  # dense recurrent outputs of the layer below
            acs += spikes_per_step[-1] * fan_out  # spikes of the layer below
        macs += G * n_r * n_r  # recurrent -> recurrent
        spikes = activity.spikes[i]
        total = float(spikes.sum())
        per_step = total / (T * B)
        if stc and T > 1:  # own spikes of steps 0..T-2 drive W_h, W_v at the next step
            acs += float(spikes[:-1].sum()) / (T * B) * 2 * n_s
        rates.append(total / (T * B * n_s) if n_s else 0.0)
        spikes_per_step.append(per_step)
        n_sp.append(n_s)
        n_rec.append(n_r)
    if net.readout is not None:
        macs += net.readout.out_features * (n_sp[-1] + n_rec[-1])
    return EfficiencyReport(
        steps=T,
        batch_size=B,
        spiking_ratio=net.spiking_ratio,
        macs_per_step=macs,
        synops_per_step=acs,
        energy_pj_per_step=macs * mac_energy_pj + acs * ac_energy_pj,
        firing_rate=rates,
        spikes_per_step=spikes_per_step,
        active_spiking=n_sp,
        active_recurrent=n_rec,
        mac_energy_pj=mac_energy_pj,
        ac_energy_pj=ac_energy_pj,
    )


@torch.no_grad()
def measure_efficiency(
    net: HybridNetwork,
    x_seq: Tensor,
    state: HybridState | None = None,
    masks=None,
    input_is_spikes: bool = False,
    mac_energy_pj: float = MAC_ENERGY_PJ,
    ac_energy_pj: float = AC_ENERGY_PJ,
) -> EfficiencyReport:
    """Run ``net`` on ``x_seq [T, B, in]`` at its current ratio (or ``masks``) and count."""
    _, _, activity = net.forward_with_activity(x_seq, state, masks)
    report = count_efficiency(net, activity, input_is_spikes, mac_energy_pj, ac_energy_pj)
    if masks is not None:
        report.spiking_ratio = None
    return report

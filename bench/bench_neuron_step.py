"""Step latency, batch 1, one thread: HybridNetwork vs an LSTMCell / GRUCell network of the
same width vs snnTorch's LIF network stepped in a loop.

    .venv/bin/python bench/bench_neuron_step.py [--hidden 128] [--ratio 0.5] [--json out.json]

All contenders run in the same process, interleaved (round-robin repeats, medians), in
eval mode under ``torch.inference_mode()``. Widths: the hybrid network has ``hidden``
spiking + ``hidden`` recurrent candidates per layer (``hidden`` active at any ratio); the
references have ``hidden`` units per layer. Targets (issues 3, 17): the ratio-switchable
step (``SwitchableHybridStep``: compact weights regathered and frozen at ``set_ratio``)
<= 1.0x LSTMCell net, <= 0.3x snnTorch; its ``set_ratio`` times (first visit of a ratio,
and a return to one already visited, state remapped) are printed too. The machine is
shared: timings are noisy, compare ratios of one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.compact import CompactHybridStep
from hybrid_snn_control.hybrid.switchable import SwitchableHybridStep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _neuron_timing import interleaved_medians, machine_info, print_table, write_json


class CellNet(nn.Module):
    """Stacked torch LSTMCell / GRUCell with explicit state, like a deployed policy."""

    def __init__(self, kind: str, input_size: int, hidden: int, layers: int) -> None:
        super().__init__()
        cls = nn.LSTMCell if kind == "lstm" else nn.GRUCell
        self.kind = kind
        self.cells = nn.ModuleList(
            cls(input_size if i == 0 else hidden, hidden) for i in range(layers)
        )

    def forward(self, x, state):
        new = []
        for i, cell in enumerate(self.cells):
            if self.kind == "lstm":
                h, c = cell(x, (state[2 * i], state[2 * i + 1]))
                new += [h, c]
            else:
                h = cell(x, state[i])
                new.append(h)
            x = h
        return x, new


class SnnTorchNet(nn.Module):
    """Linear + snntorch.Leaky per layer (the equivalent LIF network, reset to zero)."""

    def __init__(self, input_size: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(
            nn.Linear(input_size if i == 0 else hidden, hidden) for i in range(layers)
        )
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=0.6, threshold=0.6, reset_mechanism="zero") for _ in range(layers)
        )

    def forward(self, x, mems):
        new = []
        for fc, lif, mem in zip(self.fcs, self.lifs, mems):
            x, mem = lif(fc(x), mem)
            new.append(mem)
        return x, new


def time_switches(step: SwitchableHybridStep, ratio: float, n: int = 20) -> dict[str, float]:
    """Median ms of a ratio switch (state remapped), ending at ``ratio``: ``first`` visits of
    an active-unit set (gather + freeze, each ratio of a fresh step in turn) and ``cached``
    returns to one (0.25 <-> ``ratio`` once both are frozen)."""
    first = []
    for _ in range(3):
        fresh = SwitchableHybridStep(step.net)
        state = fresh.initial_state(1)
        for r in (0.0, 0.25, 0.75, 1.0, ratio):
            t0 = time.perf_counter()
            state = fresh.set_ratio(r, state)
            first.append(time.perf_counter() - t0)
    state = step.initial_state(1)
    cached = []
    for k in range(2 * n):
        t0 = time.perf_counter()
        state = step.set_ratio(0.25 if k % 2 == 0 else ratio, state)
        cached.append(time.perf_counter() - t0)
    return {
        "first_ms": 1e3 * sorted(first)[len(first) // 2],
        "cached_ms": 1e3 * sorted(cached[2:])[len(cached[2:]) // 2],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--spiking-cell", default="lif")
    p.add_argument("--calls", type=int, default=500, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also time the scripted compact step at r = 0, 0.25, 0.75, 1",
    )
    p.add_argument("--json", default=None, help="write results to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    hybrid = HybridNetwork(
        args.input, args.hidden, args.layers, args.spiking_cell, "lstm", spiking_ratio=args.ratio
    ).eval()
    hybrid_gru = HybridNetwork(
        args.input, args.hidden, args.layers, args.spiking_cell, "gru", spiking_ratio=args.ratio
    ).eval()
    lstm = CellNet("lstm", args.input, args.hidden, args.layers).eval()
    gru = CellNet("gru", args.input, args.hidden, args.layers).eval()
    snet = SnnTorchNet(args.input, args.hidden, args.layers).eval()
    x = torch.randn(1, args.input)
    zeros = [torch.zeros(1, args.hidden) for _ in range(2 * args.layers)]

    compact = CompactHybridStep(hybrid).eval()
    scripted = CompactHybridStep(hybrid).eval().scripted()
    switch_net = HybridNetwork(
        args.input, args.hidden, args.layers, args.spiking_cell, "lstm", spiking_ratio=args.ratio
    ).eval()
    switch_net.load_state_dict(hybrid.state_dict())
    switchable = SwitchableHybridStep(switch_net)
    switch_ms = time_switches(switchable, args.ratio)
    state = {
        "switchable": switchable.initial_state(1),
        "hybrid": hybrid.initial_state(1),
        "hybrid_gru": hybrid_gru.initial_state(1),
        "compact": compact.initial_state(1),
        "scripted": compact.initial_state(1),
        "lstm": zeros,
        "gru": zeros[: args.layers],
        "snn": zeros[: args.layers],
    }

    def run(key, model):
        def fn():
            if key.startswith("hybrid") or key == "switchable":
                state[key] = model.step(x, state[key])[1]
            else:
                state[key] = model(x, state[key])[1]

        return fn

    sweep = {}
    if args.sweep:
        for r in (0.0, 0.25, 0.75, 1.0):
            net_r = HybridNetwork(
                args.input, args.hidden, args.layers, args.spiking_cell, "lstm", spiking_ratio=r
            ).eval()
            net_r.load_state_dict(hybrid.state_dict())
            net_r.set_ratio(r)
            module = CompactHybridStep(net_r).scripted()
            state[f"sweep{r}"] = CompactHybridStep(net_r).initial_state(1)
            sweep[f"compact+jit lif+lstm r={r}"] = run(f"sweep{r}", module)
    contenders = {
        f"switchable {args.spiking_cell}+lstm r={args.ratio}": run("switchable", switchable),
        f"hybrid {args.spiking_cell}+lstm r={args.ratio}": run("hybrid", hybrid),
        f"hybrid {args.spiking_cell}+gru r={args.ratio}": run("hybrid_gru", hybrid_gru),
        f"compact {args.spiking_cell}+lstm r={args.ratio}": run("compact", compact),
        f"compact+jit {args.spiking_cell}+lstm": run("scripted", scripted),
        **sweep,
        "torch LSTMCell net": run("lstm", lstm),
        "torch GRUCell net": run("gru", gru),
        "snnTorch Leaky net": run("snn", snet),
    }
    with torch.inference_mode():
        times = interleaved_medians(contenders, args.calls, args.repeats)
    ref_lstm = times["torch LSTMCell net"]["median_s"]
    ref_gru = times["torch GRUCell net"]["median_s"]
    ref_snn = times["snnTorch Leaky net"]["median_s"]
    cpu_lstm = times["torch LSTMCell net"]["cpu_median_s"]
    cpu_snn = times["snnTorch Leaky net"]["cpu_median_s"]
    rows = []
    for name, t in times.items():
        rows.append(
            {
                "name": name,
                "us": t["median_s"] * 1e6,
                "min_us": t["min_s"] * 1e6,
                "vs_lstm": t["median_s"] / ref_lstm,
                "vs_gru": t["median_s"] / ref_gru,
                "vs_snntorch": t["median_s"] / ref_snn,
                "cpu_us": t["cpu_median_s"] * 1e6,
                "cpu_vs_lstm": t["cpu_median_s"] / cpu_lstm,
                "cpu_vs_snntorch": t["cpu_median_s"] / cpu_snn,
            }
        )
    print(
        f"step latency, batch 1, {args.threads} thread(s), {args.layers}x{args.hidden}, "
        f"input {args.input} ({args.repeats} interleaved repeats x {args.calls} steps)"
    )
    print_table(
        rows,
        [
            ("name", "contender", ""),
            ("us", "median us", ".1f"),
            ("min_us", "min us", ".1f"),
            ("vs_lstm", "x LSTMCell", ".2f"),
            ("vs_gru", "x GRUCell", ".2f"),
            ("vs_snntorch", "x snnTorch", ".2f"),
            ("cpu_us", "CPU us", ".1f"),
            ("cpu_vs_lstm", "CPU x LSTMCell", ".2f"),
            ("cpu_vs_snntorch", "CPU x snnTorch", ".2f"),
        ],
    )
    for row in rows[:5]:
        ok_lstm, ok_snn = row["vs_lstm"] <= 1.0, row["vs_snntorch"] <= 0.3
        print(
            f"{row['name']}: target <= 1.0x LSTMCell net: {row['vs_lstm']:.2f}x wall, "
            f"{row['cpu_vs_lstm']:.2f}x CPU ({'met' if ok_lstm else 'MISSED'}); "
            f"<= 0.3x snnTorch: {row['vs_snntorch']:.2f}x wall, {row['cpu_vs_snntorch']:.2f}x "
            f"CPU ({'met' if ok_snn else 'MISSED'})"
        )
    print(
        f"switchable set_ratio, state remapped: first visit of a ratio (gather + freeze) median "
        f"{switch_ms['first_ms']:.2f} ms; return to a visited one ({args.ratio} <-> 0.25) "
        f"{switch_ms['cached_ms']:.2f} ms"
    )
    write_json(
        args.json,
        {"benchmark": "neuron_step", "args": vars(args), "machine": machine_info(), "rows": rows,
         **{f"switch_{k}": v for k, v in switch_ms.items()}},
    )  # fmt: skip


if __name__ == "__main__":
    main()

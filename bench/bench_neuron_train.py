"""Training throughput (forward + backward) of our neuron layers vs snnTorch and torch LSTM.

    .venv/bin/python bench/bench_neuron_train.py [--batch 32] [--steps 100] [--json out.json]

One layer of 256 units reading a 256-d input, B = 32, T = 100, loss = sum of outputs,
single thread by default. Contenders run interleaved in one process (medians over
repeats). "fused BPTT" runs the compiled (numba) loops of ``neurons/fused_compiled.py``
where numba imports; "TorchScript BPTT" is the same layer on the kernels it replaced.
"hybrid" is one HybridLayer-network with 128 spiking + 128 LSTM candidates (256 units),
ratio 0.5 (64 + 64 active): "masked" is the masked path (all candidates
computed, then masked; ``compact_training=False``), "compact" is
:func:`~hybrid_snn_control.hybrid.compact_sequence.compact_forward` (what ``net(x)`` runs
in training mode since issue 17)
on the same network (only the active units; same numbers). snnTorch: ``Linear`` +
``snn.Leaky`` stepped in a Python loop (its documented usage). Norse is not included:
``pip install --no-deps norse`` installs but does not import without ``nirtorch``.
Targets: spiking layers >= 3x snnTorch (issue 3), hybrid r = 0.5 >= 1.5x snnTorch.
The floor row (the input ``Linear`` alone, forward + weight gradient) is the part of every
layer's time the recursion cannot remove: it bounds the speed-up a fused kernel can reach.
Every contender runs in the process ``hsc train`` sets up: one thread, glibc's heap
trimming off (``training/allocator.py``; ``--default-malloc`` leaves it on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.compact_sequence import compact_forward
from hybrid_snn_control.neurons import fused_compiled, make_spiking_cell
from hybrid_snn_control.neurons.fused import unfused
from hybrid_snn_control.training.allocator import keep_freed_memory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _neuron_timing import interleaved_medians, machine_info, print_table, write_json

HYBRID_MASKED = "ours hybrid LIF+LSTM r=0.5 masked"
HYBRID_COMPACT = "ours hybrid LIF+LSTM r=0.5 compact"
#: the input matmul alone (forward + weight gradient), which every layer here pays
FLOOR = "floor: input Linear alone"
#: speed-up over snnTorch (wall-clock median) each row is held to
TARGETS = {
    "ours LIF (fused BPTT)": 3.0,
    "ours ALIF (fused BPTT)": 3.0,
    "ours STC-LIF": 3.0,
    "ours RF (parallel scan)": 3.0,
    HYBRID_MASKED: 1.5,
    HYBRID_COMPACT: 1.5,
}


class SnnTorchLayer(nn.Module):
    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_size, hidden)
        self.lif = snn.Leaky(beta=0.6, threshold=0.6, reset_mechanism="zero")

    def forward(self, x_seq):
        mem = torch.zeros(x_seq.shape[1], self.fc.out_features)
        out = []
        for t in range(x_seq.shape[0]):
            spk, mem = self.lif(self.fc(x_seq[t]), mem)
            out.append(spk)
        return torch.stack(out), mem


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--input", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's heap trimming on (hsc train turns it off: training/allocator.py)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kept = False if args.default_malloc else keep_freed_memory()  # as hsc train runs
    torch.manual_seed(0)
    x = torch.randn(args.steps, args.batch, args.input)
    n = args.units
    hybrid = HybridNetwork(args.input, n // 2, 1, "lif", "lstm")
    models = {
        "ours LIF (fused BPTT)": make_spiking_cell("lif", args.input, n),
        "ours ALIF (fused BPTT)": make_spiking_cell("alif", args.input, n),
        "ours STC-LIF": make_spiking_cell("stc_lif", args.input, n),
        "ours RF (parallel scan)": make_spiking_cell("rf", args.input, n),
        HYBRID_MASKED: hybrid,
        "snnTorch Leaky": SnnTorchLayer(args.input, n),
        "torch nn.LSTM": nn.LSTM(args.input, n),
    }
    for m in models.values():
        m.train()

    def train_step(model, fused=True, forward=None):
        def fn():
            model.zero_grad(set_to_none=True)
            if forward is not None:
                y, _ = forward(model, x)
            elif fused:
                y, _ = model(x)
            else:
                with unfused():
                    y, _ = model(x)
            y.sum().backward()

        return fn

    def masked_forward(model, x):
        """The masked path (every candidate computed): training mode would take the compact
        one, which is what ``net(x)`` runs since issue 17."""
        model.compact_training = False
        try:
            return model(x)
        finally:
            model.compact_training = True

    def torchscript_forward(model, x):
        """The fused kernels before the compiled loops (TorchScript, one dispatch per op)."""
        fused_compiled.set_compiled(False)
        try:
            return model(x)
        finally:
            fused_compiled.set_compiled(True)

    contenders = {name: train_step(m) for name, m in models.items()}
    for kind in ("LIF", "ALIF"):
        model = models[f"ours {kind} (fused BPTT)"]
        contenders[f"ours {kind} (TorchScript BPTT)"] = train_step(
            model, forward=torchscript_forward
        )
    contenders[HYBRID_MASKED] = train_step(hybrid, forward=masked_forward)
    contenders[HYBRID_COMPACT] = train_step(hybrid, forward=compact_forward)
    contenders["ours LIF (autograd loop)"] = train_step(models["ours LIF (fused BPTT)"], False)
    contenders[FLOOR] = train_step(nn.Linear(args.input, n), forward=lambda m, x: (m(x), None))
    times = interleaved_medians(contenders, calls=1, repeats=args.repeats, warmup=2)
    ref_snn = times["snnTorch Leaky"]["median_s"]
    ref_lstm = times["torch nn.LSTM"]["median_s"]
    samples = args.batch * args.steps
    cpu_snn = times["snnTorch Leaky"]["cpu_median_s"]
    rows = []
    for name, t in times.items():
        rows.append(
            {
                "name": name,
                "ms": t["median_s"] * 1e3,
                "min_ms": t["min_s"] * 1e3,
                "ksteps_s": samples / t["median_s"] / 1e3,
                "speedup_vs_snntorch": ref_snn / t["median_s"],
                "speedup_vs_lstm": ref_lstm / t["median_s"],
                "cpu_ms": t["cpu_median_s"] * 1e3,
                "cpu_speedup_vs_snntorch": cpu_snn / t["cpu_median_s"],
            }
        )
    print(
        f"training fwd+bwd, B={args.batch}, T={args.steps}, {n} units, input {args.input}, "
        f"{args.threads} thread(s), {args.repeats} interleaved repeats, "
        f"freed memory {'kept (as hsc train)' if kept else 'trimmed (glibc default)'}"
    )
    print_table(
        rows,
        [
            ("name", "contender", ""),
            ("ms", "median ms", ".1f"),
            ("min_ms", "min ms", ".1f"),
            ("ksteps_s", "k sample-steps/s", ".1f"),
            ("speedup_vs_snntorch", "x snnTorch", ".2f"),
            ("speedup_vs_lstm", "x nn.LSTM", ".2f"),
            ("cpu_ms", "CPU ms", ".1f"),
            ("cpu_speedup_vs_snntorch", "CPU x snnTorch", ".2f"),
        ],
    )
    for row in rows:
        target = TARGETS.get(row["name"])
        if target is None:
            continue
        ok = row["speedup_vs_snntorch"] >= target
        print(
            f"{row['name']}: target >= {target:g}x snnTorch: "
            f"{row['speedup_vs_snntorch']:.2f}x wall, "
            f"{row['cpu_speedup_vs_snntorch']:.2f}x CPU time ({'met' if ok else 'MISSED'})"
        )
    # what bounds the spiking layers: the matmul both they and snnTorch pay, and our
    # recursion on top of it (a free recursion would give snnTorch / floor at most)
    floor = times[FLOOR]["median_s"]
    for name in ("ours LIF (fused BPTT)", "ours ALIF (fused BPTT)"):
        t = times[name]["median_s"]
        print(
            f"{name}: input matmul {floor * 1e3:.1f} ms + recursion {(t - floor) * 1e3:.1f} ms; "
            f"with a free recursion at most {ref_snn / floor:.2f}x snnTorch"
        )
    masked, compact = times[HYBRID_MASKED], times[HYBRID_COMPACT]
    print(
        f"hybrid r=0.5 compact vs masked: {masked['median_s'] / compact['median_s']:.2f}x wall, "
        f"{masked['cpu_median_s'] / compact['cpu_median_s']:.2f}x CPU time"
    )
    write_json(
        args.json,
        {"benchmark": "neuron_train", "args": vars(args), "machine": machine_info(), "rows": rows},
    )


if __name__ == "__main__":
    main()

"""HRSNN step cost with and without online STDP, against a per-synapse loop reference.

* ``layer step``: one :meth:`HRSNN.step` (batch B) with ``plasticity`` off and on — what
  online adaptation costs a policy step.
* ``STDP update``: the vectorized synapse-list rule (:func:`stdp_step` + weight write) vs a
  per-synapse Python loop over the same synapses and spikes (the obvious reference); the
  reference's weights are checked to match ours to 1e-9 on the steps it timed.

Single thread (``torch.set_num_threads(1)``); each number is the median of ``--repeats``
runs; the machine is shared, so expect noise of tens of percent.

    .venv/bin/python bench/bench_hrsnn.py [--neurons 200] [--batch 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig
from hybrid_snn_control.neurons.stdp import apply_stdp_update, stdp_step


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference_stdp(weight, pre, post, x_pre, x_post, p, w_min, w_max):
    """Per-synapse loop over the same rule (batch 1): traces and weights updated in place."""
    for s in range(p.post_index.numel()):
        i, j = int(p.post_index[s]), int(p.pre_index[s])
        sp, so = float(pre[0, j]), float(post[0, i])
        x_pre[s] = float(p.decay_plus[s]) * x_pre[s] + sp
        x_hat = float(p.decay_minus[s]) * x_post[s]
        dw = float(p.eta_plus[s]) * so * x_pre[s] - float(p.eta_minus[s]) * sp * x_hat
        x_post[s] = x_hat + so
        weight[i, j] = min(max(weight[i, j] + dw, w_min), w_max)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=200)
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    layer = HRSNN(HRSNNConfig(input_size=args.inputs, num_neurons=args.neurons, input_scale=10.0))
    x = (torch.rand(args.batch, args.inputs) < 0.2).float()
    with torch.no_grad():
        _, state = layer(x.expand(20, -1, -1).contiguous())  # a warm, spiking state
    results = {}

    def run_step(plastic: bool):
        layer.plasticity = plastic
        with torch.no_grad():
            layer.step(x, state)

    results["step_plasticity_off_us"] = median_time(lambda: run_step(False), args.repeats) * 1e6
    results["step_plasticity_on_us"] = median_time(lambda: run_step(True), args.repeats) * 1e6
    layer.plasticity = False

    # STDP rule alone: vectorized vs per-synapse loop, batch 1, on a dense spike pattern.
    rule = layer.stdp_rec
    p = rule.parameters_tuple()
    pre = (torch.rand(1, args.neurons) < 0.3).double()
    post = (torch.rand(1, args.neurons) < 0.3).double()
    p64 = type(p)(*(t.double() if t.is_floating_point() else t for t in p))
    w_ours = layer.w_rec.detach().double().clone()
    w_ref = w_ours.clone()
    st = rule.initial_state(1, dtype=torch.float64)
    x_pre = st.x_pre[0].tolist()
    x_post = st.x_post[0].tolist()
    lo, hi = rule.config.w_min, rule.config.w_max

    def ours():
        nonlocal st
        dw, st = stdp_step(pre, post, st, p64)
        apply_stdp_update(w_ours, dw, p64, lo, hi)

    def ref():
        reference_stdp(w_ref, pre, post, x_pre, x_post, p64, lo, hi)

    ref_repeats = max(3, args.repeats // 10)
    t_ours = median_time(ours, ref_repeats)
    t_ref = median_time(ref, ref_repeats)
    assert torch.allclose(w_ours, w_ref, atol=1e-9), "reference and vectorized STDP disagree"
    results.update(
        {
            "synapses": rule.num_synapses,
            "stdp_update_vectorized_us": t_ours * 1e6,
            "stdp_update_reference_loop_us": t_ref * 1e6,
            "speedup": t_ref / t_ours,
        }
    )
    meta = {
        "neurons": args.neurons,
        "inputs": args.inputs,
        "batch": args.batch,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"HRSNN N={args.neurons}, inputs={args.inputs}, batch={args.batch}, 1 thread")
    print(f"  layer step, plasticity off : {results['step_plasticity_off_us']:9.1f} µs")
    print(f"  layer step, plasticity on  : {results['step_plasticity_on_us']:9.1f} µs")
    print(f"  STDP update ({results['synapses']} synapses)")
    print(f"    vectorized               : {results['stdp_update_vectorized_us']:9.1f} µs")
    print(f"    per-synapse loop (ref)   : {results['stdp_update_reference_loop_us']:9.1f} µs")
    print(f"    speed-up                 : {results['speedup']:9.1f}x")
    assert math.isfinite(results["speedup"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

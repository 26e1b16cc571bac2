"""Issue 16 (b) at full budget: per-ratio models − one set of weights, pooled over base policies.

    .venv/bin/python docs/studies/hot_swap_pool.py BASELINES_DIR EVAL_DIR [EVAL_DIR ...]

Each EVAL_DIR is one ``hot_swap_full.sh`` sweep (models ``<base>_one_set`` at every ratio
and ``<base>_per_ratio`` at its own); BASELINES_DIR holds ``expert`` and ``zero_action``
on the same worlds (per-world gap closed needs them). Prints, per shift and ratio, each
base's paired difference and all bases' worlds pooled (95 % bootstrap CI, MDE), in gap
closed.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from hybrid_snn_control.training.stats import BASELINE_MODELS, paired_summary, with_gap_closed


def load(path: str) -> list[dict]:
    return json.loads((Path(path) / "sweep.json").read_text())["rows"]


def main() -> None:
    base_dir, eval_dirs = sys.argv[1], sys.argv[2:]
    rows = [r for r in load(base_dir) if r["model"] in BASELINE_MODELS]
    for d in eval_dirs:
        rows += load(d)
    rows = with_gap_closed(rows)
    # (base, kind, ratio, shift) -> {world: gap closed}
    worlds: dict[tuple, dict] = defaultdict(dict)
    for r in rows:
        if r["model"] in BASELINE_MODELS:
            continue
        name = r["model"]
        kind = next((k for k in ("one_set", "per_ratio") if name.endswith("_" + k)), None)
        if kind is None:
            continue
        base = name[: -len(kind) - 1]
        for s, g in zip(r["episode_seeds"], r["episode_gap_closed"]):
            if g is not None:
                worlds[(base, kind, r["ratio"], r["shift"])][int(s)] = g
    bases = sorted({k[0] for k in worlds})
    shifts = sorted({k[3] for k in worlds})
    ratios = sorted({k[2] for k in worlds if k[1] == "per_ratio"})
    print(f"bases: {', '.join(bases)}; per-ratio − one set, gap closed [95 % CI] (MDE)")
    for shift in shifts:
        print(f"\n{shift}")
        for ratio in ratios:
            pooled_a, pooled_b, cells = [], [], []
            for base in bases:
                a = worlds.get((base, "per_ratio", ratio, shift), {})
                b = worlds.get((base, "one_set", ratio, shift), {})
                shared = sorted(set(a) & set(b))
                if len(shared) < 2:
                    continue
                s = paired_summary([a[w] for w in shared], [b[w] for w in shared])
                cells.append(f"{base} {s['mean']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}]")
                pooled_a += [a[w] for w in shared]
                pooled_b += [b[w] for w in shared]
            if not pooled_a:
                continue
            s = paired_summary(pooled_a, pooled_b)
            print(
                f"  r = {ratio:g}: per-ratio {np.mean(pooled_a):.2f}, "
                f"one set {np.mean(pooled_b):.2f}; "
                f"pooled {s['mean']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}] "
                f"(MDE {s['mde']:.3f}, {len(pooled_a)} worlds); " + "; ".join(cells)
            )


if __name__ == "__main__":
    main()

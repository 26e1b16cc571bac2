"""The ratio study of one task: HSTNN (shared and per-ratio) vs baselines, seeds × ratios.

For every seed, on the same data and with the same step budget per model:

* ``hstnn_shared`` — adapt → select → restore *with ratio sampling* over the study ratios:
  one set of weights, evaluated at each ratio by a mask change (the hot swap);
* ``hstnn_per_ratio`` — the same selected model restored separately at each ratio;
* ``select_only`` — the selected model before restoration (no fine-tune at all);
* ``direct`` — a fixed split trained from scratch (no redundant stage, no selection):
  r = 0 is the pure RNN, r = 1 the pure SNN, between them "directly hybrid".

Writes ``<out>/study.json`` (every evaluation, wall times) and, with ``--doc``, a Markdown
report with tables (mean ± std over seeds) and PNG plots.  Every training run resumes
after an interruption; finished models are not retrained.

    python -m hybrid_snn_control.training.ratio_study --out runs/study_classify \\
        --seeds 0 1 2 --doc docs/results_classification.md --img docs/img
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybrid_snn_control.config import to_mapping
from hybrid_snn_control.training import hstnn
from hybrid_snn_control.training.allocator import keep_freed_memory
from hybrid_snn_control.training.hstnn_config import HSTNNConfig
from hybrid_snn_control.training.hstnn_settings import load_hstnn_settings, parse_overrides
from hybrid_snn_control.training.task import Task, core_of, load_model, save_model

METHODS = ("hstnn_shared", "hstnn_per_ratio", "select_only", "random_select_only", "direct")
LABELS = {
    "hstnn_shared": "HSTNN, one set of weights (hot swap)",
    "hstnn_per_ratio": "HSTNN, restored per ratio",
    "select_only": "HSTNN, selected, no restoration",
    "random_select_only": "random ranking instead of Hessian, no restoration",
    "direct": "fixed split from scratch (r=0 RNN, r=1 SNN, else directly hybrid)",
}


def _evaluate(task: Task, path: Path, ratio: float) -> dict[str, Any]:
    model, meta = load_model(path, task)
    res = task.evaluate(model, ratio)
    res.pop("firing_rate", None)
    res["train_s"] = meta.get("train_s")
    res["select_s"] = meta.get("select_s")
    return res


def _timed(fn, *args, **kw) -> tuple[Path, float]:
    t0 = time.perf_counter()
    return fn(*args, **kw), time.perf_counter() - t0


def random_selection(task: Task, cfg: HSTNNConfig, adapted: Path) -> Path:
    """Ablation of stage 2: the adapted model with a random (seeded) unit ranking."""
    model, _ = load_model(adapted, task)
    core = core_of(model)
    g = torch.Generator().manual_seed(10_000 + cfg.seed)
    n = core.hidden_size
    core.apply_ranking(
        [(torch.rand(n, generator=g), torch.rand(n, generator=g)) for _ in core.layers]
    )
    core.set_ratio(cfg.ratio)
    path = Path(cfg.out_dir) / "select_random.safetensors"
    save_model(path, task, model, {"stage": "select_random", "seed": cfg.seed})
    return path


def run_seed(task: Task, cfg: HSTNNConfig, ratios: list[float], log) -> list[dict]:
    """Train and evaluate every method for one seed (skips models already on disk)."""
    out = Path(cfg.out_dir)
    rows: list[dict] = []
    walls: dict[str, float] = {}

    def stage(label: str, fn, *args, **kw) -> Path:
        path = out / f"{label}.safetensors"
        if path.exists():
            return path
        path, walls[label] = _timed(fn, *args, **kw)
        log(f"seed {cfg.seed}: {label} done in {walls[label]:.0f} s")
        return path

    shared_cfg = replace(cfg, restore_ratios=list(ratios))
    adapted = stage("adapt", hstnn.adapt, task, shared_cfg)
    selected = stage("select", hstnn.select, task, shared_cfg, adapted)
    shared = stage("restore", hstnn.restore, task, shared_cfg, selected)
    random_sel = stage("select_random", random_selection, task, shared_cfg, adapted)
    per_ratio = {}
    for r in ratios:
        name = hstnn.restore_name([r])
        per_ratio[r] = stage(name, hstnn.restore, task, cfg, selected, [r], name=name)
    direct = {
        r: stage(f"direct_r{r:g}", hstnn.direct, task, cfg, r, name=f"direct_r{r:g}")
        for r in ratios
    }
    for r in ratios:
        for method, path in (
            ("hstnn_shared", shared),
            ("hstnn_per_ratio", per_ratio[r]),
            ("select_only", selected),
            ("random_select_only", random_sel),
            ("direct", direct[r]),
        ):
            rows.append({"seed": cfg.seed, "method": method, **_evaluate(task, path, r)})
    walls_s = json.dumps({k: round(v) for k, v in walls.items()})
    log(f"seed {cfg.seed}: evaluated; wall times (s) {walls_s}")
    return rows


def summarize(rows: list[dict], ratios: list[float]) -> dict[str, dict[float, dict[str, float]]]:
    """``{method: {ratio: {metric_mean, metric_std, n}}}`` over seeds."""
    out: dict[str, dict[float, dict[str, float]]] = {}
    for method in METHODS:
        out[method] = {}
        for r in ratios:
            sel = [x for x in rows if x["method"] == method and x["ratio"] == r]
            if not sel:
                continue
            stats: dict[str, float] = {"n": len(sel)}
            for key in ("accuracy", "macs_per_step", "synops_per_step", "energy_pj_per_step"):
                vals = np.array([x[key] for x in sel], dtype=float)
                stats[f"{key}_mean"] = float(vals.mean())
                stats[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            out[method][r] = stats
    return out


def hot_swap_gap(rows: list[dict], ratios: list[float]) -> dict[float, tuple[float, float]]:
    """Per ratio: accuracy(per-ratio restored) − accuracy(shared weights), mean and std."""
    gaps = {}
    for r in ratios:
        d = []
        for seed in sorted({x["seed"] for x in rows}):
            acc = {
                x["method"]: x["accuracy"] for x in rows if x["seed"] == seed and x["ratio"] == r
            }
            if "hstnn_per_ratio" in acc and "hstnn_shared" in acc:
                d.append(acc["hstnn_per_ratio"] - acc["hstnn_shared"])
        if d:
            gaps[r] = (float(np.mean(d)), float(np.std(d, ddof=1)) if len(d) > 1 else 0.0)
    return gaps


def plot(summary, ratios: list[float], img_dir: Path, prefix: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {
        "hstnn_shared": "o-",
        "hstnn_per_ratio": "s--",
        "select_only": "^:",
        "random_select_only": "v:",
        "direct": "d-.",
    }
    for method in METHODS:
        s = summary[method]
        xs = [r for r in ratios if r in s]
        ax.errorbar(
            xs,
            [100 * s[r]["accuracy_mean"] for r in xs],
            yerr=[100 * s[r]["accuracy_std"] for r in xs],
            fmt=styles[method],
            capsize=3,
            label=LABELS[method],
        )
    ax.set_xlabel("spiking ratio r (0 = all recurrent/LSTM, 1 = all spiking/LIF)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Synthetic event classification: accuracy vs ratio (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(img_dir / f"{prefix}_accuracy_vs_ratio.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    s = summary["hstnn_shared"]
    xs = [r for r in ratios if r in s]
    for ax, key, title in zip(
        axes,
        ("macs_per_step", "synops_per_step", "energy_pj_per_step"),
        ("dense MACs / step", "SynOps (ACs) / step", "energy / step (pJ, 45 nm)"),
    ):
        for method in ("hstnn_shared", "direct"):
            sm = summary[method]
            ax.errorbar(
                xs,
                [sm[r][f"{key}_mean"] for r in xs],
                yerr=[sm[r][f"{key}_std"] for r in xs],
                fmt=styles[method],
                capsize=3,
                label=method,
            )
        ax.set_title(title)
        ax.set_xlabel("spiking ratio r")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(img_dir / f"{prefix}_cost_vs_ratio.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def _pm(s: dict, key: str, scale: float = 1.0, digits: int = 1) -> str:
    return f"{scale * s[f'{key}_mean']:.{digits}f} ± {scale * s[f'{key}_std']:.{digits}f}"


def write_report(study: dict, doc: Path, img_paths: list[Path]) -> None:
    """Markdown tables of :func:`summarize` and :func:`hot_swap_gap` with the plots."""
    ratios = study["ratios"]
    summary = {m: {float(r): v for r, v in d.items()} for m, d in study["summary"].items()}
    gaps = {float(r): v for r, v in study["hot_swap_gap"].items()}
    lines = [
        "| method | " + " | ".join(f"r = {r:g}" for r in ratios) + " |",
        "|---|" + "---|" * len(ratios),
    ]
    for m in METHODS:
        cells = [_pm(summary[m][r], "accuracy", 100) if r in summary[m] else "–" for r in ratios]
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    acc_table = "\n".join(lines)
    lines = ["| r | MACs / step | SynOps / step | energy / step (nJ) |", "|---|---|---|---|"]
    for r in ratios:
        s = summary["hstnn_shared"][r]
        lines.append(
            f"| {r:g} | {_pm(s, 'macs_per_step', 1, 0)} | {_pm(s, 'synops_per_step', 1, 0)} "
            f"| {_pm(s, 'energy_pj_per_step', 1e-3, 1)} |"
        )
    cost_table = "\n".join(lines)
    gap_table = "\n".join(
        ["| r | per-ratio − shared (accuracy points) |", "|---|---|"]
        + [f"| {r:g} | {100 * g[0]:+.1f} ± {100 * g[1]:.1f} |" for r, g in gaps.items()]
    )
    rel = [p.relative_to(doc.parent) if p.is_relative_to(doc.parent) else p for p in img_paths]
    images = "\n\n".join(f"![{p.stem}]({p.as_posix()})" for p in rel)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(
        study.get("header", "# Classification ratio study\n")
        + "\n## Accuracy (test, %, mean ± std over seeds)\n\n"
        + acc_table
        + "\n\n## Cost per time step and sample (one set of weights, test clips)\n\n"
        + cost_table
        + "\n\n## Hot swap: one set of weights vs per-ratio restored models\n\n"
        + gap_table
        + "\n\n"
        + images
        + "\n"
        + study.get("footer", "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="classify")
    parser.add_argument("--config", default="train")
    parser.add_argument("--out", default="runs/study_classify")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--doc", default=None, help="Markdown report to write")
    parser.add_argument("--img", default="docs/img", help="folder for the PNG plots")
    parser.add_argument("--prefix", default="classification", help="PNG file name prefix")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()

    t0 = time.perf_counter()
    base, task = load_hstnn_settings(
        args.task, args.config, parse_overrides(args.overrides), out_dir=args.out, progress=False
    )
    data_s = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "study.log"

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with log_file.open("a") as f:
            f.write(line + "\n")

    log(f"data ready in {data_s:.0f} s")
    rows: list[dict] = []
    seed_walls = {}
    for seed in args.seeds:  # results are written after every seed (a partial study is usable)
        t = time.perf_counter()
        cfg = replace(base, seed=seed, out_dir=str(out / f"seed{seed}"), tensorboard=False)
        rows += run_seed(task, cfg, list(args.ratios), log)
        seed_walls[seed] = time.perf_counter() - t
        done = sorted(seed_walls)
        study = {
            "task": task.name,
            "task_config": to_mapping(task.cfg),
            "hstnn_config": to_mapping(base),
            "ratios": list(args.ratios),
            "seeds": done,
            "rows": rows,
            "summary": summarize(rows, list(args.ratios)),
            "hot_swap_gap": hot_swap_gap(rows, list(args.ratios)),
            "wall_s": {"data": data_s, "per_seed": seed_walls, "total": time.perf_counter() - t0},
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
            "torch": torch.__version__,
        }
        (out / "study.json").write_text(json.dumps(study, indent=1, default=str))
        log(f"wrote {out / 'study.json'} (seeds {done})")
        if args.doc:
            paths = plot(study["summary"], list(args.ratios), Path(args.img), args.prefix)
            write_report(json.loads(json.dumps(study, default=str)), Path(args.doc), paths)
            log(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hsc hrsnn``: the HRSNN recipe on the synthetic event classification task.

* ``hsc hrsnn search`` — Optuna (TPE) over the heterogeneity distributions and scales;
  trains on one generated set, scores on a separate validation set, writes the best
  parameters as JSON.
* ``hsc hrsnn compare`` — homogeneous vs heterogeneous neurons × STDP over seeds, on a
  test set the search never saw; prints a markdown table (mean ± std) and can write
  every run as JSON.
* ``hsc hrsnn bptt`` — the BPTT-trained hybrid (``training/hrsnn_bptt.py``) on the same
  train and test clips, one network per spiking ratio; epochs chosen on a validation
  quarter of the training clips.

Data sets are generated with distinct seeds (train 0, test 1, validation 2), so search
and comparison never share samples.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

TRAIN_SEED, TEST_SEED, VALIDATION_SEED = 0, 1, 2

#: short names for the comparison's conditions (neurons-STDP)
CONDITION_KEYS = {
    "hom-hom": "homogeneous neurons + homogeneous STDP",
    "het-hom": "heterogeneous neurons + homogeneous STDP",
    "hom-het": "homogeneous neurons + heterogeneous STDP",
    "het-het": "heterogeneous neurons + heterogeneous STDP",
    "het-none": "heterogeneous neurons, no STDP",
}


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", type=int, default=8, help="motion classes K (2..8)")
    p.add_argument("--train", type=int, default=320, help="training clips")
    p.add_argument("--eval", type=int, default=320, help="validation / test clips")
    p.add_argument("--steps", type=int, default=40, help="time steps per clip")
    p.add_argument("--sensor", type=int, default=32, help="sensor width = height (pixels)")
    p.add_argument("--pool", type=int, default=2, help="input pooling factor")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_data(p)
    p.add_argument("--neurons", type=int, default=200, help="HRSNN population size")
    p.add_argument("--input-scale", type=float, default=10.0)
    p.add_argument("--recurrent-scale", type=float, default=1.0)
    p.add_argument("--n-bins", type=int, default=1, help="readout time bins (1 = counts)")
    p.add_argument("--stdp-epochs", type=int, default=1)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hrsnn", help="HRSNN (heterogeneous STDP) search and comparison")
    hsub = p.add_subparsers(dest="hrsnn_command", metavar="ACTION", required=True)
    s = hsub.add_parser("search", help="Optuna search over heterogeneity distributions")
    _add_common(s)
    s.add_argument("--trials", type=int, default=20)
    s.add_argument("--seed", type=int, default=0, help="sampler and network seed")
    s.add_argument("--timeout-s", type=float, default=None)
    s.add_argument("--out", type=Path, default=Path("hrsnn_search.json"))
    s.add_argument(
        "--condition",
        choices=sorted(CONDITION_KEYS),
        default="het-het",
        help="tune this condition (homogeneous parts are fixed, not searched)",
    )
    s.set_defaults(func=run_search)
    c = hsub.add_parser("compare", help="homogeneous vs heterogeneous neurons and STDP")
    _add_common(c)
    c.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    c.add_argument(
        "--params",
        type=Path,
        nargs="+",
        default=None,
        help="search JSON(s): one file -> every condition derived from it; several files "
        "-> each file's own tuned condition",
    )
    c.add_argument("--json", type=Path, default=None, help="write every run here")
    c.set_defaults(func=run_compare)
    b = hsub.add_parser("bptt", help="the BPTT-trained hybrid on the same clips")
    _add_data(b)
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    b.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    b.add_argument("--hidden", type=int, nargs="+", default=[64], help="units per layer")
    b.add_argument("--layers", type=int, default=2)
    b.add_argument("--spiking-cell", choices=["lif", "alif"], default="lif")
    b.add_argument(
        "--spiking-kwargs",
        type=json.loads,
        default=None,
        help="JSON of extra spiking-cell arguments, e.g. '{\"heterogeneous_tau\": 1.0}'",
    )
    b.add_argument("--lr", type=float, default=3e-3)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument(
        "--epochs", type=int, default=None, help="fixed epochs (default: chosen on validation)"
    )
    b.add_argument("--max-epochs", type=int, default=150, help="length of the validation run")
    b.add_argument("--eval-every", type=int, default=5, help="validation every N epochs")
    b.add_argument(
        "--select-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="seeds of the validation runs",
    )
    b.add_argument("--json", type=Path, default=None, help="write every run here")
    b.set_defaults(func=run_bptt)
    ps = hsub.add_parser(
        "policy-search", help="Optuna over the HRSNN policy core on pursuit (closed-loop score)"
    )
    ps.add_argument("--config", default="train", help="parameter file (section hsc_hrsnn_policy)")
    ps.add_argument("--trials", type=int, default=24)
    ps.add_argument("--episodes", type=int, default=8, help="validation episodes per trial")
    ps.add_argument("--seed", type=int, default=0, help="sampler seed")
    ps.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ps.add_argument("--out", type=Path, default=Path("hrsnn_policy_search.json"))
    ps.set_defaults(func=run_policy_search)


def _apply_data_args(args: argparse.Namespace) -> None:
    """Check the :func:`_add_data` arguments and set the thread count."""
    import torch

    if args.sensor % args.pool:
        raise ValueError(f"--sensor {args.sensor} must be a multiple of --pool {args.pool}")
    torch.set_num_threads(args.threads)


def _setup(args: argparse.Namespace):
    from hybrid_snn_control.neurons.hrsnn import HRSNNConfig
    from hybrid_snn_control.training.hrsnn import RecipeSettings

    _apply_data_args(args)
    input_size = 2 * (args.sensor // args.pool) ** 2
    base = HRSNNConfig(
        input_size=input_size,
        num_neurons=args.neurons,
        input_scale=args.input_scale,
        recurrent_scale=args.recurrent_scale,
    )
    settings = RecipeSettings(stdp_epochs=args.stdp_epochs, n_bins=args.n_bins)
    return base, settings


def apply_params(base, found: dict):
    """Rebuild the config a search found (same search space and condition, fixed values)."""
    import optuna

    from hybrid_snn_control.training.hrsnn import suggest_condition_config

    trial = optuna.trial.FixedTrial(found["best_params"])
    return suggest_condition_config(trial, base, CONDITION_KEYS[found["condition"]])


def _data(args: argparse.Namespace, num: int, seed: int):
    from hybrid_snn_control.training.hrsnn import synthetic_event_task

    start = time.perf_counter()
    data = synthetic_event_task(
        num, seed, args.classes, (args.sensor, args.sensor), args.steps, args.pool
    )
    print(f"generated {num} clips (seed {seed}) in {time.perf_counter() - start:.1f} s")
    return data


def run_search(args: argparse.Namespace) -> int:
    from hybrid_snn_control.training.hrsnn import search_heterogeneity

    base, settings = _setup(args)
    base = replace(base, seed=args.seed)
    train = _data(args, args.train, TRAIN_SEED)
    validation = _data(args, args.eval, VALIDATION_SEED)
    start = time.perf_counter()
    condition = CONDITION_KEYS[args.condition]
    study = search_heterogeneity(
        base,
        train,
        validation,
        args.classes,
        args.trials,
        args.seed,
        settings,
        args.timeout_s,
        condition,
    )
    wall = time.perf_counter() - start
    best = study.best_trial
    out = {
        "condition": args.condition,
        "best_params": best.params,
        "best_validation_accuracy": best.value,
        "best_result": best.user_attrs,
        "trials": [
            {"number": t.number, "value": t.value, "params": t.params} for t in study.trials
        ],
        "wall_s": wall,
        "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
    }
    args.out.write_text(json.dumps(out, indent=2))
    print(f"{len(study.trials)} trials in {wall:.0f} s; best validation accuracy {best.value:.3f}")
    for key, value in best.params.items():
        print(f"  {key:<16} {value:.4g}")
    print(f"wrote {args.out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from hybrid_snn_control.training.hrsnn import compare_conditions, summarize

    base, settings = _setup(args)
    train = _data(args, args.train, TRAIN_SEED)
    test = _data(args, args.eval, TEST_SEED)

    def log(row):
        print(
            f"  {row['condition']:<44} seed {row['seed']}: acc {row['accuracy']:.3f} "
            f"rate {row['firing_rate']:.3f} STDP {row['stdp_wall_s']:.2f} s"
        )

    found = [json.loads(path.read_text()) for path in args.params or []]
    if len(found) <= 1:  # the defaults, or one tuned base: derive every condition from it
        if found:
            base = apply_params(base, found[0])
        rows = compare_conditions(
            base, train, test, args.classes, tuple(args.seeds), settings, log=log
        )
    else:  # each condition with its own tuning
        rows = []
        for item in found:
            part = compare_conditions(
                apply_params(base, item),
                train,
                test,
                args.classes,
                tuple(args.seeds),
                settings,
                (CONDITION_KEYS[item["condition"]],),
                log=log,
            )
            rows.extend(part if not rows else part[1:])  # one input-readout row
    print(format_table(summarize(rows)))
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "params": found}, indent=2))
        print(f"wrote {args.json}")
    return 0


def format_table(summary: list[dict]) -> str:
    """Markdown table of :func:`~hybrid_snn_control.training.hrsnn.summarize` rows."""
    lines = [
        "| condition | runs | neurons | test accuracy | firing rate | SynOps/clip (in + rec) "
        "| STDP phase wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]

    def pm(s, key, fmt):
        if f"{key}_mean" not in s:
            return "–"
        return f"{s[f'{key}_mean']:{fmt}} ± {s[f'{key}_std']:{fmt}}"

    for s in summary:
        synops = (
            f"{s['synops_input_mean']:.3g} + {s['synops_recurrent_mean']:.3g}"
            if "synops_input_mean" in s
            else "–"
        )
        lines.append(
            f"| {s['condition']} | {s['runs']} | {s['num_neurons']} | "
            f"{pm(s, 'accuracy', '.3f')} | {pm(s, 'firing_rate', '.3f')} | {synops} | "
            f"{pm(s, 'stdp_wall_s', '.2f')} |"
        )
    return "\n".join(lines)


def run_bptt(args: argparse.Namespace) -> int:
    from hybrid_snn_control.training.hrsnn_bptt import (
        BPTTSettings,
        pick_epochs,
        summarize_bptt,
        train_and_evaluate_bptt,
        validation_curve,
    )

    _apply_data_args(args)
    train = _data(args, args.train, TRAIN_SEED)
    test = _data(args, args.eval, TEST_SEED)
    rows, selection = [], []
    for hidden in args.hidden:
        settings = BPTTSettings(
            hidden_size=hidden,
            num_layers=args.layers,
            lr=args.lr,
            batch_size=args.batch_size,
            spiking_cell=args.spiking_cell,
            spiking_kwargs=args.spiking_kwargs,
        )
        for ratio in args.ratios:
            epochs, curves = args.epochs, []
            if epochs is None:  # on 3/4 of the training clips, scored on the other quarter
                for seed in args.select_seeds:
                    curve = validation_curve(
                        train,
                        args.classes,
                        ratio,
                        seed,
                        args.max_epochs,
                        args.eval_every,
                        settings,
                    )
                    curves.append(curve)
                mean = [
                    {
                        **point,
                        "val_accuracy": sum(c[i]["val_accuracy"] for c in curves) / len(curves),
                    }
                    for i, point in enumerate(curves[0])
                ]
                epochs = pick_epochs(mean)
                best = max(p["val_accuracy"] for p in mean)
                print(f"hidden {hidden} r={ratio:g}: {epochs} epochs (validation acc {best:.3f})")
            selection.append(
                {"hidden_size": hidden, "ratio": ratio, "epochs": epochs, "curves": curves}
            )
            for seed in args.seeds:
                row = train_and_evaluate_bptt(
                    train, test, args.classes, ratio, seed, epochs, settings
                )
                rows.append(row)
                print(
                    f"  hidden {hidden} r={ratio:g} seed {seed}: acc {row['accuracy']:.3f} "
                    f"train {row['train_accuracy']:.3f} wall {row['train_wall_s']:.1f} s"
                )
    print(format_bptt_table(summarize_bptt(rows)))
    if args.json is not None:
        out = {
            "rows": rows,
            "selection": selection,
            "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
        }
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


def format_bptt_table(summary: list[dict]) -> str:
    """Markdown table of :func:`~hybrid_snn_control.training.hrsnn_bptt.summarize_bptt` rows."""
    lines = [
        "| model (layers × hidden) | ratio r | runs | epochs | active units | test accuracy "
        "| train accuracy | SynOps/clip | MACs/clip | energy/clip (µJ) | train wall/seed (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        extra = f" {json.dumps(s['spiking_kwargs'])}" if s.get("spiking_kwargs") else ""
        lines.append(
            f"| {s['spiking_cell'].upper()}/{s['recurrent_cell'].upper()}{extra} "
            f"{s['num_layers']} × {s['hidden_size']} | {s['ratio']:g} | {s['runs']} | "
            f"{s['epochs']} | {s['num_neurons']} | "
            f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} | "
            f"{s['train_accuracy_mean']:.3f} | {s['synops_per_clip_mean']:.3g} | "
            f"{s['macs_per_clip_mean']:.3g} | {s['energy_uj_per_clip_mean']:.3g} | "
            f"{s['train_wall_s_mean']:.1f} |"
        )
    return "\n".join(lines)


def run_policy_search(args: argparse.Namespace) -> int:
    """Tune the HRSNN policy core's heterogeneity and scales on pursuit validation worlds."""
    import torch

    from hybrid_snn_control.config import load_node_params
    from hybrid_snn_control.paths import config_file
    from hybrid_snn_control.training.hrsnn_policy import HRSNNPolicyTrainConfig, search_core

    torch.set_num_threads(args.threads)
    cfg = load_node_params(config_file(args.config), "hsc_hrsnn_policy", HRSNNPolicyTrainConfig)
    start = time.perf_counter()
    study = search_core(cfg, args.trials, args.episodes, args.seed)
    out = {
        "best_params": study.best_params,
        "best_value": study.best_value,
        "wall_s": time.perf_counter() - start,
        "trials": [{"params": t.params, "value": t.value, **t.user_attrs} for t in study.trials],
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(f"best validation score {study.best_value:.3f}: {study.best_params}; wrote {args.out}")
    return 0

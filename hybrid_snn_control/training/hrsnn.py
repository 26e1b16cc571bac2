"""HRSNN training recipe: unsupervised STDP, then a ridge readout; Optuna over heterogeneity.

Read top to bottom, it is the paper's pipeline (Chakraborty & Mukhopadhyay 2023):

1. **STDP phase** — run the layer over the training event streams with
   ``layer.plasticity = True``; no labels, no gradients.
2. **Features** — freeze the weights, run every sample, and summarize its spikes as
   per-neuron counts in ``n_bins`` consecutive time bins (the bins keep *when* a neuron
   fired, which is what motion classes differ in).
3. **Readout** — a linear map from standardized features to one-hot labels, fitted in
   closed form by ridge regression: ``W = (XᵀX + λI)⁻¹ XᵀY`` on centered data.
4. **Search** — Optuna's TPE sampler proposes heterogeneity spreads (and a few scales);
   each trial runs 1–3 on a train/validation split and reports validation accuracy.

Data are plain tensors: ``x`` of shape ``[num_samples, T, input_size]`` (e.g. flattened
event frames per step) and integer labels ``[num_samples]``; nothing here knows where
they came from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from hybrid_snn_control.events.encoders import event_frames
from hybrid_snn_control.events.synthetic import SyntheticConfig, generate_dataset
from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig


def time_first_batches(x: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Yield ``[T, B, F]`` batches from ``x [num_samples, T, F]`` in order."""
    if x.dim() != 3:
        raise ValueError(f"x must be [num_samples, T, features], got {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size].transpose(0, 1)


# -- 1. unsupervised STDP phase ----------------------------------------------------------
def run_stdp_phase(
    layer: HRSNN, x: Tensor, epochs: int = 1, batch_size: int = 16
) -> dict[str, float]:
    """Let STDP shape the layer on ``x`` (no labels); returns wall time and weight change."""
    if layer.stdp_rec is None:
        raise ValueError("this HRSNN has no STDP (config.stdp is None)")
    w0 = layer.w_rec.detach().clone()
    previous = layer.plasticity
    layer.plasticity = True
    steps = 0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for _ in range(epochs):
                for batch in time_first_batches(x, batch_size):
                    layer(batch)
                    steps += batch.shape[0]
    finally:
        layer.plasticity = previous
    wall_s = time.perf_counter() - start
    dw = (layer.w_rec.detach() - w0)[layer.rec_mask]
    return {
        "stdp_wall_s": wall_s,
        "stdp_steps": float(steps),
        "stdp_mean_abs_dw": float(dw.abs().mean()) if dw.numel() else 0.0,
    }


# -- 2. features -------------------------------------------------------------------------
def binned_counts(seq: Tensor, n_bins: int) -> Tensor:
    """Counts per unit in ``n_bins`` consecutive time bins: ``[T, B, N] -> [B, N * n_bins]``."""
    t = seq.shape[0]
    if not 1 <= n_bins <= t:
        raise ValueError(f"n_bins must be in [1, T={t}], got {n_bins}")
    edges = torch.linspace(0, t, n_bins + 1).round().long().tolist()
    bins = [seq[edges[k] : edges[k + 1]].sum(0) for k in range(n_bins)]
    return torch.cat(bins, dim=1)


def extract_features(
    layer: HRSNN, x: Tensor, n_bins: int = 4, batch_size: int = 32
) -> tuple[Tensor, dict[str, float]]:
    """Frozen-layer spike features ``[num_samples, N * n_bins]`` and per-sample SynOps."""
    feats, totals, count = [], {}, 0
    previous = layer.plasticity
    layer.plasticity = False
    try:
        with torch.no_grad():
            for batch in time_first_batches(x, batch_size):
                z_seq, _ = layer(batch)
                feats.append(binned_counts(z_seq, n_bins))
                ops = layer.synaptic_operations(batch, z_seq)
                for key, value in ops.items():
                    totals[key] = totals.get(key, 0.0) + value * batch.shape[1]
                count += batch.shape[1]
    finally:
        layer.plasticity = previous
    return torch.cat(feats), {key: value / count for key, value in totals.items()}


# -- 3. ridge readout --------------------------------------------------------------------
@dataclass
class RidgeReadout:
    """``y = ((x - mean) / std) @ weight + bias``, fitted in closed form."""

    weight: Tensor  # [F, K]
    bias: Tensor  # [K]
    mean: Tensor  # [F]
    std: Tensor  # [F]

    @classmethod
    def fit(cls, features: Tensor, targets: Tensor, l2: float = 1.0) -> RidgeReadout:
        """Ridge regression of ``targets [n, K]`` on ``features [n, F]`` (bias not penalized)."""
        if features.dim() != 2 or targets.dim() != 2 or features.shape[0] != targets.shape[0]:
            raise ValueError(
                f"need features [n, F] and targets [n, K] with the same n, got "
                f"{tuple(features.shape)} and {tuple(targets.shape)}"
            )
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        x = features.to(torch.float64)
        y = targets.to(torch.float64)
        mean = x.mean(0)
        std = x.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))  # silent features stay 0
        xs = (x - mean) / std
        y_mean = y.mean(0)
        gram = xs.t() @ xs + l2 * torch.eye(xs.shape[1], dtype=torch.float64)
        weight = torch.linalg.lstsq(gram, xs.t() @ (y - y_mean)).solution
        return cls(weight, y_mean, mean, std)

    def predict(self, features: Tensor) -> Tensor:
        return ((features.to(torch.float64) - self.mean) / self.std) @ self.weight + self.bias


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(torch.float64)


L2_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def stratified_holdout(labels: Tensor, num_classes: int, every: int = 4) -> Tensor:
    """Boolean mask of every ``every``-th sample of each class (deterministic, stratified)."""
    if every < 2:
        raise ValueError(f"every must be >= 2, got {every}")
    held = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        held[members[every - 1 :: every]] = True
    return held


def select_l2(
    features: Tensor, labels: Tensor, num_classes: int, grid: tuple[float, ...] = L2_GRID
) -> float:
    """The ridge penalty with the best accuracy on a held-out quarter of the training set.

    The split is stratified and deterministic: every 4th sample *of each class*.
    """
    held = stratified_holdout(labels, num_classes)
    scores = []
    for l2 in grid:
        readout = RidgeReadout.fit(features[~held], one_hot(labels[~held], num_classes), l2)
        pred = readout.predict(features[held]).argmax(1)
        scores.append(float((pred == labels[held].long()).to(torch.float64).mean()))
    return grid[max(range(len(grid)), key=lambda k: (scores[k], -k))]


def readout_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    num_classes: int,
    l2: float | None = None,
) -> tuple[float, float]:
    """Fit the ridge readout on train features; ``(test accuracy, l2 used)``.

    ``l2=None`` picks the penalty with :func:`select_l2` on the training features only.
    """
    if l2 is None:
        l2 = select_l2(train_feats, train_labels, num_classes)
    readout = RidgeReadout.fit(train_feats, one_hot(train_labels, num_classes), l2)
    pred = readout.predict(test_feats).argmax(1)
    return float((pred == test_labels.long()).to(torch.float64).mean()), l2


# -- the whole recipe for one configuration ----------------------------------------------
@dataclass(frozen=True)
class RecipeSettings:
    stdp_epochs: int = 1
    n_bins: int = 1  # 1 = whole-clip spike counts: the order in time must live in the layer
    l2: float | None = None  # None: chosen on a held-out quarter of the training set
    batch_size: int = 16


def train_and_evaluate(
    config: HRSNNConfig,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    settings: RecipeSettings = RecipeSettings(),
) -> dict[str, Any]:
    """Build the layer, STDP phase on ``train`` inputs, ridge readout, accuracy on ``test``."""
    x_train, y_train = train
    x_test, y_test = test
    dtype = x_train.dtype
    layer = HRSNN(config).to(dtype)
    result: dict[str, Any] = {"num_neurons": config.num_neurons}
    if config.stdp is not None and settings.stdp_epochs > 0:
        result.update(run_stdp_phase(layer, x_train, settings.stdp_epochs, settings.batch_size))
    else:
        result.update({"stdp_wall_s": 0.0, "stdp_steps": 0.0, "stdp_mean_abs_dw": 0.0})
    f_train, _ = extract_features(layer, x_train, settings.n_bins, 2 * settings.batch_size)
    f_test, ops = extract_features(layer, x_test, settings.n_bins, 2 * settings.batch_size)
    result.update(ops)
    result["num_rec_synapses"] = int(layer.rec_mask.sum())
    result["num_in_synapses"] = int(layer.in_mask.sum())
    result["accuracy"], result["l2"] = readout_accuracy(
        f_train, y_train, f_test, y_test, num_classes, settings.l2
    )
    result["train_accuracy"], _ = readout_accuracy(
        f_train, y_train, f_train, y_train, num_classes, result["l2"]
    )
    return result


#: The comparison's conditions (section 5); the search can tune each one on its own.
CONDITIONS = (
    "homogeneous neurons + homogeneous STDP",
    "heterogeneous neurons + homogeneous STDP",
    "homogeneous neurons + heterogeneous STDP",
    "heterogeneous neurons + heterogeneous STDP",
    "heterogeneous neurons, no STDP",
)


# -- 4. hyperparameter search over the heterogeneity distributions -----------------------
def suggest_config(
    trial, base: HRSNNConfig, heterogeneous_neurons: bool = True, heterogeneous_stdp: bool = True
) -> HRSNNConfig:
    """Optuna search space: spreads (cv) and means of τ_m, τ_θ, STDP τ± and η±, and scales.

    With ``heterogeneous_neurons`` / ``heterogeneous_stdp`` false the matching spreads are
    fixed at 0 and not searched (so a homogeneous control gets its own tuning).
    """

    def cv(name: str, searched: bool) -> float:
        return trial.suggest_float(name, 0.0, 1.5) if searched else 0.0

    tau_mem = Distribution(
        base.tau_mem_steps.kind,
        trial.suggest_float("tau_mem_mean", 2.0, 60.0, log=True),
        cv("tau_mem_cv", heterogeneous_neurons),
    )
    tau_thr = Distribution(
        base.tau_thr_steps.kind,
        trial.suggest_float("tau_thr_mean", 5.0, 200.0, log=True),
        cv("tau_thr_cv", heterogeneous_neurons),
    )
    config = replace(
        base,
        tau_mem_steps=tau_mem,
        tau_thr_steps=tau_thr,
        input_scale=trial.suggest_float(
            "input_scale", 0.3 * base.input_scale, 3.0 * base.input_scale, log=True
        ),
        recurrent_scale=trial.suggest_float(
            "recurrent_scale", 0.1 * base.recurrent_scale, 3.0 * base.recurrent_scale, log=True
        ),
    )
    if base.stdp is not None:
        stdp_tau_cv = cv("stdp_tau_cv", heterogeneous_stdp)
        stdp_eta_cv = cv("stdp_eta_cv", heterogeneous_stdp)
        eta_scale = trial.suggest_float("stdp_eta_scale", 0.1, 10.0, log=True)
        s = base.stdp
        config = replace(
            config,
            stdp=replace(
                s,
                tau_plus_steps=replace(s.tau_plus_steps, cv=stdp_tau_cv),
                tau_minus_steps=replace(s.tau_minus_steps, cv=stdp_tau_cv),
                eta_plus=replace(s.eta_plus, cv=stdp_eta_cv, mean=s.eta_plus.mean * eta_scale),
                eta_minus=replace(s.eta_minus, cv=stdp_eta_cv, mean=s.eta_minus.mean * eta_scale),
            ),
        )
    return config


def suggest_condition_config(trial, base: HRSNNConfig, condition: str) -> HRSNNConfig:
    """:func:`suggest_config` restricted to one of :data:`CONDITIONS`."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    if condition.endswith("no STDP"):
        base = replace(base, stdp=None)
    return suggest_config(
        trial,
        base,
        heterogeneous_neurons=condition.startswith("heterogeneous neurons"),
        heterogeneous_stdp=condition.endswith("heterogeneous STDP"),
    )


def search_heterogeneity(
    base: HRSNNConfig,
    train: tuple[Tensor, Tensor],
    validation: tuple[Tensor, Tensor],
    num_classes: int,
    n_trials: int = 20,
    seed: int = 0,
    settings: RecipeSettings = RecipeSettings(),
    timeout_s: float | None = None,
    condition: str = "heterogeneous neurons + heterogeneous STDP",
):
    """Optuna TPE search maximizing validation accuracy; returns the ``optuna.Study``.

    Each trial's full result dict is stored in ``trial.user_attrs``.
    """
    import optuna

    def objective(trial) -> float:
        config = suggest_condition_config(trial, base, condition)
        result = train_and_evaluate(config, train, validation, num_classes, settings)
        for key, value in result.items():
            trial.set_user_attr(key, value)
        return result["accuracy"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    return study


# -- 5. the heterogeneity comparison -----------------------------------------------------


def condition_config(base: HRSNNConfig, condition: str, seed: int) -> HRSNNConfig:
    """``base`` (taken as the heterogeneous setting) turned into one of :data:`CONDITIONS`."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    config = replace(base, seed=seed)
    if condition.startswith("homogeneous neurons"):
        config = replace(
            config,
            tau_mem_steps=base.tau_mem_steps.homogeneous(),
            tau_thr_steps=base.tau_thr_steps.homogeneous(),
        )
    if condition.endswith("no STDP"):
        config = replace(config, stdp=None)
    elif base.stdp is not None and condition.endswith("homogeneous STDP"):
        config = replace(config, stdp=base.stdp.homogeneous())
    return config


def compare_conditions(
    base: HRSNNConfig,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    seeds: tuple[int, ...] = (0, 1, 2),
    settings: RecipeSettings = RecipeSettings(),
    conditions: tuple[str, ...] = CONDITIONS,
    log=None,
) -> list[dict[str, Any]]:
    """Every condition × seed through :func:`train_and_evaluate`; one row per run.

    The data are the same for every run; the seed sets connectivity, weights and the
    heterogeneity draws. Also adds a ``"linear readout on input"`` row (no layer): the
    floor that tells whether the recurrent layer adds anything.
    """
    rows: list[dict[str, Any]] = []
    f_train = binned_counts(train[0].transpose(0, 1), settings.n_bins)
    f_test = binned_counts(test[0].transpose(0, 1), settings.n_bins)
    acc, l2 = readout_accuracy(f_train, train[1], f_test, test[1], num_classes, settings.l2)
    rows.append(
        {
            "condition": "linear readout on input",
            "seed": -1,
            "accuracy": acc,
            "l2": l2,
            "num_neurons": 0,
            "num_features": int(f_train.shape[1]),
        }
    )
    for condition in conditions:
        for seed in seeds:
            result = train_and_evaluate(
                condition_config(base, condition, seed), train, test, num_classes, settings
            )
            row = {"condition": condition, "seed": seed, **result}
            rows.append(row)
            if log is not None:
                log(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (population std over seeds) per condition, in first-seen order."""
    keys = (
        "accuracy",
        "train_accuracy",
        "firing_rate",
        "synops_input",
        "synops_recurrent",
        "synops_total",
        "stdp_wall_s",
        "stdp_mean_abs_dw",
    )
    out: list[dict[str, Any]] = []
    for condition in dict.fromkeys(r["condition"] for r in rows):
        group = [r for r in rows if r["condition"] == condition]
        summary: dict[str, Any] = {
            "condition": condition,
            "runs": len(group),
            "num_neurons": group[0].get("num_neurons", 0),
        }
        for key in keys:
            values = torch.tensor([float(r[key]) for r in group if key in r], dtype=torch.float64)
            if values.numel():
                summary[f"{key}_mean"] = float(values.mean())
                summary[f"{key}_std"] = float(values.std(unbiased=False))
        out.append(summary)
    return out


# -- data: the synthetic event classification task (events/synthetic.py) ----------------
def synthetic_event_task(
    num_samples: int,
    seed: int,
    num_classes: int = 4,
    sensor_size: tuple[int, int] = (32, 32),
    num_steps: int = 40,
    pool: int = 2,
) -> tuple[Tensor, Tensor]:
    """Moving-shape clips as ``x [n, num_steps, 2 * (H/pool) * (W/pool)]`` event counts.

    Each clip (``duration_us`` of the generator's config) is cut into ``num_steps`` equal
    bins from t = 0; ON and OFF counts are separate input channels.
    """
    cfg = SyntheticConfig(num_classes=num_classes, sensor_size=sensor_size)
    bin_us = -(-cfg.duration_us // num_steps)
    samples = generate_dataset(num_samples, cfg, seed)
    x = torch.stack(
        [
            event_frames(events, sensor_size, 0, bin_us, num_steps, pool=pool).reshape(
                num_steps, -1
            )
            for events, _ in samples
        ]
    )
    y = torch.tensor([label for _, label in samples])
    return x, y

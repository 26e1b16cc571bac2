"""HRSNN recipe: ridge readout, binned features, STDP phase + readout end to end."""

from __future__ import annotations

import pytest
import torch

from hybrid_snn_control.neurons.heterogeneity import Distribution
from hybrid_snn_control.neurons.hrsnn import HRSNN, HRSNNConfig
from hybrid_snn_control.training.hrsnn import (
    RecipeSettings,
    RidgeReadout,
    binned_counts,
    run_stdp_phase,
    search_heterogeneity,
    train_and_evaluate,
)


def test_ridge_recovers_a_known_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g, dtype=torch.float64) * 3 + 1
    w_true = torch.randn(8, 3, generator=g, dtype=torch.float64)
    b_true = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    y = x @ w_true + b_true + 0.01 * torch.randn(500, 3, generator=g, dtype=torch.float64)
    readout = RidgeReadout.fit(x, y, l2=1e-6)
    # Undo the standardization to compare with the generating map.
    w_hat = readout.weight / readout.std[:, None]
    b_hat = readout.bias - readout.mean @ w_hat
    torch.testing.assert_close(w_hat, w_true, atol=2e-3, rtol=0)
    torch.testing.assert_close(b_hat, b_true, atol=5e-3, rtol=0)
    x_new = torch.randn(10, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(readout.predict(x_new), x_new @ w_true + b_true, atol=2e-2, rtol=0)
    # A large penalty shrinks toward the mean prediction.
    flat = RidgeReadout.fit(x, y, l2=1e9)
    torch.testing.assert_close(flat.predict(x_new), y.mean(0).expand(10, 3), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="same n"):
        RidgeReadout.fit(x, y[:10])


def test_binned_counts_keep_time_order():
    seq = torch.zeros(8, 1, 2)
    seq[0, 0, 0] = 1  # unit 0 early
    seq[7, 0, 1] = 1  # unit 1 late
    f = binned_counts(seq, 2)
    assert f.tolist() == [[1.0, 0.0, 0.0, 1.0]]  # [bin0 units..., bin1 units...]
    with pytest.raises(ValueError, match="n_bins"):
        binned_counts(seq, 9)


def toy_task(n=48, t=20, seed=0):
    """Two classes: a pulse on channels 0-3 early or late (separable only over time)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (torch.rand(n, t, 8, generator=g) < 0.05).float()
    for i in range(n):
        start = 2 if y[i] == 0 else 12
        x[i, start : start + 4, :4] = 1.0
    return x, y


def small_config(**kw):
    return HRSNNConfig(
        input_size=8,
        num_neurons=30,
        connection_prob=0.2,
        input_connection_prob=0.5,
        input_scale=8.0,
        recurrent_scale=2.0,
        tau_mem_steps=Distribution("gamma", 4.0, 0.5),
        tau_thr_steps=Distribution("gamma", 8.0, 0.5),
        seed=0,
        **kw,
    )


def test_recipe_learns_a_temporal_toy_task():
    train, test = toy_task(seed=0), toy_task(seed=1)
    result = train_and_evaluate(small_config(), train, test, 2, RecipeSettings(n_bins=4))
    assert result["accuracy"] >= 0.9
    assert result["stdp_wall_s"] > 0 and result["stdp_mean_abs_dw"] > 0
    assert result["synops_total"] > 0 and 0 < result["firing_rate"] < 1


def test_stdp_phase_restores_the_plasticity_switch():
    layer = HRSNN(small_config())
    assert layer.plasticity is False
    run_stdp_phase(layer, toy_task()[0], epochs=1)
    assert layer.plasticity is False


def test_optuna_search_runs_and_records_trials():
    train, val = toy_task(n=24, seed=0), toy_task(n=24, seed=1)
    study = search_heterogeneity(small_config(), train, val, 2, n_trials=2, seed=0)
    assert len(study.trials) == 2
    assert {"tau_mem_cv", "stdp_tau_cv"} <= set(study.best_params)
    assert "stdp_wall_s" in study.best_trial.user_attrs


def test_conditions_change_only_what_they_name():
    from hybrid_snn_control.training.hrsnn import CONDITIONS, condition_config

    base = small_config()
    hom_het = condition_config(base, CONDITIONS[2], seed=7)
    assert hom_het.seed == 7
    assert hom_het.tau_mem_steps.is_homogeneous and hom_het.tau_thr_steps.is_homogeneous
    assert hom_het.tau_mem_steps.mean == base.tau_mem_steps.mean
    assert hom_het.stdp == base.stdp  # STDP stays heterogeneous
    het_hom = condition_config(base, CONDITIONS[1], seed=0)
    assert het_hom.tau_mem_steps == base.tau_mem_steps
    assert het_hom.stdp.eta_plus.is_homogeneous and het_hom.stdp.tau_minus_steps.is_homogeneous
    assert het_hom.stdp.eta_plus.mean == base.stdp.eta_plus.mean
    assert condition_config(base, CONDITIONS[4], seed=0).stdp is None
    with pytest.raises(ValueError, match="condition"):
        condition_config(base, "both", seed=0)

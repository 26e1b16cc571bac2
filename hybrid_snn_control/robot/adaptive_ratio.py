"""The ratio governor around a running controller: estimate conditions from the step's own
events and cost, classify, decide, apply (DESIGN §7).

One :class:`AdaptiveRatio` per controller, called after every control step with that
step's events.  Used by policy_node (``ratio_mode``), by the direct gym rollout the ROS
loop is checked against, and by ``hsc eval --ratio-mode`` — the same code, so the closed
loop and the rollout decide the same switches at the same steps.  Step times are nominal
(``steps / rate_hz``), not event stamps, so both paths see the same clock.

:func:`profile_from_sweep` turns an ``hsc sweep`` result into the policy's
:class:`~hybrid_snn_control.robot.ratio_governor.RatioProfile` (``hsc profile``): the
mean score and the measured energy / latency per step per ratio, per condition label
(``nominal``, ``noisy_sensor``, ``flicker``: what :func:`~.conditions.classify` detects).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_snn_control.robot.conditions import (
    CONDITION_LABELS,
    ConditionEstimator,
    ConditionThresholds,
    classify,
)
from hybrid_snn_control.robot.ratio_governor import Decision, RatioGovernor, RatioProfile

__all__ = ["AdaptiveRatio", "load_profile", "profile_from_sweep", "profile_path_for"]


class AdaptiveRatio:
    """Conditions → governor → ``controller.set_ratio`` once per step (see module doc)."""

    def __init__(
        self,
        controller: Any,
        profile: RatioProfile | None,
        mode: str = "adaptive",
        energy_budget_nj: float | None = None,
        latency_budget_ms: float | None = None,
        rate_hz: float = 50.0,
        thresholds: ConditionThresholds | None = None,
        **governor_kwargs: Any,
    ) -> None:
        self.controller = controller
        _, h, w = controller.event_shape
        self.rate_hz = float(rate_hz)
        self.thresholds = thresholds
        self._settings = dict(
            profile=profile,
            mode=mode,
            energy_budget_nj=energy_budget_nj,
            latency_budget_ms=latency_budget_ms,
            **governor_kwargs,
        )
        self.estimator = ConditionEstimator(w, h, rate_hz=rate_hz)
        self.initial_ratio = float(controller.spiking_ratio)
        self.governor = RatioGovernor(ratio=self.initial_ratio, **self._settings)
        self.label = "nominal"
        self.steps = 0
        self.switch_log: list[dict[str, Any]] = []

    def reset(self, ratio: float | None = None) -> None:
        """A new episode: conditions unknown again, the governor back at ``ratio``."""
        r = self.initial_ratio if ratio is None else float(ratio)
        self.estimator.reset()
        self.governor = RatioGovernor(ratio=r, **self._settings)
        self.controller.set_ratio(r)
        self.label, self.steps = "nominal", 0

    def configure(
        self, mode: str, energy_budget_nj: float | None, latency_budget_ms: float | None
    ) -> None:
        """A live change of mode or budgets: now, and for every later episode."""
        self.governor.set_mode(mode)
        self.governor.set_budget(energy_budget_nj, latency_budget_ms)
        self._settings.update(
            mode=mode, energy_budget_nj=energy_budget_nj, latency_budget_ms=latency_budget_ms
        )

    def after_step(self, events: np.ndarray, out: Any) -> Decision:
        """Feed one control step (its events and :class:`ControlStep`); switch if decided."""
        self.steps += 1
        t_us = round(self.steps * 1e6 / self.rate_hz)
        cost = out.cost
        firing = cost.firing_rate if cost is not None else None
        if isinstance(firing, int | float):
            firing = [firing]
        cond = self.estimator.update(events, t_us, out.latency_s, firing)
        self.label = classify(cond, self.thresholds)
        if self.governor.mode != "fixed":  # the measured cost, for the guard of each budget
            energy = cost.energy_pj * 1e-3 if cost is not None else None
            self.governor.observe_cost(energy_nj=energy, latency_ms=out.latency_s * 1e3)
        decision = self.governor.step(self.label)
        if decision.switched:
            self.controller.set_ratio(decision.ratio)
            self.switch_log.append(
                {"step": self.steps, "ratio": decision.ratio, "reason": decision.reason}
            )
        return decision

    def status(self) -> dict[str, Any]:
        """Condition estimates, label and governor state for ``~/status``."""
        return {
            "condition": self.label,
            **{f"cond_{k}": v for k, v in self.estimator.conditions.as_dict().items()},
            **{f"governor_{k}": v for k, v in self.governor.status().items()},
        }


def profile_path_for(checkpoint: str | os.PathLike) -> Path:
    """Where a policy's ratio profile lives: beside it, ``<stem>.profile.json``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".profile.json")


def load_profile(path: str | os.PathLike) -> RatioProfile:
    """A profile file (ValueError naming the file when it is not a valid profile)."""
    try:
        data = json.loads(Path(path).read_text())
        return RatioProfile.from_dict(data)
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"could not load ratio profile {path}: {exc}") from None


def profile_from_sweep(
    sweep: Mapping[str, Any], model: str, labels: Sequence[str] = CONDITION_LABELS
) -> RatioProfile:
    """The ratio profile of ``model`` from an ``hsc sweep`` result (its ``sweep.json``).

    Per condition label (a shift of the same name; ``nominal``: nominal worlds) and ratio:
    the mean ``score`` over the sweep's seeds, the mean energy per step (nJ) and step
    latency (ms).  A label the sweep did not run is left out (the governor then scores it
    with the ``nominal`` rows).
    """
    rows = [r for r in sweep.get("rows", []) if r.get("model") == model]
    if not rows:
        raise ValueError(f"sweep has no rows of model {model!r}")
    table: dict[str, dict[float, Any]] = {}
    ratios = sorted({float(r["ratio"]) for r in rows if r.get("ratio") is not None})
    for label in labels:
        picked = [r for r in rows if r.get("shift") == label]
        if not picked:
            continue
        out = {}
        for ratio in ratios:
            at = [r for r in picked if r.get("ratio") is not None and float(r["ratio"]) == ratio]
            if not at:
                raise ValueError(f"sweep lacks {model} at ratio {ratio} under {label}")
            energy = [r["energy_pj_per_step"] for r in at if r.get("energy_pj_per_step")]
            latency = [r["step_latency_ms"] for r in at if r.get("step_latency_ms")]
            out[ratio] = {
                "ratio": ratio,
                "score": float(np.mean([r["score"] for r in at])),
                "energy_nj": float(np.mean(energy)) * 1e-3 if energy else 0.0,
                "latency_ms": float(np.mean(latency)) if latency else 0.0,
            }
        table[label] = out
    if "nominal" not in table:
        raise ValueError("sweep has no nominal rows: the profile needs them")
    data = {
        "policy": model,
        "ratios": ratios,
        "conditions": {k: list(v.values()) for k, v in table.items()},
    }
    for recs in data["conditions"].values():
        for rec in recs:
            if not all(math.isfinite(rec[m]) for m in ("score", "energy_nj", "latency_ms")):
                raise ValueError(f"sweep gives a non-finite profile entry: {rec}")
    return RatioProfile.from_dict(data)

"""Which spiking ratio the policy runs at: fixed, the best that fits a budget, or the best for
the condition the robot is in (``ratio_mode``, DESIGN §7).

A hybrid policy trades score against cost through its spiking ratio, and the trade moves
with the conditions: under sensor noise a different ratio may be best than in nominal
light.  A :class:`RatioProfile` is that trade measured in simulation, per policy: for each
condition label and each profiled ratio, the expected score and the cost per step
(``energy_nj``, ``latency_ms``).  :class:`RatioGovernor` reads it once per control step:

* ``fixed``: the ratio never changes (today's behaviour; also what a manual
  ``ros2 param set spiking_ratio`` selects, through :meth:`RatioGovernor.set_manual`).
* ``budget``: the best expected score for ``nominal`` among the ratios whose profiled cost
  fits the budget(s).  The budget is a constraint, so a change of it switches at once.
* ``adaptive``: the best expected score for the *detected* condition (within the budget,
  if any).  Detection is debounced in time: a label becomes the condition only after
  ``confirm_steps`` consecutive steps of it (one outlier never switches), a switch needs an
  expected gain above ``hysteresis`` and ``min_dwell_steps`` since the last switch (no
  dwell before the first).  Until a label is confirmed the governor holds its ratio.
  A label the profile lacks is scored with the ``nominal`` rows.

In ``budget`` and ``adaptive`` mode a **measured-cost guard** backs the profile: the node
reports each step's measured energy / latency with :meth:`RatioGovernor.observe_cost`;
once ``guard_window`` samples at the current ratio are in and one budget was exceeded on
more than ``guard_fraction`` of them, the governor steps down to a ratio the profile
says is strictly cheaper in that budget (the best-scoring such ratio within the budget:
with a profile whose score rises with cost that is the next cheaper one), and excludes
the ratio and every one at least as costly, so the profile's optimism is not tried again.
:meth:`set_mode` and :meth:`set_budget` clear the exclusions.  A guard step-down ignores
the dwell: a budget is a constraint, not a preference.

Ratios between profiled ones (a manual setting) are scored and costed by linear
interpolation.  Everything is plain Python state, deterministic, no clock and no ROS: the
policy node calls :meth:`step` after classifying the step's conditions
(``robot/conditions.py``), applies ``Decision.ratio`` (masks only, state kept) and logs
``Decision.reason`` when ``Decision.switched``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

__all__ = [
    "MODES",
    "Decision",
    "GovernorCounters",
    "Mode",
    "ProfileEntry",
    "RatioGovernor",
    "RatioProfile",
]

Mode = Literal["fixed", "budget", "adaptive"]
MODES: tuple[str, ...] = ("fixed", "budget", "adaptive")
_METRICS = ("score", "energy_nj", "latency_ms")
_RATIO_TOL = 1e-9  # two ratios closer than this are the same ratio


@dataclass(frozen=True)
class ProfileEntry:
    """Expected score and cost per step of one ratio under one condition."""

    score: float
    energy_nj: float
    latency_ms: float


@dataclass(frozen=True)
class Decision:
    """What :meth:`RatioGovernor.step` decided; ``reason`` says why (always, switch or not)."""

    ratio: float
    switched: bool
    reason: str


@dataclass
class GovernorCounters:
    """Reported in ``~/status``."""

    steps: int = 0
    switches: int = 0  # made by the governor (adaptive, budget, guard)
    guard_stepdowns: int = 0  # of those, by the measured-cost guard
    manual_sets: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RatioProfile:
    """Per-policy table: condition label → ratio → :class:`ProfileEntry` (validated).

    JSON form (:meth:`to_dict` / :meth:`from_dict`)::

        {"policy": "pursuit_hybrid",                # optional
         "ratios": [0.0, 0.5, 1.0],
         "conditions": {
           "nominal": [{"ratio": 0.0, "score": 0.80, "energy_nj": 900.0, "latency_ms": 1.9},
                       ...one record per ratio],
           "noisy_sensor": [...]}}

    Every condition has a record for every ratio (and no other); ``nominal`` is required.
    """

    def __init__(
        self,
        ratios: Sequence[float],
        conditions: Mapping[str, Mapping[float, ProfileEntry]],
        policy: str = "",
    ) -> None:
        rs = [_number(r, "ratio") for r in ratios]
        if not rs:
            raise ValueError("profile: ratios is empty")
        for r in rs:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"profile: ratio {r} outside [0, 1]")
        order = sorted(rs)
        for a, b in itertools.pairwise(order):
            if b - a <= _RATIO_TOL:
                raise ValueError(f"profile: ratio {b} listed twice")
        if "nominal" not in conditions:
            raise ValueError(
                f"profile: needs a 'nominal' condition, has {sorted(conditions) or 'none'}"
            )
        self.policy = str(policy)
        self.ratios = np.asarray(order, dtype=np.float64)
        self._table: dict[str, dict[str, np.ndarray]] = {}
        for label, rows in conditions.items():
            if not isinstance(label, str) or not label:
                raise ValueError(f"profile: condition label must be a non-empty string: {label!r}")
            cols = {m: np.full(self.ratios.size, np.nan) for m in _METRICS}
            for r, entry in rows.items():
                i = self._index(_number(r, f"{label}: ratio"))
                if i is None:
                    raise ValueError(f"profile: condition {label!r} has ratio {r} not in ratios")
                if not math.isnan(cols["score"][i]):
                    raise ValueError(f"profile: condition {label!r} lists ratio {r} twice")
                for m in _METRICS:
                    v = _number(getattr(entry, m, None), f"{label} @ {r}: {m}")
                    if m != "score" and v < 0:
                        raise ValueError(f"profile: {label} @ {r}: {m} must be >= 0, got {v}")
                    cols[m][i] = v
            missing = [float(r) for r, s in zip(self.ratios, cols["score"]) if math.isnan(s)]
            if missing:
                raise ValueError(f"profile: condition {label!r} lacks ratio(s) {missing}")
            self._table[label] = cols

    # ---- JSON ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RatioProfile:
        if not isinstance(data, Mapping):
            raise ValueError(f"profile: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"policy", "ratios", "conditions"}
        if unknown:
            raise ValueError(f"profile: unknown key(s) {sorted(unknown)}")
        for key in ("ratios", "conditions"):
            if key not in data:
                raise ValueError(f"profile: missing {key!r}")
        ratios, conds = data["ratios"], data["conditions"]
        if not isinstance(ratios, Sequence) or isinstance(ratios, str):
            raise ValueError("profile: 'ratios' must be a list of numbers")
        if not isinstance(conds, Mapping):
            raise ValueError("profile: 'conditions' must map a label to a list of records")
        table: dict[str, dict[float, ProfileEntry]] = {}
        for label, records in conds.items():
            if not isinstance(records, Sequence) or isinstance(records, str):
                raise ValueError(f"profile: condition {label!r} must be a list of records")
            rows: dict[float, ProfileEntry] = {}
            for rec in records:
                if not isinstance(rec, Mapping):
                    raise ValueError(f"profile: condition {label!r}: record {rec!r} not a mapping")
                keys = set(rec)
                need = {"ratio", *_METRICS}
                if keys != need:
                    raise ValueError(
                        f"profile: condition {label!r}: record needs exactly {sorted(need)}, "
                        f"got {sorted(keys)}"
                    )
                r = _number(rec["ratio"], f"{label}: ratio")
                if any(abs(r - q) <= _RATIO_TOL for q in rows):
                    raise ValueError(f"profile: condition {label!r} lists ratio {r} twice")
                rows[r] = ProfileEntry(*(_number(rec[m], f"{label} @ {r}: {m}") for m in _METRICS))
            table[str(label)] = rows
        return cls(ratios, table, policy=str(data.get("policy", "")))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.policy:
            out["policy"] = self.policy
        out["ratios"] = [float(r) for r in self.ratios]
        out["conditions"] = {
            label: [
                {"ratio": float(r), **{m: float(cols[m][i]) for m in _METRICS}}
                for i, r in enumerate(self.ratios)
            ]
            for label, cols in self._table.items()
        }
        return out

    # ---- look-ups -----------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._table)

    def row_label(self, label: str) -> str:
        """``label`` when profiled, else ``"nominal"``."""
        return label if label in self._table else "nominal"

    def entry(self, label: str, ratio: float) -> ProfileEntry:
        """Score and cost of ``ratio`` under ``label`` (interpolated between profiled ratios)."""
        cols = self._table[self.row_label(label)]
        return ProfileEntry(*(float(np.interp(ratio, self.ratios, cols[m])) for m in _METRICS))

    def _index(self, ratio: float) -> int | None:
        i = int(np.argmin(np.abs(self.ratios - ratio)))
        return i if abs(float(self.ratios[i]) - ratio) <= _RATIO_TOL else None


class RatioGovernor:
    """The spiking ratio per control step (see the module docstring)."""

    def __init__(
        self,
        profile: RatioProfile | None,
        mode: Mode = "fixed",
        ratio: float = 0.5,
        energy_budget_nj: float | None = None,
        latency_budget_ms: float | None = None,
        hysteresis: float = 0.02,
        min_dwell_steps: int = 50,
        confirm_steps: int = 10,
        guard_window: int = 50,
        guard_fraction: float = 0.2,
    ) -> None:
        if not (math.isfinite(hysteresis) and hysteresis >= 0):
            raise ValueError(f"hysteresis must be finite and >= 0, got {hysteresis}")
        if int(min_dwell_steps) < 0:
            raise ValueError(f"min_dwell_steps must be >= 0, got {min_dwell_steps}")
        if int(confirm_steps) < 1:
            raise ValueError(f"confirm_steps must be >= 1, got {confirm_steps}")
        if int(guard_window) < 1:
            raise ValueError(f"guard_window must be >= 1, got {guard_window}")
        if not 0.0 <= guard_fraction < 1.0:
            raise ValueError(f"guard_fraction must be in [0, 1), got {guard_fraction}")
        self.profile = profile
        self.hysteresis = float(hysteresis)
        self.min_dwell_steps = int(min_dwell_steps)
        self.confirm_steps = int(confirm_steps)
        self.guard_window = int(guard_window)
        self.guard_fraction = float(guard_fraction)
        self.ratio = _ratio(ratio)
        self.excluded: set[float] = set()  # ratios the measured-cost guard ruled out
        self._guard: deque[tuple[bool, bool]] = deque(maxlen=self.guard_window)
        self.energy_budget_nj: float | None = None
        self.latency_budget_ms: float | None = None
        self.set_budget(energy_budget_nj, latency_budget_ms)
        self.mode: str = "fixed"
        self.set_mode(mode)
        self.counters = GovernorCounters()
        # condition debouncing
        self.candidate: str | None = None  # label of the current run of equal labels
        self.candidate_steps = 0
        self.condition: str | None = None  # confirmed condition (None: none yet)
        self._condition_since = 0  # step at which the confirmed condition's run began
        self._last_switch_step: int | None = None
        self.last_switch_reason = ""

    # ---- settings -----------------------------------------------------------------------------

    def set_manual(self, ratio: float) -> Decision:
        """A manual ratio: switches to ``fixed`` mode, so the governor changes nothing."""
        new = _ratio(ratio)
        old, self.ratio, self.mode = self.ratio, new, "fixed"
        self.counters.manual_sets += 1
        self._clear_guard()
        return Decision(new, new != old, f"manual: {_fr(old)} -> {_fr(new)} (mode fixed)")

    def set_mode(self, mode: str) -> None:
        """``fixed``, ``budget`` or ``adaptive`` (clears the guard's exclusions)."""
        if mode not in MODES:
            raise ValueError(f"ratio mode must be one of {', '.join(MODES)}; got {mode!r}")
        if mode != "fixed" and self.profile is None:
            raise ValueError(f"ratio mode {mode!r} needs a ratio profile for this policy")
        self.mode = mode
        self.excluded = set()
        self._clear_guard()

    def set_budget(self, energy_nj: float | None = None, latency_ms: float | None = None) -> None:
        """Budgets per step (``None``: no budget); clears the guard's exclusions."""
        for name, v in (("energy_budget_nj", energy_nj), ("latency_budget_ms", latency_ms)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0 or None, got {v}")
        self.energy_budget_nj = None if energy_nj is None else float(energy_nj)
        self.latency_budget_ms = None if latency_ms is None else float(latency_ms)
        self.excluded = set()
        self._clear_guard()

    # ---- per step -----------------------------------------------------------------------------

    def observe_cost(self, energy_nj: float | None = None, latency_ms: float | None = None) -> None:
        """The measured cost of the step just run (``None`` / non-finite: not measured)."""
        e_over = _over(energy_nj, self.energy_budget_nj)
        l_over = _over(latency_ms, self.latency_budget_ms)
        if e_over is None and l_over is None:
            return
        self._guard.append((bool(e_over), bool(l_over)))

    def step(self, condition: str) -> Decision:
        """One control step under the classified ``condition``; returns the ratio to run."""
        if not isinstance(condition, str):
            raise ValueError(f"condition must be a label string, got {condition!r}")
        self.counters.steps += 1
        self._debounce(condition)
        if self.mode == "fixed":
            return Decision(self.ratio, False, "fixed")
        guarded = self._guard_step()
        if guarded is not None:
            return guarded
        label = self.condition if self.mode == "adaptive" and self.condition else "nominal"
        allowed = self._allowed(label)
        if not self._fits(label, self.ratio) or self._is_excluded(self.ratio):
            target = self._best(label, allowed) if allowed else self._cheapest(label)
            if target == self.ratio:
                return Decision(self.ratio, False, "no ratio fits the budget: cheapest held")
            why = "over budget" if not self._is_excluded(self.ratio) else "excluded by the guard"
            fit = "" if allowed else ", none fits: cheapest"
            return self._switch(target, label, f"{why} ({self._budget_text()}{fit})")
        if self.mode == "budget":
            target = self._best("nominal", allowed)
            if target == self.ratio:
                return Decision(self.ratio, False, "budget: best held")
            return self._switch(target, "nominal", f"budget ({self._budget_text()})")
        # adaptive
        if self.condition is None:
            return Decision(
                self.ratio,
                False,
                f"confirming {self.candidate} ({self.candidate_steps}/{self.confirm_steps})",
            )
        target = self._best(label, allowed)
        gain = self._score(label, target) - self._score(label, self.ratio)
        if target == self.ratio or gain <= self.hysteresis:
            return Decision(self.ratio, False, f"{self.condition}: held (gain {gain:.3f})")
        since = self._since_switch()
        if since is not None and since < self.min_dwell_steps:
            return Decision(
                self.ratio, False, f"{self.condition}: dwell ({since}/{self.min_dwell_steps})"
            )
        steps = self.counters.steps - self._condition_since + 1
        return self._switch(target, label, f"{self.condition} for {steps} steps")

    def status(self) -> dict[str, object]:
        """JSON-able state for ``~/status``."""
        return {
            "mode": self.mode,
            "ratio": float(self.ratio),
            "condition": self.condition,
            "candidate": self.candidate,
            "candidate_steps": self.candidate_steps,
            "energy_budget_nj": self.energy_budget_nj,
            "latency_budget_ms": self.latency_budget_ms,
            "excluded": sorted(float(r) for r in self.excluded),
            "last_switch_reason": self.last_switch_reason,
            **self.counters.as_dict(),
        }

    # ---- internals ----------------------------------------------------------------------------

    def _debounce(self, label: str) -> None:
        if label == self.candidate:
            self.candidate_steps += 1
        else:
            self.candidate, self.candidate_steps = label, 1
        if label != self.condition and self.candidate_steps >= self.confirm_steps:
            self.condition = label
            self._condition_since = self.counters.steps - self.candidate_steps + 1

    def _since_switch(self) -> int | None:
        if self._last_switch_step is None:
            return None
        return self.counters.steps - self._last_switch_step

    def _switch(self, target: float, label: str, why: str) -> Decision:
        old = self.ratio
        s0, s1 = self._score(label, old), self._score(label, target)
        reason = (
            f"{why}: {_fr(old)} -> {_fr(target)} "
            f"({self._row(label)} expected score {s0:.2f} -> {s1:.2f})"
        )
        self.ratio = target
        self.counters.switches += 1
        self._last_switch_step = self.counters.steps
        self.last_switch_reason = reason
        self._clear_guard()
        return Decision(target, True, reason)

    def _row(self, label: str) -> str:
        assert self.profile is not None
        return self.profile.row_label(label)

    def _score(self, label: str, ratio: float) -> float:
        assert self.profile is not None
        return self.profile.entry(label, ratio).score

    def _fits(self, label: str, ratio: float) -> bool:
        assert self.profile is not None
        e = self.profile.entry(label, ratio)
        eb, lb = self.energy_budget_nj, self.latency_budget_ms
        return (eb is None or e.energy_nj <= eb) and (lb is None or e.latency_ms <= lb)

    def _is_excluded(self, ratio: float) -> bool:
        return any(abs(ratio - r) <= _RATIO_TOL for r in self.excluded)

    def _allowed(self, label: str) -> list[float]:
        assert self.profile is not None
        return [
            float(r)
            for r in self.profile.ratios
            if self._fits(label, float(r)) and not self._is_excluded(float(r))
        ]

    def _best(self, label: str, ratios: Sequence[float]) -> float:
        """Highest expected score; ties: the current ratio, then less energy, then lower ratio."""
        assert self.profile is not None

        def key(r: float) -> tuple[float, int, float, float]:
            e = self.profile.entry(label, r)  # type: ignore[union-attr]
            return (-e.score, 0 if abs(r - self.ratio) <= _RATIO_TOL else 1, e.energy_nj, r)

        return min(ratios, key=key)

    def _cheapest(self, label: str, among: Sequence[float] | None = None) -> float:
        """Least overshoot of the budgets (max of cost / budget); ties: better score."""
        assert self.profile is not None
        rs = list(among) if among is not None else None
        if rs is None:
            rs = [float(r) for r in self.profile.ratios if not self._is_excluded(float(r))]
            rs = rs or [float(r) for r in self.profile.ratios]

        def key(r: float) -> tuple[float, float, float]:
            e = self.profile.entry(label, r)  # type: ignore[union-attr]
            over = [0.0]
            if self.energy_budget_nj is not None:
                over.append(e.energy_nj / self.energy_budget_nj)
            if self.latency_budget_ms is not None:
                over.append(e.latency_ms / self.latency_budget_ms)
            return (max(over), -e.score, r)

        return min(rs, key=key)

    def _budget_text(self) -> str:
        parts = []
        if self.energy_budget_nj is not None:
            parts.append(f"energy <= {self.energy_budget_nj:g} nJ")
        if self.latency_budget_ms is not None:
            parts.append(f"latency <= {self.latency_budget_ms:g} ms")
        return ", ".join(parts) or "no budget"

    def _clear_guard(self) -> None:
        self._guard = deque(maxlen=self.guard_window)

    def _guard_step(self) -> Decision | None:
        """The measured-cost guard (see the module docstring); a Decision when it acts."""
        g = self._guard
        if len(g) < self.guard_window:
            return None
        limit = self.guard_fraction * self.guard_window
        n_e = sum(e for e, _ in g)
        n_l = sum(lat for _, lat in g)
        dims = [d for d, n in (("energy_nj", n_e), ("latency_ms", n_l)) if n > limit]
        if not dims:
            return None
        assert self.profile is not None
        label = self.condition if self.mode == "adaptive" and self.condition else "nominal"
        cur = self.profile.entry(label, self.ratio)
        ratios = [float(r) for r in self.profile.ratios]

        def cheaper(r: float) -> bool:
            e = self.profile.entry(label, r)  # type: ignore[union-attr]
            return all(getattr(e, d) < getattr(cur, d) for d in dims)

        over = ", ".join(
            f"{d.split('_')[0]} on {n}/{len(g)} steps"
            for d, n in (("energy_nj", n_e), ("latency_ms", n_l))
            if d in dims
        )
        candidates = [r for r in ratios if cheaper(r) and not self._is_excluded(r)]
        if not candidates:  # nothing to step down to: hold, judge a fresh window later
            self._clear_guard()
            return Decision(
                self.ratio, False, f"measured cost over budget ({over}), no cheaper ratio"
            )
        self.excluded |= {r for r in ratios if not cheaper(r)}
        self.excluded.add(self.ratio)
        fitting = [r for r in candidates if self._fits(label, r)]
        target = self._best(label, fitting) if fitting else self._cheapest(label, candidates)
        self.counters.guard_stepdowns += 1
        return self._switch(
            target, label, f"measured cost over budget at {_fr(self.ratio)} ({over})"
        )


def _number(v: object, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"profile: {what} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"profile: {what} must be finite, got {f}")
    return f


def _ratio(r: float) -> float:
    f = float(r)
    if not (math.isfinite(f) and 0.0 <= f <= 1.0):
        raise ValueError(f"spiking ratio must be in [0, 1], got {r}")
    return f


def _over(measured: float | None, budget: float | None) -> bool | None:
    """Whether ``measured`` exceeds ``budget``; None when either is missing (or not finite)."""
    if measured is None or budget is None or not math.isfinite(measured):
        return None
    return measured > budget


def _fr(r: float) -> str:
    """A ratio for a reason string: ``0.5``, ``0.0``, ``0.25``, ``1.0``."""
    s = f"{r:.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else s

"""Shared timing helpers for the neuron benchmarks (interleaved repeats, medians)."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(
    contenders: dict[str, Callable[[], None]], calls: int, repeats: int, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Time every contender ``repeats`` times, round-robin, so load from other processes on
    a shared machine hits all of them alike. Returns seconds per call: wall-clock median,
    min, max, and the median *thread CPU time* (``time.thread_time``: excludes time the
    thread waited for a core, so it is steadier on a loaded machine; exact for one thread)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            c0 = time.thread_time()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            wall[name].append((time.perf_counter() - t0) / calls)
            cpu[name].append((time.thread_time() - c0) / calls)
    return {
        name: {
            "median_s": statistics.median(w),
            "min_s": min(w),
            "max_s": max(w),
            "cpu_median_s": statistics.median(cpu[name]),
        }
        for name, w in wall.items()
    }


def machine_info() -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """``columns``: (key, header, format)."""
    widths = [max(len(h), 12, len(format(rows[0].get(k), f)) if rows else 0) for k, h, f in columns]
    widths[0] = max(len(str(r[columns[0][0]])) for r in rows) if rows else widths[0]
    print("  ".join(h.ljust(w) for (_, h, _), w in zip(columns, widths)))
    for row in rows:
        cells = []
        for (key, _, fmt), w in zip(columns, widths):
            value = row.get(key)
            cells.append(("-" if value is None else format(value, fmt)).ljust(w))
        print("  ".join(cells))


def write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")

"""Small helpers of the LMU DuckDB reader: event intervals, lap ends, unit and code maps."""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def nearest_end(ends: np.ndarray, ts: np.ndarray, tol: float = 2.0) -> np.ndarray:
    """Index of the lap whose end (``ends`` [s], sorted) is nearest each event time ``ts``
    (-1 when none is within ``tol`` seconds)."""
    n_laps = len(ends)
    if n_laps == 0 or len(ts) == 0:
        return np.full(len(ts), -1)
    k = np.searchsorted(ends, ts)
    lo, hi = np.clip(k - 1, 0, n_laps - 1), np.clip(k, 0, n_laps - 1)
    k = np.where(np.abs(ends[lo] - ts) <= np.abs(ends[hi] - ts), lo, hi)
    return np.where(np.abs(ends[k] - ts) <= tol, k, -1)


def intervals(ts: np.ndarray, on: np.ndarray, end: float) -> list[tuple[float, float]]:
    """[start, end) intervals where a state event is on; an open one ends at ``end``."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for t, state in zip(ts, on, strict=True):
        if state and start is None:
            start = float(t)
        elif not state and start is not None:
            out.append((start, float(t)))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def overlaps(intervals: list[tuple[float, float]], a: float, b: float) -> bool:
    return any(s < b and e > a for s, e in intervals)


def pct(value: float | None) -> float | None:
    return None if value is None else value / 100.0


def compound(code: float | None) -> int | None:
    """TyresCompound codes 0-2 (no label table in the file) taken as soft / medium / hard."""
    return int(code) if code is not None and 0 <= code <= 3 else None


def car_number(car_name: str) -> str:
    m = re.search(r"#(\w+)", car_name)
    return m.group(1) if m else (car_name or "player")


def setup_value(setup: dict[str, Any], key: str) -> float | None:
    entry = setup.get(key)
    value = entry.get("value") if isinstance(entry, dict) else entry
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None

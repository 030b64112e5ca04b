"""Interval calibration that transfers between races: conformal on left-out-race PIT values.

A model's predictive CDF evaluated at the observed value (the PIT) is uniform when the model
is calibrated. Races differ in spread, so a correction fitted on the races a model was trained
on does not carry over; fitted on PIT values of races each scored by a model that never saw
them (:mod:`world_model.leave_one_out`), it estimates how a *new* race's PIT values fall. The
central ``level`` interval then runs between the ``(1 - level) / 2`` and ``(1 + level) / 2``
quantiles of those PIT values instead of the nominal ones (split conformal on the PIT scale;
the model's interval at PIT levels ``lo`` and ``hi``).
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.5, 0.8, 0.9)


def pit_levels(pit: np.ndarray, levels: tuple[float, ...] = LEVELS) -> dict[str, list[float]]:
    """Calibrated PIT bounds ``{"80": [lo, hi], ...}`` of the central intervals, from PIT
    values of left-out races."""
    pit = np.asarray(pit, dtype=float)
    pit = pit[np.isfinite(pit)]
    out = {}
    for level in levels:
        lo, hi = np.quantile(pit, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
        out[str(round(level * 100))] = [float(lo), float(hi)]
    return out


def coverage(pit: np.ndarray, bounds: dict[str, list[float]]) -> dict[str, float]:
    """Share of PIT values inside each calibrated interval (``coverage_80`` ...)."""
    pit = np.asarray(pit, dtype=float)
    return {
        f"coverage_{level}": float(np.mean((pit >= lo) & (pit <= hi)))
        for level, (lo, hi) in bounds.items()
    }


def leave_one_race_out_coverage(
    pits: dict[str, np.ndarray], levels: tuple[float, ...] = LEVELS
) -> dict[str, dict[str, float]]:
    """Per race: coverage of the intervals calibrated on every *other* race's PIT values
    (the honest estimate of what the calibration gives a new race), with ``n``."""
    out = {}
    for race, pit in pits.items():
        others = [np.asarray(p, dtype=float) for r, p in pits.items() if r != race and len(p)]
        if not len(pit) or not others:
            continue
        bounds = pit_levels(np.concatenate(others), levels)
        out[race] = {"n": len(pit), **coverage(pit, bounds)}
    return out

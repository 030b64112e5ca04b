"""The predictions a strategist would use without a learned model, as predictive mixtures.

Each baseline is fitted on training races and predicts every channel in the same relative
units as the learned model (raw targets of :mod:`world_model.targets`, so a baseline fitted at
one track transfers to another), then maps back to physical units. Sample- and quantile-based
predictives become equal-weight Gaussian mixtures whose kernel widths follow the local
spacing of the points, so every method is scored by the same closed-form NLL and CRPS.

- ``empirical``: the training distribution of the channel per car class and flag state
  (falling back to the flag state alone, then to all rows, below ``MIN_GROUP`` rows).
- ``linear``: the classic race-simulator lap model, least squares on tyre age (degradation),
  laps into the stint (fuel burnt) and flag state, with a Gaussian residual.
- ``gbm_quantile``: scikit-learn ``HistGradientBoostingRegressor(loss="quantile")`` at
  ``N_QUANTILES`` levels on the lap's conditions (the learned model's input features less the
  car's own history, :data:`HISTORY_FEATURES`): the baseline of earlier model cards.
- ``gbm_quantile_history``: the same on every input of the learned model, the car's recent
  pace and previous lap included (the learned model's features exactly).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from world_model.dataset import LapTable
from world_model.distributions import Mixture
from world_model.features import FEATURE_NAMES, build_features
from world_model.interface import FlagState
from world_model.targets import ENERGY, FUEL, TARGET_NAMES, raw_targets, target_affine

N_QUANTILES = 10
LEVELS = (np.arange(N_QUANTILES) + 0.5) / N_QUANTILES
MIN_GROUP = 30
EMPIRICAL_POINTS = 50


def points_to_mixture(points: np.ndarray) -> Mixture:
    """Equal-weight Gaussian kernels on sorted points ``[N, M]``, each as wide as the mean
    gap to its neighbours (a floor keeps coincident points proper)."""
    q = np.sort(points, axis=1)
    gaps = np.diff(q, axis=1)
    left = np.concatenate([gaps[:, :1], gaps], axis=1)
    right = np.concatenate([gaps, gaps[:, -1:]], axis=1)
    spread = np.maximum(q[:, -1:] - q[:, :1], 1e-6)
    width = np.maximum(0.5 * (left + right), 0.02 * spread / q.shape[1] + 1e-9)
    m = q.shape[1]
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return Mixture(t(np.full(q.shape, 1.0 / m)), t(q), t(width))


def _physical(raw: Mixture, table: LapTable, channel: int) -> Mixture:
    slope, offset = target_affine(table.conditions)
    return raw.affine(slope[:, channel], offset[:, channel])


class Baseline(Protocol):
    """A fitted baseline: ``predict(table, channel)`` -> physical mixture per row."""

    name: str

    def covers(self, channel: int) -> bool:
        """Whether the channel had training rows (else ``predict`` cannot serve it)."""
        ...

    def predict(self, table: LapTable, channel: int) -> Mixture: ...


def _raw(table: LapTable) -> np.ndarray:
    return raw_targets(table.outcomes, table.conditions).numpy()


def _flags(table: LapTable) -> np.ndarray:
    return table.conditions.flag.numpy().clip(min=0)


class EmpiricalBaseline:
    name = "empirical"

    def __init__(self) -> None:
        self.tables: dict[int, dict[tuple, np.ndarray]] = {}

    def fit(self, table: LapTable, channels: tuple[int, ...]) -> EmpiricalBaseline:
        raw, flags = _raw(table), _flags(table)
        levels = (np.arange(EMPIRICAL_POINTS) + 0.5) / EMPIRICAL_POINTS
        for ch in channels:
            ok = ~np.isnan(raw[:, ch])
            groups: dict[tuple, np.ndarray] = {}
            if ok.sum() == 0:
                continue
            groups[()] = np.quantile(raw[ok, ch], levels)
            for f in np.unique(flags[ok]):
                sel = ok & (flags == f)
                if sel.sum() >= MIN_GROUP:
                    groups[(int(f),)] = np.quantile(raw[sel, ch], levels)
                for cls in np.unique(table.car_class[sel]):
                    sc = sel & (table.car_class == cls)
                    if sc.sum() >= MIN_GROUP:
                        groups[(int(f), str(cls))] = np.quantile(raw[sc, ch], levels)
            self.tables[ch] = groups
        return self

    def covers(self, channel: int) -> bool:
        return channel in self.tables

    def predict(self, table: LapTable, channel: int) -> Mixture:
        groups = self.tables[channel]
        flags = _flags(table)
        pts = np.empty((len(table), EMPIRICAL_POINTS))
        for i, (f, cls) in enumerate(zip(flags, table.car_class, strict=True)):
            key = (int(f), str(cls))
            pts[i] = groups.get(key, groups.get((int(f),), groups[()]))
        return _physical(points_to_mixture(pts), table, channel)


def _linear_design(table: LapTable) -> np.ndarray:
    c = table.conditions
    flags = np.eye(len(FlagState))[_flags(table)]
    stint_laps = (c.stint_time_s / c.ref_lap_time_s).numpy()
    return np.column_stack([c.tyre_age_laps.numpy(), np.nan_to_num(stint_laps), flags])


class LinearBaseline:
    name = "linear"

    def __init__(self) -> None:
        self.fits: dict[int, tuple[LinearRegression, float]] = {}

    def fit(self, table: LapTable, channels: tuple[int, ...]) -> LinearBaseline:
        raw, x = _raw(table), _linear_design(table)
        for ch in channels:
            ok = ~np.isnan(raw[:, ch])
            if ok.sum() < 3:
                continue
            reg = LinearRegression().fit(x[ok], raw[ok, ch])
            resid = raw[ok, ch] - reg.predict(x[ok])
            self.fits[ch] = (reg, float(max(resid.std(ddof=1), 1e-6)))
        return self

    def covers(self, channel: int) -> bool:
        return channel in self.fits

    def predict(self, table: LapTable, channel: int) -> Mixture:
        reg, sd = self.fits[channel]
        loc = torch.as_tensor(reg.predict(_linear_design(table)), dtype=torch.float32)
        n = len(table)
        raw = Mixture(torch.ones(n, 1), loc.unsqueeze(1), torch.full((n, 1), sd))
        return _physical(raw, table, channel)


HISTORY_FEATURES = (
    "recent_pace_pct",
    "recent_pace_missing",
    "last_lap_pct",
    "last_fuel_rel",
    "last_wear_rel",
    "last_lap_missing",
    "last_fuel_missing",
    "last_wear_missing",
)
"""Inputs from the car's own earlier laps (what the learned model adds to the lap's
conditions): ``gbm_quantile`` goes without them, ``gbm_quantile_history`` uses them."""


class QuantileGBMBaseline:
    name = "gbm_quantile"

    def __init__(self, seed: int = 0, max_iter: int = 100, history: bool = False) -> None:
        self.seed, self.max_iter, self.history = seed, max_iter, history
        if history:
            self.name = "gbm_quantile_history"
        self.models: dict[int, list[HistGradientBoostingRegressor]] = {}
        self.columns: dict[int, np.ndarray] = {}

    def _features(self, table: LapTable) -> np.ndarray:
        x = build_features(table.conditions).numpy()
        if not self.history:
            x = x[:, [i for i, n in enumerate(FEATURE_NAMES) if n not in HISTORY_FEATURES]]
        return x

    def fit(self, table: LapTable, channels: tuple[int, ...]) -> QuantileGBMBaseline:
        raw, x = _raw(table), self._features(table)
        for ch in channels:
            ok = ~np.isnan(raw[:, ch])
            if ok.sum() < 20:
                continue
            # Columns all-NaN or constant on these rows carry nothing (and break binning).
            xs = x[ok]
            finite = np.isfinite(xs)
            top = np.where(finite, xs, -np.inf).max(axis=0)
            cols = np.flatnonzero(top > np.where(finite, xs, np.inf).min(axis=0))
            self.columns[ch] = cols
            self.models[ch] = [
                HistGradientBoostingRegressor(
                    loss="quantile",
                    quantile=float(q),
                    max_iter=self.max_iter,
                    early_stopping=True,
                    random_state=self.seed,
                ).fit(xs[:, cols], raw[ok, ch])
                for q in LEVELS
            ]
        return self

    def predict(self, table: LapTable, channel: int) -> Mixture:
        x = self._features(table)[:, self.columns[channel]]
        pts = np.column_stack([m.predict(x) for m in self.models[channel]])
        return _physical(points_to_mixture(pts), table, channel)

    def covers(self, channel: int) -> bool:
        return channel in self.models


def fit_baselines(
    table: LapTable, channels: tuple[int, ...] = tuple(range(len(TARGET_NAMES))), seed: int = 0
) -> list[Baseline]:
    """The baselines fitted on ``table`` (training races) for the target columns
    ``channels``; early stopping of the boosting holds out 10 % of rows (seeded). Where no
    training row carries virtual energy, energy follows the fuel fit (relative departure
    from the reference, as the learned model's tied energy head)."""
    fitted = [
        EmpiricalBaseline().fit(table, channels),
        LinearBaseline().fit(table, channels),
        QuantileGBMBaseline(seed).fit(table, channels),
        QuantileGBMBaseline(seed, history=True).fit(table, channels),
    ]
    if ENERGY in channels:
        for b in fitted:
            for fits in _per_channel_fits(b):
                if ENERGY not in fits and FUEL in fits:
                    fits[ENERGY] = fits[FUEL]
    return fitted


def _per_channel_fits(b: Baseline) -> list[dict]:
    """The baseline's dicts keyed by target column (what ``covers`` and ``predict`` read)."""
    if isinstance(b, EmpiricalBaseline):
        return [b.tables]
    if isinstance(b, LinearBaseline):
        return [b.fits]
    if isinstance(b, QuantileGBMBaseline):
        return [b.models, b.columns]
    return []

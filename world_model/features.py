"""The one feature map from lap conditions to network inputs.

Training rows from the lap store and the engine's :class:`LapConditions` go through the same
function, :func:`build_features`, so the formula exists once. Inputs a data source lacks arrive
as NaN (lap-store rows only); :func:`build_features` keeps them NaN and adds one indicator per
input group, and the fitted scaler later maps NaN to the training mean (0 after scaling), so
the network sees "unknown" explicitly instead of a guessed value.

Effects the lap store cannot identify (no source records pace mode or driver rating, and
out-laps include pit-lane time) are not network inputs: the learned models apply the
parametric model's coefficients for them (see ``world_model.learned``).
"""

from __future__ import annotations

import torch

from world_model.interface import Compound, FlagState, LapConditions

TELEMETRY_INPUTS = ("fuel", "energy", "tread_lost_mean", "tread_lost_max", "tyre_temp_c_rel")
WEATHER_INPUTS = ("wetness", "track_temp_c")
FLAG_INPUTS = tuple(f"flag_{f.name.lower()}" for f in FlagState)
COMPOUND_INPUTS = tuple(f"compound_{c.name.lower()}" for c in Compound)

SCALAR_INPUTS = (
    *TELEMETRY_INPUTS,
    *WEATHER_INPUTS,
    "tyre_age_laps",
    "stint_laps",
    "damage",
    "night",
    "traffic",
    "recent_pace_pct",
    "last_lap_pct",
    "last_fuel_rel",
    "last_wear_rel",
    "log_ref_lap_time",
    "ref_fuel_per_lap",
    "ref_wear_per_lap",
    "fuel_missing",
    "tread_missing",
    "tyre_temp_missing",
    "wetness_missing",
    "track_temp_missing",
    "compound_missing",
    "recent_pace_missing",
    "last_lap_missing",
    "last_fuel_missing",
    "last_wear_missing",
)
FEATURE_NAMES: tuple[str, ...] = (*SCALAR_INPUTS, *FLAG_INPUTS, *COMPOUND_INPUTS)
"""Column names of the feature matrix, in order."""

N_FEATURES = len(FEATURE_NAMES)
_FLAG_CODES = torch.arange(len(FlagState))
_COMPOUND_CODES = torch.arange(len(Compound))


def _one_hot_rows(codes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """One-hot ``[len(values), N]`` of ``codes`` (one row per value); a negative code
    (unknown) gives NaNs."""
    out = (codes.unsqueeze(0) == values.unsqueeze(1)).float()
    if bool((codes < 0).any()):
        out[:, codes < 0] = float("nan")
    return out


LAST_LAP_CLIP_PCT = (-5.0, 100.0)
"""Bounds of the previous lap's departure from the reference [%] as an input (a lap under a
safety car runs ~60 % slow; a stoppage more)."""
LAST_USE_CLIP = (-1.0, 3.0)
"""Bounds of the previous lap's fuel or wear relative to the reference, as ``use / ref - 1``."""


def _relative(
    value: torch.Tensor | None, ref: torch.Tensor, clip: tuple[float, float]
) -> torch.Tensor:
    """``value / ref - 1`` clipped; NaN where the value is unknown or the reference is not
    positive."""
    if value is None:
        return torch.full_like(ref, float("nan"))
    rel = (value / ref).sub_(1.0).clamp_(*clip)
    return rel.masked_fill_(~(ref > 0), float("nan"))


def build_features(c: LapConditions, out: torch.Tensor | None = None) -> torch.Tensor:
    """Feature matrix ``[N, N_FEATURES]`` (float32) of the car-laps in ``c``.

        Lap-store rows may carry NaN in fuel, energy, tread, tyre and track temperature and
        wetness, and compound or flag ``-1`` (unknown); engine conditions carry none. One
        indicator per input group (fuel, tread, tyre temperature, wetness, track temperature,
        compound) marks the unknown. Tyre temperature is taken relative to the track [°C / 10];
        stint time is expressed in reference laps. The car's recent pace
    (``recent_pace_pct``) is unknown before its first green lap (and for every row when the
    caller does not track it): NaN plus an indicator. So are its previous lap's time, fuel and
    wear relative to the references (``last_*``: unknown after a pit lap), a car's own latest
    lap being what a strategist reads its next one from.

        The result is the transpose of a contiguous ``[N_FEATURES, N]`` tensor (``out`` when
        given, float32): every column is written (and standardised) as one contiguous row, several
        times faster than writing columns of a row-major matrix.
    """
    nan = torch.full((c.batch_size,), float("nan"))
    recent = nan if c.recent_pace_pct is None else c.recent_pace_pct
    last_lap = nan if c.last_lap_time_s is None else c.last_lap_time_s
    last_lap_pct = (last_lap / c.ref_lap_time_s).sub_(1.0).mul_(100.0).clamp_(*LAST_LAP_CLIP_PCT)
    last_fuel = _relative(c.last_fuel_used, c.ref_fuel_per_lap, LAST_USE_CLIP)
    last_wear = _relative(c.last_wear, c.ref_wear_per_lap, LAST_USE_CLIP)
    tread_lost = 1.0 - c.tread
    tread_lost_mean = tread_lost.mean(dim=1)
    columns = [
        c.fuel,
        c.energy,
        tread_lost_mean,
        tread_lost.amax(dim=1),
        (c.tyre_temp_c - c.track_temp_c) * 0.1,
        c.wetness,
        c.track_temp_c,
        c.tyre_age_laps,
        c.stint_time_s / c.ref_lap_time_s,
        c.damage,
        c.night,
        c.traffic,
        recent,
        last_lap_pct,
        last_fuel,
        last_wear,
        torch.log(c.ref_lap_time_s),
        c.ref_fuel_per_lap,
        c.ref_wear_per_lap,
        c.fuel.isnan(),
        tread_lost_mean.isnan(),
        c.tyre_temp_c.isnan(),
        c.wetness.isnan(),
        c.track_temp_c.isnan(),
        c.compound < 0,
        recent.isnan(),
        last_lap_pct.isnan(),
        last_fuel.isnan(),
        last_wear.isnan(),
    ]
    n = c.batch_size
    if out is None:
        out = torch.empty(N_FEATURES, n)
    for row, column in enumerate(columns):
        out[row] = column  # casts bool and double columns to float32
    flags = len(FLAG_INPUTS)
    out[len(columns) : len(columns) + flags] = _one_hot_rows(c.flag, _FLAG_CODES)
    out[len(columns) + flags :] = _one_hot_rows(c.compound, _COMPOUND_CODES)
    return out.t()


SIM_ONLY_VALUES = (
    "fuel",
    "energy",
    "tread_lost_mean",
    "tread_lost_max",
    "tyre_temp_c_rel",
    "wetness",
    "track_temp_c",
    "damage",
    "ref_fuel_per_lap",
    "ref_wear_per_lap",
    "last_fuel_rel",
    "last_wear_rel",
    *COMPOUND_INPUTS,
)
"""Inputs that come with lap times only from sim races: withheld from the lap-time head."""
SIM_ONLY_MISSING = (
    "fuel_missing",
    "tread_missing",
    "tyre_temp_missing",
    "wetness_missing",
    "track_temp_missing",
    "compound_missing",
    "last_fuel_missing",
    "last_wear_missing",
)

"""The weather of a real race, read from its laps: the wet spells a rebuilt race replays.

The spells script the track's wetness itself (``ForcedKind.WET``: no soaking or drying lag),
because the laps show the track, drying included, not the rain.

Timing data (Al Kamel, IMSA) records no weather, but rain shows in the laps: the whole
field slows down in every sector at once. A slow zone or a local yellow slows one or two
sectors, a neutralisation flags its laps, so the reading is:

- Green laps that neither start nor end in the pits, leaving out each car's laps next to a
  neutralised lap (partly run under it) and the standing start.
- Each lap's slowdown per sector over the car's own reference (its 10th percentile in that
  sector); where the store has no sector times, the whole lap.
- In each ``BIN_S`` of race time, the field's median slowdown per sector. A bin is wet when
  the least of them (rain slows every sector; a slow zone leaves at least one clean) is more
  than ``WET_SLOWDOWN`` over the race's dry level (its ``DRY_QUANTILE`` over the bins). A bin
  with too few laps (under ``MIN_BIN_SHARE`` of the race's median bin) is unread, and wet
  only where the read bins either side are (a long safety car called for rain keeps it).
- The rain's slowdown is the middle sector's over its dry level (the whole lap where there
  are no sectors). The intensity of a wet bin is the wetness at which the lap model's wet
  pace (``wet_penalty``, ``compound_pace``) gives that slowdown on the tyres the rule
  strategies run at that wetness (slicks below the rules' wet-tyre wetness, wets above).

Le Mans 2024 reads wet for 11.2 h (its wet evening and night, bridging the 4.8 h safety car
the rain brought, and a wet finish), Le Mans 2023 for 3.0 h; the dry races (Le Mans 2026,
Bahrain, Sebring) read dry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from world_model.interface import Compound, FlagState

BIN_S = 600.0
"""Width of a weather bin [s]: a Le Mans lap is ~3.5 min, so ~50 cars give ~150 laps a bin."""
MIN_BIN_SHARE = 0.4
"""A bin with fewer green laps than this share of the race's median bin is not read."""
DRY_QUANTILE = 25.0
"""The race's dry level: this percentile of the bins' slowdowns (most bins are dry)."""
WET_SLOWDOWN = 0.04
"""Slowdown over the dry level, fraction, in every sector, above which a bin is wet (every
bin of the three dry races reads at most 0.020: Le Mans 2026 0.020, Bahrain 0.017, Sebring
0.008)."""
INTENSITY_STEP = 0.05
"""Intensities are rounded to this step, so a steady spell is one scripted event."""
MIN_REFERENCE_LAPS = 10


def intensity_for_slowdown(
    slowdown: float,
    wet_penalty: Sequence[float],
    compound_pace: Sequence[float],
    wet_tyre_wetness: float,
) -> float:
    """The wetness (0 to 1) at which the lap model's wet pace slows the field by ``slowdown``
    (fraction over its dry pace on mediums), on slicks below ``wet_tyre_wetness`` and on wets
    above it, as the rule strategies run."""
    slick = wet_penalty[int(Compound.MEDIUM)] - compound_pace[int(Compound.MEDIUM)]
    wet_dry = compound_pace[int(Compound.WET)] - compound_pace[int(Compound.MEDIUM)]
    wet_full = wet_penalty[int(Compound.WET)] - compound_pace[int(Compound.MEDIUM)]
    on_wets_at_switch = wet_dry + (wet_full - wet_dry) * wet_tyre_wetness
    if slowdown < on_wets_at_switch or wet_full <= wet_dry:
        w = slowdown / slick if slick > 0 else 1.0
        return float(np.clip(w, 0.0, wet_tyre_wetness))
    w = (slowdown - wet_dry) / (wet_full - wet_dry)
    return float(np.clip(w, wet_tyre_wetness, 1.0))


def _green_laps(conn: sqlite3.Connection, session_id: int) -> tuple[np.ndarray, ...]:
    """(car, race time at the lap's end [s], times ``[N, S]`` per sector or the lap) of the
    laps the reading uses."""
    rows = conn.execute(
        "SELECT car_id, lap, race_time_s, lap_time_s, s1_s, s2_s, s3_s, flag, pit_in, pit_out, "
        "timed FROM laps WHERE session_id = ? ORDER BY car_id, lap",
        (session_id,),
    ).fetchall()
    if not rows:
        return np.zeros(0, int), np.zeros(0), np.zeros((0, 1))
    a = np.array(rows, dtype=float)
    car, lap, t, lap_s = a[:, 0].astype(int), a[:, 1], a[:, 2], a[:, 3]
    sectors = a[:, 4:7]
    flag = np.nan_to_num(a[:, 7], nan=0.0)
    neutral = np.isin(flag, (int(FlagState.FCY), int(FlagState.SAFETY_CAR)))
    same_prev = np.r_[False, car[1:] == car[:-1]]
    same_next = np.r_[car[:-1] == car[1:], False]
    near_neutral = (
        neutral | (same_prev & np.r_[False, neutral[:-1]]) | (same_next & np.r_[neutral[1:], False])
    )
    keep = (
        (flag == int(FlagState.GREEN))
        & ~near_neutral
        & (a[:, 8] == 0)
        & (a[:, 9] == 0)
        & (a[:, 10] == 1)
        & (lap > 1)
        & np.isfinite(lap_s)
        & np.isfinite(t)
    )
    # Sector times where (nearly) every kept lap has them, else the lap.
    with_sectors = np.isfinite(sectors).all(axis=1) & (sectors > 0).all(axis=1)
    if keep.any() and with_sectors[keep].mean() > 0.9:
        keep &= with_sectors
        times = sectors
    else:
        times = lap_s[:, None]
    return car[keep], t[keep], times[keep]


def wet_spells(
    conn: sqlite3.Connection,
    session_id: int,
    race_s: float,
    wet_penalty: Sequence[float],
    compound_pace: Sequence[float],
    wet_tyre_wetness: float,
) -> list[dict[str, float | str]]:
    """The race's wet spells as scripted track wetness (``[[forced_events]]`` tables: kind
    "wet", start_s, end_s, intensity), earliest first; empty for a dry race."""
    car, t, times = _green_laps(conn, session_id)
    if car.size == 0:
        return []
    ratio = np.full(times.shape, np.nan)
    for c in np.unique(car):
        rows = car == c
        if rows.sum() < MIN_REFERENCE_LAPS:
            continue
        ratio[rows] = times[rows] / np.percentile(times[rows], 10, axis=0) - 1.0
    ok = np.isfinite(ratio).all(axis=1)
    car, t, ratio = car[ok], t[ok], ratio[ok]
    n_bins = int(np.ceil(race_s / BIN_S))
    bin_of = np.clip((t // BIN_S).astype(int), 0, n_bins - 1)
    counts = np.bincount(bin_of, minlength=n_bins)
    if not counts.any():
        return []
    enough = counts >= MIN_BIN_SHARE * np.median(counts[counts > 0])
    least = np.full(n_bins, np.nan)
    middle = np.full(n_bins, np.nan)
    for b in np.flatnonzero(enough):
        per_sector = np.median(ratio[bin_of == b], axis=0)
        least[b], middle[b] = float(per_sector.min()), float(np.median(per_sector))
    read = np.isfinite(least)
    if not read.any():
        return []
    wet = read & (least - np.percentile(least[read], DRY_QUANTILE) > WET_SLOWDOWN)
    pace = middle - np.percentile(middle[read], DRY_QUANTILE)
    intensity = np.zeros(n_bins)
    for b in np.flatnonzero(wet):
        intensity[b] = intensity_for_slowdown(
            float(pace[b]), wet_penalty, compound_pace, wet_tyre_wetness
        )
    # An unread bin between two wet read bins stays wet, at the lesser intensity.
    idx = np.flatnonzero(read)
    for b in np.flatnonzero(~read):
        before, after = idx[idx < b], idx[idx > b]
        if before.size and after.size and wet[before[-1]] and wet[after[0]]:
            intensity[b] = min(intensity[before[-1]], intensity[after[0]])
    intensity = np.round(intensity / INTENSITY_STEP) * INTENSITY_STEP
    spells: list[dict[str, float | str]] = []
    for b in range(n_bins):
        if intensity[b] <= 0.0:
            continue
        start, end = b * BIN_S, min((b + 1) * BIN_S, race_s)
        last = spells[-1] if spells else None
        if last and last["end_s"] == start and last["intensity"] == round(intensity[b], 3):
            last["end_s"] = end
        else:
            spells.append(
                {"kind": "wet", "start_s": start, "end_s": end, "intensity": round(intensity[b], 3)}
            )
    return spells

"""One set of race statistics, computed the same way on any race in the lap store.

A real race (ingested timing data) and a simulated one (``engine.export`` writes each replica
as a session of the same schema) go through the same SQL and the same arithmetic, so a
validation compares like with like. Everything is read from the ``laps`` and ``cars`` tables:
pit stops are in-laps, driver changes the laps' ``driver_change`` flags, neutralisations the
line crossings under each flag (clustered: a gap of more than :data:`FLAG_GAP_S` between
crossings under the flag starts a new period), so a source's own ``flag_periods`` table (which
readers split differently) never enters.

Slow-zone periods are a statistic only where the session records any (timing data does not).
Statistics are named ``group`` or ``group/CLASS`` (classes are the engine's, through
:func:`data.class_names.engine_class`); a class a race does not run is absent, not zero.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from data.class_names import ENGINE_CLASSES, engine_class

FLAG_GAP_S = 360.0
"""Crossings under the same flag more than 6 minutes apart belong to different periods."""
FLAG_KINDS = {"fcy": 2, "sc": 3, "slow_zone": 4}
"""Statistic name -> ``laps.flag`` code."""
GREEN_QUANTILES = (0.1, 0.5, 0.9)
GREEN_FLAGS = (0, 1, 4)
"""Laps counted as green: timing data (Al Kamel's ``FLAG_AT_FL``) knows only green, FCY,
safety car and chequered, so a lap through a local yellow or a slow zone is green there; a
simulated store records those flags, and they count as green here so both read alike."""
UNRECORDED_UNLESS_SEEN = (4,)
"""Flags whose periods are a statistic only in a session that records any (slow zones: no
timing source in the store records them, so a real race has none to compare)."""


@dataclass(frozen=True)
class _Laps:
    """A session's laps as columns, in (car, lap) order."""

    car: np.ndarray
    lap: np.ndarray
    lap_time_s: np.ndarray
    race_time_s: np.ndarray
    class_position: np.ndarray
    pit_in: np.ndarray
    pit_out: np.ndarray
    flag: np.ndarray
    driver_change: np.ndarray
    timed: np.ndarray


def _load(conn: sqlite3.Connection, session_id: int) -> _Laps:
    rows = conn.execute(
        "SELECT car_id, lap, lap_time_s, race_time_s, class_position, pit_in, pit_out, flag, "
        "driver_change, timed FROM laps WHERE session_id = ? ORDER BY car_id, lap",
        (session_id,),
    ).fetchall()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 10

    def arr(i: int) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in cols[i]], dtype=float)

    return _Laps(*(arr(i) for i in range(10)))


def _clusters(times_s: np.ndarray) -> list[tuple[float, float]]:
    """(first, last) crossing time [s] of each run of crossings at most FLAG_GAP_S apart."""
    if times_s.size == 0:
        return []
    t = np.sort(times_s)
    breaks = np.nonzero(np.diff(t) > FLAG_GAP_S)[0]
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [t.size - 1]])
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, ends, strict=True)]


def _stints(car: np.ndarray, lap: np.ndarray, pit_in: np.ndarray) -> list[tuple[int, int]]:
    """(car id, laps) of every stint that ended in a stop (the start to the first in-lap, then
    between in-laps); the last stint, cut by the flag or a retirement, is left out."""
    out = []
    for c in np.unique(car):
        own = car == c
        ins = lap[own][pit_in[own] == 1]
        bounds = np.concatenate([[0.0], ins])
        out.extend((int(c), int(n)) for n in np.diff(bounds) if n > 0)
    return out


def race_stats(
    conn: sqlite3.Connection, session_id: int, class_map: Mapping[str, str] | None = None
) -> dict[str, float]:
    """The statistics of one session of the lap store (see the module docstring).

    Cars whose class maps to no engine class (``class_map`` extends the default table) are
    left out of everything, as the scenario builder leaves them out of the field.
    """
    car_class: dict[int, str] = {}
    retired = 0
    for car_id, cls, status in conn.execute(
        "SELECT car_id, class, finish_status FROM cars WHERE session_id = ?", (session_id,)
    ):
        engine = engine_class(cls, class_map)
        if engine is not None:
            car_class[int(car_id)] = engine
            retired += status == "retired"
    if not car_class:
        raise ValueError(f"session {session_id}: no car of a known class")
    laps = _load(conn, session_id)
    keep = np.isin(laps.car, list(car_class))
    laps = _Laps(*(getattr(laps, f)[keep] for f in _Laps.__dataclass_fields__))
    cls_of = np.array([car_class[int(c)] for c in laps.car], dtype=object)
    classes = [c for c in ENGINE_CLASSES if c in set(car_class.values())]
    stats: dict[str, float] = {}

    laps_per_car = {c: 0 for c in car_class}
    for c in np.unique(laps.car):
        laps_per_car[int(c)] = int(laps.lap[laps.car == c].max())
    stats["winner_laps"] = float(max(laps_per_car.values()))
    for k in classes:
        own = [n for c, n in laps_per_car.items() if car_class[c] == k]
        stats[f"class_winner_laps/{k}"] = float(max(own))
        stats[f"median_laps/{k}"] = float(np.median(own))

    stops_per_car = {c: 0 for c in car_class}
    for c in laps.car[laps.pit_in == 1]:
        stops_per_car[int(c)] += 1
    stats["pit_stops"] = float(sum(stops_per_car.values()))
    for k in classes:
        own = [n for c, n in stops_per_car.items() if car_class[c] == k]
        stats[f"pit_stops_per_car/{k}"] = float(np.mean(own))

    stints = _stints(laps.car, laps.lap, laps.pit_in)
    stats["median_stint_laps"] = float(np.median([n for _, n in stints])) if stints else np.nan
    for k in classes:
        own = [n for c, n in stints if car_class[c] == k]
        if own:
            stats[f"median_stint_laps/{k}"] = float(np.median(own))

    stats["driver_changes"] = float(np.nansum(laps.driver_change))
    for name, code in FLAG_KINDS.items():
        if code in UNRECORDED_UNLESS_SEEN and not (laps.flag == code).any():
            continue
        periods = _clusters(laps.race_time_s[laps.flag == code])
        stats[f"{name}_periods"] = float(len(periods))
        stats[f"{name}_minutes"] = sum(b - a for a, b in periods) / 60.0

    green = (
        np.isin(laps.flag, GREEN_FLAGS)
        & (laps.pit_in == 0)
        & (laps.pit_out == 0)
        & (laps.lap > 1)
        & (laps.timed == 1)
        & np.isfinite(laps.lap_time_s)
    )
    for k in classes:
        times = laps.lap_time_s[green & (cls_of == k)]
        if times.size:
            for q in GREEN_QUANTILES:
                stats[f"green_lap_q{round(q * 100)}_s/{k}"] = float(np.quantile(times, q))

    stats["retirements"] = float(retired)
    same_car = laps.car[1:] == laps.car[:-1]
    moved = same_car & (laps.class_position[1:] != laps.class_position[:-1])
    moved &= np.isfinite(laps.class_position[1:]) & np.isfinite(laps.class_position[:-1])
    stats["class_position_changes"] = float(moved.sum())
    return stats


def session_ids(conn: sqlite3.Connection, name_prefix: str) -> list[int]:
    """Sessions whose name starts with ``name_prefix``, in id order (a simulated run's
    replicas are ``LABEL/replicaN``)."""
    rows = conn.execute(
        "SELECT session_id FROM sessions WHERE substr(name, 1, ?) = ? ORDER BY session_id",
        (len(name_prefix), name_prefix),
    ).fetchall()
    return [int(r[0]) for r in rows]

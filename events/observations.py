"""What the incident models learn from: statistics of real and simulated races read from the
lap store (``data/schema.sql``) with plain SQL.

A race is every session sharing one ``sessions.name`` (a timing export may arrive as separate
laps, results and weather files). Only what a source records is used: a source with no
contact records says nothing about contacts (absent is not zero), timing data mark FCY and
safety car but not slow zones or local yellows, and so on.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from events.classes import class_group
from events.models.contacts import FEATURES, ContactData
from events.models.damage import DamageData
from events.models.failures import FailureData
from events.models.flags import FlagLapData
from events.models.neutralisations import NeutralisationData
from events.models.weather import TemperatureData
from world_model.interface import FlagState

REAL_SERIES: tuple[str, ...] = ("WEC", "IMSA")
"""Series of real races (the rest are simulator races)."""
NEUTRALISATION_SERIES: tuple[str, ...] = ("WEC",)
"""Series whose FCY and safety car match the engine's: IMSA's cautions are a third
procedure (pace car with wave-bys, ~15 min), neither WEC's FCY nor its safety car."""
CONTACT_MERGE_S = 2.0
"""Contact reports of one pair of cars within this many seconds are one contact."""
TRAFFIC_WINDOW_S = 5.0
"""A car is in traffic with those crossing the line within this many seconds of it."""


class StoreError(ValueError):
    """The lap store lacks what a model needs, naming the file and table."""


@dataclass(frozen=True)
class Race:
    name: str
    series: str
    duration_s: float | None
    start_hour_of_day: float | None
    lap_km: float | None
    session_ids: tuple[int, ...]


def connect(path: str | Path) -> sqlite3.Connection:
    """Open the lap store read-only."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no lap store there")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = {"sessions", "cars", "laps", "flag_periods", "incidents", "weather"} - tables
    if missing:
        conn.close()
        raise StoreError(f"{path}: not a lap store, tables {sorted(missing)} missing")
    return conn


def races(conn: sqlite3.Connection) -> list[Race]:
    """Every race of the store (session type 'race'), by name."""
    rows = conn.execute(
        "SELECT name, series, MAX(duration_s), MAX(start_hour_of_day),"
        " MAX(track_length_m) / 1000.0, GROUP_CONCAT(session_id) FROM sessions"
        " WHERE session_type = 'race'"
        " GROUP BY name, series ORDER BY name"
    ).fetchall()
    return [
        Race(n, s or "", d, h, km, tuple(int(i) for i in str(ids).split(",")))
        for n, s, d, h, km, ids in rows
    ]


def _ids(race: Race) -> str:
    return ",".join(str(i) for i in race.session_ids)


def car_hours(conn: sqlite3.Connection, race: Race) -> float:
    """Time cars spent in the race [h]: each car's last line crossing, summed."""
    (total,) = conn.execute(
        f"SELECT SUM(t) FROM (SELECT MAX(race_time_s) AS t FROM laps"
        f" WHERE session_id IN ({_ids(race)}) GROUP BY car_id)"
    ).fetchone()
    return float(total or 0.0) / 3600.0


def green_car_hours(conn: sqlite3.Connection, race: Race) -> float:
    """Time cars spent in the race outside FCY and safety-car periods [h]: the exposure of a
    new neutralisation, since race control calls none while one runs (the engine's race
    control neither), so a race with hours behind the safety car had fewer hours to have
    FCYs in."""
    rows = conn.execute(
        f"SELECT start_s, end_s FROM flag_periods WHERE session_id IN ({_ids(race)})"
        " AND kind IN (2, 3) AND end_s IS NOT NULL AND end_s > start_s ORDER BY start_s"
    ).fetchall()
    neutral_s, reach = 0.0, -np.inf
    for start, end in rows:  # the union of the periods
        neutral_s += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    hours = race_hours(conn, race)
    if hours <= 0.0:
        return car_hours(conn, race)
    return car_hours(conn, race) * max(0.0, 1.0 - neutral_s / 3600.0 / hours)


def race_hours(conn: sqlite3.Connection, race: Race) -> float:
    """Race length [h]: the scheduled duration, else the last line crossing."""
    if race.duration_s:
        return race.duration_s / 3600.0
    (last,) = conn.execute(
        f"SELECT MAX(race_time_s) FROM laps WHERE session_id IN ({_ids(race)})"
    ).fetchone()
    return float(last or 0.0) / 3600.0


def flag_periods(conn: sqlite3.Connection, race: Race, kind: FlagState) -> np.ndarray:
    """Durations [s] of the race's periods of ``kind`` with a known end."""
    rows = conn.execute(
        f"SELECT end_s - start_s FROM flag_periods WHERE session_id IN ({_ids(race)})"
        " AND kind = ? AND end_s IS NOT NULL AND end_s > start_s ORDER BY start_s",
        (int(kind),),
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.float64)


def neutralisation_data(conn: sqlite3.Connection, rs: list[Race]) -> NeutralisationData:
    """FCY and safety-car counts, exposure and durations of races of the series in
    :data:`NEUTRALISATION_SERIES` (with a known lap length)."""
    rs = [r for r in rs if r.series in NEUTRALISATION_SERIES and r.lap_km]
    hours = [green_car_hours(conn, r) for r in rs]
    periods = {
        "fcy": [flag_periods(conn, r, FlagState.FCY) for r in rs],
        "sc": [flag_periods(conn, r, FlagState.SAFETY_CAR) for r in rs],
    }

    def flat(xs: list[np.ndarray]) -> torch.Tensor:
        return torch.tensor(np.concatenate([np.zeros(0), *xs]), dtype=torch.float32)

    return NeutralisationData(
        car_hours=torch.tensor(hours, dtype=torch.float32),
        counts={
            k: torch.tensor([len(x) for x in v], dtype=torch.float32) for k, v in periods.items()
        },
        durations_s={k: flat(v) for k, v in periods.items()},
        lap_km={
            k: flat([np.full(len(x), r.lap_km) for x, r in zip(v, rs, strict=True)])
            for k, v in periods.items()
        },
    )


@dataclass(frozen=True)
class CarRecord:
    race: str
    number: str
    class_name: str | None
    group: int | None
    retired: bool
    age_h: float


def car_records(conn: sqlite3.Connection, race: Race) -> list[CarRecord]:
    """Every car of a real race with a known finish status and its last line crossing."""
    ids = _ids(race)
    status: dict[str, tuple[str | None, str]] = {}
    for number, cls, st in conn.execute(
        f"SELECT number, class, finish_status FROM cars WHERE session_id IN ({ids})"
        " AND finish_status IN ('finished', 'retired')"
    ):
        status[number] = (cls, st)
    last: dict[str, float] = {}
    for number, t in conn.execute(
        f"SELECT c.number, MAX(l.race_time_s) FROM laps l JOIN cars c USING (car_id)"
        f" WHERE l.session_id IN ({ids}) GROUP BY c.number"
    ):
        if t is not None:
            last[number] = float(t)
    out = []
    for number, (cls, st) in sorted(status.items()):
        age_s = last.get(number)
        if age_s is None and st == "retired":
            age_s = 60.0  # retired before completing a lap
        if age_s is None:
            continue
        out.append(
            CarRecord(race.name, number, cls, class_group(cls), st == "retired", age_s / 3600.0)
        )
    return out


def failure_data(
    conn: sqlite3.Connection, rs: list[Race], other_hazard: float = 0.0
) -> FailureData:
    """Survival data of the cars of real races whose class maps onto a group."""
    real = [r for r in rs if r.series in REAL_SERIES]
    cars = [(i, c) for i, r in enumerate(real) for c in car_records(conn, r) if c.group is not None]
    if not cars:
        raise StoreError("no cars with a finish status in the real races chosen")
    return FailureData(
        age_h=torch.tensor([max(c.age_h, 1e-3) for _, c in cars], dtype=torch.float32),
        group=torch.tensor([c.group for _, c in cars], dtype=torch.int64),
        retired=torch.tensor([float(c.retired) for _, c in cars], dtype=torch.float32),
        race=torch.tensor([i for i, _ in cars], dtype=torch.int64),
        races=len(real),
        other_hazard=other_hazard,
    )


@dataclass(frozen=True)
class ContactRecord:
    race: str
    car_hours: float
    contacts: int
    terminal: int


def contact_data(conn: sqlite3.Connection, rs: list[Race]) -> tuple[ContactData, DamageData]:
    """Per-lap exposure, traffic and contacts of races that record contacts, and whether each
    contact ended the car's race (it retired and ran no further lap).

    A contact reported several times (by both cars, or in bursts) within
    :data:`CONTACT_MERGE_S` is one contact, charged to the car reporting it first; reports
    of magnitude 0 are ignored. Only traffic varies in these races (day, dry, one class,
    pace mode and driver rating unknown), so only the traffic slope and the rate learn.
    """
    hours, features, sim, counts, terminal = [], [], [], [], []
    for race in rs:
        ids = _ids(race)
        reports = conn.execute(
            f"SELECT race_time_s, car_id, other_car_id, magnitude FROM incidents"
            f" WHERE session_id IN ({ids}) AND kind = 'contact' AND other_car_id IS NOT NULL"
            " AND COALESCE(magnitude, 1) > 0 ORDER BY race_time_s"
        ).fetchall()
        if not reports:
            continue
        laps = conn.execute(
            f"SELECT car_id, lap, race_time_s, lap_time_s FROM laps WHERE session_id IN ({ids})"
            " AND race_time_s IS NOT NULL AND lap_time_s > 0 ORDER BY race_time_s"
        ).fetchall()
        retired_cars = {
            cid
            for (cid,) in conn.execute(
                f"SELECT car_id FROM cars WHERE session_id IN ({ids}) AND finish_status = 'retired'"
            )
        }
        crossing = np.array([row[2] for row in laps])
        car_of = np.array([row[0] for row in laps])
        last_crossing: dict[int, float] = defaultdict(float)
        for cid, _, t, _ in laps:
            last_crossing[cid] = max(last_crossing[cid], t)
        events: list[tuple[float, int]] = []
        seen: dict[tuple[int, int], float] = {}
        for t, car, other, _mag in reports:
            pair = (min(car, other), max(car, other))
            if pair in seen and t - seen[pair] <= CONTACT_MERGE_S:
                seen[pair] = t
                continue
            seen[pair] = t
            events.append((t, car))
        per_lap: dict[tuple[int, int], int] = defaultdict(int)
        lap_windows: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
        for cid, lap, t, lt in laps:
            lap_windows[cid].append((t - lt, t, lap))
        for t, car in events:
            for start, end, lap in lap_windows.get(car, []):
                if start <= t <= end:
                    per_lap[(car, lap)] += 1
                    break
            else:
                continue
            terminal.append(float(car in retired_cars and last_crossing[car] <= t + 1.0))
        for cid, lap, t, lt in laps:
            near = np.abs(crossing - t) <= TRAFFIC_WINDOW_S
            start_near = np.abs(crossing - (t - lt)) <= TRAFFIC_WINDOW_S
            traffic = 0.5 * (
                float((near & (car_of != cid)).sum()) + float((start_near & (car_of != cid)).sum())
            )
            hours.append(lt / 3600.0)
            features.append([traffic] + [0.0] * (len(FEATURES) - 1))
            sim.append(0.0 if race.series in REAL_SERIES else 1.0)
            counts.append(float(per_lap.get((cid, lap), 0)))
    if not hours:
        raise StoreError("no race in the store records contacts")
    return (
        ContactData(
            hours=torch.tensor(hours, dtype=torch.float32),
            features=torch.tensor(features, dtype=torch.float32),
            sim=torch.tensor(sim, dtype=torch.float32),
            counts=torch.tensor(counts, dtype=torch.float32),
        ),
        DamageData(terminal=torch.tensor(terminal, dtype=torch.float32)),
    )


def flag_lap_data(conn: sqlite3.Connection, rs: list[Race]) -> FlagLapData:
    """``log(lap time / reference)`` of laps run wholly inside an FCY or safety-car period
    (the lap starts after the period's start and ends before its end; neither in nor out of
    the pits). The reference is the car's 10th percentile of green laps that neither start
    nor end in the pits. FCY periods are often shorter than a lap at Le Mans, so few FCY
    laps qualify."""
    out: dict[str, list[float]] = {"fcy": [], "sc": []}
    race_of: dict[str, list[int]] = {"fcy": [], "sc": []}
    rs = [r for r in rs if r.series in NEUTRALISATION_SERIES]
    for index, race in enumerate(rs):
        ids = _ids(race)
        rows = conn.execute(
            f"SELECT car_id, race_time_s, lap_time_s, COALESCE(flag, -1), pit_in, pit_out"
            f" FROM laps WHERE session_id IN ({ids}) AND lap_time_s > 0"
            " AND race_time_s IS NOT NULL"
        ).fetchall()
        if not rows:
            continue
        car, end, lap_time, flag, pit_in, pit_out = (np.array(c) for c in zip(*rows, strict=True))
        clean = (pit_in == 0) & (pit_out == 0)
        ref = np.full(len(rows), np.nan)
        for c in np.unique(car):
            green = (car == c) & clean & (flag == int(FlagState.GREEN))
            if green.sum() >= 10:
                ref[car == c] = np.quantile(lap_time[green], 0.1)
        start = end - lap_time
        for kind, state in (("fcy", FlagState.FCY), ("sc", FlagState.SAFETY_CAR)):
            inside = np.zeros(len(rows), dtype=bool)
            for p_start, p_end in conn.execute(
                f"SELECT start_s, end_s FROM flag_periods WHERE session_id IN ({ids})"
                " AND kind = ? AND end_s IS NOT NULL",
                (int(state),),
            ):
                inside |= (start >= p_start) & (end <= p_end)
            keep = inside & clean & np.isfinite(ref)
            out[kind].extend(np.log(lap_time[keep] / ref[keep]).tolist())
            race_of[kind].extend([index] * int(keep.sum()))
    return FlagLapData(
        log_ratio={k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()},
        race={k: torch.tensor(v, dtype=torch.int64) for k, v in race_of.items()},
        races=len(rs),
    )


def temperature_data(
    conn: sqlite3.Connection, rs: list[Race], thin_s: float = 900.0
) -> TemperatureData:
    """Weather-station air and track temperatures at local time of day, one sample per
    ``thin_s`` (minute samples are strongly autocorrelated)."""
    hours, air, track, wet = [], [], [], []
    for race in rs:
        if race.start_hour_of_day is None:
            continue
        rows = conn.execute(
            f"SELECT race_time_s, air_temp_c, track_temp_c, wetness FROM weather"
            f" WHERE session_id IN ({_ids(race)}) AND air_temp_c IS NOT NULL"
            " AND track_temp_c IS NOT NULL ORDER BY race_time_s"
        ).fetchall()
        next_t = -math.inf
        for t, a, tr, w in rows:
            if t < next_t:
                continue
            next_t = t + thin_s
            hours.append((race.start_hour_of_day + t / 3600.0) % 24.0)
            air.append(a)
            track.append(tr)
            wet.append(w or 0.0)
    if not hours:
        raise StoreError("no weather-station temperatures in the races chosen")
    return TemperatureData(
        hour_of_day=torch.tensor(hours, dtype=torch.float32),
        air_c=torch.tensor(air, dtype=torch.float32),
        track_c=torch.tensor(track, dtype=torch.float32),
        wetness=torch.tensor(wet, dtype=torch.float32),
    )

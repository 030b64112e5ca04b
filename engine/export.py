"""Simulated races into the lap store's schema (``data/schema.sql``), one session per replica.

The file is written atomically: an existing store is copied beside itself, the races are
added in one transaction, and the copy replaces the original; a re-export of the same run
(same scenario, seed, replicas and strategy) replaces its earlier rows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from data.store import open_store
from engine.result import LAP_COLUMNS, RaceResult
from engine.scenario import Scenario
from world_model.interface import Compound

# The lap store's own columns: RaceResult.laps less its simulation-only ones.
_LAP_COLUMNS = tuple(c for c in LAP_COLUMNS if c not in ("replica", "car", "driver", "pace_mode"))
STORE_INCIDENT: dict[str, tuple[str, str]] = {
    "contact": ("contact", "contact"),
    "crash": ("contact", "contact that ended the car's race"),
    "failure": ("retirement", "mechanical failure"),
    "out_of_fuel": ("retirement", "out of fuel"),
    "ran_dry": ("slow", "ran out of fuel and crawled to the pits"),
    "puncture": ("puncture", "puncture"),
    "damage": ("impact", "scripted damage"),
    "off": ("impact", "off on slicks on a wet track"),
}
"""Engine incident kind -> (the lap store's ``incidents.kind``, its description): contacts are
stored as the readers store them (with the other car, so ``events.observations`` reads a
simulated store as it reads a real one), retirements with their cause."""
CONTACT_PUNCTURE = ("contact", "contact that punctured a tyre")
"""A puncture with another car involved: the engine logs the puncture, the store the contact."""


def store_incident(kind: str, other_car: int) -> tuple[str, str]:
    """(``incidents.kind``, description) of an engine incident; ``other_car`` -1 for none."""
    if kind == "puncture" and other_car >= 0:
        return CONTACT_PUNCTURE
    return STORE_INCIDENT[kind]


_INT_COLUMNS = {"lap", "position", "class_position", "pit_in", "pit_out", "compound", "flag"}


def _value(name: str, v: float) -> float | int | None:
    if isinstance(v, float) and np.isnan(v):
        return None
    if name in _INT_COLUMNS or name in ("driver_change", "tyre_age_laps"):
        return int(v)
    return float(v)


def _lap_at(line_s: np.ndarray, laps: np.ndarray, t: float) -> int | None:
    """The lap a car was driving at race time ``t`` [s], from its line crossings [s] and lap
    numbers in lap order (the first lap ending at or after ``t``; after the last crossing, the
    one after it)."""
    k = int(np.searchsorted(line_s, t, side="left"))
    if k < len(laps):
        return int(laps[k])
    return int(laps[-1]) + 1 if len(laps) else None


def write_lap_store(
    result: RaceResult, scenario: Scenario, path: str | Path, run_label: str
) -> int:
    """Add every recorded lap of ``result`` to the lap store at ``path``; the rows written."""
    if result.laps is None:
        raise ValueError("the result has no laps: simulate with record_laps=True")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if path.exists():
            shutil.copyfile(path, tmp)
        else:
            Path(tmp).unlink()
        conn = open_store(tmp)
        try:
            n = _write(conn, result, scenario, run_label)
        finally:
            conn.close()
        os.replace(tmp, path)
        return n
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(conn: sqlite3.Connection, result: RaceResult, scenario: Scenario, label: str) -> int:
    laps = result.laps
    assert laps is not None
    source = f"stintsim://simulate/{label}"
    digest = hashlib.sha256(source.encode()).hexdigest()
    conn.execute("BEGIN")
    try:
        conn.execute("DELETE FROM sources WHERE path = ?", (source,))
        cur = conn.execute(
            "INSERT INTO sources (path, reader, sha256, size_bytes, ingested_at) "
            "VALUES (?, 'stintsim_simulate', ?, 0, ?)",
            (source, digest, datetime.now(UTC).isoformat()),
        )
        source_id = cur.lastrowid
        rows = 0
        replicas = np.unique(laps["replica"]).astype(int)
        for r in replicas:
            sel = laps["replica"] == r
            rows += _write_replica(conn, source_id, result, scenario, label, int(r), laps, sel)
        conn.execute("COMMIT")
        return rows
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _insert_cars(
    conn: sqlite3.Connection,
    session_id: int | None,
    result: RaceResult,
    scenario: Scenario,
    local: int,
) -> tuple[list[int], list[list[int]]]:
    """Insert the cars and drivers of chunk-local replica ``local``; (car row ids, each
    car's driver row ids)."""
    car_ids: list[int] = []
    driver_ids: list[list[int]] = []
    for c, e in enumerate(scenario.entries):
        status = "retired" if result.retired[local, c] else "finished"
        cur = conn.execute(
            "INSERT INTO cars (session_id, number, class, team, finish_status, laps_completed) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                session_id,
                e.number,
                e.car_class,
                e.team,
                status,
                int(result.laps_completed[local, c]),
            ),
        )
        car_ids.append(int(cur.lastrowid or 0))
        ids = []
        for k, d in enumerate(e.drivers):
            cur = conn.execute(
                "INSERT INTO drivers (car_id, name, driver_number) VALUES (?, ?, ?)",
                (car_ids[-1], d.name, k + 1),
            )
            ids.append(int(cur.lastrowid or 0))
        driver_ids.append(ids)
    return car_ids, driver_ids


def _write_replica(
    conn: sqlite3.Connection,
    source_id: int | None,
    result: RaceResult,
    scenario: Scenario,
    label: str,
    replica: int,
    laps: dict[str, np.ndarray],
    sel: np.ndarray,
) -> int:
    local = replica - result.first_replica
    cur = conn.execute(
        "INSERT INTO sessions (source_id, name, series, track, session_type, start_hour_of_day, "
        "duration_s, laps_scheduled, track_length_m) VALUES (?, ?, 'stintsim', ?, 'race', ?, ?, "
        "?, ?)",
        (
            source_id,
            f"{label}/replica{replica}",
            scenario.track.name,
            scenario.race.start_hour_of_day,
            scenario.race.duration_s,
            scenario.race.laps,
            scenario.track.lap_length_m,
        ),
    )
    session_id = cur.lastrowid
    car_ids, driver_ids = _insert_cars(conn, session_id, result, scenario, local)
    cols = {k: v[sel] for k, v in laps.items()}
    names = ", ".join(_LAP_COLUMNS)
    marks = ", ".join("?" for _ in _LAP_COLUMNS)
    batch = []
    for i in range(int(sel.sum())):
        c = int(cols["car"][i])
        comp = int(cols["compound"][i])
        batch.append(
            (
                session_id,
                car_ids[c],
                driver_ids[c][int(cols["driver"][i])],
                *(_value(k, cols[k][i]) for k in _LAP_COLUMNS),
                Compound(comp).name.lower(),
            )
        )
    conn.executemany(
        f"INSERT INTO laps (session_id, car_id, driver_id, {names}, compound_name) "
        f"VALUES (?, ?, ?, {marks}, ?)",
        batch,
    )
    stops = np.nonzero(cols["pit_in"] == 1)[0]
    conn.executemany(
        "INSERT INTO pit_stops (session_id, car_id, lap, race_time_s) VALUES (?, ?, ?, ?)",
        [
            (
                session_id,
                car_ids[int(cols["car"][i])],
                int(cols["lap"][i]),
                float(cols["race_time_s"][i]),
            )
            for i in stops
        ],
    )
    fp = result.flag_periods
    mine = fp["replica"] == replica
    conn.executemany(
        "INSERT INTO flag_periods (session_id, kind, start_s, end_s) VALUES (?, ?, ?, ?)",
        [
            (session_id, int(k), float(a), float(b))
            for k, a, b in zip(
                fp["kind"][mine], fp["start_s"][mine], fp["end_s"][mine], strict=True
            )
        ],
    )
    inc = result.incidents
    mine = np.nonzero(inc["replica"] == replica)[0]
    rows = []
    for i in mine:  # incidents are few: a handful per race
        car, other, t = int(inc["car"][i]), int(inc["other_car"][i]), float(inc["race_time_s"][i])
        kind, description = store_incident(str(inc["kind"][i]), other)
        own = cols["car"] == car  # the car's laps, in lap (so time) order as recorded
        rows.append(
            (
                session_id,
                t,
                car_ids[car],
                car_ids[other] if other >= 0 else None,
                kind,
                float(inc["damage"][i]),
                _lap_at(cols["race_time_s"][own], cols["lap"][own], t),
                description,
            )
        )
    conn.executemany(
        "INSERT INTO incidents (session_id, race_time_s, car_id, other_car_id, kind, magnitude, "
        "lap, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(batch)

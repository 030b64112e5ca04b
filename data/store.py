"""The lap store: one SQLite database (``schema.sql``) that every reader writes.

Each file is written in one transaction: its ``sources`` row is deleted first (its sessions,
cars, laps and everything else cascade away), then its rows are inserted. Re-ingesting a file
therefore replaces it, and a failure leaves the store exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from data.flags import FLAG_LABELS
from data.records import ReadResult, Row, SessionRecord

SCHEMA_VERSION = "1"

_SESSION_COLUMNS = (
    "name",
    "series",
    "track",
    "session_type",
    "start_time_utc",
    "start_hour_of_day",
    "duration_s",
    "laps_scheduled",
    "track_length_m",
    "fuel_mult",
    "tyre_mult",
)
# Columns added to an existing table after stores were made: (table, column, SQL type).
_ADDED_COLUMNS = (("sessions", "fuel_mult", "REAL"), ("sessions", "tyre_mult", "REAL"))


def schema_sql() -> str:
    """The lap store's schema (``data/schema.sql``)."""
    return resources.files("data").joinpath("schema.sql").read_text(encoding="utf-8")


def open_store(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the lap store at ``path`` with foreign keys enforced.

    Raises ``ValueError`` when the file is a lap store of another schema version.
    """
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(schema_sql())
        _add_missing_columns(conn)
    except sqlite3.Error:
        conn.close()
        raise
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
        )
    elif row[0] != SCHEMA_VERSION:
        conn.close()
        raise ValueError(f"{path}: lap store schema version {row[0]}, expected {SCHEMA_VERSION}")
    return conn


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a store made before a column was added up to the schema (``ALTER TABLE``)."""
    for table, column, sql_type in _ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def file_digest(path: str | Path) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, Any]:
    """Column name -> default for a NULL value (the declared default of NOT NULL columns)."""
    out: dict[str, Any] = {}
    for _, name, _, notnull, default, _ in conn.execute(f"PRAGMA table_info({table})"):
        out[name] = int(default) if notnull and default is not None and default.isdigit() else None
    return out


def _clean(value: Any) -> Any:
    """NaN and infinities are not numbers a reader measured: store NULL."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _insert_rows(
    conn: sqlite3.Connection,
    table: str,
    rows: list[Row],
    fixed: dict[str, Any],
    refs: dict[str, dict[str, int]],
) -> None:
    """Insert dict rows; ``refs`` maps a key (``car``) to (column, {number: id}) lookups."""
    if not rows:
        return
    allowed = _columns(conn, table)
    keys = sorted({k for r in rows for k in r} - set(refs))
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise ValueError(f"{table}: unknown columns {unknown}")
    ref_cols = {"car": "car_id", "other_car": "other_car_id", "driver": "driver_id"}
    ref_keys = [k for k in refs if any(k in r for r in rows)]
    cols = list(fixed) + keys + [ref_cols[k] for k in ref_keys]
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    fixed_vals = tuple(fixed.values())

    def ref(key: str, row: Row) -> int | None:
        val = row.get(key)
        if val is None:
            return None
        if key == "driver":
            return refs["driver"].get(f"{row['car']}\x00{val}")
        return refs[key].get(val)

    defaults = [(k, allowed[k]) for k in keys]
    isfinite = math.isfinite

    def values(r: Row) -> tuple[Any, ...]:
        # NULL (or the column's default) for a missing value, NaN or an infinity.
        get = r.get
        return tuple(
            d if (v := get(k)) is None or (type(v) is float and not isfinite(v)) else v
            for k, d in defaults
        )

    conn.executemany(
        sql, (fixed_vals + values(r) + tuple(ref(k, r) for k in ref_keys) for r in rows)
    )


def _write_session(conn: sqlite3.Connection, source_id: int, s: SessionRecord) -> None:
    cur = conn.execute(
        f"INSERT INTO sessions (source_id, {', '.join(_SESSION_COLUMNS)}) "
        f"VALUES (?, {', '.join('?' * len(_SESSION_COLUMNS))})",
        (source_id, *(_clean(getattr(s, c)) for c in _SESSION_COLUMNS)),
    )
    session_id = int(cur.lastrowid)
    car_ids: dict[str, int] = {}
    driver_ids: dict[str, int] = {}
    for car in s.cars.values():
        cur = conn.execute(
            "INSERT INTO cars (session_id, number, class, team, manufacturer, vehicle,"
            " fuel_capacity_l, finish_status, laps_completed) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                session_id,
                car.number,
                car.car_class,
                car.team,
                car.manufacturer,
                car.vehicle,
                _clean(car.fuel_capacity_l),
                car.finish_status,
                car.laps_completed,
            ),
        )
        car_ids[car.number] = int(cur.lastrowid)
        for name, number in car.drivers:
            cur = conn.execute(
                "INSERT INTO drivers (car_id, name, driver_number) VALUES (?,?,?)",
                (car_ids[car.number], name, number),
            )
            driver_ids[f"{car.number}\x00{name}"] = int(cur.lastrowid)
    fixed = {"session_id": session_id}
    car_ref = {"car": car_ids}
    _insert_rows(conn, "laps", s.laps, fixed, {"car": car_ids, "driver": driver_ids})
    _insert_rows(conn, "pit_stops", s.pit_stops, fixed, car_ref)
    _insert_rows(conn, "flag_periods", s.flag_periods, fixed, {})
    _insert_rows(conn, "incidents", s.incidents, fixed, {"car": car_ids, "other_car": car_ids})
    _insert_rows(conn, "weather", s.weather, fixed, {})
    _insert_rows(conn, "state_samples", s.state_samples, fixed, car_ref)


def write_result(conn: sqlite3.Connection, path: str | Path, result: ReadResult) -> int:
    """Replace everything stored from ``path`` by ``result`` in one transaction; the source id.

    On any error the transaction is rolled back and the store is left as it was.
    """
    path = str(Path(path).resolve())
    sha, size = file_digest(path)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM sources WHERE path = ?", (path,))
        cur = conn.execute(
            "INSERT INTO sources (path, reader, sha256, size_bytes, ingested_at, warnings)"
            " VALUES (?,?,?,?,?,?)",
            (
                path,
                result.reader,
                sha,
                size,
                datetime.now(UTC).isoformat(timespec="seconds"),
                json.dumps(result.warnings),
            ),
        )
        source_id = int(cur.lastrowid)
        for session in result.sessions:
            _write_session(conn, source_id, session)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return source_id


def summarize(result: ReadResult) -> dict[str, Any]:
    """Per-file counts printed by the ingest command."""
    flag_counts: Counter[str] = Counter()
    for s in result.sessions:
        for p in s.flag_periods:
            flag_counts[FLAG_LABELS.get(p["kind"], str(p["kind"]))] += 1
    return {
        "reader": result.reader,
        "sessions": len(result.sessions),
        "cars": sum(len(s.cars) for s in result.sessions),
        "laps": sum(len(s.laps) for s in result.sessions),
        "pit_stops": sum(len(s.pit_stops) for s in result.sessions),
        "flag_periods": dict(sorted(flag_counts.items())),
        "incidents": sum(len(s.incidents) for s in result.sessions),
        "weather_samples": sum(len(s.weather) for s in result.sessions),
        "state_samples": sum(len(s.state_samples) for s in result.sessions),
        "warnings": list(result.warnings),
    }


class StoreWriteError(Exception):
    """The lap store itself could not be written (read-only, locked, disk full): not the input
    file's fault, and every later file would fail the same way."""


def store_error_reason(exc: BaseException) -> str:
    """What went wrong with the store, in words a user can act on."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return f"the store is read-only (check the permissions of the file and its folder): {text}"
    if "locked" in text:
        return f"the store is locked by another program (another ingest running?): {text}"
    if "unable to open" in text:
        return f"the store cannot be opened (does its folder exist?): {text}"
    return text

"""``stintsim car LOG``: what a session's log says about each car, as a strategist reads it.

The log (an LMU DuckDB recording, an LMU / rFactor 2 results XML, a shared-memory recording,
anything ``data.ingest`` reads) is ingested into a temporary lap store, and per car this reports:
its class (the session's name and the engine's, through ``data.class_names``), green-lap pace
(median, 10th percentile and interquartile range), fuel and virtual energy used per green lap
(median, as fractions of the tank / of the stint allocation, and litres where the log knows
the tank), tread worn per green lap per compound, the longest stint a full tank and a full
allocation allow at that use and which of them limits it, and the session's fuel and tyre
multipliers.

A *green lap* here is a timed lap after the first that neither starts nor ends in the pit lane
and runs under no neutralisation the log records; per-lap use counts only laps whose level
fell (a lap with a refuel is no measure of use).

    stintsim car ../shared/data/lmu/lmu_2025_paulricard_4h_event_60min_race.xml --car 5
    python -m engine.car_report LOG --json
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.class_names import ClassMapError, engine_class, load_class_map
from data.entry import run_main
from data.errors import IngestError

_WHEELS = ("tread_fl", "tread_fr", "tread_rl", "tread_rr")


class CarReportError(ValueError):
    """A log or a car that cannot be reported on; the message names the file and the problem."""


@dataclass(frozen=True)
class Pace:
    """Green-lap times of one car [s]."""

    median_s: float
    p10_s: float
    """10th percentile: the pace a scenario takes as the car's reference."""
    iqr_s: float
    """Interquartile range (the spread of the middle half of the laps)."""
    laps: int


@dataclass(frozen=True)
class CarFigures:
    """One car of a session, with its figures measured over green laps."""

    number: str
    session_class: str | None
    engine_class: str | None
    """The engine's class (HYPERCAR, LMP2, LMP3, LMGT3), None where no table entry knows it."""
    team: str | None
    vehicle: str | None
    drivers: tuple[str, ...]
    laps: int
    """Laps the car completed in the session."""
    pace: Pace | None
    fuel_per_lap: float | None
    """Median fuel used per green lap, fraction of the tank."""
    fuel_per_lap_mean: float | None
    """Mean fuel used per green lap: what a whole stint adds up to (logs round each lap's use,
    so the median of a few distinct values can sit a step away from it)."""
    fuel_per_lap_l: float | None
    """The same in litres, where the log gives the tank's capacity."""
    fuel_capacity_l: float | None
    energy_per_lap: float | None
    """Median virtual energy used per green lap, fraction of the stint allocation."""
    energy_per_lap_mean: float | None
    """Mean virtual energy used per green lap."""
    tread_per_lap: dict[str, float]
    """Compound name -> median tread worn per green lap (mean of the four wheels, fraction)."""
    fuel_stint_laps: int | None
    """Laps a full tank lasts at ``fuel_per_lap_mean`` (no reserve)."""
    energy_stint_laps: int | None
    """Laps a full energy allocation lasts at ``energy_per_lap_mean`` (no reserve)."""
    max_stint_laps: int | None
    """The shorter of the two: the longest stint the car can run."""
    limited_by: str | None
    """"fuel", "energy" or "fuel and energy" (a tie): which one ends the longest stint."""
    pit_stops: int
    stop_loss_s: float | None
    """Median time a stop cost: in-lap plus out-lap over two median green laps [s]."""
    fuel_mult: float | None
    """The session's fuel consumption multiplier (1 = real consumption), None if not logged."""
    tyre_mult: float | None
    """The session's tyre wear multiplier, None if not logged."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``class`` is the session's class, ``lap_time_s`` the median green lap."""
        out = asdict(self)
        out["class"] = self.session_class
        out["drivers"] = list(self.drivers)
        out["lap_time_s"] = None if self.pace is None else self.pace.median_s
        return out


@dataclass(frozen=True)
class SessionReport:
    """Every car (or the one asked for) of one session of a log."""

    log: str
    session: str
    session_type: str | None
    track: str | None
    track_length_m: float | None
    duration_s: float | None
    laps_scheduled: int | None
    fuel_mult: float | None
    tyre_mult: float | None
    cars: tuple[CarFigures, ...] = field(default_factory=tuple)

    def car(self, number: str) -> CarFigures:
        for c in self.cars:
            if c.number == number:
                return c
        raise CarReportError(
            f"{self.log}: session {self.session!r} has no car {number!r} "
            f"(cars: {', '.join(c.number for c in self.cars)})"
        )

    def to_dict(self) -> dict[str, Any]:
        head = {k: v for k, v in asdict(self).items() if k != "cars"}
        return {**head, "cars": [c.to_dict() for c in self.cars]}


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _stop_loss(rows: Sequence[sqlite3.Row], pace: Pace | None) -> float | None:
    """Median over stops of in-lap plus out-lap, line to line, minus two median green laps."""
    if pace is None:
        return None
    at_line = {r["lap"]: r["race_time_s"] for r in rows}
    losses = [
        at_line[r["lap"] + 1] - at_line[r["lap"] - 1] - 2.0 * pace.median_s
        for r in rows
        if r["pit_in"]
        and at_line.get(r["lap"] + 1) is not None
        and at_line.get(r["lap"] - 1) is not None
    ]
    return _median(losses)


def _stint_laps(use_per_lap: float | None) -> int | None:
    """Laps a full tank (or allocation) lasts at ``use_per_lap``; a little slack keeps a use
    of exactly 1 / N (the log's three decimals) at N laps."""
    if use_per_lap is None or use_per_lap <= 0:
        return None
    return math.floor(1.0 / use_per_lap + 1e-6)


def _limit(fuel_laps: int | None, energy_laps: int | None) -> tuple[int | None, str | None]:
    known = {k: v for k, v in (("fuel", fuel_laps), ("energy", energy_laps)) if v is not None}
    if not known:
        return None, None
    shortest = min(known.values())
    names = [k for k, v in known.items() if v == shortest]
    return shortest, " and ".join(names)


def _session_columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(sessions)")}


def _multipliers(conn: sqlite3.Connection, session_id: int) -> tuple[float | None, float | None]:
    """The session's fuel and tyre multipliers, where the store records them."""
    cols = _session_columns(conn)
    out: list[float | None] = []
    for name in ("fuel_mult", "tyre_mult"):
        if name not in cols:
            out.append(None)
            continue
        row = conn.execute(f"SELECT {name} FROM sessions WHERE session_id = ?", (session_id,))
        value = row.fetchone()[0]
        out.append(None if value is None else float(value))
    return out[0], out[1]


def _green(row: sqlite3.Row) -> bool:
    return (
        row["timed"] == 1
        and row["lap_time_s"] is not None
        and row["lap"] > 1
        and not row["pit_in"]
        and not row["pit_out"]
        and (row["flag"] is None or row["flag"] == 0)
    )


def _car_figures(
    conn: sqlite3.Connection,
    car: sqlite3.Row,
    mults: tuple[float | None, float | None],
    class_map: Mapping[str, str] | None,
) -> CarFigures:
    rows = conn.execute(
        "SELECT lap, lap_time_s, race_time_s, timed, pit_in, pit_out, flag, compound_name,"
        " fuel_start, fuel_end, energy_start, energy_end, tread_fl, tread_fr, tread_rl, tread_rr"
        " FROM laps WHERE car_id = ? ORDER BY lap",
        (car["car_id"],),
    ).fetchall()
    green = [r for r in rows if _green(r)]
    times = np.array([r["lap_time_s"] for r in green], dtype=float)
    pace = None
    if times.size:
        q10, q25, q50, q75 = np.percentile(times, [10, 25, 50, 75])
        pace = Pace(float(q50), float(q10), float(q75 - q25), int(times.size))
    fuel = [
        r["fuel_start"] - r["fuel_end"]
        for r in green
        if r["fuel_start"] is not None
        and r["fuel_end"] is not None
        and r["fuel_start"] > r["fuel_end"]
    ]
    energy = [
        r["energy_start"] - r["energy_end"]
        for r in green
        if r["energy_start"] is not None
        and r["energy_end"] is not None
        and r["energy_start"] > r["energy_end"]
    ]
    wear: dict[str, list[float]] = defaultdict(list)
    by_lap = {r["lap"]: r for r in rows}
    for r in green:
        prev = by_lap.get(r["lap"] - 1)
        if prev is None or any(r[w] is None or prev[w] is None for w in _WHEELS):
            continue
        drops = [prev[w] - r[w] for w in _WHEELS]
        if min(drops) >= 0:  # a rise is a tyre change, not wear
            wear[r["compound_name"] or "unknown"].append(float(np.mean(drops)))
    fuel_per_lap, fuel_mean = _median(fuel), _mean(fuel)
    energy_per_lap, energy_mean = _median(energy), _mean(energy)
    capacity = car["fuel_capacity_l"]
    fuel_laps, energy_laps = _stint_laps(fuel_mean), _stint_laps(energy_mean)
    longest, limited_by = _limit(fuel_laps, energy_laps)
    drivers = tuple(
        r[0]
        for r in conn.execute(
            "SELECT name FROM drivers WHERE car_id = ? "
            "ORDER BY driver_number IS NULL, driver_number, name",
            (car["car_id"],),
        )
    )
    stops = conn.execute(
        "SELECT COUNT(*) FROM pit_stops WHERE car_id = ?", (car["car_id"],)
    ).fetchone()[0]
    return CarFigures(
        number=car["number"],
        session_class=car["class"],
        engine_class=engine_class(car["class"], class_map),
        team=car["team"],
        vehicle=car["vehicle"],
        drivers=drivers,
        laps=len(rows),
        pace=pace,
        fuel_per_lap=fuel_per_lap,
        fuel_per_lap_mean=fuel_mean,
        fuel_per_lap_l=None if fuel_per_lap is None or not capacity else fuel_per_lap * capacity,
        fuel_capacity_l=capacity,
        energy_per_lap=energy_per_lap,
        energy_per_lap_mean=energy_mean,
        tread_per_lap={k: float(np.median(v)) for k, v in sorted(wear.items())},
        fuel_stint_laps=fuel_laps,
        energy_stint_laps=energy_laps,
        max_stint_laps=longest,
        limited_by=limited_by,
        pit_stops=int(stops),
        stop_loss_s=_stop_loss(rows, pace),
        fuel_mult=mults[0],
        tyre_mult=mults[1],
    )


def _pick_session(conn: sqlite3.Connection, log: str, name: str | None) -> sqlite3.Row:
    sessions = conn.execute(
        "SELECT * FROM sessions ORDER BY session_type = 'race', session_id"
    ).fetchall()
    if not sessions:
        raise CarReportError(f"{log}: no session in the log")
    if name is None:
        return sessions[-1]  # the last race session, else the last session
    for s in sessions:
        if s["name"] == name:
            return s
    raise CarReportError(
        f"{log}: no session {name!r} (sessions: {', '.join(s['name'] for s in sessions)})"
    )


def report_store(
    db: str | Path,
    log: str,
    *,
    session: str | None = None,
    car: str | None = None,
    class_map: Mapping[str, str] | None = None,
) -> SessionReport:
    """The report of one session (default: the last race session) of a lap store."""
    conn = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        s = _pick_session(conn, log, session)
        mults = _multipliers(conn, s["session_id"])
        cars = conn.execute(
            "SELECT * FROM cars WHERE session_id = ? ORDER BY car_id", (s["session_id"],)
        ).fetchall()
        figures = tuple(_car_figures(conn, c, mults, class_map) for c in cars)
    finally:
        conn.close()
    out = SessionReport(
        log=log,
        session=s["name"],
        session_type=s["session_type"],
        track=s["track"],
        track_length_m=s["track_length_m"],
        duration_s=s["duration_s"],
        laps_scheduled=s["laps_scheduled"],
        fuel_mult=mults[0],
        tyre_mult=mults[1],
        cars=figures,
    )
    if car is not None:
        out = SessionReport(**{**out.__dict__, "cars": (out.car(car),)})
    return out


def report_log(
    path: str | Path,
    *,
    session: str | None = None,
    car: str | None = None,
    class_map: Mapping[str, str] | None = None,
) -> SessionReport:
    """Ingest ``path`` into a temporary lap store and report on it (see :func:`report_store`)."""
    from data.ingest import read_file
    from data.store import open_store, write_result

    path = Path(path)
    if not path.is_file():
        raise CarReportError(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="stintsim-car-") as tmp:
        db = Path(tmp) / "lapstore.sqlite"
        conn = open_store(db)
        try:
            write_result(conn, path, read_file(path))
        finally:
            conn.close()
        return report_store(db, str(path), session=session, car=car, class_map=class_map)


# -- text -----------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def format_report(rep: SessionReport) -> str:
    mult = (
        f"fuel x{rep.fuel_mult:g}, tyres x{rep.tyre_mult:g}"
        if rep.fuel_mult is not None and rep.tyre_mult is not None
        else "multipliers not logged"
    )
    length = "" if rep.duration_s is None else f", {rep.duration_s / 60:.0f} min"
    lines = [
        f"{rep.log}: session {rep.session} ({rep.session_type or 'session'}{length})"
        f" at {rep.track or 'an unnamed track'}; {mult}"
    ]
    for c in rep.cars:
        cls = f"{c.session_class} -> {c.engine_class or 'unmapped (pass --class-map)'}"
        lines.append(
            f"\ncar {c.number} ({cls}) {c.vehicle or ''}; {c.laps} laps, {c.pit_stops} stops"
        )
        if c.pace is None:
            lines.append("  no green laps")
            continue
        lines.append(
            f"  green pace: median {c.pace.median_s:.3f} s, 10th pct {c.pace.p10_s:.3f} s,"
            f" IQR {c.pace.iqr_s:.3f} s over {c.pace.laps} laps"
        )
        litres = "" if c.fuel_per_lap_l is None else f" = {c.fuel_per_lap_l:.2f} l"
        lines.append(f"  fuel per lap:   {_pct(c.fuel_per_lap)} of the tank{litres}")
        lines.append(f"  energy per lap: {_pct(c.energy_per_lap)} of the allocation")
        wear = ", ".join(f"{k} {_pct(v, 3)}" for k, v in c.tread_per_lap.items()) or "-"
        lines.append(f"  tread per lap:  {wear}")
        if c.max_stint_laps is not None:
            lines.append(
                f"  longest stint:  {c.max_stint_laps} laps, limited by {c.limited_by}"
                f" (fuel {c.fuel_stint_laps if c.fuel_stint_laps is not None else '-'},"
                f" energy {c.energy_stint_laps if c.energy_stint_laps is not None else '-'})"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stintsim car",
        description="Per car of a session log: class, green-lap pace, fuel and virtual energy "
        "per lap, tread per lap per compound, the longest stint and what limits it, and the "
        "session's fuel and tyre multipliers.",
    )
    p.add_argument(
        "log",
        metavar="LOG",
        help="an LMU DuckDB recording, LMU / rFactor 2 results XML or shared-memory recording",
    )
    p.add_argument("--car", metavar="NUMBER", default=None, help="report this car only")
    p.add_argument(
        "--session",
        default=None,
        help="session name (default: the log's last race session, else its last session)",
    )
    p.add_argument(
        "--class-map",
        metavar="FILE",
        default=None,
        help="TOML with a [classes] table mapping more session class names to the engine's",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        extra = load_class_map(args.class_map) if args.class_map else None
        rep = report_log(args.log, session=args.session, car=args.car, class_map=extra)
    except (CarReportError, ClassMapError, IngestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rep.to_dict()) if args.json else format_report(rep))
    return 0


if __name__ == "__main__":
    run_main(main)

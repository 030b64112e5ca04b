"""Build a race scenario from a real race in the lap store (SQL against ``data/schema.sql``).

What comes from the data, per car: class, team, drivers (line-up order), grid order (the
order at the end of lap 1), reference pace (the 10th percentile of its timed green laps that
neither start nor end in the pits), each driver's rating (their own 10th percentile against
the car's, in standard deviations of the lap model's skill effect, centred on the lap-weighted
average of its drivers), and its stint length (the
median laps between stops, stints of at least 5 laps), which sets the fuel (and virtual
energy) use per lap: a full tank lasts one stint plus one lap of reserve. Per race: the pit
lane's loss (in-lap plus out-lap over two reference laps, minus the time stationary) and each
class's refuelling time (median stationary time of stops without a driver change), and the
lap-time factors of FCY and safety-car laps (median lap under the flag over the fastest
car's reference: every car runs the same speed under a neutralisation). The pit-lane loss
leaves out the lap model's own cold-tyre out-lap time.

What timing data cannot tell (tread wear), and rules, are stated assumptions below.

    python -m engine.scenario_builder /tmp/stintsim/lapstore.sqlite \\
        --session wec_2024_lemans_24h_race --name lemans_24h --out engine/scenarios/lemans_24h.toml
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from data.entry import run_main
from engine.scenario import parse_scenario
from world_model.parametric import ParametricLapParams

ENERGY_CLASSES = ("HYPERCAR", "LMGT3")
"""Classes racing on a virtual-energy allocation per stint (WEC 2024)."""
CLASS_ORDER = ("HYPERCAR", "LMP2", "LMGT3")
"""Fastest class first (the scenario's class order sets who is the slower traffic)."""
TYRE_DOUBLE_STINT_TREAD = 0.45
"""Assumption (timing data has no tread): a set loses this much tread over two stints."""
FUEL_TO_ENERGY = 0.97
"""Assumption: fuel per lap relative to virtual energy per lap (energy is the binding limit)."""
STATIONARY_TRANSIT_S = 5.0
"""Assumption: the fastest stops in the data stood this long; the rest of their lane time is
the drive through the pit lane."""
MIN_STINT_LAPS = 5


def _q(conn: sqlite3.Connection, sql: str, *args: Any) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def _session_id(conn: sqlite3.Connection, name: str) -> int:
    rows = _q(conn, "SELECT session_id FROM sessions WHERE name = ? ORDER BY session_id", name)
    if not rows:
        names = [r[0] for r in _q(conn, "SELECT DISTINCT name FROM sessions")]
        raise ValueError(f"lap store has no session {name!r} (sessions: {names})")
    return int(rows[0][0])


def _stints(pit_in_laps: list[int]) -> list[int]:
    bounds = [0, *pit_in_laps]
    return [b - a for a, b in itertools.pairwise(bounds)]


def build_table(
    db: str | Path,
    session: str,
    name: str,
    duration_h: float | None = None,
    sun: tuple[float, float] = (5.9, 21.9),
) -> dict[str, Any]:
    """The scenario of a real race as a TOML-shaped table; ``sun`` = (sunrise, sunset) [h]."""
    conn = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True)
    try:
        table = _build(conn, session, name, duration_h)
        table["track"]["sunrise_hour"], table["track"]["sunset_hour"] = sun
        return table
    finally:
        conn.close()


def _build(
    conn: sqlite3.Connection, session: str, name: str, duration_h: float | None
) -> dict[str, Any]:
    sid = _session_id(conn, session)
    track, start_hour, duration_s, lap_len = _q(
        conn,
        "SELECT track, start_hour_of_day, duration_s, track_length_m FROM sessions "
        "WHERE session_id = ?",
        sid,
    )[0]
    skill_time = ParametricLapParams().skill_time
    cars = _q(
        conn,
        "SELECT c.car_id, c.number, c.class, c.team, "
        "  (SELECT position FROM laps l WHERE l.car_id = c.car_id AND l.lap = 1) AS grid "
        "FROM cars c WHERE c.session_id = ? ORDER BY grid IS NULL, grid, c.number",
        sid,
    )
    entries: list[dict[str, Any]] = []
    loss_samples: list[float] = []
    stationary_by_class: dict[str, list[float]] = {}
    lane_times: list[float] = []
    flag_ratio: dict[int, list[float]] = {2: [], 3: []}
    for car_id, number, cls, team, _grid in cars:
        if cls not in CLASS_ORDER:
            continue
        clean = np.array(
            [
                r[0]
                for r in _q(
                    conn,
                    "SELECT lap_time_s FROM laps WHERE car_id = ? AND timed = 1 AND flag = 0 "
                    "AND pit_in = 0 AND pit_out = 0 AND lap > 1 AND lap_time_s IS NOT NULL",
                    car_id,
                )
            ]
        )
        if clean.size < 10:
            continue  # a car with too few clean laps has no measurable pace
        ref = float(np.percentile(clean, 10))
        laps = _q(
            conn,
            "SELECT lap, lap_time_s, pit_in, pit_out, pit_time_s, flag, driver_change "
            "FROM laps WHERE car_id = ? ORDER BY lap",
            car_id,
        )
        pit_in = [int(r[0]) for r in laps if r[2]]
        stints = [s for s in _stints(pit_in) if s >= MIN_STINT_LAPS]
        stint = float(np.median(stints)) if stints else 12.0
        by_lap = {int(r[0]): r for r in laps}
        for lap, lap_time, p_in, p_out, pit_time, flag, dc in laps:
            if p_out and pit_time is not None and lap_time is not None and flag == 0:
                prev = by_lap.get(int(lap) - 1)
                if prev is not None and prev[1] is not None and prev[5] == 0:
                    loss_samples.append(prev[1] + lap_time - 2.0 * ref - pit_time)
                lane_times.append(pit_time)
                if not dc and pit_time < 150.0:
                    stationary_by_class.setdefault(cls, []).append(pit_time)
            if flag in flag_ratio and lap_time and not p_in and not p_out:
                flag_ratio[int(flag)].append(lap_time)
        drivers = []
        driver_laps: list[int] = []
        for d_name, d_id in _q(
            conn,
            "SELECT name, driver_id FROM drivers WHERE car_id = ? "
            "ORDER BY driver_number IS NULL, driver_number, name",
            car_id,
        ):
            own = [
                r[0]
                for r in _q(
                    conn,
                    "SELECT lap_time_s FROM laps WHERE car_id = ? AND driver_id = ? "
                    "AND timed = 1 AND flag = 0 AND pit_in = 0 AND pit_out = 0 AND lap > 1",
                    car_id,
                    d_id,
                )
                if r[0] is not None
            ]
            skill = 0.0
            if len(own) >= 10:
                skill = (ref - float(np.percentile(own, 10))) / (skill_time * ref)
            drivers.append({"name": d_name, "skill": float(np.clip(skill, -3, 3))})
            driver_laps.append(len(own) if len(own) >= 10 else 0)
        if sum(driver_laps) > 0:
            # The reference pace pools the car's drivers, so its reference driver is their
            # lap-weighted average: centre the ratings there (0 = reference, as the lap and
            # event models read them).
            mean_skill = float(np.average([d["skill"] for d in drivers], weights=driver_laps))
            for d, n_laps in zip(drivers, driver_laps, strict=True):
                d["skill"] = round(d["skill"] - mean_skill, 3) if n_laps else 0.0
        for d in drivers:
            d["skill"] = round(d["skill"], 3)
        if not drivers:
            drivers = [{"name": f"driver of #{number}", "skill": 0.0}]
        energy = 1.0 / (stint + 1.0)
        has_energy = cls in ENERGY_CLASSES
        entries.append(
            {
                "number": number,
                "class": cls,
                "team": team or f"team of #{number}",
                "drivers": drivers,
                "ref_lap_time_s": round(ref, 3),
                "ref_fuel_per_lap": round(energy * (FUEL_TO_ENERGY if has_energy else 1.0), 5),
                "ref_energy_per_lap": round(energy if has_energy else 0.0, 5),
                "ref_wear_per_lap": round(TYRE_DOUBLE_STINT_TREAD / (2.0 * stint), 5),
                "strategy": "double-stint",
            }
        )
    if not entries:
        raise ValueError(f"session {session!r}: no car of classes {CLASS_ORDER} with clean laps")
    transit = float(np.percentile(lane_times, 5)) - STATIONARY_TRANSIT_S if lane_times else 40.0
    # The lap model adds its own cold-tyre out-lap time: leave it out of the pit lane's loss.
    out_lap = ParametricLapParams().out_lap_time * float(
        np.median([e["ref_lap_time_s"] for e in entries])
    )
    pit_loss = float(np.median(loss_samples)) + transit - out_lap if loss_samples else 40.0
    classes = []
    for cls in CLASS_ORDER:
        if not any(e["class"] == cls for e in entries):
            continue
        stat = stationary_by_class.get(cls, [])
        refuel = float(np.median(stat)) - transit if stat else 35.0
        classes.append(
            {
                "name": cls,
                "compounds": ["soft", "medium", "hard", "wet"],
                "tyre_sets": -1,
                "refuel_full_s": round(max(refuel, 10.0), 2),
                "has_energy": cls in ENERGY_CLASSES,
            }
        )
    # Under a neutralisation every car runs the same speed: the engine's factor is on the
    # fastest car's reference pace.
    fastest = min(e["ref_lap_time_s"] for e in entries)
    fcy = float(np.median(flag_ratio[2])) / fastest if flag_ratio[2] else 1.45
    sc = float(np.median(flag_ratio[3])) / fastest if flag_ratio[3] else 1.6
    return {
        "name": name,
        "lap_model": "default",
        "focus_car": entries[0]["number"],
        "track": {
            "name": track or session,
            "lap_length_m": float(lap_len or 0.0),
            "pit_lane_loss_s": round(pit_loss, 2),
            "sc_min_gap_s": 1.0,
            "sunrise_hour": 5.9,
            "sunset_hour": 21.9,
            "track_temp_c": 30.0,
            "air_temp_c": 22.0,
        },
        "race": {
            "duration_h": duration_h
            if duration_h is not None
            else (duration_s or 86400.0) / 3600.0,
            "start_hour_of_day": round(float(start_hour or 16.0), 3),
            "window_s": 45.0,  # = the neutralisation delay: fewer, larger batched windows
        },
        "rules": {
            "tyre_change_4_s": 25.0,
            "tyre_change_2_s": 13.0,
            "driver_change_s": 20.0,
            "refuel_with_tyres": False,
            "min_pit_time_s": 0.0,
            "max_stint_driving_s": 14400.0,
            "max_total_driving_s": 50400.0,
            "min_total_driving_s": 0.0,
            "pit_closed_under_sc": True,
            "neutralisation_delay_s": 45.0,
            "overtake_cost_s": 0.4,
            "fcy": {"lap_time_factor": round(fcy, 3), "fuel_factor": 0.55, "wear_factor": 0.5},
            "safety_car": {
                "lap_time_factor": round(sc, 3),
                "fuel_factor": 0.5,
                "wear_factor": 0.45,
            },
        },
        "events": {"incidents": True, "weather": True, "model": "default"},
        "classes": classes,
        "entries": entries,
    }


# -- a small TOML writer for scenario tables ------------------------------------------------


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_inline(x)}" for k, x in v.items()) + " }"
    return _scalar(v)


def _table(prefix: str, table: dict[str, Any], out: list[str]) -> None:
    for k, v in table.items():
        list_of_tables = isinstance(v, list) and v and isinstance(v[0], dict)
        if not isinstance(v, dict) and (not list_of_tables or prefix):
            out.append(f"{k} = {_scalar(v)}")
    for k, v in table.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.append(f"\n[{name}]")
            _table(name, v, out)
        elif isinstance(v, list) and v and isinstance(v[0], dict) and not prefix:
            for item in v:
                out.append(f"\n[[{name}]]")
                for ik, iv in item.items():
                    out.append(f"{ik} = {_inline(iv)}")


def to_toml(table: dict[str, Any], header: str = "") -> str:
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table("", table, out)
    return "\n".join(out) + "\n"


def write_scenario(table: dict[str, Any], path: str | Path, header: str = "") -> None:
    """Check the table parses as a scenario, then write it atomically."""
    path = Path(path)
    parse_scenario(table, str(path))
    text = to_toml(table, header)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.scenario_builder",
        description="Build a scenario TOML from a real race in the lap store.",
    )
    p.add_argument("db", help="lap store (SQLite, data/schema.sql)")
    p.add_argument("--session", required=True, help="session name, e.g. wec_2024_lemans_24h_race")
    p.add_argument("--name", required=True, help="scenario name")
    p.add_argument("--out", required=True, help="TOML file to write")
    p.add_argument(
        "--duration-h", type=float, default=None, help="race length [h] (default: the session's)"
    )
    p.add_argument("--sunrise-hour", type=float, default=5.9, help="local sunrise [h]")
    p.add_argument("--sunset-hour", type=float, default=21.9, help="local sunset [h]")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        table = build_table(
            args.db,
            args.session,
            args.name,
            args.duration_h,
            (args.sunrise_hour, args.sunset_hour),
        )
    except (ValueError, sqlite3.Error) as exc:
        print(f"error: {args.db}: {exc}", file=sys.stderr)
        return 2
    header = (
        f"Scenario {args.name!r} built by engine.scenario_builder from session {args.session!r}\n"
        "of the lap store. Pace, line-ups, stint lengths, pit-lane loss, refuel times and flag\n"
        "factors come from the timing data; tread wear and the rules' times are assumptions\n"
        "(see engine/scenario_builder.py)."
    )
    write_scenario(table, args.out, header)
    print(f"wrote {args.out}: {len(table['entries'])} cars", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)

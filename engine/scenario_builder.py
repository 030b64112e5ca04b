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
leaves out the lap model's own cold-tyre out-lap time. The weather: by default the race's
own wet spells, read from its laps (:mod:`engine.weather_from_laps`), scripted as the track's
wetness over the event model's weather.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.class_names import engine_class, load_class_map
from data.entry import run_main
from engine.baselines import WET_TRACK
from engine.scenario import parse_scenario
from engine.weather_from_laps import wet_spells
from world_model.parametric import ParametricLapParams

ENERGY_CLASSES = ("HYPERCAR", "LMGT3")
"""Classes racing on a virtual-energy allocation per stint (WEC 2024)."""
CLASS_ORDER = ("HYPERCAR", "LMP2", "LMGT3")
"""Fastest class first (the scenario's class order sets who is the slower traffic)."""
TYRE_SPELL_TREAD = 0.55
"""Assumption (timing data has no tread): a set loses this much tread over a driver spell
(the rules change tyres with the driver)."""
TYRE_SET_MARGIN = 1.25
TYRE_SPARE_SETS = 2.0
"""Assumption: the tyre allocation is the sets a change every spell needs over the class's
busiest car's stops, times TYRE_SET_MARGIN, plus TYRE_SPARE_SETS (punctures, damage)."""
MAX_STINTS_PER_SPELL = 4
MIN_PIT_LANE_LOSS_S = 10.0
"""Floor of the pit lane's loss [s] (noisy in- and out-laps can put the estimate below it)."""
FUEL_TO_ENERGY = 0.97
"""Assumption: fuel per lap relative to virtual energy per lap (energy is the binding limit)."""
STATIONARY_TRANSIT_S = 5.0
"""Assumption: the fastest stops in the data stood this long; the rest of their lane time is
the drive through the pit lane."""
MIN_STINT_LAPS = 5
NEUTRAL_FLAGS = (2, 3)
"""``laps.flag`` codes of FCY and safety-car laps."""
OPPORTUNISTIC_FACTOR = 2.0
OPPORTUNISTIC_MIN_STOPS = 2
"""A car whose share of stops made under FCY or safety car is more than OPPORTUNISTIC_FACTOR
times its share of laps under them (and at least OPPORTUNISTIC_MIN_STOPS such stops) pitted
for the cheap stop: its rule is ``opportunistic``. Sebring 2024: 51 % of stops against 18 %
of laps; WEC races: about as many as the laps (0.3-12 % of stops)."""
FULL_COURSE_CAUTION_SERIES = ("IMSA",)
"""Series whose race control neutralises with full-course cautions only (no slow zones):
built scenarios of their races set ``events.full_course_cautions``."""
MIN_CLEAN_LAPS = 10
WEATHER_CHOICES = ("observed", "drawn")


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
    class_map: Mapping[str, str] | None = None,
    weather: str = "observed",
) -> dict[str, Any]:
    """The scenario of a real race as a TOML-shaped table; ``sun`` = (sunrise, sunset) [h];
    ``class_map`` extends :data:`data.class_names.DEFAULT_CLASS_MAP`; ``weather``:
    "observed" scripts the race's own wet spells (read from its laps) over the event model's
    weather, "drawn" leaves all rain to the event model."""
    if weather not in WEATHER_CHOICES:
        raise ValueError(f"weather must be one of {WEATHER_CHOICES}, got {weather!r}")
    conn = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True)
    try:
        table = _build(conn, session, name, duration_h, class_map, weather)
        table["track"]["sunrise_hour"], table["track"]["sunset_hour"] = sun
        return table
    finally:
        conn.close()


@dataclass
class _PitSamples:
    """What the field's stops say about the pit lane, pooled over the cars."""

    loss_s: list[float] = field(default_factory=list)
    lane_s: list[float] = field(default_factory=list)
    stationary_by_class: dict[str, list[float]] = field(default_factory=dict)
    flag_laps_s: dict[int, list[float]] = field(default_factory=lambda: {2: [], 3: []})


@dataclass
class _Car:
    """One car's measurements; ``ref`` None when it ran too few clean laps to have a pace."""

    number: str
    cls: str
    team: str | None
    ref: float | None
    stint: float | None
    stints_per_spell: float
    stops: int
    drivers: list[dict[str, Any]]
    opportunistic: bool = False
    """It pitted under neutralisations far more often than its laps ran under them."""


_CLEAN = (
    "timed = 1 AND (flag = 0 OR flag IS NULL) AND pit_in = 0 AND pit_out = 0 AND lap > 1 "
    "AND lap_time_s IS NOT NULL"
)
"""Clean laps: timed, green (a source without flags, such as LMU results, counts as green),
neither in- nor out-lap, not the standing start."""


def _car(
    conn: sqlite3.Connection, car_id: int, number: str, cls: str, team: str | None
) -> tuple[_Car, list[tuple]]:
    clean = np.array(
        [
            r[0]
            for r in _q(conn, f"SELECT lap_time_s FROM laps WHERE car_id = ? AND {_CLEAN}", car_id)
        ]
    )
    ref = float(np.percentile(clean, 10)) if clean.size >= MIN_CLEAN_LAPS else None
    laps = _q(
        conn,
        "SELECT lap, lap_time_s, pit_in, pit_out, pit_time_s, flag, driver_change "
        "FROM laps WHERE car_id = ? ORDER BY lap",
        car_id,
    )
    pit_in = [int(r[0]) for r in laps if r[2]]
    stints = [s for s in _stints(pit_in) if s >= MIN_STINT_LAPS]
    changes = sum(1 for r in laps if r[6])
    neutral_stops = sum(1 for r in laps if r[2] and r[5] in NEUTRAL_FLAGS)
    neutral_lap_share = sum(1 for r in laps if r[5] in NEUTRAL_FLAGS) / max(len(laps), 1)
    opportunistic = neutral_stops >= OPPORTUNISTIC_MIN_STOPS and (
        neutral_stops > OPPORTUNISTIC_FACTOR * neutral_lap_share * len(pit_in)
    )
    # Stints per driver spell: a race of S stints and D driver changes runs D + 1 spells.
    per_spell = (len(pit_in) + 1) / (changes + 1)
    return (
        _Car(
            number=number,
            cls=cls,
            team=team,
            ref=ref,
            stint=float(np.median(stints)) if stints else None,
            stints_per_spell=per_spell,
            stops=len(pit_in),
            drivers=_drivers(conn, car_id, ref) if ref is not None else [],
            opportunistic=opportunistic,
        ),
        laps,
    )


def _drivers(conn: sqlite3.Connection, car_id: int, ref: float) -> list[dict[str, Any]]:
    """Each driver's rating: their own 10th percentile against the car's, in standard
    deviations of the lap model's skill effect, centred on the lap-weighted average."""
    skill_time = ParametricLapParams().skill_time
    drivers: list[dict[str, Any]] = []
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
                f"SELECT lap_time_s FROM laps WHERE car_id = ? AND driver_id = ? AND {_CLEAN}",
                car_id,
                d_id,
            )
        ]
        skill = 0.0
        if len(own) >= MIN_CLEAN_LAPS:
            skill = (ref - float(np.percentile(own, 10))) / (skill_time * ref)
        drivers.append({"name": d_name, "skill": float(np.clip(skill, -3, 3))})
        driver_laps.append(len(own) if len(own) >= MIN_CLEAN_LAPS else 0)
    if sum(driver_laps) > 0:
        # The reference pace pools the car's drivers, so its reference driver is their
        # lap-weighted average: centre the ratings there (0 = reference, as the lap and
        # event models read them).
        mean_skill = float(np.average([d["skill"] for d in drivers], weights=driver_laps))
        for d, n_laps in zip(drivers, driver_laps, strict=True):
            d["skill"] = round(d["skill"] - mean_skill, 3) if n_laps else 0.0
    for d in drivers:
        d["skill"] = round(d["skill"], 3)
    return drivers


def _pit_samples(laps: list[tuple], ref: float, cls: str, out: _PitSamples) -> None:
    by_lap = {int(r[0]): r for r in laps}
    for lap, lap_time, p_in, p_out, pit_time, flag, dc in laps:
        if p_out and pit_time is not None and lap_time is not None and flag == 0:
            prev = by_lap.get(int(lap) - 1)
            if prev is not None and prev[1] is not None and prev[5] == 0:
                out.loss_s.append(prev[1] + lap_time - 2.0 * ref - pit_time)
            out.lane_s.append(pit_time)
            if not dc and pit_time < 150.0:
                out.stationary_by_class.setdefault(cls, []).append(pit_time)
        if flag in out.flag_laps_s and lap_time and not p_in and not p_out:
            out.flag_laps_s[int(flag)].append(lap_time)


def _entry(car: _Car, race_s: float) -> dict[str, Any]:
    assert car.ref is not None and car.stint is not None
    energy = 1.0 / (car.stint + 1.0)
    has_energy = car.cls in ENERGY_CLASSES
    spell = int(np.clip(round(car.stints_per_spell), 1, MAX_STINTS_PER_SPELL))
    return {
        "number": car.number,
        "class": car.cls,
        "team": car.team or f"team of #{car.number}",
        "drivers": car.drivers or [{"name": f"driver of #{car.number}", "skill": 0.0}],
        "ref_lap_time_s": round(car.ref, 3),
        "ref_fuel_per_lap": round(energy * (FUEL_TO_ENERGY if has_energy else 1.0), 5),
        "ref_energy_per_lap": round(energy if has_energy else 0.0, 5),
        "ref_wear_per_lap": round(TYRE_SPELL_TREAD / (spell * car.stint), 5),
        "strategy": f"{'opportunistic' if car.opportunistic else 'fuel-reserve'}:stints={spell}",
    }


def _fill_missing(cars: list[_Car]) -> list[_Car]:
    """Cars with too few clean laps (early retirements) race at their class's median pace,
    stint and spell: the real field keeps them, and so do its race's statistics."""
    known = [c for c in cars if c.ref is not None and c.stint is not None]
    out = []
    for c in cars:
        if c.ref is not None and c.stint is not None:
            out.append(c)
            continue
        peers = [k for k in known if k.cls == c.cls] or known
        if not peers:
            continue
        c.ref = c.ref if c.ref is not None else float(np.median([k.ref for k in peers]))
        c.stint = c.stint or float(np.median([k.stint for k in peers]))
        c.stints_per_spell = float(np.median([k.stints_per_spell for k in peers]))
        out.append(c)
    return out


def _tyre_sets(cars: list[_Car], cls: str) -> float:
    """Assumption (timing data does not say which tyres a car took): the allocation covers
    a change every driver spell over the class's most stops, plus spares."""
    own = [c for c in cars if c.cls == cls]
    need = max((c.stops + 1) / max(round(c.stints_per_spell), 1) for c in own)
    return float(np.ceil(need * TYRE_SET_MARGIN) + TYRE_SPARE_SETS)


def _build(
    conn: sqlite3.Connection,
    session: str,
    name: str,
    duration_h: float | None,
    class_map: Mapping[str, str] | None = None,
    weather: str = "observed",
) -> dict[str, Any]:
    sid = _session_id(conn, session)
    track, start_hour, duration_s, lap_len, series = _q(
        conn,
        "SELECT track, start_hour_of_day, duration_s, track_length_m, series FROM sessions "
        "WHERE session_id = ?",
        sid,
    )[0]
    rows = _q(
        conn,
        "SELECT c.car_id, c.number, c.class, c.team, "
        "  (SELECT position FROM laps l WHERE l.car_id = c.car_id AND l.lap = 1) AS grid "
        "FROM cars c WHERE c.session_id = ? ORDER BY grid IS NULL, grid, c.number",
        sid,
    )
    pits = _PitSamples()
    cars: list[_Car] = []
    for car_id, number, raw_cls, team, _grid in rows:
        cls = engine_class(raw_cls, class_map)
        if cls not in CLASS_ORDER:
            continue
        car, laps = _car(conn, car_id, number, cls, team)
        if car.ref is not None:
            _pit_samples(laps, car.ref, cls, pits)
        cars.append(car)
    cars = _fill_missing(cars)
    if not cars:
        raise ValueError(f"session {session!r}: no car of classes {CLASS_ORDER} with clean laps")
    race_s = duration_h * 3600.0 if duration_h is not None else float(duration_s or 86400.0)
    entries = [_entry(c, race_s) for c in cars]
    transit = float(np.percentile(pits.lane_s, 5)) - STATIONARY_TRANSIT_S if pits.lane_s else 40.0
    # The lap model adds its own cold-tyre out-lap time: leave it out of the pit lane's loss.
    # Its floor is the drive through the lane at the pit speed limit less the lap's own
    # stretch of track: never negative, however noisy the samples.
    out_lap = ParametricLapParams().out_lap_time * float(
        np.median([e["ref_lap_time_s"] for e in entries])
    )
    pit_loss = float(np.median(pits.loss_s)) + transit - out_lap if pits.loss_s else 40.0
    pit_loss = max(pit_loss, MIN_PIT_LANE_LOSS_S)
    classes = [
        _class_table(cls, cars, pits, transit)
        for cls in CLASS_ORDER
        if any(c.cls == cls for c in cars)
    ]
    # Under a neutralisation every car runs the same speed: the engine's factor is on the
    # fastest car's reference pace.
    fastest = min(e["ref_lap_time_s"] for e in entries)
    fcy_laps, sc_laps = pits.flag_laps_s[2], pits.flag_laps_s[3]
    fcy = float(np.median(fcy_laps)) / fastest if fcy_laps else 1.45
    sc = float(np.median(sc_laps)) / fastest if sc_laps else 1.6
    table: dict[str, Any] = {
        "name": name,
        "lap_model": "default",
        # The engine draws traffic, incidents, neutralisations and rain itself: the learned
        # model's slow components (which learnt them from unlabelled timing data) stay out.
        "lap_model_core_only": True,
        # Each car's reference pace is its whole race's: the recent-pace input would only
        # feed the model's own draws back (a random walk that settles about 1 % slow).
        "lap_model_recent_pace": False,
        # Timing data has no tread (the rate here is an assumption) and the real laps' pace
        # already carries the teams' tyre strategy: no extra cost for a carried set.
        "lap_model_carried_wear_time": 0.0,
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
            "duration_h": race_s / 3600.0,
            "start_hour_of_day": round(float(start_hour or 16.0), 3),
            "window_s": 45.0,  # = the neutralisation delay: fewer, larger batched windows
        },
        "rules": _rules_table(fcy, sc),
        "events": {
            "incidents": True,
            "weather": True,
            "model": "default",
            "full_course_cautions": (series or "").upper() in FULL_COURSE_CAUTION_SERIES,
        },
        "classes": classes,
        "entries": entries,
    }
    spells = _observed_wet_spells(conn, sid, race_s) if weather == "observed" else []
    if spells:
        table["forced_events"] = spells
    return table


def _observed_wet_spells(
    conn: sqlite3.Connection, sid: int, race_s: float
) -> list[dict[str, float | str]]:
    """The race's own wet spells, to script as the track's wetness over the event model's
    weather (which still draws temperatures, and rain outside the spells). Timing data has no
    weather: the spells are read from the laps (engine.weather_from_laps), at the wetness the
    wet-pace prior needs. Scripting dry between them as well thinned the dry races' simulated
    green-lap tails and stops below the real ones (Le Mans 2026: 24 of 31 statistics inside,
    against 28 with the draw): the draw's rain stands in for what else slows and stops a car."""
    physics = ParametricLapParams()
    return wet_spells(conn, sid, race_s, physics.wet_penalty, physics.compound_pace, WET_TRACK)


def _class_table(cls: str, cars: list[_Car], pits: _PitSamples, transit: float) -> dict[str, Any]:
    stat = pits.stationary_by_class.get(cls, [])
    refuel = float(np.median(stat)) - transit if stat else 35.0
    return {
        "name": cls,
        "compounds": ["soft", "medium", "hard", "wet"],
        "tyre_sets": _tyre_sets(cars, cls),
        "refuel_full_s": round(max(refuel, 10.0), 2),
        "has_energy": cls in ENERGY_CLASSES,
    }


def _rules_table(fcy: float, sc: float) -> dict[str, Any]:
    return {
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
        "safety_car": {"lap_time_factor": round(sc, 3), "fuel_factor": 0.5, "wear_factor": 0.45},
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
    p.add_argument(
        "--weather",
        choices=WEATHER_CHOICES,
        default="observed",
        help="observed (default): script the race's own wet spells, read from its laps "
        "(every sector of the field's green laps slowed at once), over the event model's "
        "weather; drawn: all rain as the event model draws it (a race still to run)",
    )
    p.add_argument(
        "--class-map",
        default=None,
        help="TOML with a [classes] table of session class name = engine class, on top of "
        "the built-in table (data/class_names.py)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        class_map = load_class_map(args.class_map) if args.class_map else None
        table = build_table(
            args.db,
            args.session,
            args.name,
            args.duration_h,
            (args.sunrise_hour, args.sunset_hour),
            class_map,
            args.weather,
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

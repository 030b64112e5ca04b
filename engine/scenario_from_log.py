"""``stintsim scenario``: a scenario for *my* race, from my car in a session log and a field.

My car's figures come from :mod:`engine.car_report` (green pace, fuel and virtual energy per
lap, tread per lap); the field is either the other cars of the same session (``--field
session``, each with its own measured figures) or a shipped scenario's field (``--field
six_hours``: its track, rules and cars, with my car added under its number). Then the race I
am planning: its length (``--duration-h`` or ``--laps``), my drivers (``--driver``, in the order
they drive) with the rules' minimum and maximum driving times, the tyre allocation and the
race's fuel and tyre multipliers, which scale the log's use by race / log multiplier.

Session class names map onto the engine's through :mod:`data.class_names` (``--class-map``
extends the table). What a results log cannot tell is an assumption stated below and in the
written file's header.

    stintsim scenario LOG --car 5 --duration-h 1 --driver "A. Me" --driver "B. You" \\
        --out my_race.toml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.class_names import ENGINE_CLASSES, ClassMapError, load_class_map
from data.entry import run_main
from data.errors import IngestError
from engine.car_report import CarFigures, CarReportError, SessionReport, report_log
from engine.scenario import ScenarioError, load_scenario
from engine.scenario_builder import write_scenario

DEFAULT_PIT_LANE_LOSS_S = 30.0
"""Assumption where the log has no measurable stop: a pit-lane drive-through costs 30 s."""
REFUEL_FULL_S = 40.0
"""Assumption (results logs hold no stationary times): a full tank or allocation takes 40 s."""
TREAD_OVER_TWO_STINTS = 0.45
"""Assumption where the log has no tread: a set loses this much over two full stints."""
MIN_GREEN_LAPS = 5
"""Cars of the session with fewer green laps have no measurable pace and are left out."""


@dataclass(frozen=True)
class RaceOptions:
    """The race being planned, as the strategist states it."""

    duration_h: float | None = None
    laps: int | None = None
    drivers: tuple[str, ...] = ()
    """My drivers in driving order (default: the log's driver)."""
    min_drive_s: float = 0.0
    """Least each driver must drive in the race [s]."""
    max_drive_s: float | None = None
    """Most a driver may drive in the race [s] (default: no limit short of the race)."""
    max_stint_s: float | None = None
    """Longest a driver may drive without a break [s] (default: no limit short of the race)."""
    tyre_sets: int = -1
    """Dry tyre sets allowed for the race (-1: unlimited)."""
    fuel_mult: float | None = None
    """The race's fuel multiplier (default: the log's)."""
    tyre_mult: float | None = None
    """The race's tyre wear multiplier (default: the log's)."""
    pit_lane_loss_s: float | None = None
    """Override of the measured pit-lane loss [s]."""
    start_hour_of_day: float = 14.0


def _scale(race: float | None, log: float | None) -> float:
    """Use in the race relative to the log: race multiplier over log multiplier (1 if unknown)."""
    if race is None:
        return 1.0
    return race / (log if log else 1.0)


def _use(c: CarFigures) -> tuple[float, float]:
    """(fuel, energy) per lap a tank lasts by: the mean, the use a whole stint adds up to."""
    return (c.fuel_per_lap_mean or c.fuel_per_lap or 0.0), (
        c.energy_per_lap_mean or c.energy_per_lap or 0.0
    )


def _wear(c: CarFigures) -> float:
    """Tread per lap on the compound run most (the lap model scales it to the others)."""
    if not c.tread_per_lap:
        stint = c.max_stint_laps or 20
        return TREAD_OVER_TWO_STINTS / (2.0 * stint)
    return float(np.median(list(c.tread_per_lap.values())))


def _entry(
    c: CarFigures, drivers: Sequence[str], opts: RaceOptions, rep: SessionReport
) -> dict[str, Any]:
    fuel, energy = _use(c)
    fuel *= _scale(opts.fuel_mult, rep.fuel_mult)
    energy *= _scale(opts.fuel_mult, rep.fuel_mult)
    wear = _wear(c) * _scale(opts.tyre_mult, rep.tyre_mult)
    assert c.pace is not None
    return {
        "number": c.number,
        "class": c.engine_class,
        "team": c.team or f"team of #{c.number}",
        "drivers": [{"name": d, "skill": 0.0} for d in drivers],
        "ref_lap_time_s": round(c.pace.p10_s, 3),
        "ref_fuel_per_lap": round(fuel, 5),
        "ref_energy_per_lap": round(energy, 5),
        "ref_wear_per_lap": round(max(wear, 1e-4), 5),
        "strategy": "fuel-reserve",
    }


def _pit_lane_loss(rep: SessionReport, cars: Sequence[CarFigures]) -> float:
    """Measured where the report has stop costs, else :data:`DEFAULT_PIT_LANE_LOSS_S`."""
    losses = [c.stop_loss_s for c in cars if c.stop_loss_s is not None]
    if not losses:
        return DEFAULT_PIT_LANE_LOSS_S
    # A stop's cost = lane drive-through + stationary; take the stationary of a quarter tank.
    return round(max(10.0, float(np.median(losses)) - 0.25 * REFUEL_FULL_S), 2)


def _rules(opts: RaceOptions, race_s: float) -> dict[str, Any]:
    long = max(race_s * 2.0, 3600.0)
    return {
        "tyre_change_4_s": 25.0,
        "tyre_change_2_s": 13.0,
        "driver_change_s": 20.0,
        "refuel_with_tyres": False,
        "min_pit_time_s": 0.0,
        "max_stint_driving_s": opts.max_stint_s or long,
        "max_total_driving_s": opts.max_drive_s or long,
        "min_total_driving_s": opts.min_drive_s,
        "pit_closed_under_sc": True,
        "neutralisation_delay_s": 30.0,
        "overtake_cost_s": 0.4,
    }


def _race(opts: RaceOptions, rep: SessionReport) -> tuple[dict[str, Any], float]:
    """The [race] table and the race's length in seconds (lap races: laps x a 2-minute lap)."""
    if opts.duration_h is not None and opts.laps is not None:
        raise ScenarioError("give one of --duration-h and --laps")
    table: dict[str, Any] = {"start_hour_of_day": opts.start_hour_of_day, "window_s": 30.0}
    if opts.laps is not None:
        table["laps"] = opts.laps
        return table, opts.laps * 120.0
    hours = opts.duration_h or (rep.duration_s / 3600.0 if rep.duration_s else None)
    if hours is None:
        raise ScenarioError(f"{rep.log}: the log has no race length: pass --duration-h or --laps")
    table["duration_h"] = float(hours)
    return table, hours * 3600.0


def session_table(rep: SessionReport, car: str, opts: RaceOptions, name: str) -> dict[str, Any]:
    """A scenario table whose field is the measurable cars of the log's session."""
    mine = rep.car(car)
    _check_mine(rep, mine)
    field = [
        c
        for c in rep.cars
        if c.number != car
        and c.engine_class is not None
        and c.pace is not None
        and c.pace.laps >= MIN_GREEN_LAPS
        and (c.fuel_per_lap or 0) > 0
    ]
    race, race_s = _race(opts, rep)
    drivers = opts.drivers or mine.drivers or (f"driver of #{car}",)
    entries = [_entry(mine, drivers, opts, rep)]
    entries += [_entry(c, c.drivers or (f"driver of #{c.number}",), opts, rep) for c in field]
    cars = [mine, *field]
    classes = []
    for cls in ENGINE_CLASSES:
        members = [c for c in cars if c.engine_class == cls]
        if members:
            classes.append(
                {
                    "name": cls,
                    "compounds": ["soft", "medium", "hard", "wet"],
                    "tyre_sets": opts.tyre_sets,
                    "refuel_full_s": REFUEL_FULL_S,
                    "has_energy": any(c.energy_per_lap for c in members),
                }
            )
    loss = opts.pit_lane_loss_s or _pit_lane_loss(rep, cars)
    return {
        "name": name,
        "lap_model": "parametric",
        "focus_car": car,
        "track": {
            "name": rep.track or rep.session,
            "lap_length_m": float(rep.track_length_m or 0.0),
            "pit_lane_loss_s": loss,
        },
        "race": race,
        "rules": _rules(opts, race_s),
        "events": {"incidents": True, "weather": False, "model": "default"},
        "classes": classes,
        "entries": entries,
    }


def shipped_field_table(
    rep: SessionReport, car: str, opts: RaceOptions, name: str, field: str
) -> dict[str, Any]:
    """A scenario table from a shipped (or any) scenario's field, my car added or replaced."""
    import tomllib

    from engine.scenario import SCENARIO_DIR

    base = load_scenario(field)  # validates the field and names a missing scenario
    path = Path(field) if Path(field).suffix else SCENARIO_DIR / f"{field}.toml"
    with path.open("rb") as f:
        table = tomllib.load(f)
    mine = rep.car(car)
    _check_mine(rep, mine)
    if mine.engine_class not in base.class_names:
        raise ScenarioError(
            f"scenario {field!r} has no class {mine.engine_class} for car {car} "
            f"(classes: {', '.join(base.class_names)})"
        )
    race, race_s = _race(opts, rep)
    drivers = opts.drivers or mine.drivers or (f"driver of #{car}",)
    entries = [e for e in table["entries"] if str(e["number"]) != car]
    table.update(
        name=name,
        focus_car=car,
        race={**race, "start_hour_of_day": table["race"].get("start_hour_of_day", 14.0)},
        entries=[_entry(mine, drivers, opts, rep), *entries],
    )
    table["rules"] = {**table.get("rules", {}), **_only_set(opts, race_s)}
    if opts.tyre_sets != -1:
        for cls in table["classes"]:
            cls["tyre_sets"] = opts.tyre_sets
    if opts.pit_lane_loss_s:
        table["track"]["pit_lane_loss_s"] = opts.pit_lane_loss_s
    return table


def _only_set(opts: RaceOptions, race_s: float) -> dict[str, Any]:
    """The driving-time rules the strategist stated (the shipped scenario's others stay)."""
    out: dict[str, Any] = {"min_total_driving_s": opts.min_drive_s}
    if opts.max_drive_s:
        out["max_total_driving_s"] = opts.max_drive_s
    if opts.max_stint_s:
        out["max_stint_driving_s"] = opts.max_stint_s
    return out


def _check_mine(rep: SessionReport, mine: CarFigures) -> None:
    if mine.engine_class is None:
        raise ScenarioError(
            f"{rep.log}: car {mine.number}'s class {mine.session_class!r} is not in the class "
            "table: pass --class-map FILE with a [classes] entry for it"
        )
    if mine.pace is None or mine.pace.laps < MIN_GREEN_LAPS or not mine.fuel_per_lap:
        raise ScenarioError(
            f"{rep.log}: car {mine.number} has too few green laps with fuel readings "
            f"(needs {MIN_GREEN_LAPS}) to measure its pace and use"
        )


def check_drive_times(opts: RaceOptions, race_s: float, n_drivers: int) -> None:
    """Refuse driving-time rules no line-up can meet (the race would be unplannable)."""
    if opts.max_drive_s is not None and opts.max_drive_s * n_drivers < race_s:
        raise ScenarioError(
            f"{n_drivers} driver(s) with at most {opts.max_drive_s / 3600:g} h each cannot "
            f"cover a {race_s / 3600:g} h race: add drivers or raise --max-drive-h"
        )
    if opts.min_drive_s * n_drivers > race_s:
        raise ScenarioError(
            f"{n_drivers} driver(s) with at least {opts.min_drive_s / 3600:g} h each exceed "
            f"a {race_s / 3600:g} h race: lower --min-drive-h"
        )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stintsim scenario",
        description="Write a scenario TOML for my race from my car in a session log and a "
        "field (the session's other cars, or a shipped scenario's field).",
    )
    p.add_argument("log", metavar="LOG", help="session log with my car (anything ingest reads)")
    p.add_argument("--car", required=True, metavar="NUMBER", help="my car's race number")
    p.add_argument(
        "--field",
        default="session",
        help="'session' (the log's other cars, default) or a shipped scenario / TOML whose "
        "track, rules and field to race in",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="scenario TOML to write")
    p.add_argument("--name", default=None, help="scenario name (default: the file's stem)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration-h", type=float, default=None, help="race length [h]")
    length.add_argument("--laps", type=int, default=None, help="race length [laps]")
    p.add_argument(
        "--driver",
        action="append",
        default=[],
        metavar="NAME",
        help="my driver, in driving order (repeat; default: the log's driver)",
    )
    p.add_argument("--min-drive-h", type=float, default=0.0, help="least each driver drives [h]")
    p.add_argument("--max-drive-h", type=float, default=None, help="most a driver drives [h]")
    p.add_argument(
        "--max-stint-h", type=float, default=None, help="longest a driver drives in one go [h]"
    )
    p.add_argument(
        "--tyre-sets", type=int, default=-1, help="dry tyre sets allowed per car (-1: unlimited)"
    )
    p.add_argument(
        "--fuel-mult",
        type=float,
        default=None,
        help="the race's fuel multiplier (default: the log's); use scales by race / log",
    )
    p.add_argument("--tyre-mult", type=float, default=None, help="the race's tyre wear multiplier")
    p.add_argument(
        "--pit-lane-loss-s",
        type=float,
        default=None,
        help="pit-lane drive-through loss [s] (default: measured from the log's stops)",
    )
    p.add_argument(
        "--start-hour", type=float, default=14.0, help="local time of day at the start [h]"
    )
    p.add_argument("--session", default=None, help="session of the log (default: last race)")
    p.add_argument(
        "--class-map", metavar="FILE", default=None, help="TOML [classes] table (see stintsim car)"
    )
    return p


def options(args: argparse.Namespace) -> RaceOptions:
    def secs(h: float | None) -> float | None:
        return None if h is None else h * 3600.0

    for flag, value in (("--fuel-mult", args.fuel_mult), ("--tyre-mult", args.tyre_mult)):
        if value is not None and not value > 0:
            raise ScenarioError(f"{flag} must be > 0, got {value}")
    return RaceOptions(
        duration_h=args.duration_h,
        laps=args.laps,
        drivers=tuple(args.driver),
        min_drive_s=args.min_drive_h * 3600.0,
        max_drive_s=secs(args.max_drive_h),
        max_stint_s=secs(args.max_stint_h),
        tyre_sets=args.tyre_sets,
        fuel_mult=args.fuel_mult,
        tyre_mult=args.tyre_mult,
        pit_lane_loss_s=args.pit_lane_loss_s,
        start_hour_of_day=args.start_hour,
    )


def build(args: argparse.Namespace, class_map: Mapping[str, str] | None) -> dict[str, Any]:
    rep = report_log(args.log, session=args.session, class_map=class_map)
    opts = options(args)
    name = args.name or Path(args.out).stem
    if args.field == "session":
        table = session_table(rep, args.car, opts, name)
    else:
        table = shipped_field_table(rep, args.car, opts, name, args.field)
    race = table["race"]
    race_s = race["duration_h"] * 3600.0 if "duration_h" in race else race["laps"] * 120.0
    check_drive_times(opts, race_s, len(table["entries"][0]["drivers"]))
    return table


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        extra = load_class_map(args.class_map) if args.class_map else None
        table = build(args, extra)
        mult = ", ".join(
            f"{what} x{value:g}" if value is not None else f"{what} as logged"
            for what, value in (("fuel", args.fuel_mult), ("tyres", args.tyre_mult))
        )
        header = (
            f"Scenario {table['name']!r} written by 'stintsim scenario' from car {args.car} of\n"
            f"{args.log}\n(field: {args.field}; {mult}). Pace, fuel, energy and tread per lap\n"
            "are the log's green-lap figures; refuel time and rules' times are assumptions\n"
            "(see engine/scenario_from_log.py)."
        )
        write_scenario(table, args.out, header)
    except (CarReportError, ClassMapError, IngestError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc.strerror})", file=sys.stderr)
        return 2
    n = len(table["entries"])
    print(f"wrote {args.out}: my car {args.car} and {n - 1} others", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)

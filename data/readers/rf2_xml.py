"""rFactor 2 / Le Mans Ultimate results XML (``UserData/Log/Results``).

Per driver (one car each): laps with time (``--.----`` for an invalid lap: kept untimed),
sectors ``s1..s3``, position ``p``, start time ``et`` [s session time], fuel fraction at the
line ``fuel``, virtual energy left at the line ``ve`` (LMU; fraction of the allocation,
``veUsed`` the lap's use), tread left per wheel ``twfl twfr twrl twrr`` (fractions, 1 = new;
absent in some files), compounds ``fcompound`` / ``rcompound`` ('index,Name') and ``pit="1"``
on the in-lap.
The ``Stream`` gives incidents (contacts with another car or with an object, with an impact
strength) and penalties. LMU anonymises the names in contact lines ("Driver 14 reported contact
(767.67) Driver 33"): those cannot be tied to cars, so they are kept as incidents without a car
(one per contact: the two mirrored reports at the same time count once) and counted in a
warning. The header's ``FuelMult`` / ``TireMult`` (fuel and tyre wear rate multipliers) are kept
with each session. Race time is measured from the race start (the first lap's ``et``).
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from data.clock import is_digits
from data.compounds import compound_code
from data.errors import IngestError
from data.records import CarRecord, ReadResult, Row, SessionRecord

SESSION_TYPES = {
    "race": "race",
    "qualify": "qualifying",
    "practice": "practice",
    "warmup": "practice",
}
_INCIDENT = re.compile(
    r"^(?P<car>.*?)\((?P<slot>-?\d+)\) reported contact \((?P<mag>[-\d.eE]+)\) with "
    r"(?:another vehicle (?P<other>.+?)\((?P<oslot>-?\d+)\)|(?P<object>.+))$"
)
_ANONYMOUS_CONTACT = re.compile(
    r"^(?P<car>Driver \d+) reported contact \((?P<mag>[-\d.eE]+)\) "
    r"(?:with (?P<object>.+)|(?P<other>Driver \d+))$"
)
_PENALTY = re.compile(r"^(?P<car>.+?) (?:received|served) ")
_WHEELS = ("fl", "fr", "rl", "rr")


def _float(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _text(el: ET.Element | None, tag: str) -> str | None:
    child = el.find(tag) if el is not None else None
    return child.text.strip() if child is not None and child.text else None


def _is_lmu(results: ET.Element) -> bool:
    """LMU logs say so in the game version (older ones) or the track's install path."""
    where = f"{_text(results, 'GameVersion') or ''} {_text(results, 'TrackData') or ''}"
    return "Le Mans Ultimate" in where


def read_rf2_xml(path: Path) -> ReadResult:
    """Read one results XML: a session per session element (Race, Qualify, Practice...)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        line, col = e.position
        raise IngestError(path, f"line {line}, column {col}", f"malformed XML: {e}") from e
    results = root.find("RaceResults") if root.tag != "RaceResults" else root
    if results is None:
        raise IngestError(path, "root", f"expected <RaceResults> inside <{root.tag}>")
    warnings: list[str] = []
    sessions = []
    for el in results:
        kind = re.sub(r"\d+$", "", el.tag).lower()
        if kind in SESSION_TYPES and el.find("Driver") is not None:
            sessions.append(_read_session(path, results, el, SESSION_TYPES[kind], warnings))
    if not sessions:
        raise IngestError(
            path, "<RaceResults>", "no session element (Race, Qualify, ...) with drivers"
        )
    return ReadResult(reader="rf2_xml", sessions=sessions, warnings=warnings)


def _read_session(
    path: Path, results: ET.Element, el: ET.Element, session_type: str, warnings: list[str]
) -> SessionRecord:
    minutes = _float(_text(el, "Minutes")) or 0.0
    laps_sched = int(_float(_text(el, "Laps")) or 0)
    stamp = _float(_text(el, "DateTime"))
    session = SessionRecord(
        name=f"{path.stem}_{el.tag.lower()}",
        series="LMU" if _is_lmu(results) else "rF2",
        track=_text(results, "TrackVenue"),
        session_type=session_type,
        start_time_utc=None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(),
        duration_s=minutes * 60.0 if minutes > 0 else None,
        laps_scheduled=laps_sched if 0 < laps_sched < 100000 else None,
        track_length_m=_float(_text(results, "TrackLength")),
        fuel_mult=_float(_text(results, "FuelMult")),
        tyre_mult=_float(_text(results, "TireMult")),
    )
    drivers = el.findall("Driver")
    by_name: dict[str, CarRecord] = {}
    raw_laps: dict[str, list[ET.Element]] = {}
    numbers = [(_text(d, "CarNumber") or "?") for d in drivers]
    for d, number in zip(drivers, numbers, strict=True):
        name = _text(d, "Name") or f"driver {len(by_name) + 1}"
        if numbers.count(number) > 1:
            number = f"{number} ({name})"
        car = session.car(number)
        car.car_class = _text(d, "CarClass")
        car.team = _text(d, "TeamName")
        car.vehicle = _text(d, "VehName")
        car.add_driver(name, 1)
        status = (_text(d, "FinishStatus") or "").lower()
        car.finish_status = (
            "finished"
            if "finished" in status
            else "dq"
            if "dq" in status or "disq" in status
            else "retired"
            if status in ("dnf", "retired")
            else None
        )
        by_name[name] = car
        raw_laps[number] = d.findall("Lap")
    all_starts = [
        _float(lap.get("et")) for laps in raw_laps.values() for lap in laps if lap.get("num") == "1"
    ]
    starts = [t for t in all_starts if t is not None]
    t0 = min(starts) if starts else 0.0
    for number, laps in raw_laps.items():
        _read_laps(path, session, number, by_name, laps, t0, warnings)
    for car in session.cars.values():
        car.laps_completed = sum(1 for r in session.laps if r["car"] == car.number) or 0
    stream = el.find("Stream")
    if stream is not None:
        _read_stream(session, by_name, stream, t0, warnings)
    return session


def _read_laps(
    path: Path,
    session: SessionRecord,
    number: str,
    by_name: dict[str, CarRecord],
    laps: list[ET.Element],
    t0: float,
    warnings: list[str],
) -> None:
    car = session.cars[number]
    driver = car.drivers[0][0]
    rows: list[Row] = []
    seen: set[int] = set()
    for lap_el in laps:
        num_text = lap_el.get("num", "")
        if not is_digits(num_text):
            raise IngestError(
                path, f"driver {driver!r}, <Lap>", f"lap number {num_text!r} not an integer"
            )
        num = int(num_text)
        if num in seen:
            warnings.append(f"driver {driver!r}: duplicate lap {num}; kept the first")
            continue
        seen.add(num)
        lap_time = _float(lap_el.text)
        timed = int(lap_time is not None and lap_time > 0)
        if lap_time is not None and lap_time <= 0:
            warnings.append(f"driver {driver!r}, lap {num}: lap time {lap_el.text!r} not positive")
        start = _float(lap_el.get("et"))
        fcomp = lap_el.get("fcompound") or lap_el.get("rcompound")
        comp_name = fcomp.split(",", 1)[-1] if fcomp else None
        fuel = _float(lap_el.get("fuel"))
        energy = _float(lap_el.get("ve"))
        energy_used = _float(lap_el.get("veUsed"))
        row: Row = {
            "car": number,
            "driver": driver,
            "lap": num,
            "lap_time_s": lap_time if timed else None,
            "timed": timed,
            "s1_s": _float(lap_el.get("s1")),
            "s2_s": _float(lap_el.get("s2")),
            "s3_s": _float(lap_el.get("s3")),
            "race_time_s": None if start is None or not timed else start + lap_time - t0,
            "position": int(p) if is_digits(p := lap_el.get("p", "")) else None,
            "pit_in": int(lap_el.get("pit") == "1"),
            "compound": compound_code(comp_name),
            "compound_name": comp_name,
            "fuel_end": fuel,
            "energy_end": energy,
            # Lap 1 starts from the grid: its start is its end plus its own use.
            "energy_start": (
                energy + energy_used
                if num == 1 and energy is not None and energy_used is not None
                else None
            ),
            "_start": None if start is None else start - t0,
            "_fuel_used": _float(lap_el.get("fuelUsed")),
            "_energy_used": energy_used,
        }
        for w in _WHEELS:
            row[f"tread_{w}"] = _float(lap_el.get(f"tw{w}"))
        rows.append(row)
    rows.sort(key=lambda r: r["lap"])
    for prev, row in zip([None, *rows], rows, strict=False):
        nxt_start = None
        if row["race_time_s"] is None:
            later = [r["_start"] for r in rows if r["lap"] == row["lap"] + 1]
            nxt_start = later[0] if later else None
            row["race_time_s"] = nxt_start
        row["pit_out"] = 0 if prev is None else prev["pit_in"]
        if prev is not None:
            row["fuel_start"] = prev["fuel_end"]
            if prev["energy_end"] is not None:
                row["energy_start"] = prev["energy_end"]
        _start_from_logged_use(row)
    uses = [
        a["fuel_end"] - b["fuel_end"]
        for a, b in itertools.pairwise(rows)
        if a["fuel_end"] is not None and b["fuel_end"] is not None and a["fuel_end"] > b["fuel_end"]
    ]
    per_lap = statistics.median(uses) if uses else 0.0
    session.pit_stops.extend(_pit_stops(number, rows, per_lap))
    for row in rows:
        del row["_start"], row["_fuel_used"], row["_energy_used"]
    session.laps.extend(rows)


def _pit_stops(number: str, rows: list[Row], per_lap: float) -> list[Row]:
    """A stop per in-lap: refuel and fuel added (fraction of tank) from the levels around it,
    tyres changed from the tread, at the in-lap's line crossing."""
    out_stops: list[Row] = []
    for i, row in enumerate(rows):
        if row["pit_in"] != 1:
            continue
        out = rows[i + 1] if i + 1 < len(rows) else None
        stop: Row = {"car": number, "lap": row["lap"], "race_time_s": row["race_time_s"]}
        if out is not None:
            if row["fuel_end"] is not None and out["fuel_end"] is not None:
                # Fuel at the out-lap's end = in-lap end + added - one lap's use.
                added = out["fuel_end"] - row["fuel_end"] + per_lap
                stop["refuel"] = int(added > 0.5 * per_lap + 0.01)
                stop["fuel_added"] = max(added, 0.0) if stop["refuel"] else 0.0
            treads = [(row[f"tread_{w}"], out[f"tread_{w}"]) for w in _WHEELS]
            if all(a is not None and b is not None for a, b in treads):
                stop["tyres_changed"] = sum(1 for a, b in treads if b > a + 0.005)
            stop["driver_change"] = 0
        out_stops.append(stop)
    return out_stops


def _start_from_logged_use(row: Row) -> None:
    """Where LMU logs the lap's own use (fuelUsed / veUsed; negative on a lap with a refill),
    the lap's start level is its end plus that use: the levels are rounded to three decimals,
    so the previous lap's end is up to 0.001 off, 3 % of a lap's use."""
    for level, used in (("fuel", "_fuel_used"), ("energy", "_energy_used")):
        if row[used] is not None and row[used] > 0 and row[f"{level}_end"] is not None:
            row[f"{level}_start"] = row[f"{level}_end"] + row[used]


def _lap_at(session: SessionRecord, number: str, t: float) -> int | None:
    """The lap a car was on at race time ``t`` [s] (1 + laps completed before ``t``)."""
    done = [
        r["lap"]
        for r in session.laps
        if r["car"] == number and r["race_time_s"] is not None and r["race_time_s"] <= t
    ]
    return max(done, default=0) + 1


def _read_stream(
    session: SessionRecord,
    by_name: dict[str, CarRecord],
    stream: ET.Element,
    t0: float,
    warnings: list[str],
) -> None:
    unknown: set[str] = set()
    anonymous: dict[tuple[float, frozenset[str]], Row] = {}
    for ev in stream:
        et = _float(ev.get("et"))
        text = (ev.text or "").strip()
        if et is None:
            continue
        t = et - t0
        if ev.tag == "Incident" and (a := _ANONYMOUS_CONTACT.match(text)) is not None:
            _add_anonymous_contact(session, anonymous, a, t, text)
        elif ev.tag == "Incident":
            m = _INCIDENT.match(text)
            if m is None:
                warnings.append(f"incident at et={et}: unrecognised text {text[:60]!r}")
                continue
            car = by_name.get(m["car"].strip())
            if car is None:
                unknown.add(m["car"])
                continue
            if m["other"] is not None:
                other = by_name.get(m["other"].strip())
                if other is car:
                    continue  # rF2 echoes each car-to-car contact naming the reporter itself
                session.incidents.append(
                    {
                        "car": car.number,
                        "other_car": None if other is None else other.number,
                        "kind": "contact",
                        "race_time_s": t,
                        "magnitude": float(m["mag"]),
                        "lap": _lap_at(session, car.number, t),
                        "description": text,
                    }
                )
            else:
                session.incidents.append(
                    {
                        "car": car.number,
                        "kind": "object",
                        "race_time_s": t,
                        "magnitude": float(m["mag"]),
                        "lap": _lap_at(session, car.number, t),
                        "description": m["object"],
                    }
                )
        elif ev.tag == "Penalty":
            m = _PENALTY.match(text)
            car = by_name.get(m["car"].strip()) if m else None
            if car is not None and " received " in text:
                session.incidents.append(
                    {
                        "car": car.number,
                        "kind": "penalty",
                        "race_time_s": t,
                        "lap": _lap_at(session, car.number, t),
                        "description": text,
                    }
                )
    if unknown:
        warnings.append(f"incidents of drivers not in the results skipped: {sorted(unknown)}")
    if anonymous:
        n_cars = sum(1 for i in anonymous.values() if i["kind"] == "contact")
        warnings.append(
            f"{session.name}: {n_cars} car-to-car and {len(anonymous) - n_cars} object contacts "
            "name anonymised drivers ('Driver N'): kept as incidents without a car"
        )


def _add_anonymous_contact(
    session: SessionRecord,
    seen: dict[tuple[float, frozenset[str]], Row],
    m: re.Match[str],
    t: float,
    text: str,
) -> None:
    """Keep a car-to-car contact once (both cars report it at the same time), each object hit."""
    magnitude = float(m["mag"])
    key = (round(t, 1), frozenset((m["car"], m["other"] or f"{m['object']} #{len(seen)}")))
    if key in seen:
        seen[key]["magnitude"] = max(seen[key]["magnitude"], magnitude)
        return
    seen[key] = {
        "car": None,
        "kind": "object" if m["object"] is not None else "contact",
        "race_time_s": t,
        "magnitude": magnitude,
        "description": text,
    }
    session.incidents.append(seen[key])

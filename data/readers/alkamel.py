"""Al Kamel Systems timing exports (FIA WEC ';', IMSA ','): lap analysis, results and weather.

Quirks handled (see ``../shared/data/README.md``): UTF-8 BOM, CRLF, spaces around header
names, a trailing separator, NUMBER kept as text ('007'), ``m:ss.sss`` / ``h:mm:ss.sss`` times.
The lap analysis gives one lap row per CSV line; ``CROSSING_FINISH_LINE_IN_PIT = B`` marks the
in-lap, ``PIT_TIME`` (time in the pit lane) is on the following out-lap, a new
``DRIVER_NUMBER`` is a driver change, and ``FLAG_AT_FL`` is the flag when the car crossed the
line (GF green, FCY full-course yellow, SF safety car, FF chequered).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from data.clock import is_digits, parse_clock
from data.errors import IngestError
from data.records import ReadResult, Row, SessionRecord

FLAG_CODES = {"GF": 0, "FCY": 2, "SF": 3, "SC": 3, "FF": 5}
# Flags whose contiguous runs become flag_periods (laps.flag codes).
PERIOD_FLAGS = {2, 3, 5}

LAP_COLUMNS = {
    "NUMBER",
    "DRIVER_NUMBER",
    "LAP_NUMBER",
    "LAP_TIME",
    "CROSSING_FINISH_LINE_IN_PIT",
    "ELAPSED",
    "HOUR",
    "DRIVER_NAME",
    "PIT_TIME",
    "CLASS",
    "TEAM",
    "FLAG_AT_FL",
}
RESULTS_COLUMNS = {"POSITION", "NUMBER", "STATUS", "LAPS", "CLASS", "TEAM"}
WEATHER_COLUMNS = {"TIME_UTC_SECONDS", "AIR_TEMP", "TRACK_TEMP", "HUMIDITY", "PRESSURE", "RAIN"}

SERIES_PREFIXES = {"wec": "WEC", "imsa": "IMSA", "elms": "ELMS", "alms": "ALMS"}
TRACK_NAMES = {
    "lemans": "Circuit de la Sarthe",
    "bahrain": "Bahrain International Circuit",
    "sebring": "Sebring International Raceway",
    "spa": "Circuit de Spa-Francorchamps",
    "daytona": "Daytona International Speedway",
    "fuji": "Fuji Speedway",
    "monza": "Autodromo Nazionale Monza",
    "imola": "Autodromo Enzo e Dino Ferrari",
    "portimao": "Autodromo Internacional do Algarve",
    "cota": "Circuit of the Americas",
    "qatar": "Lusail International Circuit",
}
_INHG_TO_HPA = 33.8638866667
_MPH_TO_MS = 0.44704


def _fahrenheit_to_c(f: float) -> float:
    return (f - 32.0) * 5.0 / 9.0


def read_table(path: Path) -> tuple[list[str], list[list[str]], str]:
    """(stripped header names, rows, delimiter) of an Al Kamel CSV (trailing blank dropped)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise IngestError(path, "line 1", "empty file: expected a CSV header")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(path, f"byte {e.start}", "not UTF-8 text: expected a timing CSV") from e
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    while header and header[-1] == "":
        header.pop()
    return header, rows[1:], delimiter


def header_kind(header: list[str]) -> str | None:
    """'laps', 'results' or 'weather' from the column names; None when none fits."""
    names = set(header)
    if names >= LAP_COLUMNS:
        return "laps"
    if names >= WEATHER_COLUMNS:
        return "weather"
    if names >= RESULTS_COLUMNS:
        return "results"
    return None


def _name_facts(path: Path) -> tuple[str, str | None, str | None, str | None, float | None]:
    """(session name, series, track, session type, duration [s]) from a file name such as
    ``wec_2024_lemans_24h_race_analysis.csv``; None where the name does not say."""
    stem = path.stem.lower()
    name = re.sub(r"_(analysis|laps|results|weather)$", "", stem)
    tokens = name.split("_")
    series = next((SERIES_PREFIXES[t] for t in tokens if t in SERIES_PREFIXES), None)
    track = next((TRACK_NAMES[t] for t in tokens if t in TRACK_NAMES), None)
    session_type = None
    if "race" in tokens:
        session_type = "race"
    elif any(t.startswith("qualif") for t in tokens):
        session_type = "qualifying"
    elif any(t.startswith(("practice", "fp")) for t in tokens):
        session_type = "practice"
    duration = next(
        (float(m.group(1)) * 3600.0 for t in tokens if (m := re.fullmatch(r"(\d+)h", t))), None
    )
    return name, series, track, session_type, duration


def _cell(row: list[str], index: dict[str, int], name: str) -> str:
    i = index.get(name)
    return row[i].strip() if i is not None and i < len(row) else ""


def _clock(path: Path, line: int, column: str, text: str) -> float | None:
    try:
        return parse_clock(text)
    except ValueError as e:
        raise IngestError(path, f"line {line}, column {column}", str(e)) from e


@dataclass
class _LapReading:
    """What reading the lap rows of one file collects besides the laps."""

    path: Path
    index: dict[str, int]
    session: SessionRecord
    sector_cols: list[tuple[str, str]]
    warnings: list[str]
    seen: set[tuple[str, int]] = field(default_factory=set)
    starts: list[float] = field(default_factory=list)
    """Race start as time of day [s], from each car's first lap."""
    lengths: list[float] = field(default_factory=list)
    """Track length estimates [m] from speed and lap time."""

    def lap_record(self, n: int, row: list[str]) -> Row | None:
        """The lap of CSV line ``n``; None for a duplicate lap (warned)."""
        number = _cell(row, self.index, "NUMBER")
        lap_text = _cell(row, self.index, "LAP_NUMBER")
        if not number or not is_digits(lap_text):
            raise IngestError(
                self.path,
                f"line {n}",
                f"expected NUMBER and an integer LAP_NUMBER, got {number!r}, {lap_text!r}",
            )
        lap = int(lap_text)
        if (number, lap) in self.seen:
            self.warnings.append(f"line {n}: duplicate lap {lap} of car {number}; kept the first")
            return None
        self.seen.add((number, lap))
        lap_time = _clock(self.path, n, "LAP_TIME", _cell(row, self.index, "LAP_TIME"))
        timed = 1
        if lap_time is None or not math.isfinite(lap_time) or lap_time <= 0.0:
            self.warnings.append(
                f"line {n}: lap time {_cell(row, self.index, 'LAP_TIME')!r} is not a positive time;"
                " lap kept untimed"
            )
            lap_time, timed = None, 0
        elapsed = _clock(self.path, n, "ELAPSED", _cell(row, self.index, "ELAPSED"))
        hour = _clock(self.path, n, "HOUR", _cell(row, self.index, "HOUR"))
        flag_text = _cell(row, self.index, "FLAG_AT_FL")
        if flag_text and flag_text not in FLAG_CODES:
            self.warnings.append(f"line {n}: unknown FLAG_AT_FL {flag_text!r}; stored NULL")
        driver_number = _cell(row, self.index, "DRIVER_NUMBER")
        car = self.session.car(number)
        car.car_class = car.car_class or _cell(row, self.index, "CLASS") or None
        car.team = car.team or _cell(row, self.index, "TEAM") or None
        car.manufacturer = car.manufacturer or _cell(row, self.index, "MANUFACTURER") or None
        driver = _cell(row, self.index, "DRIVER_NAME") or None
        if driver:
            car.add_driver(driver, int(driver_number) if is_digits(driver_number) else None)
        rec: Row = {
            "car": number,
            "driver": driver,
            "lap": lap,
            "lap_time_s": lap_time,
            "timed": timed,
            "race_time_s": elapsed,
            "pit_in": int(_cell(row, self.index, "CROSSING_FINISH_LINE_IN_PIT") == "B"),
            "pit_time_s": _clock(self.path, n, "PIT_TIME", _cell(row, self.index, "PIT_TIME")),
            "flag": FLAG_CODES.get(flag_text),
            "_driver_number": driver_number,
            "_line": n,
        }
        for col, src in self.sector_cols:
            rec[col] = _clock(self.path, n, src, _cell(row, self.index, src))
        kph = _cell(row, self.index, "KPH")
        if lap_time and kph and rec["flag"] == 0 and lap > 1:
            with contextlib.suppress(ValueError):
                self.lengths.append(float(kph) / 3.6 * lap_time)
        if lap == 1 and elapsed is not None and hour is not None:
            self.starts.append((hour - elapsed) % 86400.0)
        return rec


def read_laps(path: Path) -> ReadResult:
    """Read an Al Kamel lap analysis CSV into one race session (one lap row per line)."""
    header, rows, delimiter = read_table(path)
    missing = sorted(LAP_COLUMNS - set(header))
    if missing:
        raise IngestError(
            path, "line 1 (header)", f"not an Al Kamel lap analysis: missing {missing}"
        )
    index = {h: i for i, h in enumerate(header)}
    name, series, track, session_type, duration = _name_facts(path)
    warnings: list[str] = []
    if series is None:
        series = "WEC" if delimiter == ";" else "IMSA"
        warnings.append(f"series not in the file name; guessed {series} from the separator")
    session = SessionRecord(
        name=name, series=series, track=track, session_type=session_type or "race"
    )
    sector_cols = [
        (f"s{k}_s", f"S{k}_SECONDS" if f"S{k}_SECONDS" in index else f"S{k}") for k in (1, 2, 3)
    ]
    laps: list[Row] = []
    reading = _LapReading(path, index, session, sector_cols, warnings)
    if rows and not path.read_bytes().rstrip(b" \t").endswith((b"\n", b"\r")):
        warnings.append(
            f"line {len(rows) + 1}: the file does not end with a line end (cut off while "
            "written?); its last line is kept only if it holds every field"
        )
    for n, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < len(header):
            warnings.append(
                f"line {n}: {len(row)} of the header's {len(header)} fields (a line cut short);"
                " skipped"
            )
            continue
        rec = reading.lap_record(n, row)
        if rec is not None:
            laps.append(rec)
    if not laps:
        raise IngestError(path, "line 2", "no lap rows after the header")
    session.laps = laps
    if reading.starts:
        session.start_hour_of_day = statistics.median(reading.starts) / 3600.0
    if reading.lengths:
        session.track_length_m = round(statistics.median(reading.lengths), 0)
    _check_lap_times(session, warnings)
    _derive_car_laps(session)
    _derive_positions(session)
    first_ff = _derive_flag_periods(session)
    if duration is None and first_ff is not None and first_ff >= 3600.0:
        duration = math.floor(first_ff / 3600.0) * 3600.0
    session.duration_s = duration
    _derive_finish(session, first_ff)
    for rec in laps:
        del rec["_driver_number"], rec["_line"]
    return ReadResult(reader="alkamel_csv", sessions=[session], warnings=warnings)


LAP_TIME_TOLERANCE_S = 5.0
"""How far a lap time may stray from the step of ELAPSED between a car's consecutive laps
(Al Kamel's agree to the millisecond) before it is taken for a corrupt time [s]."""


def _check_lap_times(session: SessionRecord, warnings: list[str]) -> None:
    """A lap time that cannot be (longer than the race so far, or far from the step of the
    elapsed race time since the car's previous lap) is kept untimed, with a warning: a corrupt
    ``99999`` would otherwise be stored as a timed lap."""
    by_car: dict[str, dict[int, Row]] = defaultdict(dict)
    for rec in session.laps:
        by_car[rec["car"]][rec["lap"]] = rec
    for laps in by_car.values():
        for lap, rec in laps.items():
            lap_time, elapsed = rec["lap_time_s"], rec["race_time_s"]
            if lap_time is None or elapsed is None:
                continue
            prev = laps.get(lap - 1)
            step = None
            if prev is not None and prev["race_time_s"] is not None:
                step = elapsed - prev["race_time_s"]
            tolerance = max(LAP_TIME_TOLERANCE_S, 0.1 * (step or 0.0))
            if lap_time > elapsed + LAP_TIME_TOLERANCE_S:
                reason = f"longer than the race time so far ({elapsed:.3f} s)"
            elif step is not None and abs(lap_time - step) > tolerance:
                reason = f"but ELAPSED moved on by {step:.3f} s since lap {lap - 1}"
            else:
                continue
            warnings.append(
                f"line {rec['_line']}: car {rec['car']} lap {lap} time {lap_time:.3f} s, "
                f"{reason}; lap kept untimed"
            )
            rec["lap_time_s"], rec["timed"] = None, 0
            for col in ("s1_s", "s2_s", "s3_s"):
                rec[col] = None


def _derive_car_laps(session: SessionRecord) -> None:
    """Out-laps, driver changes and pit stops, walking each car's laps in order."""
    by_car: dict[str, list[Row]] = defaultdict(list)
    for rec in session.laps:
        by_car[rec["car"]].append(rec)
    for number, laps in by_car.items():
        laps.sort(key=lambda r: r["lap"])
        prev: Row | None = None
        for rec in laps:
            after_pit = prev is not None and prev["pit_in"] == 1
            rec["pit_out"] = int(after_pit or rec["pit_time_s"] is not None)
            rec["driver_change"] = int(
                prev is not None and rec["_driver_number"] != prev["_driver_number"]
            )
            if after_pit:
                session.pit_stops.append(
                    {
                        "car": number,
                        "lap": prev["lap"],
                        "race_time_s": prev["race_time_s"],
                        "pit_time_s": rec["pit_time_s"],
                        "driver_change": rec["driver_change"],
                    }
                )
            prev = rec
        if prev is not None and prev["pit_in"] == 1:
            # The car pitted and never came out: a stop without an out-lap.
            session.pit_stops.append(
                {
                    "car": number,
                    "lap": prev["lap"],
                    "race_time_s": prev["race_time_s"],
                    "pit_time_s": None,
                }
            )
        session.cars[number].laps_completed = laps[-1]["lap"]


def _derive_positions(session: SessionRecord) -> None:
    """Overall and class position at the line: order of the cars completing the same lap."""
    by_lap: dict[int, list[Row]] = defaultdict(list)
    for rec in session.laps:
        if rec["race_time_s"] is not None:
            by_lap[rec["lap"]].append(rec)
    for recs in by_lap.values():
        recs.sort(key=lambda r: r["race_time_s"])
        per_class: dict[str | None, int] = defaultdict(int)
        for pos, rec in enumerate(recs, start=1):
            rec["position"] = pos
            cls = session.cars[rec["car"]].car_class
            per_class[cls] += 1
            rec["class_position"] = per_class[cls]


def _derive_flag_periods(session: SessionRecord) -> float | None:
    """Contiguous runs of FCY / SC / chequered crossings as flag periods; the first FF time.

    A period starts at the first line crossing that shows the flag and ends at the first
    crossing after it that shows another flag (race time [s]); its laps are the leader's.
    """
    crossings = sorted(
        (r for r in session.laps if r["race_time_s"] is not None and r["flag"] is not None),
        key=lambda r: r["race_time_s"],
    )
    leader_lap = 0
    current: Row | None = None
    first_ff: float | None = None
    for rec in crossings:
        t, flag = rec["race_time_s"], rec["flag"]
        leader_lap = max(leader_lap, rec["lap"])
        if flag == 5 and first_ff is None:
            first_ff = t
        if current is not None and flag != current["kind"]:
            current["end_s"], current["end_lap"] = t, leader_lap
            session.flag_periods.append(current)
            current = None
        if current is None and flag in PERIOD_FLAGS:
            current = {
                "kind": flag,
                "start_s": t,
                "end_s": None,
                "start_lap": leader_lap,
                "end_lap": None,
            }
    if current is not None:
        if current["kind"] == 5:
            current["end_s"], current["end_lap"] = crossings[-1]["race_time_s"], leader_lap
        session.flag_periods.append(current)
    return first_ff


def _derive_finish(session: SessionRecord, first_ff: float | None) -> None:
    """Finished when the car took the chequered flag; retired when it stopped more than two
    of its typical laps before the leader's finish; unknown (NULL) otherwise."""
    if first_ff is None:
        return
    last: dict[str, Row] = {}
    times: dict[str, list[float]] = defaultdict(list)
    for rec in session.laps:
        if rec["car"] not in last or rec["lap"] > last[rec["car"]]["lap"]:
            last[rec["car"]] = rec
        if rec["lap_time_s"] is not None and rec["flag"] == 0:
            times[rec["car"]].append(rec["lap_time_s"])
    for number, rec in last.items():
        car = session.cars[number]
        typical = statistics.median(times[number]) if times[number] else 300.0
        if rec["flag"] == 5:
            car.finish_status = "finished"
        elif rec["race_time_s"] is not None and rec["race_time_s"] < first_ff - 2.0 * typical:
            car.finish_status = "retired"


def read_results(path: Path) -> ReadResult:
    """Read an Al Kamel results CSV (IMSA): cars, vehicles, drivers, laps and finish status.

    STATUS maps to finish status where it says something: disqualified -> 'dq', retired /
    DNF / not classified -> 'retired', running / finished -> 'finished'. IMSA lists every car,
    even one that stopped after two laps, as 'Classified': that says nothing of finishing, so
    it is stored NULL (the lap analysis of the same race gives the status from the laps).
    """
    header, rows, _ = read_table(path)
    missing = sorted(RESULTS_COLUMNS - set(header))
    if missing:
        raise IngestError(
            path, "line 1 (header)", f"not an Al Kamel results file: missing {missing}"
        )
    index = {h: i for i, h in enumerate(header)}
    name, series, track, session_type, duration = _name_facts(path)
    session = SessionRecord(
        name=name, series=series, track=track, session_type=session_type, duration_s=duration
    )
    warnings: list[str] = []
    statuses: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        number = _cell(row, index, "NUMBER")
        if not number:
            continue
        car = session.car(number)
        car.car_class = _cell(row, index, "CLASS") or None
        car.team = _cell(row, index, "TEAM") or None
        car.vehicle = _cell(row, index, "VEHICLE") or None
        laps_text = _cell(row, index, "LAPS")
        if not is_digits(laps_text):
            raise IngestError(
                path, f"line {n}, column LAPS", f"expected an integer, got {laps_text!r}"
            )
        car.laps_completed = int(laps_text)
        statuses[number] = _cell(row, index, "STATUS").lower()
        for k in range(1, 9):
            first = _cell(row, index, f"DRIVER{k}_FIRSTNAME")
            second = _cell(row, index, f"DRIVER{k}_SECONDNAME")
            if first or second:
                car.add_driver(f"{first} {second}".strip(), k)
    unknown = []
    for number, status in statuses.items():
        car = session.cars[number]
        if "disq" in status or status in ("dq", "dsq"):
            car.finish_status = "dq"
        elif status in ("running", "finished"):
            car.finish_status = "finished"
        elif "retired" in status or "dnf" in status or "not classified" in status or status == "nc":
            car.finish_status = "retired"
        else:
            unknown.append(number)
    if unknown:
        said = ", ".join(sorted({statuses[n] for n in unknown}))
        warnings.append(
            f"STATUS of {len(unknown)} cars ({said}) does not say finished or retired; stored NULL"
        )
    return ReadResult(reader="alkamel_results", sessions=[session], warnings=warnings)


def read_weather(path: Path) -> ReadResult:
    """Read an IMSA weather CSV (one row a minute) into weather samples in SI units.

    The file is imperial throughout: °F, inHg and wind speed in mph (converted to °C, hPa and
    m/s). ``RAIN = -1`` means no rain sensor: stored NULL. Race time is measured from the first
    sample (the file starts with the race, within a minute of the green flag).
    """
    header, rows, _ = read_table(path)
    missing = sorted(WEATHER_COLUMNS - set(header))
    if missing:
        raise IngestError(path, "line 1 (header)", f"not an IMSA weather file: missing {missing}")
    index = {h: i for i, h in enumerate(header)}
    name, series, track, session_type, duration = _name_facts(path)
    session = SessionRecord(
        name=name, series=series, track=track, session_type=session_type, duration_s=duration
    )
    warnings: list[str] = []
    t0: float | None = None
    last_t = -math.inf

    def num(row: list[str], col: str, n: int) -> float | None:
        text = _cell(row, index, col)
        if not text:
            return None
        try:
            return float(text)
        except ValueError as e:
            raise IngestError(
                path, f"line {n}, column {col}", f"expected a number, got {text!r}"
            ) from e

    for n, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):
            continue
        t = num(row, "TIME_UTC_SECONDS", n)
        if t is None:
            raise IngestError(path, f"line {n}, column TIME_UTC_SECONDS", "missing time")
        if t <= last_t:
            warnings.append(f"line {n}: time {t:.0f} not after the previous sample; skipped")
            continue
        last_t = t
        t0 = t if t0 is None else t0
        air, track_t, hum = (
            num(row, "AIR_TEMP", n),
            num(row, "TRACK_TEMP", n),
            num(row, "HUMIDITY", n),
        )
        pressure, rain = num(row, "PRESSURE", n), num(row, "RAIN", n)
        wind = num(row, "WIND_SPEED", n) if "WIND_SPEED" in index else None
        session.weather.append(
            {
                "race_time_s": t - t0,
                "time_utc": datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds"),
                "air_temp_c": None if air is None else _fahrenheit_to_c(air),
                "track_temp_c": None if track_t is None else _fahrenheit_to_c(track_t),
                "humidity_pct": hum,
                "pressure_hpa": None if pressure is None else pressure * _INHG_TO_HPA,
                "wind_speed_ms": None if wind is None else wind * _MPH_TO_MS,
                "wind_dir_deg": num(row, "WIND_DIRECTION", n)
                if "WIND_DIRECTION" in index
                else None,
                "rain": None if rain is None or rain < 0 else rain,
            }
        )
    if t0 is None:
        raise IngestError(path, "line 2", "no weather rows after the header")
    session.start_time_utc = datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds")
    return ReadResult(reader="alkamel_weather", sessions=[session], warnings=warnings)

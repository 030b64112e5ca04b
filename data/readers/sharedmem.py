"""rFactor 2 / LMU shared-memory recordings: JSON lists of ``ScoringInfoV01`` and
``TelemInfoV01`` records, bare or wrapped as ``{record_id, timestamp, data}``.

Scoring records give, per vehicle, lap completions (``mTotalLaps`` steps up; the lap's time is
``mLastLapTime``, sectors from the cumulative ``mLastSector1/2``), position, pit stops
(``mNumPitstops`` steps up) and the game phase (5 green, 6 full-course yellow, 8 session over).
Telemetry records give, at each line crossing (``mLapNumber`` steps up), fuel (``mFuel /
mFuelCapacity``), tread left per wheel (``mWheel[i].mWear``), compound and impacts. Both give
state samples. Race time is the game's session clock (``mCurrentET`` / ``mElapsedTime``) [s].
A recording cut off mid-record keeps every complete record; the warning says where it broke.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from pathlib import Path
from typing import Any

from data.compounds import compound_code
from data.errors import IngestError
from data.jsonstream import read_json_records
from data.records import ReadResult, Row, SessionRecord

PHASE_FLAGS = {5: 0, 6: 2, 8: 5}  # mGamePhase -> laps.flag code
PERIOD_KINDS = {2, 5}
_SESSION_TYPES = [
    (range(1, 5), "practice"),
    (range(5, 9), "qualifying"),
    (range(9, 10), "practice"),
]
_KELVIN = 273.15


def session_type(code: int | None) -> str | None:
    """rF2 ``mSession``: 0 test day, 1-4 practice, 5-8 qualifying, 9 warm-up, 10-13 race."""
    if code is None:
        return None
    if 10 <= code <= 13:
        return "race"
    return next((name for r, name in _SESSION_TYPES if code in r), None)


def car_number(vehicle_name: str, fallback: str) -> str:
    """The race number in an LMU vehicle name ('AF Corse 2025 #83:LM' -> '83')."""
    m = re.search(r"#(\w+)", vehicle_name or "")
    return m.group(1) if m else fallback


# The fields this reader uses and the JSON types they must have; a field of another type is
# dropped from its record (with one warning per field), so a damaged record cannot crash a run.
_NUM, _INT, _STR, _BOOL, _LIST = "number", "integer", "string", "boolean", "list"
SCORING_FIELDS = {
    "mCurrentET": _NUM, "mGamePhase": _INT, "mSession": _INT, "mLapDist": _NUM,
    "mStartET": _NUM, "mEndET": _NUM, "mMaxLaps": _INT, "mTrackName": _STR,
    "mAmbientTemp": _NUM, "mTrackTemp": _NUM, "mAvgPathWetness": _NUM, "mRaining": _NUM,
    "mVehicles": _LIST,
}  # fmt: skip
VEHICLE_FIELDS = {
    "mID": _INT, "mVehicleName": _STR, "mDriverName": _STR, "mVehicleClass": _STR,
    "mIsPlayer": _BOOL, "mTotalLaps": _INT, "mLastLapTime": _NUM, "mLastSector1": _NUM,
    "mLastSector2": _NUM, "mPlace": _INT, "mInPits": _BOOL, "mNumPitstops": _INT,
    "mLapDist": _NUM, "mFinishStatus": _INT, "mUnderYellow": _BOOL,
}  # fmt: skip
TELEMETRY_FIELDS = {
    "mID": _INT, "mVehicleName": _STR, "mElapsedTime": _NUM, "mLapNumber": _INT,
    "mLapStartET": _NUM, "mFuel": _NUM, "mFuelCapacity": _NUM, "mFrontTireCompoundName": _STR,
    "mDentSeverity": _LIST, "mLastImpactET": _NUM, "mWheel": _LIST, "mTrackName": _STR,
}  # fmt: skip
WHEEL_FIELDS = {"mWear": _NUM, "mTemperature": _LIST}


def _is(value: Any, kind: str) -> bool:
    if kind == _NUM:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _BOOL:
        return isinstance(value, bool) or value in (0, 1)
    if kind == _STR:
        return isinstance(value, str)
    return isinstance(value, list)


class _Checker:
    """Drops fields of the wrong type, warning once per field with the first record seen."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.seen: set[str] = set()

    def clean(
        self, data: dict[str, Any], fields: dict[str, str], k: int, where: str
    ) -> dict[str, Any]:
        out = dict(data)
        for name, kind in fields.items():
            if name not in out:
                continue
            if out[name] is not None and not _is(out[name], kind):
                self.warn(name, f"record {k}{where}: {name} is {out[name]!r}, expected a {kind}")
            if out[name] is None or not _is(out[name], kind):
                del out[name]  # a null is a missing field
        if isinstance(out.get("mVehicles"), list):
            vehicles = []
            for j, v in enumerate(out["mVehicles"]):
                if isinstance(v, dict):
                    vehicles.append(self.clean(v, VEHICLE_FIELDS, k, f", vehicle {j}"))
                else:
                    self.warn("vehicle", f"record {k}, vehicle {j}: not an object; skipped")
            out["mVehicles"] = vehicles
        if isinstance(out.get("mWheel"), list):
            wheels = [
                self.clean(w, WHEEL_FIELDS, k, f", wheel {j}") if isinstance(w, dict) else {}
                for j, w in enumerate(out["mWheel"])
            ]
            out["mWheel"] = wheels if len(wheels) >= 4 else []
        for name in ("mTemperature", "mDentSeverity"):
            if isinstance(out.get(name), list) and not all(_is(x, _NUM) for x in out[name]):
                self.warn(name, f"record {k}{where}: {name} holds a non-number; ignored")
                del out[name]
        return out

    def warn(self, key: str, message: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.warnings.append(message)


def _unwrap(rec: Any) -> dict[str, Any] | None:
    if isinstance(rec, dict) and isinstance(rec.get("data"), dict):
        return rec["data"]
    return rec if isinstance(rec, dict) else None


def read_sharedmem_json(path: Path) -> ReadResult:
    """Read one recording into a session (laps, pit stops, flag periods, state samples)."""
    try:
        parsed = read_json_records(path)
    except UnicodeDecodeError as e:
        raise IngestError(path, f"byte {e.start}", "not UTF-8 text: expected JSON records") from e
    warnings: list[str] = []
    if parsed.broken_at is not None:
        if not parsed.records:
            raise IngestError(path, parsed.broken_at, f"{parsed.problem}; no complete record")
        warnings.append(
            f"truncated at {parsed.broken_at}: {parsed.problem}; kept {len(parsed.records)}"
            " complete records"
        )
    scoring: list[tuple[int, dict[str, Any]]] = []
    telemetry: list[tuple[int, dict[str, Any]]] = []
    check = _Checker(warnings)
    for k, rec in enumerate(parsed.records, start=1):
        data = _unwrap(rec)
        kind = data.get("Type") if data else None
        if data is not None and (kind == "ScoringInfoV01" or "mVehicles" in data):
            scoring.append((k, check.clean(data, SCORING_FIELDS, k, "")))
        elif data is not None and (kind == "TelemInfoV01" or "mWheel" in data):
            telemetry.append((k, check.clean(data, TELEMETRY_FIELDS, k, "")))
        else:
            warnings.append(f"record {k}: neither ScoringInfoV01 nor TelemInfoV01; skipped")
    if not scoring and not telemetry:
        raise IngestError(path, "record 1", "no ScoringInfoV01 / TelemInfoV01 records")
    scoring = _in_time_order(scoring, "mCurrentET", warnings)
    telemetry = _in_time_order(telemetry, "mElapsedTime", warnings)
    if not scoring and not telemetry:
        raise IngestError(
            path,
            "every record",
            "no record holds a finite session clock (mCurrentET / mElapsedTime); "
            + "; ".join(warnings[:3]),
        )
    first = (scoring or telemetry)[0][1]
    session = SessionRecord(name=path.stem, series="LMU", track=first.get("mTrackName"))
    if scoring:
        _read_scoring(session, scoring, warnings)
    if telemetry:
        _read_telemetry(session, telemetry)
    return ReadResult(reader="lmu_sharedmem_json", sessions=[session], warnings=warnings)


def _in_time_order(
    recs: list[tuple[int, dict[str, Any]]], clock: str, warnings: list[str]
) -> list[tuple[int, dict[str, Any]]]:
    """Records whose clock runs forward; a record stepping back in time is skipped."""
    out: list[tuple[int, dict[str, Any]]] = []
    last = float("-inf")
    for k, data in recs:
        t = data.get(clock)
        if not isinstance(t, int | float):
            warnings.append(f"record {k}: no {clock}; skipped")
            continue
        if t < last:
            warnings.append(f"record {k}: {clock} {t} earlier than the previous {last}; skipped")
            continue
        last = t
        out.append((k, data))
    return out


def _read_header(session: SessionRecord, head: dict[str, Any]) -> None:
    """Session facts from the first scoring record (each only when plausible)."""
    session.session_type = session_type(head.get("mSession"))
    if isinstance(head.get("mLapDist"), int | float) and head["mLapDist"] > 0:
        session.track_length_m = float(head["mLapDist"])
    if isinstance(head.get("mStartET"), int | float) and head["mStartET"] >= 0:
        session.start_hour_of_day = (head["mStartET"] / 3600.0) % 24.0
    end = head.get("mEndET")
    if isinstance(end, int | float) and 0 < end < 1e7:
        session.duration_s = float(end)
    max_laps = head.get("mMaxLaps")
    if isinstance(max_laps, int) and 0 < max_laps < 100000:
        session.laps_scheduled = max_laps


def _player_sample(session: SessionRecord, number: str, v: dict, data: dict, t: float) -> None:
    """A state sample of the player's car (where it is on the lap, the conditions)."""
    session.state_samples.append(
        {
            "car": number,
            "step": len(session.state_samples),
            "race_time_s": t,
            "lap_fraction": min(max(v.get("mLapDist", 0.0) / data["mLapDist"], 0.0), 1.0),
            "air_temp_c": data.get("mAmbientTemp"),
            "track_temp_c": data.get("mTrackTemp"),
            "wetness": data.get("mAvgPathWetness"),
        }
    )


def _lap_row(number: str, v: dict, data: dict, t: float, flag: int | None) -> Row:
    """The lap a vehicle just completed (sectors from the cumulative sector times)."""
    lap_time = v.get("mLastLapTime") or 0.0
    s1, s2 = v.get("mLastSector1") or 0.0, v.get("mLastSector2") or 0.0
    timed = lap_time > 0
    return {
        "car": number,
        "driver": v.get("mDriverName") or None,
        "lap": int(v["mTotalLaps"]),
        "lap_time_s": lap_time if timed else None,
        "timed": int(timed),
        "s1_s": s1 if timed and s1 > 0 else None,
        "s2_s": s2 - s1 if timed and s2 > s1 > 0 else None,
        "s3_s": lap_time - s2 if timed and lap_time > s2 > 0 else None,
        "race_time_s": t,
        "position": v.get("mPlace"),
        "pit_in": int(bool(v.get("mInPits"))),
        "flag": 1 if flag == 0 and v.get("mUnderYellow") else flag,
        "rain": data.get("mRaining"),
        "wetness": data.get("mAvgPathWetness"),
        "air_temp_c": data.get("mAmbientTemp"),
        "track_temp_c": data.get("mTrackTemp"),
    }


class _ScoringReader:
    """Walks scoring records in time order, turning per-vehicle counter steps into laps and
    pit stops, and game phases into flag periods."""

    def __init__(self, session: SessionRecord, warnings: list[str]) -> None:
        self.session = session
        self.warnings = warnings
        self.seen: set[tuple[str, int]] = set()
        self.prev: dict[int, dict[str, Any]] = {}
        self.period: Row | None = None

    def flag(self, data: dict[str, Any], t: float) -> int | None:
        flag = PHASE_FLAGS.get(data.get("mGamePhase", -1))
        if self.period is not None and flag != self.period["kind"]:
            self.period["end_s"] = t
            self.session.flag_periods.append(self.period)
            self.period = None
        if self.period is None and flag in PERIOD_KINDS:
            self.period = {"kind": flag, "start_s": t, "end_s": None}
        return flag

    def vehicle(self, k: int, v: dict, data: dict, t: float, flag: int | None) -> None:
        session = self.session
        vid = v.get("mID")
        number = car_number(v.get("mVehicleName", ""), f"id{vid}")
        car = session.car(number)
        car.car_class = car.car_class or v.get("mVehicleClass")
        car.vehicle = car.vehicle or v.get("mVehicleName")
        if v.get("mDriverName"):
            car.add_driver(v["mDriverName"])
        lap_dist = data.get("mLapDist")
        if v.get("mIsPlayer") and isinstance(lap_dist, int | float) and lap_dist > 0:
            _player_sample(session, number, v, data, t)
        before = self.prev.get(vid)
        self.prev[vid] = v
        if before is None:
            return
        self.lap(k, number, v, before, data, t, flag)
        if v.get("mNumPitstops", 0) > before.get("mNumPitstops", 0):
            session.pit_stops.append(
                {"car": number, "lap": int(v.get("mTotalLaps", 0)), "race_time_s": t}
            )
        if v.get("mFinishStatus") in (2, 3) and car.finish_status is None:
            car.finish_status = "retired" if v["mFinishStatus"] == 2 else "dq"
        elif v.get("mFinishStatus") == 1:
            car.finish_status = "finished"

    def lap(
        self, k: int, number: str, v: dict, before: dict, data: dict, t: float, flag: int | None
    ) -> None:
        total, was = v.get("mTotalLaps", 0), before.get("mTotalLaps", 0)
        if total <= was:
            return
        if (number, total) in self.seen:
            self.warnings.append(f"record {k}: car {number} completes lap {total} again; skipped")
            return
        self.seen.add((number, total))
        if total > was + 1:
            self.warnings.append(
                f"record {k}: car {number} went from {was} to {total} laps between two"
                " records; the laps between are missing"
            )
        self.session.laps.append(_lap_row(number, v, data, t, flag))


def _read_scoring(
    session: SessionRecord, recs: list[tuple[int, dict[str, Any]]], warnings: list[str]
) -> None:
    _read_header(session, recs[0][1])
    reader = _ScoringReader(session, warnings)
    for k, data in recs:
        t = float(data["mCurrentET"])
        flag = reader.flag(data, t)
        for v in data.get("mVehicles") or []:
            reader.vehicle(k, v, data, t, flag)
    if reader.period is not None:
        session.flag_periods.append(reader.period)
    for car in session.cars.values():
        laps = [r["lap"] for r in session.laps if r["car"] == car.number]
        car.laps_completed = max(laps, default=0)
    _mark_out_laps(session)


def _mark_out_laps(session: SessionRecord) -> None:
    by_car: dict[str, dict[int, Row]] = {}
    for r in session.laps:
        by_car.setdefault(r["car"], {})[r["lap"]] = r
    for laps in by_car.values():
        for lap, r in laps.items():
            before = laps.get(lap - 1)
            r["pit_out"] = int(before is not None and before.get("pit_in") == 1)


def _read_telemetry(session: SessionRecord, recs: list[tuple[int, dict[str, Any]]]) -> None:
    prev: dict[int, dict[str, Any]] = {}
    lap_temps: dict[int, list[float]] = {}
    lap_impacts: dict[int, int] = {}
    lap_rows = {(r["car"], r["lap"]): r for r in session.laps}
    for _, data in recs:
        vid = data.get("mID", 0)
        number = car_number(data.get("mVehicleName", ""), f"id{vid}")
        car = session.car(number)
        car.vehicle = car.vehicle or data.get("mVehicleName")
        capacity = data.get("mFuelCapacity")
        if isinstance(capacity, int | float) and capacity > 0:
            car.fuel_capacity_l = float(capacity)
        fuel_l = data.get("mFuel")
        fuel = None
        if isinstance(capacity, int | float) and capacity > 0 and isinstance(fuel_l, int | float):
            share = fuel_l / capacity
            # a corrupt record (a near-zero capacity) overflows the share: no reading, not inf
            fuel = share if math.isfinite(share) else None
        wheels = data.get("mWheel") or []
        treads = [w.get("mWear") for w in wheels][:4] if len(wheels) >= 4 else [None] * 4
        temps = [
            statistics.fmean(w["mTemperature"]) - _KELVIN
            for w in wheels
            if isinstance(w.get("mTemperature"), list) and w["mTemperature"]
        ]
        tyre_temp = statistics.fmean(temps) if temps else None
        session.state_samples.append(
            {
                "car": number,
                "step": len(session.state_samples),
                "race_time_s": data["mElapsedTime"],
                "fuel": fuel,
                "tread_fl": treads[0],
                "tread_fr": treads[1],
                "tread_rl": treads[2],
                "tread_rr": treads[3],
                "tyre_temp_c": tyre_temp,
            }
        )
        if tyre_temp is not None:
            lap_temps.setdefault(vid, []).append(tyre_temp)
        before = prev.get(vid)
        prev[vid] = data
        if before is None:
            continue
        if data.get("mLastImpactET", 0) > before.get("mLastImpactET", 0):
            lap_impacts[vid] = lap_impacts.get(vid, 0) + 1
        if data.get("mLapNumber", 0) <= before.get("mLapNumber", 0):
            continue
        lap = int(before.get("mLapNumber", 0))
        if lap < 1:
            lap_temps[vid], lap_impacts[vid] = [], 0
            continue
        comp_name = data.get("mFrontTireCompoundName")
        dents = data.get("mDentSeverity") or []
        update: Row = {
            "fuel_end": fuel,
            "tread_fl": treads[0],
            "tread_fr": treads[1],
            "tread_rl": treads[2],
            "tread_rr": treads[3],
            "compound": compound_code(comp_name),
            "compound_name": comp_name,
            "tyre_temp_c": statistics.fmean(lap_temps[vid]) if lap_temps.get(vid) else None,
            "impacts": lap_impacts.get(vid, 0),
            "damage": max(dents) / 2.0 if dents else None,
        }
        row = lap_rows.get((number, lap))
        if row is None:
            lap_time = data.get("mLapStartET", 0.0) - before.get("mLapStartET", 0.0)
            row = {
                "car": number,
                "lap": lap,
                "lap_time_s": lap_time
                if lap_time > 0 and before.get("mLapStartET", 0) > 0
                else None,
                "race_time_s": data.get("mLapStartET") or data["mElapsedTime"],
                "pit_in": 0,
                "pit_out": 0,
            }
            row["timed"] = int(row["lap_time_s"] is not None)
            session.laps.append(row)
            lap_rows[(number, lap)] = row
        row.update(update)
        lap_temps[vid], lap_impacts[vid] = [], 0
    by_car: dict[str, list[Row]] = {}
    for r in session.laps:
        by_car.setdefault(r["car"], []).append(r)
    for laps in by_car.values():
        laps.sort(key=lambda r: r["lap"])
        for a, b in itertools.pairwise(laps):
            if (
                b.get("fuel_start") is None
                and a.get("fuel_end") is not None
                and b["lap"] == a["lap"] + 1
            ):
                b["fuel_start"] = a["fuel_end"]

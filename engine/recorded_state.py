"""The readable race state (:mod:`engine.readable_state`) read from an LMU / rF2 shared-memory
recording, as it stood at each record: what ``stintsim advise --follow`` replays as if live.

A recording is a JSON list of ``ScoringInfoV01`` and ``TelemInfoV01`` records (bare or
wrapped as ``{record_id, timestamp, data}``, :mod:`data.readers.sharedmem`), in the order the
game wrote them. Walking it record by record gives, for every car the scoring records list,
the block ``whatif --save-state`` writes under ``"readable"``::

    {"scenario": null, "race_time_s": 177.9, "race_time": "0:02:58", "time_left_s": 1621.8,
     "flag": "green",                # green, local_yellow, fcy, chequered, or formation
     "cars": [{"number": "83", "class": "HYPERCAR", "laps": 0, "position": 17,
               "gap_laps": 0, "gap_s": 11.045,
               "fuel": null, "energy": null,        # fraction of tank (telemetry), or null
               "tread": null, "compound": null,     # per wheel FL FR RL RR (telemetry)
               "tyre_age_laps": null,               # laps since the tread last went up
               "driver": "Pawel Zeja", "driver_times_s": {"Pawel Zeja": 177.9},
               "stint_drive_s": 177.9, "tyre_sets_left": null, "damage": null,
               "out": false}],
     "recording": {"file": "....json", "record": 920, "track": "Circuit de la Sarthe",
                   "field_size": 38, "focus": "83"}}

Race time counts from the green flag (the first record in game phase 5; the session clock
``mCurrentET`` minus that moment's lap start). Scoring records carry no fuel, energy, tread or
compound: those come from telemetry records of the same car (the player's car in LMU) and are
``null`` where the recording has none. LMU's virtual energy is not in the rF2 records, so
``energy`` is ``null``. A recording of telemetry records only (one car) gives that car's laps,
fuel, tread and compound, its race time from its first lap start (``mLapStartET``), and no
position, gap, driver or flag (``null``). Driving times count from the green flag; the stint
from the car's last pit exit (or the start). Unknown values are ``null``, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.class_names import engine_class
from data.compounds import compound_code
from data.errors import IngestError
from data.jsonstream import read_json_records
from data.readers.sharedmem import car_number
from engine.readable_state import hms
from world_model.interface import Compound

PHASE_FLAG_NAMES = {5: "green", 6: "fcy", 8: "chequered"}
"""``mGamePhase`` -> flag; other phases before the green are ``formation``."""
GREEN_PHASE = 5
NEW_TREAD = 0.99
"""Tread left at or above which a first reading counts as new tyres (else the age is unknown)."""
_OUT_STATUS = (2, 3)  # mFinishStatus: 2 retired (DNF), 3 disqualified


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _is_scoring(data: dict[str, Any]) -> bool:
    return isinstance(data.get("mVehicles"), list)


def _is_telemetry(data: dict[str, Any]) -> bool:
    return isinstance(data.get("mWheel"), list) or "mFuel" in data


def _as_scoring(tel: dict[str, Any]) -> dict[str, Any]:
    """A telemetry record as the scoring record of its one car: the session clock, laps
    (``mLapNumber``) and lap start; green once a lap has started (``mLapStartET`` > 0);
    position, gaps and driver unknown."""
    start = _num(tel.get("mLapStartET"))
    vehicle = {
        "mID": tel.get("mID"),
        "mVehicleName": tel.get("mVehicleName"),
        "mTotalLaps": tel.get("mLapNumber") or 0,
        "mLapStartET": start,
        "mIsPlayer": True,
    }
    return {
        "mCurrentET": tel.get("mElapsedTime"),
        "mGamePhase": GREEN_PHASE if start else None,
        "mTrackName": tel.get("mTrackName"),
        "mVehicles": [vehicle],
    }


def _unwrap(rec: Any) -> dict[str, Any] | None:
    if isinstance(rec, dict) and isinstance(rec.get("data"), dict):
        return rec["data"]
    return rec if isinstance(rec, dict) else None


@dataclass
class _Car:
    """What the recording has said about one car so far."""

    scoring: dict[str, Any]
    telemetry: dict[str, Any] | None = None
    driver_times_s: dict[str, float] = field(default_factory=dict)
    stint_start_s: float = 0.0
    tread_sum: float | None = None
    tyre_age_laps: int | None = None
    laps_at_new_tyres: int | None = None


@dataclass(frozen=True)
class RecordedMoment:
    """The race as the recording had it after record ``record`` (1-based)."""

    record: int
    state: dict[str, Any]
    crossed: tuple[str, ...]
    """Race numbers of the cars that completed a lap at this record."""


class RecordingReader:
    """Walks a shared-memory recording in order; :meth:`moments` yields the readable state
    after every scoring record. ``focus`` (a race number) defaults to the player's car."""

    def __init__(self, path: str | Path, focus: str | None = None) -> None:
        self.path = Path(path)
        self.records = self._records()
        self.focus = focus or self._player()
        self.cars: dict[str, _Car] = {}
        self.green_et: float | None = None
        self.last_et: float | None = None

    def _records(self) -> list[dict[str, Any]]:
        try:
            parsed = read_json_records(self.path)
        except FileNotFoundError:
            raise IngestError(self.path, "file", "recording not found") from None
        except UnicodeDecodeError as exc:
            raise IngestError(self.path, f"byte {exc.start}", "not UTF-8 JSON") from None
        records = [d for d in (_unwrap(r) for r in parsed.records) if d is not None]
        self.telemetry_only = not any(_is_scoring(d) for d in records)
        if self.telemetry_only and not any(_is_telemetry(d) for d in records):
            raise IngestError(
                self.path,
                parsed.broken_at or "record 1",
                "no ScoringInfoV01 (mVehicles) or TelemInfoV01 (mWheel) record: not a "
                "shared-memory recording",
            )
        return records

    def _player(self) -> str:
        for d in self.records:
            if self.telemetry_only and _is_telemetry(d):
                return car_number(str(d.get("mVehicleName", "")), f"id{d.get('mID')}")
            for v in d.get("mVehicles") or []:
                if isinstance(v, dict) and v.get("mIsPlayer"):
                    return car_number(str(v.get("mVehicleName", "")), f"id{v.get('mID')}")
        raise IngestError(self.path, "mVehicles", "no player's car (mIsPlayer): give --car")

    def moments(self) -> Iterator[RecordedMoment]:
        for k, data in enumerate(self.records, start=1):
            if _is_scoring(data):
                crossed = self._scoring(data)
                if crossed is not None:
                    yield RecordedMoment(k, self.state(data, k), crossed)
            elif _is_telemetry(data) and self.telemetry_only:
                # a telemetry-only recording: its car's laps and clock stand in for scoring
                scoring = _as_scoring(data)
                crossed = self._scoring(scoring)
                self._telemetry(data)
                if crossed is not None:
                    yield RecordedMoment(k, self.state(scoring, k), crossed)
            elif _is_telemetry(data):
                self._telemetry(data)

    def _race_time(self, et: float) -> float:
        return 0.0 if self.green_et is None else max(0.0, et - self.green_et)

    def _scoring(self, data: dict[str, Any]) -> tuple[str, ...] | None:
        et = _num(data.get("mCurrentET"))
        if et is None or (self.last_et is not None and et < self.last_et):
            return None  # no clock, or a record from the past: skipped like the lap reader
        vehicles = [v for v in data["mVehicles"] if isinstance(v, dict)]
        if self.green_et is None and data.get("mGamePhase") == GREEN_PHASE:
            starts = [_num(v.get("mLapStartET")) for v in vehicles]
            starts = [s for s in starts if s is not None and 0 < s <= et]
            self.green_et = min(starts, default=et)
        # driving time counts from the green flag
        since = et if self.last_et is None else self.last_et
        dt = 0.0 if self.green_et is None else et - max(since, self.green_et)
        self.last_et = et
        crossed = []
        for v in vehicles:
            number = car_number(str(v.get("mVehicleName", "")), f"id{v.get('mID')}")
            car = self.cars.get(number)
            if car is None:
                car = self.cars[number] = _Car(scoring=v)
            before = car.scoring
            driver = str(v.get("mDriverName") or "")
            if driver and not v.get("mInPits"):
                car.driver_times_s[driver] = car.driver_times_s.get(driver, 0.0) + dt
            if before.get("mInPits") and not v.get("mInPits"):
                car.stint_start_s = self._race_time(et)
            if int(v.get("mTotalLaps") or 0) > int(before.get("mTotalLaps") or 0):
                crossed.append(number)
                if car.tyre_age_laps is not None:
                    car.tyre_age_laps += 1
            car.scoring = v
        return tuple(crossed)

    def _telemetry(self, data: dict[str, Any]) -> None:
        number = car_number(str(data.get("mVehicleName", "")), f"id{data.get('mID')}")
        car = self.cars.get(number)
        if car is None:
            return  # telemetry of a car no scoring record has named yet
        wheels = data.get("mWheel") or []
        treads = [_num(w.get("mWear")) for w in wheels[:4] if isinstance(w, dict)]
        if len(treads) == 4 and all(t is not None for t in treads):
            total = sum(treads)  # type: ignore[arg-type]
            fresh = car.tread_sum is None and min(treads) >= NEW_TREAD  # type: ignore[type-var]
            if fresh or (car.tread_sum is not None and total > car.tread_sum + 0.05):
                car.tyre_age_laps = 0  # new tyres: unworn at the first reading, or tread went up
            car.tread_sum = total
        car.telemetry = data

    def state(self, data: dict[str, Any], record: int) -> dict[str, Any]:
        """The readable state after ``record`` (the scoring record ``data``)."""
        et = float(data["mCurrentET"])
        t = self._race_time(et)
        end = _num(data.get("mEndET"))
        left = end - et if end is not None and 0 < end < 1e7 else None
        phase = data.get("mGamePhase")
        flag = PHASE_FLAG_NAMES.get(phase, "formation") if isinstance(phase, int) else None
        cars = [self._car(number, car, t) for number, car in self.cars.items()]
        if flag == "green" and any(
            c.scoring.get("mUnderYellow") for c in self.cars.values() if c.scoring
        ):
            flag = "local_yellow"
        return {
            "scenario": None,
            "race_time_s": round(t, 3),
            "race_time": hms(t),
            "time_left_s": None if left is None else round(left, 3),
            "flag": flag,
            "cars": cars,
            "recording": {
                "file": self.path.name,
                "record": record,
                "track": data.get("mTrackName"),
                "field_size": data.get("mNumVehicles"),
                "focus": self.focus,
            },
        }

    def _car(self, number: str, car: _Car, t: float) -> dict[str, Any]:
        v = car.scoring
        tel = car.telemetry or {}
        capacity, fuel_l = _num(tel.get("mFuelCapacity")), _num(tel.get("mFuel"))
        fuel = fuel_l / capacity if capacity and fuel_l is not None else None
        wheels = [w for w in tel.get("mWheel") or [] if isinstance(w, dict)][:4]
        tread = [_num(w.get("mWear")) for w in wheels] if len(wheels) == 4 else None
        code = compound_code(tel.get("mFrontTireCompoundName"))
        dents = [_num(x) for x in tel.get("mDentSeverity") or []]
        behind = v.get("mLapsBehindLeader")
        gap_laps = behind if isinstance(behind, int) and not isinstance(behind, bool) else None
        gap_s = _num(v.get("mTimeBehindLeader"))
        driver = v.get("mDriverName") or None
        return {
            "number": number,
            "class": engine_class(v.get("mVehicleClass")) or v.get("mVehicleClass"),
            "laps": int(v.get("mTotalLaps") or 0),
            "position": v.get("mPlace"),
            "gap_laps": gap_laps,
            "gap_s": round(gap_s, 3) if gap_s is not None and gap_laps == 0 else None,
            "fuel": None if fuel is None else round(fuel, 4),
            "energy": None,
            "tread": None if tread is None or None in tread else [round(x, 4) for x in tread],  # type: ignore[arg-type]
            "compound": None if code is None else Compound(code).name.lower(),
            "tyre_age_laps": car.tyre_age_laps,
            "driver": driver,
            "driver_times_s": {d: round(s, 1) for d, s in car.driver_times_s.items()},
            "stint_drive_s": round(max(0.0, t - car.stint_start_s), 1),
            "tyre_sets_left": None,
            "damage": _damage(dents),
            "out": v.get("mFinishStatus") in _OUT_STATUS,
        }


def _damage(dents: list[float | None]) -> float | None:
    """Damage 0..1 from ``mDentSeverity`` (0, 1 or 2 per body part), as the lap reader."""
    known = [d for d in dents if d is not None]
    return round(max(known) / 2.0, 4) if known and len(known) == len(dents) else None


def recorded_state(path: str | Path, focus: str | None = None) -> dict[str, Any]:
    """The readable state at the end of a recording (its last scoring record)."""
    last = None
    for last in RecordingReader(path, focus).moments():  # noqa: B007 (the last one is kept)
        pass
    if last is None:
        raise IngestError(Path(path), "every record", "no scoring record with a session clock")
    return last.state


def focus_crossings(path: str | Path, focus: str | None = None) -> Iterator[RecordedMoment]:
    """The moments the focus car completes a lap (its line crossings), in race order."""
    reader = RecordingReader(path, focus)
    for moment in reader.moments():
        if reader.focus in moment.crossed:
            yield moment

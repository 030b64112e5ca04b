"""Processed LMU states (``lmu_states_two_races.sqlite``): table ``races(race_id, states_json)``,
each race a JSON list of states about 0.5 s apart, each state a list of 48 values.

Layout used (documented in ``../shared/data/README.md`` and checked on the data):
index 0/1 sin/cos of the lap position, 2 fuel fraction, 3 average path wetness, 4-7 tread left
FL, FR, RL, RR (fractions), 29-32 tyre temperatures [K], 34 ambient and 35 track temperature
[°C], 36 session end time [s]. Two more are read from what the data shows: index 8 runs from 0
to 1 over the session (race time = value x session end time), and index 24 counts completed
laps (it steps by one exactly where the lap position wraps). A lap's crossing time is
interpolated between the two states either side of the wrap. Pit stops are found from jumps
up in fuel (refuelling) and tread (tyres changed); the stop's in-lap is the last lap completed
before it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np

from data.errors import IngestError
from data.records import ReadResult, SessionRecord

N_VALUES = 48
SIN, COS, FUEL, WET, TREAD, PROGRESS, LAPS, TYRE_K, AIR, TRACK, END = (
    0, 1, 2, 3, slice(4, 8), 8, 24, slice(29, 33), 34, 35, 36,
)  # fmt: skip
_KELVIN = 273.15
_JUMP_FUEL = 0.01  # fraction of tank between consecutive states: refuelling
_JUMP_TREAD = 0.02  # tread fraction up between consecutive states: new tyres


def read_states_sqlite(path: Path) -> ReadResult:
    """One session (one car, the player's) per race: state samples, laps and pit stops."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT race_id, states_json FROM races ORDER BY race_id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise IngestError(path, "table races", f"cannot read (race_id, states_json): {e}") from e
    warnings: list[str] = []
    sessions = []
    for race_id, states_json in rows:
        place = f"table races, race_id {race_id}"
        try:
            states = np.asarray(json.loads(states_json), dtype=float)
        except (TypeError, ValueError) as e:
            raise IngestError(path, place, f"states_json is not a JSON list of numbers: {e}") from e
        if states.ndim != 2 or states.shape[1] != N_VALUES or len(states) < 2:
            raise IngestError(
                path, place, f"expected states of {N_VALUES} values, got shape {states.shape}"
            )
        sessions.append(_race(path, race_id, states, warnings))
    if not sessions:
        raise IngestError(path, "table races", "no races")
    return ReadResult(reader="lmu_states_sqlite", sessions=sessions, warnings=warnings)


def _race(path: Path, race_id: int, a: np.ndarray, warnings: list[str]) -> SessionRecord:
    end = float(a[0, END])
    t = a[:, PROGRESS] * end
    if np.any(np.diff(t) < 0):
        warnings.append(
            f"race {race_id}: race time steps back at {int(np.argmax(np.diff(t) < 0)) + 1} states"
        )
    frac = (np.arctan2(a[:, SIN], a[:, COS]) / (2 * math.pi)) % 1.0
    tyre_c = a[:, TYRE_K].mean(axis=1) - _KELVIN
    session = SessionRecord(
        name=f"{path.stem}_race{race_id}", series="LMU", session_type="race", duration_s=end
    )
    number = "player"
    session.car(number)
    for k in range(len(a)):
        session.state_samples.append(
            {
                "car": number,
                "step": k,
                "race_time_s": float(t[k]),
                "lap_fraction": float(frac[k]),
                "fuel": float(a[k, FUEL]),
                "tread_fl": float(a[k, 4]),
                "tread_fr": float(a[k, 5]),
                "tread_rl": float(a[k, 6]),
                "tread_rr": float(a[k, 7]),
                "tyre_temp_c": float(tyre_c[k]),
                "air_temp_c": float(a[k, AIR]),
                "track_temp_c": float(a[k, TRACK]),
                "wetness": float(a[k, WET]),
            }
        )
    # Lap ends: where the completed-lap count steps up; crossing time interpolated on the wrap.
    ends = np.nonzero(np.diff(a[:, LAPS]) > 0)[0] + 1
    cross, wrapped = [], []
    for k in ends:
        f0, f1 = frac[k - 1], frac[k]
        wrapped.append(bool(f1 < f0 - 0.5))
        share = (1.0 - f0) / ((1.0 - f0) + f1) if wrapped[-1] else 1.0
        cross.append(float(t[k - 1] + share * (t[k] - t[k - 1])))
        if not wrapped[-1]:
            warnings.append(
                f"race {race_id}: lap count steps up at state {k} without the lap position"
                " wrapping (session end?); lap kept untimed"
            )
    fuel_jumps = np.nonzero(np.diff(a[:, FUEL]) > _JUMP_FUEL)[0] + 1
    tread_jumps = np.nonzero(np.diff(a[:, TREAD], axis=0).max(axis=1) > _JUMP_TREAD)[0] + 1
    stops = _stop_windows(np.concatenate([fuel_jumps, tread_jumps]))
    start_k, start_t = 0, 0.0
    for lap, (k, tc, ok) in enumerate(zip(ends, cross, wrapped, strict=True), start=1):
        seg = slice(start_k, k)
        session.laps.append(
            {
                "car": number,
                "lap": lap,
                "lap_time_s": tc - start_t if ok else None,
                "timed": int(ok),
                "race_time_s": tc,
                "fuel_start": float(a[start_k, FUEL]),
                "fuel_end": float(a[k, FUEL]),
                "tread_fl": float(a[k, 4]),
                "tread_fr": float(a[k, 5]),
                "tread_rl": float(a[k, 6]),
                "tread_rr": float(a[k, 7]),
                "tyre_temp_c": float(tyre_c[seg].mean()),
                "air_temp_c": float(a[seg, AIR].mean()),
                "track_temp_c": float(a[seg, TRACK].mean()),
                "wetness": float(a[seg, WET].mean()),
                "pit_in": 0,
                "pit_out": 0,
            }
        )
        start_k, start_t = k, tc
    for first, last in stops:
        in_lap = int(np.searchsorted(ends, first, side="right"))  # laps completed before the stop
        before, after = a[max(first - 1, 0)], a[min(last, len(a) - 1)]
        added = float(after[FUEL] - before[FUEL])
        session.pit_stops.append(
            {
                "car": number,
                "lap": in_lap,
                "race_time_s": cross[in_lap - 1] if in_lap >= 1 else float(t[first]),
                "refuel": int(added > _JUMP_FUEL),
                "fuel_added": max(added, 0.0),
                "tyres_changed": int(np.sum(after[TREAD] > before[TREAD] + _JUMP_TREAD)),
            }
        )
        if 1 <= in_lap <= len(session.laps):
            session.laps[in_lap - 1]["pit_in"] = 1
        if in_lap < len(session.laps):
            session.laps[in_lap]["pit_out"] = 1
    session.cars[number].laps_completed = len(session.laps)
    return session


def _stop_windows(indices: np.ndarray, gap: int = 60) -> list[tuple[int, int]]:
    """Group state indices of jumps into stops: jumps closer than ``gap`` states are one stop."""
    out: list[tuple[int, int]] = []
    for k in np.sort(indices):
        if out and k - out[-1][1] <= gap:
            out[-1] = (out[-1][0], int(k))
        else:
            out.append((int(k), int(k)))
    return out

"""Shared-memory JSON recordings and the processed-states SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from data.errors import IngestError
from data.jsonstream import read_json_records
from data.readers.sharedmem import read_sharedmem_json
from data.readers.states_sqlite import read_states_sqlite


def _scoring(
    et: float, laps: int, last: float, phase: int = 5, pits: int = 0, in_pits: bool = False
) -> dict:
    return {
        "Type": "ScoringInfoV01",
        "mCurrentET": et,
        "mGamePhase": phase,
        "mSession": 10,
        "mLapDist": 5000.0,
        "mStartET": 50400.0,
        "mTrackName": "Test",
        "mAmbientTemp": 20.0,
        "mTrackTemp": 30.0,
        "mAvgPathWetness": 0.0,
        "mRaining": 0.0,
        "mVehicles": [
            {
                "mID": 0,
                "mVehicleName": "Team 2025 #12:LM",
                "mDriverName": "Ann",
                "mVehicleClass": "Hyper",
                "mIsPlayer": True,
                "mTotalLaps": laps,
                "mLastLapTime": last,
                "mLastSector1": 30.0 if last else 0.0,
                "mLastSector2": 65.0 if last else 0.0,
                "mPlace": 1,
                "mInPits": in_pits,
                "mNumPitstops": pits,
                "mLapDist": 100.0,
                "mFinishStatus": 0,
                "mUnderYellow": False,
            }
        ],
    }


def test_laps_pits_and_fcy_from_scoring(tmp_path: Path) -> None:
    recs = [
        _scoring(0.0, 0, 0.0),
        _scoring(100.0, 1, 100.0),
        _scoring(150.0, 1, 100.0, phase=6),
        _scoring(199.0, 1, 100.0, phase=6, in_pits=True),
        _scoring(200.0, 2, 100.0, phase=6, in_pits=True),
        _scoring(230.0, 2, 100.0, pits=1),
        _scoring(330.0, 3, -1.0),
    ]
    wrapped = [{"record_id": k, "timestamp": "t", "data": r} for k, r in enumerate(recs)]
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(wrapped), encoding="utf-8")
    (s,) = read_sharedmem_json(path).sessions
    laps = {r["lap"]: r for r in s.laps}
    assert sorted(laps) == [1, 2, 3]
    assert laps[1]["lap_time_s"] == 100.0 and laps[1]["s2_s"] == pytest.approx(35.0)
    assert laps[3]["timed"] == 0  # mLastLapTime -1: no time
    assert laps[2]["flag"] == 2 and laps[2]["pit_in"] == 1 and laps[3]["pit_out"] == 1
    assert [(p["lap"], p["race_time_s"]) for p in s.pit_stops] == [(2, 230.0)]
    assert s.flag_periods == [{"kind": 2, "start_s": 150.0, "end_s": 230.0}]
    assert s.session_type == "race" and s.start_hour_of_day == pytest.approx(14.0)
    # Bare records read the same.
    path.write_text(json.dumps(recs), encoding="utf-8")
    assert len(read_sharedmem_json(path).sessions[0].laps) == 3


def test_truncated_json_keeps_complete_records(tmp_path: Path) -> None:
    recs = [_scoring(float(k), 0, 0.0) for k in range(5)]
    text = json.dumps(recs, indent=1)
    cut = text.index('"mCurrentET": 3.0')  # inside the fourth record
    path = tmp_path / "cut.json"
    path.write_text(text[:cut], encoding="utf-8")
    result = read_sharedmem_json(path)
    assert len(result.sessions[0].state_samples) == 3
    assert any("truncated at line" in w and "kept 3" in w for w in result.warnings)
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(IngestError, match="no complete record"):
        read_sharedmem_json(path)


def test_out_of_order_records_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "ooo.json"
    path.write_text(
        json.dumps([_scoring(10.0, 0, 0.0), _scoring(5.0, 0, 0.0), _scoring(11.0, 0, 0.0)])
    )
    result = read_sharedmem_json(path)
    assert len(result.sessions[0].state_samples) == 2
    assert any("record 2" in w for w in result.warnings)


@pytest.mark.shared_data
def test_real_truncated_telemetry(shared_data: Path) -> None:
    path = shared_data / "lmu" / "lmu_sharedmem_telemetry_20251222_truncated.json"
    parsed = read_json_records(path)
    text = path.read_text(encoding="utf-8")
    assert parsed.broken_at is not None and len(parsed.records) == text.count('"record_id"') - 1
    result = read_sharedmem_json(path)
    (s,) = result.sessions
    assert len(s.state_samples) == len(parsed.records)
    assert all(0.0 < x["fuel"] <= 1.0 for x in s.state_samples)
    assert any(
        "truncated" in w and f"line {text.count(chr(10), 0, len(text)) + 1}" in w
        for w in result.warnings
    )


@pytest.mark.shared_data
def test_states_sqlite_two_races(shared_data: Path) -> None:
    path = shared_data / "lmu" / "lmu_states_two_races.sqlite"
    result = read_states_sqlite(path)
    conn = sqlite3.connect(path)
    lengths = [
        len(json.loads(r[0]))
        for r in conn.execute("SELECT states_json FROM races ORDER BY race_id")
    ]
    conn.close()
    assert [len(s.state_samples) for s in result.sessions] == lengths
    for s in result.sessions:
        timed = [r for r in s.laps if r["timed"]]
        assert len(timed) >= 5
        assert all(150.0 < r["lap_time_s"] < 450.0 for r in timed)
        assert all(r["fuel_end"] < r["fuel_start"] for r in s.laps if not r["pit_out"])
        (stop,) = s.pit_stops
        assert stop["refuel"] == 1 and stop["tyres_changed"] == 4
        assert s.laps[stop["lap"] - 1]["pit_in"] == 1 and s.laps[stop["lap"]]["pit_out"] == 1
        temps = [x["tyre_temp_c"] for x in s.state_samples]
        assert min(temps) > 0.0 and max(temps) < 250.0  # kelvin converted


def _telemetry(
    et: float, lap: int, lap_start: float, fuel: float, wear: float, impact_et: float = 0.0
) -> dict:
    wheel = {"mWear": wear, "mTemperature": [353.15, 353.15, 353.15]}
    return {
        "Type": "TelemInfoV01",
        "mID": 0,
        "mVehicleName": "Team 2025 #12:LM",
        "mElapsedTime": et,
        "mLapNumber": lap,
        "mLapStartET": lap_start,
        "mFuel": fuel,
        "mFuelCapacity": 100.0,
        "mWheel": [wheel, wheel, wheel, wheel],
        "mFrontTireCompoundName": "Medium",
        "mDentSeverity": [0, 1, 0, 0, 0, 0, 0, 0],
        "mLastImpactET": impact_et,
    }


def test_fuel_and_wear_at_each_line_crossing_from_telemetry(tmp_path: Path) -> None:
    recs = [
        _telemetry(10.0, 1, 10.0, 90.0, 1.0),
        _telemetry(50.0, 1, 10.0, 88.0, 0.99, impact_et=45.0),
        _telemetry(110.0, 2, 110.0, 86.0, 0.98, impact_et=45.0),
        _telemetry(150.0, 2, 110.0, 85.0, 0.975),
        _telemetry(205.0, 3, 205.0, 83.0, 0.96),
    ]
    path = tmp_path / "tel.json"
    path.write_text(json.dumps(recs), encoding="utf-8")
    (s,) = read_sharedmem_json(path).sessions
    laps = {r["lap"]: r for r in s.laps}
    assert sorted(laps) == [1, 2]
    assert laps[1]["lap_time_s"] == 100.0 and laps[2]["lap_time_s"] == 95.0
    assert laps[1]["fuel_end"] == pytest.approx(0.86) and laps[2]["fuel_start"] == pytest.approx(
        0.86
    )
    assert laps[2]["tread_rr"] == pytest.approx(0.96) and laps[1]["compound"] == 1
    assert laps[1]["impacts"] == 1 and laps[2]["impacts"] == 0
    assert laps[1]["tyre_temp_c"] == pytest.approx(80.0) and laps[1]["damage"] == 0.5
    assert s.cars["12"].fuel_capacity_l == 100.0 and len(s.state_samples) == 5


def test_lap_count_gaps_and_repeats_are_reported(tmp_path: Path) -> None:
    recs = [
        _scoring(0.0, 0, 0.0),
        _scoring(100.0, 1, 100.0),
        _scoring(300.0, 3, 100.0),  # two laps in one step: lap 2 never seen
        _scoring(310.0, 0, 0.0),  # the count restarts
        _scoring(400.0, 1, 90.0),  # lap 1 again
    ]
    path = tmp_path / "gap.json"
    path.write_text(json.dumps(recs), encoding="utf-8")
    result = read_sharedmem_json(path)
    assert sorted(r["lap"] for r in result.sessions[0].laps) == [1, 3]
    text = " | ".join(result.warnings)
    assert "record 3" in text and "missing" in text and "record 5" in text and "again" in text

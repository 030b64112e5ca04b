"""Property tests: readers either read a file or raise IngestError naming it, never crash."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from data.errors import IngestError
from data.ingest import read_file
from data.jsonstream import read_json_records
from data.readers import alkamel
from tests.data.helpers import WEC_HEADER, wec_row, write_csv

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tmp(data: bytes, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz"))
    path = folder / name
    path.write_bytes(data)
    return path


@FAST
@given(st.binary(max_size=400), st.sampled_from(["f.csv", "f.json", "f.xml", "f.duckdb", "f"]))
def test_any_bytes_read_or_clear_error(data: bytes, name: str) -> None:
    path = _tmp(data, name)
    try:
        read_file(path)
    except IngestError as e:
        assert str(path) in str(e) and e.place and e.problem


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["7", "007", "51"]),
            st.integers(1, 6),
            st.sampled_from(["1:40.000", "nan", "-3", "", "59.9", "1:02:03.4", "x:1", "1:75.0"]),
            st.booleans(),
            st.sampled_from(["GF", "FCY", "SF", "FF", "??"]),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_timing_csv_fields(rows: list[tuple[str, int, str, bool, str]]) -> None:
    lines = [WEC_HEADER]
    for k, (car, lap, text, pit, flag) in enumerate(rows):
        lines.append(
            wec_row(car, lap, 100.0, 100.0 * (k + 1), lap_text=text, pit_in=pit, flag=flag)
        )
    path = write_csv(_tmp(b"", "wec_fuzz_race_analysis.csv"), lines)
    try:
        (s,) = alkamel.read_laps(path).sessions
    except IngestError as e:
        assert "line" in e.place and str(path) in str(e)
        return
    assert len(s.laps) == len({(car, lap) for car, lap, *_ in rows})
    for r in s.laps:
        assert r["timed"] in (0, 1) and (r["lap_time_s"] is None or r["lap_time_s"] > 0)
        assert r["flag"] in (None, 0, 2, 3, 5)
    in_laps = {(r["car"], r["lap"]) for r in s.laps if r["pit_in"]}
    assert {(p["car"], p["lap"]) for p in s.pit_stops} == in_laps


@FAST
@given(st.integers(1, 6), st.data())
def test_cut_json_keeps_exactly_the_complete_records(n: int, data: st.DataObject) -> None:
    records = [
        {"record_id": k, "data": {"mCurrentET": float(k), "x": [k, "a,]"]}} for k in range(n)
    ]
    text = json.dumps(records, indent=1)
    cut = data.draw(st.integers(0, len(text)))
    path = _tmp(text[:cut].encode(), "rec.json")
    parsed = read_json_records(path)
    complete = sum(1 for k in range(n) if len(json.dumps(records[: k + 1], indent=1)) - 2 <= cut)
    if cut == len(text):
        assert parsed.broken_at is None and parsed.records == records
    else:
        assert parsed.broken_at is not None and parsed.records == records[:complete]


_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True), st.text(max_size=3)
)
_VEHICLE = st.fixed_dictionaries(
    {},
    optional={
        k: _VALUE
        for k in (
            "mID",
            "mVehicleName",
            "mTotalLaps",
            "mLastLapTime",
            "mInPits",
            "mNumPitstops",
            "mIsPlayer",
            "mLapDist",
            "mFinishStatus",
            "mPlace",
        )
    },
)
_CLOCK = st.one_of(
    st.floats(0, 100),
    st.floats(0, 100),  # twice: most records have a good clock
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.none(),
    st.text(max_size=3),
)
"""A record's session clock: finite, non-finite, null or text (issue 20: none of them may
crash the reader)."""
_SCORING = st.fixed_dictionaries(
    {"Type": st.just("ScoringInfoV01")},
    optional={
        "mCurrentET": _CLOCK,
        "mVehicles": st.one_of(_VALUE, st.lists(st.one_of(_VEHICLE, _VALUE), max_size=3)),
        "mGamePhase": _VALUE,
        "mLapDist": _VALUE,
    },
)
_WHEEL = st.fixed_dictionaries({}, optional={"mWear": _VALUE, "mTemperature": _VALUE})
_TELEMETRY = st.fixed_dictionaries(
    {"Type": st.just("TelemInfoV01")},
    optional={
        "mElapsedTime": _CLOCK,
        "mWheel": st.one_of(_VALUE, st.lists(st.one_of(_WHEEL, _VALUE), max_size=4)),
        "mLapNumber": _VALUE,
        "mFuel": _VALUE,
        "mFuelCapacity": _VALUE,
        "mDentSeverity": st.one_of(_VALUE, st.lists(_VALUE, max_size=3)),
        "mLastImpactET": _VALUE,
    },
)


@FAST
@given(st.lists(st.one_of(_SCORING, _TELEMETRY), min_size=1, max_size=6))
# a near-zero tank capacity once overflowed the fuel share to inf
@example([{"Type": "TelemInfoV01", "mElapsedTime": 0.0, "mFuel": 1e71, "mFuelCapacity": 1e-238}])
@example([{"Type": "ScoringInfoV01", "mCurrentET": float("nan")}])  # once an IndexError
def test_shared_memory_records_of_any_shape(records: list[dict]) -> None:
    path = _tmp(json.dumps(records).encode(), "rec.json")
    try:
        result = read_file(path)
    except IngestError as e:
        assert str(path) in str(e)
        return
    for s in result.sessions:
        assert all(r["lap"] >= 0 for r in s.laps)
        assert all(
            x["fuel"] is None or math.isfinite(x["fuel"]) for x in s.state_samples if "fuel" in x
        )

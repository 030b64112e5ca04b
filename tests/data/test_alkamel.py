"""Al Kamel timing readers: synthetic files for each quirk, and the real WEC / IMSA files."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from data.errors import IngestError
from data.readers import alkamel
from tests.data.helpers import WEC_HEADER, small_race, wec_row, write_csv


def test_quirks_bom_crlf_spaced_header_trailing_separator_and_text_numbers(tmp_path: Path) -> None:
    path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    result = alkamel.read_laps(path)
    (s,) = result.sessions
    assert set(s.cars) == {"007", "2", "51"}  # '007' kept as text
    assert s.series == "WEC" and s.session_type == "race"
    assert s.duration_s == 3600.0
    assert s.start_hour_of_day == pytest.approx(14.0)
    lines = path.read_text(encoding="utf-8-sig").strip().splitlines()
    assert len(s.laps) == len(lines) - 1  # one lap row per CSV line
    first = next(r for r in s.laps if r["car"] == "007" and r["lap"] == 1)
    assert first["lap_time_s"] == pytest.approx(600.0)
    assert first["s1_s"] + first["s2_s"] + first["s3_s"] == pytest.approx(600.0, abs=0.01)


def test_pits_driver_changes_flags_and_retirement(tmp_path: Path) -> None:
    (s,) = alkamel.read_laps(small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")).sessions
    laps = {(r["car"], r["lap"]): r for r in s.laps}
    assert laps["007", 3]["pit_in"] == 1 and laps["007", 4]["pit_out"] == 1
    assert laps["007", 4]["pit_time_s"] == pytest.approx(60.0)
    assert laps["007", 4]["driver_change"] == 1 and laps["007", 3]["driver_change"] == 0
    (stop,) = s.pit_stops
    assert (stop["car"], stop["lap"], stop["pit_time_s"], stop["driver_change"]) == (
        "007",
        3,
        60.0,
        1,
    )
    assert laps["51", 4]["flag"] == 2 and laps["51", 1]["flag"] == 0
    kinds = Counter(p["kind"] for p in s.flag_periods)
    assert kinds == {2: 1, 5: 1}
    fcy = next(p for p in s.flag_periods if p["kind"] == 2)
    assert fcy["start_s"] < fcy["end_s"]
    assert s.cars["2"].finish_status == "retired"
    assert s.cars["007"].finish_status == "finished"
    assert s.cars["2"].laps_completed == 2
    # Overall and class positions at the line.
    assert laps["007", 1]["position"] == 1 and laps["51", 1]["position"] == 3
    assert laps["51", 1]["class_position"] == 1


def test_imsa_comma_separated_without_sector_seconds(tmp_path: Path) -> None:
    header = ",".join(h.strip() for h in WEC_HEADER.split(";")[:26]) + ","
    rows = []
    for line in (wec_row("01", 1, 114.4, 114.4), wec_row("01", 2, 112.6, 227.0, pit_in=True)):
        rows.append(",".join(line.split(";")[:26]) + ",")
    result = alkamel.read_laps(
        write_csv(tmp_path / "imsa_2030_sebring_12h_race_laps.csv", [header, *rows])
    )
    (s,) = result.sessions
    assert s.series == "IMSA" and len(s.laps) == 2
    assert s.laps[0]["s1_s"] == pytest.approx(round(114.4 * 0.3, 3))
    assert s.pit_stops[0]["pit_time_s"] is None  # never came out


def test_bad_lap_times_and_duplicates_warn_and_keep_lap_untimed(tmp_path: Path) -> None:
    lines = [
        WEC_HEADER,
        wec_row("7", 1, 100.0, 100.0),
        wec_row("7", 2, 100.0, 200.0, lap_text="nan"),
        wec_row("7", 3, 100.0, 300.0, lap_text="-1.5"),
        wec_row("7", 3, 100.0, 300.0),
    ]
    result = alkamel.read_laps(write_csv(tmp_path / "x.csv", lines))
    laps = {r["lap"]: r for r in result.sessions[0].laps}
    assert len(laps) == 3
    assert laps[2]["timed"] == 0 and laps[2]["lap_time_s"] is None
    assert laps[3]["timed"] == 0
    assert any("duplicate lap 3" in w for w in result.warnings)
    assert any("line 3" in w for w in result.warnings)


def test_unknown_header_and_malformed_time_name_the_place(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", ["A;B;C", "1;2;3"])
    with pytest.raises(IngestError, match="line 1"):
        alkamel.read_laps(bad)
    lines = [
        WEC_HEADER,
        wec_row("7", 1, 100.0, 100.0),
        wec_row("7", 2, 100.0, 200.0, lap_text="1:xx"),
    ]
    with pytest.raises(IngestError, match="line 3, column LAP_TIME"):
        alkamel.read_laps(write_csv(tmp_path / "t.csv", lines))
    with pytest.raises(IngestError, match="empty"):
        alkamel.read_laps(write_csv(tmp_path / "e.csv", [""], bom=False))


def test_results_status_mapping(tmp_path: Path) -> None:
    lines = [
        "POSITION,NUMBER,STATUS,LAPS,CLASS,TEAM,VEHICLE,DRIVER1_FIRSTNAME,DRIVER1_SECONDNAME,",
        "1,7,Running,300,GTP,A,Car A,Ann,Lee,",
        "2,8,Retired,120,GTP,B,Car B,Bob,Ray,",
        "3,9,DSQ,290,GTP,C,Car C,Cy,Poe,",
        "4,10,Classified,2,GTP,D,Car D,Di,Fox,",
    ]
    result = alkamel.read_results(write_csv(tmp_path / "imsa_2030_x_race_results.csv", lines))
    status = {n: c.finish_status for n, c in result.sessions[0].cars.items()}
    assert status == {"7": "finished", "8": "retired", "9": "dq", "10": None}
    assert result.sessions[0].cars["8"].laps_completed == 120
    assert result.sessions[0].cars["7"].drivers == [("Ann Lee", 1)]
    assert any("classified" in w for w in result.warnings)


def _csv_rows(path: Path, delimiter: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, r, strict=False)) for r in reader]


@pytest.mark.shared_data
def test_le_mans_2024_one_lap_per_line_with_sc_fcy_and_pits(shared_data: Path) -> None:
    path = shared_data / "wec" / "wec_2024_lemans_24h_race_analysis.csv"
    result = alkamel.read_laps(path)
    (s,) = result.sessions
    assert len(s.laps) == 15593 and len(s.cars) == 62
    rows = _csv_rows(path, ";")
    flags = Counter(r["FLAG_AT_FL"] for r in rows)
    stored = Counter(r["flag"] for r in s.laps)
    assert stored[3] == flags["SF"] > 0 and stored[2] == flags["FCY"] > 0
    assert stored[5] == flags["FF"]
    in_laps = sum(r["CROSSING_FINISH_LINE_IN_PIT"] == "B" for r in rows)
    assert len(s.pit_stops) == in_laps == sum(r["pit_in"] for r in s.laps)
    kinds = Counter(p["kind"] for p in s.flag_periods)
    assert kinds[3] >= 1 and kinds[2] >= 1 and kinds[5] == 1
    # The wet night's safety car ran for hours.
    assert max(p["end_s"] - p["start_s"] for p in s.flag_periods if p["kind"] == 3) > 3 * 3600
    assert s.duration_s == 86400.0 and s.track == "Circuit de la Sarthe"
    assert 13_500 < s.track_length_m < 13_700
    status = Counter(c.finish_status for c in s.cars.values())
    assert status["finished"] > 40 and status["retired"] > 5
    assert all(c.team and c.car_class for c in s.cars.values())


@pytest.mark.shared_data
def test_imsa_laps_results_and_weather(shared_data: Path) -> None:
    folder = shared_data / "imsa"
    (laps,) = alkamel.read_laps(folder / "imsa_2024_sebring_12h_race_laps.csv").sessions
    rows = _csv_rows(folder / "imsa_2024_sebring_12h_race_laps.csv", ",")
    assert len(laps.laps) == len(rows)
    assert {r["flag"] for r in laps.laps} == {0, 2, 5}  # every caution is FCY
    (res,) = alkamel.read_results(folder / "imsa_2024_sebring_12h_race_results.csv").sessions
    assert set(res.cars) == set(laps.cars)
    assert all(c.vehicle for c in res.cars.values())
    assert all(c.finish_status is None for c in res.cars.values())  # all 'Classified'
    assert all(len(c.drivers) >= 2 for c in res.cars.values())
    (wx,) = alkamel.read_weather(folder / "imsa_2024_sebring_12h_race_weather.csv").sessions
    air = [w["air_temp_c"] for w in wx.weather]
    assert 15.0 < min(air) < max(air) < 35.0  # °F converted to °C
    assert all(1000.0 < w["pressure_hpa"] < 1020.0 for w in wx.weather)  # inHg -> hPa
    assert all(w["rain"] is None for w in wx.weather)  # RAIN -1: no sensor
    assert wx.weather[0]["race_time_s"] == 0.0

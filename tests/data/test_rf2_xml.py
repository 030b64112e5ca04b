"""rFactor 2 / LMU results XML reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.errors import IngestError
from data.readers.rf2_xml import read_rf2_xml

XML = """<?xml version="1.0" encoding="utf-8"?>
<rFactorXML version="1.0"><RaceResults>
<TrackVenue>Test Ring</TrackVenue><TrackLength>4000.0</TrackLength><GameVersion>1.1</GameVersion>
<Race><DateTime>1449003547</DateTime><Laps>3</Laps><Minutes>0</Minutes>
<Stream>
<Incident et="130.0">Ann(1) reported contact (0.40) with another vehicle Bob(2)</Incident>
<Incident et="130.0">Ann(1) reported contact (0.40) with another vehicle Ann(1)</Incident>
<Incident et="140.0">Bob(2) reported contact (0.05) with Wall</Incident>
<Penalty et="150.0">Bob received Drive Thru penalty, 10s, 0laps.</Penalty>
</Stream>
<Driver><Name>Ann</Name><CarNumber>7</CarNumber><CarClass>GT3</CarClass><TeamName>A</TeamName>
<VehName>Car A</VehName><FinishStatus>Finished Normally</FinishStatus>
<Lap num="1" p="1" et="100.0" s1="30" s2="30" s3="30" fuel="0.90"
 twfl="0.95" twfr="0.96" twrl="0.97" twrr="0.98"
 fcompound="0,Soft" rcompound="0,Soft" pit="1">90.0</Lap>
<Lap num="2" p="1" et="190.0" s1="40" fuel="0.95"
 twfl="0.99" twfr="0.99" twrl="0.99" twrr="0.99"
 fcompound="1,Medium" rcompound="1,Medium">--.----</Lap>
<Lap num="3" p="1" et="290.0" s1="30" s2="30" s3="31" fuel="0.91"
 twfl="0.95" twfr="0.95" twrl="0.96" twrr="0.96"
 fcompound="1,Medium" rcompound="1,Medium">91.0</Lap>
</Driver>
<Driver><Name>Bob</Name><CarNumber>8</CarNumber><CarClass>GT3</CarClass>
<FinishStatus>DNF</FinishStatus>
<Lap num="1" p="2" et="100.0" s1="31" s2="31" s3="31" fuel="0.9"
 fcompound="0,Soft" rcompound="0,Soft">93.0</Lap>
</Driver>
</Race></RaceResults></rFactorXML>
"""


def test_laps_stops_and_incidents(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_text(XML, encoding="utf-8")
    result = read_rf2_xml(path)
    (s,) = result.sessions
    assert s.track == "Test Ring" and s.laps_scheduled == 3 and s.track_length_m == 4000.0
    ann = [r for r in s.laps if r["car"] == "7"]
    assert [r["lap"] for r in ann] == [1, 2, 3]
    assert ann[0]["race_time_s"] == pytest.approx(90.0)  # from the race start (first et)
    assert ann[1]["timed"] == 0 and ann[1]["lap_time_s"] is None
    assert ann[1]["race_time_s"] == pytest.approx(190.0)  # the next lap's start
    assert ann[0]["compound"] == 0 and ann[2]["compound"] == 1
    assert ann[0]["pit_in"] == 1 and ann[1]["pit_out"] == 1
    (stop,) = [p for p in s.pit_stops if p["car"] == "7"]
    assert stop["refuel"] == 1 and stop["tyres_changed"] == 4
    assert s.cars["7"].finish_status == "finished" and s.cars["8"].finish_status == "retired"
    kinds = sorted(i["kind"] for i in s.incidents)
    assert kinds == ["contact", "object", "penalty"]  # the self-echo is dropped
    contact = next(i for i in s.incidents if i["kind"] == "contact")
    assert (contact["car"], contact["other_car"], contact["magnitude"]) == ("7", "8", 0.4)
    assert contact["race_time_s"] == pytest.approx(30.0) and contact["lap"] == 1


def test_malformed_xml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(XML[:900], encoding="utf-8")
    with pytest.raises(IngestError, match="line"):
        read_rf2_xml(path)


@pytest.mark.shared_data
def test_hungaroring_13_drivers_fuel_and_wear_every_lap(shared_data: Path) -> None:
    result = read_rf2_xml(shared_data / "rfactor2" / "rf2_2015_srmf1_hungaroring_race.xml")
    (s,) = result.sessions
    assert len(s.cars) == 13
    assert sum(len(c.drivers) for c in s.cars.values()) == 13
    assert s.laps and all(r["fuel_end"] is not None for r in s.laps)
    assert all(r[f"tread_{w}"] is not None for r in s.laps for w in ("fl", "fr", "rl", "rr"))
    assert all(0.0 <= r["tread_fl"] <= 1.0 for r in s.laps)
    assert any(i["kind"] == "contact" and i["other_car"] for i in s.incidents)
    assert all(p["tyres_changed"] is not None for p in s.pit_stops if p.get("refuel") is not None)


@pytest.mark.shared_data
def test_monza_without_wear_stores_null_tread(shared_data: Path) -> None:
    (s,) = read_rf2_xml(
        shared_data / "rfactor2" / "rf2_2014_blancpain_monza_60min_race.xml"
    ).sessions
    assert len(s.cars) == 18 and s.duration_s == 3600.0
    assert all(r["tread_fl"] is None for r in s.laps)
    assert all(r["fuel_end"] is not None for r in s.laps)


ANONYMISED = XML.replace(
    "<Stream>",
    "<Stream>\n"
    '<Incident et="120.0">Driver 14 reported contact (767.67) Driver 33</Incident>\n'
    '<Incident et="120.0">Driver 33 reported contact (778.35) Driver 14</Incident>\n'
    '<Incident et="125.0">Driver 2 reported contact (12.50) with Sign</Incident>\n',
).replace("<GameVersion>1.1</GameVersion>", "<FuelMult>2</FuelMult><TireMult>3</TireMult>")


def test_anonymised_contacts_kept_without_car_and_multipliers_read(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_text(ANONYMISED, encoding="utf-8")
    result = read_rf2_xml(path)
    (s,) = result.sessions
    assert (s.fuel_mult, s.tyre_mult) == (2.0, 3.0)
    carless = [i for i in s.incidents if i["car"] is None]
    assert sorted(i["kind"] for i in carless) == ["contact", "object"]  # mirrored report once
    contact = next(i for i in carless if i["kind"] == "contact")
    assert contact["magnitude"] == 778.35 and contact["race_time_s"] == pytest.approx(20.0)
    assert any("1 car-to-car and 1 object" in w for w in result.warnings)
    assert not any("unrecognised" in w for w in result.warnings)


@pytest.mark.shared_data
def test_lmu_paul_ricard_energy_multipliers_and_anonymised_contacts(shared_data: Path) -> None:
    result = read_rf2_xml(shared_data / "lmu" / "lmu_2025_paulricard_4h_event_60min_race.xml")
    (s,) = result.sessions
    assert s.series == "LMU" and len(s.cars) == 44 and len(s.laps) == 1104
    assert (s.fuel_mult, s.tyre_mult) == (1.0, 1.0)
    assert all(0.0 <= r["energy_end"] <= 1.0 for r in s.laps)
    assert all(r["energy_start"] is not None for r in s.laps)
    first = [r for r in s.laps if r["lap"] == 1]
    assert all(r["energy_start"] == pytest.approx(1.0, abs=0.002) for r in first)
    # Between stops a lap's energy start is the previous lap's end (up to the rounding of
    # the logged levels and use: the start is the end plus the lap's logged veUsed), and
    # energy only goes down.
    laps = {(r["car"], r["lap"]): r for r in s.laps}
    green = [
        r
        for r in s.laps
        if r["lap"] > 1 and not r["pit_in"] and not laps[(r["car"], r["lap"] - 1)]["pit_in"]
    ]
    assert green and all(
        r["energy_start"] == pytest.approx(laps[(r["car"], r["lap"] - 1)]["energy_end"], abs=2e-3)
        for r in green
    )
    assert all(r["energy_start"] >= r["energy_end"] for r in green if not r["pit_out"])
    carless = [i for i in s.incidents if i["car"] is None]
    assert sum(i["kind"] == "contact" for i in carless) == 184
    assert sum(i["kind"] == "object" for i in carless) == 72
    assert any("184 car-to-car and 72 object" in w for w in result.warnings)


@pytest.mark.shared_data
def test_store_keeps_multipliers_and_energy_and_upgrades_old_store(
    shared_data: Path, tmp_path: Path
) -> None:
    import sqlite3

    from data.store import open_store, write_result

    db = tmp_path / "old.sqlite"
    old = sqlite3.connect(db)  # a store made before fuel_mult / tyre_mult existed
    old.executescript(
        "CREATE TABLE sessions (session_id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, "
        "name TEXT NOT NULL, series TEXT, track TEXT, session_type TEXT, start_time_utc TEXT, "
        "start_hour_of_day REAL, duration_s REAL, laps_scheduled INTEGER, track_length_m REAL);"
    )
    old.close()
    path = shared_data / "lmu" / "lmu_2025_paulricard_4h_event_60min_race.xml"
    conn = open_store(db)
    write_result(conn, path, read_rf2_xml(path))
    assert conn.execute("SELECT fuel_mult, tyre_mult FROM sessions").fetchall() == [(1.0, 1.0)]
    n_energy = conn.execute("SELECT COUNT(energy_end) FROM laps").fetchone()[0]
    n_carless = conn.execute("SELECT COUNT(*) FROM incidents WHERE car_id IS NULL").fetchone()[0]
    assert (n_energy, n_carless) == (1104, 256)
    conn.close()

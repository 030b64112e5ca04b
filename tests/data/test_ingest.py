"""The ingest command and the lap store: detection, idempotence, bad input, exit codes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from bench.lmu_fixture import write_lmu_session
from data import ingest
from data.detect import detect_kind
from data.errors import IngestError
from data.store import SCHEMA_VERSION, open_store
from tests.data.helpers import small_race, write_csv


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        tables = ["sources", "sessions", "cars", "drivers", "laps", "pit_stops", "flag_periods"]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def _digest(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def test_store_schema_and_provenance(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == SCHEMA_VERSION
    conn.close()
    csv_path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(csv_path), "--db", str(tmp_path / "s.sqlite"), "--json"]) == 0
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    path, reader, sha, size = conn.execute(
        "SELECT path, reader, sha256, size_bytes FROM sources"
    ).fetchone()
    conn.close()
    assert path == str(csv_path.resolve()) and reader == "alkamel_csv"
    assert (
        sha == hashlib.sha256(csv_path.read_bytes()).hexdigest() and size == csv_path.stat().st_size
    )


def test_reingest_replaces_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    csv_path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(csv_path), "--db", str(db), "--json"]) == 0
    first = _counts(db)
    assert ingest.main([str(tmp_path), "--db", str(db), "--json"]) == 0  # a directory: walked
    assert _counts(db) == first and first["sources"] == 1 and first["laps"] > 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (counts,) = report["files"].values()
    assert counts["reader"] == "alkamel_csv" and counts["laps"] == first["laps"]
    assert counts["flag_periods"] == {"chequered": 1, "fcy": 1}


def test_bad_files_leave_the_store_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.sqlite"
    (tmp_path / "good").mkdir()
    good = small_race(tmp_path / "good" / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(db)]) == 0
    before = _digest(db)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.csv").write_bytes(b"")
    write_csv(bad / "unknown.csv", ["FOO;BAR", "1;2"])
    (bad / "notes.bin").write_bytes(b"\x00\x01\x02binary")
    (bad / "cut.json").write_text("[{", encoding="utf-8")
    capsys.readouterr()
    assert ingest.main([str(bad), "--db", str(db), "--json"]) == 2  # nothing could be read
    report = json.loads(capsys.readouterr().out)
    errors = {Path(p).name: c["error"] for p, c in report["files"].items()}
    assert set(errors) == {"empty.csv", "unknown.csv", "notes.bin", "cut.json"}
    assert "empty" in errors["empty.csv"] and "unknown header" in errors["unknown.csv"]
    assert all(name in err for name, err in errors.items())  # each names its file
    assert _digest(db) == before
    # Some readable, some not: exit 1.
    assert ingest.main([str(good), str(bad / "empty.csv"), "--db", str(db), "--json"]) == 1


def test_detection_by_content_not_extension(tmp_path: Path) -> None:
    csv_as_txt = small_race(tmp_path / "timing.txt")
    assert detect_kind(csv_as_txt) == "alkamel_csv"
    duck = write_lmu_session(tmp_path / "session.bin", duration_s=120.0).path
    assert detect_kind(duck) == "lmu_duckdb"
    (tmp_path / "x.json").write_text("[]", encoding="utf-8")
    assert detect_kind(tmp_path / "x.json") == "lmu_sharedmem_json"
    (tmp_path / "other.xml").write_text("<html></html>", encoding="utf-8")
    with pytest.raises(IngestError, match="rFactorXML"):
        detect_kind(tmp_path / "other.xml")
    conn = sqlite3.connect(tmp_path / "other.sqlite")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(IngestError, match="races"):
        detect_kind(tmp_path / "other.sqlite")


def test_fresh_build_replaces_the_store_atomically(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    db.write_bytes(b"")
    csv_path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(csv_path), "--db", str(db), "--fresh", "--json"]) == 0
    assert _counts(db)["laps"] > 0
    assert not list(tmp_path.glob(".store.sqlite.*"))


@pytest.mark.shared_data
def test_every_shared_file_ingests(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = [str(shared_data / d) for d in ("lmu", "rfactor2", "wec", "imsa")]
    assert ingest.main([*folders, "--db", str(tmp_path / "all.sqlite"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = {Path(p).name: c for p, c in report["files"].items()}
    # Whatever the folders hold today (they grow): every data file on disk was read, none failed.
    on_disk = {
        f.name for d in folders for f in Path(d).rglob("*") if f.is_file() and f.name != "README.md"
    }
    assert report["failed"] == 0 and len(on_disk) > 0 and set(files) == on_disk
    lm24 = files["wec_2024_lemans_24h_race_analysis.csv"]
    assert (lm24["laps"], lm24["cars"]) == (15593, 62)
    assert lm24["flag_periods"]["sc"] >= 1 and lm24["flag_periods"]["fcy"] >= 1
    hung = files["rf2_2015_srmf1_hungaroring_race.xml"]
    assert hung["cars"] == 13 and hung["incidents"] > 0
    assert any(
        "truncated" in w
        for w in files["lmu_sharedmem_telemetry_20251222_truncated.json"]["warnings"]
    )


def test_a_db_that_is_not_a_lap_store_is_refused_untouched(tmp_path: Path) -> None:
    csv_path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"not a database at all")
    assert ingest.main([str(csv_path), "--db", str(other)]) == 2
    assert other.read_bytes() == b"not a database at all"
    assert ingest.main([str(csv_path), "--db", str(tmp_path / "no" / "dir.sqlite")]) == 2

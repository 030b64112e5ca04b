"""Issue 20, cases 1-4 and 12 (data side): ingest never loses a store and never stores nonsense
silently."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from data import ingest
from data.errors import IngestError
from data.ingest import read_file
from data.tempfiles import remove_stale_temp_files
from tests.data.helpers import small_race, write_csv


def _laps(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM laps").fetchone()[0]
    finally:
        conn.close()


def test_case1_fresh_with_a_missing_file_keeps_the_old_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(db)]) == 0
    before = _laps(db)
    assert before > 0
    capsys.readouterr()
    assert ingest.main([str(tmp_path / "MISSING.csv"), "--db", str(db), "--fresh"]) == 2
    assert _laps(db) == before
    err = capsys.readouterr().err
    assert "MISSING.csv" in err and "kept" in err
    assert not list(tmp_path.glob(".*.tmp"))


def test_case1_fresh_with_a_failing_file_among_good_ones_keeps_the_old_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(db)]) == 0
    before = _laps(db)
    assert ingest.main([str(good), str(tmp_path / "MISSING.csv"), "--db", str(db), "--fresh"]) == 1
    assert _laps(db) == before


def test_case1_fresh_replaces_the_store_when_every_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    sqlite3.connect(db).close()  # an empty SQLite file: replaced by the new store
    good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(db), "--fresh", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["db"] == str(db) and _laps(db) > 0


def test_case12_ctrl_c_ends_with_one_line_and_exit_130() -> None:
    code = (
        "from data.entry import run_main\n"
        "def main():\n"
        "    raise KeyboardInterrupt\n"
        "run_main(main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_case12_ctrl_c_during_ingest_leaves_no_traceback(tmp_path: Path) -> None:
    small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    code = (
        "import sys\n"
        "import data.ingest as ing\n"
        "from data.entry import run_main\n"
        "def interrupt(path):\n"
        "    raise KeyboardInterrupt\n"
        "ing.read_file = interrupt\n"
        "run_main(lambda: ing.main(sys.argv[1:]))\n"
    )
    db = tmp_path / "store.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), "--db", str(db), "--fresh"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 130 and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob(".*.tmp"))  # the half-built --fresh store is removed


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_case12_stale_temp_files_of_dead_runs_are_removed_at_the_next_run(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_store = tmp_path / f".store.sqlite.{dead}.tmp"
    live_store = tmp_path / f".store.sqlite.{os.getppid()}.tmp"  # a live process
    stale_agent = tmp_path / f".agent.pt.{dead}.abc123.tmp"
    other = tmp_path / f".other.sqlite.{dead}.tmp"
    for f in (stale_store, live_store, stale_agent, other):
        f.write_bytes(b"partial")
    assert remove_stale_temp_files(tmp_path / "agent.pt") == [stale_agent]
    good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(tmp_path / "store.sqlite"), "--fresh"]) == 0
    assert not stale_store.exists() and live_store.exists() and other.exists()


def test_case12_a_read_only_store_is_blamed_on_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        # root writes read-only files; a store another process holds locked fails the same way
        db = tmp_path / "store.sqlite"
        good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
        assert ingest.main([str(good), "--db", str(db)]) == 0
        capsys.readouterr()
        holder = sqlite3.connect(db, isolation_level=None, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            code = ingest.main([str(good), "--db", str(db)])
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        err = capsys.readouterr().err
        assert code == 2 and "lap store" in err and "locked" in err
        return
    db = tmp_path / "store.sqlite"
    good = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    assert ingest.main([str(good), "--db", str(db)]) == 0
    db.chmod(0o444)
    capsys.readouterr()
    assert ingest.main([str(good), "--db", str(db)]) == 2
    assert "read-only" in capsys.readouterr().err


def _write_sharedmem(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "clock", ["NaN", "Infinity", "null", '"abc"', None], ids=["nan", "inf", "null", "text", "none"]
)
def test_case2_sharedmem_without_a_finite_clock_is_an_ingest_error(
    tmp_path: Path, clock: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    field = "" if clock is None else f', "mCurrentET": {clock}'
    bad = _write_sharedmem(folder / "a_bad.json", f'[{{"Type": "ScoringInfoV01"{field}}}]')
    good = small_race(folder / "wec_2030_spa_1h_race_analysis.csv")  # read after the bad file
    with pytest.raises(IngestError) as err:
        read_file(bad)
    assert str(bad) in str(err.value) and "finite session clock" in str(err.value)
    db = tmp_path / "store.sqlite"
    assert ingest.main([str(folder), "--db", str(db), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert "finite session clock" in report["files"][str(bad)]["error"]
    assert report["files"][str(good)]["laps"] > 0 and _laps(db) > 0


def test_case2_records_with_bad_clocks_are_skipped_with_a_warning(tmp_path: Path) -> None:
    def record(clock: str, lap: int) -> str:
        vehicle = (
            f'{{"mID": 1, "mVehicleName": "Car #7", "mTotalLaps": {lap}, "mLastLapTime": 100}}'
        )
        return f'{{"Type": "ScoringInfoV01", "mCurrentET": {clock}, "mVehicles": [{vehicle}]}}'

    records = [
        record(t, lap)
        for t, lap in [("10.0", 0), ("NaN", 1), ("110.0", 1), ("null", 2), ("210.0", 2)]
    ]
    path = _write_sharedmem(tmp_path / "rec.json", "[" + ",".join(records) + "]")
    result = read_file(path)
    (session,) = result.sessions
    assert [r["lap"] for r in session.laps] == [1, 2]
    assert any("record 2" in w and "mCurrentET" in w for w in result.warnings)
    assert any("record 4: no mCurrentET" in w for w in result.warnings)


def test_case3_a_csv_cut_mid_line_warns_and_skips_the_partial_row(tmp_path: Path) -> None:
    path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    whole = read_file(path)
    raw = path.read_bytes()
    cut = raw[: raw.rstrip().rfind(b";", 0, len(raw) - 80)]  # mid-way through the last line
    path.write_bytes(cut)
    result = read_file(path)
    assert len(result.sessions[0].laps) == len(whole.sessions[0].laps) - 1
    assert any("cut short" in w for w in result.warnings)
    assert any("does not end with a line end" in w for w in result.warnings)
    assert all(r["driver"] is not None for r in result.sessions[0].laps)


def test_case3_short_rows_are_warned_and_skipped(tmp_path: Path) -> None:
    path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    lines = path.read_bytes().decode("utf-8-sig").splitlines()
    lines.insert(3, "007;1;99;1:40.000;0;")
    write_csv(path, lines)
    result = read_file(path)
    assert any(w.startswith("line 4:") and "cut short" in w for w in result.warnings)
    assert 99 not in [r["lap"] for r in result.sessions[0].laps]


@pytest.mark.parametrize("absurd", ["99999", "1666:39.000"])
def test_case4_an_absurd_lap_time_is_stored_untimed(tmp_path: Path, absurd: str) -> None:
    path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    lines = path.read_bytes().decode("utf-8-sig").splitlines()
    target = next(i for i, line in enumerate(lines) if line.startswith("007;") and ";3;" in line)
    fields = lines[target].split(";")
    fields[3] = absurd
    lines[target] = ";".join(fields)
    write_csv(path, lines)
    result = read_file(path)
    row = next(r for r in result.sessions[0].laps if r["car"] == "007" and r["lap"] == 3)
    assert row["timed"] == 0 and row["lap_time_s"] is None
    assert any("car 007 lap 3" in w and "untimed" in w for w in result.warnings)
    timed = [r for r in result.sessions[0].laps if r["timed"]]
    assert (
        len(timed)
        == len(
            [
                r
                for r in read_file(small_race(tmp_path / "x_race.csv")).sessions[0].laps
                if r["timed"]
            ]
        )
        - 1
    )


def test_case12_a_utf16_csv_is_named_utf16(tmp_path: Path) -> None:
    path = small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")
    text = path.read_bytes().decode("utf-8-sig")
    for encoding in ("utf-16", "utf-16-le"):
        path.write_bytes(text.encode(encoding))
        with pytest.raises(IngestError, match="UTF-16 text"):
            read_file(path)

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
from data.tempfiles import remove_stale_temp_files
from tests.data.helpers import small_race


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

"""The simulate entry point: classification on stdout, laps readable as the lap store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from data.query import load_laps
from engine.cli import COMMAND_MODULES
from engine.simulate import main


def test_simulate_writes_laps_in_the_lap_store_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sim.sqlite"
    assert (
        main(["test_race", "--replicas", "2", "--seed", "4", "--laps-out", str(db), "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["replicas"] == 2
    rows = out["classification_replica0"]
    assert [row["position"] for row in rows] == list(range(1, len(rows) + 1))
    assert out["laps_written"] > 0
    arrays = load_laps(db, ["lap", "lap_time_s", "race_time_s", "fuel_end", "pit_in"])
    assert len(arrays) == out["laps_written"]
    lap_time = arrays.values[:, arrays.columns.index("lap_time_s")]
    assert (lap_time > 0).all()
    with sqlite3.connect(db) as conn:
        sessions = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        cars = conn.execute("SELECT COUNT(*) FROM cars").fetchone()[0]
        stops = conn.execute("SELECT COUNT(*) FROM pit_stops").fetchone()[0]
        pit_in = conn.execute("SELECT SUM(pit_in) FROM laps").fetchone()[0]
    assert sessions == 2 and cars == 2 * len(rows)
    assert stops == pit_in > 0
    # Writing the same run again replaces it instead of adding to it.
    assert (
        main(["test_race", "--replicas", "2", "--seed", "4", "--laps-out", str(db), "--json"]) == 0
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2


def test_simulate_text_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test_race", "--replicas", "1", "--seed", "1", "--no-progress"]) == 0
    assert "test_race: replica 0 of 1" in capsys.readouterr().out
    assert main(["no_such_scenario"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["test_race", "--strategy", "nonsense"]) == 2
    assert "unknown strategy" in capsys.readouterr().err


def test_simulate_is_a_stintsim_subcommand() -> None:
    assert COMMAND_MODULES["simulate"][0] == "engine.commands.simulate"

"""``stintsim validate``: the comparison's arithmetic, and the command on a short real race."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.ingest import ingest
from engine.cli import main as cli_main
from engine.validate import StatCheck, compare, main


def test_quantiles_and_the_real_values_place() -> None:
    check = StatCheck("x", 5.0, np.arange(1.0, 11.0))
    lo, mid, hi = check.quantiles
    assert (lo, mid, hi) == pytest.approx((1.45, 5.5, 9.55))
    assert check.real_quantile == pytest.approx(0.45)  # 4 below, one tie counted half
    assert check.inside
    assert not StatCheck("x", 10.0, np.arange(1.0, 11.0)).inside
    # Statistics a simulated race lacks, or a real NaN, are left out.
    checks = compare({"a": 1.0, "b": np.nan, "c": 2.0}, [{"a": 1.0}, {"a": 2.0, "c": np.nan}])
    assert [c.name for c in checks] == ["a"]


@pytest.fixture(scope="module")
def lmu_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    db = tmp_path_factory.mktemp("validate") / "lmu.sqlite"
    ingest([str(shared_data / "lmu" / "lmu_2025_paulricard_4h_event_60min_race.xml")], db)
    return db


def test_validate_a_real_race_prints_json_and_a_figure(
    lmu_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figure = tmp_path / "panels.png"
    argv = [
        "--db",
        str(lmu_store),
        "--session",
        "lmu_2025_paulricard_4h_event_60min_race_race",
        "--replicas",
        "4",
        "--seed",
        "3",
        "--plot",
        str(figure),
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    names = {c["statistic"] for c in out["checks"]}
    assert {"winner_laps", "pit_stops", "median_laps/HYPERCAR", "retirements"} <= names
    for c in out["checks"]:
        assert c["q05"] <= c["q50"] <= c["q95"]
        assert c["inside"] == (c["q05"] <= c["real"] <= c["q95"])
        assert c["simulated_races"] == 4
    assert out["inside"] == sum(c["inside"] for c in out["checks"])
    assert figure.stat().st_size > 10_000
    # Same seed, same statistics.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["checks"] == out["checks"]


def test_validate_errors_name_the_store_and_exit_2(
    lmu_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["validate", "--db", str(lmu_store), "--session", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no session 'nope'" in err and str(lmu_store) in err and "Traceback" not in err
    assert main(["--db", "/nonexistent.sqlite", "--session", "x"]) == 2
    assert main(["--db", str(lmu_store), "--session", "x", "--replicas", "1"]) == 2

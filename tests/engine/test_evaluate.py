"""Monte Carlo evaluation on the real engine (the tiny "test_race" scenario, few replicas)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from engine import evaluate as ev_mod
from engine.backends import ChunkJob, LocalBackend, run_chunk
from engine.evaluate import evaluate, main, strategy_labels
from engine.montecarlo import METRIC_LABELS, Outcomes
from engine.report import CSV_COLUMNS, comparison_csv, format_table
from engine.scenario import load_scenario


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


def test_identical_strategies_differ_by_exactly_zero(scenario) -> None:
    ev = evaluate(scenario, ["fixed:laps=5", "fixed:laps=5"], 6, seed=3, chunk_replicas=3)
    a, b = ev.outcomes.values()
    for name in vars(a):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    (diff,) = ev.comparison.differences
    assert set(diff.metrics) == set(METRIC_LABELS)
    for name, iv in diff.metrics.items():
        assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0), name
    assert strategy_labels(["fixed:laps=5", "fixed:laps=5"]) == ["fixed:laps=5", "fixed:laps=5#2"]


def test_chunks_concatenate_to_one_run_and_only_the_focus_car_changes(scenario) -> None:
    ev = evaluate(scenario, ["fixed:laps=4", "fixed:laps=7"], 5, seed=4, chunk_replicas=2)
    assert ev.comparison.replicas == 5
    jobs = [
        ChunkJob(scenario, "1", "fixed:laps=4", 4, chunk=k, replicas=n, chunk_replicas=2)
        for k, n in enumerate([2, 2, 1])
    ]
    direct = Outcomes.concat([Outcomes.from_result(run_chunk(j), "1") for j in jobs])
    got = ev.outcomes["fixed:laps=4"]
    for name in vars(direct):
        assert np.array_equal(getattr(direct, name), getattr(got, name)), name
    # the strategy is applied to the focus car only: the others keep their defaults
    res = run_chunk(jobs[0])
    focus = res.car_numbers.index("1")
    assert res.strategy_names[focus] != res.strategy_names[res.car_numbers.index("2")]


def test_summary_figures_match_the_outcomes(scenario) -> None:
    ev = evaluate(scenario, ["fuel-reserve", "fixed:laps=4"], 6, seed=5, chunk_replicas=3)
    o = ev.outcomes["fuel-reserve"]
    s = ev.comparison.strategies[0]
    assert s.metrics["class_position"].estimate == pytest.approx(o.class_position.mean())
    assert s.metrics["class_win"].estimate == pytest.approx(np.mean(o.class_position == 1))
    assert s.metrics["pit_time_s"].estimate == pytest.approx(o.pit_time_s.mean())
    assert sum(s.overall_position_counts.values()) == 6
    d = ev.comparison.differences[0].metrics["laps"]
    other = ev.outcomes["fixed:laps=4"]
    assert d.estimate == pytest.approx(np.mean(other.laps - o.laps))
    table = format_table(ev.comparison)
    assert "fixed:laps=4 - fuel-reserve" in table and "CVaR10% class position" in table
    rows = list(csv.DictReader(io.StringIO(comparison_csv(ev.comparison))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["section"] for r in rows} == {"strategy", "difference", "distribution"}
    assert len([r for r in rows if r["section"] == "strategy"]) == 2 * len(METRIC_LABELS)


def test_precision_stops_early_and_interrupt_keeps_finished_chunks(scenario, monkeypatch) -> None:
    wide = evaluate(
        scenario, ["fuel-reserve"], 6, seed=6, chunk_replicas=2, precision=1e9, min_replicas=2
    )
    assert wide.comparison.stop_reason == "precision"
    assert wide.comparison.replicas == 2  # the first chunk already meets a huge width
    # below min_replicas it never stops early, however narrow the intervals look
    early = evaluate(
        scenario, ["fuel-reserve"], 6, seed=6, chunk_replicas=2, precision=1e9, min_replicas=4
    )
    assert early.comparison.stop_reason == "precision" and early.comparison.replicas == 4
    never = evaluate(scenario, ["fuel-reserve"], 4, seed=6, chunk_replicas=2, precision=1e9)
    assert never.comparison.stop_reason == "replicas" and never.comparison.replicas == 4

    class Interrupting(LocalBackend):
        """Ctrl-C arrives while the second round (chunk 1) is running."""

        calls = 0

        def map(self, jobs):
            for i, result in super().map(jobs):
                yield i, result
                if jobs[i].chunk == 1:
                    raise KeyboardInterrupt

    got = evaluate(
        scenario,
        ["fuel-reserve", "fixed:laps=4"],
        6,
        seed=6,
        chunk_replicas=2,
        backend=Interrupting(),
    )
    assert got.comparison.stop_reason == "interrupted"
    # chunk 0 finished for both strategies; chunk 1 only for the first: only chunk 0 is kept
    assert got.comparison.replicas == 2
    full = evaluate(scenario, ["fuel-reserve"], 2, seed=6, chunk_replicas=2)
    assert np.array_equal(got.outcomes["fuel-reserve"].laps, full.outcomes["fuel-reserve"].laps)


def test_cli_json_csv_and_errors(tmp_path, capsys) -> None:
    out_csv = tmp_path / "cmp.csv"
    out_json = tmp_path / "cmp.json"
    rc = main(
        [
            "test_race",
            "--strategy",
            "fuel-reserve",
            "--strategy",
            "fixed:laps=4",
            "--replicas",
            "4",
            "--chunk-replicas",
            "2",
            "--seed",
            "1",
            "--json",
            "--no-progress",
            "--csv",
            str(out_csv),
            "--out-json",
            str(out_json),
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["replicas"] == 4 and printed["car"] == "1"
    assert [s["label"] for s in printed["strategies"]] == ["fuel-reserve", "fixed:laps=4"]
    assert json.loads(out_json.read_text())["strategies"] == printed["strategies"]
    assert out_csv.read_text().startswith(",".join(CSV_COLUMNS))
    assert (
        main(
            [
                "test_race",
                "--strategy",
                "fuel-reserve",
                "--car",
                "99",
                "--replicas",
                "2",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "car '99' is not an entry" in capsys.readouterr().err
    assert main(["no_such_race", "--strategy", "fuel-reserve"]) == 2


def test_cli_is_registered() -> None:
    from engine.cli import SUBCOMMANDS

    assert SUBCOMMANDS["evaluate"][0] == "engine.evaluate"
    assert SUBCOMMANDS["whatif"][0] == "engine.whatif"
    assert ev_mod.main is main

"""Monte Carlo evaluation on the real engine (the tiny "test_race" scenario, few replicas)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest

from engine.actions import Fuel, Tyres
from engine.backends import ChunkJob, LocalBackend, run_chunk
from engine.baselines import make_strategy
from engine.commands.evaluate import main
from engine.evaluate import evaluate, strategy_labels
from engine.montecarlo import METRIC_LABELS, Outcomes, cvar
from engine.race import StrategyAssignment, simulate
from engine.report import CSV_COLUMNS, comparison_csv, format_table
from engine.scenario import load_scenario, scenario_with
from engine.whatif import PitAfter
from world_model.parametric import ParametricLapParams


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


def test_chunks_join_to_one_engine_run_and_only_the_focus_car_changes(scenario) -> None:
    ev = evaluate(scenario, ["fixed:laps=4"], 5, seed=4, chunk_replicas=2)
    assert ev.comparison.replicas == 5
    one_call = simulate(
        scenario,
        StrategyAssignment(per_car={"1": make_strategy("fixed:laps=4")}),
        5,
        4,
        chunk_replicas=2,
    )
    direct = Outcomes.from_result(one_call, "1")
    got = ev.outcomes["fixed:laps=4"]
    for name in vars(direct):
        assert np.array_equal(getattr(direct, name), getattr(got, name)), name
    # the strategy drives the focus car only: the others keep their scenario defaults
    assert one_call.strategy_names == ["fixed:laps=4"] + [e.strategy for e in scenario.entries[1:]]
    job = ChunkJob(scenario, "2", "fixed:laps=4", 4, chunk=0, replicas=1, chunk_replicas=2)
    assert run_chunk(job).strategy_names[:2] == ["fuel-reserve", "fixed:laps=4"]


def _closed_form_race(scenario, noise_scale: float):
    """Car 1 alone (no traffic), 10 laps, no incidents or weather, a 5 s minimum stop."""
    alone = dataclasses.replace(scenario, entries=scenario.entries[:1])
    return scenario_with(
        alone,
        **{
            "race.duration_h": None,
            "race.laps": 10,
            "events.incidents": False,
            "events.weather": False,
            "noise_scale": noise_scale,
            "rules.min_pit_time_s": 5.0,
        },
    )


@pytest.mark.parametrize("noise_scale", [0.0, 1.0])
def test_an_extra_stop_loses_its_closed_form_time(scenario, noise_scale: float) -> None:
    """An extra stop that adds no fuel, tyres or driver costs the pit lane's drive-through
    loss, the minimum stationary time and the parametric model's out-lap penalty."""
    race = _closed_form_race(scenario, noise_scale)
    base = "fuel-reserve"  # stops once, at lap 6, and has fuel to finish from there
    extra = PitAfter(8, base, fuel=Fuel.TO_FINISH, tyres=Tyres.KEEP, hold=False, name="extra")
    ev = evaluate(race, [base, extra], 16, seed=1, chunk_replicas=16)
    entry = race.entries[0]
    out_lap_s = ParametricLapParams().out_lap_time * entry.ref_lap_time_s
    expected_s = race.track.pit_lane_loss_s + race.rules.min_pit_time_s + out_lap_s
    d = ev.comparison.differences[0].metrics
    assert d["pit_stops"].estimate == 1.0 and d["laps"].estimate == 0.0
    assert d["pit_time_s"].estimate == pytest.approx(
        race.track.pit_lane_loss_s + race.rules.min_pit_time_s, abs=1e-3
    )
    lost = d["finish_time_s"]
    tol = 1e-3  # float32 lap times summed over a race
    assert lost.low - tol <= expected_s <= lost.high + tol
    if noise_scale == 0.0:  # deterministic laps: every replica loses exactly that
        assert lost.estimate == pytest.approx(expected_s, abs=tol)
        assert lost.high - lost.low < tol
    else:  # lap noise spreads it, pairing keeps the interval tight
        assert 0.0 < lost.half_width < 1.0


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


def test_first_chunk_continues_the_seeds_races(scenario) -> None:
    """Two rounds from chunk 0 and chunk 1 are the races one evaluation of both chunks runs."""
    whole = evaluate(scenario, ["fuel-reserve"], 8, seed=4, chunk_replicas=4).outcomes
    first = evaluate(scenario, ["fuel-reserve"], 4, seed=4, chunk_replicas=4).outcomes
    second = evaluate(
        scenario, ["fuel-reserve"], 4, seed=4, chunk_replicas=4, first_chunk=1
    ).outcomes
    joined = Outcomes.concat([first["fuel-reserve"], second["fuel-reserve"]])
    for name, values in vars(whole["fuel-reserve"]).items():
        np.testing.assert_array_equal(getattr(joined, name), values)
    assert not np.array_equal(
        first["fuel-reserve"].finish_time_s, second["fuel-reserve"].finish_time_s
    )
    with pytest.raises(ValueError, match="first_chunk"):
        evaluate(scenario, ["fuel-reserve"], 4, seed=4, first_chunk=-1)


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
    assert main(["test_race", "--strategy", "fuel-reserve", "--precision", "0"]) == 2
    assert "precision must be a positive width" in capsys.readouterr().err
    assert main(["test_race", "--strategy", "fuel-reserve", "--cvar-alpha", "0"]) == 2
    assert "CVaR level must lie in (0, 1]" in capsys.readouterr().err


def test_cli_reports_the_cvar_at_the_chosen_level(capsys, tmp_path) -> None:
    args = ["test_race", "--strategy", "fuel-reserve", "--replicas", "8", "--seed", "2"]
    args += ["--chunk-replicas", "4", "--no-progress"]
    out_csv = tmp_path / "half.csv"
    assert main([*args, "--cvar-alpha", "0.5", "--json", "--csv", str(out_csv)]) == 0
    half = json.loads(capsys.readouterr().out)
    levels = {(r["metric"], r["cvar_alpha"]) for r in csv.DictReader(out_csv.open())}
    assert ("cvar_class_position", "0.5") in levels
    assert {a for m, a in levels if m != "cvar_class_position"} == {""}
    assert main([*args, "--cvar-alpha", "0.25"]) == 0
    assert "CVaR25% class position" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert (half["cvar_alpha"], default["cvar_alpha"]) == (0.5, 0.1)
    counts = default["strategies"][0]["class_position_counts"]
    positions = np.repeat([int(p) for p in counts], list(counts.values()))
    for summary, alpha in ((half, 0.5), (default, 0.1)):
        got = summary["strategies"][0]["metrics"]["cvar_class_position"]["estimate"]
        assert got == pytest.approx(cvar(positions, alpha))


def test_cli_is_registered() -> None:
    from engine.cli import COMMAND_MODULES

    assert COMMAND_MODULES["evaluate"][0] == "engine.commands.evaluate"
    assert COMMAND_MODULES["whatif"][0] == "engine.commands.whatif"

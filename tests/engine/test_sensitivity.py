"""``stintsim sensitivity``: one risk parameter varied, the strategies' mean and tail."""

from __future__ import annotations

import json

import pytest

from engine.cli import main as cli_main
from engine.commands.sensitivity import format_rows, sensitivity
from engine.scenario import load_scenario, scenario_with
from tests.engine.test_whatif import _run_cli_block, readme_blocks


@pytest.fixture(scope="module")
def pushing_race():
    return scenario_with(load_scenario("test_race"), **{"risks.push.enabled": True})


def test_a_harsher_push_prior_costs_the_pushing_plan_and_not_the_other(pushing_race) -> None:
    rows = sensitivity(
        pushing_race,
        "risks.push.failure_factor",
        [1.0, 300.0],
        ["fuel-reserve", "fuel-reserve:pace=push"],
        48,
        seed=2,
        chunk_replicas=24,
    )
    assert [r.value for r in rows] == [1.0, 300.0]
    calm, harsh = rows
    # the plan that never pushes races the same races at either value
    assert calm.mean["fuel-reserve"] == harsh.mean["fuel-reserve"]
    # 300 x the failure hazard (~1 per hour) retires the pushing car in ~40 % of 30-minute races
    push = "fuel-reserve:pace=push"
    assert harsh.mean[push].estimate > calm.mean[push].estimate + 0.5
    assert harsh.cvar[push].estimate >= calm.cvar[push].estimate
    assert harsh.best_mean == "fuel-reserve"
    assert harsh.mean_vs_first[push].low > 0
    table = format_rows("risks.push.failure_factor", rows, 0.1)
    assert "CVaR10% class pos" in table and "300" in table


def test_cli_json_and_plot(tmp_path, capsys) -> None:
    plot = tmp_path / "sens.png"
    argv = [
        "sensitivity",
        "test_race",
        "--param",
        "risks.tyre_cliff.tread",
        "--values",
        "0.1,0.2",
        "--strategy",
        "fuel-reserve",
        "--strategy",
        "fixed:laps=4",
        "--replicas",
        "6",
        "--chunk-replicas",
        "6",
        "--json",
        "--plot",
        str(plot),
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["param"] == "risks.tyre_cliff.tread" and len(out["rows"]) == 2
    row = out["rows"][0]
    assert row["value"] == 0.1 and row["best_mean"] in ("fuel-reserve", "fixed:laps=4")
    labels = [s["label"] for s in row["strategies"]]
    assert labels == ["fuel-reserve", "fixed:laps=4"]
    assert set(row["strategies"][1]) >= {"class_position", "cvar_class_position", "cvar_vs_first"}
    assert plot.stat().st_size > 1000


def test_cli_bad_parameter_is_a_clear_error(capsys) -> None:
    argv = ["sensitivity", "test_race", "--param", "risks.pushy.factor", "--values", "1"]
    assert cli_main([*argv, "--strategy", "fuel-reserve", "--replicas", "2"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "pushy" in err and "Traceback" not in err


def test_readme_risk_examples_run(tmp_path, monkeypatch, capsys) -> None:
    blocks = readme_blocks("Risks: the gambles")
    assert {lang for lang, _ in blocks} >= {"bash", "toml"}
    monkeypatch.chdir(tmp_path)
    for lang, code in blocks:
        if lang == "bash":
            _run_cli_block(code)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["param"] == "risks.tyre_cliff.tread"

"""The tuned fixed plan: a sound grid, and the search picks the best candidate it measured."""

from __future__ import annotations

import json
import math

import pytest

from engine.baselines import make_strategy
from engine.commands.tune import _parser, main
from engine.evaluate import evaluate
from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario
from policies.tuned import (
    PACES,
    TYRE_STINTS,
    fixed_plan,
    stint_grid,
    tune_fixed_plan,
    verify,
)
from world_model.interface import PaceMode


def test_stint_grid_ends_at_the_longest_legal_stint() -> None:
    sc = load_scenario("test_race")
    grid = stint_grid(sc, "1")
    e = sc.entries[sc.entry_index("1")]
    use = max(e.ref_fuel_per_lap, e.ref_energy_per_lap)
    longest = grid[-1]
    # After `longest - 1` laps the car may stay out; after `longest` laps it may not.
    assert 1.0 - (longest - 1) * use >= sc.rules.fuel_margin * use
    assert 1.0 - longest * use < sc.rules.fuel_margin * use
    assert list(grid) == [longest - i for i in range(len(grid) - 1, -1, -1)]


def test_tuned_plan_name_is_a_strategy_spec_that_rebuilds_it() -> None:
    """engine.train prints the tuned plan by name; ``engine.evaluate --strategy NAME`` must
    rebuild the same plan, tyre interval included."""
    for laps, tyres, pace in ((27.0, 3.0, PaceMode.NORMAL), (12.5, 1.0, PaceMode.PUSH)):
        plan = fixed_plan(laps, tyres, pace)
        rebuilt = make_strategy(plan.name)
        assert (rebuilt.stint_laps, rebuilt.tyre_stints, rebuilt.pace) == (laps, tyres, pace)  # type: ignore[attr-defined]
    assert fixed_plan(27.0, 3.0).name == "fixed:laps=27,tyres=3"


def test_default_grid_spans_every_pace_and_reaches_past_triple_stinted_tyres() -> None:
    assert set(PACES) == set(PaceMode)
    assert max(TYRE_STINTS) > 3


def test_fixed_plan_stops_every_n_laps_on_a_clean_race() -> None:
    sc = load_scenario("test_race")
    from policies.dp import single_car_scenario

    solo = single_car_scenario(sc, laps=20)
    r = simulate(solo, StrategyAssignment(per_car={"1": fixed_plan(4.0, 2.0)}), 1, 0)
    assert int(r.pit_stops[0, 0]) == math.ceil(20 / 4) - 1


def test_search_returns_the_best_candidate() -> None:
    sc = load_scenario("test_race")
    tuned = tune_fixed_plan(
        sc, "1", 16, 99, stints=(5.0, 6.0), tyre_stints=(1.0, 2.0), paces=(PaceMode.NORMAL,)
    )
    assert len(tuned.table) == 4 and not tuned.by_cvar
    means = [row.class_position.estimate for row in tuned.table]
    assert means == sorted(means)
    assert tuned.best.name == tuned.table[0].plan
    assert {row.plan for row in tuned.table} == {
        f"fixed:laps={n},tyres={k}" for n in (5, 6) for k in (1, 2)
    }


def test_search_by_cvar_ranks_the_tail_then_the_mean() -> None:
    sc = load_scenario("test_race")
    tuned = tune_fixed_plan(
        sc,
        "1",
        24,
        98,
        stints=(4.0, 7.0),
        tyre_stints=(1.0,),
        paces=(PaceMode.SAVE, PaceMode.PUSH),
        by_cvar=True,
        cvar_alpha=0.25,
    )
    keys = [(r.cvar_class_position.estimate, r.class_position.estimate) for r in tuned.table]
    assert keys == sorted(keys)
    assert tuned.best.name == tuned.table[0].plan
    assert tuned.objective == "CVaR25% class position"
    with pytest.raises(ValueError, match="CVaR level"):
        tune_fixed_plan(sc, "1", 4, 0, stints=(4.0,), by_cvar=True, cvar_alpha=1.5)
    with pytest.raises(ValueError, match="another seed"):
        verify(sc, "1", tuned, 4, tuned.seed)


def test_racing_drops_only_plans_beaten_on_the_same_races_and_keeps_the_winner() -> None:
    sc = load_scenario("test_race")
    grid = dict(stints=(4.0, 6.0, 7.0), tyre_stints=(1.0,), paces=(PaceMode.NORMAL, PaceMode.PUSH))
    grid["chunk_replicas"] = 16  # small batches for a fast test
    full = tune_fixed_plan(sc, "1", 64, 3, **grid)
    raced = tune_fixed_plan(sc, "1", 64, 3, round_replicas=16, **grid)
    assert raced.round_replicas == 16 and full.round_replicas is None
    races = {row.plan: row.races for row in raced.table}
    assert set(races) == {row.plan for row in full.table}
    # Four-lap stints are far behind on test_race (about 2.8 against 1.0): dropped at the
    # first chance (32 races), while the full grid's winner runs every race and wins again.
    assert races["fixed:laps=4,tyres=1"] == races["fixed:laps=4,tyres=1,pace=push"] == 32
    assert sum(races.values()) < 64 * len(races)
    assert raced.best.name == full.best.name and races[raced.best.name] == 64
    # Rounds made of whole chunks run the full grid's races: a survivor's figures are its
    # figures there, and the survivors come first, in the full grid's order.
    kept = [row for row in raced.table if row.races == 64]
    assert kept == raced.table[: len(kept)]
    in_full = {row.plan: row for row in full.table}
    assert [row.plan for row in kept] == [
        r.plan for r in full.table if r.plan in races and races[r.plan] == 64
    ]
    for row in kept:
        assert row.class_position == in_full[row.plan].class_position
    # Every dropped plan was worse than the winner on the races both ran.
    winner = evaluate(sc, [raced.best], 32, 3, car="1", chunk_replicas=16).outcomes
    best_first32 = next(iter(winner.values())).class_position.mean()
    for row in raced.table[len(kept) :]:
        assert row.races == 32 and row.class_position.estimate > best_first32
    with pytest.raises(ValueError, match="at least one race"):
        tune_fixed_plan(sc, "1", 64, 3, round_replicas=0, **grid)
    with pytest.raises(ValueError, match="chunk_replicas must be positive"):
        tune_fixed_plan(sc, "1", 64, 3, **{**grid, "chunk_replicas": 0})


def test_cli_prints_every_plan_as_json_and_refuses_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["test_race", "--replicas", "8", "--stints", "5,6", "--tyre-stints", "2"]
    args += ["--paces", "normal,push", "--no-progress"]
    cvar = ["--objective", "cvar", "--cvar-alpha", "0.5", "--seed", "4"]
    assert main([*args, *cvar, "--json", "--verify", "6", "--verify-top", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["car"], out["replicas"], out["cvar_alpha"]) == ("1", 8, 0.5)
    assert len(out["plans"]) == 4 and out["best"] == out["plans"][0]["plan"]
    assert out["objective"] == "CVaR50% class position"
    # the two best, again on six races of the next seed, the CVaR at the search's level
    check = out["verification"]
    assert (check["replicas"], check["seed"], check["cvar_alpha"]) == (6, 5, 0.5)
    assert [s["label"] for s in check["strategies"]] == [r["plan"] for r in out["plans"][:2]]
    assert len(check["differences"]) == 1
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ranked by mean class position" in text and "best: fixed:laps=" in text
    assert main(["no_such_race"]) == 2
    assert "no_such_race" in capsys.readouterr().err
    assert main([*args, "--car", "99"]) == 2
    assert "99" in capsys.readouterr().err
    assert main([*args, "--verify", "-1"]) == 2
    assert "--verify takes a number of races" in capsys.readouterr().err
    assert main([*args, "--racing", "-4"]) == 2
    assert "--racing takes a number of races" in capsys.readouterr().err
    assert main([*args, "--racing", "4", "--json"]) == 0
    raced = json.loads(capsys.readouterr().out)
    assert raced["round_replicas"] == 4 and all(1 <= r["races"] <= 8 for r in raced["plans"])
    with pytest.raises(SystemExit) as exc:
        main([*args, "--paces", "flat-out"])
    assert exc.value.code == 2
    assert "save, normal, push" in capsys.readouterr().err


def test_readme_tune_examples_are_valid_and_the_small_one_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's tune commands parse as written; the test_race one runs (the six-hour ones
    take minutes, and their figures are measurements the README quotes)."""
    import shlex

    from engine.cli import main as stintsim
    from tests.engine.test_whatif import readme_blocks

    blocks = readme_blocks("Find the best fixed plan")
    if not blocks:
        pytest.skip("README.md has no tune section here")
    lines = [ln for _, code in blocks for ln in code.replace("\\\n", " ").splitlines() if ln]
    assert lines and all(ln.startswith("stintsim tune ") for ln in lines)
    parser = _parser()
    for line in lines:
        parser.parse_args(shlex.split(line)[2:])  # exits with usage on an unknown option
    small = [ln for ln in lines if " test_race " in ln]
    assert small
    for line in small:
        assert stintsim([*shlex.split(line)[1:], "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["replicas"] == 8

"""``stintsim plan``: the pit-wall table, the plan: file it writes, and that file runs as
written (refused, or changed and counted, where a race forbids it; never silently)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.actions import Fuel, Tyres
from engine.baselines import make_strategy
from engine.commands.plan import fill_notes, main
from engine.evaluate import evaluate
from engine.pitwall import hms, make_plan, race_plan
from engine.plan_file import Plan, PlanRefused, PlanStop, PlanStrategy, load_plan
from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario, scenario_with
from policies.tuned import fixed_plan
from world_model.interface import PaceMode


@pytest.fixture(scope="module")
def race():
    return load_scenario("test_race")


def test_hms() -> None:
    assert [hms(0), hms(59.6), hms(3725), hms(86399)] == [
        "0:00:00",
        "0:01:00",
        "1:02:05",
        "23:59:59",
    ]


def test_plan_table_of_a_fixed_plan(race, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.toml"
    argv = ["test_race", "--strategy", "fixed:laps=6,tyres=1", "--replicas", "4", "--seed", "3"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    plan = load_plan(out)
    assert [s["lap"] for s in table["stops"]] == [s.lap for s in plan.stops][: len(table["stops"])]
    first, second = table["stops"][:2]
    assert (first["lap"], second["lap"]) == (6, 12)
    # a tank for about 7 laps, 12 to go: the first fill is to the top, an absolute 100 %;
    # new tyres and a new driver every stint
    assert first["fuel_to"] == pytest.approx(1.0) and first["energy_to"] == pytest.approx(1.0)
    assert first["tyres"] == second["tyres"] == "4 new medium"
    assert first["driver_in"] == "A. Two" and second["driver_in"] == "A. One"
    # the window holds the written lap; times read as h:mm:ss in race order
    assert first["lap_window"][0] <= 6 <= first["lap_window"][1]
    assert first["entry"][0] <= first["entry"][1] and first["entry"][0].startswith("0:1")
    assert first["stop_time_s"] > race.track.pit_lane_loss_s
    assert 0 <= table["risks"]["p_running_dry"] <= 1
    assert len(table["class_position"]) == 4


def test_written_plan_runs_the_same_races_through_evaluate(race, tmp_path: Path) -> None:
    p = make_plan(race, "1", make_strategy("fixed:laps=5,tyres=1"), 8, 5)
    path = tmp_path / "p.toml"
    path.write_text(p.plan.to_toml())
    ev = evaluate(race, [f"plan:{path}"], 8, 5, car="1")
    (out,) = ev.outcomes.values()
    assert out.class_position.tolist() == p.result.class_position[:, 0].tolist()


def test_a_plan_the_race_cannot_run_is_refused_with_the_stop_and_reason(race) -> None:
    quiet = scenario_with(race, **{"events.incidents": False, "events.weather": False})
    too_long = Plan(stops=(PlanStop(lap=20),))  # fuel lasts about 7 laps
    with pytest.raises(PlanRefused, match=r"at lap \d of race 0 .*: the car must stop"):
        race_plan(quiet, "1", too_long, 2, 1)
    # one driver, never changed, reaches the 1200 s stint limit before lap 12 (with the
    # rules' margin for the lap to come): the written "stay out" is refused there
    keeps = Plan(stops=(PlanStop(lap=6), PlanStop(lap=12)))
    with pytest.raises(PlanRefused, match=r"at lap (8|9|10|11) .*driving-time limits"):
        race_plan(quiet, "1", keeps, 2, 1)
    # adapt: the race changes it where it must, and says where and why
    _, strategy = race_plan(quiet, "1", Plan(keeps.stops, on_conflict="adapt"), 2, 1)
    assert strategy.changed_races == {0, 1}
    assert any("driving-time limits" in why for _, why in strategy.conflicts)


def test_strict_plan_is_refused_by_the_command(capsys) -> None:
    # nine-lap stints leave the tank near empty, and lap noise moves the laps it lasts from
    # race to race: the written plan (the most common stops) is not what every race allows
    spec = "fixed:laps=9,tyres=3"
    assert (
        main(["test_race", "--strategy", spec, "--replicas", "8", "--seed", "1", "--strict"]) == 2
    )
    err = capsys.readouterr().err
    assert "plan refused" in err and "cannot be run as written at lap" in err


def test_plan_file_format_round_trips_and_names_bad_keys(tmp_path: Path) -> None:
    plan = Plan(
        stops=(
            PlanStop(lap=9, tyres=Tyres.FOUR_SOFT, driver_change=True),
            PlanStop(lap=18, fuel=Fuel.TO_FINISH, pace=PaceMode.PUSH),
        ),
        pace=PaceMode.SAVE,
        on_conflict="adapt",
    )
    path = tmp_path / "p.toml"
    path.write_text(plan.to_toml("a header"))
    assert load_plan(path) == plan
    path.write_text("[[stop]]\nlap = 9\n\n[[stop]]\nlap = 4\n")
    with pytest.raises(ValueError, match=r"stop\[1\]: lap 4 is not after the previous stop's 9"):
        load_plan(path)
    path.write_text('[[stop]]\nlap = 9\nfuel = "half"\n')
    with pytest.raises(ValueError, match=r"stop\[0\]: fuel: expected one of none, full"):
        load_plan(path)


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    stint=st.integers(3, 7),
    tyres=st.integers(1, 3),
    pace=st.sampled_from(list(PaceMode)),
    seed=st.integers(0, 10_000),
)
def test_every_printed_plan_runs_as_written_from_its_file(
    race, tmp_path: Path, stint: int, tyres: int, pace: PaceMode, seed: int
) -> None:
    """Property: the plan ``plan`` prints, run from its file by ``plan:FILE``, gives the same
    races; and in every race the race did not change, the car stops exactly at the written
    laps it reaches."""
    p = make_plan(race, "1", fixed_plan(stint, tyres, pace), 3, seed)
    path = tmp_path / f"plan_{stint}_{tyres}_{int(pace)}_{seed}.toml"
    path.write_text(p.plan.to_toml())
    again = simulate(
        race,
        StrategyAssignment(per_car={"1": make_strategy(f"plan:{path}")}),
        3,
        seed,
        record_laps=True,
        chunk_replicas=128,
    )
    for name in ("class_position", "finish_time_s", "laps_completed", "pit_stops", "retired"):
        assert np.array_equal(getattr(again, name), getattr(p.result, name)), name
    laps = again.laps
    assert laps is not None
    written = [s.lap for s in p.plan.stops]
    for r in range(3):
        mine = (laps["car"] == 0) & (laps["replica"] == r)
        stops = laps["lap"][mine & (laps["pit_in"] == 1)].tolist()
        done = int(laps["lap"][mine].max())
        if r not in p.changed_races:
            # every written stop before its last lap; the one at its last lap too if the car
            # then retired on the out-lap (the chequered flag ends a race at the line)
            reached = ([w for w in written if w < done], [w for w in written if w <= done])
            assert stops in reached, (r, stops, written)
        else:  # a race that changed the plan is counted, with the lap and the reason
            assert p.p_changed_by_race > 0 and p.conflicts


FILLS = [f for f in Fuel if f != Fuel.NONE]
"""Every fill type a plan file can hold (a new member of the action table's Fuel is covered)."""


def _written(stints: list[int], fills: list[Fuel], tyres: list[Tyres], drivers: list[bool]):
    laps = np.cumsum(stints).tolist()
    stops = tuple(
        PlanStop(lap=lap, fuel=f, tyres=t, driver_change=d)
        for lap, f, t, d in zip(laps, fills, tyres, drivers, strict=False)
    )
    return PlanStrategy(name="plan:drawn", plan=Plan(stops=stops, on_conflict="adapt"))


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    stints=st.lists(st.integers(4, 6), min_size=3, max_size=3),
    fills=st.lists(st.sampled_from(FILLS), min_size=3, max_size=3),
    tyres=st.lists(
        st.sampled_from([Tyres.KEEP, Tyres.FOUR_MEDIUM, Tyres.TWO_SAME]), min_size=3, max_size=3
    ),
    drivers=st.lists(st.booleans(), min_size=3, max_size=3),
    seed=st.integers(0, 10_000),
)
def test_printed_plans_of_every_fill_type_run_as_written_from_their_file(
    race, tmp_path: Path, stints, fills, tyres, drivers, seed: int
) -> None:
    """Property, for plans whose stops take every fill type (drawn per stop): the plan that
    ``plan`` prints, run from its file, gives the same races, and the file names the level
    every stop fills to."""
    p = make_plan(race, "1", _written(stints, fills, tyres, drivers), 3, seed)
    path = tmp_path / f"plan_{seed}_{'_'.join(str(int(f)) for f in fills)}.toml"
    path.write_text(p.plan.to_toml("drawn", fill_notes(p)))
    assert load_plan(path) == p.plan  # the notes are comments: the plan is unchanged
    again = simulate(
        race,
        StrategyAssignment(per_car={"1": make_strategy(f"plan:{path}")}),
        3,
        seed,
        record_laps=True,
        chunk_replicas=128,
    )
    for name in ("class_position", "finish_time_s", "laps_completed", "pit_stops", "retired"):
        assert np.array_equal(getattr(again, name), getattr(p.result, name)), name
    text = path.read_text()
    for row in p.stops:
        assert f"# stop {row.stop}: fills fuel to {100 * row.fuel_to:.1f} %" in text


def test_the_drawn_plans_cover_every_fill_type(race) -> None:
    """The property above sees each fill type written in a printed plan."""
    seen = set()
    for fill in FILLS:
        p = make_plan(
            race, "1", _written([5, 5, 5], [fill] * 3, [Tyres.KEEP] * 3, [True] * 3), 2, 1
        )
        seen |= {s.fuel for s in p.plan.stops[:-1]}  # the last may become a fill to finish
    assert seen == set(FILLS)


def test_the_plan_file_says_the_level_each_stop_fills_to(tmp_path: Path, capsys) -> None:
    source = tmp_path / "source.toml"
    source.write_text(
        Plan(
            stops=(
                PlanStop(lap=6, fuel=Fuel.FULL, tyres=Tyres.FOUR_MEDIUM, driver_change=True),
                PlanStop(lap=12, fuel=Fuel.TO_FINISH, tyres=Tyres.FOUR_MEDIUM, driver_change=True),
            )
        ).to_toml()
    )
    out = tmp_path / "plan.toml"
    argv = ["test_race", "--strategy", f"plan:{source}", "--replicas", "4", "--seed", "3"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    text = out.read_text()
    assert [s.fuel for s in load_plan(out).stops] == [Fuel.FULL, Fuel.TO_FINISH]
    for row in table["stops"]:
        level = (
            f"fills fuel to {100 * row['fuel_to']:.1f} %, energy to {100 * row['energy_to']:.1f} %"
        )
        assert f"# stop {row['stop']}: {level} (median of 4 races, seed 3)" in text
    # the fill to the finish stops short of the top: the level is the one to set, not "full"
    assert table["stops"][1]["fuel_to"] < 1.0

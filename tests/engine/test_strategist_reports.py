"""Reports a strategist reads: finish times as h:mm:ss, and the Gantt's stops with their lap,
time in the pit lane, fill level and new tyres (a change on the same compound too); charts of
a 62-car field that show the focus car and its rivals, neutralisations shaded, retirements
with their cause. The figures' artists are checked, not pixels."""

from __future__ import annotations

import numpy as np
import pytest

from engine.evaluate import sample_races
from engine.forcing import parse_events
from engine.montecarlo import Interval
from engine.plots import position_chart, strategy_gantt
from engine.plots._laps import NEUTRAL_STYLES, neutralisations
from engine.plots.gantt import stops
from engine.report import format_interval
from engine.result import RETIRE_WORDS, retirements
from engine.scenario import load_scenario, scenario_with
from world_model.interface import FlagState


def test_finish_times_read_as_race_clock_and_differences_stay_seconds() -> None:
    iv = Interval(3725.4, 3700.0, 3751.0)
    assert format_interval("finish_time_s", iv) == "1:02:05 [1:01:40, 1:02:31]"
    assert format_interval("finish_time_s", iv, signed=True) == "+3725.4 [+3700.0, +3751.0]"


def test_gantt_stops_name_lap_lane_time_fill_and_new_tyres() -> None:
    # laps 1-6; stops at the end of lap 2 (fill to 100 %, new tyres of the same compound)
    # and lap 4 (fill to 40 %, tyres kept)
    laps = {
        "lap": np.array([1, 2, 3, 4, 5, 6]),
        "race_time_s": np.array([100.0, 200.0, 330.0, 430.0, 560.0, 660.0]),
        "pit_in": np.array([0, 1, 0, 1, 0, 0]),
        "pit_time_s": np.array([np.nan, np.nan, 31.0, np.nan, 28.5, np.nan]),
        "fuel_start": np.array([1.0, 0.8, 1.0, 0.8, 0.4, 0.2]),
        "tyre_age_laps": np.array([1, 2, 1, 2, 3, 4]),
        "compound": np.array([1, 1, 1, 1, 1, 1]),
    }
    assert stops(laps) == [(200.0, 2, 31.0, 1.0, True), (430.0, 4, 28.5, 0.4, False)]


@pytest.fixture(scope="module")
def le_mans():
    """45 minutes of the 62-car Le Mans field with an FCY at 0:06:00-0:09:00, a safety car at
    0:20:00 and car 51 failing at 0:10:00 forced (the race may add its own), every lap
    recorded."""
    sc = scenario_with(load_scenario("lemans_24h"), **{"race.duration_h": 0.75})
    forced = parse_events(["fcy@6m-9m", "sc@20m", "failure:51@10m"])
    races = sample_races(sc, ["fuel-reserve"], seed=1, replicas=1, forced=forced)
    return sc, races["fuel-reserve"]


def _spans(ax) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for patch in ax.patches:
        gid = patch.get_gid() or ""
        if gid.startswith("neutral:"):
            kinds[gid[8:]] = kinds.get(gid[8:], 0) + 1
    return kinds


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_position_chart_of_62_cars_shows_the_focus_and_its_nearest_rivals(le_mans) -> None:
    sc, result = le_mans
    assert result.n_cars == 62
    focus = sc.focus_car
    klass = result.car_classes[result.car_numbers.index(focus)]
    in_class = sum(k == klass for k in result.car_classes)
    fig = position_chart(result, 0, focus, max_cars=6)
    ax_pos, ax_gap = fig.axes
    cars = [t for t in _legend(ax_pos) if t.startswith("#")]
    assert len(cars) == 6 and cars[0].startswith(f"#{focus}")
    # the whole class is drawn (the rest faint and unlabelled), no other class
    for ax in (ax_pos, ax_gap):
        lines = [ln for ln in ax.get_lines() if ln.get_marker() in ("None", None, "")]
        assert len(lines) == in_class
        assert sum(not ln.get_label().startswith("_") for ln in lines) == 6
    # the rivals are the class cars that finished nearest the focus car
    position = result.class_position[0]
    mine = int(position[result.car_numbers.index(focus)])
    shown = [result.car_numbers.index(t.split(" ")[0][1:]) for t in cars]
    rest = [
        c
        for c, k in enumerate(result.car_classes)
        if k == klass and c not in shown and not np.isnan(position[c])
    ]
    assert max(abs(int(position[c]) - mine) for c in shown) <= min(
        abs(int(position[c]) - mine) for c in rest
    )
    # every neutralisation of the race is shaded on both charts and named once in the legend
    periods = neutralisations(result, 0)
    kinds = {FlagState(k).name.lower() for k, _, _ in periods}
    assert {"safety_car", "fcy"} <= kinds and len(periods) >= 2
    for ax in (ax_pos, ax_gap):
        assert sum(_spans(ax).values()) == len(periods) and set(_spans(ax)) == kinds
    assert {"safety car", "full-course yellow", "slow zone"} & set(_legend(ax_pos)) == {
        NEUTRAL_STYLES[k][0] for k, _, _ in periods
    }
    # race time reads as the race clock
    assert ax_gap.xaxis.get_major_formatter()(1 / 3, 0) == "0:20:00"


def test_gantt_shades_neutralisations_and_names_retirement_causes(le_mans) -> None:
    sc, result = le_mans
    fig = strategy_gantt(result, 0, sc.focus_car)
    ax = fig.axes[0]
    periods = neutralisations(result, 0)
    assert sum(_spans(ax).values()) == len(periods)
    assert "safety car" in _legend(ax)
    out = retirements(result, 0)
    assert len(out) == int(result.retired[0].sum()) >= 1
    assert out[result.car_numbers.index("51")] == (600.0, "failure")
    causes = [t.get_text() for t in ax.texts if t.get_color() == "#b00020"]
    assert sorted(causes) == sorted(cause for _, cause in out.values())
    assert all(cause in RETIRE_WORDS.values() or cause == "retired" for cause in causes)
    assert "retired (cause)" in _legend(ax) and ax.get_xlabel() == "race time [h:mm:ss]"


def test_simulate_classification_reads_the_race_clock(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.commands.simulate import main as simulate

    assert simulate(["test_race", "--seed", "1", "--no-progress"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:7]]
    # a 30-minute race: every finisher's time is h:mm:ss just past 0:30:00
    assert all(row[5].startswith("0:3") and row[5].count(":") == 2 for row in rows), rows


def test_gantt_marks_new_tyres_on_the_same_compound() -> None:
    from engine.plots._laps import HOUR_S, car_rows, race_laps

    race = load_scenario("test_race")
    result = sample_races(race, ["fixed:laps=5,tyres=1"], seed=2, replicas=1)[
        "fixed:laps=5,tyres=1"
    ]
    laps = car_rows(race_laps(result, 0), 0)
    made = stops(laps)
    fresh = [at / HOUR_S for at, _, _, _, new in made if new]
    # every stop changes tyres, and the car runs mediums all race: the same compound
    assert len(fresh) == len(made) >= 2 and set(laps["compound"].tolist()) == {1}
    ax = strategy_gantt(result, 0, "1").axes[0]
    top = (
        len(result.car_numbers)
        - 1
        - sorted(range(result.n_cars), key=lambda c: int(result.finish_position[0, c])).index(0)
    )
    marks = [
        ln
        for ln in ax.get_lines()
        if ln.get_marker() == "^" and np.allclose(ln.get_ydata(), top - 0.42)
    ]
    assert len(marks) == 1 and np.allclose(marks[0].get_xdata(), fresh)
    assert "new tyres" in _legend(ax)

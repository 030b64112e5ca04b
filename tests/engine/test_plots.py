"""Race and outcome figures show what they claim: series, bars, labels and legends."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from engine.evaluate import evaluate, sample_races
from engine.plots import (
    fuel_and_tyre_traces,
    outcome_distributions,
    position_chart,
    strategy_gantt,
)
from engine.plots._laps import NEUTRAL_STYLES, car_rows, race_laps
from engine.plots.gantt import driver_changes, stints
from engine.plots.positions import gaps_to_class_leader
from engine.scenario import load_scenario

matplotlib.use("Agg")

STRATEGIES = ["fuel-reserve", "fixed:laps=4"]
NEUTRAL_LABELS = {label for label, _ in NEUTRAL_STYLES.values()}


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


@pytest.fixture(scope="module")
def races(scenario):
    return sample_races(scenario, STRATEGIES, seed=2, replicas=2)


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_stints_and_driver_changes_from_hand_made_laps() -> None:
    laps = {
        "lap": np.arange(1, 7),
        "lap_time_s": np.array([100.0, 100, 130, 104, 100, 100]),
        "race_time_s": np.array([100.0, 200, 330, 434, 534, 634]),
        "pit_in": np.array([0, 0, 1, 0, 0, 0], dtype=bool),
        "compound": np.array([1, 1, 1, 0, 0, 0]),
        "driver": np.array([0, 0, 0, 1, 1, 1]),
    }
    assert stints(laps) == [(0.0, 330.0, 1), (330.0, 634.0, 0)]
    assert driver_changes(laps).tolist() == [330.0]


def test_gantt_draws_one_row_per_car_and_one_bar_per_stint(races) -> None:
    result = races["fuel-reserve"]
    fig = strategy_gantt(result, 0, focus="1")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "race time [h:mm:ss]"
    assert "Strategy Gantt" in ax.get_title() and "car #1: fuel-reserve" in ax.get_title()
    rows = ax.collections
    assert len(rows) == len(result.car_numbers)
    laps = race_laps(result, 0)
    expected = {f"#{n}": len(stints(car_rows(laps, i))) for i, n in enumerate(result.car_numbers)}
    assert {c.get_label(): len(c.get_paths()) for c in rows} == expected
    # every car stops in a 30-minute race on a 7-lap tank: more than one stint each
    assert all(n >= 2 for n in expected.values())
    legend = _legend(ax)
    compounds = {int(k) for k in laps["compound"]}
    marks = ("driver change", "new tyres", "retired (cause)", *NEUTRAL_LABELS)
    assert len([t for t in legend if t not in marks]) == len(compounds)
    any_change = any(driver_changes(car_rows(laps, i)).size for i in range(result.n_cars))
    assert ("driver change" in legend) == any_change
    ticks = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()), strict=True))
    finish = result.classification(0)
    assert ticks[max(ticks)].startswith(f"#{finish[0]['number']} ")  # winner on top
    assert ticks[min(ticks)].startswith(f"#{finish[-1]['number']} ")
    bold = [t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"]
    assert bold == ["#1 HYPERCAR"]


def test_position_chart_has_one_line_per_class_car_and_leader_gap_zero(races) -> None:
    result = races["fuel-reserve"]
    fig = position_chart(result, 1, "1")
    ax_pos, ax_gap = fig.axes
    hyper = [
        n for n, k in zip(result.car_numbers, result.car_classes, strict=True) if k == "HYPERCAR"
    ]
    cars_in_legend = [t.split(" (")[0] for t in _legend(ax_pos) if t not in NEUTRAL_LABELS]
    # the focus car first, then its rivals nearest it at the finish
    assert cars_in_legend[0] == "#1" and sorted(cars_in_legend) == sorted(f"#{n}" for n in hyper)
    assert len(ax_pos.get_lines()) == len(ax_gap.get_lines()) == len(hyper)
    assert ax_pos.yaxis_inverted()
    assert ax_pos.get_ylabel() == "class position"
    assert ax_gap.get_ylabel() == "gap to class leader [s]"
    laps = race_laps(result, 1)
    cars = [result.car_numbers.index(n) for n in hyper]
    gaps = gaps_to_class_leader(laps, cars)
    assert min(float(g.min()) for g in gaps.values()) == 0.0
    assert all(float(g.min()) >= 0.0 for g in gaps.values())
    # the plotted gap line of the focus car is exactly the computed gap
    assert np.allclose(ax_gap.get_lines()[0].get_ydata(), gaps[cars[0]])


def test_outcome_distributions_side_by_side(scenario) -> None:
    ev = evaluate(scenario, STRATEGIES, 4, seed=3, chunk_replicas=4)
    fig = outcome_distributions(ev.outcomes)
    ax_class, ax_overall, ax_laps = fig.axes
    assert _legend(ax_class) == STRATEGIES
    assert len(ax_class.containers) == len(ax_overall.containers) == len(STRATEGIES)
    positions = np.unique(np.concatenate([o.class_position for o in ev.outcomes.values()]))
    for bars in ax_class.containers:
        assert len(bars) == len(positions)
        assert sum(b.get_height() for b in bars) == pytest.approx(1.0)
    assert ax_class.get_xlabel() == "class position" and ax_laps.get_ylabel() == "laps completed"
    assert [t.get_text() for t in ax_laps.get_xticklabels()] == STRATEGIES
    assert "4 races per strategy" in fig.get_suptitle()


def test_fuel_energy_and_tread_traces(races) -> None:
    fig = fuel_and_tyre_traces(races, 0, "1")
    ax_fuel, ax_energy, ax_tread = fig.axes  # test_race cars have a virtual-energy allocation
    for ax in fig.axes:
        assert len(ax.get_lines()) == len(STRATEGIES)
    assert _legend(ax_fuel) == STRATEGIES
    assert ax_fuel.get_ylabel() == "fuel left [tank]"
    assert ax_energy.get_ylabel() == "energy left [allocation]"
    assert (
        ax_tread.get_ylabel() == "mean tread left"
        and ax_tread.get_xlabel() == "race time [h:mm:ss]"
    )
    fuel = ax_fuel.get_lines()[0].get_ydata()
    assert np.all((fuel >= 0) & (fuel <= 1))
    # refuelling shows: the fuel trace rises at least once
    assert np.any(np.diff(fuel) > 0)

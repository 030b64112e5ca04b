"""Issue 20, case 11: confidence intervals never leave the possible range."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.commands import evaluate as evaluate_cmd
from engine.montecarlo import PROPORTION_METRICS, Interval, Outcomes, compare
from engine.report import CLIPPED_NOTE, format_table


def _outcomes(class_position: list[int], won_twice: bool = False) -> Outcomes:
    pos = np.asarray(class_position, dtype=np.int64)
    n = pos.size
    return Outcomes(
        class_position=pos,
        overall_position=pos + 2,
        laps=np.full(n, 18),
        pit_stops=np.full(n, 2),
        pit_time_s=np.full(n, 60.0),
        finish_time_s=np.linspace(1800.0, 1810.0, n),
        retired=np.zeros(n, dtype=bool),
        retire_cause=np.zeros(n, dtype=np.int8),
        class_size=np.full(n, 4),
        field_size=np.full(n, 9),
    )


def test_case11_class_positions_and_probability_differences_stay_possible() -> None:
    a = _outcomes([3, 2, 3, 4])
    b = _outcomes([1, 1, 1, 2])
    cmp = compare("test_race", "1", 0, [("a", "a", a), ("b", "b", b)], n_resamples=200)
    pos = cmp.strategies[1].metrics["class_position"]
    assert pos.low >= 1.0 and pos.high <= 4.0 and pos.clipped
    win = cmp.differences[0].metrics["class_win"]  # 0 of 4 wins against 3 of 4
    assert win.low >= -1.0 and win.high <= 1.0 and win.clipped
    diff = cmp.differences[0].metrics["class_position"]
    assert diff.low >= -3.0 and diff.high <= 3.0
    for s in cmp.strategies:
        for name in PROPORTION_METRICS:
            assert s.metrics[name].low >= 0.0 and s.metrics[name].high <= 1.0
    text = format_table(cmp)
    assert CLIPPED_NOTE in text and "]*" in text
    assert cmp.to_dict()["strategies"][1]["metrics"]["class_position"]["clipped"] is True


def test_case11_an_interval_inside_the_range_is_left_alone() -> None:
    iv = Interval(2.0, 1.5, 2.5)
    assert iv.within(1.0, 4.0) is iv and "clipped" not in iv.to_dict()
    cut = Interval(1.2, 0.4, 2.0).within(1.0, 4.0)
    assert (cut.low, cut.high, cut.clipped) == (1.0, 2.0, True)


def test_case11_readme_sized_evaluation_has_possible_intervals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["test_race", "--strategy", "fuel-reserve", "--strategy", "fixed:laps=4"]
    args += ["--replicas", "4", "--seed", "3", "--json", "--no-progress"]
    assert evaluate_cmd.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for s in out["strategies"]:
        iv = s["metrics"]["class_position"]
        if iv["low"] is not None:
            assert iv["low"] >= 1.0 and iv["high"] <= 10  # test_race classes are smaller
    for d in out["differences"]:
        for name in ("class_win", "class_podium", "retired"):
            iv = d["metrics"][name]
            if iv["low"] is not None:
                assert iv["low"] >= -1.0 and iv["high"] <= 1.0

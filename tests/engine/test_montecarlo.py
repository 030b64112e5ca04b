"""Paired Monte Carlo statistics: estimates, interval coverage, CVaR and exact zero twins."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.montecarlo import (
    CVAR_METRIC,
    METRIC_LABELS,
    Outcomes,
    compare,
    cvar,
    cvar_interval,
    mean_interval,
    metric_labels,
    paired_cvar_difference,
    paired_difference,
    proportion_interval,
)


def _outcomes(rng: np.random.Generator, n: int, shift: float = 0.0) -> Outcomes:
    pos = rng.integers(1, 9, size=n)
    return Outcomes(
        class_position=pos,
        overall_position=pos + 3,
        laps=rng.integers(90, 100, size=n),
        pit_stops=rng.integers(3, 6, size=n),
        pit_time_s=rng.normal(300, 20, size=n),
        finish_time_s=rng.normal(21600, 30, size=n) + shift,
        retired=(retired := rng.random(n) < 0.1),
        retire_cause=np.where(retired, rng.integers(0, 4, size=n), 0).astype(np.int8),
    )


def test_cvar_matches_hand_computed_values() -> None:
    x = np.arange(1, 11)
    assert cvar(x, 0.1) == pytest.approx(10.0)
    # worst 2.5 of 10: 10 + 9 + half of 8, over 2.5
    assert cvar(x, 0.25) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)
    assert cvar(x, 1.0) == pytest.approx(x.mean())


def test_cvar_is_vectorised_along_an_axis() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 23))
    rows = cvar(x, 0.1, axis=1)
    assert np.allclose(rows, [cvar(r, 0.1) for r in x])


def test_t_interval_covers_the_true_mean_at_its_level() -> None:
    rng = np.random.default_rng(2)
    trials, n = 400, 30
    hits = 0
    for _ in range(trials):
        iv = mean_interval(rng.normal(5.0, 2.0, size=n))
        hits += iv.low <= 5.0 <= iv.high
    # 95 % coverage; 4 binomial standard deviations of tolerance
    sd = math.sqrt(0.95 * 0.05 / trials)
    assert abs(hits / trials - 0.95) < 4 * sd


def test_degenerate_intervals() -> None:
    iv = mean_interval(np.full(10, 3.0))
    assert (iv.estimate, iv.low, iv.high) == (3.0, 3.0, 3.0)
    one = mean_interval(np.array([2.0]))
    assert one.estimate == 2.0 and math.isnan(one.low)
    assert one.to_dict()["low"] is None


def test_wilson_interval_is_inside_zero_one_and_contains_the_share() -> None:
    none = proportion_interval(np.zeros(20))
    assert none.estimate == 0.0 and none.low == pytest.approx(0.0) and 0.0 < none.high < 0.25
    some = proportion_interval(np.array([1] * 7 + [0] * 13))
    assert some.low < 0.35 < some.high


def test_bootstrap_cvar_interval_is_reproducible_and_brackets_the_estimate() -> None:
    x = np.random.default_rng(3).integers(1, 12, size=200)
    a = cvar_interval(x, np.random.default_rng(9))
    b = cvar_interval(x, np.random.default_rng(9))
    assert a == b
    assert a.low <= a.estimate <= a.high
    assert a.high - a.low > 0


def test_identical_strategies_give_exactly_zero_differences() -> None:
    a = _outcomes(np.random.default_rng(4), 64)
    d = paired_difference("A", a, "B", a, np.random.default_rng(0))
    assert set(d.metrics) == set(METRIC_LABELS)
    for name, iv in d.metrics.items():
        assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0), name


def test_pairing_removes_the_shared_spread() -> None:
    rng = np.random.default_rng(5)
    a = _outcomes(rng, 100)
    noise = np.random.default_rng(6).normal(0, 0.5, size=100)
    b = Outcomes(**{**vars(a), "finish_time_s": a.finish_time_s + 40.0 + noise})
    d = paired_difference("A", a, "B", b, np.random.default_rng(0))
    diff = d.metrics["finish_time_s"]
    assert diff.low < 40.0 < diff.high
    # the unpaired spread of each arm is ~30 s; the paired one ~0.5 s
    unpaired = mean_interval(b.finish_time_s).half_width + mean_interval(a.finish_time_s).half_width
    assert diff.half_width < unpaired / 10


def test_paired_cvar_difference_sign() -> None:
    a = np.random.default_rng(7).integers(1, 10, size=300)
    worse = paired_cvar_difference(a, a + 2, np.random.default_rng(1))
    assert worse.estimate == pytest.approx(2.0)
    assert worse.low == pytest.approx(2.0) and worse.high == pytest.approx(2.0)
    b = np.where(a > 7, a + 3, a)  # only the bad tail gets worse
    tail = paired_cvar_difference(a, b, np.random.default_rng(1))
    assert tail.estimate > 0 and tail.low <= tail.estimate <= tail.high


def test_compare_summaries_are_json_and_track_precision() -> None:
    rng = np.random.default_rng(8)
    a, b = _outcomes(rng, 50), _outcomes(rng, 50)
    comp = compare("test_race", "7", 11, [("A", "fixed", a), ("B", "other", b)])
    d = comp.to_dict()
    json.dumps(d)  # serialisable as-is
    assert d["replicas"] == 50 and len(d["strategies"]) == 2 and len(d["differences"]) == 1
    s = comp.strategies[0]
    assert sum(s.class_position_counts.values()) == 50
    assert s.metrics["class_win"].estimate == pytest.approx(np.mean(a.class_position == 1))
    assert s.metrics[CVAR_METRIC].estimate == pytest.approx(cvar(a.class_position))
    assert comp.class_position_half_width() == max(
        comp.strategies[0].metrics["class_position"].half_width,
        comp.strategies[1].metrics["class_position"].half_width,
        comp.differences[0].metrics["class_position"].half_width,
    )
    # the same seed reproduces the bootstrap intervals
    again = compare("test_race", "7", 11, [("A", "fixed", a), ("B", "other", b)])
    assert again.to_dict() == d


def test_outcomes_concat_and_unequal_pairs() -> None:
    rng = np.random.default_rng(9)
    a, b = _outcomes(rng, 5), _outcomes(rng, 7)
    joined = Outcomes.concat([a, b])
    assert len(joined) == 12
    assert np.array_equal(joined.laps[5:], b.laps)
    with pytest.raises(ValueError, match="equal replicas"):
        paired_difference("A", a, "B", b, rng)


def test_retirement_causes_come_from_the_incident_log() -> None:
    from engine.baselines import make_strategy
    from engine.forcing import parse_events
    from engine.race import StrategyAssignment, simulate
    from engine.scenario import load_scenario, scenario_with

    base = load_scenario("test_race")
    # No fuel reserve and a plan that never stops: car 1 runs dry within the 30 minutes.
    dry = simulate(
        scenario_with(base, **{"rules.fuel_margin": 0.0, "events.incidents": False}),
        StrategyAssignment(per_car={"1": make_strategy("fixed:laps=1000")}),
        8,
        3,
    )
    out = Outcomes.from_result(dry, "1")
    assert out.retired.all()
    assert out.values("retired_fuel").tolist() == [1.0] * 8
    assert not out.values("retired_failure").any() and not out.values("retired_crash").any()
    # A scripted failure is a mechanical retirement.
    failed = simulate(
        base, make_strategy("double-stint"), 8, 3, forced=parse_events(["failure:1@10m"])
    )
    out = Outcomes.from_result(failed, "1")
    assert out.values("retired_failure").tolist() == [1.0] * 8
    # Left alone, every retirement has its cause, and no cause is given without one.
    free = simulate(base, make_strategy("double-stint"), 256, 5)
    for car in free.car_numbers:
        o = Outcomes.from_result(free, car)
        assert np.array_equal(o.retire_cause > 0, o.retired)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_compare_reads_the_tail_at_the_chosen_level(alpha: float) -> None:
    rng = np.random.default_rng(9)
    a = _outcomes(rng, 200)
    # b is worse only in a's worst 30 % of races: the mean of the whole sample moves too,
    # but by the CVaR level's own share
    bad = a.class_position >= np.quantile(a.class_position, 0.7)
    b = Outcomes(**{**vars(a), "class_position": a.class_position + 3 * bad})
    comp = compare("test_race", "7", 11, [("A", "x", a), ("B", "y", b)], cvar_alpha=alpha)
    assert comp.strategies[0].metrics[CVAR_METRIC].estimate == pytest.approx(
        cvar(a.class_position, alpha)
    )
    assert comp.differences[0].metrics[CVAR_METRIC].estimate == pytest.approx(
        cvar(b.class_position, alpha) - cvar(a.class_position, alpha)
    )
    assert comp.to_dict()["cvar_alpha"] == alpha
    assert comp.metric_labels[CVAR_METRIC] == f"CVaR{round(alpha * 100)}% class position"
    assert metric_labels(alpha).keys() == METRIC_LABELS.keys()


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, math.nan])
def test_compare_refuses_a_cvar_level_outside_zero_one(alpha: float) -> None:
    a = _outcomes(np.random.default_rng(10), 20)
    with pytest.raises(ValueError, match="CVaR level must lie in"):
        compare("test_race", "7", 11, [("A", "x", a)], cvar_alpha=alpha)

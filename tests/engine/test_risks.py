"""The scenario's risk priors in the engine: parsing and overrides, switching off, running dry
at the rate the fuel-use noise implies, and the lap-time cliff of worn tyres."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import numpy as np
import pytest

from engine.baselines import make_strategy
from engine.race import StrategyAssignment, simulate
from engine.risks import Risks
from engine.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    load_scenario,
    parse_scenario,
    scenario_with,
)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


def _table() -> dict:
    return tomllib.loads((SCENARIO_DIR / "test_race.toml").read_text())


def test_risks_default_to_the_priors_and_override_per_class_and_car() -> None:
    table = _table()
    del table["risks"]
    table["risks"] = {"push": {"failure_factor": 1.5}}
    table["classes"][1]["risks"] = {"push": {"failure_factor": 3.0}, "fuel": {"enabled": False}}
    table["entries"][0]["risks"] = {"tyre_cliff": {"tread": 0.2}}
    sc = parse_scenario(table, "risky.toml")
    car1, gt = sc.entries[0], next(e for e in sc.entries if e.car_class == "LMGT3")
    assert sc.risks_of(car1).push.failure_factor == 1.5
    assert sc.risks_of(car1).tyre_cliff.tread == 0.2
    assert sc.risks_of(car1).fuel == Risks().fuel  # the priors where nothing is said
    assert sc.risks_of(gt).push.failure_factor == 3.0 and not sc.risks_of(gt).fuel.enabled
    assert sc.risks_of(gt).tyre_cliff.tread == Risks().tyre_cliff.tread
    # the shipped races carry the priors; the test race switches them off
    assert load_scenario("six_hours").risks == Risks()
    assert load_scenario("test_race").risks == Risks().off()
    # the master switch turns every risk off, class and car overrides included
    quiet = scenario_with(sc, **{"risks.enabled": False})
    for e in quiet.entries:
        r = quiet.risks_of(e)
        assert not any((r.fuel.enabled, r.tyre_cliff.enabled, r.slick_wet.enabled, r.push.enabled))


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("risks", {"pushing": {}}, "unknown key 'pushing'"),
        ("class", {"pushing": {}}, "unknown risk 'pushing'"),
        ("risks", {"push": {"factor": 2.0}}, "unknown key 'factor'"),
        ("risks", {"push": {"failure_factor": "high"}}, "expected a number"),
        ("class", {"tyre_cliff": {"tread": 1.5}}, "tyre_cliff.tread must lie in"),
        ("car", {"fuel": {"enabled": 1}}, "expected true or false"),
    ],
)
def test_bad_risk_tables_name_the_place(where: str, value: dict, message: str) -> None:
    table = _table()
    if where == "risks":
        table["risks"] = value
    elif where == "class":
        table["classes"][0]["risks"] = value
    else:
        table["entries"][0]["risks"] = value
    with pytest.raises(ScenarioError, match=message) as info:
        parse_scenario(table, "bad.toml")
    assert "bad.toml" in str(info.value)


def _outcome(result) -> tuple:
    return (
        result.finish_position.tobytes(),
        result.laps_completed.tobytes(),
        result.finish_time_s.tobytes(),
        result.pit_time_s.tobytes(),
        result.retired.tobytes(),
        tuple(result.incidents["kind"]),
    )


def test_neutral_risks_race_exactly_as_risks_switched_off(scenario) -> None:
    """Every hazard risk on at its neutral value (factor 1, rate 0, no lap-time loss) runs the
    risk code of the sampler and the stepper and changes nothing, bit for bit, against the
    race with every risk off (the engine before the risks)."""
    neutral = scenario_with(
        scenario,
        **{
            "risks.tyre_cliff.enabled": True,
            "risks.tyre_cliff.puncture_factor": 1.0,
            "risks.tyre_cliff.lap_time_loss": 0.0,
            "risks.slick_wet.enabled": True,
            "risks.slick_wet.off_per_h": 0.0,
            "risks.push.enabled": True,
            "risks.push.failure_factor": 1.0,
            "risks.fuel.enabled": True,
            "risks.fuel.stint_cv": 0.0,
        },
    )
    strategies = StrategyAssignment(per_car={"1": make_strategy("double-stint:pace=push")})
    off = simulate(scenario, strategies, 48, seed=3, chunk_replicas=24)
    same = simulate(neutral, strategies, 48, seed=3, chunk_replicas=24)
    assert len(off.incidents["kind"]) > 0
    assert _outcome(off) == _outcome(same)
    # and the priors do change the race
    on = simulate(scenario_with(scenario, risks=Risks()), strategies, 48, seed=3, chunk_replicas=24)
    assert _outcome(on) != _outcome(off)


def _alone(scenario, **changes):
    """Car 1 alone on a deterministic, dry, incident-free track, no energy limit or driver
    limits, in a lap race."""
    solo = dataclasses.replace(scenario, entries=scenario.entries[:1])
    base = {
        "race.duration_h": None,
        "events.incidents": False,
        "events.weather": False,
        "noise_scale": 0.0,
        "classes.HYPERCAR.has_energy": False,
        "rules.max_stint_driving_s": 14400.0,
        "rules.max_total_driving_s": 50400.0,
    }
    return scenario_with(solo, **(base | changes))


def test_a_stint_run_to_the_last_drop_runs_dry_as_often_as_the_fuel_noise_implies(
    scenario,
) -> None:
    """A tank of 1 at 0.0985 a lap: a car that stops when its fuel reading is under one lap
    stays out after lap 9 (0.1135 read) and stops after lap 10; it runs dry on lap 10 when its
    stint's fuel-use factor exceeds 1 / (10 x 0.0985). The factor is lognormal with mean 1 and
    CV 2 %, so that happens with probability 1 - Phi((ln(1.01523) + s²/2) / s) = 0.222."""
    cv, f = 0.02, 0.0985
    race = _alone(
        scenario,
        **{
            "race.laps": 12,
            "entries.1.ref_fuel_per_lap": f,
            "risks.fuel.enabled": True,
            "risks.fuel.stint_cv": cv,
        },
    )
    n = 2000
    result = simulate(race, make_strategy("fuel-reserve:laps=0"), n, seed=11, chunk_replicas=500)
    dry = result.incidents["kind"] == "out_of_fuel"
    assert (result.laps_completed[result.retired[:, 0], 0] == 10).all()
    s = math.sqrt(math.log(1 + cv * cv))
    p = 0.5 * math.erfc((math.log(1 / (10 * f)) + 0.5 * s * s) / s / math.sqrt(2))
    observed = dry.sum() / n
    assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert result.retired.sum() == dry.sum()
    # Without the fuel risk the reading is exact and the same plan never runs dry.
    safe = simulate(
        scenario_with(race, **{"risks.fuel.enabled": False}),
        make_strategy("fuel-reserve:laps=0"),
        200,
        seed=11,
        chunk_replicas=200,
    )
    assert not safe.retired.any()


def test_where_the_rules_allow_a_crawl_a_car_that_runs_dry_loses_the_crawl_not_the_race(
    scenario,
) -> None:
    """The stint run to the last drop above with ``rules.dry_crawl_s = 120``: the same races
    (common random numbers) run dry, none retires, and each dry car finishes the crawl's 120 s
    behind a car that did not (its stop is forced where it was due anyway; the refill differs
    by under a twentieth of a tank, at most 2 s of the 40 s a full tank takes)."""
    race = _alone(
        scenario,
        **{
            "race.laps": 12,
            "entries.1.ref_fuel_per_lap": 0.0985,
            "risks.fuel.enabled": True,
            "risks.fuel.stint_cv": 0.02,
        },
    )
    n = 400
    plan = make_strategy("fuel-reserve:laps=0")
    out = simulate(race, plan, n, seed=11, chunk_replicas=200)
    crawl = simulate(
        scenario_with(race, **{"rules.dry_crawl_s": 120.0}), plan, n, seed=11, chunk_replicas=200
    )
    out_dry = np.sort(out.incidents["replica"][out.incidents["kind"] == "out_of_fuel"])
    crawled = np.sort(crawl.incidents["replica"][crawl.incidents["kind"] == "ran_dry"])
    assert out_dry.size > 20 and np.array_equal(out_dry, crawled)
    assert not crawl.retired.any() and (crawl.laps_completed[:, 0] == 12).all()
    t = crawl.finish_time_s[:, 0]
    dry = np.isin(np.arange(n), crawled)
    late = t[dry] - np.median(t[~dry])
    assert (np.abs(late - 120.0) < 2.0).all()
    assert (crawl.pit_stops[dry, 0] == crawl.pit_stops[~dry, 0][0]).all()


def test_a_tighter_fuel_reserve_stops_once_less_and_runs_dry_more_often(scenario) -> None:
    """The six-hour race's mean-for-tail trade in small (README "Risks"): a tank of 1 at 0.0985
    a lap in a 30-lap race. With no reserve the car stops when its reading is under the legal
    1.12 laps (after laps 10 and 20: two stops); with a one-lap reserve when it is under two
    laps (three stops, the last a splash). The tight plan finishes a stop (25 s of lane and
    the stop's own seconds: 52 s measured) earlier when it does not run dry, and runs dry in
    about half the races (each stint to the last drop does with probability 0.22, the test
    above; 54 % measured); the cautious one never does."""
    race = _alone(
        scenario,
        **{
            "race.laps": 30,
            "entries.1.ref_fuel_per_lap": 0.0985,
            "risks.fuel.enabled": True,
            "risks.fuel.stint_cv": 0.02,
        },
    )
    n = 400
    tight = simulate(race, make_strategy("fuel-reserve:laps=0"), n, seed=5, chunk_replicas=200)
    safe = simulate(race, make_strategy("fuel-reserve:laps=1"), n, seed=5, chunk_replicas=200)
    assert not safe.retired.any() and (safe.pit_stops[:, 0] == 3).all()
    dry = tight.retired[:, 0]
    assert 0.4 < dry.mean() < 0.7
    assert (tight.pit_stops[~dry, 0] == 2).all()
    gain = safe.finish_time_s[~dry, 0] - tight.finish_time_s[~dry, 0]
    assert (gain > 40.0).all() and (gain < 65.0).all()


def test_a_crawl_time_must_be_seconds_or_minus_one(scenario) -> None:
    with pytest.raises(ScenarioError, match="dry_crawl_s"):
        scenario_with(scenario, **{"rules.dry_crawl_s": -5.0})


def test_tyres_past_the_cliff_lose_the_lap_time_the_prior_says(scenario) -> None:
    loss = 0.2
    race = _alone(
        scenario,
        **{
            "race.laps": 12,
            "entries.1.ref_fuel_per_lap": 0.05,
            "entries.1.ref_wear_per_lap": 0.085,
            "risks.tyre_cliff.enabled": True,
        },
    )
    strategy = make_strategy("fuel-reserve")

    def laps(lap_time_loss: float) -> dict[str, np.ndarray]:
        sc = scenario_with(race, **{"risks.tyre_cliff.lap_time_loss": lap_time_loss})
        return simulate(sc, strategy, 1, seed=0, record_laps=True).laps

    flat, cliff = laps(0.0), laps(loss)
    assert (flat["pit_in"] == 0).all()  # one stint: every lap on the same tyres
    tread_end = np.min([flat[f"tread_{w}"] for w in ("fl", "fr", "rl", "rr")], axis=0)
    tread_start = np.concatenate([[1.0], tread_end[:-1]])
    depth = np.clip((0.15 - tread_start) / 0.15, 0.0, 1.0)
    assert (depth > 0.2).any() and (depth == 0).any()
    ratio = cliff["lap_time_s"] / flat["lap_time_s"]
    np.testing.assert_allclose(ratio, 1.0 + loss * depth**2, rtol=1e-5)

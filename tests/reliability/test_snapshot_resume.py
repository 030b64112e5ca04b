"""A race resumed from a snapshot runs on exactly as the uninterrupted race (issue 20's
snapshot-and-resume property; the case below failed with [17,17,17,15,15] laps against
[17,17,17,16,16]: the snapshot was taken half-way through the line's phases)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.baselines import make_strategy
from engine.race import RaceSim, StrategyAssignment
from engine.result import RaceResult, RaceSnapshot
from engine.scenario import Scenario, load_scenario, scenario_with

QUIET = {"events.incidents": False, "events.weather": False, "noise_scale": 0.0}


def quiet_race(name: str = "test_race", **changes: object) -> Scenario:
    """A scenario with no random events and no lap noise: a race is a function of decisions."""
    return scenario_with(load_scenario(name), **{**QUIET, **changes})


def drive(
    scenario: Scenario,
    spec: str,
    seed: int,
    *,
    start: RaceSnapshot | None = None,
    snapshot_after: int | None = None,
    car: str = "1",
) -> RaceResult | RaceSnapshot:
    """Car ``car`` driven from outside by ``spec`` (the others by it too); the snapshot after
    ``snapshot_after`` decisions, else the result."""
    strategy = make_strategy(spec)
    sim = RaceSim(scenario, StrategyAssignment(default=strategy), 1, seed,
                  controlled_car=car, start=start)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    decisions = 0
    while (point := sim.advance()) is not None:
        sim.act(point.replicas, strategy.decide(point.obs, point.legal, generator))
        decisions += 1
        if decisions == snapshot_after:
            return sim.snapshot(0)
    return sim.result()


def assert_same_race(a: RaceResult, b: RaceResult) -> None:
    for name in ("laps_completed", "finish_time_s", "pit_stops", "pit_time_s", "finish_position"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_the_known_case_resumes_exactly() -> None:
    scenario = quiet_race()
    full = drive(scenario, "fixed:laps=4", 5)
    snap = drive(scenario, "fixed:laps=4", 5, snapshot_after=2)
    resumed = drive(scenario, "fixed:laps=4", 5, start=snap)
    assert full.laps_completed[0].min() >= 10 and full.pit_stops[0].max() >= 2  # a real race
    assert_same_race(full, resumed)


def test_the_uninterrupted_race_goes_on_after_a_snapshot() -> None:
    scenario = quiet_race()
    strategy = make_strategy("fuel-reserve")
    sim = RaceSim(scenario, StrategyAssignment(default=strategy), 1, 3, controlled_car="1")
    generator = torch.Generator().manual_seed(3)
    point = sim.advance()
    with pytest.raises(RuntimeError, match="act"):
        sim.snapshot(0)
    sim.act(point.replicas, strategy.decide(point.obs, point.legal, generator))
    first = sim.snapshot(0)
    assert sim.snapshot(0).state == first.state  # the clock waits at the boundary
    while (point := sim.advance()) is not None:
        sim.act(point.replicas, strategy.decide(point.obs, point.legal, generator))
    assert_same_race(sim.result(), drive(scenario, "fuel-reserve", 3))

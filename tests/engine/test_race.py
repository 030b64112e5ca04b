"""The race engine against hand-computed answers, and its determinism contracts."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from engine.actions import Fuel, Tyres, action_index
from engine.baselines import make_strategy
from engine.race import RaceResult, RaceSim, StrategyAssignment, simulate
from engine.scenario import Scenario, load_scenario, scenario_with, validate
from engine.strategy import Observation
from world_model.interface import PaceMode
from world_model.parametric import ParametricLapModel, ParametricLapParams

CONSTANT = ParametricLapModel(
    ParametricLapParams(
        noise_scale=0.0, fuel_mass_time=0.0, out_lap_time=0.0, night_time=0.0, traffic_time_s=0.0
    )
)
"""Deterministic laps at exactly the reference pace while the tyres keep their tread."""


def solo(laps: int | None = None, duration_h: float | None = None, **changes: object) -> Scenario:
    """Car 1 of the test race alone, events off, no wear, tiny fuel use."""
    s = load_scenario("test_race")
    drivers = tuple(dataclasses.replace(d, skill=0.0) for d in s.entries[0].drivers)
    e = dataclasses.replace(
        s.entries[0],
        drivers=drivers,
        ref_wear_per_lap=0.0,
        ref_fuel_per_lap=0.01,
        ref_energy_per_lap=0.01,
    )
    s = dataclasses.replace(
        s,
        entries=(e,),
        race=dataclasses.replace(s.race, laps=laps, duration_h=duration_h),
        rules=dataclasses.replace(s.rules, max_stint_driving_s=1e6, max_total_driving_s=1e6),
    )
    s = validate(s, "solo")
    return scenario_with(s, **{"events.incidents": False, "events.weather": False, **changes})


class Scripted:
    """Stops at given laps with one action; otherwise stays out (for closed-form checks)."""

    def __init__(self, stops: dict[int, int]) -> None:
        self.name = "scripted"
        self.stops = stops

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        out = torch.full_like(obs.car, action_index(PaceMode.NORMAL, False))
        for lap, act in self.stops.items():
            out = torch.where(obs.lap.long() == lap, act, out)
        return out


def test_constant_pace_time_race_by_hand() -> None:
    s = solo(duration_h=0.25)  # 900 s at 100 s a lap: the leader crosses at 900 s exactly
    s = scenario_with(s, **{"race.duration_h": 0.2475})  # 891 s: the flag falls at lap 9
    r = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT, record_laps=True)
    assert r.laps_completed[0, 0] == math.ceil(891.0 / 100.0) == 9
    assert r.finish_time_s[0, 0] == pytest.approx(900.0, abs=1e-6)
    assert r.laps is not None
    assert np.allclose(r.laps["lap_time_s"], 100.0)


def test_constant_pace_lap_race_with_fuel_mass_by_hand() -> None:
    params = ParametricLapParams(noise_scale=0.0, out_lap_time=0.0, night_time=0.0)
    s = solo(laps=6)
    r = simulate(s, Scripted({}), 1, 0, lap_model=ParametricLapModel(params), record_laps=True)
    fuel = 1.0 - 0.01 * np.arange(6)  # fuel at the start of each lap (fraction of tank)
    by_hand = 100.0 * (1.0 + params.fuel_mass_time * fuel)
    assert r.laps is not None
    assert np.allclose(r.laps["lap_time_s"], by_hand, rtol=1e-6)
    assert r.finish_time_s[0, 0] == pytest.approx(by_hand.sum(), rel=1e-6)


def test_pit_stop_costs_exactly_its_parts() -> None:
    s = solo(laps=10)
    stop = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.FOUR_MEDIUM, True, False)
    base = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT)
    one = simulate(s, Scripted({4: stop}), 1, 0, lap_model=CONSTANT, record_laps=True)
    rules, car = s.rules, s.classes[0]
    refuel = 4 * 0.01 * car.refuel_full_s  # four laps of fuel put back
    work = max(refuel + rules.tyre_change_4_s, rules.driver_change_s, rules.min_pit_time_s)
    cost = s.track.pit_lane_loss_s + work
    # float32 fuel: the refuel time is exact to a few microseconds
    assert one.finish_time_s[0, 0] - base.finish_time_s[0, 0] == pytest.approx(cost, abs=1e-4)
    assert one.pit_time_s[0, 0] == pytest.approx(cost, abs=1e-4)
    assert one.pit_stops[0, 0] == 1
    assert one.laps is not None
    assert one.laps["pit_in"][3] == 1 and one.laps["pit_out"][4] == 1
    assert one.laps["driver_change"][4] == 1


def test_minimum_pit_time_applies() -> None:
    s = solo(laps=8, **{"rules.min_pit_time_s": 90.0})
    stop = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.KEEP, False, False)
    base = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT)
    one = simulate(s, Scripted({3: stop}), 1, 0, lap_model=CONSTANT)
    cost = one.finish_time_s[0, 0] - base.finish_time_s[0, 0]
    assert cost == pytest.approx(s.track.pit_lane_loss_s + 90.0, abs=1e-6)


def test_team_mates_queue_for_one_garage() -> None:
    s = load_scenario("test_race")
    e1, e2 = s.entries[0], dataclasses.replace(s.entries[1], ref_lap_time_s=100.0)
    assert e1.team == e2.team
    quiet = {"ref_wear_per_lap": 0.0, "ref_fuel_per_lap": 0.01, "ref_energy_per_lap": 0.01}
    e1, e2 = (
        dataclasses.replace(e, drivers=solo(laps=1).entries[0].drivers, **quiet) for e in (e1, e2)
    )
    s = validate(
        dataclasses.replace(
            s, entries=(e1, e2), race=dataclasses.replace(s.race, laps=6, duration_h=None)
        ),
        "pair",
    )
    s = scenario_with(s, **{"events.incidents": False, "events.weather": False})
    stop = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.KEEP, False, False)
    r = simulate(s, Scripted({3: stop}), 1, 0, lap_model=CONSTANT)
    # Car 2 starts 0.25 s behind and reaches the garage while car 1 is served.
    refuel = 3 * 0.01 * s.classes[0].refuel_full_s
    loss = s.track.pit_lane_loss_s
    assert r.pit_time_s[0, 0] == pytest.approx(loss + refuel, abs=1e-4)
    assert r.pit_time_s[0, 1] == pytest.approx(loss + refuel + refuel - 0.25, abs=1e-4)


def test_forced_safety_car_stretches_exactly_the_laps_it_spans() -> None:
    s = solo(laps=5, **{"rules.safety_car.lap_time_factor": 2.0})
    from events.interface import ForcedEvent, ForcedKind

    forced = [ForcedEvent(ForcedKind.SAFETY_CAR, start_s=150.0, end_s=250.0)]
    r = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT, forced=forced, record_laps=True)
    assert r.laps is not None
    # SC at half speed from 150 to 250 s: lap 2 (from 100 s) drives 50 green seconds to 150 s
    # and needs 50 more: 100 s under the SC, so it ends at 250 s exactly, as the SC comes in.
    assert np.allclose(r.laps["lap_time_s"][:4], [100.0, 150.0, 100.0, 100.0])
    assert list(r.flag_periods["kind"]) == [3]
    forced = [ForcedEvent(ForcedKind.SAFETY_CAR, start_s=150.0, end_s=230.0)]
    r = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT, forced=forced, record_laps=True)
    assert r.laps is not None
    # SC to 230 s instead: 80 s under it is worth 40 green s, so lap 2 ends 10 s later, at
    # 240 s; lap 3 is green.
    assert np.allclose(r.laps["lap_time_s"][:4], [100.0, 140.0, 100.0, 100.0])
    assert list(r.laps["flag"][:4]) == [0, 3, 0, 0]
    forced = [ForcedEvent(ForcedKind.SAFETY_CAR, start_s=150.0, end_s=300.0)]
    r = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT, forced=forced, record_laps=True)
    assert r.laps is not None
    # SC to 300 s: lap 2 ends at 250 s; lap 3 drives 50 s of SC (25 green s) then 75 green s.
    assert np.allclose(r.laps["lap_time_s"][:4], [100.0, 150.0, 125.0, 100.0])
    assert list(r.laps["flag"][:4]) == [0, 3, 3, 0]


def test_pit_lane_closed_under_safety_car_in_the_mask() -> None:
    s = solo(laps=5)
    from events.interface import ForcedEvent, ForcedKind

    seen: list[torch.Tensor] = []

    class Spy(Scripted):
        def decide(self, obs, legal, generator):  # type: ignore[no-untyped-def]
            seen.append(torch.stack([obs.flag.float(), legal[:, 1:49].any(dim=1).float()], 1))
            return super().decide(obs, legal, generator)

    forced = [ForcedEvent(ForcedKind.SAFETY_CAR, start_s=150.0, end_s=260.0)]
    simulate(s, Spy({}), 1, 0, lap_model=CONSTANT, forced=forced)
    rows = torch.cat(seen)
    under_sc = rows[:, 0] == 3
    assert bool(under_sc.any())
    assert not bool(rows[under_sc, 1].any())
    assert bool(rows[~under_sc, 1].all())


def test_same_seed_same_race_bit_for_bit_and_chunks_join() -> None:
    s = load_scenario("test_race")
    a = simulate(s, StrategyAssignment(), 6, 11, chunk_replicas=2, record_laps=True)
    b = simulate(s, StrategyAssignment(), 6, 11, chunk_replicas=2, record_laps=True)
    parts = [
        simulate(s, StrategyAssignment(), 2, 11, chunk_replicas=2, first_chunk=k, record_laps=True)
        for k in range(3)
    ]
    c = RaceResult.concat(parts[::-1])
    for other in (b, c):
        assert np.array_equal(a.finish_time_s, other.finish_time_s)
        assert np.array_equal(a.finish_position, other.finish_position)
        assert a.laps is not None and other.laps is not None
        assert np.array_equal(a.laps["lap_time_s"], other.laps["lap_time_s"])
        assert np.array_equal(a.incidents["race_time_s"], other.incidents["race_time_s"])
    d = simulate(s, StrategyAssignment(), 6, 12, chunk_replicas=2)
    assert not np.array_equal(a.finish_time_s, d.finish_time_s)


def test_strategies_on_one_seed_share_weather_and_incident_draws() -> None:
    from engine.race import _car_strategies, load_event_model, load_lap_model
    from engine.stepper import ChunkSim

    s = load_scenario("test_race")
    sims = []
    for spec in ("fixed:laps=3", "fuel-reserve"):
        cars = _car_strategies(s, StrategyAssignment(per_car={"1": make_strategy(spec)}))
        sim = ChunkSim(s, cars, 4, 5, 0, 0, load_lap_model(s), load_event_model(s))
        sim.env.run(until=900.0)
        sims.append(sim)
    a, b = sims
    assert torch.equal(a.ctx.weather.rain, b.ctx.weather.rain)
    incidents_a, incidents_b = a.ctx.streams.incidents, b.ctx.streams.incidents
    assert torch.equal(incidents_a.get_state(), incidents_b.get_state())
    assert not torch.equal(a.state.pit_stops, b.state.pit_stops)


def test_race_sim_waits_for_the_controlled_car() -> None:
    s = load_scenario("test_race")
    sim = RaceSim(s, StrategyAssignment(), 3, 2, controlled_car="91")
    stay = action_index(PaceMode.NORMAL, False)
    asked = 0
    while (dp := sim.advance()) is not None:
        asked += 1
        assert dp.obs.size == dp.replicas.numel()
        assert bool((dp.obs.car == s.entry_index("91")).all())
        legal_stay = dp.legal[:, stay]
        full = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.KEEP, True, False)
        pick = torch.where(legal_stay, stay, dp.legal.float().argmax(dim=1))
        pick = torch.where(legal_stay | ~dp.legal[:, full], pick, full)
        sim.act(dp.replicas, pick)
    assert bool(sim.done.all())
    r = sim.result()
    car = r.car_index("91")
    assert asked >= int(r.laps_completed[:, car].min()) - 1
    assert (r.pit_stops[:, car] >= 1).all()


def test_snapshot_round_trip_and_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.race import RaceSnapshot

    s = load_scenario("test_race")
    sim = RaceSim(s, StrategyAssignment(), 2, 9, controlled_car="1")
    for _ in range(5):
        dp = sim.advance()
        assert dp is not None
        sim.act(dp.replicas, dp.legal.float().argmax(dim=1))
    snap = sim.snapshot(1)
    path = tmp_path / "snap.json"
    snap.save(path)
    loaded = RaceSnapshot.load(path)
    assert loaded.race_time_s == snap.race_time_s > 0
    r = simulate(s, StrategyAssignment(), 3, 1, start=loaded, record_laps=True)
    car = 0
    done_before = snap.state["lap"][0][car]
    assert (r.laps_completed[:, car] > done_before).all()
    assert r.laps is not None
    first = r.laps["lap"][(r.laps["replica"] == 0) & (r.laps["car"] == car)][0]
    assert first == done_before + 1
    # The resumed races differ from each other (fresh randomness) but start from one state.
    assert len(set(r.finish_time_s[:, car].tolist())) > 1


def test_field_bunches_behind_the_safety_car_but_not_under_fcy() -> None:
    from events.interface import ForcedEvent, ForcedKind

    s = load_scenario("test_race")
    quiet = {"ref_wear_per_lap": 0.0, "ref_fuel_per_lap": 0.01, "ref_energy_per_lap": 0.01}
    drivers = solo(laps=1).entries[0].drivers
    fast = dataclasses.replace(s.entries[0], drivers=drivers, **quiet)
    slow = dataclasses.replace(
        s.entries[2], drivers=drivers, ref_lap_time_s=110.0, **quiet
    )  # another team: no garage sharing
    race = dataclasses.replace(s.race, laps=12, duration_h=None)
    rules = solo(laps=1).rules  # no driving-time limits
    s = validate(dataclasses.replace(s, entries=(fast, slow), race=race, rules=rules), "pair")
    s = scenario_with(s, **{"events.incidents": False, "events.weather": False})

    def gap_on_lap(kind: ForcedKind, lap: int) -> float:
        forced = [ForcedEvent(kind, start_s=350.0, end_s=1400.0)]
        r = simulate(s, Scripted({}), 1, 0, lap_model=CONSTANT, forced=forced, record_laps=True)
        assert r.laps is not None
        at = {
            c: r.laps["race_time_s"][(r.laps["car"] == c) & (r.laps["lap"] == lap)][0]
            for c in (0, 1)
        }
        return float(at[1] - at[0])

    # Before the neutralisation the slower car loses 10 s a lap; under FCY every car keeps its
    # distance (same speed), behind the safety car the slower car closes up.
    sc_gap = gap_on_lap(ForcedKind.SAFETY_CAR, 8)
    fcy_gap = gap_on_lap(ForcedKind.FCY, 8)
    # Closed up to about the minimum gap (1 s of green running), stretched by the SC's pace.
    assert sc_gap < 3.0 * s.track.sc_min_gap_s * s.rules.safety_car.lap_time_factor
    assert fcy_gap > 40.0


class Recording:
    """A lap model that records what the engine conditions each call on and what it drew."""

    def __init__(self, model: ParametricLapModel) -> None:
        self.model = model
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.previous: list[tuple[torch.Tensor, torch.Tensor]] = []
        """(``last_lap_time_s`` fed, the lap time drawn) per call."""

    def sample(self, conditions, generator, member=None):
        out = self.model.sample(conditions, generator, member)
        recent = conditions.recent_pace_pct
        self.calls.append(
            (
                recent.clone(),
                out.lap_time_s.clone(),
                conditions.ref_lap_time_s.clone(),
                conditions.out_lap.clone(),
            )
        )
        self.previous.append((conditions.last_lap_time_s.clone(), out.lap_time_s.clone()))
        return out


def test_engine_feeds_each_car_its_recent_pace() -> None:
    """The lap model's ``recent_pace_pct`` is NaN on the first lap, then the recursion of
    ``update_recent_pace`` over the laps the model drew for that car (out-laps skipped)."""
    from world_model.interface import update_recent_pace

    model = Recording(ParametricLapModel(ParametricLapParams(noise_scale=1.0)))
    stop = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.FOUR_MEDIUM, True, False)
    simulate(solo(laps=12), Scripted({5: stop}), 1, 0, lap_model=model)
    assert len(model.calls) >= 12
    assert model.calls[0][0].isnan().all()
    recent = torch.full((1,), float("nan"))
    for seen, lap, ref, out_lap in model.calls:
        assert torch.allclose(seen, recent, equal_nan=True), (seen, recent)
        nxt = update_recent_pace(recent, lap, ref)
        recent = torch.where(out_lap > 0, recent, nxt)
    assert model.calls[1][0].isfinite().all()
    assert any(bool(out_lap.any()) for *_, out_lap in model.calls)  # the stop's out-lap


def test_engine_feeds_each_car_its_previous_lap() -> None:
    """``last_lap_time_s`` is the lap the model drew for the car the call before, NaN on the
    first lap, on the out-lap (its previous lap ended in the pits) and on the lap after it."""
    model = Recording(ParametricLapModel(ParametricLapParams(noise_scale=1.0)))
    stop = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.FOUR_MEDIUM, True, False)
    simulate(solo(laps=12), Scripted({5: stop}), 1, 0, lap_model=model)
    out_laps = [bool(c[3].any()) for c in model.calls]
    assert any(out_laps)
    assert model.previous[0][0].isnan().all()
    for k in range(1, len(model.calls)):
        fed, drawn_before = model.previous[k][0], model.previous[k - 1][1]
        if out_laps[k] or out_laps[k - 1]:
            assert fed.isnan().all()
        else:
            assert torch.equal(fed, drawn_before)


def test_recent_pace_switched_off_never_reaches_the_lap_model() -> None:
    """``lap_model_recent_pace = false`` (built scenarios): the input stays unknown all race."""
    seen: list[object] = []
    inner = ParametricLapModel(ParametricLapParams(noise_scale=1.0))

    class Spy:
        def sample(self, conditions, generator, member=None):  # type: ignore[no-untyped-def]
            seen.append((conditions.recent_pace_pct, conditions.last_lap_time_s))
            return inner.sample(conditions, generator, member)

    scenario = dataclasses.replace(solo(laps=12), lap_model_recent_pace=False)
    simulate(scenario, StrategyAssignment(), 1, 0, lap_model=Spy())
    assert len(seen) >= 12
    assert all(r is None and last is None for r, last in seen)


@pytest.mark.parametrize("stint_laps_age", [True, False])
def test_tyre_age_input_follows_what_the_lap_model_says_it_means(stint_laps_age: bool) -> None:
    """A lap model learned from timing data reads its tyre age as laps since the last stop
    (``tyre_age_is_stint_laps``): after a stop that keeps the tyres it sees 0, 1, 2, ...
    again; a model without the attribute sees the tyres' own age run on."""
    inner = ParametricLapModel(ParametricLapParams(noise_scale=1.0))
    ages: list[float] = []

    class Spy:
        tyre_age_is_stint_laps = stint_laps_age

        def sample(self, conditions, generator, member=None):  # type: ignore[no-untyped-def]
            ages.append(float(conditions.tyre_age_laps[0]))
            return inner.sample(conditions, generator, member)

    keep = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.KEEP, False, False)
    simulate(solo(laps=12), Scripted({5: keep}), 1, 0, lap_model=Spy())
    assert len(ages) == 12
    assert ages[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # Lap 6 is the out-lap of the stop at the end of lap 5, on the same tyres.
    want = [0.0, 1.0, 2.0] if stint_laps_age else [5.0, 6.0, 7.0]
    assert ages[5:8] == want


def test_a_set_carried_into_a_stint_costs_its_fitted_pace() -> None:
    """For a lap model reading tyre age as laps since the stop, a lap on a set that ran
    ``n`` laps before the stint is slower by ``lap_model_carried_wear_time * n * ref wear``
    (same seed, deterministic laps); fresh tyres and a model reading true tyre age pay
    nothing."""

    class StintAge:
        tyre_age_is_stint_laps = True

        def sample(self, conditions, generator, member=None):  # type: ignore[no-untyped-def]
            return CONSTANT.sample(conditions, generator, member)

    base = solo(laps=10)
    wear = 0.01
    entry = dataclasses.replace(base.entries[0], ref_wear_per_lap=wear)
    base = dataclasses.replace(base, entries=(entry,))
    keep = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.KEEP, False, False)
    fresh = action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.FOUR_MEDIUM, False, False)

    def laps(k: float, stop: int, model: object) -> np.ndarray:
        s = dataclasses.replace(base, lap_model_carried_wear_time=k)
        r = simulate(s, Scripted({4: stop}), 1, 0, lap_model=model, record_laps=True)
        return np.asarray(r.laps["lap_time_s"], dtype=float)

    k = 0.05
    free, paid = laps(0.0, keep, StintAge()), laps(k, keep, StintAge())
    assert np.array_equal(free[:4], paid[:4])  # the first stint: nothing carried
    assert paid[4] > free[4]  # lap 5 holds the stop and the out-lap, on the carried set
    # Laps 6-10 run on a set that did 4 laps before its stint.
    ratio = paid[5:] / free[5:]
    np.testing.assert_allclose(ratio, 1.0 + k * 4 * wear, rtol=1e-9)
    assert np.array_equal(laps(0.0, fresh, StintAge()), laps(k, fresh, StintAge()))
    assert np.array_equal(laps(0.0, keep, CONSTANT), laps(k, keep, CONSTANT))


def test_full_course_cautions_turn_every_neutralisation_into_an_fcy() -> None:
    """IMSA race control (``events.full_course_cautions``): the safety cars and slow zones a
    WEC race control calls on the same seed become FCYs lasting as a safety car does."""
    from world_model.interface import FlagState

    s = scenario_with(load_scenario("test_race"), **{"race.duration_h": 6.0})
    lap_model = ParametricLapModel(ParametricLapParams(noise_scale=1.0))
    wec = simulate(s, StrategyAssignment(), 16, 5, lap_model=lap_model).flag_periods
    imsa = simulate(
        scenario_with(s, **{"events.full_course_cautions": True}),
        StrategyAssignment(),
        16,
        5,
        lap_model=lap_model,
    ).flag_periods
    other = (int(FlagState.SAFETY_CAR), int(FlagState.SLOW_ZONE))
    assert np.isin(wec["kind"], other).any()
    assert not np.isin(imsa["kind"], other).any()
    fcy = imsa["kind"] == int(FlagState.FCY)
    assert fcy.sum() >= np.isin(wec["kind"], (int(FlagState.FCY), *other)).sum() // 2
    wec_fcy = wec["kind"] == int(FlagState.FCY)
    length = lambda p, m: np.median(p["end_s"][m] - p["start_s"][m])  # noqa: E731
    assert length(imsa, fcy) > length(wec, wec_fcy)

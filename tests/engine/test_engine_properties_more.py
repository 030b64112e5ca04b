"""Properties over the whole engine (issue 20), with Hypothesis: the sporting rules (driving
times, tyre sets, the pit lane under the safety car, the minimum pit time), the learned lap
model and the shipped 24-hour and six-hour fields (short slices), forced events, snapshot and
resume, paired Monte Carlo differences, scenario validation and store atomicity.

Each example simulates a short race, so example counts are small and deadlines off; the
whole file runs in a few minutes on two cores.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.baselines import make_strategy
from engine.evaluate import evaluate
from engine.race import StrategyAssignment, simulate
from engine.result import RaceResult
from engine.scenario import ScenarioError, load_scenario, scenario_with
from events.interface import ForcedEvent, ForcedKind
from tests.reliability.test_snapshot_resume import assert_same_race, drive, quiet_race

SLOW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECS = ("fixed:laps=3", "fixed:laps=5", "fuel-reserve", "double-stint", "opportunistic")
TREADS = ("tread_fl", "tread_fr", "tread_rl", "tread_rr")


def _car_laps(r: RaceResult, c: int, rep: int = 0) -> dict[str, np.ndarray]:
    assert r.laps is not None
    m = (r.laps["replica"] == rep) & (r.laps["car"] == c)
    return {k: v[m] for k, v in r.laps.items()}


def _check_laps_add_up(r: RaceResult) -> None:
    """Laps numbered 1..n, positive and finite, adding up to the car's race time."""
    for rep in range(r.replicas):
        for c in range(r.n_cars):
            laps = _car_laps(r, c, rep)
            if not laps["lap"].size:
                continue
            assert list(laps["lap"]) == list(range(1, laps["lap"].size + 1))
            assert np.isfinite(laps["lap_time_s"]).all() and (laps["lap_time_s"] > 0).all()
            assert np.isclose(laps["lap_time_s"].sum(), laps["race_time_s"][-1], atol=1e-6)
        assert sorted(r.finish_position[rep]) == list(range(1, r.n_cars + 1))


@SLOW
@given(
    st.floats(200.0, 500.0), st.sampled_from(SPECS), st.integers(0, 2**16), st.booleans()
)  # fmt: skip
def test_every_driver_drives_the_minimum(min_s: float, spec: str, seed: int, incidents: bool):
    s = scenario_with(
        load_scenario("test_race"),
        **{"rules.min_total_driving_s": min_s, "events.incidents": incidents},
    )
    r = simulate(s, StrategyAssignment(default=make_strategy(spec)), 1, seed, record_laps=True)
    for c, entry in enumerate(s.entries):
        laps = _car_laps(r, c)
        if r.retired[0, c] or len(entry.drivers) < 2:
            continue
        totals = np.bincount(
            laps["driver"], weights=laps["lap_time_s"], minlength=len(entry.drivers)
        )
        assert (totals >= min_s - 1e-6).all(), (entry.number, totals, min_s)


@SLOW
@given(st.integers(1, 3), st.sampled_from(SPECS), st.integers(0, 2**16))
def test_tyre_sets_are_never_exceeded(sets: int, spec: str, seed: int) -> None:
    s = quiet_race(
        **{"classes.HYPERCAR.tyre_sets": float(sets), "classes.LMGT3.tyre_sets": float(sets)}
    )
    s = scenario_with(s, **{f"entries.{e.number}.ref_wear_per_lap": 0.06 for e in s.entries})
    r = simulate(s, StrategyAssignment(default=make_strategy(spec)), 1, seed, record_laps=True)
    for c in range(r.n_cars):
        tread = np.stack([_car_laps(r, c)[w] for w in TREADS])
        new = np.diff(tread, axis=1) > 1e-7  # a wheel with more tread than a lap before
        used = new.all(axis=0).sum() + 0.5 * (new.sum(axis=0) == 2).sum()
        assert used <= sets, (c, used, sets)


@SLOW
@given(
    st.floats(300.0, 1200.0), st.floats(120.0, 400.0), st.sampled_from(SPECS), st.integers(0, 99)
)
def test_no_stop_under_the_safety_car_unless_the_car_must(
    start: float, length: float, spec: str, seed: int
) -> None:
    s = quiet_race(**{"rules.max_stint_driving_s": 10_000.0, "rules.max_total_driving_s": 10_000.0})
    sc = ForcedEvent(ForcedKind.SAFETY_CAR, start_s=start, end_s=start + length)
    r = simulate(s, StrategyAssignment(default=make_strategy(spec)), 1, seed, forced=[sc],
                 record_laps=True)  # fmt: skip
    delay = s.rules.neutralisation_delay_s
    for c, entry in enumerate(s.entries):
        laps = _car_laps(r, c)
        t = laps["race_time_s"]
        under = (t > start + delay) & (t < start + length) & (laps["pit_in"] == 1)
        short = (laps["fuel_end"] < 2.0 * entry.ref_fuel_per_lap) | (
            laps["energy_end"] < 2.0 * entry.ref_energy_per_lap
        )
        assert not (under & ~short).any(), (entry.number, t[under])


@SLOW
@given(st.floats(0.0, 90.0), st.sampled_from(SPECS), st.integers(0, 2**16))
def test_every_stop_lasts_the_minimum_pit_time(min_pit: float, spec: str, seed: int) -> None:
    s = scenario_with(load_scenario("test_race"), **{"rules.min_pit_time_s": min_pit})
    r = simulate(s, StrategyAssignment(default=make_strategy(spec)), 2, seed, record_laps=True)
    assert r.laps is not None
    served = r.laps["pit_time_s"][np.isfinite(r.laps["pit_time_s"])]
    assert served.size and (served >= min_pit - 1e-6).all()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["lemans_24h", "six_hours"]), st.sampled_from(SPECS), st.integers(0, 99))
def test_shipped_fields_with_the_learned_lap_model(name: str, spec: str, seed: int) -> None:
    """A short slice of the 24-hour and six-hour races, on the learned lap model they ship
    with: every lap finite and adding up, a whole classification."""
    s = scenario_with(load_scenario(name), **{"race.duration_h": 0.15})
    assert s.lap_model == "default"
    r = simulate(s, StrategyAssignment(per_car={s.focus_car: make_strategy(spec)}), 1, seed,
                 record_laps=True)  # fmt: skip
    _check_laps_add_up(r)
    assert r.laps_completed.max() >= 2


@SLOW
@given(st.sampled_from([ForcedKind.SAFETY_CAR, ForcedKind.FCY]), st.floats(200.0, 1400.0),
       st.floats(60.0, 300.0), st.integers(0, 2**16))  # fmt: skip
def test_a_forced_neutralisation_happens_as_scripted(kind, start, length, seed) -> None:
    s = load_scenario("test_race")
    ev = ForcedEvent(kind, start_s=start, end_s=start + length)
    r = simulate(s, StrategyAssignment(), 1, seed, forced=[ev], record_laps=True)
    fp = r.flag_periods
    code = {ForcedKind.SAFETY_CAR: 3, ForcedKind.FCY: 2}[kind]
    mine = (
        (fp["kind"] == code)
        & np.isclose(fp["start_s"], start)
        & np.isclose(fp["end_s"], start + length)
    )
    assert mine.any(), fp
    _check_laps_add_up(r)


@SLOW
@given(st.integers(1, 40), st.sampled_from(SPECS), st.integers(0, 2**16),
       st.sampled_from(["1", "3"]))  # fmt: skip
def test_a_resumed_race_equals_the_uninterrupted_one(after: int, spec: str, seed: int, car: str):
    s = quiet_race()
    full = drive(s, spec, seed, car=car)
    snap = drive(s, spec, seed, snapshot_after=after, car=car)
    if isinstance(snap, RaceResult):  # the car made fewer decisions than that
        return
    assert_same_race(full, drive(s, spec, seed, start=snap, car=car))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SPECS), st.integers(0, 2**16))
def test_a_strategy_against_itself_differs_by_exactly_zero(spec: str, seed: int) -> None:
    ev = evaluate(load_scenario("test_race"), [spec, spec], 4, seed, chunk_replicas=2)
    (diff,) = ev.comparison.differences
    for name, iv in diff.metrics.items():
        assert iv.estimate == 0.0, name
        assert np.isnan(iv.low) or (iv.low == 0.0 and iv.high == 0.0), (name, iv)


INVALID = [
    ("race.duration_h", st.sampled_from([0.0, -1.0, float("inf"), float("nan")])),
    ("rules.max_stint_driving_s", st.floats(-1e6, 0.0)),
    ("rules.min_total_driving_s", st.floats(-1e6, -1e-3)),
    ("rules.min_pit_time_s", st.floats(-1e6, -1e-3)),
    ("classes.HYPERCAR.refuel_full_s", st.floats(-1e6, -1e-3)),
    ("classes.HYPERCAR.tyre_sets", st.sampled_from([0.0, 0.5, -2.0])),
    ("entries.1.ref_fuel_per_lap", st.floats(1.0001, 50.0)),
    ("entries.1.ref_lap_time_s", st.sampled_from([0.0, -90.0, float("inf")])),
]


@FAST
@given(st.sampled_from(range(len(INVALID))), st.data())
def test_an_invalid_scenario_is_refused_naming_the_key(which: int, data: st.DataObject) -> None:
    path, values = INVALID[which]
    value = data.draw(values)
    with pytest.raises(ScenarioError) as err:
        scenario_with(load_scenario("test_race"), **{path: value})
    assert path.split(".")[-1] in str(err.value)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(fail_after=st.integers(0, 400))
def test_a_file_is_in_the_store_whole_or_not_at_all(
    fail_after: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data import store
    from data.ingest import read_file
    from tests.data.helpers import small_race

    folder = tmp_path / str(fail_after)
    folder.mkdir()
    csv = small_race(folder / "wec_2030_spa_1h_race_analysis.csv")
    result = read_file(csv)
    conn = store.open_store(folder / "s.sqlite")
    real_executemany = sqlite3.Connection.executemany
    calls = {"n": 0}

    class Failing:
        """The connection, failing at its ``fail_after``-th row insert."""

        def __init__(self, inner: sqlite3.Connection) -> None:
            self.inner = inner

        def execute(self, sql, params=()):
            calls["n"] += 1
            if calls["n"] > fail_after and sql.startswith("INSERT"):
                raise sqlite3.OperationalError("injected failure")
            return self.inner.execute(sql, params)

        def executemany(self, sql, rows):
            calls["n"] += 1
            if calls["n"] > fail_after:
                raise sqlite3.OperationalError("injected failure")
            return real_executemany(self.inner, sql, rows)

    try:
        store.write_result(Failing(conn), csv, result)
        written = True
    except sqlite3.OperationalError:
        written = False
    laps = conn.execute("SELECT count(*) FROM laps").fetchone()[0]
    sources = conn.execute("SELECT count(*) FROM sources").fetchone()[0]
    conn.close()
    expected = sum(len(s.laps) for s in result.sessions)
    assert (sources, laps) == ((1, expected) if written else (0, 0))

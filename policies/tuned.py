"""The tuned baseline: the best fixed plan found by grid search on common random numbers.

A fixed plan stops every ``stint_laps`` laps (earlier only when the rules force it) and
changes tyres every ``tyre_stints`` stints, with the engine's rule strategy doing the rest
(:class:`engine.baselines.RuleStrategy`: full tank, driver change at every stop, wet tyres
on a wet track). Every candidate is simulated on the same seed, so each sees the same
weather, incidents and lap noise, and the one with the best mean class position of the car
wins. The search uses its own seed, disjoint from the evaluation's, so the winner is judged
on races it was not chosen on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.backends import Backend
from engine.baselines import RuleStrategy
from engine.evaluate import evaluate
from engine.scenario import Scenario

TYRE_STINTS = (1.0, 2.0, 3.0)


def fixed_plan(stint_laps: float, tyre_stints: float) -> RuleStrategy:
    """A fixed plan as a strategy, named ``fixed:laps=L,tyres=K``."""
    return RuleStrategy(
        name=f"fixed:laps={stint_laps:g},tyres={tyre_stints:g}",
        stint_laps=stint_laps,
        tyre_stints=tyre_stints,
    )


def stint_grid(scenario: Scenario, car: str, shortest: int = 4) -> tuple[float, ...]:
    """Stint lengths worth trying: the longest stint a tank (or energy allocation) allows,
    with the rules' fuel margin, and the ``shortest - 1`` lengths below it."""
    e = scenario.entries[scenario.entry_index(car)]
    use = max(e.ref_fuel_per_lap, e.ref_energy_per_lap if scenario.class_of(e).has_energy else 0)
    longest = math.floor((1.0 - scenario.rules.fuel_margin * use) / use) + 1
    return tuple(float(n) for n in range(max(1, longest - shortest + 1), longest + 1))


@dataclass(frozen=True)
class TunedPlan:
    best: RuleStrategy
    table: list[tuple[str, float, float]]
    """Every candidate: (name, mean class position, half-width of its 95 % interval)."""
    replicas: int
    seed: int


def tune_fixed_plan(
    scenario: Scenario,
    car: str,
    replicas: int,
    seed: int,
    *,
    stints: tuple[float, ...] | None = None,
    tyre_stints: tuple[float, ...] = TYRE_STINTS,
    backend: Backend | None = None,
    progress: bool = False,
) -> TunedPlan:
    """Grid search over stint lengths and tyre multi-stinting for ``car``."""
    stints = stints or stint_grid(scenario, car)
    candidates = [fixed_plan(n, k) for n in stints for k in tyre_stints]
    ev = evaluate(
        scenario,
        candidates,
        replicas,
        seed,
        car=car,
        backend=backend,
        chunk_replicas=min(replicas, 128),
        progress=progress,
    )
    table = [
        (
            s.label,
            s.metrics["class_position"].estimate,
            s.metrics["class_position"].half_width,
        )
        for s in ev.comparison.strategies
    ]
    scores = [m for _, m, _ in table]
    best = candidates[min(range(len(scores)), key=scores.__getitem__)]
    return TunedPlan(best=best, table=table, replicas=replicas, seed=seed)

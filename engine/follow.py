"""``stintsim advise SCENARIO --follow RECORDING``: a shared-memory recording replayed as if
live, with the options ranked at every line crossing of the focus car.

The recording is read record by record (:mod:`engine.recorded_state`), never ahead: at each lap
the focus car completes, the race as the recording has it (the readable state) is taken, and
the engine's race state for the advice is built from it. A recording holds what the game
shows one team: its own car's fuel, tread, compound and driver (telemetry), and the field's
laps, positions and gaps (scoring; the LMU recordings in ``../shared/data/lmu`` list the
player's car only). So the engine state is the scenario's race run to the same lap of the
focus car (as :meth:`engine.whatif.WhatIf.snapshot` runs it, same seed, run on from crossing
to crossing rather than from the start each time), with the focus car's fuel,
energy, tread, compound, tyre age and driver replaced by the recording's where it has them
(:func:`with_recorded`); the printed block says which values came from the recording. Where
the recording has fuel but no virtual energy (rF2 records carry none), the energy keeps the
engine's ratio of energy to fuel at that lap (``energy_from_fuel``): both are used lap by lap
and filled at the same stops, so a stop the recording shows refills both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.recorded_state import focus_crossings
from engine.result import RaceSnapshot
from engine.scenario import Scenario
from engine.whatif import WhatIf
from world_model.interface import Compound

RECORDED_FIELDS = ("fuel", "energy", "tread", "compound", "tyre_age_laps", "driver")
"""The focus car's values a recording can give the engine state (in readable-state names)."""


def with_recorded(
    snapshot: RaceSnapshot, scenario: Scenario, car: str, recorded: dict[str, Any]
) -> tuple[RaceSnapshot, list[str]]:
    """``snapshot`` with car ``car``'s fuel, energy, tread, compound, tyre age and driver set
    to the recording's values (a readable-state car; ``null`` leaves the engine's value), and
    the names of the fields set. A driver the scenario does not list is left as it is."""
    c = scenario.entry_index(car)
    state = copy.deepcopy(snapshot.state)
    applied = []
    if recorded.get("fuel") is not None:
        engine_fuel = float(state["fuel"][0][c])
        state["fuel"][0][c] = float(recorded["fuel"])
        applied.append("fuel")
        if recorded.get("energy") is None and engine_fuel > 0:
            # no energy in the recording: keep the engine's ratio of energy to fuel (both
            # are used lap by lap and filled at the same stops), so a recorded refill is
            # not left with the engine's last stint's energy
            energy = float(state["energy"][0][c]) * float(recorded["fuel"]) / engine_fuel
            state["energy"][0][c] = min(1.0, energy)
            applied.append("energy_from_fuel")
    if recorded.get("energy") is not None:
        state["energy"][0][c] = float(recorded["energy"])
        applied.append("energy")
    if recorded.get("tread") is not None:
        state["tread"][0][c] = [float(x) for x in recorded["tread"]]
        applied.append("tread")
    if recorded.get("compound") is not None:
        state["compound"][0][c] = int(Compound[str(recorded["compound"]).upper()])
        applied.append("compound")
    if recorded.get("tyre_age_laps") is not None:
        state["tyre_age"][0][c] = int(recorded["tyre_age_laps"])
        applied.append("tyre_age_laps")
    names = [d.name for d in scenario.entries[c].drivers]
    if recorded.get("driver") in names:
        state["driver"][0][c] = names.index(recorded["driver"])
        applied.append("driver")
    return RaceSnapshot(snapshot.scenario_name, snapshot.race_time_s, state), applied


@dataclass(frozen=True)
class FollowPoint:
    """One line crossing of the focus car in the recording, and the state to advise from."""

    crossing: int
    """1 for the first crossing replayed, and so on."""
    record: int
    lap: int
    recorded: dict[str, Any]
    """The readable state the recording gives (all its cars)."""
    start: WhatIf | None
    """``w`` started from the engine state at that lap (None: the engine's race does not get
    there, ``skipped`` says why)."""
    from_recording: tuple[str, ...]
    skipped: str | None = None


class _EngineRace:
    """The scenario's race of the focus car, run on from crossing to crossing (one race, the
    focus car on its scenario strategy): :meth:`at_lap` is :meth:`WhatIf.snapshot` at each
    lap without running the race from the start again for every crossing."""

    def __init__(self, w: WhatIf) -> None:
        import torch

        from engine.baselines import make_strategy

        car = w.focus
        self.strategy = make_strategy(w.scenario.entries[w.scenario.entry_index(car)].strategy)
        self.sim = w.focus_race(1)
        self.generator = torch.Generator().manual_seed(w.seed)
        self.car = car

    def at_lap(self, lap: int) -> RaceSnapshot:
        """The race state once the car has completed ``lap`` (the decision there served);
        ValueError if the car's race ends before it."""
        while (point := self.sim.advance()) is not None:
            done = int(point.obs.lap[0].round())
            self.sim.act(
                point.replicas, self.strategy.decide(point.obs, point.legal, self.generator)
            )
            if done >= lap:
                return self.sim.snapshot(0)
        raise ValueError(f"car #{self.car} did not complete lap {lap} in the engine's race")


def follow(w: WhatIf, recording: str) -> Iterator[FollowPoint]:
    """The focus car's line crossings in ``recording``, each with the engine state to advise
    from, yielded as the replay reaches them."""
    car = w.focus
    race = _EngineRace(w)
    for k, moment in enumerate(focus_crossings(recording, car), start=1):
        mine = next(c for c in moment.state["cars"] if c["number"] == car)
        lap = int(mine["laps"])
        try:
            snap = race.at_lap(lap)
        except ValueError as exc:
            yield FollowPoint(k, moment.record, lap, moment.state, None, (), str(exc))
            continue
        snap, applied = with_recorded(snap, w.scenario, car, mine)
        yield FollowPoint(k, moment.record, lap, moment.state, w.start_from(snap), tuple(applied))

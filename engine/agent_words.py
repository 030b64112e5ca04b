"""What an agent would do now, in words: "pit now, fill fuel to 78 %, energy to 81 %, change
tyres to medium, driver A. Two in".

The agent is asked through the engine's strategy interface only (``decide(observation, legal,
generator)`` returning an index into :data:`engine.actions.ACTIONS`), so a trained agent
(``policies.agents:load:path=CHECKPOINT``), a rule baseline or a plan file all answer the same way,
and a change of the action table reaches the words through :data:`ACTIONS` alone. From a
race state, the focus car's race is run on to its next line crossing (one race, the other cars
on their scenario strategies), the agent decides there, and the decision is served: the levels
said are the fuel and energy the car leaves the pit with in that race (LMU's refill sets the
level to fill to), the driver the one in the car after the stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engine.actions import ACTIONS, Tyres
from engine.strategy import Strategy
from engine.whatif import WhatIf
from world_model.interface import Compound, PaceMode


@dataclass(frozen=True)
class AgentChoice:
    """The agent's decision at the car's next line crossing and what it leads to."""

    agent: str
    lap: int
    """The lap the car completes at that crossing."""
    action: str
    """The decision as the engine writes it (``engine.actions.Action``)."""
    pit: bool
    fuel_to: float | None
    """Fuel level after the stop, fraction of the tank (None: no stop)."""
    energy_to: float | None
    """Energy level after the stop, fraction of the allocation (None: no stop or no energy)."""
    tyres: str | None
    driver_in: str | None
    """The driver in the car after a stop with a driver change (None otherwise)."""
    words: str


def agent_spec(text: str) -> str:
    """A checkpoint file is read as ``policies.agents:load:path=FILE``; anything else is a strategy
    spec (a rule baseline, ``plan:FILE``, ...)."""
    return f"policies.agents:load:path={text}" if Path(text).is_file() else text


def _tyre_words(tyres: Tyres, fitted: Compound) -> str:
    if tyres == Tyres.KEEP:
        return "keep the tyres"
    if tyres == Tyres.TWO_SAME:
        return f"change the two most worn tyres ({fitted.name.lower()})"
    assert tyres.compound is not None
    same = " (same compound)" if tyres.compound == fitted else ""
    return f"change tyres to {tyres.compound.name.lower()}{same}"


def agent_choice(w: WhatIf, agent: Strategy) -> AgentChoice:
    """Ask ``agent`` for the focus car's decision at its next crossing from ``w.start``."""
    if w.start is None:
        raise ValueError("the agent is asked from a race state: use start_from(...) first")
    car = w.focus
    c = w.scenario.entry_index(car)
    entry = w.scenario.entries[c]
    sim = w.focus_race(1, w.start)
    point = sim.advance()
    if point is None:
        raise ValueError(f"car #{car} crosses the line no more in this race: nothing to decide")
    lap = int(point.obs.lap[0].round())
    fitted = Compound(int(w.start.state["compound"][0][c]))
    generator = torch.Generator().manual_seed(w.seed)
    index = int(agent.decide(point.obs, point.legal, generator)[0])
    act = ACTIONS[index]
    pace = act.pace.name.lower()
    if not act.pit:
        words = "stay out" + ("" if act.pace == PaceMode.NORMAL else f", {pace} pace")
        return AgentChoice(agent.name, lap, str(act), False, None, None, None, None, words)
    sim.act(point.replicas, torch.tensor([index]))
    after = sim.snapshot(0).state
    fuel_to = float(after["fuel"][0][c])
    has_energy = w.scenario.class_of(entry).has_energy
    energy_to = float(after["energy"][0][c]) if has_energy else None
    driver_in = entry.drivers[int(after["driver"][0][c])].name if act.driver_change else None
    parts = ["pit now", f"fill fuel to {100 * fuel_to:.0f} %"]
    if energy_to is not None:
        parts.append(f"energy to {100 * energy_to:.0f} %")
    parts.append(_tyre_words(act.tyres, fitted))
    if driver_in is not None:
        parts.append(f"driver {driver_in} in")
    if act.repair:
        parts.append("repair the damage")
    if act.pace != PaceMode.NORMAL:
        parts.append(f"then {pace} pace")
    return AgentChoice(
        agent.name,
        lap,
        str(act),
        True,
        round(fuel_to, 4),
        None if energy_to is None else round(energy_to, 4),
        act.tyres.name.lower(),
        driver_in,
        ", ".join(parts),
    )

"""The decisions a team makes when its car crosses the line, as one discrete table.

Every strategy (rule baseline, scripted plan, dynamic-programming reference, trained agent)
answers with an index into :data:`ACTIONS`; the engine decodes it with the batched lookup
tensors of :class:`ActionTable`. One table keeps rule baselines and agents on exactly the
same decisions, and gives reinforcement learning a fixed discrete action space with a mask of
legal entries.

An action is a pace mode for the coming lap plus either "stay out" or a pit stop with a fuel
amount, a tyre choice, whether to change driver and whether to repair damage.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import IntEnum

import torch

from world_model.interface import Compound, PaceMode


class Fuel(IntEnum):
    """How much fuel (or virtual energy) to put in at a stop."""

    NONE = 0
    """No stop: nothing added."""
    FULL = 1
    """Fill the tank (or the stint's energy allocation)."""
    TO_FINISH = 2
    """Enough to reach the finish with a margin, capped at a full tank (a splash)."""


class Tyres(IntEnum):
    """Which tyres to change at a stop."""

    KEEP = 0
    FOUR_SOFT = 1
    FOUR_MEDIUM = 2
    FOUR_HARD = 3
    FOUR_WET = 4
    TWO_SAME = 5
    """The two most-worn tyres (one axle), same compound as fitted."""

    @property
    def compound(self) -> Compound | None:
        return {
            Tyres.FOUR_SOFT: Compound.SOFT,
            Tyres.FOUR_MEDIUM: Compound.MEDIUM,
            Tyres.FOUR_HARD: Compound.HARD,
            Tyres.FOUR_WET: Compound.WET,
        }.get(self)

    @property
    def count(self) -> int:
        return {Tyres.KEEP: 0, Tyres.TWO_SAME: 2}.get(self, 4)


@dataclass(frozen=True)
class Action:
    """One decision at the line."""

    pace: PaceMode
    pit: bool
    fuel: Fuel = Fuel.NONE
    tyres: Tyres = Tyres.KEEP
    driver_change: bool = False
    repair: bool = False

    def __str__(self) -> str:
        if not self.pit:
            return f"stay out, {self.pace.name.lower()}"
        parts = [f"pit: fuel {self.fuel.name.lower()}", f"tyres {self.tyres.name.lower()}"]
        if self.driver_change:
            parts.append("driver change")
        if self.repair:
            parts.append("repair")
        return ", ".join(parts) + f"; then {self.pace.name.lower()}"


def _all_actions() -> tuple[Action, ...]:
    actions: list[Action] = []
    for pace in PaceMode:
        actions.append(Action(pace=pace, pit=False))
        for fuel, tyres, driver, repair in itertools.product(
            (Fuel.FULL, Fuel.TO_FINISH), Tyres, (False, True), (False, True)
        ):
            actions.append(Action(pace, True, fuel, tyres, driver, repair))
    return tuple(actions)


ACTIONS: tuple[Action, ...] = _all_actions()
"""Every decision, in a fixed order: index ``i`` means ``ACTIONS[i]``."""

N_ACTIONS = len(ACTIONS)

_INDEX = {a: i for i, a in enumerate(ACTIONS)}


def action_index(
    pace: PaceMode = PaceMode.NORMAL,
    pit: bool = False,
    fuel: Fuel = Fuel.FULL,
    tyres: Tyres = Tyres.KEEP,
    driver_change: bool = False,
    repair: bool = False,
) -> int:
    """The table index of a decision (fuel and tyre choices are ignored when staying out)."""
    if not pit:
        return _INDEX[Action(pace, False)]
    return _INDEX[Action(pace, True, fuel, tyres, driver_change, repair)]


class ActionTable:
    """:data:`ACTIONS` as lookup tensors, for decoding a batch of indices in one gather."""

    def __init__(self) -> None:
        self.pace = torch.tensor([int(a.pace) for a in ACTIONS], dtype=torch.int64)
        self.pit = torch.tensor([a.pit for a in ACTIONS], dtype=torch.bool)
        self.fuel = torch.tensor([int(a.fuel) for a in ACTIONS], dtype=torch.int64)
        self.tyres = torch.tensor([int(a.tyres) for a in ACTIONS], dtype=torch.int64)
        self.tyre_count = torch.tensor([a.tyres.count for a in ACTIONS], dtype=torch.int64)
        self.compound = torch.tensor(
            [-1 if a.tyres.compound is None else int(a.tyres.compound) for a in ACTIONS],
            dtype=torch.int64,
        )
        """New compound code, or -1 where the compound stays as fitted."""
        self.driver_change = torch.tensor([a.driver_change for a in ACTIONS], dtype=torch.bool)
        self.repair = torch.tensor([a.repair for a in ACTIONS], dtype=torch.bool)


ACTION_TABLE = ActionTable()

"""The one interface every strategy implements: observation and legal mask in, actions out.

The engine calls :meth:`Strategy.decide` once per clock window with every car of that
strategy that crossed the line in the window, across all replicas, so a strategy is a
batched function (a rule written with tensor operations, or a network).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import torch

from engine.actions import N_ACTIONS


@dataclass(frozen=True)
class Observation:
    """What a team knows about its car when it crosses the line; every field is ``[n]``
    (``tread`` is ``[n, 4]``), one row per deciding car. Floats are ``float32``, codes and
    indices ``int64``."""

    replica: torch.Tensor
    """Replica index of the row (int64)."""
    car: torch.Tensor
    """Car index in the scenario's entry list (int64)."""
    race_time_s: torch.Tensor
    """Race time at the line [s]."""
    race_time_left_s: torch.Tensor
    """Time left on the race clock [s] (laps left x reference lap time for lap races)."""
    lap: torch.Tensor
    """Laps completed (float)."""
    class_position: torch.Tensor
    """Position in class, 1 = leading (float)."""
    overall_position: torch.Tensor
    """Position overall, 1 = leading (float)."""
    gap_ahead_s: torch.Tensor
    """Gap to the car ahead in class [s] (0 for the class leader)."""
    gap_behind_s: torch.Tensor
    """Gap to the car behind in class [s] (0 for the last car)."""
    fuel: torch.Tensor
    """Fuel left, fraction of tank."""
    energy: torch.Tensor
    """Virtual energy left, fraction of allocation (1 for cars without one)."""
    fuel_laps_left: torch.Tensor
    """Green laps the fuel and energy left allow at the nominal consumption (float)."""
    tread: torch.Tensor
    """Tread left per wheel, fraction, ``[n, 4]``."""
    tyre_age_laps: torch.Tensor
    """Laps on the current tyres (float)."""
    compound: torch.Tensor
    """``Compound`` code fitted (int64)."""
    tyre_sets_left: torch.Tensor
    """Sets of four new tyres still allowed (float; large if unlimited)."""
    damage: torch.Tensor
    """Unrepaired damage, 0 to 1."""
    driver: torch.Tensor
    """Index of the driver in the car (int64)."""
    driver_time_s: torch.Tensor
    """Total driving time of the current driver so far [s]."""
    stint_laps: torch.Tensor
    """Laps since the last pit stop (float)."""
    flag: torch.Tensor
    """``FlagState`` code at the line (int64)."""
    wetness: torch.Tensor
    """Track wetness, 0 to 1."""
    rain_forecast: torch.Tensor
    """Mean rain intensity expected over the next hour, 0 to 1 (the team's forecast)."""
    ref_lap_time_s: torch.Tensor
    """The car's nominal green lap time [s]."""
    pit_loss_s: torch.Tensor
    """Time a drive-through of the pit lane costs over a green lap [s]."""

    @property
    def size(self) -> int:
        return int(self.lap.shape[0])

    def index(self, rows: torch.Tensor) -> Observation:
        """The observation of the selected rows (a boolean mask or an index tensor)."""
        if rows.dtype == torch.bool:
            rows = rows.nonzero().squeeze(1)
        # index_select costs a fraction of advanced indexing at the stepper's batch sizes.
        return Observation(
            **{f.name: getattr(self, f.name).index_select(0, rows) for f in fields(self)}
        )


@runtime_checkable
class Strategy(Protocol):
    """Decides, for a batch of cars at the line, what each does next.

    ``legal`` is a boolean ``[n, N_ACTIONS]`` mask (every row has at least one legal
    action); the returned int64 ``[n]`` tensor must pick legal actions. ``generator`` is the
    only source of randomness a strategy may use.
    """

    name: str

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor: ...


def check_decisions(actions: torch.Tensor, legal: torch.Tensor, strategy: str) -> None:
    """Raise if a strategy returned a malformed or illegal decision."""
    if actions.dtype != torch.int64 or actions.shape != legal.shape[:1]:
        raise ValueError(
            f"strategy {strategy!r} returned {tuple(actions.shape)} {actions.dtype}, "
            f"expected int64 of shape ({legal.shape[0]},)"
        )
    if legal.shape[1] != N_ACTIONS:
        raise ValueError(f"legal mask has {legal.shape[1]} actions, expected {N_ACTIONS}")
    chosen = legal.gather(1, actions.clamp(0, N_ACTIONS - 1).unsqueeze(1)).squeeze(1)
    if bool(((actions < 0) | (actions >= N_ACTIONS) | ~chosen).any()):
        bad = int(torch.nonzero(~chosen | (actions < 0) | (actions >= N_ACTIONS))[0, 0])
        raise ValueError(f"strategy {strategy!r} chose illegal action {int(actions[bad])}")

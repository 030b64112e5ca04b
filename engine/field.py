"""The field as tensors: per-car constants of a scenario, gathered by car index in the hot loop.

Everything here is fixed for a race (reference pace, class, team, drivers, rules per class), so
it is built once per scenario and indexed with ``[car]`` or ``[row_car]`` gathers; nothing in
the stepper looks up a Python object per car.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.scenario import Scenario
from world_model.interface import Compound

UNLIMITED_SETS = 99.0
"""Tyre sets shown to strategies when a class has no limit."""


@dataclass(frozen=True)
class FieldTable:
    """Per-car constants ``[C]`` (``[C, D]`` for drivers, ``[C, 4]`` for compounds)."""

    n_cars: int
    n_classes: int
    n_teams: int
    max_drivers: int
    ref_lap_time_s: torch.Tensor
    ref_fuel_per_lap: torch.Tensor
    ref_energy_per_lap: torch.Tensor
    ref_wear_per_lap: torch.Tensor
    class_index: torch.Tensor
    team_index: torch.Tensor
    n_drivers: torch.Tensor
    driver_skill: torch.Tensor
    """``[C, D]``; padded with 0 beyond a car's drivers."""
    has_energy: torch.Tensor
    refuel_full_s: torch.Tensor
    tyre_sets: torch.Tensor
    """Dry sets allowed (``UNLIMITED_SETS`` if no limit)."""
    compound_allowed: torch.Tensor
    """``[C, 4]`` bool."""
    start_compound: torch.Tensor
    slower_class: torch.Tensor
    """``[K, K]`` float: 1 where class j is slower than class i (listed later in the scenario)."""

    @staticmethod
    def build(s: Scenario) -> FieldTable:
        classes = {c.name: i for i, c in enumerate(s.classes)}
        teams: dict[str, int] = {}
        for e in s.entries:
            teams.setdefault(e.team, len(teams))
        d_max = max(len(e.drivers) for e in s.entries)
        skill = torch.zeros(len(s.entries), d_max)
        allowed = torch.zeros(len(s.entries), len(Compound), dtype=torch.bool)
        for i, e in enumerate(s.entries):
            skill[i, : len(e.drivers)] = torch.tensor([d.skill for d in e.drivers])
            allowed[i, list(s.class_of(e).compound_codes)] = True
        k = len(s.classes)
        order = torch.arange(k)
        sets = [s.class_of(e).tyre_sets for e in s.entries]

        def f32(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32)

        return FieldTable(
            n_cars=len(s.entries),
            n_classes=k,
            n_teams=len(teams),
            max_drivers=d_max,
            ref_lap_time_s=f32([e.ref_lap_time_s for e in s.entries]),
            ref_fuel_per_lap=f32([e.ref_fuel_per_lap for e in s.entries]),
            ref_energy_per_lap=f32(
                [e.ref_energy_per_lap if s.class_of(e).has_energy else 0.0 for e in s.entries]
            ),
            ref_wear_per_lap=f32([e.ref_wear_per_lap for e in s.entries]),
            class_index=torch.tensor([classes[e.car_class] for e in s.entries]),
            team_index=torch.tensor([teams[e.team] for e in s.entries]),
            n_drivers=torch.tensor([len(e.drivers) for e in s.entries]),
            driver_skill=skill,
            has_energy=torch.tensor(
                [s.class_of(e).has_energy and e.ref_energy_per_lap > 0 for e in s.entries]
            ),
            refuel_full_s=f32([s.class_of(e).refuel_full_s for e in s.entries]),
            tyre_sets=f32([UNLIMITED_SETS if v < 0 else v for v in sets]),
            compound_allowed=allowed,
            start_compound=torch.tensor(
                [int(Compound[e.start_compound.upper()]) for e in s.entries]
            ),
            slower_class=(order.unsqueeze(0) > order.unsqueeze(1)).float(),
        )

"""Which decisions are legal for each car at the line: the sporting rules as a boolean mask.

A legal plan never breaks a rule: a car that cannot make another lap on its fuel or energy, or
runs on a flat tyre, must stop; a driver who would pass the maximum stint or total driving
time before the next chance to change must be replaced now; the pit lane is closed under the
safety car (except for a car that must stop); tyre sets are counted; repairs need damage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.actions import ACTION_TABLE, N_ACTIONS, Tyres
from engine.scenario import Rules
from world_model.interface import Compound, FlagState

_DRY = torch.tensor([True, True, True, False])
"""Compounds counted against the dry tyre allocation (by Compound code)."""


@dataclass(frozen=True)
class CarsAtLine:
    """What the rules look at, one row per deciding car (``[n]``; ``tread`` ``[n, 4]``)."""

    fuel: torch.Tensor
    energy: torch.Tensor
    has_energy: torch.Tensor
    ref_fuel_per_lap: torch.Tensor
    ref_energy_per_lap: torch.Tensor
    ref_lap_time_s: torch.Tensor
    tread: torch.Tensor
    compound: torch.Tensor
    compound_allowed: torch.Tensor
    """``[n, 4]`` bool."""
    tyre_sets_left: torch.Tensor
    damage: torch.Tensor
    n_drivers: torch.Tensor
    stint_drive_s: torch.Tensor
    current_total_s: torch.Tensor
    """Driving time so far of the driver in the car [s]."""
    next_total_s: torch.Tensor
    """Driving time so far of the driver who would take over [s] (inf if none)."""
    others_deficit_s: torch.Tensor
    """Driving time the other drivers still owe to reach the minimum [s]."""
    time_left_s: torch.Tensor
    flag: torch.Tensor


def next_lap_bound_s(
    rules: Rules, ref_lap_time_s: torch.Tensor, pit_lane_loss_s: float
) -> torch.Tensor:
    """A generous upper bound of the time until the car's next chance to change driver [s]:
    the slowest flag lap, 30 % margin, plus a stop."""
    worst = max(rules.fcy.lap_time_factor, rules.safety_car.lap_time_factor, 1.0)
    return ref_lap_time_s.double() * worst * 1.3 + pit_lane_loss_s + 120.0 + rules.puncture_loss_s


def legal_mask(cars: CarsAtLine, rules: Rules, pit_lane_loss_s: float) -> torch.Tensor:
    """Boolean ``[n, N_ACTIONS]``; every row has at least one legal action."""
    t = ACTION_TABLE
    bound = next_lap_bound_s(rules, cars.ref_lap_time_s, pit_lane_loss_s)
    fuel_short = cars.fuel < cars.ref_fuel_per_lap * rules.fuel_margin
    energy_short = cars.has_energy & (cars.energy < cars.ref_energy_per_lap * rules.fuel_margin)
    flat = cars.tread.min(dim=1).values <= 0.0
    several = cars.n_drivers > 1
    over_max = (cars.stint_drive_s + bound > rules.max_stint_driving_s) | (
        cars.current_total_s + bound > rules.max_total_driving_s
    )
    owes = (rules.min_total_driving_s > 0) & (
        cars.time_left_s <= cars.others_deficit_s + 2.0 * bound
    )
    can_change = several & (cars.next_total_s + bound <= rules.max_total_driving_s)
    must_change = can_change & (over_max | (owes & (cars.others_deficit_s > 0)))
    must_stop = fuel_short | energy_short | flat | must_change
    pit_closed = rules.pit_closed_under_sc & (cars.flag == int(FlagState.SAFETY_CAR)) & ~must_stop

    pit = t.pit.unsqueeze(0)
    stay_ok = (~must_stop).unsqueeze(1) & ~pit
    comp = t.compound.clamp(min=0)
    compound_ok = (t.compound < 0).unsqueeze(0) | cars.compound_allowed[:, comp]
    new_dry = (t.tyre_count == 4) & _DRY[comp] & (t.compound >= 0)
    two_dry = (t.tyre_count == 2).unsqueeze(0) & _DRY[cars.compound].unsqueeze(1)
    sets_need = new_dry.float().unsqueeze(0) + 0.5 * two_dry.float()
    sets_ok = sets_need <= cars.tyre_sets_left.unsqueeze(1) + 1e-6
    keep = (t.tyres == int(Tyres.KEEP)).unsqueeze(0)
    flat_ok = ~(flat.unsqueeze(1) & keep)
    driver_ok = torch.where(
        t.driver_change.unsqueeze(0), can_change.unsqueeze(1), ~must_change.unsqueeze(1)
    )
    repair_ok = ~t.repair.unsqueeze(0) | (cars.damage > 0).unsqueeze(1)
    pit_ok = (
        pit & (~pit_closed).unsqueeze(1) & compound_ok & sets_ok & flat_ok & driver_ok & repair_ok
    )
    legal = stay_ok | pit_ok
    none = ~legal.any(dim=1)
    if bool(none.any()):
        # Nothing satisfies every rule (e.g. a flat tyre with no sets left): a plain stop.
        fallback = pit & keep & ~t.driver_change.unsqueeze(0) & ~t.repair.unsqueeze(0)
        legal = torch.where(none.unsqueeze(1), fallback.expand_as(legal), legal)
    assert legal.shape[1] == N_ACTIONS
    return legal


def is_dry(compound: torch.Tensor) -> torch.Tensor:
    """True where a :class:`Compound` code counts against the dry allocation."""
    return compound != int(Compound.WET)

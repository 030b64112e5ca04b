"""What a pit stop does and how long it takes, for a batch of stopping cars.

The stationary time is the longest of the work done in parallel, at least the minimum pit
time: refuelling (time proportional to the amount, fuel and virtual energy filled together)
and the tyre change add up unless the rules let them overlap; the driver change runs beside
them; repairs come on top (the car is pushed into the garage). The car also loses the pit
lane's drive-through time and waits while its team's garage serves a team-mate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.actions import ACTION_TABLE, Fuel, Tyres
from engine.scenario import Rules
from world_model.interface import Compound


@dataclass(frozen=True)
class StopWork:
    """The work of ``n`` stops and its durations [s]."""

    fuel_to: torch.Tensor
    """Fuel after the stop, fraction of tank."""
    energy_to: torch.Tensor
    refuel_s: torch.Tensor
    tyre_s: torch.Tensor
    driver_s: torch.Tensor
    repair_s: torch.Tensor
    stationary_s: torch.Tensor


@dataclass(frozen=True)
class StoppingCars:
    """The ``n`` cars that stop, as the stop's work needs them; every field ``[n]``."""

    fuel: torch.Tensor
    """Fuel on arrival, fraction of tank."""
    energy: torch.Tensor
    """Virtual energy on arrival, fraction of allocation."""
    has_energy: torch.Tensor
    """The class runs on a virtual-energy allocation (bool)."""
    ref_fuel_per_lap: torch.Tensor
    ref_energy_per_lap: torch.Tensor
    laps_left: torch.Tensor
    """Estimated laps to the finish (TO_FINISH fills for those plus ``margin_laps``)."""
    refuel_full_s: torch.Tensor
    """Time to fill an empty tank [s]."""
    repair_time_s: torch.Tensor
    """Time a repair of the car's damage takes [s] (0 undamaged)."""


def plan_stop(
    actions: torch.Tensor, cars: StoppingCars, rules: Rules, margin_laps: float = 1.0
) -> StopWork:
    """Durations of the stops chosen by ``actions`` (``[n]`` indices of pitting cars);
    TO_FINISH fills for the laps left plus ``margin_laps``."""
    t = ACTION_TABLE
    kind = t.fuel[actions]
    fuel, energy, laps_left = cars.fuel, cars.energy, cars.laps_left
    need_fuel = ((laps_left + margin_laps) * cars.ref_fuel_per_lap).clamp(max=1.0)
    need_energy = ((laps_left + margin_laps) * cars.ref_energy_per_lap).clamp(max=1.0)
    to_finish = kind == int(Fuel.TO_FINISH)
    fuel_to = torch.where(to_finish, torch.maximum(need_fuel, fuel), torch.ones_like(fuel))
    energy_to = torch.where(
        cars.has_energy,
        torch.where(to_finish, torch.maximum(need_energy, energy), torch.ones_like(energy)),
        energy,
    )
    added = torch.maximum(fuel_to - fuel, energy_to - energy).clamp(min=0.0)
    refuel_s = added.double() * cars.refuel_full_s.double()
    count = t.tyre_count[actions]
    tyre_s = torch.where(
        count == 4,
        torch.full_like(refuel_s, rules.tyre_change_4_s),
        torch.where(count == 2, torch.full_like(refuel_s, rules.tyre_change_2_s), 0.0),
    )
    driver_s = t.driver_change[actions].double() * rules.driver_change_s
    service = torch.maximum(refuel_s, tyre_s) if rules.refuel_with_tyres else refuel_s + tyre_s
    service = torch.maximum(service, driver_s).clamp(min=rules.min_pit_time_s)
    repair_s = torch.where(t.repair[actions], cars.repair_time_s.double(), 0.0)
    return StopWork(
        fuel_to=fuel_to,
        energy_to=energy_to,
        refuel_s=refuel_s,
        tyre_s=tyre_s,
        driver_s=driver_s,
        repair_s=repair_s,
        stationary_s=service + repair_s,
    )


def fit_tyres(
    actions: torch.Tensor, tread: torch.Tensor, compound: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tread, compound, tyre-age reset mask, dry sets used) after the stop's tyre change.

    TWO_SAME replaces the axle (front or rear) with less tread left.
    """
    t = ACTION_TABLE
    tyres = t.tyres[actions]
    four = t.tyre_count[actions] == 4
    two = tyres == int(Tyres.TWO_SAME)
    new_comp = torch.where(four, t.compound[actions], compound)
    front_worse = tread[:, :2].sum(dim=1) <= tread[:, 2:].sum(dim=1)
    axle = torch.stack([front_worse, front_worse, ~front_worse, ~front_worse], dim=1)
    replace = four.unsqueeze(1) | (two.unsqueeze(1) & axle)
    new_tread = torch.where(replace, torch.ones_like(tread), tread)
    dry_new = new_comp != int(Compound.WET)
    sets_used = torch.where(four & dry_new, 1.0, torch.where(two & dry_new, 0.5, 0.0))
    return new_tread, new_comp, four, sets_used


def garage_queue(
    arrival_s: torch.Tensor,
    stationary_s: torch.Tensor,
    garage_key: torch.Tensor,
    garage_free_s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(wait [s], garage free-again times) of stops served first come, first served.

    ``garage_key`` (``[n]``) indexes the flat ``garage_free_s`` (one garage per team per
    replica); cars of one garage in the same batch are served in order of arrival.
    """
    free = garage_free_s.clone()
    wait = torch.zeros_like(arrival_s)
    order = torch.argsort(arrival_s, stable=True)
    key_sorted = garage_key[order]
    # Rank of each stop among the stops of its garage in this batch (0 = first to arrive).
    by_key = torch.argsort(key_sorted, stable=True)
    ks = key_sorted[by_key]
    first = torch.ones_like(ks, dtype=torch.bool)
    first[1:] = ks[1:] != ks[:-1]
    idx = torch.arange(ks.numel())
    start_of_run = torch.cummax(torch.where(first, idx, 0), dim=0).values
    rank_sorted = torch.empty_like(idx)
    rank_sorted[by_key] = idx - start_of_run
    rank = torch.empty_like(idx)
    rank[order] = rank_sorted
    for k in range(int(rank.max()) + 1 if rank.numel() else 0):
        sel = rank == k
        key = garage_key[sel]
        start = torch.maximum(arrival_s[sel], free[key])
        wait[sel] = start - arrival_s[sel]
        free[key] = start + stationary_s[sel]
    return wait, free

"""Which decisions are legal for each car at the line: the sporting rules as a boolean mask.

A legal plan never breaks a rule: a car that cannot make another lap on its fuel or energy, or
runs on a flat tyre, must stop; a driver who would pass the maximum stint or total driving
time before the next chance to change must be replaced now; the pit lane is closed under the
safety car (except for a car that must stop); tyre sets are counted; repairs need damage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.actions import ACTION_TABLE, ACTIONS, N_ACTIONS, Tyres
from engine.scenario import Rules
from world_model.interface import Compound, FlagState

_DRY = torch.tensor([True, True, True, False])
"""Compounds counted against the dry tyre allocation (by Compound code)."""
_TYRE_COMPOUND = torch.tensor([-1 if t.compound is None else int(t.compound) for t in Tyres])
_TYRE_NEW_DRY = torch.tensor([float(t.count == 4 and t.compound != Compound.WET) for t in Tyres])
"""Dry sets a tyre choice uses (TWO_SAME is counted from the compound fitted)."""
_TYRE_TWO = torch.tensor([float(t == Tyres.TWO_SAME) for t in Tyres])
_N_COMBOS = len(Tyres) * 2 * 2
_ANY_COMPOUND = (_TYRE_COMPOUND < 0).unsqueeze(1)
"""[6, 1]: the tyre choices that keep the compound fitted (always allowed)."""
_OPEN, _STAY = 10, 11
"""Rows of the per-row choice table (after 6 tyre rows, 2 driver rows, 2 repair rows)."""
_COMBO_TYRES = torch.tensor([t for t in range(len(Tyres)) for _ in range(4)] + [_STAY])
_COMBO_DRIVER = torch.tensor([6 + d for _ in Tyres for d in (0, 1) for _ in (0, 1)] + [_STAY])
_COMBO_REPAIR = torch.tensor([8 + r for _ in Tyres for _ in (0, 1) for r in (0, 1)] + [_STAY])
_COMBO_OPEN = torch.tensor([_OPEN] * _N_COMBOS + [_STAY])
_COLUMN_OF_ACTION = torch.tensor(
    [
        (int(a.tyres) * 4 + int(a.driver_change) * 2 + int(a.repair)) if a.pit else _N_COMBOS
        for a in ACTIONS
    ]
)
"""For each action, its column in the per-row [24 pit combinations + stay out] table."""
_PLAIN_STOP = (
    ACTION_TABLE.pit
    & (ACTION_TABLE.tyres == int(Tyres.KEEP))
    & ~(ACTION_TABLE.driver_change | ACTION_TABLE.repair)
)


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
    bound = next_lap_bound_s(rules, cars.ref_lap_time_s, pit_lane_loss_s)
    fuel_short = cars.fuel < cars.ref_fuel_per_lap * rules.fuel_margin
    energy_short = cars.has_energy & (cars.energy < cars.ref_energy_per_lap * rules.fuel_margin)
    flat = cars.tread.amin(dim=1) <= 0.0
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

    # Legality does not depend on pace or fuel amount: decide it per (tyres, driver change,
    # repair) combination -- 24 rows -- then spread it over the table in one gather. Rows are
    # built transposed ([choices, n]) so every operation is a contiguous, unbroadcast pass
    # (broadcast boolean ops are several times slower).
    n = cars.fuel.shape[0]
    comp = _TYRE_COMPOUND.clamp(min=0)
    allowed_t = cars.compound_allowed.t().contiguous()  # [4, n]
    compound_ok = allowed_t.index_select(0, comp) | _ANY_COMPOUND.expand(-1, n)  # [6, n]
    dry_fitted = _DRY.index_select(0, cars.compound).float().unsqueeze(0)
    need = _TYRE_NEW_DRY.unsqueeze(1) + 0.5 * _TYRE_TWO.unsqueeze(1) * dry_fitted  # [6, n]
    sets_ok = need <= (cars.tyre_sets_left + 1e-6).unsqueeze(0)
    tyre_ok = compound_ok & sets_ok
    tyre_ok[int(Tyres.KEEP)] &= ~flat
    choices = torch.cat(
        [
            tyre_ok,
            torch.stack([~must_change, can_change, torch.ones_like(flat), cars.damage > 0]),
            (~pit_closed).unsqueeze(0),
            (~must_stop).unsqueeze(0),
        ]
    )  # [13, n]: 6 tyres, keep / change driver, no repair / repair, pit open, may stay out
    combo = (
        choices.index_select(0, _COMBO_TYRES)
        & choices.index_select(0, _COMBO_DRIVER)
        & choices.index_select(0, _COMBO_REPAIR)
        & choices.index_select(0, _COMBO_OPEN)
    )  # [25, n]: the 24 pit combinations, then staying out
    legal = combo.index_select(0, _COLUMN_OF_ACTION).t()
    none = ~combo.any(dim=0)
    if bool(none.any()):
        # Nothing satisfies every rule (e.g. a flat tyre with no sets left): a plain stop.
        legal[none] = _PLAIN_STOP
    assert legal.shape[1] == N_ACTIONS
    return legal


def is_dry(compound: torch.Tensor) -> torch.Tensor:
    """True where a :class:`Compound` code counts against the dry allocation."""
    return compound != int(Compound.WET)


def first_legal(
    prefs: torch.Tensor, legal: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Per row, the first action of ``prefs`` (``[n, P]`` indices) that is legal; the first
    legal action of the table when none is. ``rows``: the rows of ``legal`` that ``prefs``'s
    rows are (default: all, in order), read without copying the rest of the mask."""
    ok = legal.gather(1, prefs) if rows is None else legal[rows.unsqueeze(1), prefs]
    pick = prefs.gather(1, ok.byte().argmax(dim=1, keepdim=True)).squeeze(1)
    has = ok.any(dim=1)
    if bool(has.all()):
        return pick
    lost = (~has).nonzero().squeeze(1)
    source = lost if rows is None else rows.index_select(0, lost)
    return pick.index_copy(0, lost, legal.index_select(0, source).byte().argmax(dim=1))

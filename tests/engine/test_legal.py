"""The legal-action mask: each sporting rule forbids exactly what it should."""

from __future__ import annotations

import torch

from engine.actions import ACTION_TABLE, ACTIONS, Tyres, action_index
from engine.legal import CarsAtLine, legal_mask
from engine.scenario import load_scenario
from world_model.interface import Compound, FlagState, PaceMode

RULES = load_scenario("test_race").rules
STAY = action_index(PaceMode.NORMAL, False)


def car(**changes: object) -> CarsAtLine:
    """One healthy car at the line; ``changes`` override single fields (given as floats)."""
    base: dict[str, torch.Tensor] = {
        "fuel": torch.tensor([0.8]),
        "energy": torch.tensor([0.8]),
        "has_energy": torch.tensor([True]),
        "ref_fuel_per_lap": torch.tensor([0.1]),
        "ref_energy_per_lap": torch.tensor([0.1]),
        "ref_lap_time_s": torch.tensor([100.0]),
        "tread": torch.full((1, 4), 0.8),
        "compound": torch.tensor([int(Compound.MEDIUM)]),
        "compound_allowed": torch.ones(1, 4, dtype=torch.bool),
        "tyre_sets_left": torch.tensor([5.0]),
        "damage": torch.tensor([0.0]),
        "n_drivers": torch.tensor([2]),
        "stint_drive_s": torch.tensor([0.0], dtype=torch.float64),
        "current_total_s": torch.tensor([0.0], dtype=torch.float64),
        "next_total_s": torch.tensor([0.0], dtype=torch.float64),
        "others_deficit_s": torch.tensor([0.0], dtype=torch.float64),
        "time_left_s": torch.tensor([1000.0], dtype=torch.float64),
        "flag": torch.tensor([int(FlagState.GREEN)]),
    }
    for k, v in changes.items():
        base[k] = v if isinstance(v, torch.Tensor) else torch.tensor([v], dtype=base[k].dtype)
    return CarsAtLine(**base)


def legal_of(**changes: object) -> torch.Tensor:
    return legal_mask(car(**changes), RULES, 25.0)[0]


def test_healthy_car_may_stay_out_or_stop_but_not_repair() -> None:
    legal = legal_of()
    assert legal[STAY]
    assert legal[ACTION_TABLE.pit & ~ACTION_TABLE.repair].all()
    assert not legal[ACTION_TABLE.repair].any()


def test_fuel_or_energy_for_less_than_a_lap_forces_a_stop() -> None:
    for field in ("fuel", "energy"):
        legal = legal_of(**{field: 0.1})  # below one lap x the 1.12 margin
        assert not legal[~ACTION_TABLE.pit].any()
        assert legal[ACTION_TABLE.pit].any()


def test_pit_lane_closed_under_safety_car_unless_the_car_must_stop() -> None:
    legal = legal_of(flag=int(FlagState.SAFETY_CAR))
    assert not legal[ACTION_TABLE.pit].any() and legal[STAY]
    legal = legal_of(flag=int(FlagState.SAFETY_CAR), fuel=0.05)
    assert legal[ACTION_TABLE.pit].any() and not legal[STAY]
    assert legal_of(flag=int(FlagState.FCY))[ACTION_TABLE.pit].any()


def test_flat_tyre_needs_new_tyres_and_sets_are_counted() -> None:
    tread = torch.tensor([[0.0, 0.8, 0.8, 0.8]])
    legal = legal_of(tread=tread)
    assert not legal[STAY]
    keep = ACTION_TABLE.pit & (ACTION_TABLE.tyres == int(Tyres.KEEP))
    assert not legal[keep].any()
    no_sets = legal_of(tyre_sets_left=0.0)
    dry_four = torch.tensor(
        [a.pit and a.tyres.count == 4 and a.tyres != Tyres.FOUR_WET for a in ACTIONS]
    )
    wet_four = torch.tensor([a.pit and a.tyres == Tyres.FOUR_WET for a in ACTIONS])
    assert not no_sets[dry_four].any() and no_sets[wet_four].any()
    half = legal_of(tyre_sets_left=0.5)
    two = ACTION_TABLE.pit & (ACTION_TABLE.tyres == int(Tyres.TWO_SAME))
    assert half[two].any() and not half[dry_four].any()


def test_compounds_not_allowed_for_the_class_are_illegal() -> None:
    allowed = torch.tensor([[False, True, True, True]])
    legal = legal_of(compound_allowed=allowed)
    soft = ACTION_TABLE.pit & (ACTION_TABLE.tyres == int(Tyres.FOUR_SOFT))
    assert not legal[soft].any()


def test_driver_over_the_stint_limit_must_be_replaced_now() -> None:
    legal = legal_of(stint_drive_s=RULES.max_stint_driving_s - 50.0)
    change = ACTION_TABLE.pit & ACTION_TABLE.driver_change
    assert not legal[STAY] and not legal[ACTION_TABLE.pit & ~ACTION_TABLE.driver_change].any()
    assert legal[change].any()
    # The only other driver is at the total limit: the rule cannot be kept, the car may go on.
    tired = legal_of(
        stint_drive_s=RULES.max_stint_driving_s - 50.0,
        next_total_s=RULES.max_total_driving_s,
    )
    assert tired[STAY] and not tired[change].any()
    solo = legal_of(n_drivers=1)
    assert not solo[change].any()


def test_repair_only_when_damaged() -> None:
    legal = legal_of(damage=0.3)
    assert legal[ACTION_TABLE.repair].any() and legal[STAY]

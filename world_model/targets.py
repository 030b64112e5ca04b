"""What the learned models predict: per-lap outcomes as departures from the car's reference.

Each channel's physical value is an affine function of a dimensionless raw target, with the
slope and offset taken from the lap's conditions (one formula for training and sampling):

- lap time [s] = ref_lap_time_s * (1 + z / 100)        (z: percent slower than reference)
- fuel used    = ref_fuel_per_lap * (1 + z)             (z: relative excess over the median)
- energy used  = ref_energy_per_lap * (1 + z)
- wear[w]      = ref_wear_per_lap * (1 + z)             (per wheel FL, FR, RL, RR)
- tyre temp [°C] at the lap's end = start temperature + 10 z
"""

from __future__ import annotations

import torch

from world_model.interface import LapConditions

TARGET_NAMES: tuple[str, ...] = (
    "lap_time_s",
    "fuel_used",
    "energy_used",
    "wear_fl",
    "wear_fr",
    "wear_rl",
    "wear_rr",
    "tyre_temp_c",
)
N_TARGETS = len(TARGET_NAMES)
LAP, FUEL, ENERGY, WEAR0, TEMP = 0, 1, 2, 3, 7
"""Column indices of the channels in ``TARGET_NAMES``."""


def target_affine(c: LapConditions) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope and offset ``[N, N_TARGETS]`` with physical = slope * raw + offset."""
    lap, fuel, energy, wear = (
        c.ref_lap_time_s,
        c.ref_fuel_per_lap,
        c.ref_energy_per_lap,
        c.ref_wear_per_lap,
    )
    # Stacking rows then transposing is faster than stacking columns.
    slope = (
        torch.stack(
            [lap * 0.01, fuel, energy, wear, wear, wear, wear, torch.full_like(lap, 10.0)], dim=0
        )
        .t()
        .contiguous()
    )
    offset = torch.stack([lap, fuel, energy, wear, wear, wear, wear, c.tyre_temp_c], dim=0)
    offset = offset.t().contiguous()
    return slope, offset


def raw_targets(physical: torch.Tensor, c: LapConditions) -> torch.Tensor:
    """Raw targets ``[N, N_TARGETS]`` of physical outcomes; NaN where a channel is unknown or
    its reference is missing or zero (so the channel is masked in the loss)."""
    slope, offset = target_affine(c)
    ok = slope.abs() > 0
    return torch.where(ok, (physical - offset) / torch.where(ok, slope, 1.0), float("nan"))

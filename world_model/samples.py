"""Plausible engine lap conditions drawn at random: inputs for benchmarks and model checks."""

from __future__ import annotations

import torch

from world_model.interface import LapConditions


def random_conditions(n: int, generator: torch.Generator) -> LapConditions:
    """Plausible engine conditions for ``n`` car-laps (a mixed field mid-stint)."""
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    i = lambda hi: torch.randint(hi, (n,), generator=generator)  # noqa: E731
    return LapConditions(
        ref_lap_time_s=u(200.0, 240.0),
        ref_fuel_per_lap=u(0.06, 0.09),
        ref_energy_per_lap=u(0.06, 0.09),
        ref_wear_per_lap=u(0.01, 0.03),
        fuel=u(0.05, 1.0),
        energy=u(0.05, 1.0),
        tread=u(0.3, 1.0).unsqueeze(1).expand(-1, 4).contiguous(),
        tyre_age_laps=u(0.0, 40.0),
        compound=i(3),
        tyre_temp_c=u(60.0, 100.0),
        damage=torch.zeros(n),
        stint_time_s=u(0.0, 3000.0),
        pace_mode=i(3),
        class_index=i(3),
        driver_skill=u(-1.0, 1.0),
        flag=torch.zeros(n, dtype=torch.int64),
        wetness=torch.zeros(n),
        track_temp_c=u(20.0, 40.0),
        night=u(0.0, 1.0).round(),
        traffic=i(4).float(),
        out_lap=torch.zeros(n),
        recent_pace_pct=u(-1.0, 3.0),
        last_lap_time_s=u(200.0, 240.0),
        last_fuel_used=u(0.06, 0.09),
        last_wear=u(0.01, 0.03),
    )

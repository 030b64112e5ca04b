"""The classic race-simulator lap model: pace + tyre degradation + fuel mass + noise.

It is the engine's lap model when no learned checkpoint is given, the "known model" of the
dynamic-programming reference, and the baseline the learned models must beat. Every effect
is a small closed-form term so tests can check the engine against hand-computed answers
(with ``noise_scale = 0`` the model is deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from world_model.interface import N_WHEELS, Compound, LapConditions, LapOutcome


def _per_compound(soft: float, medium: float, hard: float, wet: float) -> tuple[float, ...]:
    return (soft, medium, hard, wet)


@dataclass(frozen=True)
class ParametricLapParams:
    """Coefficients of the parametric lap model; fractions are of the reference lap time."""

    compound_pace: tuple[float, ...] = _per_compound(-0.006, 0.0, 0.005, 0.03)
    """Lap-time offset of each compound on a dry track, fraction (soft faster)."""
    compound_wear: tuple[float, ...] = _per_compound(1.45, 1.0, 0.72, 2.6)
    """Wear rate of each compound relative to the medium on a dry track."""
    wet_penalty: tuple[float, ...] = _per_compound(0.45, 0.48, 0.51, 0.25)
    """Lap-time loss at full wetness (standing water) for each compound, fraction. A stated
    prior: timing data records no wetness, and the sim logs in the data ran dry. Wets at 0.25
    put a wet stint of the weather model's mean shower (intensity ~0.4) ~11 % slow, as the
    wet hours of Le Mans 2023 / 2024 ran (the field's median lap +11 to +17 % over its dry
    pace, read by ``engine.weather_from_laps``); slicks lose twice that, so wets are the
    faster tyre from wetness ~0.12 and slicks lose 4.6-7.3 % of a lap to them at the rule
    strategies' switch (0.35)."""
    wet_tyre_dry_wear: float = 2.0
    """Extra wear factor of wet tyres on a dry track (scaled by dryness)."""
    pace_mode_time: tuple[float, float, float] = (0.012, 0.0, -0.006)
    """Lap-time offset of SAVE, NORMAL, PUSH, fraction."""
    pace_mode_fuel: tuple[float, float, float] = (0.93, 1.0, 1.04)
    """Fuel and energy use of SAVE, NORMAL, PUSH relative to nominal."""
    pace_mode_wear: tuple[float, float, float] = (0.85, 1.0, 1.18)
    """Tyre wear of SAVE, NORMAL, PUSH relative to nominal."""
    wear_time: float = 0.045
    """Lap-time loss per unit of mean tread lost, fraction (linear degradation)."""
    cliff_tread: float = 0.25
    """Tread left below which grip falls off a cliff, fraction."""
    cliff_time: float = 0.8
    """Lap-time loss per squared unit of tread below the cliff, fraction."""
    fuel_mass_time: float = 0.012
    """Lap-time loss of a full tank over an empty one, fraction."""
    skill_time: float = 0.004
    """Lap-time gain per standard deviation of driver rating, fraction."""
    night_time: float = 0.006
    """Lap-time loss in darkness, fraction."""
    traffic_time_s: float = 0.35
    """Time lost per car within 5 s ahead [s]."""
    out_lap_time: float = 0.04
    """Extra time of an out-lap on cold tyres, fraction (pit-lane time is the engine's)."""
    track_temp_ref_c: float = 30.0
    """Track temperature of nominal wear [°C]."""
    wear_per_degree: float = 0.012
    """Relative wear increase per degree of track temperature above the reference."""
    wheel_wear: tuple[float, ...] = (1.06, 1.0, 0.97, 0.94)
    """Relative wear of FL, FR, RL, RR (a clockwise circuit loads the front left)."""
    tyre_temp_offset_c: float = 55.0
    """Working tyre temperature above track temperature at normal pace [°C]."""
    noise_scale: float = 1.0
    """Multiplier of every noise term; 0 gives a deterministic model."""
    lap_noise_sd: float = 0.0035
    """Scale of the lap-time noise, fraction (Student-t, heavy-tailed for traffic laps)."""
    lap_noise_df: float = 4.0
    """Degrees of freedom of the lap-time noise."""
    fuel_noise_sd: float = 0.015
    """Relative noise of fuel and energy use."""
    wear_noise_sd: float = 0.06
    """Relative noise of tyre wear."""


class EffectTables:
    """The per-code coefficients of :class:`ParametricLapParams` as lookup tensors: the one
    place the compound, wetness and pace-mode effects are computed, for the parametric model
    and for the learned model (which takes these effects from it, the data having none)."""

    def __init__(self, p: ParametricLapParams) -> None:
        self.compound_pace = torch.tensor(p.compound_pace)
        self.compound_wear = torch.tensor(p.compound_wear)
        self.wet_penalty = torch.tensor(p.wet_penalty)
        self.mode_time = torch.tensor(p.pace_mode_time)
        self.mode_fuel = torch.tensor(p.pace_mode_fuel)
        self.mode_wear = torch.tensor(p.pace_mode_wear)
        self.wheel_wear = torch.tensor(p.wheel_wear)

    def grip(self, compound: torch.Tensor, wetness: torch.Tensor) -> torch.Tensor:
        """Lap-time offset of the compound at this wetness, fraction."""
        return self.compound_pace[compound] * (1.0 - wetness) + self.wet_penalty[compound] * wetness


class ParametricLapModel:
    """:class:`~world_model.interface.LapModel` with closed-form effects and Student-t noise."""

    def __init__(self, params: ParametricLapParams | None = None) -> None:
        self.params = params or ParametricLapParams()
        self.effects = EffectTables(self.params)

    def mean_lap_time_s(self, c: LapConditions) -> torch.Tensor:
        """Expected green lap time [s] (the noise has zero median)."""
        p = self.params
        tread_lost = 1.0 - c.tread.mean(dim=1)
        below_cliff = (p.cliff_tread - c.tread.min(dim=1).values).clamp(min=0.0)
        e = self.effects
        frac = (
            e.grip(c.compound, c.wetness)
            + e.mode_time[c.pace_mode]
            + p.wear_time * tread_lost
            + p.cliff_time * below_cliff.square()
            + p.fuel_mass_time * c.fuel
            - p.skill_time * c.driver_skill
            + p.night_time * c.night
            + p.out_lap_time * c.out_lap
        )
        return c.ref_lap_time_s * (1.0 + frac) + p.traffic_time_s * c.traffic

    def mean_wear(self, c: LapConditions) -> torch.Tensor:
        """Expected tread lost per wheel over the lap, ``[N, 4]``."""
        p = self.params
        wet_on_dry = (c.compound == Compound.WET).float() * (1.0 - c.wetness)
        rate = (
            c.ref_wear_per_lap
            * self.effects.compound_wear[c.compound]
            * self.effects.mode_wear[c.pace_mode]
            * (1.0 + p.wear_per_degree * (c.track_temp_c - p.track_temp_ref_c)).clamp(min=0.2)
            * (1.0 + (p.wet_tyre_dry_wear - 1.0) * wet_on_dry)
            * (1.0 - 0.5 * c.wetness * (c.compound != Compound.WET).float())
        )
        return rate.unsqueeze(1) * self.effects.wheel_wear.unsqueeze(0)

    def sample(
        self,
        conditions: LapConditions,
        generator: torch.Generator,
        member: torch.Tensor | None = None,
    ) -> LapOutcome:
        c, p = conditions, self.params
        n = c.batch_size
        s = p.noise_scale
        # Student-t draw as normal / sqrt(chi2 / df), both from the caller's generator.
        z = torch.randn(n, generator=generator)
        chi2 = torch.randn(n, int(p.lap_noise_df), generator=generator).square().sum(dim=1)
        t = z / torch.sqrt(chi2 / p.lap_noise_df)
        lap_time = self.mean_lap_time_s(c) * (1.0 + s * p.lap_noise_sd * t).clamp(min=0.9)

        fuel_noise = 1.0 + s * p.fuel_noise_sd * torch.randn(n, generator=generator)
        mode_fuel = self.effects.mode_fuel[c.pace_mode]
        fuel_used = (c.ref_fuel_per_lap * mode_fuel * fuel_noise).clamp(min=0.0)
        energy_used = (c.ref_energy_per_lap * mode_fuel * fuel_noise).clamp(min=0.0)

        wear_noise = torch.exp(s * p.wear_noise_sd * torch.randn(n, N_WHEELS, generator=generator))
        wear = (self.mean_wear(c) * wear_noise).clamp(min=0.0)

        target_temp = c.track_temp_c + p.tyre_temp_offset_c * (
            1.0 + 0.1 * (c.pace_mode.float() - 1.0)
        ) * (1.0 - 0.4 * c.wetness)
        tyre_temp = c.tyre_temp_c + 0.6 * (target_temp - c.tyre_temp_c)
        return LapOutcome(
            lap_time_s=lap_time.float(),
            fuel_used=fuel_used.float(),
            energy_used=energy_used.float(),
            wear=wear.float(),
            tyre_temp_c=tyre_temp.float(),
        )

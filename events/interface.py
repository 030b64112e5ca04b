"""The batched contract between the engine and the stochastic-incident models.

The engine advances every replica's race clock in small windows of race time and asks, for
all replicas and cars at once, *what happens in this window given this state?* Every sampler
in this package (the prior-mean sampler and the fitted Pyro posterior) answers through
:class:`EventModel`. Tensors are ``[R, C]`` (replicas, cars) or ``[R]``; nothing loops over
rows, and every call takes an explicit ``torch.Generator``.

Parameters are drawn once per replica (:meth:`EventModel.draw_params`) so parameter
uncertainty reaches the spread of simulated outcomes, and so two strategies evaluated on the
same seed see the same incident rates.

Implementations: :class:`events.sampler.PosteriorEventModel`;
``events.load_default(class_names, lap_length_m)`` gives the shipped one. Pass the scenario's
class names in ``class_index`` order so each class gets its own fitted failure rate (without
them every class uses the pooled rate) and the lap length so safety cars last as many laps
as they do (default: Le Mans). ``model.configured(class_names, lap_length_m)`` does the same
for a loaded model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import torch

from world_model.interface import FlagState

EventParams = Mapping[str, torch.Tensor]
"""Per-replica parameters, each tensor with first dimension ``R``, read by name; opaque to the
engine (the sampler's is :class:`events.sampler.ReplicaParams`, which also carries the
constants derived from the draw as typed fields)."""


class ForcedKind(StrEnum):
    """What a what-if script can force."""

    SAFETY_CAR = "sc"
    FCY = "fcy"
    SLOW_ZONE = "slow_zone"
    RAIN = "rain"
    WET = "wet"
    """The track's wetness itself (``intensity``), as read from a real race's laps: no
    soaking or drying lag inside the span, and the track as the draw has it outside."""
    PUNCTURE = "puncture"
    FAILURE = "failure"
    DAMAGE = "damage"


FORCED_FLAG: Mapping[ForcedKind, FlagState] = MappingProxyType(
    {
        ForcedKind.SAFETY_CAR: FlagState.SAFETY_CAR,
        ForcedKind.FCY: FlagState.FCY,
        ForcedKind.SLOW_ZONE: FlagState.SLOW_ZONE,
    }
)
"""The neutralisation each race-wide scripted kind puts out (the other kinds are no flag)."""


@dataclass(frozen=True)
class ForcedEvent:
    """An event a strategist scripts: ``sc@3h12m``, ``rain@14h-17h``, ``puncture:7@lap120``.

    Race-wide events (safety car, FCY, slow zone, rain) have ``start_s`` and, optionally,
    ``end_s`` (otherwise the model draws the duration). Car events name ``car`` (the race
    number as text) and either ``start_s`` or ``lap``.
    """

    kind: ForcedKind
    start_s: float | None = None
    """Race time the event starts [s]."""
    end_s: float | None = None
    """Race time it ends [s]; None lets the model draw the duration."""
    car: str | None = None
    """Race number of the car it happens to (car events only)."""
    lap: int | None = None
    """Lap of that car on which it happens (alternative to ``start_s``)."""
    intensity: float = 1.0
    """Rain intensity (0 to 1) or damage severity (0 to 1)."""


@dataclass(frozen=True)
class WeatherTrack:
    """Weather of every replica on a regular grid of race time."""

    step_s: float
    """Grid spacing [s]; sample ``k`` describes race time ``k * step_s``."""
    rain: torch.Tensor
    """Rain intensity, 0 (dry) to 1 (heavy), ``[R, T]``."""
    wetness: torch.Tensor
    """Track wetness, 0 (dry) to 1 (standing water), lagging the rain, ``[R, T]``."""
    track_temp_c: torch.Tensor
    """Track temperature [°C], ``[R, T]``."""
    air_temp_c: torch.Tensor
    """Air temperature [°C], ``[R, T]``."""

    def at(self, race_time_s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(rain, wetness, track_temp_c, air_temp_c) at each replica's time ``[R]``."""
        k = (race_time_s / self.step_s).long().clamp(0, self.rain.shape[1] - 1)
        rows = torch.arange(self.rain.shape[0])
        return (
            self.rain[rows, k],
            self.wetness[rows, k],
            self.track_temp_c[rows, k],
            self.air_temp_c[rows, k],
        )


@dataclass(frozen=True)
class CarRisks:
    """Per-car hazard modifiers of the scenario's risk priors, each ``[C]`` (neutral values
    for a car whose risk is off: factor 1, rate 0)."""

    cliff_tread: torch.Tensor
    """Tread left below which the tyre cliff starts, fraction."""
    cliff_log_factor: torch.Tensor
    """Log of the puncture-hazard multiplier on a tyre worn to the canvas (0: no cliff)."""
    slick_wet_off_per_h: torch.Tensor
    """Off / crash hazard per car-hour on a non-wet compound on a fully wet track (scaled by
    wetness squared)."""
    push_failure_factor: torch.Tensor
    """Multiplier of the mechanical-failure hazard while at push pace."""


@dataclass(frozen=True)
class CarExposure:
    """How each car spent a window of race time; every field ``[R, C]``."""

    dt_s: torch.Tensor
    """Time on track in the window [s]; 0 for cars in the pit lane, retired or finished."""
    race_time_s: torch.Tensor
    """Race time at the end of the window [s] (car age for failures)."""
    traffic: torch.Tensor
    """Cars within 5 s on track (float)."""
    faster_class_traffic: torch.Tensor
    """Of those, cars of another class (multi-class traffic, float)."""
    pace_mode: torch.Tensor
    """``PaceMode`` code (int64)."""
    tread_min: torch.Tensor
    """Least tread left over the four wheels, fraction."""
    class_index: torch.Tensor
    """Class index (int64)."""
    driver_skill: torch.Tensor
    """Driver rating relative to the reference driver (0 = reference)."""
    wetness: torch.Tensor
    """Track wetness, 0 to 1."""
    night: torch.Tensor
    """1.0 in darkness."""
    compound: torch.Tensor | None = None
    """``Compound`` code fitted (int64); needed by the slick-in-the-wet risk."""
    risks: CarRisks | None = None
    """The scenario's risk priors per car; None: no risk hazards (the fitted model alone)."""


@dataclass(frozen=True)
class CarIncidents:
    """What happened to each car in the window; every field ``[R, C]``."""

    contact: torch.Tensor
    """A contact with another car (bool)."""
    off: torch.Tensor
    """A car going off on its own (slicks on a wet track), damage drawn as for a contact
    (bool)."""
    partner: torch.Tensor
    """Index of the other car in the contact, -1 if none (int64)."""
    damage: torch.Tensor
    """Damage added, 0 (none) to 1 (severe) (float)."""
    puncture: torch.Tensor
    """A puncture or tyre failure (bool)."""
    failure: torch.Tensor
    """A mechanical failure that stops the car (bool)."""
    retired: torch.Tensor
    """The car's race ends here, by failure or terminal damage (bool)."""
    time_s: torch.Tensor
    """Race time of the incident inside the window [s] (NaN where nothing happened)."""


@dataclass(frozen=True)
class Neutralisation:
    """Race control's answer to the incidents of a window; every field ``[R]``."""

    kind: torch.Tensor
    """``FlagState`` code: GREEN (no neutralisation), LOCAL_YELLOW, FCY, SAFETY_CAR or
    SLOW_ZONE (int64)."""
    duration_s: torch.Tensor
    """How long it lasts [s] (0 where GREEN)."""


@dataclass(frozen=True)
class FlagEffect:
    """What a neutralisation does to a car running under it, as factors on green values."""

    lap_time_factor: float
    fuel_factor: float
    wear_factor: float


@runtime_checkable
class EventModel(Protocol):
    """Samplers of every random incident that changes a race."""

    def draw_params(self, replicas: int, generator: torch.Generator) -> EventParams:
        """One draw of the model's parameters per replica."""
        ...

    def weather(
        self,
        params: EventParams,
        start_hour_of_day: float,
        duration_s: float,
        step_s: float,
        generator: torch.Generator,
        forced: Sequence[ForcedEvent] = (),
    ) -> WeatherTrack:
        """The weather of the whole race; forced rain overrides the draw where scripted, and
        forced wetness the track's wetness (and rain) inside its span."""
        ...

    def car_incidents(
        self, params: EventParams, exposure: CarExposure, generator: torch.Generator
    ) -> CarIncidents:
        """Contacts, damage, punctures and failures in one window of race time."""
        ...

    def neutralisation(
        self,
        params: EventParams,
        severity: torch.Tensor,
        generator: torch.Generator,
    ) -> Neutralisation:
        """Race control's response to incidents of severity ``[R]`` (0 where none).

        Severity is the worst of the window: damage for contacts, 1 for a car stopped on
        track by a failure or a puncture.
        """
        ...

    def neutralisation_duration(
        self, params: EventParams, kind: FlagState, generator: torch.Generator
    ) -> torch.Tensor:
        """How long a neutralisation of ``kind`` called now lasts [s], ``[R]``: for forced
        neutralisations scripted without an end. Draws one number per replica."""
        ...

    def damage_effects(
        self, params: EventParams, damage: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lap-time loss as a fraction of the lap, repair time in the pits [s]) for a
        damage level ``[R, C]``."""
        ...

    def flag_effect(self, kind: FlagState) -> FlagEffect:
        """Lap time, fuel and wear factors under a neutralisation of this kind."""
        ...

"""The batched contract between the engine and any lap-dynamics model.

The engine asks one question, for many car-laps at once: *given the state of each car at the
start of its lap, the decision in force and the conditions, what does the lap look like?*
Every model in this package (the parametric lap model, the learned MLP and recurrent models)
answers it through :class:`LapModel`. Tensors are batched along the first dimension ``N``
(the engine flattens ``[replicas, cars]`` into ``N``); nothing here loops over rows.

Units: seconds, degrees Celsius, fractions. Fuel is a fraction of the car's tank, virtual
energy a fraction of the stint allocation, tyre tread a fraction left (1 = new, 0 = worn out).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Protocol, runtime_checkable

import torch

from data.flags import FlagState as FlagState  # re-exported: the flags' home is data.flags

N_WHEELS = 4
"""Wheels in the order FL, FR, RL, RR."""


class PaceMode(IntEnum):
    """How hard the driver pushes; an action chosen at the line."""

    SAVE = 0
    NORMAL = 1
    PUSH = 2


class Compound(IntEnum):
    """Tyre compound codes, as LMU's ``mCompoundType`` (0 soft, 1 medium, 2 hard, 3 wet)."""

    SOFT = 0
    MEDIUM = 1
    HARD = 2
    WET = 3


@dataclass(frozen=True)
class LapConditions:
    """State, decision and context of ``N`` car-laps at the moment each crosses the line.

    Every field is a tensor with first dimension ``N``; float fields are ``float32`` and code
    fields ``int64``. ``ref_*`` fields carry the car's nominal figures on this track from the
    scenario, so one model serves any car and track: a model predicts departures from them.
    """

    ref_lap_time_s: torch.Tensor
    """The car's reference pace [s]: the 10th percentile of its timed green-flag laps that
    neither start nor end in the pits (in data: per car and session; in a scenario: the
    entry's ``ref_lap_time_s``)."""
    ref_fuel_per_lap: torch.Tensor
    """The car's median fuel use per green lap, fraction of tank."""
    ref_energy_per_lap: torch.Tensor
    """The car's median virtual-energy use per green lap, fraction of allocation (0 if none)."""
    ref_wear_per_lap: torch.Tensor
    """The car's median tread loss per green lap, mean of four wheels, on a medium tyre."""
    fuel: torch.Tensor
    """Fuel at the start of the lap, fraction of tank."""
    energy: torch.Tensor
    """Virtual energy left at the start of the lap, fraction of allocation (1 if none)."""
    tread: torch.Tensor
    """Tread left per wheel at the start of the lap, fraction, shape ``[N, 4]``."""
    tyre_age_laps: torch.Tensor
    """Laps done on the current tyres; laps since the last stop for a model whose
    :data:`TYRE_AGE_IS_STINT_LAPS` attribute is true (timing data's meaning)."""
    compound: torch.Tensor
    """:class:`Compound` code of the tyres fitted (int64)."""
    tyre_temp_c: torch.Tensor
    """Mean tyre temperature at the start of the lap [°C]."""
    damage: torch.Tensor
    """Unrepaired damage, 0 (none) to 1 (severe). Context only: the engine adds the event
    model's damage penalty to the sampled lap, so lap models must not add their own."""
    stint_time_s: torch.Tensor
    """Time since the last pit exit [s]."""
    pace_mode: torch.Tensor
    """:class:`PaceMode` code (int64)."""
    class_index: torch.Tensor
    """Class of the car, index into the scenario's class list (int64)."""
    driver_skill: torch.Tensor
    """Driver rating relative to the car's reference driver, 0 = reference, +1 = one
    standard deviation faster."""
    flag: torch.Tensor
    """:class:`FlagState` code at the start of the lap (int64)."""
    wetness: torch.Tensor
    """Track wetness, 0 (dry) to 1 (standing water)."""
    track_temp_c: torch.Tensor
    """Track temperature [°C]."""
    night: torch.Tensor
    """1.0 in darkness, 0.0 in daylight (fractions at dusk and dawn)."""
    traffic: torch.Tensor
    """Cars within 5 s ahead on track at the start of the lap (float)."""
    out_lap: torch.Tensor
    """1.0 on the lap that leaves the pits, else 0.0."""
    recent_pace_pct: torch.Tensor | None = None
    """The car's own recent pace: an exponentially weighted mean (weight
    :data:`RECENT_PACE_WEIGHT` on each new lap) of its earlier green laps' departure from
    ``ref_lap_time_s`` [%], each clipped to :data:`RECENT_PACE_CLIP_PCT`; NaN (or ``None``
    for every row) before the car has such a lap. The engine updates it with each lap it
    draws (:func:`update_recent_pace`)."""
    last_lap_time_s: torch.Tensor | None = None
    """The car's previous lap time [s], where that lap neither started nor ended in the pits
    (NaN otherwise, or ``None`` for every row). In data the recorded lap, flag slow-downs
    included (a neutralisation that goes on shows in it); the engine feeds its previous
    green lap."""
    last_fuel_used: torch.Tensor | None = None
    """Fuel the car used over its previous lap, fraction of tank (NaN / ``None``: unknown, or
    that lap touched the pits)."""
    last_wear: torch.Tensor | None = None
    """Tread the car lost over its previous lap, mean of four wheels (NaN / ``None``: unknown,
    or that lap touched the pits)."""

    @property
    def batch_size(self) -> int:
        return int(self.fuel.shape[0])

    def index(self, rows: torch.Tensor | slice) -> LapConditions:
        """The conditions of the selected rows (a boolean mask, an index tensor or a slice:
        views, no copy)."""
        return LapConditions(
            **{
                f.name: None if (v := getattr(self, f.name)) is None else v[rows]
                for f in fields(self)
            }
        )


RECENT_PACE_WEIGHT = 0.3
"""Weight of the newest lap in ``LapConditions.recent_pace_pct``."""
RECENT_PACE_CLIP_PCT = (-5.0, 10.0)
"""Bounds of one lap's departure [%] before it enters the recent pace (a traffic or
incident lap says little about the next)."""


def update_recent_pace(
    recent_pct: torch.Tensor, lap_time_s: torch.Tensor, ref_lap_time_s: torch.Tensor
) -> torch.Tensor:
    """The recent pace [%] after a green lap of ``lap_time_s`` (NaN ``recent_pct``: the
    car's first such lap); the one formula for the lap store and the engine."""
    pct = (100.0 * (lap_time_s / ref_lap_time_s - 1.0)).clamp(*RECENT_PACE_CLIP_PCT)
    return torch.where(
        recent_pct.isnan(), pct, recent_pct + RECENT_PACE_WEIGHT * (pct - recent_pct)
    )


@dataclass(frozen=True)
class LapOutcome:
    """What happened over ``N`` laps; every field is a ``float32`` tensor of first dim ``N``."""

    lap_time_s: torch.Tensor
    """Green-flag lap time [s] (flag slow-downs and pit-lane time are the engine's)."""
    fuel_used: torch.Tensor
    """Fuel used over the lap, fraction of tank (>= 0)."""
    energy_used: torch.Tensor
    """Virtual energy used over the lap, fraction of allocation (>= 0)."""
    wear: torch.Tensor
    """Tread lost per wheel over the lap, fraction, shape ``[N, 4]`` (>= 0)."""
    tyre_temp_c: torch.Tensor
    """Mean tyre temperature at the end of the lap [°C]."""


TYRE_AGE_IS_STINT_LAPS = "tyre_age_is_stint_laps"
"""Name of a lap model's optional boolean attribute: true where the model's
``tyre_age_laps`` input means laps since the last stop rather than laps on the tyres (a model
learned from timing data, which does not say which stops changed tyres); the engine then
feeds it laps into the stint. Absent: laps on the tyres."""


@runtime_checkable
class LapModel(Protocol):
    """A distribution over lap outcomes, sampled in one batched call.

    ``member`` (int64, ``[N]``) chooses which draw of the model's parameters a row uses
    (an ensemble member or a posterior draw); the engine passes the replica index so one
    simulated race keeps one set of parameters and parameter uncertainty reaches the
    strategy's risk. Models with no epistemic part ignore it.
    """

    def sample(
        self,
        conditions: LapConditions,
        generator: torch.Generator,
        member: torch.Tensor | None = None,
    ) -> LapOutcome: ...

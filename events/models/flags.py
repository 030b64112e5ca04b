"""Flag effects: how much slower, thriftier and gentler on tyres a lap under a neutralisation is.

Lap-time factors are fitted from timing data (laps run wholly under FCY or safety car against
the car's green reference pace); local yellow and slow zone are not marked in timing data and
fuel and wear under neutralisations are not in it either, so those factors are priors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior
from world_model.interface import FlagState

KIND_NAMES: dict[FlagState, str] = {
    FlagState.LOCAL_YELLOW: "ly",
    FlagState.FCY: "fcy",
    FlagState.SAFETY_CAR: "sc",
    FlagState.SLOW_ZONE: "sz",
}

PRIORS: dict[str, Prior] = {
    "flag_ly_lap": Prior(math.log(1.01), 0.01, link="exp", note="lift in one sector"),
    "flag_fcy_lap": Prior(math.log(1.8), 0.3, link="exp", note="80 km/h everywhere"),
    "flag_sc_lap": Prior(math.log(1.7), 0.3, link="exp", note="queue behind the safety car"),
    "flag_sz_lap": Prior(math.log(1.12), 0.05, link="exp", note="80 km/h in one zone"),
    "flag_lap_sd": Prior(math.log(0.15), 0.5, link="exp", note="spread of log lap factors"),
    "flag_race_sd": Prior(
        math.log(0.1), 0.7, link="exp", note="races differ (where the neutralisation sits)"
    ),
    "flag_ly_fuel": Prior(math.log(0.98), 0.02, link="exp"),
    "flag_fcy_fuel": Prior(math.log(0.4), 0.2, link="exp", note="fuel per lap at 80 km/h"),
    "flag_sc_fuel": Prior(math.log(0.45), 0.2, link="exp"),
    "flag_sz_fuel": Prior(math.log(0.9), 0.05, link="exp"),
    "flag_ly_wear": Prior(math.log(0.97), 0.02, link="exp"),
    "flag_fcy_wear": Prior(math.log(0.3), 0.3, link="exp", note="little lateral load"),
    "flag_sc_wear": Prior(math.log(0.35), 0.3, link="exp"),
    "flag_sz_wear": Prior(math.log(0.9), 0.05, link="exp"),
}

FITTED_KINDS: tuple[str, ...] = ("fcy", "sc")


@dataclass(frozen=True)
class FlagLapData:
    """Laps run wholly under a neutralisation."""

    log_ratio: dict[str, torch.Tensor]
    """``log(lap time / reference lap time)`` of each kind's laps, ``[M_kind]``."""
    race: dict[str, torch.Tensor]
    """Index of each lap's race (int64), ``[M_kind]``."""
    races: int
    """Number of races."""


def model(data: FlagLapData) -> None:
    """Lap factor per kind, one departure per race and kind (laps of one race share where
    and how long the neutralisation ran), and lap-to-lap noise."""
    sd = pyro.sample("flag_lap_sd", PRIORS["flag_lap_sd"].dist())
    race_sd = pyro.sample("flag_race_sd", PRIORS["flag_race_sd"].dist())
    for kind in FITTED_KINDS:
        name = f"flag_{kind}_lap"
        factor = pyro.sample(name, PRIORS[name].dist())
        with pyro.plate(f"races_{kind}", data.races, dim=-1):
            effect = pyro.sample(f"flag_{kind}_race", dist.Normal(0.0, 1.0))
        obs = data.log_ratio.get(kind)
        if obs is None or obs.numel() == 0:
            continue
        race = data.race[kind]
        assert obs.dim() == 1 and race.shape == obs.shape
        loc = factor.log() + race_sd * effect[..., race]
        with pyro.plate(f"laps_{kind}", obs.shape[0], dim=-1):
            pyro.sample(f"log_ratio_{kind}", dist.Normal(loc, sd), obs=obs)

"""Contacts between cars: a Poisson hazard per car-hour on track.

``log hazard = contact_log_rate + traffic + other-class traffic + night + wetness + pace mode
+ driver skill`` (each term a coefficient times the feature). The intercept is the hazard of
a car alone on a dry track in daylight at normal pace with the reference driver, in a real
race; simulator races (rFactor 2 / LMU online) add ``contact_sim_offset`` because online
racers collide far more often than professionals, while sharing the traffic effects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior

PRIORS: dict[str, Prior] = {
    "contact_log_rate": Prior(
        math.log(0.012),
        0.6,
        note="~20-40 contacts that matter in a 24 h race of 60 cars (~1,400 car-hours), "
        "about half of them explained by traffic",
    ),
    "contact_traffic": Prior(0.2, 0.1, note="each car within 5 s adds ~20 % to the hazard"),
    "contact_multiclass": Prior(
        0.35, 0.2, note="a car of another class in that traffic adds ~40 % more (overtakes)"
    ),
    "contact_night": Prior(0.3, 0.2, note="darkness raises misjudged overtakes by ~35 %"),
    "contact_wet": Prior(0.9, 0.35, note="a fully wet track ~2.5x the dry hazard"),
    "contact_push": Prior(0.4, 0.2, note="pushing ~1.5x the normal-pace hazard"),
    "contact_save": Prior(-0.2, 0.15, note="saving fuel or tyres ~0.8x"),
    "contact_skill": Prior(-0.3, 0.15, note="per standard deviation of driver rating"),
}

SIM_OFFSET_PRIOR = Prior(2.0, 1.5, note="online sim races collide several times more often")
"""Extra log hazard of simulator races (fit-only; the engine simulates real racing)."""

FEATURES: tuple[str, ...] = (
    "traffic",
    "multiclass",
    "night",
    "wet",
    "push",
    "save",
    "skill",
)
"""Columns of :attr:`ContactData.features`, matching the slopes ``contact_<feature>``."""

COEFFICIENTS: tuple[str, ...] = (
    "contact_traffic",
    "contact_multiclass",
    "contact_night",
    "contact_wet",
    "contact_push",
    "contact_save",
    "contact_skill",
)


@dataclass(frozen=True)
class ContactData:
    """Exposure rows (a car's lap, or any stretch of time) and their contact counts."""

    hours: torch.Tensor
    """Time on track [h], ``[N]``."""
    features: torch.Tensor
    """``[N, len(FEATURES)]`` in the order of :data:`FEATURES`."""
    sim: torch.Tensor
    """1.0 for rows from simulator races, ``[N]``."""
    counts: torch.Tensor | None = None
    """Contacts in each row, ``[N]`` (None to sample)."""


def log_hazard(params: dict[str, torch.Tensor], features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Log contact hazard per car-hour of a real race; ``features`` in :data:`FEATURES` order.

    Broadcasts: the fit passes scalar parameters and ``[N]`` features, the sampler ``[R, 1]``
    parameters and ``[R, C]`` features, so both use this one formula.
    """
    out = params["contact_log_rate"]
    for coefficient, feature in zip(COEFFICIENTS, features, strict=True):
        out = out + params[coefficient] * feature
    return out


def model(data: ContactData) -> None:
    n = data.hours.shape[0]
    assert data.features.shape == (n, len(FEATURES)), data.features.shape
    assert data.sim.shape == (n,)
    assert data.counts is None or data.counts.shape == (n,)
    params = {name: pyro.sample(name, p.dist()) for name, p in PRIORS.items()}
    sim_offset = pyro.sample("contact_sim_offset", SIM_OFFSET_PRIOR.dist())
    log_rate = log_hazard(params, tuple(data.features.unbind(-1))) + sim_offset * data.sim
    with pyro.plate("rows", n, dim=-1):
        pyro.sample("contacts", dist.Poisson(data.hours * log_rate.exp()), obs=data.counts)

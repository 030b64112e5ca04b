"""Mechanical failures: a Weibull hazard over car age (race time), one rate per class group.

``hazard(t) = failure_rate[group] x (t / 12 h) ^ (failure_shape - 1)`` per car-hour: shape
below 1 is infant mortality, above 1 wear-out. Race data record retirements, not their
causes, so the fit explains every retirement by failures *plus* the terminal-contact hazard
of the contact and damage models (passed in as a known rate), and the failure rates are what
remains. Each (race, group) has its own frailty ``exp(failure_race_sd x ε)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.classes import CLASS_GROUPS
from events.priors import Prior

REFERENCE_AGE_H = 12.0
"""Car age at which ``failure_rate`` is the hazard [h]."""

PRIORS: dict[str, Prior] = {
    "failure_rate": Prior(
        (math.log(0.004), math.log(0.004), math.log(0.003)),
        (0.6, 0.6, 0.6),
        link="exp",
        note="per car-hour for top prototypes, prototypes, GTs: ~10 % of a 24 h field fails",
    ),
    "failure_shape": Prior(0.0, 0.3, link="exp", note="Weibull shape ~1 (constant hazard)"),
    "failure_race_sd": Prior(
        math.log(0.3), 0.5, link="exp", note="a class's reliability differs race to race"
    ),
}
assert len(PRIORS["failure_rate"].shape) == 1 and PRIORS["failure_rate"].shape[0] == len(
    CLASS_GROUPS
)


def hazard(rate: torch.Tensor, shape: torch.Tensor, age_h: torch.Tensor) -> torch.Tensor:
    """Failure hazard per car-hour at car age ``age_h`` [h] (broadcasting)."""
    return rate * torch.exp((shape - 1.0) * (age_h.clamp_min(1e-3) / REFERENCE_AGE_H).log())


def cumulative_hazard(rate: torch.Tensor, shape: torch.Tensor, age_h: torch.Tensor) -> torch.Tensor:
    """Integral of :func:`hazard` from 0 to ``age_h``."""
    return rate * REFERENCE_AGE_H / shape * (age_h / REFERENCE_AGE_H).pow(shape)


@dataclass(frozen=True)
class FailureData:
    """Cars of real races: how long each ran and whether it retired."""

    age_h: torch.Tensor
    """Race time of the car's last lap (retirement or finish) [h], ``[N]``."""
    group: torch.Tensor
    """Class group index (int64), ``[N]``."""
    retired: torch.Tensor
    """1.0 where the car retired, 0.0 where it was still running at the end, ``[N]``."""
    race: torch.Tensor
    """Index of the car's race (int64), ``[N]``."""
    races: int
    """Number of races."""
    other_hazard: float = 0.0
    """Hazard of retirement by other causes (terminal contacts) per car-hour."""


def model(data: FailureData) -> None:
    """Weibull survival per group with a frailty per (race, group): a class's cars share
    the luck and the conditions of their race."""
    n = data.age_h.shape[0]
    groups = len(CLASS_GROUPS)
    assert data.group.shape == (n,) and data.retired.shape == (n,) and data.race.shape == (n,)
    rate = pyro.sample("failure_rate", PRIORS["failure_rate"].dist())
    shape = pyro.sample("failure_shape", PRIORS["failure_shape"].dist())
    race_sd = pyro.sample("failure_race_sd", PRIORS["failure_race_sd"].dist())
    assert rate.shape[-1:] == (groups,)
    with pyro.plate("race_groups", data.races * groups, dim=-1):
        frailty = pyro.sample("failure_frailty", dist.Normal(0.0, 1.0))
    cell = data.race * groups + data.group
    r = rate[..., data.group] * (race_sd * frailty[..., cell]).exp()
    h = hazard(r, shape, data.age_h) + data.other_hazard
    big_h = cumulative_hazard(r, shape, data.age_h) + data.other_hazard * data.age_h
    with pyro.plate("cars", n, dim=-1):
        pyro.factor("survival", data.retired * h.log() - big_h)

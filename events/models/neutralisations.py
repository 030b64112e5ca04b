"""Neutralisations: how often race control calls FCY, safety car or slow zone, and for how long.

Race data record the periods, not the incidents behind them, so the fit learns a rate per
car-hour of each kind (``neut_rate_*``) and a log-normal duration per kind. The sampler turns
these into race control's answer to an incident of severity ``s`` (see
:mod:`events.sampler`): the chance of each kind rises with severity (a safety car with
``s²``, FCY and slow zone with ``s``) and is scaled so that, at the model's own incident
rates, each kind arrives at its fitted rate; each race (replica) has its own
incident-proneness ``exp(neut_race_sd x ε)``, ε standard normal. A safety car lasts a
number of laps, so its log duration shifts by ``neut_sc_length x log(lap / 13.626 km)``.
Local yellows are not in timing data: their probability per incident and duration are
priors only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior

KINDS: tuple[str, ...] = ("ly", "fcy", "sc", "sz")
"""Neutralisation kinds: local yellow, full course yellow, safety car, slow zone."""

PRIORS: dict[str, Prior] = {
    "neut_rate_fcy": Prior(
        math.log(4.0 / 1400.0), 0.6, link="exp", note="~4 FCY in a 24 h race of 60 cars"
    ),
    "neut_rate_sc": Prior(
        math.log(2.5 / 1400.0), 0.6, link="exp", note="~2-3 safety cars in a 24 h race"
    ),
    "neut_rate_sz": Prior(
        math.log(6.0 / 1400.0), 0.8, link="exp", note="Le Mans uses slow zones often (~6)"
    ),
    "neut_race_sd": Prior(
        math.log(0.3), 0.5, link="exp", note="races differ in incident-proneness (~30 %)"
    ),
    "neut_local": Prior(
        0.0, 0.5, link="sigmoid", note="half the incidents left green get a local yellow"
    ),
    "neut_ly_log_mean": Prior(math.log(120.0), 0.3, note="local yellow ~2 min"),
    "neut_fcy_log_mean": Prior(math.log(300.0), 0.35, note="FCY ~3-8 min"),
    "neut_sc_log_mean": Prior(
        math.log(1200.0), 0.7, note="safety car ~10-30 min, far longer at Le Mans (3 cars)"
    ),
    "neut_sz_log_mean": Prior(math.log(360.0), 0.35, note="slow zone ~6 min"),
    "neut_sc_length": Prior(
        1.0, 0.5, note="a safety car lasts a number of laps: duration ~ lap length^1"
    ),
    "neut_ly_log_sd": Prior(math.log(0.5), 0.3, link="exp"),
    "neut_fcy_log_sd": Prior(math.log(0.5), 0.3, link="exp"),
    "neut_sc_log_sd": Prior(math.log(0.6), 0.4, link="exp"),
    "neut_sz_log_sd": Prior(math.log(0.5), 0.3, link="exp"),
}

OBSERVED_KINDS: tuple[str, ...] = ("fcy", "sc")
REFERENCE_LAP_KM = 13.626
"""Lap length at which ``neut_sc_log_mean`` is the safety car's log duration (Le Mans) [km]."""


def sc_length_term(params: dict[str, torch.Tensor], lap_length_km: torch.Tensor | float):
    """Shift of the safety car's log duration on a lap of ``lap_length_km``."""
    ratio = torch.as_tensor(lap_length_km, dtype=torch.float32) / REFERENCE_LAP_KM
    return params["neut_sc_length"] * ratio.log()


"""Kinds that race timing records (slow zones and local yellows are not in the lap store)."""


@dataclass(frozen=True)
class NeutralisationData:
    """Per race: exposure and counts; per period: durations."""

    car_hours: torch.Tensor
    """Time cars spent on track in each race outside FCY and safety-car periods [h], ``[K]``
    (the exposure of a new neutralisation)."""
    counts: dict[str, torch.Tensor]
    """Periods of each observed kind per race, ``[K]`` each (None entries to sample)."""
    durations_s: dict[str, torch.Tensor]
    """Durations of all periods of each observed kind [s], ``[M_kind]``."""
    lap_km: dict[str, torch.Tensor]
    """Lap length of the race of each period [km], ``[M_kind]``."""


def model(data: NeutralisationData) -> None:
    k = data.car_hours.shape[0]
    p = {name: pyro.sample(name, PRIORS[name].dist()) for name in PRIORS}
    with pyro.plate("races", k, dim=-1):
        # One incident-proneness per race, shared by its kinds (overdispersed counts).
        effect = pyro.sample("neut_race_effect", dist.Normal(0.0, 1.0))
        for kind in OBSERVED_KINDS:
            obs = data.counts.get(kind)
            assert obs is None or obs.shape == (k,)
            rate = data.car_hours * p[f"neut_rate_{kind}"] * (p["neut_race_sd"] * effect).exp()
            pyro.sample(f"count_{kind}", dist.Poisson(rate), obs=obs)
    for kind in OBSERVED_KINDS:
        durations = data.durations_s.get(kind)
        if durations is None or durations.numel() == 0:
            continue
        assert durations.dim() == 1 and data.lap_km[kind].shape == durations.shape
        loc = p[f"neut_{kind}_log_mean"]
        if kind == "sc":
            loc = loc + sc_length_term(p, data.lap_km[kind])
        with pyro.plate(f"periods_{kind}", durations.shape[0], dim=-1):
            pyro.sample(
                f"duration_{kind}", dist.LogNormal(loc, p[f"neut_{kind}_log_sd"]), obs=durations
            )

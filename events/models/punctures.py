"""Punctures and tyre failures: a hazard per car-hour that rises with tyre wear.

``log hazard = puncture_log_rate + puncture_wear x (1 - tread_min)``: a fresh tyre punctures
from debris alone; a worn one (little tread left on its worst wheel) fails far more often.
Punctures caused by contacts are the damage model's (``damage_puncture``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior

PRIORS: dict[str, Prior] = {
    "puncture_log_rate": Prior(
        math.log(0.002),
        0.6,
        note="~3 debris punctures in 1,400 car-hours on new tyres (Le Mans sees ~5-10 in all)",
    ),
    "puncture_wear": Prior(
        3.0, 0.7, note="a tyre worn to 20 % tread fails ~10x as often as a new one"
    ),
}


def log_hazard(params: dict[str, torch.Tensor], tread_min: torch.Tensor) -> torch.Tensor:
    """Log puncture hazard per car-hour (broadcasting, as :func:`contacts.log_hazard`)."""
    return params["puncture_log_rate"] + params["puncture_wear"] * (1.0 - tread_min)


def cliff_depth(tread_min: torch.Tensor, cliff_tread: torch.Tensor) -> torch.Tensor:
    """How far the most worn wheel is past the tyre cliff: 0 at or above the threshold
    ``cliff_tread``, 1 on the canvas (``(threshold - tread) / threshold`` in [0, 1]);
    broadcasting. The sampler's puncture multiplier and the engine's lap-time cliff share it."""
    return ((cliff_tread - tread_min) / cliff_tread).clamp(0.0, 1.0)


@dataclass(frozen=True)
class PunctureData:
    hours: torch.Tensor
    """Time on track [h], ``[N]``."""
    tread_min: torch.Tensor
    """Least tread left over the wheels, fraction, ``[N]``."""
    counts: torch.Tensor | None = None
    """Punctures in each row, ``[N]``."""


def model(data: PunctureData) -> None:
    n = data.hours.shape[0]
    assert data.tread_min.shape == (n,)
    assert data.counts is None or data.counts.shape == (n,)
    p = {name: pyro.sample(name, PRIORS[name].dist()) for name in PRIORS}
    rate = log_hazard(p, data.tread_min).exp()
    with pyro.plate("rows", n, dim=-1):
        pyro.sample("punctures", dist.Poisson(data.hours * rate), obs=data.counts)

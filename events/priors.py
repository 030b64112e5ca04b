"""Prior distributions shared by the Pyro models (which fit them) and the sampler (which draws
from them when no fitted posterior is available).

Every parameter is a Normal on an unconstrained scale, mapped to its support by ``exp``
(positive rates and scales) or ``sigmoid`` (probabilities). That keeps one source of truth
for each prior and lets prior draws come from an explicit ``torch.Generator`` (torch's own
distributions sample only from the global generator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import SigmoidTransform

Link = Literal["identity", "exp", "sigmoid"]


@dataclass(frozen=True)
class Prior:
    """``link(Normal(loc, scale))`` with batch shape ``shape``."""

    loc: float | tuple[float, ...]
    scale: float | tuple[float, ...]
    link: Link = "identity"
    note: str = ""
    """Why this prior: the racing knowledge it encodes."""

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.loc),) if isinstance(self.loc, tuple) else ()

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.loc), torch.tensor(self.scale)

    def dist(self) -> dist.TorchDistribution:
        """The prior as a Pyro distribution (vector priors as an independent event)."""
        loc, scale = self._loc_scale()
        base = dist.Normal(loc, scale)
        if self.link == "exp":
            d = dist.LogNormal(loc, scale)
        elif self.link == "sigmoid":
            d = dist.TransformedDistribution(base, [SigmoidTransform()])
        else:
            d = base
        return d.to_event(1) if self.shape else d

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws, shape ``[n, *shape]``, from ``generator`` only."""
        loc, scale = self._loc_scale()
        z = torch.randn((n, *self.shape), generator=generator)
        return self.constrain(loc + scale * z)

    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        """Map an unconstrained value to the parameter's support."""
        if self.link == "exp":
            return x.exp()
        if self.link == "sigmoid":
            return torch.sigmoid(x)
        return x


def sample_priors(
    priors: Mapping[str, Prior], n: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """``n`` joint prior draws of every parameter (independent priors), ``[n, ...]`` each."""
    return {name: p.sample(n, generator).float() for name, p in priors.items()}

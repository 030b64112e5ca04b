"""Gaussian mixtures: the predictive form of every channel, with closed-form proper scores.

A channel's predictive for ``N`` rows is ``(weight, loc, scale)``, each ``[N, M]``: a
Gaussian heteroscedastic head is ``M = 1``, the lap-time head a few components, and a deep
ensemble the equal-weight union of its members' mixtures; the fuel and energy heads are
two-component scale mixtures (:meth:`Mixture.scale_mixture`: a core and a wider tail around one
location, a heavy-tailed law whose scores stay closed-form). The CRPS of a Gaussian mixture has
a closed form (Grimit et al. 2006, QJRMS 132: 2925), so no sampling estimate is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.functional import logsigmoid

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Mixture:
    """A batch of 1-D Gaussian mixtures; every field ``[N, M]``, weights sum to 1 per row."""

    weight: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor

    def affine(self, slope: torch.Tensor, offset: torch.Tensor) -> Mixture:
        """The law of ``slope * X + offset`` (``slope``, ``offset``: ``[N]``)."""
        return Mixture(
            self.weight,
            self.loc * slope.unsqueeze(1) + offset.unsqueeze(1),
            self.scale * slope.abs().unsqueeze(1),
        )

    def mean(self) -> torch.Tensor:
        return (self.weight * self.loc).sum(dim=1)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Log density at ``y`` ``[N]``."""
        z = (y.unsqueeze(1) - self.loc) / self.scale
        comp = -0.5 * z.square() - torch.log(self.scale) - _LOG_SQRT_2PI
        return torch.logsumexp(torch.log(self.weight.clamp(min=1e-30)) + comp, dim=1)

    def cdf(self, y: torch.Tensor) -> torch.Tensor:
        """Distribution function at ``y`` ``[N]`` (the probability integral transform)."""
        z = (y.unsqueeze(1) - self.loc) / self.scale
        return (self.weight * _norm_cdf(z)).sum(dim=1)

    def crps(self, y: torch.Tensor) -> torch.Tensor:
        """Continuous ranked probability score at ``y`` ``[N]``, in the units of ``y``."""
        w, mu, var = self.weight, self.loc, self.scale.square()
        first = (w * _a(y.unsqueeze(1) - mu, var)).sum(dim=1)
        pair_w = w.unsqueeze(2) * w.unsqueeze(1)
        pair = _a(mu.unsqueeze(2) - mu.unsqueeze(1), var.unsqueeze(2) + var.unsqueeze(1))
        return first - 0.5 * (pair_w * pair).sum(dim=(1, 2))

    def quantile(self, q: float, iters: int = 60) -> torch.Tensor:
        """The ``q`` quantile of every row, by bisection on the CDF."""
        lo = (self.loc - 10.0 * self.scale).min(dim=1).values
        hi = (self.loc + 10.0 * self.scale).max(dim=1).values
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One draw per row: a uniform picks the component, a normal draws within it."""
        n = self.weight.shape[0]
        u = torch.rand(n, 1, generator=generator)
        comp = (self.weight.cumsum(dim=1) < u).sum(dim=1, keepdim=True)
        comp = comp.clamp(max=self.weight.shape[1] - 1)
        z = torch.randn(n, generator=generator)
        loc = self.loc.gather(1, comp).squeeze(1)
        scale = self.scale.gather(1, comp).squeeze(1)
        return loc + scale * z

    @staticmethod
    def scale_mixture(
        loc: torch.Tensor, scale: torch.Tensor, tail_weight: torch.Tensor, tail_factor: torch.Tensor
    ) -> Mixture:
        """Two Gaussians around one location ``loc`` ``[N]``: a core of scale ``scale`` and a
        tail of scale ``scale * tail_factor`` with weight ``tail_weight`` (``[N]`` each)."""
        return Mixture(
            torch.stack([1.0 - tail_weight, tail_weight], dim=1),
            torch.stack([loc, loc], dim=1),
            torch.stack([scale, scale * tail_factor], dim=1),
        )

    @staticmethod
    def union(parts: list[Mixture]) -> Mixture:
        """The equal-weight mixture of several mixtures over the same rows."""
        k = len(parts)
        return Mixture(
            torch.cat([p.weight for p in parts], dim=1) / k,
            torch.cat([p.loc for p in parts], dim=1),
            torch.cat([p.scale for p in parts], dim=1),
        )

    def index(self, rows: torch.Tensor) -> Mixture:
        return Mixture(self.weight[rows], self.loc[rows], self.scale[rows])


def _norm_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


def _a(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E|X| for X ~ N(mu, var): the building block of the mixture CRPS."""
    sd = var.clamp(min=1e-24).sqrt()
    z = mu / sd
    pdf = torch.exp(-0.5 * z.square() - _LOG_SQRT_2PI)
    return 2.0 * sd * pdf + mu * (2.0 * _norm_cdf(z) - 1.0)


def gaussian_nll(loc: torch.Tensor, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise negative log density of ``N(loc, scale^2)`` at ``y``."""
    z = (y - loc) / scale
    return 0.5 * z.square() + torch.log(scale) + _LOG_SQRT_2PI


def mixture_nll(
    logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Negative log density of a mixture (last dim: components) at ``y`` (one dim fewer)."""
    z = (y.unsqueeze(-1) - loc) / scale
    comp = -0.5 * z.square() - torch.log(scale) - _LOG_SQRT_2PI
    return -torch.logsumexp(torch.log_softmax(logits, dim=-1) + comp, dim=-1)


def scale_mixture_nll(
    loc: torch.Tensor,
    scale: torch.Tensor,
    tail_logit: torch.Tensor,
    tail_factor: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Elementwise negative log density at ``y`` of the two-Gaussian scale mixture
    (:meth:`Mixture.scale_mixture`) with tail weight ``sigmoid(tail_logit)``."""
    z = (y - loc) / scale
    core = logsigmoid(-tail_logit) - 0.5 * z.square()
    tail = logsigmoid(tail_logit) - 0.5 * (z / tail_factor).square() - torch.log(tail_factor)
    return -torch.logaddexp(core, tail) + torch.log(scale) + _LOG_SQRT_2PI

"""Fitting one model by stochastic variational inference and drawing its posterior.

Pyro draws its ELBO samples from torch's global generator, so :func:`fit_svi` seeds it inside
``torch.random.fork_rng`` and restores it afterwards: a fit is reproducible from its ``seed``
and leaves the caller's random state untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal
from pyro.optim import ClippedAdam
from tqdm import tqdm

from events.models import ALL_PRIORS


@dataclass(frozen=True)
class FitResult:
    draws: dict[str, torch.Tensor]
    """Posterior draws of the model's global parameters, ``[S, ...]`` each."""
    final_loss: float
    """Mean negative ELBO over the last tenth of the steps."""
    steps: int


def fit_svi(
    model: Callable[[Any], None],
    data: Any,
    params: Sequence[str],
    *,
    steps: int,
    draws: int,
    seed: int,
    lr: float = 0.05,
    progress: bool = False,
    label: str = "",
) -> FitResult:
    """Fit ``model(data)`` with a full-rank Gaussian guide; return ``draws`` posterior draws
    of the sites named in ``params`` (local latents such as per-race effects are dropped)."""
    pyro.clear_param_store()
    guide = AutoMultivariateNormal(model, init_scale=0.05)
    svi = SVI(
        model, guide, ClippedAdam({"lr": lr, "lrd": 0.1 ** (1.0 / max(steps, 1))}), Trace_ELBO()
    )
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in tqdm(range(steps), desc=f"fit {label}", disable=not progress, file=sys.stderr):
            losses.append(float(svi.step(data)))
        with torch.no_grad():
            predictive = Predictive(
                model, guide=guide, num_samples=draws, return_sites=params, parallel=True
            )
            samples = predictive(data)
    tail = losses[-max(1, steps // 10) :] if losses else [float("nan")]
    out = {name: _as_draws(samples[name], draws, name) for name in params}
    return FitResult(draws=out, final_loss=sum(tail) / len(tail), steps=steps)


def _as_draws(x: torch.Tensor, draws: int, name: str) -> torch.Tensor:
    """``[draws, *prior shape]``: Predictive may add singleton dims of enclosing plates."""
    prior = ALL_PRIORS.get(name)
    shape = prior.shape if prior is not None else tuple(x.shape[1:])
    return x.detach().reshape(draws, *shape).float()

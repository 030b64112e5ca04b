"""Fitting one model by stochastic variational inference and drawing its posterior.

The posterior mode is found first (L-BFGS), the Laplace approximation there starts a
full-rank Gaussian guide, and SVI refines it. Pyro draws its ELBO samples from torch's
global generator, so :func:`fit_svi` seeds it inside ``torch.random.fork_rng`` and restores
it afterwards: a fit is reproducible from its ``seed`` and leaves the caller's random state
untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import (
    AutoContinuous,
    AutoLaplaceApproximation,
    AutoMultivariateNormal,
    init_to_median,
    init_to_value,
)
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
    lr: float = 0.005,
    map_iterations: int = 200,
    progress: bool = False,
    label: str = "",
) -> FitResult:
    """Fit ``model(data)`` with a full-rank Gaussian guide; return ``draws`` posterior draws
    of the sites named in ``params`` (local latents such as per-race effects are dropped).

    The guide starts from the Laplace approximation (the posterior mode found by L-BFGS and
    the Hessian there), which Adam alone reaches only slowly when parameters are correlated
    (an intercept and a slope), then ``steps`` SVI steps on the ELBO refine it.
    """
    pyro.clear_param_store()
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        guide = _laplace_start(model, data, map_iterations)
        svi = SVI(model, guide, ClippedAdam({"lr": lr}), Trace_ELBO())
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


def _laplace_start(model: Callable[[Any], None], data: Any, iterations: int) -> AutoContinuous:
    """The Laplace approximation at the posterior mode; a narrow Gaussian at the mode where
    the Hessian there is not positive definite.

    The mode: Adam from the prior median to get near it, then L-BFGS to converge (kept only
    if its line search stayed finite; hazards overflow far from the mode).
    """
    delta = AutoLaplaceApproximation(model, init_loc_fn=init_to_median)
    loss_fn = Trace_ELBO().differentiable_loss
    loss_fn(model, delta, data)  # creates the guide's parameters
    leaves = [p for _, p in pyro.get_param_store().named_parameters()]
    adam = torch.optim.Adam(leaves, lr=0.05)
    for _ in range(150):
        adam.zero_grad()
        loss = loss_fn(model, delta, data)
        loss.backward()
        adam.step()
    saved = [p.detach().clone() for p in leaves]
    lbfgs = torch.optim.LBFGS(leaves, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = loss_fn(model, delta, data)
        loss.backward()
        return loss

    try:
        lbfgs.step(closure)
        finite = all(bool(torch.isfinite(p).all()) for p in leaves) and bool(
            torch.isfinite(loss_fn(model, delta, data))
        )
    except ValueError:  # a distribution rejected non-finite parameters
        finite = False
    if not finite:
        with torch.no_grad():
            for p, s in zip(leaves, saved, strict=True):
                p.copy_(s)
    try:
        return delta.laplace_approximation(data)
    except (RuntimeError, ValueError):
        with torch.no_grad():
            mode = {k: v.detach() for k, v in delta(data).items()}  # a point mass: the mode
        return AutoMultivariateNormal(
            model, init_loc_fn=init_to_value(values=mode), init_scale=0.02
        )


def _as_draws(x: torch.Tensor, draws: int, name: str) -> torch.Tensor:
    """``[draws, *prior shape]``: Predictive may add singleton dims of enclosing plates."""
    prior = ALL_PRIORS.get(name)
    shape = prior.shape if prior is not None else tuple(x.shape[1:])
    return x.detach().reshape(draws, *shape).float()


def fit_nuts(
    model: Callable[[Any], None],
    data: Any,
    params: Sequence[str],
    *,
    draws: int,
    warmup: int,
    seed: int,
    progress: bool = False,
) -> FitResult:
    """Sample ``model(data)``'s posterior with NUTS (exact up to Monte Carlo error; worth it
    for the small models): ``draws`` samples after ``warmup`` adaptation steps, one chain."""
    pyro.clear_param_store()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kernel = NUTS(model, init_strategy=init_to_median, jit_compile=False)
        mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, disable_progbar=not progress)
        mcmc.run(data)
        samples = mcmc.get_samples()
    out = {name: _as_draws(samples[name], draws, name) for name in params}
    return FitResult(draws=out, final_loss=float("nan"), steps=warmup + draws)

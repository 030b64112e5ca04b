from __future__ import annotations

import math

import torch

from world_model.distributions import Mixture, scale_mixture_nll


def _gaussian_crps(mu: float, sd: float, y: float) -> float:
    """Gneiting & Raftery (2007) closed form for a single Gaussian."""
    z = (y - mu) / sd
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    return sd * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def test_single_component_crps_equals_the_gaussian_closed_form():
    mix = Mixture(
        torch.ones(3, 1), torch.tensor([[0.0], [1.0], [-2.0]]), torch.tensor([[1.0], [0.5], [2.0]])
    )
    y = torch.tensor([0.3, 2.0, -2.0])
    got = mix.crps(y)
    want = [_gaussian_crps(0, 1, 0.3), _gaussian_crps(1, 0.5, 2.0), _gaussian_crps(-2, 2, -2)]
    assert torch.allclose(got, torch.tensor(want), atol=1e-5)


def test_mixture_crps_matches_numerical_integration_of_the_cdf():
    mix = Mixture(
        torch.tensor([[0.7, 0.2, 0.1]]),
        torch.tensor([[0.0, 2.0, 6.0]]),
        torch.tensor([[1.0, 0.5, 3.0]]),
    )
    y = 1.3
    grid = torch.linspace(-20, 40, 120_001)
    cdf = mix.index(torch.zeros(grid.numel(), dtype=torch.long)).cdf(grid)
    integrand = (cdf - (grid >= y).float()).square()
    numeric = float(torch.trapezoid(integrand, grid))
    assert abs(float(mix.crps(torch.tensor([y]))[0]) - numeric) < 1e-4


def test_samples_follow_the_mixture_cdf():
    n = 40_000
    mix = Mixture(
        torch.tensor([[0.8, 0.2]]).expand(n, -1),
        torch.tensor([[0.0, 5.0]]).expand(n, -1),
        torch.tensor([[1.0, 2.0]]).expand(n, -1),
    )
    x = mix.sample(torch.Generator().manual_seed(3))
    pit = mix.cdf(x)
    # Kolmogorov-Smirnov: the PIT of true draws is uniform; 1.63 / sqrt(n) is the 1 % level.
    ecdf = torch.arange(1, n + 1) / n
    assert float((pit.sort().values - ecdf).abs().max()) < 1.63 / math.sqrt(n)


def test_quantile_inverts_the_cdf():
    mix = Mixture(
        torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 1.0]])
    )
    for q in (0.05, 0.5, 0.9):
        assert abs(float(mix.cdf(mix.quantile(q))[0]) - q) < 1e-5


def _tail_law(n: int = 1) -> tuple[Mixture, tuple[torch.Tensor, ...]]:
    args = (
        torch.full((n,), 0.4),
        torch.full((n,), 0.7),
        torch.full((n,), 0.25),
        torch.full((n,), 3.5),
    )
    return Mixture.scale_mixture(*args), args


def test_scale_mixture_nll_is_the_log_density_and_integrates_to_one():
    mix, (loc, scale, weight, factor) = _tail_law()
    logit = torch.logit(weight)
    grid = torch.linspace(-40, 40, 400_001)
    nll = scale_mixture_nll(loc, scale, logit, factor, grid)
    assert abs(float(torch.trapezoid(torch.exp(-nll), grid)) - 1.0) < 1e-5
    want = -mix.index(torch.zeros(grid.numel(), dtype=torch.long)).log_prob(grid)
    assert torch.allclose(nll, want, atol=1e-5)
    # tails heavier than a Gaussian of the same variance: excess kurtosis from the density
    dens = torch.exp(-nll).double()
    g = grid.double() - 0.4
    var = float(torch.trapezoid(dens * g**2, grid.double()))
    kurt = float(torch.trapezoid(dens * g**4, grid.double())) / var**2
    w, f = 0.25, 3.5
    want_kurt = 3 * ((1 - w) + w * f**4) / ((1 - w) + w * f**2) ** 2
    assert abs(kurt - want_kurt) < 1e-3 and kurt > 3.5


def test_scale_mixture_crps_matches_a_monte_carlo_estimate():
    # CRPS(F, y) = E|X - y| - E|X - X'| / 2; the estimate's sd bounds the tolerance.
    n = 200_000
    mix, _ = _tail_law(n)
    g = torch.Generator().manual_seed(11)
    x, x2 = mix.sample(g).double(), mix.sample(g).double()
    for y in (0.4, 1.9, -3.0):
        terms = (x - y).abs() - 0.5 * (x - x2).abs()
        estimate = float(terms.mean())
        tol = 4.0 * float(terms.std()) / math.sqrt(n)
        closed = float(mix.index(torch.zeros(1, dtype=torch.long)).crps(torch.tensor([y]))[0])
        assert abs(closed - estimate) < tol

"""Each incident model: shapes asserted, one SVI step under validation, prior shapes."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.optim import Adam

from events.classes import CLASS_GROUPS, class_group
from events.models import (
    ALL_PRIORS,
    contacts,
    damage,
    failures,
    flags,
    neutralisations,
    punctures,
    weather,
)
from events.priors import sample_priors


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _contact_data() -> contacts.ContactData:
    g = _gen(1)
    n = 40
    return contacts.ContactData(
        hours=torch.full((n,), 0.03),
        features=torch.rand((n, len(contacts.FEATURES)), generator=g),
        sim=(torch.arange(n) % 2).float(),
        counts=torch.randint(0, 2, (n,), generator=g).float(),
    )


def _failure_data() -> failures.FailureData:
    return failures.FailureData(
        age_h=torch.tensor([24.0, 3.0, 24.0, 12.5, 8.0]),
        group=torch.tensor([0, 1, 2, 2, 0]),
        retired=torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]),
        race=torch.tensor([0, 0, 1, 1, 1]),
        races=2,
        other_hazard=1e-3,
    )


def _neutralisation_data() -> neutralisations.NeutralisationData:
    return neutralisations.NeutralisationData(
        car_hours=torch.tensor([1300.0, 270.0]),
        counts={"fcy": torch.tensor([5.0, 3.0]), "sc": torch.tensor([3.0, 2.0])},
        durations_s={"fcy": torch.tensor([300.0, 180.0, 240.0]), "sc": torch.tensor([2000.0])},
        lap_km={"fcy": torch.tensor([13.6, 13.6, 5.4]), "sc": torch.tensor([13.6])},
    )


CASES = {
    "contacts": (contacts.model, _contact_data),
    "damage": (
        damage.model,
        lambda: damage.DamageData(
            terminal=torch.tensor([0.0, 1.0, 0.0]), severity=torch.tensor([0.1, 0.5])
        ),
    ),
    "punctures": (
        punctures.model,
        lambda: punctures.PunctureData(
            hours=torch.full((6,), 0.5),
            tread_min=torch.linspace(0.1, 1.0, 6),
            counts=torch.tensor([1.0, 0, 0, 0, 0, 0]),
        ),
    ),
    "failures": (failures.model, _failure_data),
    "neutralisations": (neutralisations.model, _neutralisation_data),
    "flags": (
        flags.model,
        lambda: flags.FlagLapData(
            log_ratio={"fcy": torch.tensor([0.9, 1.0]), "sc": torch.tensor([0.7, 0.6, 0.8])},
            race={"fcy": torch.tensor([0, 1]), "sc": torch.tensor([0, 0, 1])},
            races=2,
        ),
    ),
    "temperature": (
        weather.temperature_model,
        lambda: weather.TemperatureData(
            hour_of_day=torch.linspace(10.0, 22.0, 13),
            air_c=torch.linspace(22.0, 28.0, 13),
            track_c=torch.linspace(25.0, 30.0, 13),
            wetness=torch.zeros(13),
        ),
    ),
    "rain": (
        weather.rain_model,
        lambda: weather.RainData(
            dry_hours=torch.tensor([20.0, 24.0]),
            onsets=torch.tensor([1.0, 0.0]),
            wet_hours=torch.tensor([4.0, 0.0]),
            stops=torch.tensor([1.0, 0.0]),
            intensities=torch.tensor([0.4]),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_svi_step_under_validation(name: str, param_store: None) -> None:
    model, make_data = CASES[name]
    data = make_data()
    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO())
    loss = svi.step(data)
    assert math.isfinite(loss)
    assert len(pyro.get_param_store()) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_prior_predictive_shapes(name: str, param_store: None) -> None:
    """Vectorised prior draws have the priors' shapes (the posterior file relies on them)."""
    model, make_data = CASES[name]
    draws = Predictive(model, num_samples=7, parallel=True)(make_data())
    seen = [k for k in draws if k in ALL_PRIORS]
    assert seen, f"{name} samples none of the shared parameters"
    for k in seen:
        assert draws[k].reshape(7, -1).shape[1] == max(1, math.prod(ALL_PRIORS[k].shape)), k


def test_shape_assertions_reject_mismatched_data(param_store: None) -> None:
    bad = contacts.ContactData(
        hours=torch.ones(3), features=torch.ones(3, 2), sim=torch.zeros(3), counts=None
    )
    with pytest.raises(AssertionError):
        contacts.model(bad)


def test_prior_draws_come_from_the_generator_only() -> None:
    a = sample_priors(ALL_PRIORS, 5, _gen(3))
    b = sample_priors(ALL_PRIORS, 5, _gen(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["failure_rate"].shape == (5, len(CLASS_GROUPS))
    assert (a["damage_terminal"] > 0).all() and (a["damage_terminal"] < 1).all()


def test_kumaraswamy_inverse_cdf_matches_its_moments() -> None:
    a, b = torch.tensor(0.9), torch.tensor(3.0)
    n = 200_000
    x = damage.kumaraswamy_icdf(torch.rand(n, generator=_gen(4)), a, b)
    mean = damage.kumaraswamy_moment(1, a, b)
    second = damage.kumaraswamy_moment(2, a, b)
    sd = (second - mean**2).sqrt()
    assert abs(float(x.mean() - mean)) < 5 * float(sd) / math.sqrt(n)
    # The closed form agrees with torch's own Kumaraswamy mean.
    assert torch.isclose(mean, torch.distributions.Kumaraswamy(a, b).mean, rtol=1e-4)


def test_failure_cumulative_hazard_is_the_integral_of_the_hazard() -> None:
    rate, shape = torch.tensor(0.004), torch.tensor(1.3)
    t = torch.linspace(1e-4, 24.0, 200_001)
    integral = torch.trapezoid(failures.hazard(rate, shape, t), t)
    assert torch.isclose(
        integral, failures.cumulative_hazard(rate, shape, torch.tensor(24.0)), rtol=1e-3
    )


def test_class_groups() -> None:
    assert class_group("HYPERCAR") == class_group("GTP") == 0
    assert class_group("LMP2") == 1
    assert class_group("LMGTE Am") == class_group("LMGT3") == class_group("GTD PRO") == 2
    assert class_group("GTDPRO") == 2
    assert class_group("F1 2015") is None

"""The scenario's risk priors in the sampler: tyre cliff, slicks in the wet, push failures."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import torch

from events import prior_model
from events.interface import CarExposure, CarRisks
from events.models.punctures import cliff_depth
from events.sampler import PosteriorEventModel
from tests.events.conftest import exposure
from world_model.interface import Compound, PaceMode


@pytest.fixture(scope="module")
def model() -> PosteriorEventModel:
    return prior_model(["HYPERCAR", "LMP2", "LMGT3"])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _risks(
    cars: int,
    *,
    cliff_factor: float = 1.0,
    off_per_h: float = 0.0,
    push_factor: float = 1.0,
) -> CarRisks:
    return CarRisks(
        cliff_tread=torch.full((cars,), 0.15),
        cliff_log_factor=torch.full((cars,), math.log(cliff_factor)),
        slick_wet_off_per_h=torch.full((cars,), off_per_h),
        push_failure_factor=torch.full((cars,), push_factor),
    )


def _with(ex: CarExposure, risks: CarRisks | None, compound: Compound) -> CarExposure:
    return replace(ex, compound=torch.full(ex.dt_s.shape, int(compound)), risks=risks)


def _count(model, params, ex: CarExposure, field: str, windows: int, seed: int) -> float:
    """Incidents of kind ``field`` over ``windows`` windows of the same exposure."""
    g = _gen(seed)
    draws = (getattr(model.car_incidents(params, ex, g), field).sum() for _ in range(windows))
    return float(sum(draws))


def test_neutral_risks_draw_exactly_what_no_risks_draw(model: PosteriorEventModel) -> None:
    """Risks at their neutral values (factor 1, rate 0) take the risk code path and change
    nothing, bit for bit: the same generator state afterwards and the same incidents."""
    r, c = 128, 30
    p = model.draw_params(r, _gen(0))
    ex = exposure(r, c, dt_s=900.0, tread_min=0.05, wetness=0.7, pace_mode=PaceMode.PUSH)
    g_plain, g_neutral = _gen(3), _gen(3)
    plain = model.car_incidents(p, ex, g_plain)
    neutral = model.car_incidents(p, _with(ex, _risks(c), Compound.MEDIUM), g_neutral)
    assert plain.contact.any() and plain.puncture.any()
    for f in fields(plain):
        a, b = getattr(plain, f.name), getattr(neutral, f.name)
        assert torch.equal(torch.nan_to_num(a, nan=-7.0), torch.nan_to_num(b, nan=-7.0)), f.name
    assert not plain.off.any()
    assert torch.equal(g_plain.get_state(), g_neutral.get_state())


def test_cliff_depth() -> None:
    tread = torch.tensor([0.5, 0.15, 0.075, 0.0, -0.1])
    assert cliff_depth(tread, torch.tensor(0.15)).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_tyres_past_the_cliff_puncture_as_much_more_as_the_factor_says(
    model: PosteriorEventModel,
) -> None:
    r, c, windows = 512, 40, 20
    p = model.draw_params(r, _gen(1))
    worn = exposure(r, c, dt_s=60.0, tread_min=0.05)
    base = _count(model, p, _with(worn, None, Compound.MEDIUM), "puncture", windows, 2)
    cliff = _with(worn, _risks(c, cliff_factor=20.0), Compound.MEDIUM)
    risky = _count(model, p, cliff, "puncture", windows, 2)
    expected = 20.0 ** (2.0 / 3.0)  # depth (0.15 - 0.05) / 0.15
    assert base > 150  # relative error of the ratio below ~10 % (Poisson)
    assert abs(risky / base / expected - 1.0) < 0.2
    # Above the threshold the cliff changes nothing.
    fresh = exposure(r, c, dt_s=60.0, tread_min=0.5)
    a = _count(model, p, _with(fresh, None, Compound.MEDIUM), "puncture", windows, 3)
    b = _count(model, p, _with(fresh, cliff.risks, Compound.MEDIUM), "puncture", windows, 3)
    assert a == b


def test_slicks_in_the_wet_go_off_more_the_wetter_and_wets_do_not(
    model: PosteriorEventModel,
) -> None:
    r, c, windows, dt = 256, 40, 20, 60.0
    p = model.draw_params(r, _gen(1))
    risks = _risks(c, off_per_h=1.0)
    offs = {}
    for wet in (0.0, 0.5, 1.0):
        ex = _with(exposure(r, c, dt_s=dt, wetness=wet), risks, Compound.MEDIUM)
        offs[wet] = _count(model, p, ex, "off", windows, 4)
    on_wets = _with(exposure(r, c, dt_s=dt, wetness=1.0), risks, Compound.WET)
    assert _count(model, p, on_wets, "off", windows, 4) == 0
    assert offs[0.0] == 0
    # At full wetness: ~1 off per car-hour (other incidents compete for <5 % of the windows).
    q = -math.expm1(-1.0 * dt / 3600.0)
    n = r * c * windows
    expected, sd = n * q, math.sqrt(n * q * (1 - q))
    assert abs(offs[1.0] - expected) < 5 * sd + 0.05 * expected
    # Wetness squared: a half-wet track a quarter as many.
    assert abs(offs[0.5] / offs[1.0] - 0.25) < 0.05
    # Offs damage the car with no other car involved.
    inc = model.car_incidents(
        p, _with(exposure(r, c, dt_s=900.0, wetness=1.0), risks, Compound.SOFT), _gen(5)
    )
    assert inc.off.any() and (inc.partner[inc.off] == -1).all()
    assert (inc.damage[inc.off] > 0).all() and not (inc.off & inc.contact).any()


def test_pushing_multiplies_the_failure_hazard(model: PosteriorEventModel) -> None:
    r, c, windows = 1024, 40, 5
    p = model.draw_params(r, _gen(1))
    ex = exposure(r, c, dt_s=3600.0, pace_mode=PaceMode.PUSH)
    calm = _count(model, p, _with(ex, _risks(c), Compound.MEDIUM), "failure", windows, 6)
    stressed = _with(ex, _risks(c, push_factor=2.0), Compound.MEDIUM)
    pushed = _count(model, p, stressed, "failure", windows, 6)
    assert calm > 300  # ratio known to ~8 % (Poisson)
    assert abs(pushed / calm - 2.0) < 0.3
    # At normal pace the push factor does nothing.
    normal = exposure(r, c, dt_s=3600.0)
    a = _count(model, p, _with(normal, _risks(c), Compound.MEDIUM), "failure", 2, 7)
    b = _count(model, p, _with(normal, stressed.risks, Compound.MEDIUM), "failure", 2, 7)
    assert a == b


def test_risks_need_the_compound(model: PosteriorEventModel) -> None:
    p = model.draw_params(4, _gen(0))
    with pytest.raises(ValueError, match="compound"):
        model.car_incidents(p, replace(exposure(4, 3), risks=_risks(3)), _gen(1))

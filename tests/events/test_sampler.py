"""The engine-facing sampler: contract, determinism, common random numbers, rates, forcing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from events import load_default, prior_model
from events.interface import EventModel, ForcedEvent, ForcedKind
from events.models import contacts, failures
from events.sampler import PosteriorEventModel
from tests.events.conftest import exposure
from world_model.interface import FlagState, PaceMode


@pytest.fixture(scope="module")
def model() -> PosteriorEventModel:
    return prior_model(["HYPERCAR", "LMP2", "LMGT3"])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_implements_the_engine_contract(model: PosteriorEventModel) -> None:
    assert isinstance(model, EventModel)
    assert isinstance(load_default(), EventModel)


def test_incident_shapes_and_types(model: PosteriorEventModel) -> None:
    params = model.draw_params(64, _gen(0))
    inc = model.car_incidents(params, exposure(64, 30, dt_s=600.0), _gen(1))
    for field in ("contact", "puncture", "failure", "retired"):
        assert getattr(inc, field).shape == (64, 30) and getattr(inc, field).dtype == torch.bool
    assert inc.partner.dtype == torch.int64 and inc.damage.shape == (64, 30)
    happened = inc.contact | inc.puncture | inc.failure
    assert happened.any(), "long windows should see some incidents"
    assert torch.isnan(inc.time_s[~happened]).all()
    t = inc.time_s[happened]
    assert ((t >= 4 * 3600.0 - 600.0) & (t <= 4 * 3600.0)).all()
    # Partners are other cars of the replica; damage only from contacts.
    cars = torch.arange(30).expand(64, 30)
    assert (inc.partner[inc.contact] != cars[inc.contact]).all()
    assert ((inc.partner[inc.contact] >= 0) & (inc.partner[inc.contact] < 30)).all()
    assert (inc.partner[~inc.contact] == -1).all()
    # Partners are cars on track: with half the field in the pits, never one of those.
    ex = exposure(64, 30, dt_s=900.0)
    in_pits = torch.arange(30) % 2 == 1
    ex = replace(ex, dt_s=torch.where(in_pits, 0.0, ex.dt_s))
    inc = model.car_incidents(params, ex, _gen(2))
    assert inc.contact.any()
    assert not in_pits[inc.partner[inc.contact]].any()
    assert (inc.damage[~inc.contact] == 0).all() and (inc.damage <= 1).all()
    assert (inc.retired == (inc.failure | (inc.contact & (inc.damage == 1.0)))).all()


def test_same_seed_same_samples(model: PosteriorEventModel) -> None:
    def run(seed: int):
        g = _gen(seed)
        p = model.draw_params(32, g)
        inc = model.car_incidents(p, exposure(32, 20, dt_s=900.0), g)
        neut = model.neutralisation(p, inc.damage.amax(-1), g)
        w = model.weather(p, 15.0, 6 * 3600.0, 60.0, g)
        return inc, neut, w

    a, b, c = run(5), run(5), run(6)
    for x, y in (
        (a[0].damage, b[0].damage),
        (a[1].duration_s, b[1].duration_s),
        (a[2].track_temp_c, b[2].track_temp_c),
    ):
        assert torch.equal(x, y)
    assert not torch.equal(a[2].track_temp_c, c[2].track_temp_c)


def test_common_random_numbers_whatever_the_exposure(model: PosteriorEventModel) -> None:
    """The same generator state gives the same draws however the cars are exposed: each call
    consumes a fixed amount of the stream, and raising every hazard only adds incidents."""
    p = model.draw_params(64, _gen(0))
    quiet = exposure(64, 30, traffic=0.0, pace_mode=PaceMode.SAVE, tread_min=1.0)
    busy = exposure(
        64, 30, traffic=4.0, pace_mode=PaceMode.PUSH, tread_min=0.1, wetness=1.0, night=1.0
    )
    busy = replace(busy, dt_s=busy.dt_s * 20)
    ga, gb = _gen(9), _gen(9)
    a = model.car_incidents(p, quiet, ga)
    b = model.car_incidents(p, busy, gb)
    assert torch.equal(ga.get_state(), gb.get_state())
    any_a = a.contact | a.puncture | a.failure
    any_b = b.contact | b.puncture | b.failure
    assert any_b.sum() > any_a.sum()
    assert (any_b | ~any_a).all(), "an incident under low hazard must survive higher hazard"
    # Neutralisation draws are fixed-shape too.
    gc, gd = _gen(3), _gen(3)
    model.neutralisation(p, torch.zeros(64), gc)
    model.neutralisation(p, torch.ones(64), gd)
    assert torch.equal(gc.get_state(), gd.get_state())


def test_contact_frequency_matches_the_hazard(model: PosteriorEventModel) -> None:
    """Contacts per window match 1 - exp(-hazard dt) within binomial error."""
    r, c, windows = 256, 40, 20
    p = model.draw_params(r, _gen(1))
    ex = exposure(r, c, dt_s=60.0, traffic=2.0, faster_class_traffic=1.0)
    g = _gen(2)
    count = torch.zeros(r, c)
    for _ in range(windows):
        count += model.car_incidents(p, ex, g).contact.float()
    col = {k: v.unsqueeze(-1) for k, v in p.items() if k.startswith("contact_")}
    feats = (
        ex.traffic,
        ex.faster_class_traffic,
        ex.night,
        ex.wetness,
        torch.zeros(r, c),
        torch.zeros(r, c),
        ex.driver_skill,
    )
    h_c = contacts.log_hazard(col, feats).exp()
    h_other = torch.zeros(r, c)  # competing risks: at most one incident per car and window
    q = -torch.expm1(-h_c * 60.0 / 3600.0)
    expected = float((q * windows).sum())
    sd = math.sqrt(float((q * (1 - q) * windows).sum()))
    assert abs(float(count.sum()) - expected) < 5 * sd + 0.01 * expected
    assert float(h_other.sum()) == 0.0


def test_more_traffic_night_rain_and_pushing_mean_more_contacts(model: PosteriorEventModel) -> None:
    p = model.draw_params(512, _gen(1))
    base = exposure(512, 40, dt_s=1800.0, traffic=0.5)
    risky = exposure(
        512, 40, dt_s=1800.0, traffic=3.0, night=1.0, wetness=1.0, pace_mode=PaceMode.PUSH
    )
    n_base = model.car_incidents(p, base, _gen(4)).contact.sum()
    n_risky = model.car_incidents(p, risky, _gen(4)).contact.sum()
    assert n_risky > 2 * n_base


def test_worn_tyres_puncture_more(model: PosteriorEventModel) -> None:
    p = model.draw_params(512, _gen(1))
    new = model.car_incidents(p, exposure(512, 40, dt_s=3600.0, tread_min=1.0), _gen(5))
    worn = model.car_incidents(p, exposure(512, 40, dt_s=3600.0, tread_min=0.1), _gen(5))
    assert worn.puncture.sum() > 3 * new.puncture.sum()


def test_cars_off_track_have_no_incidents(model: PosteriorEventModel) -> None:
    p = model.draw_params(16, _gen(0))
    inc = model.car_incidents(p, exposure(16, 10, dt_s=0.0), _gen(1))
    assert not (inc.contact | inc.puncture | inc.failure).any()


def test_neutralisation_kinds_and_durations(model: PosteriorEventModel) -> None:
    r = 4000
    p = model.draw_params(r, _gen(0))
    none = model.neutralisation(p, torch.zeros(r), _gen(1))
    assert (none.kind == FlagState.GREEN).all() and (none.duration_s == 0).all()
    severe = model.neutralisation(p, torch.ones(r), _gen(1))
    light = model.neutralisation(p, torch.full((r,), 0.05), _gen(1))
    allowed = {
        int(k)
        for k in (
            FlagState.GREEN,
            FlagState.LOCAL_YELLOW,
            FlagState.FCY,
            FlagState.SAFETY_CAR,
            FlagState.SLOW_ZONE,
        )
    }
    assert set(severe.kind.unique().tolist()) <= allowed
    sc = FlagState.SAFETY_CAR
    assert (severe.kind == sc).sum() > 3 * (light.kind == sc).sum()
    called = severe.kind != FlagState.GREEN
    assert (severe.duration_s[called] > 0).all() and (severe.duration_s[~called] == 0).all()
    sc_median = severe.duration_s[severe.kind == sc].median()
    fcy_median = severe.duration_s[severe.kind == FlagState.FCY].median()
    assert sc_median > fcy_median


def test_forced_neutralisation_duration(model: PosteriorEventModel) -> None:
    p = model.draw_params(500, _gen(0))
    d = model.neutralisation_duration(p, FlagState.SAFETY_CAR, _gen(1))
    assert d.shape == (500,) and (d > 0).all()
    short = model.configured(lap_length_m=5412.0)
    d_short = short.neutralisation_duration(
        short.draw_params(500, _gen(0)), FlagState.SAFETY_CAR, _gen(1)
    )
    assert d_short.median() < d.median(), "safety cars last fewer seconds on a shorter lap"


def test_damage_effects_grow_with_damage(model: PosteriorEventModel) -> None:
    p = model.draw_params(8, _gen(0))
    level = torch.linspace(0.0, 1.0, 5).expand(8, 5)
    loss, repair = model.damage_effects(p, level)
    assert loss.shape == repair.shape == (8, 5)
    assert (loss[:, 0] == 0).all() and (repair[:, 0] == 0).all()
    assert (loss.diff(dim=1) > 0).all() and (repair.diff(dim=1) > 0).all()


def test_flag_effects(model: PosteriorEventModel) -> None:
    green = model.flag_effect(FlagState.GREEN)
    assert (green.lap_time_factor, green.fuel_factor, green.wear_factor) == (1.0, 1.0, 1.0)
    for kind in (FlagState.FCY, FlagState.SAFETY_CAR):
        e = model.flag_effect(kind)
        assert e.lap_time_factor > 1.3 and e.fuel_factor < 0.8 and e.wear_factor < 0.8
    sz = model.flag_effect(FlagState.SLOW_ZONE)
    assert 1.0 < sz.lap_time_factor < model.flag_effect(FlagState.FCY).lap_time_factor


def test_class_names_pick_group_failure_rates(model: PosteriorEventModel) -> None:
    p = model.draw_params(16, _gen(0))
    table = p.failure_rate_by_class
    assert table.shape == (16, 3)
    pooled = prior_model().draw_params(16, _gen(0)).failure_rate_by_class
    assert pooled.shape == (16, 1)
    torch.testing.assert_close(pooled[:, 0], table.log().mean(-1).exp())


def test_weather_track(model: PosteriorEventModel) -> None:
    p = model.draw_params(200, _gen(0))
    w = model.weather(p, 16.0, 24 * 3600.0, 120.0, _gen(1))
    assert w.rain.shape == (200, 721) and w.step_s == 120.0
    assert ((w.rain >= 0) & (w.rain <= 1)).all() and ((w.wetness >= 0) & (w.wetness <= 1)).all()
    # Nights are cooler than afternoons (16:00 start: k=0 is 16:00, k=360 is 04:00).
    assert (w.air_temp_c[:, 0] - w.air_temp_c[:, 360]).mean() > 2.0
    # Some replicas see rain, most do not (prior: rain in about 40 % of 24 h races).
    wet = (w.rain.amax(1) > 0).float().mean()
    assert 0.05 < wet < 0.95
    at_one_hour = w.at(torch.full((200,), 3600.0))
    assert len(at_one_hour) == 4 and all(x.shape == (200,) for x in at_one_hour)
    assert torch.equal(at_one_hour[3], w.air_temp_c[:, 30])


def test_forced_rain_appears_exactly_where_scripted(model: PosteriorEventModel) -> None:
    p = model.draw_params(50, _gen(0))
    forced = [ForcedEvent(ForcedKind.RAIN, start_s=14 * 3600.0, end_s=17 * 3600.0, intensity=0.8)]
    w = model.weather(p, 16.0, 24 * 3600.0, 60.0, _gen(1), forced=forced)
    inside = slice(14 * 60, 17 * 60)
    assert (w.rain[:, inside] == 0.8).all()
    # The track soaks with a lag, then dries after the rain stops (unless it rains again).
    assert (w.wetness[:, 14 * 60 + 1] < w.wetness[:, 16 * 60]).all()
    assert (w.wetness[:, 16 * 60] > 0.6).all()
    # Track colder under the rain than the same replicas' dry draw at that time.
    dry = model.weather(p, 16.0, 24 * 3600.0, 60.0, _gen(1))
    assert (w.track_temp_c[:, 16 * 60] < dry.track_temp_c[:, 16 * 60]).float().mean() > 0.9
    # Outside the scripted window the weather is the unforced draw.
    assert torch.equal(w.rain[:, : 14 * 60], dry.rain[:, : 14 * 60])


def test_forced_wetness_is_the_track_inside_its_span_and_the_draw_outside(
    model: PosteriorEventModel,
) -> None:
    p = model.draw_params(50, _gen(0))
    forced = [ForcedEvent(ForcedKind.WET, start_s=14 * 3600.0, end_s=15 * 3600.0, intensity=0.4)]
    w = model.weather(p, 16.0, 24 * 3600.0, 60.0, _gen(1), forced=forced)
    dry = model.weather(p, 16.0, 24 * 3600.0, 60.0, _gen(1))
    inside = slice(14 * 60, 15 * 60)
    # No soaking lag: the track is at the scripted wetness from the span's first minute.
    assert (w.wetness[:, inside] == 0.4).all() and (w.rain[:, inside] == 0.4).all()
    # No drying lag either: after the span the track is the unforced draw's.
    assert torch.equal(w.wetness[:, 15 * 60 :], dry.wetness[:, 15 * 60 :])
    assert torch.equal(w.wetness[:, : 14 * 60], dry.wetness[:, : 14 * 60])
    # The wet track is colder than the same replicas' draw (mostly dry) at that time.
    k = 14 * 60 + 30
    assert (w.track_temp_c[:, k] < dry.track_temp_c[:, k]).float().mean() > 0.8


def test_forced_rain_without_end_draws_its_length(model: PosteriorEventModel) -> None:
    p = model.draw_params(300, _gen(0))
    forced = [ForcedEvent(ForcedKind.RAIN, start_s=3600.0, intensity=0.5)]
    w = model.weather(p, 16.0, 12 * 3600.0, 60.0, _gen(1), forced=forced)
    assert (w.rain[:, 60] == 0.5).all()
    lasted = (w.rain[:, 60:] == 0.5).float().sum(1)
    assert lasted.std() > 0, "spell lengths differ between replicas"


def test_posterior_file_round_trip(tmp_path, model: PosteriorEventModel) -> None:
    from events import load_model
    from events.posterior import PosteriorFileError, load_posterior, save_posterior

    path = tmp_path / "post.pt"
    save_posterior(path, {k: v[:100] for k, v in model.draws.items()}, {"command": "test"})
    draws, meta = load_posterior(path)
    assert meta["command"] == "test" and draws["failure_rate"].shape == (100, 3)
    loaded = load_model(path)
    assert loaded.num_draws == 100 and loaded.metadata["prior_only_parameters"] == []
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a posterior")
    with pytest.raises(PosteriorFileError, match=r"bad\.pt"):
        load_posterior(bad)
    assert not list(tmp_path.glob(".*.tmp"))


def test_incidents_are_exactly_the_cars_below_their_chance(model: PosteriorEventModel) -> None:
    """The incidents must be exactly the cars whose uniform falls below their own chance,
    recomputed here from the hazard formulas over the whole field."""
    from events.models import failures, punctures

    r, c = 128, 40
    p = model.draw_params(r, _gen(0))
    g = _gen(1)
    ex = exposure(r, c, dt_s=900.0)
    ex = replace(
        ex,
        traffic=torch.rand((r, c), generator=g) * 4,
        tread_min=torch.rand((r, c), generator=g),
        pace_mode=torch.randint(0, 3, (r, c), generator=g),
        driver_skill=torch.randn((r, c), generator=g),
        race_time_s=torch.rand((r, c), generator=g) * 86400.0,
    )
    state = g.get_state()
    inc = model.car_incidents(p, ex, g)
    replay = torch.Generator()
    replay.set_state(state)
    u = torch.rand((r, c), generator=replay, dtype=torch.float64)
    col = {k: v.unsqueeze(-1) for k, v in p.items() if v.dim() == 1}
    feats = (
        ex.traffic,
        ex.faster_class_traffic,
        ex.night,
        ex.wetness,
        (ex.pace_mode == PaceMode.PUSH).float(),
        (ex.pace_mode == PaceMode.SAVE).float(),
        ex.driver_skill,
    )
    rate = p.failure_rate_by_class.gather(1, ex.class_index)
    h = (
        contacts.log_hazard(col, feats).exp()
        + punctures.log_hazard(col, ex.tread_min).exp()
        + failures.hazard(rate, col["failure_shape"], ex.race_time_s / 3600.0)
    )
    chance = -torch.expm1(-h * ex.dt_s / 3600.0)
    expected = u < chance
    assert expected.sum() > 20
    assert torch.equal(inc.contact | inc.puncture | inc.failure, expected)


def test_the_shipped_posterior_loads_and_says_how_it_was_made() -> None:
    from events.default import DEFAULT_POSTERIOR

    if not DEFAULT_POSTERIOR.is_file():
        pytest.skip("no shipped posterior (load_default falls back to the priors)")
    assert DEFAULT_POSTERIOR.stat().st_size < 1_000_000
    model = load_default(["HYPERCAR", "LMP2", "LMGT3"], 13626.0)
    meta = model.metadata
    assert meta["command"].startswith("python -m events.fit")
    assert meta["data"]["holdout"] and not set(meta["data"]["holdout"]) & set(meta["data"]["train"])
    assert "puncture_log_rate" in meta["prior_only_parameters"]
    held_out = [c for c in meta["checks"] if c["split"] == "held-out"]
    assert held_out and all(c["low"] <= c["observed"] <= c["high"] for c in held_out)


def test_retirements_over_24_h_match_the_fitted_failure_and_terminal_contact_rates() -> None:
    """A 24 h race at the reference exposure retires cars at the rate the shipped posterior
    fitted: each car's retirement chance is ``1 - exp(-(H_failure(24 h) + h_contact x
    p_terminal x 24 h))`` with the replica's own class frailty, and the count over the field
    lies within binomial error of its sum (cars are independent given the replica's draw)."""
    model = load_default().configured(["HYPERCAR", "LMP2", "LMGT3"])
    ref = model.reference
    r, c, window_s, hours = 128, 30, 600.0, 24.0
    p = model.draw_params(r, _gen(11))
    g = _gen(12)
    running = torch.ones(r, c, dtype=torch.bool)
    for k in range(int(hours * 3600 / window_s)):
        ex = exposure(
            r,
            c,
            dt_s=window_s,
            race_time_s=(k + 1) * window_s,
            traffic=ref.traffic,
            faster_class_traffic=ref.faster_class_traffic,
            night=ref.night,
            tread_min=1.0,
        )
        ex = replace(ex, dt_s=torch.where(running, ex.dt_s, 0.0))
        running &= ~model.car_incidents(p, ex, g).retired
    ex = exposure(r, c, traffic=ref.traffic, faster_class_traffic=ref.faster_class_traffic)
    col = {k: v.unsqueeze(-1) for k, v in p.items() if k.startswith("contact_")}
    feats = (
        ex.traffic,
        ex.faster_class_traffic,
        torch.full((r, c), ref.night),
        ex.wetness,
        torch.zeros(r, c),
        torch.zeros(r, c),
        ex.driver_skill,
    )
    h_terminal = contacts.log_hazard(col, feats).exp() * p["damage_terminal"].unsqueeze(-1)
    rate = p.failure_rate_by_class.gather(1, ex.class_index)
    big_h = (
        failures.cumulative_hazard(rate, p["failure_shape"].unsqueeze(-1), torch.tensor(hours))
        + h_terminal * hours
    )
    q = -torch.expm1(-big_h).double()
    expected = float(q.sum())
    sd = math.sqrt(float((q * (1 - q)).sum()))
    retired = float((~running).sum())
    # 4 sd of binomial error, plus 2 % for the windowed hazard (taken at each window's end).
    assert abs(retired - expected) < 4 * sd + 0.02 * expected, (retired, expected, sd)
    # The frailty is drawn per replica and class group, so the replicas' spread of the
    # expected count is the fitted one, not a single shared rate.
    assert float(q.sum(-1).std()) > 0.0

"""Fitting: parameters recovered from simulated data, and the fitted posterior's predictive
intervals covering a real race left out of the fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from events import fit, load_model
from events.inference import fit_nuts, fit_svi
from events.models import failures, punctures
from world_model.interface import FlagState

HELD_OUT = "wec_2026_lemans_24h_race"
WEC_FILES = (
    "wec_2023_lemans_24h_race_analysis.csv",
    "wec_2024_lemans_24h_race_analysis.csv",
    "wec_2024_bahrain_8h_race_analysis.csv",
    "wec_2026_lemans_24h_race_analysis.csv",
)


def test_puncture_model_recovers_known_parameters() -> None:
    # Truth inside the prior's bulk; a season's worth of exposure (500 car-hours a row).
    truth = {"puncture_log_rate": torch.tensor(math.log(0.003)), "puncture_wear": torch.tensor(3.5)}
    g = torch.Generator().manual_seed(11)
    n = 400
    tread = torch.rand(n, generator=g)
    hours = torch.full((n,), 500.0)
    rate = punctures.log_hazard(truth, tread).exp()
    counts = torch.poisson(hours * rate, generator=g)
    data = punctures.PunctureData(hours=hours, tread_min=tread, counts=counts)
    result = fit_svi(punctures.model, data, list(punctures.PRIORS), steps=100, draws=1000, seed=0)
    for name, value in truth.items():
        lo, hi = torch.quantile(result.draws[name], torch.tensor([0.01, 0.99]))
        assert lo <= value <= hi, f"{name}: {float(value):.3f} outside [{lo:.3f}, {hi:.3f}]"
        # And the posterior has learnt: far narrower than the prior.
        prior_sd = punctures.PRIORS[name].scale
        assert float(result.draws[name].std()) < 0.5 * prior_sd


def _puncture_data(seed: int = 11) -> punctures.PunctureData:
    g = torch.Generator().manual_seed(seed)
    truth = {"puncture_log_rate": torch.tensor(math.log(0.003)), "puncture_wear": torch.tensor(3.5)}
    tread = torch.rand(200, generator=g)
    hours = torch.full((200,), 500.0)
    counts = torch.poisson(hours * punctures.log_hazard(truth, tread).exp(), generator=g)
    return punctures.PunctureData(hours=hours, tread_min=tread, counts=counts)


def test_svi_is_reproducible_and_leaves_the_global_generator_alone() -> None:
    data = _puncture_data()
    before = torch.random.get_rng_state()
    a = fit_svi(punctures.model, data, list(punctures.PRIORS), steps=20, draws=50, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = fit_svi(punctures.model, data, list(punctures.PRIORS), steps=20, draws=50, seed=3)
    assert all(torch.equal(a.draws[k], b.draws[k]) for k in a.draws)


def test_nuts_and_svi_agree_on_a_small_posterior() -> None:
    data = _puncture_data()
    params = list(punctures.PRIORS)
    svi = fit_svi(punctures.model, data, params, steps=100, draws=1000, seed=0)
    nuts = fit_nuts(punctures.model, data, params, draws=200, warmup=100, seed=0)
    for name in params:
        sd = float(svi.draws[name].std())
        assert abs(float(svi.draws[name].mean() - nuts.draws[name].mean())) < 0.5 * sd, name
        assert 0.6 < float(nuts.draws[name].std()) / sd < 1.6, name


@pytest.fixture(scope="module")
def wec_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ingest = pytest.importorskip("data.ingest", reason="the data package's ingest is needed")
    db = tmp_path_factory.mktemp("store") / "wec.sqlite"
    report = ingest.ingest([str(shared_data / "wec" / f) for f in WEC_FILES], db)
    errors = {k: v for k, v in report["files"].items() if "error" in v}
    if errors:
        pytest.skip(f"WEC timing could not be ingested: {errors}")
    return db


@pytest.mark.slow
@pytest.mark.shared_data
def test_held_out_race_is_covered_by_the_posterior_predictive(
    wec_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "posterior.pt"
    argv = [
        "--db",
        str(wec_store),
        "--out",
        str(out),
        "--holdout",
        HELD_OUT,
        "--steps",
        "150",
        "--draws",
        "500",
        "--replicas",
        "100",
        "--no-progress",
        "--json",
    ]
    assert fit.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["holdout"] == [HELD_OUT]
    assert HELD_OUT not in report["data"]["train"]
    held = [c for c in report["checks"] if c["split"] == "held-out"]
    models = {c["model"] for c in held}
    assert {"neutralisations", "failures", "flags", "sampler"} <= models
    missed = [c for c in held if not c["covered"]]
    assert not missed, f"held-out statistics outside their 5-95 % interval: {missed}"
    # The file is what load_model reads; parameters the store cannot inform stay priors.
    model = load_model(out)
    assert model.num_draws == 500
    assert "contact_log_rate" in model.metadata["prior_only_parameters"]
    assert report["models"]["neutralisations"]["fitted"]


def test_fit_rejects_an_unknown_holdout(
    tmp_path: Path, wec_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit.main(
        ["--db", str(wec_store), "--out", str(tmp_path / "p.pt"), "--holdout", "no_such_race"]
    )
    assert code == 2
    assert "no_such_race" in capsys.readouterr().err
    assert not (tmp_path / "p.pt").exists()


def test_fit_rejects_a_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = fit.main(["--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "p.pt")])
    assert code == 2 and "none.sqlite" in capsys.readouterr().err


def test_failure_frailty_is_recovered_by_the_default_sampler() -> None:
    """The failure model's race-class frailty sd (a funnel the Gaussian SVI guide widens) is
    fitted back within its posterior interval by the method ``events.fit`` uses for it."""
    assert "failures" in fit.DEFAULT_NUTS
    g = torch.Generator().manual_seed(5)
    races, groups, per_cell, hours = 6, 3, 20, 24.0
    truth_sd = 0.3
    rate = torch.tensor([0.008, 0.007, 0.012])
    cell_rate = rate.repeat(races) * (truth_sd * torch.randn(races * groups, generator=g)).exp()
    cell = torch.arange(races * groups).repeat_interleave(per_cell)
    # Shape 1: exponential lifetimes, censored at the chequered flag.
    life = -torch.rand(cell.shape[0], generator=g).log() / cell_rate[cell]
    data = failures.FailureData(
        age_h=life.clamp(max=hours),
        group=cell % groups,
        retired=(life < hours).float(),
        race=cell // groups,
        races=races,
    )
    result = fit_nuts(failures.model, data, list(failures.PRIORS), draws=150, warmup=100, seed=0)
    lo, hi = torch.quantile(result.draws["failure_race_sd"], torch.tensor([0.05, 0.95]))
    assert lo <= truth_sd <= hi, f"race sd {truth_sd} outside [{lo:.3f}, {hi:.3f}]"
    lo, hi = torch.quantile(result.draws["failure_shape"], torch.tensor([0.05, 0.95]))
    assert lo <= 1.0 <= hi, f"shape 1 outside [{lo:.3f}, {hi:.3f}]"


def test_neutralisation_exposure_leaves_out_the_neutralised_time(
    tmp_path: Path, shared_data: Path
) -> None:
    """Le Mans 2024 ran about 7 h behind the safety car: its FCY exposure is the rest."""
    from data.ingest import ingest
    from events import observations as obs

    db = tmp_path / "lm24.sqlite"
    ingest([str(shared_data / "wec" / "wec_2024_lemans_24h_race_analysis.csv")], db)
    conn = obs.connect(db)
    try:
        (race,) = obs.races(conn)
        neutral_s = sum(
            float(obs.flag_periods(conn, race, kind).sum())
            for kind in (FlagState.FCY, FlagState.SAFETY_CAR)
        )
        share = neutral_s / 3600.0 / obs.race_hours(conn, race)
        assert 0.25 < share < 0.35  # the periods do not overlap: their union is their sum
        green = obs.green_car_hours(conn, race)
        assert green == pytest.approx(obs.car_hours(conn, race) * (1.0 - share), rel=1e-9)
        assert obs.neutralisation_data(conn, [race]).car_hours.item() == pytest.approx(
            green, rel=1e-6
        )
    finally:
        conn.close()

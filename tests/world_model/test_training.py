"""Training on synthetic races from the parametric model (known truth): the fit entry point,
scalers, recovery of a known effect, calibration on a held-out race, and evaluate."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from world_model.checkpoint import load_checkpoint
from world_model.dataset import LapTable
from world_model.evaluate import main as evaluate_main
from world_model.evaluate import model_predictive, score
from world_model.features import build_features
from world_model.fit import FitConfig, fit_model
from world_model.fit import main as fit_main
from world_model.interface import LapConditions
from world_model.parametric import ParametricLapParams
from world_model.targets import LAP

HELD_OUT = "syn_d"
VAL = "syn_c"


@pytest.fixture(scope="module")
def trained(synthetic_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("fit")
    ckpt, logdir = out / "mlp.pt", out / "tb"
    args = ["--db", str(synthetic_db), "--out", str(ckpt), "--holdout", HELD_OUT, "--val", VAL]
    args += [
        "--members",
        "3",
        "--hidden",
        "32",
        "--epochs",
        "60",
        "--patience",
        "15",
        "--lr",
        "6e-3",
    ]
    args += ["--logdir", str(logdir), "--no-progress", "--seed", "1"]
    assert fit_main(args) == 0
    return {"ckpt": ckpt, "logdir": logdir, "model": load_checkpoint(ckpt)}


def test_fit_splits_by_race_and_logs_to_tensorboard(trained):
    info = trained["model"].info
    assert info["holdout_races"] == [HELD_OUT] and info["val_races"] == [VAL]
    assert set(info["train_races"]) == {"syn_a", "syn_b"}
    assert list(trained["logdir"].glob("events.out.tfevents.*"))
    assert info["history"] and "val_loss" in info["history"][0]


def test_scalers_are_fitted_on_training_rows_only(synthetic_table: LapTable):
    train = synthetic_table.select(np.isin(synthetic_table.race, ["syn_a", "syn_b"]))
    val = synthetic_table.select(synthetic_table.race == VAL)
    cfg = FitConfig(members=2, hidden=8, epochs=1)
    model, _ = fit_model(train, val, cfg, seed=0)
    x_train = build_features(train.conditions).numpy()
    x_all = build_features(synthetic_table.conditions).numpy()
    # Columns never observed (all NaN) get mean 0 in the scaler.
    count_train, count_all = (~np.isnan(x_train)).sum(0), (~np.isnan(x_all)).sum(0)
    mean_train = np.nansum(x_train, axis=0) / np.maximum(count_train, 1)
    mean_all = np.nansum(x_all, axis=0) / np.maximum(count_all, 1)
    assert np.allclose(model.features.mean.numpy(), mean_train, atol=1e-4)
    assert np.abs(mean_all - mean_train).max() > 1e-3


def _stint_conditions(tread: float, n: int = 64) -> LapConditions:
    """Mid-stint green laps of a synthetic car with the given tread left (age to match)."""
    f = lambda v: torch.full((n,), float(v))  # noqa: E731
    age = (1.0 - tread) / 0.025
    return LapConditions(
        ref_lap_time_s=f(210.0),
        ref_fuel_per_lap=f(0.07),
        ref_energy_per_lap=f(0.0),
        ref_wear_per_lap=f(0.025),
        fuel=f(0.5),
        energy=f(1.0),
        tread=torch.full((n, 4), tread),
        tyre_age_laps=f(age),
        compound=torch.ones(n, dtype=torch.long),
        tyre_temp_c=f(70.0),
        damage=f(0.0),
        stint_time_s=f(6 * 212.0),
        pace_mode=torch.ones(n, dtype=torch.long),
        class_index=torch.zeros(n, dtype=torch.long),
        driver_skill=f(0.0),
        flag=torch.zeros(n, dtype=torch.long),
        wetness=f(0.0),
        track_temp_c=f(30.0),
        night=f(0.0),
        traffic=f(0.0),
        out_lap=f(0.0),
    )


def test_learns_that_lap_time_rises_with_tyre_wear(trained):
    model = trained["model"]
    fresh = model.predictive(_stint_conditions(0.95))["lap_time_s"].mean().mean()
    worn = model.predictive(_stint_conditions(0.55))["lap_time_s"].mean().mean()
    truth = 210.0 * ParametricLapParams().wear_time * 0.40  # 3.8 s slower on 0.4 more wear
    # A small, briefly trained ensemble on ~700 laps: the sign and the size within 50 %.
    assert 0.5 * truth < float(worn - fresh) < 1.5 * truth


def test_calibrated_on_a_held_out_synthetic_race(trained, synthetic_table):
    test = synthetic_table.select(synthetic_table.race == HELD_OUT)
    pred = model_predictive(trained["model"], test)
    scores = score([pred["lap_time_s"]], [test.outcomes[:, LAP]])
    n = scores["n"]
    assert n > 250
    for level in (50, 80, 90):
        p = level / 100
        # 3 binomial standard errors, doubled for laps of one race being correlated,
        # plus 3 points of model error allowed by the brief.
        tol = 2 * 3 * math.sqrt(p * (1 - p) / n) + 0.03
        assert abs(scores[f"coverage_{level}"] - p) < tol, (level, scores)


def test_evaluate_scores_every_baseline_and_both_architectures(
    trained, synthetic_db, synthetic_table, tmp_path, capsys
):
    from world_model.checkpoint import save_checkpoint

    train = synthetic_table.select(np.isin(synthetic_table.race, ["syn_a", "syn_b"]))
    gru, _ = fit_model(train, None, FitConfig(arch="gru", members=2, hidden=16, epochs=2), 0)
    gru.info.update(trained["model"].info | {"history": []})
    gru_path = save_checkpoint(gru, tmp_path / "gru.pt")
    plot = tmp_path / "pit.png"
    args = ["--db", str(synthetic_db), "--model", str(trained["ckpt"]), "--model", str(gru_path)]
    args += ["--races", HELD_OUT, "--json", "--plot", str(plot)]
    assert evaluate_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test_races"] == [HELD_OUT]
    methods = set(out["scores"])
    assert {
        "mlp:mlp",
        "gru:gru",
        "gru:gru:summary",
        "empirical",
        "linear",
        "gbm_quantile",
    } <= methods
    for method in methods:
        for channel in ("lap_time_s", "fuel_used", "wear"):
            s = out["scores"][method][channel]
            assert s["n"] > 0 and math.isfinite(s["crps"]) and math.isfinite(s["nll"])
            assert 0.0 <= s["coverage_90"] <= 1.0
    assert set(out["beats_every_baseline_on_crps"]) == {"mlp:mlp", "gru:gru", "gru:gru:summary"}
    assert plot.stat().st_size > 1000


def test_evaluate_by_race_splits_the_pooled_scores(trained, synthetic_db, capsys):
    args = ["--db", str(synthetic_db), "--model", str(trained["ckpt"]), "--json", "--by-race"]
    args += ["--races", HELD_OUT, "--races", VAL]
    assert evaluate_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["by_race"]) == {HELD_OUT, VAL}
    for method, pooled in out["scores"].items():
        for channel, s in pooled.items():
            parts = [out["by_race"][race][method][channel] for race in (HELD_OUT, VAL)]
            parts = [p for p in parts if p.get("n")]
            assert sum(p["n"] for p in parts) == s.get("n", 0)
            for key in ("crps", "coverage_50", "coverage_80", "coverage_90"):
                if parts:  # pooled = lap-weighted mean of the races' scores
                    mean = sum(p[key] * p["n"] for p in parts) / s["n"]
                    assert mean == pytest.approx(s[key], rel=1e-4, abs=1e-6), (method, key)


def test_flag_conditioning_is_off_for_the_engine(trained):
    model = trained["model"]
    c = _stint_conditions(0.8)
    sc = dataclasses.replace(c, flag=torch.full_like(c.flag, 3))
    a = model.predictive(c)["lap_time_s"].mean()
    assert torch.equal(a, model.predictive(sc)["lap_time_s"].mean())
    flagged = model.with_flag_effects(True)
    assert flagged.inputs(sc).shape == flagged.inputs(c).shape


def test_a_channel_without_training_rows_gets_a_defined_law(synthetic_table):
    """Synthetic races carry no virtual energy: its head follows the fuel head."""
    train = synthetic_table.select(np.isin(synthetic_table.race, ["syn_a", "syn_b"]))
    assert train.outcomes[:, 2].isnan().all()
    model, _ = fit_model(train, None, FitConfig(members=2, hidden=8, epochs=2), seed=0)
    c = _stint_conditions(0.8)
    c = dataclasses.replace(c, ref_energy_per_lap=c.ref_fuel_per_lap * 0.5)
    pred = model.predictive(c)
    ratio = pred["energy_used"].mean() / pred["fuel_used"].mean()
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), rtol=1e-4)
    # ... tail included: same core / tail weights, scales in proportion to the references
    energy, fuel = pred["energy_used"], pred["fuel_used"]
    assert torch.allclose(energy.weight, fuel.weight)
    assert torch.allclose(energy.scale / fuel.scale, torch.full_like(fuel.scale, 0.5), rtol=1e-4)
    assert model.info["train_rows_per_channel"]["energy_used"] == 0


def test_evaluate_without_holdout_scores_the_validation_race(
    synthetic_db, synthetic_table, tmp_path, capsys
):
    """The README's command (no --races, a model fitted without --holdout) works."""
    from world_model.checkpoint import save_checkpoint

    train = synthetic_table.select(np.isin(synthetic_table.race, ["syn_a", "syn_b"]))
    model, _ = fit_model(train, None, FitConfig(members=2, hidden=8, epochs=1), 0)
    model.info.update({"train_races": ["syn_a", "syn_b"], "val_races": [VAL]})
    path = save_checkpoint(model, tmp_path / "noholdout.pt")
    assert evaluate_main(["--db", str(synthetic_db), "--model", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["test_races"] == [VAL] and "validation races" in captured.err
    assert out["scores"]["mlp:noholdout"]["lap_time_s"]["n"] > 250


def test_leave_one_out_scores_every_race_with_models_that_never_saw_it(synthetic_db, capsys):
    args = ["--db", str(synthetic_db), "--leave-one-out", "--json", "--no-progress"]
    args += ["--epochs", "1", "--members", "2", "--races", "syn_a", "--races", HELD_OUT]
    assert evaluate_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["races"] == ["syn_a", HELD_OUT]
    per_race, pooled = out["per_race"], out["pooled"]
    for method in ("model", "empirical", "linear", "gbm_quantile"):
        for channel in ("lap_time_s", "fuel_used", "wear"):
            parts = [per_race[r][method][channel] for r in out["races"]]
            assert all(p["n"] > 0 for p in parts)
            assert pooled[method][channel]["n"] == sum(p["n"] for p in parts)
            mean = sum(p["crps"] * p["n"] for p in parts) / pooled[method][channel]["n"]
            assert mean == pytest.approx(pooled[method][channel]["crps"], rel=1e-6)
    # Synthetic races carry no energy: no race is scored on it, and nothing claims a win.
    assert out["races_per_channel"]["energy_used"] == []
    lap = out["verdict"]["lap_time_s"]
    assert lap["races_scored"] == 2 and 0 <= lap["races_won"] <= 2
    assert set(out["fits"]) == {"syn_a", HELD_OUT} and out["seconds"] > 0
    # Conformal coverage of each race from the other race's PIT values, and shipped bounds.
    calibrated = per_race[HELD_OUT]["model:calibrated"]["lap_time_s"]
    assert calibrated["n"] == per_race[HELD_OUT]["model"]["lap_time_s"]["n"]
    lo, hi = out["calibration"]["lap_time_s"]["80"]
    assert 0.0 <= lo < hi <= 1.0


def test_inputs_no_training_row_has_standardise_to_zero_whatever_they_hold() -> None:
    """Input columns observed in fewer than ``mute_below`` rows (virtual energy with the one
    LMU race left out: none) map to 0 for any later value (no barely-trained weight reads
    them); without it (targets) a never-observed column keeps scale 1."""
    from world_model.scaling import Standardiser

    rows = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, np.nan], [2.0, np.nan, np.nan]])
    muted, _ = Standardiser.fit(rows, mute_below=2)
    x = muted.transform(torch.tensor([[2.0, 0.7, 9.0], [4.0, float("nan"), 1.0]]))
    assert torch.equal(x[:, 1:], torch.zeros(2, 2))
    assert torch.allclose(x[:, 0], torch.tensor([0.0, 2.0 / (2.0 / 3.0) ** 0.5]))
    plain, _ = Standardiser.fit(rows)
    assert float(plain.scale[1]) == 1.0 and np.isfinite(float(plain.scale[2]))

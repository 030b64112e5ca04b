from __future__ import annotations

import dataclasses

import torch

from world_model.features import FEATURE_NAMES, N_FEATURES, build_features


def test_engine_conditions_give_finite_features_of_the_declared_width(conditions):
    x = build_features(conditions)
    assert x.shape == (conditions.batch_size, N_FEATURES) == (257, len(FEATURE_NAMES))
    assert torch.isfinite(x).all()
    missing = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES if n.endswith("_missing")]
    assert (x[:, missing] == 0).all()


def test_unknown_inputs_stay_nan_and_raise_their_indicator(conditions):
    c = dataclasses.replace(
        conditions,
        fuel=torch.full_like(conditions.fuel, float("nan")),
        compound=torch.full_like(conditions.compound, -1),
    )
    x = build_features(c)
    col = FEATURE_NAMES.index
    assert x[:, col("fuel")].isnan().all()
    assert (x[:, col("fuel_missing")] == 1).all()
    assert x[:, col("compound_soft")].isnan().all()
    assert (x[:, col("compound_missing")] == 1).all()
    assert (x[:, col("tread_missing")] == 0).all()


def test_one_hot_codes_match_the_enums(conditions):
    x = build_features(conditions)
    soft = FEATURE_NAMES.index("compound_soft")
    assert torch.equal(x[:, soft : soft + 4].argmax(dim=1), conditions.compound)


def test_previous_lap_inputs_are_departures_from_the_references(conditions):
    """``last_lap_pct`` = 100 (last / ref - 1), fuel and wear ``last / ref - 1``, clipped;
    ``None`` (a caller that does not track them) is unknown with its indicator raised."""
    c = dataclasses.replace(
        conditions,
        last_lap_time_s=conditions.ref_lap_time_s * 1.02,
        last_fuel_used=conditions.ref_fuel_per_lap * 0.9,
        last_wear=conditions.ref_wear_per_lap * 10.0,
    )
    x = build_features(c)
    col = FEATURE_NAMES.index
    assert torch.allclose(x[:, col("last_lap_pct")], torch.full((c.batch_size,), 2.0), atol=1e-3)
    assert torch.allclose(x[:, col("last_fuel_rel")], torch.full((c.batch_size,), -0.1), atol=1e-5)
    assert (x[:, col("last_wear_rel")] == 3.0).all()  # clipped
    none = build_features(
        dataclasses.replace(conditions, last_lap_time_s=None, last_fuel_used=None, last_wear=None)
    )
    for name in ("lap", "fuel", "wear"):
        assert (none[:, col(f"last_{name}_missing")] == 1).all()
    assert none[:, col("last_lap_pct")].isnan().all()

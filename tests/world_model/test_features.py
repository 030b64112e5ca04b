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

"""Conformal interval calibration on the PIT scale."""

from __future__ import annotations

import numpy as np
import pytest

from world_model.calibration import coverage, leave_one_race_out_coverage, pit_levels


def test_pit_levels_of_uniform_pits_are_nominal():
    pit = np.random.default_rng(0).uniform(size=20_000)
    bounds = pit_levels(pit)
    # 20,000 uniforms: a quantile's standard error is below 0.004
    assert bounds["80"] == pytest.approx([0.1, 0.9], abs=0.012)
    assert coverage(pit, bounds)["coverage_80"] == pytest.approx(0.8, abs=1e-3)


def test_a_too_narrow_model_gets_wider_bounds_that_cover_a_new_race():
    rng = np.random.default_rng(1)
    # PIT of a predictive half as wide as the truth: Phi(2 z) for standard normal z
    from scipy.stats import norm

    races = {f"r{i}": norm.cdf(2.0 * rng.standard_normal(3000)) for i in range(4)}
    nominal = np.mean([(p >= 0.1) & (p <= 0.9) for p in races.values()])
    assert nominal < 0.6  # the uncalibrated 80 % interval covers ~47 %
    per_race = leave_one_race_out_coverage(races)
    for race, cov in per_race.items():
        assert cov["n"] == 3000
        assert abs(cov["coverage_80"] - 0.8) < 0.03, race  # 3 binomial s.e. plus bound error

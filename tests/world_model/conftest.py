"""Fixtures of the world-model tests: engine-like conditions and a synthetic lap store whose
laps come from the parametric model (known truth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from world_model.dataset import LapTable, load_table
from world_model.generate import main as generate_main
from world_model.interface import LapConditions

SYNTHETIC_RACES = ("syn_a", "syn_b", "syn_c", "syn_d")


def make_conditions(n: int, seed: int = 0) -> LapConditions:
    """Plausible engine conditions for ``n`` car-laps, no missing values."""
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    i = lambda hi: torch.randint(hi, (n,), generator=g)  # noqa: E731
    return LapConditions(
        ref_lap_time_s=u(200.0, 240.0),
        ref_fuel_per_lap=u(0.06, 0.09),
        ref_energy_per_lap=u(0.06, 0.09),
        ref_wear_per_lap=u(0.01, 0.03),
        fuel=u(0.05, 1.0),
        energy=u(0.05, 1.0),
        tread=u(0.3, 1.0).unsqueeze(1).expand(-1, 4).contiguous(),
        tyre_age_laps=u(0.0, 40.0),
        compound=i(3),
        tyre_temp_c=u(60.0, 100.0),
        damage=torch.zeros(n),
        stint_time_s=u(0.0, 3000.0),
        pace_mode=i(3),
        class_index=i(3),
        driver_skill=u(-1.0, 1.0),
        flag=torch.zeros(n, dtype=torch.int64),
        wetness=torch.zeros(n),
        track_temp_c=u(20.0, 40.0),
        night=u(0.0, 1.0).round(),
        traffic=i(4).float(),
        out_lap=torch.zeros(n),
    )


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """One intra-op thread: small tensors gain nothing from two, and on a shared 2-core
    machine two threads spin-wait on each other. Restored after this package's tests (the
    fit and evaluate entry points called in-process set the thread count too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def conditions() -> LapConditions:
    return make_conditions(257)


@pytest.fixture(scope="session")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic races of 8 cars x 45 laps from the parametric model."""
    db = tmp_path_factory.mktemp("lapstore") / "synthetic.sqlite"
    for seed, name in enumerate(SYNTHETIC_RACES):
        args = ["--model", "parametric", "--out", str(db), "--name", name, "--cars", "8"]
        args += ["--laps", "45", "--seed", str(seed), "--ref-wear-per-lap", "0.025"]
        assert generate_main(args) == 0
    return db


@pytest.fixture(scope="session")
def synthetic_table(synthetic_db: Path) -> LapTable:
    return load_table(synthetic_db)

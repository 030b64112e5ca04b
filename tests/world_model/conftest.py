"""Fixtures of the world-model tests: engine-like conditions and a synthetic lap store whose
laps come from the parametric model (known truth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from world_model.dataset import LapTable, load_table
from world_model.generate import main as generate_main
from world_model.interface import LapConditions
from world_model.samples import random_conditions

SYNTHETIC_RACES = ("syn_a", "syn_b", "syn_c", "syn_d")


def make_conditions(n: int, seed: int = 0) -> LapConditions:
    """Plausible engine conditions for ``n`` car-laps, no missing values."""
    return random_conditions(n, torch.Generator().manual_seed(seed))


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

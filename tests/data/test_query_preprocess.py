"""Query layer and preprocessing on a small store built from synthetic files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from data import ingest
from data.preprocess import LapPreprocessor
from data.query import load_laps, split_by_session
from data.readers import alkamel
from tests.data.helpers import small_race


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("q")
    small_race(folder / "wec_2030_spa_1h_race_analysis.csv")
    small_race(folder / "imsa_2030_spa_1h_race_laps.csv")
    db = folder / "store.sqlite"
    assert ingest.main([str(folder), "--db", str(db), "--json"]) == 0
    return db


def test_columns_by_name_nulls_as_nan_with_mask(store: Path) -> None:
    a = load_laps(store, ["lap_time_s", "fuel_end", "pit_time_s"], categorical=["series", "class"])
    conn = sqlite3.connect(store)
    n = conn.execute("SELECT count(*) FROM laps").fetchone()[0]
    n_pit = conn.execute("SELECT count(*) FROM laps WHERE pit_time_s IS NOT NULL").fetchone()[0]
    conn.close()
    assert a.values.shape == (n, 3) and a.mask.shape == (n, 3)
    assert np.isnan(a.column("fuel_end")).all() and not a.mask[:, 1].any()  # timing has no fuel
    assert a.mask[:, 2].sum() == n_pit and np.isfinite(a.column("pit_time_s")[a.mask[:, 2]]).all()
    assert set(a.categorical["series"]) == {"WEC", "IMSA"}
    x, m = a.to_torch()
    assert tuple(x.shape) == (n, 3) and bool((x[~m] == 0).all())


def test_filters_and_unknown_columns(store: Path) -> None:
    wec = load_laps(store, ["lap"], series=["WEC"], categorical=["series"])
    assert len(wec) > 0 and set(wec.categorical["series"]) == {"WEC"}
    gt3 = load_laps(store, ["lap"], classes=["LMGT3"], categorical=["class"])
    assert set(gt3.categorical["class"]) == {"LMGT3"}
    assert len(load_laps(store, ["lap"], session_ids=[])) == 0
    timed = load_laps(store, ["timed"], timed_only=True)
    assert (timed.column("timed") == 1).all()
    with pytest.raises(ValueError, match="unknown lap columns"):
        load_laps(store, ["lap_time"])


def test_rows_ordered_by_session_car_lap(store: Path) -> None:
    a = load_laps(store, ["lap"])
    keys = list(zip(a.session_id, a.car_id, a.column("lap"), strict=True))
    assert keys == sorted(keys)


def test_preprocessor_fits_on_training_rows_only_and_round_trips(
    store: Path, tmp_path: Path
) -> None:
    a = load_laps(store, ["lap_time_s", "position", "fuel_end"], categorical=["class"])
    train, test = split_by_session(a, 0.5, np.random.default_rng(1))
    assert len(set(a.session_id[train]) & set(a.session_id[test])) == 0 and len(test) > 0
    p = LapPreprocessor(["lap_time_s", "position", "fuel_end"], ["class"]).fit(a, train)
    lap_times = a.column("lap_time_s")[train]
    assert p.scaler is not None and p.scaler.mean_[0] == pytest.approx(np.nanmean(lap_times))
    x, mask = p.transform(a)
    assert x.dtype == np.float32 and x.shape[1] == len(p.feature_names)
    assert not mask[:, 2].any() and (x[:, 2] == 0).all()  # fuel missing: masked
    assert np.nanmean(x[train, 0]) == pytest.approx(0.0, abs=1e-5)
    path = tmp_path / "pre.joblib"
    p.save(path)
    q = LapPreprocessor.load(path)
    np.testing.assert_array_equal(q.transform(a)[0], x)
    assert LapPreprocessor.from_bytes(p.to_bytes()).feature_names == p.feature_names
    with pytest.raises(ValueError, match="LapPreprocessor"):
        LapPreprocessor.from_bytes(b"not joblib")


def test_unfitted_or_empty_training_set_is_an_error(store: Path) -> None:
    a = load_laps(store, ["lap_time_s"])
    with pytest.raises(RuntimeError):
        LapPreprocessor(["lap_time_s"]).transform(a)
    with pytest.raises(ValueError):
        LapPreprocessor(["lap_time_s"]).fit(a, np.array([], dtype=int))


def test_small_race_positions_are_consistent(tmp_path: Path) -> None:
    (s,) = alkamel.read_laps(small_race(tmp_path / "wec_2030_spa_1h_race_analysis.csv")).sessions
    for lap in {r["lap"] for r in s.laps}:
        positions = sorted(r["position"] for r in s.laps if r["lap"] == lap)
        assert positions == list(range(1, len(positions) + 1))

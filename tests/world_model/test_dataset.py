from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import torch

from world_model.dataset import stint_windows
from world_model.targets import FUEL, LAP, WEAR0


def test_reference_lap_is_the_10th_percentile_of_green_laps_away_from_the_pits(
    synthetic_db, synthetic_table
):
    with sqlite3.connect(synthetic_db) as conn:
        laps = pd.read_sql_query(
            "SELECT s.name, c.number, l.lap_time_s, l.pit_in, l.pit_out, l.flag FROM laps l "
            "JOIN sessions s USING (session_id) JOIN cars c USING (car_id)",
            conn,
        )
    sel = laps[(laps.name == "syn_b") & (laps.number == "3")]
    green = sel[(sel.pit_in == 0) & (sel.pit_out == 0) & (sel.flag == 0)]
    want = np.quantile(green.lap_time_s, 0.1)
    rows = synthetic_table.race == "syn_b"
    car_keys = sorted(set(synthetic_table.car_key[rows]), key=lambda k: int(k.split(":")[1]))
    row = np.flatnonzero(rows & (synthetic_table.car_key == car_keys[2]))[0]
    assert abs(float(synthetic_table.conditions.ref_lap_time_s[row]) - want) < 1e-3


def test_pit_laps_mask_lap_time_fuel_and_out_lap_wear(synthetic_table):
    c, o = synthetic_table.conditions, synthetic_table.outcomes
    out_laps = c.out_lap > 0
    assert out_laps.any()
    assert o[out_laps, LAP].isnan().all() and o[out_laps, FUEL].isnan().all()
    assert o[out_laps, WEAR0].isnan().all()
    racing = ~out_laps & ~o[:, LAP].isnan()
    assert racing.sum() > 0.8 * len(synthetic_table) - 8 * 4 * 8
    fuel = ~o[:, FUEL].isnan()
    assert torch.allclose(o[fuel, FUEL], c.ref_fuel_per_lap[fuel], rtol=0.2)


def test_stint_windows_cover_every_row_once_in_lap_order(synthetic_table):
    w = stint_windows(synthetic_table, 7)
    idx = w[w >= 0]
    assert sorted(idx.tolist()) == list(range(len(synthetic_table)))
    for row in w[:50]:
        r = row[row >= 0]
        assert (np.diff(synthetic_table.lap[r]) == 1).all()
        assert len(set(synthetic_table.car_key[r])) == 1

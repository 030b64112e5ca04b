from __future__ import annotations

import itertools
import sqlite3

import numpy as np
import pandas as pd
import torch

from world_model.dataset import MIN_REF_LAPS, build_table, read_laps, stint_windows
from world_model.targets import FUEL, LAP, WEAR0


def test_reference_lap_is_the_10th_percentile_of_earlier_green_laps_away_from_the_pits(
    synthetic_db, synthetic_table
):
    with sqlite3.connect(synthetic_db) as conn:
        laps = pd.read_sql_query(
            "SELECT s.name, c.number, l.lap, l.lap_time_s, l.pit_in, l.pit_out, l.flag FROM laps l "
            "JOIN sessions s USING (session_id) JOIN cars c USING (car_id) ORDER BY l.lap",
            conn,
        )
    sel = laps[(laps.name == "syn_b") & (laps.number == "3")]
    green = sel[(sel.pit_in == 0) & (sel.pit_out == 0) & (sel.flag == 0)]
    rows = synthetic_table.race == "syn_b"
    car_keys = sorted(set(synthetic_table.car_key[rows]), key=lambda k: int(k.split(":")[1]))
    car_rows = np.flatnonzero(rows & (synthetic_table.car_key == car_keys[2]))
    ref = synthetic_table.conditions.ref_lap_time_s.numpy()
    for lap in (3, 20, 45):
        # Causal: only the laps before this one count, and none before MIN_REF_LAPS of them.
        earlier = green[green.lap < lap].lap_time_s
        row = car_rows[synthetic_table.lap[car_rows] == lap][0]
        if len(earlier) < MIN_REF_LAPS:
            assert np.isnan(ref[row])
        else:
            assert abs(float(ref[row]) - np.quantile(earlier, 0.1)) < 1e-3


def test_reference_figures_never_read_later_laps(synthetic_db):
    """Changing every car's later laps leaves the reference figures of earlier laps alone."""
    df = read_laps(synthetic_db)
    before = build_table(df)
    later = df["lap"] > 20
    df.loc[later, "lap_time_s"] *= 1.5
    df.loc[later, "fuel_end"] *= 0.5
    df.loc[later, "tread_fl"] *= 0.5
    after = build_table(df)
    early = before.lap <= 20
    for name in ("ref_lap_time_s", "ref_fuel_per_lap", "ref_wear_per_lap"):
        a, b = getattr(before.conditions, name), getattr(after.conditions, name)
        assert torch.equal(a[early].nan_to_num(-1.0), b[early].nan_to_num(-1.0)), name
        assert not torch.equal(a[~early].nan_to_num(-1.0), b[~early].nan_to_num(-1.0)), name


def test_pit_laps_mask_lap_time_fuel_and_out_lap_wear(synthetic_table):
    c, o = synthetic_table.conditions, synthetic_table.outcomes
    out_laps = c.out_lap > 0
    assert out_laps.any()
    assert o[out_laps, LAP].isnan().all() and o[out_laps, FUEL].isnan().all()
    assert o[out_laps, WEAR0].isnan().all()
    racing = ~out_laps & ~o[:, LAP].isnan()
    # The first laps of each car (no causal reference before MIN_REF_LAPS green laps) are
    # no targets either.
    assert racing.sum() > 0.8 * len(synthetic_table) - 8 * 4 * (8 + MIN_REF_LAPS + 1)
    fuel = ~o[:, FUEL].isnan() & ~c.ref_fuel_per_lap.isnan()
    assert fuel.sum() > 0.7 * len(synthetic_table)
    assert torch.allclose(o[fuel, FUEL], c.ref_fuel_per_lap[fuel], rtol=0.2)


def test_stint_windows_cover_every_row_once_in_lap_order(synthetic_table):
    w = stint_windows(synthetic_table, 7)
    idx = w[w >= 0]
    assert sorted(idx.tolist()) == list(range(len(synthetic_table)))
    for row in w[:50]:
        r = row[row >= 0]
        assert (np.diff(synthetic_table.lap[r]) == 1).all()
        assert len(set(synthetic_table.car_key[r])) == 1


def test_recent_pace_folds_the_cars_earlier_green_laps(synthetic_table):
    """``recent_pace_pct`` of a row: the update recursion over the car's earlier laps that
    are green, away from the pits and have a reference (NaN before the first)."""
    from world_model.interface import update_recent_pace

    t = synthetic_table
    rows = np.flatnonzero(t.car_key == t.car_key[0])
    c = t.conditions
    recent = torch.tensor(float("nan"), dtype=torch.float64)
    for i in rows:
        got = float(c.recent_pace_pct[i])
        assert (np.isnan(got) and recent.isnan()) or abs(got - float(recent)) < 1e-4
        lap = t.outcomes[i, LAP].double()
        if not lap.isnan():  # a lap-time target: green, no stop, has a reference
            recent = update_recent_pace(recent, lap, c.ref_lap_time_s[i].double())
    assert np.isfinite(float(c.recent_pace_pct[rows[-1]]))


def test_previous_lap_is_the_cars_lap_just_before_unless_it_touched_the_pits(synthetic_table):
    """``last_*`` of a row: the car's previous lap's time, fuel used and mean wear, NaN on an
    out-lap (its previous lap ended in the pits) and on the lap after one."""
    t = synthetic_table
    c = t.conditions
    rows = np.flatnonzero(t.car_key == t.car_key[0])
    out_lap = c.out_lap.numpy() > 0
    checked = 0
    for prev, i in itertools.pairwise(rows):
        got = float(c.last_lap_time_s[i])
        if out_lap[i] or out_lap[prev] or t.lap[i] != t.lap[prev] + 1:
            assert np.isnan(got)
            continue
        # The previous lap's own conditions are its start: its end fuel is this row's start.
        used = float(c.fuel[prev] - c.fuel[i])
        assert abs(float(c.last_fuel_used[i]) - used) < 1e-5
        wear = float((c.tread[prev] - c.tread[i]).mean()) if not out_lap[prev] else np.nan
        if np.isfinite(wear):
            assert abs(float(c.last_wear[i]) - wear) < 1e-5
        assert np.isfinite(got) and got > 0
        checked += 1
    assert checked > 10
    assert np.isnan(float(c.last_lap_time_s[rows[0]]))
    assert out_lap[rows].any()  # the car stopped: the pit rule was exercised

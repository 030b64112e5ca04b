from __future__ import annotations

import sqlite3

import pandas as pd


def test_generated_races_are_consistent_lap_store_rows(synthetic_db):
    with sqlite3.connect(synthetic_db) as conn:
        laps = pd.read_sql_query(
            "SELECT s.name, c.number, l.* FROM laps l JOIN sessions s USING (session_id) "
            "JOIN cars c USING (car_id) ORDER BY s.name, c.number, l.lap",
            conn,
        )
        sources = pd.read_sql_query("SELECT reader FROM sources", conn)
    assert set(sources.reader) == {"world_model.generate"}
    assert laps.groupby(["name", "number"]).size().eq(45).all()
    for _, car in laps.groupby(["name", "number"]):
        nxt = car.iloc[1:].reset_index(drop=True)
        cur = car.iloc[:-1].reset_index(drop=True)
        no_stop = cur.pit_in == 0
        # Fuel carries over from one lap's end to the next lap's start unless the car stopped.
        assert (nxt.fuel_start[no_stop] - cur.fuel_end[no_stop]).abs().max() < 1e-6
        assert (nxt.fuel_start[~no_stop] == 1.0).all()
        assert (nxt.pit_out == cur.pit_in).all()
        assert (car.race_time_s.diff().dropna() > 0).all()
    for _, lap in laps.groupby(["name", "lap"]):
        assert sorted(lap.position) == list(range(1, len(lap) + 1))

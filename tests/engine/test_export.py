"""Simulated incidents in the lap store read as the real sources' incidents are read."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np

from engine.baselines import make_strategy
from engine.export import store_incident, write_lap_store
from engine.race import simulate
from engine.scenario import load_scenario
from events import observations


def test_exported_incidents_keep_kind_cause_other_car_and_lap(tmp_path: Path) -> None:
    scenario = load_scenario("test_race")
    result = simulate(scenario, make_strategy("double-stint"), 128, 3, record_laps=True)
    inc = result.incidents
    kinds = Counter(inc["kind"].tolist())
    assert kinds["contact"] + kinds["crash"] > 0 and kinds["failure"] > 0
    contacts = np.isin(inc["kind"], ["contact", "crash"])
    # Every contact has another car of its race; a puncture may (a contact cut the tyre);
    # failures have none.
    assert (inc["other_car"][contacts] >= 0).all()
    assert (inc["other_car"][inc["kind"] == "failure"] == -1).all()
    contacts |= inc["other_car"] >= 0
    assert contacts.sum() > np.isin(inc["kind"], ["contact", "crash"]).sum()
    assert (inc["other_car"] != inc["car"]).all()

    db = tmp_path / "sim.sqlite"
    write_lap_store(result, scenario, db, "export-test")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.name, c.number, o.number, i.kind, i.description, i.magnitude, i.lap,"
            " i.race_time_s, (SELECT MIN(l.race_time_s) FROM laps l WHERE l.car_id = i.car_id"
            " AND l.lap = i.lap), (SELECT MAX(l.race_time_s) FROM laps l WHERE l.car_id ="
            " i.car_id AND l.lap = i.lap - 1) FROM incidents i JOIN sessions s USING (session_id)"
            " JOIN cars c ON c.car_id = i.car_id LEFT JOIN cars o ON o.car_id = i.other_car_id"
            " ORDER BY s.name, i.race_time_s, c.number"
        ).fetchall()
    assert len(rows) == len(inc["kind"])
    numbers = result.car_numbers
    expected = sorted(
        (
            f"export-test/replica{int(r)}",
            numbers[int(c)],
            numbers[int(o)] if o >= 0 else None,
            *store_incident(str(k), int(o)),
            float(d),
        )
        for r, c, o, k, d in zip(
            inc["replica"], inc["car"], inc["other_car"], inc["kind"], inc["damage"], strict=True
        )
    )
    assert sorted(row[:6] for row in rows) == expected
    assert {row[3] for row in rows} <= {"contact", "retirement", "puncture", "impact"}
    for *_, lap, t, lap_end, previous_end in rows:
        # The lap recorded is the one being driven: it started before the incident and, if
        # it was completed, ended at or after it.
        assert lap >= 1 and (previous_end is None or previous_end <= t)
        assert lap_end is None or lap_end >= t

    # The events fit reads the simulated contacts and which of them ended a race.
    conn = observations.connect(db)
    try:
        data, damage = observations.contact_data(conn, observations.races(conn))
    finally:
        conn.close()
    assert int(data.counts.sum()) == int(contacts.sum())
    assert int(damage.terminal.sum()) == kinds["crash"]

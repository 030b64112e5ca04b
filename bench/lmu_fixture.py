"""Synthetic LMU telemetry sessions in the built-in DuckDB layout, for tests and benchmarks.

:func:`write_lmu_session` writes one ``.duckdb`` file exactly as ``docs/LMU_TELEMETRY.md``
section 1 describes LMU's recording: one table per channel (quoted names with spaces),
continuous channels with only ``value`` or ``value1..value4`` (FL, FR, RL, RR) in rowid order at
their real rates and units, event tables with ``ts`` [s], and ``channelsList`` / ``eventsList`` /
``metadata`` (with a ``CarSetup`` JSON). It returns the truth the file was built from, so tests
can check a reader against it. Continuous values are generated inside DuckDB from small
piecewise-linear schedules (no Python loop over samples); noise is a deterministic hash of the
sample index and the seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

TRACK_LENGTH_M = 13626.0
FUEL_CAPACITY_L = 110.0

# (table, rate [Hz], unit, per-wheel)
CHANNELS: list[tuple[str, int, str, bool]] = [
    ("GPS Time", 100, "s", False),
    ("Ground Speed", 100, "km/h", False),
    ("Lap Dist", 10, "m", False),
    ("Total Dist", 10, "m", False),
    ("Fuel Level", 20, "L", False),
    ("Virtual Energy", 20, "%", False),
    ("SoC", 20, "%", False),
    ("Tyres Wear", 10, "%", True),
    ("TyresPressure", 10, "kPa", True),
    ("TyresTempLeft", 100, "C", True),
    ("TyresTempCentre", 100, "C", True),
    ("TyresTempRight", 100, "C", True),
    ("TyresCarcassTemp", 5, "C", True),
    ("TyresRubberTemp", 10, "C", True),
    ("Brakes Temp", 50, "C", True),
    ("Ambient Temperature", 1, "C", False),
    ("Track Temperature", 1, "C", False),
    ("Wind Speed", 1, "m/s", False),
    ("Wind Heading", 1, "deg", False),
    ("Time Behind Next", 2, "s", False),
]
# (table, unit, per-wheel)
EVENTS: list[tuple[str, str, bool]] = [
    ("Lap", "", False),
    ("Lap Time", "s", False),
    ("Last Sector1", "s", False),
    ("Last Sector2", "s", False),
    ("Best LapTime", "s", False),
    ("Current Sector", "", False),
    ("In Pits", "", False),
    ("Speed Limiter", "", False),
    ("TyresCompound", "", True),
    ("FuelMixtureMap", "", False),
    ("Yellow Flag State", "", False),
    ("Sector1 Flag", "", False),
    ("Sector2 Flag", "", False),
    ("Sector3 Flag", "", False),
    ("Minimum Path Wetness", "", False),
    ("OffpathWetness", "", False),
    ("LastImpactMagnitude", "", False),
    ("WheelsDetached", "", True),
    ("Finish Status", "", False),
]


@dataclass
class FixtureLap:
    """One lap as built: times on the session clock [s], fuel [L], tread at the end [%]."""

    lap: int
    start_s: float
    end_s: float
    timed: bool
    fuel_start_l: float
    fuel_end_l: float
    wear_end_pct: tuple[float, float, float, float]

    @property
    def lap_time_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class FixtureStop:
    """A pit stop: in-lap number, pit-lane entry and exit [s], litres added, tyres changed."""

    in_lap: int
    enter_s: float
    exit_s: float
    fuel_added_l: float
    tyres_changed: int


@dataclass
class FixtureTruth:
    """What :func:`write_lmu_session` put in the file."""

    path: Path
    t0_s: float
    laps: list[FixtureLap]
    stops: list[FixtureStop]
    fcy: list[tuple[float, float]]
    impacts: list[tuple[float, float]]  # (time [s], magnitude)
    samples: int  # continuous samples written (rows x values)
    channel_rows: dict[str, int] = field(default_factory=dict)


def _car_setup() -> str:
    """A CarSetup JSON blob with entries of the form {'value', 'stringValue'}."""
    setup: dict[str, dict[str, object]] = {
        "VM_FUEL_CAPACITY": {"value": FUEL_CAPACITY_L, "stringValue": f"{FUEL_CAPACITY_L:.1f}L"},
        "VM_VIRTUAL_ENERGY": {"value": 100.0, "stringValue": "100%"},
        "VM_FRONT_TIRE_COMPOUND": {"value": 1, "stringValue": "Medium"},
        "VM_REAR_TIRE_COMPOUND": {"value": 1, "stringValue": "Medium"},
        "VM_FUEL_LEVEL": {"value": 90.0, "stringValue": "90.0L"},
    }
    for k in range(34):
        setup[f"VM_SETTING_{k:02d}"] = {"value": k, "stringValue": f"setting {k}"}
    return json.dumps(setup)


def write_lmu_session(
    path: str | Path,
    *,
    duration_s: float = 3600.0,
    seed: int = 0,
    lap_time_s: float = 210.0,
    pit_every_laps: int = 7,
    untimed_laps: tuple[int, ...] = (5,),
    fcy: tuple[tuple[float, float], ...] = ((1500.0, 1680.0),),
    impacts: tuple[tuple[float, float], ...] = ((900.0, 1800.0),),
    lap_event_offset_samples: int = -1,
    event_clock_drift_s_per_h: float = 0.0,
    version: str = "1",
    omit_channels: tuple[str, ...] = (),
    t0_s: float = 120.0,
) -> FixtureTruth:
    """Write a session of ``duration_s`` [s] to ``path`` (replaced if present); its truth.

    The car starts lap 1 from the pit lane at ``t0_s``, laps in about ``lap_time_s`` [s]
    (varied by a generator seeded with ``seed``), pits at the end of every ``pit_every_laps``-th
    lap for fuel, energy and four tyres, and has no ``Lap Time`` event for ``untimed_laps``.
    ``Lap`` events are written ``lap_event_offset_samples`` 10 Hz samples from the true line
    crossing (where ``Lap Dist`` resets); ``event_clock_drift_s_per_h`` makes every event
    clock run ahead of the continuous clock by that much per hour.
    """
    path = Path(path)
    if path.exists():
        path.unlink()
    rng = np.random.default_rng(seed)
    t_end = t0_s + duration_s
    # Flags and impacts of the schedule that fall inside the recording.
    fcy = tuple((a, min(b, t_end)) for a, b in fcy if a < t_end)
    impacts = tuple((t, m) for t, m in impacts if t < t_end)

    # Lap schedule: crossings, pit windows, fuel / energy / wear as piecewise-linear pieces.
    laps: list[FixtureLap] = []
    stops: list[FixtureStop] = []
    pieces: dict[str, list[tuple[float, float, float]]] = {"fuel": [], "energy": [], "dist": []}
    wear_pieces: list[tuple[float, tuple[float, ...], tuple[float, ...]]] = []
    fuel, energy = 90.0, 100.0
    wear = [100.0, 100.0, 100.0, 100.0]
    wear_rate = np.array([0.0040, 0.0038, 0.0030, 0.0029]) * (1 + 0.05 * rng.standard_normal(4))
    fuel_rate, energy_rate = 0.030, 0.033  # [L/s], [%/s] at speed
    start, lap = t0_s, 1
    pit_windows: list[tuple[float, float]] = [(t0_s, t0_s + 20.0)]  # lap 1 leaves the pits
    stationary: tuple[float, float] | None = None
    while True:
        lt = lap_time_s * (1 + 0.004 * rng.standard_normal()) + (25.0 if lap == 1 else 0.0)
        is_in_lap = lap % pit_every_laps == 0
        is_out_lap = lap > 1 and (lap - 1) % pit_every_laps == 0
        if is_out_lap:
            lt += 45.0  # stationary time of the stop plus the pit-lane exit
        end = start + lt
        if end > t_end:
            break
        fuel_start = fuel
        pieces["dist"].append((start, 0.0, TRACK_LENGTH_M / lt))
        if is_out_lap and stationary is not None:
            s0, s1 = stationary
            pieces["fuel"].append((start, fuel, -fuel_rate))
            fuel -= fuel_rate * (s0 - start)
            pieces["fuel"].append((s0, fuel, 0.0))
            refuel_s = 20.0
            added = FUEL_CAPACITY_L * 0.95 - fuel
            pieces["fuel"].append((s0 + 5.0, fuel, added / refuel_s))
            fuel += added
            pieces["fuel"].append((s0 + 5.0 + refuel_s, fuel, 0.0))
            pieces["fuel"].append((s1, fuel, -fuel_rate))
            fuel -= fuel_rate * (end - s1)
            pieces["energy"].append((start, energy, -energy_rate))
            energy -= energy_rate * (s0 - start)
            pieces["energy"].append((s0, energy, 0.0))
            pieces["energy"].append((s0 + 5.0, 100.0, 0.0))
            pieces["energy"].append((s1, 100.0, -energy_rate))
            energy = 100.0 - energy_rate * (end - s1)
            wear_pieces.append((start, tuple(wear), tuple(-wear_rate)))
            wear = [w - r * (s0 - start) for w, r in zip(wear, wear_rate, strict=True)]
            wear_pieces.append((s0, tuple(wear), (0.0,) * 4))
            stops[-1].fuel_added_l = added
            stops[-1].exit_s = s1 + 12.0
            pit_windows[-1] = (pit_windows[-1][0], s1 + 12.0)
            wear = [100.0] * 4
            wear_pieces.append((s0 + 10.0, tuple(wear), (0.0,) * 4))
            wear_pieces.append((s1, tuple(wear), tuple(-wear_rate)))
            wear = [w - r * (end - s1) for w, r in zip(wear, wear_rate, strict=True)]
        else:
            pieces["fuel"].append((start, fuel, -fuel_rate))
            pieces["energy"].append((start, energy, -energy_rate))
            wear_pieces.append((start, tuple(wear), tuple(-wear_rate)))
            fuel -= fuel_rate * lt
            energy -= energy_rate * lt
            wear = [w - r * lt for w, r in zip(wear, wear_rate, strict=True)]
        laps.append(
            FixtureLap(
                lap=lap,
                start_s=start,
                end_s=end,
                timed=lap not in untimed_laps,
                fuel_start_l=fuel_start,
                fuel_end_l=fuel,
                wear_end_pct=tuple(float(w) for w in wear),  # type: ignore[arg-type]
            )
        )
        if is_in_lap:
            # Pit-lane entry 12 s before the line; the car stops 8 s after it.
            stationary = (end + 8.0, end + 8.0 + 30.0)
            pit_windows.append((end - 12.0, math.inf))
            stops.append(FixtureStop(lap, end - 12.0, math.inf, 0.0, 4))
        start, lap = end, lap + 1
    # The lap under way when the recording stops.
    pieces["dist"].append((start, 0.0, TRACK_LENGTH_M / lap_time_s))
    pieces["fuel"].append((start, fuel, -fuel_rate))
    pieces["energy"].append((start, energy, -energy_rate))
    wear_pieces.append((start, tuple(wear), tuple(-wear_rate)))
    if stops and math.isinf(stops[-1].exit_s):
        stops.pop()
        pit_windows.pop()

    con = duckdb.connect(str(path))
    try:
        _write_descriptions(con, version, t0_s, duration_s, omit_channels)
        rows = _write_channels(
            con, rng, seed, t0_s, duration_s, pieces, wear_pieces, pit_windows, omit_channels
        )
        _write_events(
            con, laps, pit_windows, fcy, impacts, t0_s, t_end, lap_event_offset_samples,
            event_clock_drift_s_per_h,
        )  # fmt: skip
    finally:
        con.close()
    samples = sum(
        n * (4 if wheel else 1) for (name, _, _, wheel) in CHANNELS if (n := rows.get(name))
    )
    return FixtureTruth(path, t0_s, laps, stops, list(fcy), list(impacts), samples, rows)


def _write_descriptions(
    con: duckdb.DuckDBPyConnection,
    version: str,
    t0_s: float,
    duration_s: float,
    omit: tuple[str, ...],
) -> None:
    con.execute("CREATE TABLE metadata (key VARCHAR, value VARCHAR)")
    meta = {
        "Version": version,
        "DriverName": "Test Driver",
        "SteamID": "76561190000000000",
        "RecordingTime": "2025-06-14T14:00:00Z",
        "SessionTime": f"{duration_s:.0f}",
        "SessionType": "Race",
        "TrackName": "Circuit de la Sarthe",
        "TrackLayout": "24h",
        "CarName": "Fixture Racing 2025 #50:LM",
        "CarClass": "Hyper",
        "WeatherConditions": "Light Clouds",
        "CarSetup": _car_setup(),
    }
    con.executemany("INSERT INTO metadata VALUES (?, ?)", list(meta.items()))
    con.execute(
        'CREATE TABLE "channelsList" ("channelName" VARCHAR, frequency INTEGER, unit VARCHAR)'
    )
    con.executemany(
        'INSERT INTO "channelsList" VALUES (?, ?, ?)',
        [(n, f, u) for n, f, u, _ in CHANNELS if n not in omit],
    )
    con.execute('CREATE TABLE "eventsList" ("eventName" VARCHAR, unit VARCHAR)')
    con.executemany(
        'INSERT INTO "eventsList" VALUES (?, ?)', [(n, u) for n, u, _ in EVENTS if n not in omit]
    )


def _pieces_table(
    con: duckdb.DuckDBPyConnection, name: str, pieces: list[tuple[float, float, float]]
) -> None:
    con.execute(f"CREATE TEMP TABLE {name} (t DOUBLE, v DOUBLE, slope DOUBLE)")
    con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", pieces)


def _write_channels(
    con: duckdb.DuckDBPyConnection,
    rng: np.random.Generator,
    seed: int,
    t0: float,
    duration_s: float,
    pieces: dict[str, list[tuple[float, float, float]]],
    wear_pieces: list[tuple[float, tuple[float, ...], tuple[float, ...]]],
    pit_windows: list[tuple[float, float]],
    omit: tuple[str, ...],
) -> dict[str, int]:
    for key, rows in pieces.items():
        _pieces_table(con, f"p_{key}", rows)
    con.execute("ALTER TABLE p_dist ADD COLUMN k INTEGER")
    con.execute("UPDATE p_dist SET k = (SELECT count(*) FROM p_dist q WHERE q.t < p_dist.t)")
    con.execute("CREATE TEMP TABLE p_wear (t DOUBLE, v1 DOUBLE, v2 DOUBLE, v3 DOUBLE, v4 DOUBLE,"
                " s1 DOUBLE, s2 DOUBLE, s3 DOUBLE, s4 DOUBLE)")  # fmt: skip
    con.executemany(
        "INSERT INTO p_wear VALUES (?,?,?,?,?,?,?,?,?)", [(t, *v, *s) for t, v, s in wear_pieces]
    )
    con.execute("CREATE TEMP TABLE pits (t_in DOUBLE, t_out DOUBLE)")
    con.executemany("INSERT INTO pits VALUES (?, ?)", [(a, min(b, 1e12)) for a, b in pit_windows])
    lengths: dict[str, int] = {}

    def noise(k: int) -> str:
        # Deterministic noise in [-1, 1) from the sample index, the seed and a channel salt.
        return f"((hash(i * 7919 + {seed * 1000 + k}) % 2000000) / 1e6 - 1.0)"

    for k, (name, rate, _, wheel) in enumerate(CHANNELS):
        if name in omit:
            continue
        # Channels of different rates end at slightly different times.
        n = int(duration_s * rate) + int(rng.integers(0, 3))
        lengths[name] = n
        time = f"({t0!r} + i / {rate}.0)"
        base = f"SELECT range AS i, {time} AS t FROM range({n})"
        if name in ("Fuel Level", "Virtual Energy", "SoC", "Lap Dist"):
            src = {
                "Fuel Level": "p_fuel",
                "Virtual Energy": "p_energy",
                "SoC": "p_energy",
                "Lap Dist": "p_dist",
            }[name]
            scale = "* 0.6" if name == "SoC" else ""
            sql = (f"SELECT (p.v + p.slope * (s.t - p.t)){scale} AS value FROM ({base}) s "
                   f"ASOF JOIN {src} p ON s.t >= p.t ORDER BY s.i")  # fmt: skip
        elif name == "Total Dist":
            sql = (f"SELECT p.k * {TRACK_LENGTH_M!r} + p.v + p.slope * (s.t - p.t) AS value "
                   f"FROM ({base}) s "
                   "ASOF JOIN p_dist p ON s.t >= p.t ORDER BY s.i")  # fmt: skip
        elif name == "Tyres Wear":
            cols = ", ".join(f"p.v{w} + p.s{w} * (s.t - p.t) AS value{w}" for w in range(1, 5))
            sql = f"SELECT {cols} FROM ({base}) s ASOF JOIN p_wear p ON s.t >= p.t ORDER BY s.i"
        elif name == "GPS Time":
            sql = f"SELECT t AS value FROM ({base}) ORDER BY i"
        elif name == "Ground Speed":
            in_pit = "EXISTS (SELECT 1 FROM pits WHERE s.t >= pits.t_in AND s.t < pits.t_out)"
            speed = f"3.6 * p.slope * (1 + 0.35 * sin(s.t / 7.0)) + 2 * {noise(k)}"
            sql = (f"SELECT CASE WHEN {in_pit} THEN 60.0 ELSE {speed} END AS value "
                   f"FROM ({base}) s ASOF JOIN p_dist p ON s.t >= p.t ORDER BY s.i")  # fmt: skip
        else:
            level = {
                "TyresPressure": 165.0, "TyresTempLeft": 82.0, "TyresTempCentre": 86.0,
                "TyresTempRight": 84.0, "TyresCarcassTemp": 78.0, "TyresRubberTemp": 88.0,
                "Brakes Temp": 420.0, "Ambient Temperature": 21.0, "Track Temperature": 32.0,
                "Wind Speed": 3.0, "Wind Heading": 180.0, "Time Behind Next": 2.5,
            }[name]  # fmt: skip
            drift = f" - 4.0 * (t - {t0!r}) / 3600.0" if "Temperature" in name else ""
            if wheel:
                cols = ", ".join(
                    f"{level + w} + 1.5 * {noise(k * 10 + w)}{drift} AS value{w}"
                    for w in range(1, 5)
                )
            else:
                cols = f"{level} + 0.3 * {noise(k)}{drift} AS value"
            sql = f"SELECT {cols} FROM ({base}) ORDER BY i"
        con.execute(f'CREATE TABLE "{name}" AS {sql}')
    return lengths


def _write_events(
    con: duckdb.DuckDBPyConnection,
    laps: list[FixtureLap],
    pit_windows: list[tuple[float, float]],
    fcy: tuple[tuple[float, float], ...],
    impacts: tuple[tuple[float, float], ...],
    t0: float,
    t_end: float,
    lap_offset_samples: int,
    drift_s_per_h: float,
) -> None:
    def at(t: float) -> float:
        return t + drift_s_per_h * (t - t0) / 3600.0

    events: dict[str, list[tuple]] = {name: [] for name, _, _ in EVENTS}
    best = math.inf
    for lap in laps:
        events["Lap"].append(
            (at(lap.start_s + (lap_offset_samples * 0.1 if lap.lap > 1 else 0.0)), float(lap.lap))
        )
        events["Current Sector"].append((at(lap.start_s), 0.0))
        if lap.timed:
            t = at(lap.end_s + 0.02)  # written at the start of the next lap
            s1, s2 = 0.3 * lap.lap_time_s, 0.4 * lap.lap_time_s
            events["Lap Time"].append((t, lap.lap_time_s))
            events["Last Sector1"].append((t, s1))
            events["Last Sector2"].append((t, s1 + s2))
            if lap.lap_time_s < best:
                best = lap.lap_time_s
                events["Best LapTime"].append((t, best))
    for a, b in pit_windows:
        events["In Pits"].append((at(a), 1.0))
        events["Speed Limiter"].append((at(a), 1.0))
        if b < t_end:
            events["In Pits"].append((at(b), 0.0))
            events["Speed Limiter"].append((at(b), 0.0))
    for a, b in fcy:
        events["Yellow Flag State"].extend([(at(a), 1.0), (at(a + 10.0), 4.0), (at(b), 0.0)])
    for t, mag in impacts:
        events["LastImpactMagnitude"].append((at(t), mag))
    events["TyresCompound"].append((at(t0), 1.0, 1.0, 1.0, 1.0))
    events["WheelsDetached"].append((at(t0), 0.0, 0.0, 0.0, 0.0))
    events["FuelMixtureMap"].append((at(t0), 1.0))
    events["Minimum Path Wetness"].extend([(at(t0), 0.0), (at(t0 + 0.6 * (t_end - t0)), 0.2)])
    events["OffpathWetness"].append((at(t0), 0.0))
    events["Sector1 Flag"].append((at(t0), 0.0))
    events["Sector2 Flag"].extend([(at(t0), 0.0), (at(t0 + 700.0), 1.0), (at(t0 + 760.0), 0.0)])
    events["Sector3 Flag"].append((at(t0), 0.0))
    events["Finish Status"].append((at(t0), 0.0))
    for name, _, wheel in EVENTS:
        cols = (
            "ts DOUBLE, value1 DOUBLE, value2 DOUBLE, value3 DOUBLE, value4 DOUBLE"
            if wheel
            else "ts DOUBLE, value DOUBLE"
        )
        con.execute(f'CREATE TABLE "{name}" ({cols})')
        if events[name]:
            marks = ", ".join("?" * (5 if wheel else 2))
            con.executemany(f'INSERT INTO "{name}" VALUES ({marks})', sorted(events[name]))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.lmu_fixture OUT.duckdb``: write a synthetic LMU session (a sample)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m bench.lmu_fixture",
        description="Write a synthetic Le Mans Ultimate telemetry session in LMU's DuckDB layout"
        " (a sample to try the ingest command on; no real recording is public).",
    )
    parser.add_argument("out", type=Path, help="the .duckdb file to write (replaced if present)")
    parser.add_argument("--hours", type=float, default=1.0, help="session length [h] (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lap-time variation")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    truth = write_lmu_session(args.out, duration_s=3600.0 * args.hours, seed=args.seed)
    facts = {
        "path": str(truth.path),
        "laps": len(truth.laps),
        "pit_stops": len(truth.stops),
        "samples": truth.samples,
    }
    if args.json:
        print(json.dumps(facts))
    else:
        print(
            f"wrote {truth.path}: {facts['laps']} laps, {facts['pit_stops']} pit stops,"
            f" {truth.samples:,} samples",
            file=sys.stdout,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Le Mans Ultimate's built-in telemetry recording: one DuckDB file per session.

Layout (``docs/LMU_TELEMETRY.md`` section 1): one table per channel; continuous channels have
``value`` or ``value1..value4`` (FL, FR, RL, RR) and no timestamp (sample i of a channel at
f Hz is at ``t0 + i / f``, t0 the first ``GPS Time``); event tables have ``ts`` [s] and a value.
Laps are cut where ``Lap Dist`` resets to zero (the ground truth: an index computed from the
``Lap`` event's ``ts`` can be one sample off). Aggregation to laps runs in DuckDB: every
continuous sample is given its lap by an ASOF join on integer sample keys, then grouped.
Events (one row per change, a few hundred rows) are mapped to laps with numpy.

Not confirmed on a real file, so checked and reported rather than trusted: ``Lap Time``,
``Last Sector1`` and ``Last Sector2`` are taken as written at the start of the next lap with
the previous lap's values, sector 2 cumulative as in rFactor 2 (s2 = Last Sector2 - Last
Sector1, s3 = Lap Time - Last Sector2); a lap time that disagrees with the ``Lap Dist`` reset
interval by more than 1 s is reported. ``TyresCompound`` codes 0-2 are taken as soft, medium,
hard; ``Finish Status`` as rFactor 2's mFinishStatus (1 finished, 2 DNF, 3 DQ).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from data.errors import IngestError
from data.records import ReadResult, Row, SessionRecord

KNOWN_VERSIONS = {"1"}
SESSION_TYPES = {"practice": "practice", "qualify": "qualifying", "race": "race"}
FINISH_STATUS = {1: "finished", 2: "retired", 3: "dq"}  # rF2 mFinishStatus codes
REFUEL_STEP_L = 0.02  # a rise of Fuel Level between samples above this is refuelling [L]
ENERGY_STEP_PCT = 0.05  # a rise of Virtual Energy above this is a recharge at a stop [%]
WEAR_STEP_PCT = 1.0  # a rise of tread above this is a new tyre [%]
STOP_GAP_S = 60.0  # rises closer than this belong to one stop [s]
DRIFT_WARN_S = 0.5  # event vs continuous clock disagreement worth reporting [s]


def _q(name: str) -> str:
    return 'lmu."' + name.replace('"', '""') + '"'


def read_lmu_duckdb(path: Path) -> ReadResult:
    """Read one LMU ``.duckdb`` session into laps, pit stops, FCY periods and impacts."""
    wal = Path(str(path) + ".wal")
    if wal.exists():
        raise IngestError(
            path,
            wal.name,
            "leftover write-ahead log: LMU did not close this recording cleanly (partial"
            " session, or still being written); open it once with DuckDB to checkpoint it, or"
            " remove the .wal to read only what was checkpointed",
        )
    con = duckdb.connect()
    try:
        try:
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS lmu (READ_ONLY)")
        except duckdb.Error as e:
            text = str(e)
            if "lock" in text.lower():
                raise IngestError(
                    path,
                    "file lock",
                    "locked by another process (LMU is probably still recording this session):"
                    " ingest it after the session ends",
                ) from e
            raise IngestError(path, "file", f"cannot open as DuckDB: {text.splitlines()[0]}") from e
        try:
            return _Reader(path, con).read()
        except duckdb.Error as e:
            # A table of a shape this reader does not know; name what DuckDB refused.
            raise IngestError(path, "query", f"unexpected layout: {str(e).splitlines()[0]}") from e
    finally:
        con.close()


class _Reader:
    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.con = con
        self.warnings: list[str] = []

    # -- helpers -------------------------------------------------------------------------------
    def fail(self, place: str, problem: str) -> IngestError:
        return IngestError(self.path, place, problem)

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.execute(query, params or []).fetchall()

    def columns(self, table: str) -> list[str]:
        rows = self.sql(
            "SELECT column_name FROM duckdb_columns()"
            " WHERE database_name = 'lmu' AND table_name = ?"
            " ORDER BY column_index",
            [table],
        )
        return [r[0] for r in rows]

    def events(self, name: str, col: str = "value") -> tuple[np.ndarray, np.ndarray]:
        """(ts corrected to the continuous clock, value) of an event table in rowid order."""
        if name not in self.tables:
            return np.empty(0), np.empty(0)
        cols = self.columns(name)
        if col not in cols:
            col = "value1" if "value1" in cols else col
        if "ts" not in cols or col not in cols:
            msg = f'event table "{name}": expected columns ts and {col}, found {cols}; ignored'
            if msg not in self.warnings:
                self.warnings.append(msg)
            return np.empty(0), np.empty(0)
        rows = self.sql(f"SELECT ts, {col} FROM {_q(name)} ORDER BY rowid")
        ts = np.array([r[0] for r in rows], dtype=float)
        vals = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
        if len(ts) > 1 and np.any(np.diff(ts) < 0):
            k = int(np.argmax(np.diff(ts) < 0)) + 1
            self.warnings.append(
                f'table "{name}", row {k}: ts {ts[k]} earlier than the row before; sorted'
            )
            order = np.argsort(ts, kind="stable")
            ts, vals = ts[order], vals[order]
        return self.correct(ts), vals

    def correct(self, ts: np.ndarray) -> np.ndarray:
        if self.offset_at is None or len(ts) == 0:
            return ts
        return ts - np.interp(ts, self.offset_at[0], self.offset_at[1])

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> ReadResult:
        rows = self.sql("SELECT table_name FROM duckdb_tables() WHERE database_name = 'lmu'")
        self.tables = {r[0] for r in rows}
        for t in ("metadata", "channelsList", "eventsList"):
            if t not in self.tables:
                raise self.fail(f"table {t}", "missing: not an LMU telemetry recording")
        meta = dict(self.sql("SELECT key, value FROM lmu.metadata"))
        version = meta.get("Version")
        if version not in KNOWN_VERSIONS:
            raise self.fail(
                "table metadata, key Version",
                f"unknown telemetry version {version!r}; this reader knows"
                f" {sorted(KNOWN_VERSIONS)}",
            )
        self.rates = {
            name: int(freq)
            for name, freq, _ in self.sql(
                'SELECT "channelName", frequency, unit FROM lmu."channelsList"'
            )
        }
        listed_events = {r[0] for r in self.sql('SELECT "eventName" FROM lmu."eventsList"')}
        missing = sorted(n for n in [*self.rates, *listed_events] if n not in self.tables)
        if "Lap Dist" not in self.rates or "Lap Dist" not in self.tables:
            raise self.fail('channel "Lap Dist"', "missing: laps cannot be cut without it")
        if "value" not in self.columns("Lap Dist"):
            raise self.fail('channel "Lap Dist"', "no value column: laps cannot be cut without it")
        if missing:
            self.warnings.append(f"listed channels without a table (stored NULL): {missing}")
        self.offset_at: tuple[np.ndarray, np.ndarray] | None = None
        self.t0 = self._t0()
        setup = self._setup(meta)
        self.capacity_l = _setup_value(setup, "VM_FUEL_CAPACITY")
        session = self._session(meta)
        car = session.car(_car_number(meta.get("CarName", "")))
        car.vehicle = meta.get("CarName")
        car.car_class = meta.get("CarClass")
        car.fuel_capacity_l = self.capacity_l
        if meta.get("DriverName"):
            car.add_driver(meta["DriverName"], 1)
        self._laps(session, car.number, meta.get("DriverName"))
        return ReadResult(reader="lmu_duckdb", sessions=[session], warnings=self.warnings)

    def _t0(self) -> float:
        if "GPS Time" in self.tables:
            rows = self.sql('SELECT value FROM lmu."GPS Time" ORDER BY rowid LIMIT 1')
            back = self.sql(
                "SELECT min(rowid) FROM (SELECT rowid,"
                " value - lag(value) OVER (ORDER BY rowid) AS d"
                ' FROM lmu."GPS Time") WHERE d < 0'
            )
            if back and back[0][0] is not None:
                self.warnings.append(f'channel "GPS Time", row {back[0][0]}: time steps back')
            if rows and rows[0][0] is not None:
                return float(rows[0][0])
        if "Lap" in self.tables:
            rows = self.sql('SELECT min(ts) FROM lmu."Lap"')
            if rows and rows[0][0] is not None:
                self.warnings.append('no "GPS Time": t0 taken from the first "Lap" event')
                return float(rows[0][0])
        raise self.fail('channel "GPS Time"', "missing, and no event to take the start time from")

    def _setup(self, meta: dict[str, str]) -> dict[str, Any]:
        try:
            setup = json.loads(meta.get("CarSetup") or "{}")
        except json.JSONDecodeError as e:
            self.warnings.append(f"metadata CarSetup is not JSON ({e.msg}); fuel capacity unknown")
            return {}
        return setup if isinstance(setup, dict) else {}

    def _session(self, meta: dict[str, str]) -> SessionRecord:
        stype = SESSION_TYPES.get((meta.get("SessionType") or "").lower())
        start = meta.get("RecordingTime")
        m = re.search(r"(\d{4}-\d{2}-\d{2})T(\d{2})_(\d{2})_(\d{2})Z", self.path.name)
        if not start and m:
            start = f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}Z"
        return SessionRecord(
            name=self.path.stem,
            series="LMU",
            track=meta.get("TrackName"),
            session_type=stype,
            start_time_utc=start,
        )

    def _continuous(self, name: str, exprs: dict[str, str]) -> dict[int, dict[str, float | None]]:
        """Per lap segment, aggregates (SQL over columns ``value*``, ``i`` and ``prev*``)."""
        needed = set(re.findall(r"\bvalue\d?\b", " ".join(exprs.values())))
        if not self.usable(name, needed):
            return {}
        f = self.rates[name]
        cols = [c for c in self.columns(name) if c.startswith("value")]
        lags = ", ".join(f"lag({c}) OVER (ORDER BY rowid) AS prev{c[5:]}" for c in cols)
        agg = ", ".join(f"{e} AS {k}" for k, e in exprs.items())
        rows = self.con.execute(
            f"SELECT b.seg, {agg} FROM"
            f" (SELECT rowid AS i, {', '.join(cols)}, {lags} FROM {_q(name)}) c"
            f" ASOF JOIN bounds b ON c.i * {self.f_ld} >= b.r * {f} GROUP BY b.seg"
        ).fetchall()
        keys = list(exprs)
        return {int(r[0]): dict(zip(keys, r[1:], strict=True)) for r in rows}

    def usable(self, name: str, needed: set[str]) -> bool:
        """Whether a continuous channel exists with the value columns a query needs; a table
        of another shape is reported and its lap values stored NULL."""
        if name not in self.tables or name not in self.rates:
            return False
        missing = sorted(needed - set(self.columns(name)))
        if missing:
            msg = f'channel "{name}": no column {", ".join(missing)}; its values stored NULL'
            if msg not in self.warnings:
                self.warnings.append(msg)
            return False
        return True

    def _jumps(self, name: str, cols: list[str], step: float) -> list[tuple[float, float, int]]:
        """(time [s], rise, wheels that rose) of each sample rising more than ``step``."""
        if not self.usable(name, set(cols)):
            return []
        f = self.rates[name]
        rises = [f"({c} - lag({c}) OVER (ORDER BY rowid))" for c in cols]
        rise_sum = " + ".join(f"greatest(coalesce(d{k}, 0), 0)" for k in range(len(cols)))
        n_rose = " + ".join(f"(coalesce(d{k}, 0) > {step})::INTEGER" for k in range(len(cols)))
        sel = ", ".join(f"{r} AS d{k}" for k, r in enumerate(rises))
        rows = self.sql(
            f"SELECT i, {rise_sum}, {n_rose} FROM (SELECT rowid AS i, {sel} FROM {_q(name)})"
            f" WHERE {' OR '.join(f'd{k} > {step}' for k in range(len(cols)))} ORDER BY i"
        )
        return [(self.t0 + r[0] / f, float(r[1]), int(r[2])) for r in rows]

    def _segments(self, session: SessionRecord) -> tuple[np.ndarray, np.ndarray]:
        """(start index at the ``Lap Dist`` rate, start time [s]) of every segment between
        ``Lap Dist`` resets (the last one partial); fills the ``bounds`` temp table and the
        session's track length."""
        self.f_ld = self.rates["Lap Dist"]
        resets = [
            r[0]
            for r in self.sql(
                "SELECT i FROM (SELECT rowid AS i, value, lag(value) OVER (ORDER BY rowid) AS prev"
                ' FROM lmu."Lap Dist")'
                ' WHERE prev - value > 0.5 * (SELECT max(value) FROM lmu."Lap Dist")'
                " ORDER BY i"
            )
        ]
        if not resets:
            self.warnings.append('"Lap Dist" never resets: no complete lap recorded')
        starts = np.array([0, *resets], dtype=np.int64)  # segment start indices at f_ld
        bound_t = self.t0 + starts / self.f_ld  # segment start times [s]
        self.con.execute("CREATE TEMP TABLE bounds (seg INTEGER, r BIGINT)")
        self.con.executemany(
            "INSERT INTO bounds VALUES (?, ?)", [(k, int(r)) for k, r in enumerate(starts)]
        )
        self._check_clocks(bound_t[1:])
        track_len = self.sql('SELECT max(value) FROM lmu."Lap Dist"')[0][0]
        session.track_length_m = float(track_len) if track_len else None
        return starts, bound_t

    def _lap_times(
        self, ends: np.ndarray, numbers: list[int]
    ) -> tuple[dict[int, float | None], dict[str, dict[int, float]]]:
        """(lap time per lap index, ``Last Sector1/2`` per lap index) from the events at the
        laps' ends ``ends`` [s]."""
        at_end = lambda ts: _nearest_end(ends, ts)  # noqa: E731
        lt_ts, lt_vals = self.events("Lap Time")
        lap_time: dict[int, float | None] = {}
        for k, v, t in zip(at_end(lt_ts), lt_vals, lt_ts, strict=True):
            if k < 0:
                self.warnings.append(
                    f'table "Lap Time": event at ts {t:.3f} is not at a lap boundary; ignored'
                )
            elif k in lap_time:
                self.warnings.append(
                    f'table "Lap Time": duplicate time for lap {numbers[k]}; kept the first'
                )
            elif not math.isfinite(v) or v <= 0:
                self.warnings.append(
                    f'table "Lap Time": lap {numbers[k]} time {v} is not positive; lap untimed'
                )
                lap_time[k] = None
            else:
                lap_time[k] = float(v)
        sectors: dict[str, dict[int, float]] = {}
        for name in ("Last Sector1", "Last Sector2"):
            ts, vals = self.events(name)
            sectors[name] = {
                int(k): float(v) for k, v in zip(at_end(ts), vals, strict=True) if k >= 0
            }
        return lap_time, sectors

    def _lap_channels(self) -> dict[str, dict[int, dict]]:
        """Per-lap aggregates of the continuous channels (by lap index)."""
        fuel = self._continuous(
            "Fuel Level",
            {
                "first": "arg_min(value, i)",
                "last": "arg_max(value, i)",
                "used": "sum(greatest(prev - value, 0) * (prev - value < 1.0)::INTEGER)",
            },
        )
        energy = self._continuous(
            "Virtual Energy", {"first": "arg_min(value, i)", "last": "arg_max(value, i)"}
        )
        wear = self._continuous(
            "Tyres Wear", {f"w{w}": f"arg_max(value{w}, i)" for w in range(1, 5)}
        )
        temps = [
            self._continuous(
                n, {"mean": "avg((value1 + value2 + value3 + value4) / 4)", "n": "count(*)"}
            )
            for n in ("TyresTempLeft", "TyresTempCentre", "TyresTempRight")
        ]
        air = self._continuous("Ambient Temperature", {"mean": "avg(value)"})
        track = self._continuous("Track Temperature", {"mean": "avg(value)"})
        return {"fuel": fuel, "energy": energy, "wear": wear, "air": air, "track": track} | {
            f"temp{i}": t for i, t in enumerate(temps)
        }

    def _laps(self, session: SessionRecord, number: str, driver: str | None) -> None:
        starts, bound_t = self._segments(session)
        n_laps = len(starts) - 1  # segments 0..n_laps-1 end at a reset; the last is partial
        lap_ts, lap_vals = self.events("Lap")
        numbers = self._lap_numbers(bound_t, lap_ts, lap_vals)
        lap_time, sectors = self._lap_times(bound_t[1:], numbers)
        ch = self._lap_channels()
        fuel, energy, wear, air, track = (ch[k] for k in ("fuel", "energy", "wear", "air", "track"))
        temps = [ch[f"temp{i}"] for i in range(3)]

        # Pit lane: In Pits intervals; stops also from rises of fuel, energy and tread.
        pit_ts, pit_vals = self.events("In Pits")
        intervals = _intervals(pit_ts, pit_vals > 0.5, math.inf)
        fuel_rises = self._jumps("Fuel Level", ["value"], REFUEL_STEP_L)
        energy_rises = self._jumps("Virtual Energy", ["value"], ENERGY_STEP_PCT)
        wear_rises = self._jumps("Tyres Wear", [f"value{w}" for w in range(1, 5)], WEAR_STEP_PCT)
        yellow_ts, yellow_vals = self.events("Yellow Flag State")
        fcy = _intervals(yellow_ts, yellow_vals > 0, bound_t[-1] if n_laps else math.inf)
        local: list[tuple[float, float]] = []
        for name in ("Sector1 Flag", "Sector2 Flag", "Sector3 Flag"):
            ts, vals = self.events(name)
            local += _intervals(ts, vals > 0, math.inf)
        wet_ts, wet_vals = self.events("Minimum Path Wetness")
        comp_ts, comp_vals = self.events("TyresCompound", "value1")
        imp_ts, imp_vals = self.events("LastImpactMagnitude")
        fin_ts, fin_vals = self.events("Finish Status")

        def in_force(ts: np.ndarray, vals: np.ndarray, t: float) -> float | None:
            k = int(np.searchsorted(ts, t, side="right")) - 1
            return float(vals[k]) if k >= 0 and math.isfinite(vals[k]) else None

        cap = self.capacity_l
        frac = lambda v: None if v is None or not cap else v / cap  # noqa: E731
        imp_seg = np.searchsorted(bound_t, imp_ts, side="right") - 1
        rows: list[Row] = []
        for k in range(n_laps):
            a, b = bound_t[k], bound_t[k + 1]
            lt = lap_time.get(k)
            s1, s2 = sectors["Last Sector1"].get(k), sectors["Last Sector2"].get(k)
            tyre = [t[k]["mean"] for t in temps if k in t and t[k]["mean"] is not None]
            flag = 2 if _overlaps(fcy, a, b) else 1 if _overlaps(local, a, b) else 0
            row: Row = {
                "car": number,
                "driver": driver,
                "lap": numbers[k],
                "lap_time_s": lt,
                "timed": int(lt is not None),
                "s1_s": s1 if lt is not None else None,
                "s2_s": s2 - s1 if lt is not None and s1 is not None and s2 is not None else None,
                "s3_s": lt - s2 if lt is not None and s2 is not None else None,
                "race_time_s": float(b),
                "fuel_start": frac(fuel.get(k, {}).get("first")),
                "fuel_end": frac(fuel.get(k, {}).get("last")),
                "fuel_used_l": fuel.get(k, {}).get("used"),
                "energy_start": _pct(energy.get(k, {}).get("first")),
                "energy_end": _pct(energy.get(k, {}).get("last")),
                "tyre_temp_c": sum(tyre) / len(tyre) if tyre else None,
                "air_temp_c": air.get(k, {}).get("mean"),
                "track_temp_c": track.get(k, {}).get("mean"),
                "wetness": in_force(wet_ts, wet_vals, b),
                "compound": _compound(in_force(comp_ts, comp_vals, b)),
                "flag": flag,
                "impacts": int(np.sum((imp_seg == k) & (imp_vals > 0))),
                "pit_in": 0,
                "pit_out": 0,
            }
            for w, wheel in enumerate(("fl", "fr", "rl", "rr"), start=1):
                row[f"tread_{wheel}"] = _pct(wear.get(k, {}).get(f"w{w}"))
            if lt is not None and abs(lt - (b - a)) > 1.0 and k > 0:
                self.warnings.append(
                    f"lap {numbers[k]}: Lap Time {lt:.3f} s but Lap Dist resets {b - a:.3f} s apart"
                )
            rows.append(row)
        session.laps = rows
        self._stops(session, number, rows, bound_t, intervals, fuel_rises, energy_rises, wear_rises)
        self._events_of_car(session, number, fcy, imp_ts, imp_vals, imp_seg, numbers)
        car = session.cars[number]
        car.laps_completed = max((r["lap"] for r in rows), default=0)
        status = in_force(fin_ts, fin_vals, math.inf)
        car.finish_status = FINISH_STATUS.get(int(status)) if status is not None else None
        if n_laps < len(starts):
            self.warnings.append("the partial lap after the last line crossing is not stored")

    @staticmethod
    def _events_of_car(
        session: SessionRecord,
        number: str,
        fcy: list[tuple[float, float]],
        imp_ts: np.ndarray,
        imp_vals: np.ndarray,
        imp_seg: np.ndarray,
        numbers: list[int],
    ) -> None:
        """Full-course yellow periods and the car's impacts (with the lap of each)."""
        for a, b in fcy:
            session.flag_periods.append(
                {"kind": 2, "start_s": a, "end_s": None if math.isinf(b) else b}
            )
        for t, v, k in zip(imp_ts, imp_vals, imp_seg.tolist(), strict=True):
            if v > 0:
                session.incidents.append(
                    {
                        "car": number,
                        "kind": "impact",
                        "race_time_s": float(t),
                        "magnitude": float(v),
                        "lap": numbers[k] if 0 <= k < len(numbers) else None,
                    }
                )

    def _check_clocks(self, reset_t: np.ndarray) -> None:
        """Compare ``Lap`` events with ``Lap Dist`` resets; report and correct a drift."""
        if "Lap" not in self.tables or len(reset_t) == 0:
            return
        ts = np.sort(self.events("Lap")[0])
        if len(ts) == 0:
            return
        k = np.searchsorted(ts, reset_t)
        lo, hi = np.clip(k - 1, 0, len(ts) - 1), np.clip(k, 0, len(ts) - 1)
        k = np.where(np.abs(ts[lo] - reset_t) <= np.abs(ts[hi] - reset_t), lo, hi)
        offset = ts[k] - reset_t
        # A reset with no Lap event within half a lap has nothing to compare with.
        half_lap = 0.5 * float(np.median(np.diff(reset_t))) if len(reset_t) > 1 else math.inf
        keep = np.abs(offset) < half_lap
        if not np.any(keep):
            return
        reset_t, offset = reset_t[keep], offset[keep]
        worst = float(np.max(np.abs(offset)))
        if worst > DRIFT_WARN_S:
            span_h = max((reset_t[-1] - reset_t[0]) / 3600.0, 1e-9)
            rate = float(offset[-1] - offset[0]) / span_h if len(offset) > 1 else 0.0
            self.warnings.append(
                f'event clock and continuous clock disagree: "Lap" events are up to {worst:.2f} s'
                f' from "Lap Dist" resets (drift {rate:+.2f} s/h); event times corrected by the'
                " offset interpolated between lap boundaries"
            )
            self.offset_at = (reset_t, offset)

    def _lap_numbers(
        self, bound_t: np.ndarray, lap_ts: np.ndarray, lap_vals: np.ndarray
    ) -> list[int]:
        """Lap number of each segment: the ``Lap`` event at its start, else one more than before."""
        numbers: list[int] = []
        for k, t in enumerate(bound_t):
            near = np.nonzero(np.abs(lap_ts - t) <= 1.0)[0] if len(lap_ts) else []
            if len(near):
                n = int(lap_vals[near[np.argmin(np.abs(lap_ts[near] - t))]])
            elif numbers:
                n = numbers[-1] + 1
            else:
                later = lap_vals[lap_ts > t] if len(lap_ts) else np.empty(0)
                n = int(later[0]) - 1 if len(later) and k == 0 else 1
                n = max(n, 0)
            if numbers and n <= numbers[-1]:
                self.warnings.append(
                    f"lap number {n} at {t:.2f} s does not follow {numbers[-1]}; renumbered"
                )
                n = numbers[-1] + 1
            numbers.append(n)
        return numbers

    def _stops(
        self,
        session: SessionRecord,
        number: str,
        rows: list[Row],
        bound_t: np.ndarray,
        intervals: list[tuple[float, float]],
        fuel_rises: list[tuple[float, float, int]],
        energy_rises: list[tuple[float, float, int]],
        wear_rises: list[tuple[float, float, int]],
    ) -> None:
        n_laps = len(rows)
        windows = [(a, b, True) for a, b in intervals]
        # Rises of fuel, energy or tread outside any In Pits interval are stops too.
        for t, _, _ in [*fuel_rises, *energy_rises, *wear_rises]:
            if not any(a - STOP_GAP_S <= t <= b + STOP_GAP_S for a, b, _ in windows):
                windows.append((t, t, False))
        windows.sort()
        merged: list[tuple[float, float, bool]] = []
        for a, b, known in windows:
            if merged and not known and not merged[-1][2] and a - merged[-1][1] <= STOP_GAP_S:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]), False)
            else:
                merged.append((a, b, known))
        tyre_age: int | None = None
        changes: dict[int, bool] = {}
        for a, b, known in merged:
            seg_in = int(np.searchsorted(bound_t, a, side="right")) - 1
            if seg_in < 0:
                seg_in = 0
            lo, hi = a - (0 if known else STOP_GAP_S), (b if math.isfinite(b) else math.inf) + 1.0
            added_l = sum(r for t, r, _ in fuel_rises if lo <= t <= hi)
            tyres = max((n for t, _, n in wear_rises if lo <= t <= hi), default=0)
            if a <= bound_t[0] + 1.0 and added_l == 0 and tyres == 0:
                # The recording starts in the pit lane: lap 1 is an out-lap, not a stop.
                if rows:
                    rows[0]["pit_out"] = 1
                continue
            if not known:
                self.warnings.append(f"refuel / tyre change at {a:.1f} s without an In Pits event")
            out = int(np.searchsorted(bound_t, b, side="right")) - 1 if math.isfinite(b) else n_laps
            out = max(out, seg_in + 1)
            pit_time = b - a if known and math.isfinite(b) else None
            in_lap = rows[seg_in]["lap"] if seg_in < n_laps else None
            if seg_in < n_laps:
                rows[seg_in]["pit_in"] = 1
            if out < n_laps:
                rows[out]["pit_out"] = 1
                rows[out]["pit_time_s"] = pit_time
                changes[out] = tyres > 0
            if in_lap is None:
                continue
            session.pit_stops.append(
                {
                    "car": number,
                    "lap": in_lap,
                    "race_time_s": float(bound_t[seg_in + 1]) if seg_in + 1 < len(bound_t) else a,
                    "pit_time_s": pit_time,
                    "refuel": int(added_l > 0),
                    "fuel_added": added_l / self.capacity_l if self.capacity_l else None,
                    "tyres_changed": tyres,
                }
            )
        for k, row in enumerate(rows):
            if changes.get(k):
                tyre_age = 0
            row["tyre_age_laps"] = tyre_age
            if tyre_age is not None:
                tyre_age += 1


def _nearest_end(ends: np.ndarray, ts: np.ndarray, tol: float = 2.0) -> np.ndarray:
    """Index of the lap whose end (``ends`` [s], sorted) is nearest each event time ``ts``
    (-1 when none is within ``tol`` seconds)."""
    n_laps = len(ends)
    if n_laps == 0 or len(ts) == 0:
        return np.full(len(ts), -1)
    k = np.searchsorted(ends, ts)
    lo, hi = np.clip(k - 1, 0, n_laps - 1), np.clip(k, 0, n_laps - 1)
    k = np.where(np.abs(ends[lo] - ts) <= np.abs(ends[hi] - ts), lo, hi)
    return np.where(np.abs(ends[k] - ts) <= tol, k, -1)


def _intervals(ts: np.ndarray, on: np.ndarray, end: float) -> list[tuple[float, float]]:
    """[start, end) intervals where a state event is on; an open one ends at ``end``."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for t, state in zip(ts, on, strict=True):
        if state and start is None:
            start = float(t)
        elif not state and start is not None:
            out.append((start, float(t)))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def _overlaps(intervals: list[tuple[float, float]], a: float, b: float) -> bool:
    return any(s < b and e > a for s, e in intervals)


def _pct(value: float | None) -> float | None:
    return None if value is None else value / 100.0


def _compound(code: float | None) -> int | None:
    """TyresCompound codes 0-2 (no label table in the file) taken as soft / medium / hard."""
    return int(code) if code is not None and 0 <= code <= 3 else None


def _car_number(car_name: str) -> str:
    m = re.search(r"#(\w+)", car_name)
    return m.group(1) if m else (car_name or "player")


def _setup_value(setup: dict[str, Any], key: str) -> float | None:
    entry = setup.get(key)
    value = entry.get("value") if isinstance(entry, dict) else entry
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None

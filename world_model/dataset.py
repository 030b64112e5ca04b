"""Training rows from the lap store: conditions at each lap's start and the lap's outcomes.

One row per car-lap. Conditions are built as a :class:`LapConditions` (so the same
:func:`~world_model.features.build_features` serves data and engine); inputs a source lacks
are NaN (compound and flag: -1). Outcomes are physical ``[N, 8]`` in
:data:`~world_model.targets.TARGET_NAMES` order, NaN where a source lacks the channel or the
lap cannot say (so the loss masks it):

- lap time: timed laps that neither start nor end in the pits, not the first lap, shorter
  than 2.5 reference laps (longer ones are stoppages, not racing laps); every flag state
  (the flag is an input).
- fuel / energy used: start minus end of lap, laps without a pit stop.
- wear per wheel: previous lap's tread minus this lap's, not on an out-lap.
- tyre temperature: this lap's mean, where the previous lap's is known (the start value).

Reference figures follow ``LapConditions`` but are causal: for each lap, the 10th percentile
of the car's *earlier* timed green laps that neither start nor end in the pits (laps of
unknown flag count as green; NaN, so the lap is not a target, before ``MIN_REF_LAPS`` of
them), and the median fuel, energy and mean-wheel wear of its earlier green laps. A figure
taken over the car's whole race would hand every method the car's future pace. The previous
lap's time, fuel and wear (``last_*``) are the car's own lap just before, NaN where it
started or ended in the pits. Derived inputs: stint time since the out-lap's start (race
start for the first stint); tyre age from the source, else laps since the last stop; traffic
is the count of other cars crossing the line in the 5 s before the lap starts; night ramps
over an hour around 21:00 and 06:00 local time; track temperature and wetness from the lap,
else the nearest weather sample of the session (by name).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from world_model.interface import LapConditions, PaceMode, update_recent_pace
from world_model.targets import N_TARGETS

WHEELS = ("fl", "fr", "rl", "rr")
MAX_LAP_RATIO = 2.5
TRAFFIC_WINDOW_S = 5.0
MIN_REF_LAPS = 3

_LAP_COLUMNS = (
    "l.session_id, s.name AS race, s.series, s.start_hour_of_day, l.car_id, c.number, "
    "c.class, l.lap, l.lap_time_s, l.timed, l.race_time_s, l.pit_in, l.pit_out, l.compound, "
    "l.tyre_age_laps, l.fuel_start, l.fuel_end, l.energy_start, l.energy_end, l.tread_fl, "
    "l.tread_fr, l.tread_rl, l.tread_rr, l.tyre_temp_c, l.track_temp_c, l.wetness, l.flag, "
    "l.damage"
)


@dataclass(frozen=True)
class LapTable:
    """Rows of the lap store ready for the model; every array has first dim ``N``."""

    conditions: LapConditions
    outcomes: torch.Tensor
    """Physical outcomes ``[N, N_TARGETS]``, NaN where unknown."""
    race: np.ndarray
    """Session name per row (the unit of train / validation / test splits)."""
    car_class: np.ndarray
    car_key: np.ndarray
    """``session_id:car_id`` per row."""
    lap: np.ndarray
    stint: np.ndarray
    """Stint number of the car (0 before the first stop)."""

    def __len__(self) -> int:
        return int(self.outcomes.shape[0])

    def select(self, rows: np.ndarray) -> LapTable:
        """The table restricted to a boolean mask or index array."""
        idx = torch.as_tensor(np.flatnonzero(rows) if rows.dtype == bool else rows)
        r = idx.numpy()
        return LapTable(
            self.conditions.index(idx),
            self.outcomes[idx],
            self.race[r],
            self.car_class[r],
            self.car_key[r],
            self.lap[r],
            self.stint[r],
        )

    @property
    def races(self) -> list[str]:
        return sorted(set(self.race.tolist()))


def read_laps(db: str | Path) -> pd.DataFrame:
    """The lap store's laps joined with session and car, sorted by car and lap."""
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: lap store not found")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            laps = pd.read_sql_query(
                f"SELECT {_LAP_COLUMNS} FROM laps l JOIN sessions s USING (session_id) "
                "JOIN cars c ON c.car_id = l.car_id ORDER BY l.session_id, l.car_id, l.lap",
                conn,
            )
            weather = pd.read_sql_query(
                "SELECT s.name AS race, w.race_time_s, w.track_temp_c, w.wetness "
                "FROM weather w JOIN sessions s USING (session_id) ORDER BY w.race_time_s",
                conn,
            )
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise ValueError(
                f"{path}: not a lap store with laps/sessions/cars tables ({exc})"
            ) from exc
    laps.attrs["weather"] = weather
    return laps


def _night(hour_of_day: np.ndarray) -> np.ndarray:
    """Darkness 0..1 from local time [h]: ramps 20:30-21:30 and 05:30-06:30."""
    h = np.mod(hour_of_day, 24.0)
    return np.where(h < 12.0, np.clip(6.5 - h, 0.0, 1.0), np.clip(h - 20.5, 0.0, 1.0))


def _traffic(df: pd.DataFrame, start_s: np.ndarray) -> np.ndarray:
    """Other cars crossing the line in the window before each lap's start, per session."""
    out = np.zeros(len(df))
    for _, idx in df.groupby("session_id").indices.items():
        crossings = np.sort(df["race_time_s"].to_numpy()[idx])
        crossings = crossings[np.isfinite(crossings)]
        t0 = start_s[idx]
        n = np.searchsorted(crossings, t0, "left") - np.searchsorted(
            crossings, t0 - TRAFFIC_WINDOW_S, "left"
        )
        out[idx] = np.where(np.isfinite(t0), n, np.nan)
    return out


def _nearest_weather(df: pd.DataFrame, start_s: np.ndarray, column: str) -> np.ndarray:
    weather: pd.DataFrame = df.attrs.get("weather", pd.DataFrame())
    out = df[column].to_numpy(dtype=float).copy()
    if weather.empty:
        return out
    for race, w in weather.groupby("race"):
        w = w[np.isfinite(w[column].to_numpy(dtype=float))]
        rows = np.flatnonzero((df["race"] == race).to_numpy() & np.isnan(out))
        if w.empty or rows.size == 0:
            continue
        times = w["race_time_s"].to_numpy(dtype=float)
        vals = w[column].to_numpy(dtype=float)
        t = np.nan_to_num(start_s[rows], nan=0.0)
        j = np.clip(np.searchsorted(times, t), 1, len(times) - 1)
        nearer = np.where(np.abs(times[j - 1] - t) <= np.abs(times[j] - t), j - 1, j)
        out[rows] = vals[nearer]
    return out


def _causal_references(
    src: pd.DataFrame, keys: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference figures of each row from the car's laps *before* it (rows are in lap order
    per car): the 10th percentile of the earlier green lap times (NaN below
    ``MIN_REF_LAPS`` of them) and the median earlier fuel, energy and wear per green lap. A
    reference from the whole race would tell every method the car's future pace."""
    grouped = src.groupby(keys.to_numpy(), sort=False)

    def earlier(col: str, how: str) -> np.ndarray:
        args = [0.1] if how == "quantile" else []
        shifted = grouped[col].transform(lambda v: getattr(v.expanding(), how)(*args).shift(1))
        return shifted.to_numpy()

    counts = grouped["lap"].transform(lambda v: v.expanding().count().shift(1)).to_numpy()
    ref_lap = np.where(counts >= MIN_REF_LAPS, earlier("lap", "quantile"), np.nan)
    return (
        ref_lap,
        earlier("fuel", "median"),
        earlier("energy", "median"),
        earlier("wear", "median"),
    )


def _recent_pace(green_lap_s: np.ndarray, ref_lap: np.ndarray, keys: pd.Series) -> np.ndarray:
    """``LapConditions.recent_pace_pct`` of each row: the car's earlier green laps (NaN: not
    one) folded in lap order by :func:`~world_model.interface.update_recent_pace`."""
    groups = list(keys.groupby(keys.to_numpy(), sort=False).indices.values())
    # Column k holds every car's k-th row (-1: none), so one step folds a lap of every car.
    order = np.full((len(groups), max((len(g) for g in groups), default=0)), -1)
    for j, rows in enumerate(groups):
        order[j, : len(rows)] = rows
    out = np.full(len(green_lap_s) + 1, np.nan)
    lap = torch.as_tensor(np.append(green_lap_s, np.nan))  # index -1: padding
    ref = torch.as_tensor(np.append(ref_lap, np.nan))
    recent = torch.full((len(groups),), float("nan"), dtype=torch.float64)
    for k in range(order.shape[1]):
        rows = torch.as_tensor(order[:, k])
        out[order[:, k]] = recent.numpy()  # padding writes land on the appended slot below
        seen = ~(lap[rows].isnan() | ref[rows].isnan())
        recent = torch.where(seen, update_recent_pace(recent, lap[rows], ref[rows]), recent)
    return out[:-1]


def _previous_lap(
    by_car: pd.core.groupby.DataFrameGroupBy,
    consecutive: np.ndarray,
    no_stop: np.ndarray,
    *values: np.ndarray,
) -> list[np.ndarray]:
    """Each of ``values`` on the car's previous lap (``LapConditions.last_*``): NaN where
    that lap is not the one just before, or it started or ended in the pits."""
    ok = consecutive & pd.Series(no_stop).groupby(by_car.ngroup()).shift(1).eq(True).to_numpy()
    return [
        np.where(ok, pd.Series(v).groupby(by_car.ngroup()).shift(1).to_numpy(dtype=float), np.nan)
        for v in values
    ]


def _stints(
    df: pd.DataFrame, by_car: pd.core.groupby.DataFrameGroupBy, start_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stint number, time since the stint's start [s], tyre age [laps]) of each row: a new
    stint begins with each out-lap; tyre age from the source, else laps into the stint."""
    stint = by_car["pit_out"].cumsum().to_numpy(dtype=np.int64)
    key = (
        df["car_id"].astype(str) + ":" + df["session_id"].astype(str) + ":" + stint.astype(str)
    ).to_numpy()
    stint_start = pd.Series(start_s).groupby(key).transform("first").to_numpy()
    laps_in_stint = pd.Series(np.ones(len(df))).groupby(key).cumsum().to_numpy() - 1
    age = df["tyre_age_laps"].to_numpy(dtype=float)
    return stint, start_s - stint_start, np.where(np.isfinite(age), age, laps_in_stint)


def _used(start: np.ndarray, end: np.ndarray, no_stop: np.ndarray) -> np.ndarray:
    """Start minus end of lap on laps without a stop; NaN where it would be negative."""
    used = np.where(no_stop, start - end, np.nan)
    return np.where(used >= 0, used, np.nan)


def build_table(df: pd.DataFrame) -> LapTable:
    """Conditions and outcomes of every lap in ``df`` (as :func:`read_laps` returns it)."""
    df = df.reset_index(drop=True)
    n = len(df)
    f = lambda col: df[col].to_numpy(dtype=float)  # noqa: E731
    g = df.groupby(["session_id", "car_id"], sort=False)
    consecutive = (g["lap"].shift(1) == df["lap"] - 1).to_numpy()
    prev = lambda col: np.where(consecutive, g[col].shift(1).to_numpy(dtype=float), np.nan)  # noqa: E731

    pit_in = f("pit_in") > 0
    pit_out = f("pit_out") > 0
    lap_time = np.where(f("timed") > 0, f("lap_time_s"), np.nan)
    race_time = f("race_time_s")
    start_s = np.where(np.isfinite(prev("race_time_s")), prev("race_time_s"), race_time - lap_time)
    start_s = np.where(df["lap"].to_numpy() == 1, 0.0, start_s)
    flag = df["flag"].fillna(-1).to_numpy(dtype=np.int64)

    stint, stint_time, tyre_age = _stints(df, g, start_s)

    fuel_start = np.where(np.isfinite(f("fuel_start")), f("fuel_start"), prev("fuel_end"))
    energy_start = np.where(np.isfinite(f("energy_start")), f("energy_start"), prev("energy_end"))
    tread_start = np.stack([prev(f"tread_{w}") for w in WHEELS], axis=1)
    tread_start[pit_out] = np.nan
    temp_start = prev("tyre_temp_c")
    no_stop = ~pit_in & ~pit_out

    fuel_used = _used(fuel_start, f("fuel_end"), no_stop)
    energy_used = _used(energy_start, f("energy_end"), no_stop)
    wear = tread_start - np.stack([f(f"tread_{w}") for w in WHEELS], axis=1)
    wear = np.where(wear >= -1e-6, np.clip(wear, 0.0, None), np.nan)

    # Reference figures per car and session, from green laps (unknown flag counts as green).
    green = (flag <= 0) & no_stop
    car_key = (df["session_id"].astype(str) + ":" + df["car_id"].astype(str)).to_numpy()
    keys = pd.Series(car_key)
    per_lap = {"lap": lap_time, "fuel": fuel_used, "energy": energy_used, "wear": wear.mean(1)}
    ref_src = pd.DataFrame({k: np.where(green, v, np.nan) for k, v in per_lap.items()})
    ref_lap, ref_fuel, ref_energy, ref_wear = _causal_references(ref_src, keys)

    recent_pace = _recent_pace(np.where(green, lap_time, np.nan), ref_lap, keys)
    last = _previous_lap(g, consecutive, no_stop, lap_time, fuel_used, wear.mean(1))
    lap_target = np.where(
        no_stop & (df["lap"].to_numpy() > 1) & (lap_time < MAX_LAP_RATIO * ref_lap),
        lap_time,
        np.nan,
    )
    # A lap before its car has a reference figure is no target (nothing to depart from).
    outcomes = np.column_stack(
        [
            lap_target,
            np.where(np.isnan(ref_fuel), np.nan, fuel_used),
            np.where(np.isnan(ref_energy), np.nan, energy_used),
            np.where(np.isnan(ref_wear)[:, None], np.nan, wear),
            f("tyre_temp_c"),
        ]
    )
    outcomes[np.isnan(temp_start), N_TARGETS - 1] = np.nan

    track_temp = _nearest_weather(df, start_s, "track_temp_c")
    wetness = _nearest_weather(df, start_s, "wetness")
    hour = f("start_hour_of_day") + start_s / 3600.0
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    compound = df["compound"].fillna(-1).to_numpy(dtype=np.int64)
    conditions = LapConditions(
        ref_lap_time_s=t(ref_lap),
        ref_fuel_per_lap=t(ref_fuel),
        ref_energy_per_lap=t(ref_energy),
        ref_wear_per_lap=t(ref_wear),
        fuel=t(fuel_start),
        energy=t(energy_start),
        tread=t(tread_start),
        tyre_age_laps=t(tyre_age),
        compound=torch.as_tensor(compound),
        tyre_temp_c=t(temp_start),
        damage=t(prev("damage")),
        stint_time_s=t(stint_time),
        pace_mode=torch.full((n,), int(PaceMode.NORMAL), dtype=torch.int64),
        class_index=torch.zeros(n, dtype=torch.int64),
        driver_skill=torch.zeros(n),
        flag=torch.as_tensor(flag),
        wetness=t(wetness),
        track_temp_c=t(track_temp),
        night=t(_night(hour)),
        traffic=t(_traffic(df, start_s)),
        out_lap=t(pit_out.astype(float)),
        recent_pace_pct=t(recent_pace),
        last_lap_time_s=t(last[0]),
        last_fuel_used=t(last[1]),
        last_wear=t(last[2]),
    )
    return LapTable(
        conditions=conditions,
        outcomes=t(outcomes),
        race=df["race"].to_numpy(dtype=str),
        car_class=df["class"].fillna("").to_numpy(dtype=str),
        car_key=car_key,
        lap=df["lap"].to_numpy(dtype=np.int64),
        stint=stint,
    )


def load_table(db: str | Path) -> LapTable:
    """Every lap of the lap store at ``db`` as a :class:`LapTable`."""
    return build_table(read_laps(db))


def stint_windows(table: LapTable, window_laps: int) -> np.ndarray:
    """Row indices ``[S, window_laps]`` (-1 = padding) of consecutive laps of one car's stint,
    cut every ``window_laps`` laps: the sequences the recurrent model reads."""
    n = len(table)
    if n == 0:
        return np.zeros((0, window_laps), dtype=np.int64)
    key = table.car_key
    new = np.ones(n, dtype=bool)
    new[1:] = (
        (key[1:] != key[:-1])
        | (table.stint[1:] != table.stint[:-1])
        | (table.lap[1:] != table.lap[:-1] + 1)
    )
    group = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    pos_in_group = np.arange(n) - first[group]
    start = new | (pos_in_group % window_laps == 0)
    window = np.cumsum(start) - 1
    pos = pos_in_group % window_laps
    out = np.full((int(window[-1]) + 1, window_laps), -1, dtype=np.int64)
    out[window, pos] = np.arange(n)
    return out

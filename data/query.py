"""Laps from the lap store as arrays for training: numeric columns by name, NULL -> NaN + mask.

>>> arrays = load_laps("lapstore.sqlite", ["lap_time_s", "fuel_used_l", "tread_fl"],
...                    series=["WEC"], timed_only=True)           # doctest: +SKIP
>>> x, mask = arrays.to_torch()                                    # doctest: +SKIP

Rows come ordered by session, car and lap, so consecutive rows of one car form its race.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Numeric columns a caller may ask for: every numeric laps column, plus session / car facts.
LAP_NUMERIC = (
    "lap", "lap_time_s", "timed", "s1_s", "s2_s", "s3_s", "race_time_s", "position",
    "class_position", "pit_in", "pit_out", "pit_time_s", "compound", "tyre_age_laps",
    "fuel_start", "fuel_end", "fuel_used_l", "energy_start", "energy_end", "tread_fl",
    "tread_fr", "tread_rl", "tread_rr", "tyre_temp_c", "track_temp_c", "air_temp_c", "wetness",
    "rain", "flag", "impacts", "damage", "driver_change",
)  # fmt: skip
JOINED_NUMERIC = {
    "start_hour_of_day": "s.start_hour_of_day",
    "duration_s": "s.duration_s",
    "track_length_m": "s.track_length_m",
    "fuel_capacity_l": "c.fuel_capacity_l",
}
CATEGORICAL = {
    "series": "s.series",
    "track": "s.track",
    "session_name": "s.name",
    "class": "c.class",
    "car_number": "c.number",
    "team": "c.team",
    "manufacturer": "c.manufacturer",
    "compound_name": "l.compound_name",
    "reader": "src.reader",
}


@dataclass
class LapArrays:
    """Lap rows as arrays: ``values[n, k]`` float64 (NaN where the source lacks the channel),
    ``mask[n, k]`` True where a value is present, ids per row, and text columns asked for."""

    columns: list[str]
    values: np.ndarray
    mask: np.ndarray
    session_id: np.ndarray
    car_id: np.ndarray
    categorical: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def column(self, name: str) -> np.ndarray:
        """One numeric column (float64, NaN where missing)."""
        return self.values[:, self.columns.index(name)]

    def subset(self, rows: np.ndarray) -> LapArrays:
        """The rows selected by an index or boolean array."""
        return LapArrays(
            list(self.columns),
            self.values[rows],
            self.mask[rows],
            self.session_id[rows],
            self.car_id[rows],
            {k: v[rows] for k, v in self.categorical.items()},
        )

    def to_torch(self, dtype: object = None) -> tuple[object, object]:
        """(values with NaN replaced by 0, mask) as torch tensors (float32 by default)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        values = torch.as_tensor(np.nan_to_num(self.values, nan=0.0), dtype=dtype)
        return values, torch.as_tensor(self.mask)


def _connect(db: str | Path | sqlite3.Connection) -> tuple[sqlite3.Connection, bool]:
    if isinstance(db, sqlite3.Connection):
        return db, False
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"lap store not found: {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True), True


def load_laps(
    db: str | Path | sqlite3.Connection,
    columns: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    session_ids: Sequence[int] | None = None,
    session_names: Sequence[str] | None = None,
    series: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    timed_only: bool = False,
) -> LapArrays:
    """Laps of the lap store at ``db`` with the numeric ``columns`` named (see ``LAP_NUMERIC``
    and ``JOINED_NUMERIC``) and the text ``categorical`` columns (see ``CATEGORICAL``),
    filtered by session id / name, series and class; ``timed_only`` keeps timed laps."""
    unknown = [c for c in columns if c not in LAP_NUMERIC and c not in JOINED_NUMERIC]
    unknown += [c for c in categorical if c not in CATEGORICAL]
    if unknown:
        raise ValueError(
            f"unknown lap columns {unknown}; numeric: {[*LAP_NUMERIC, *JOINED_NUMERIC]},"
            f" categorical: {list(CATEGORICAL)}"
        )
    select = [JOINED_NUMERIC.get(c, f"l.{c}") for c in columns]
    select += [CATEGORICAL[c] for c in categorical]
    where, params = [], []
    for values, expr in (
        (session_ids, "l.session_id"),
        (session_names, "s.name"),
        (series, "s.series"),
        (classes, "c.class"),
    ):
        if values is not None:
            values = list(values)
            where.append(f"{expr} IN ({', '.join('?' * len(values))})" if values else "0")
            params.extend(values)
    if timed_only:
        where.append("l.timed = 1")
    sql = (
        f"SELECT l.session_id, l.car_id{''.join(', ' + s for s in select)} FROM laps l"
        " JOIN sessions s ON s.session_id = l.session_id JOIN cars c ON c.car_id = l.car_id"
        " JOIN sources src ON src.source_id = s.source_id"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        " ORDER BY l.session_id, l.car_id, l.lap"
    )
    conn, owned = _connect(db)
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        if owned:
            conn.close()
    k = len(columns)
    n = len(rows)
    ids = np.array([r[:2] for r in rows], dtype=np.int64).reshape(n, 2)
    raw = np.array([r[2 : 2 + k] for r in rows], dtype=object).reshape(n, k)
    mask = np.not_equal(raw, None)
    values = np.where(mask, raw, np.nan).astype(np.float64)
    cats = {
        name: np.array([r[2 + k + j] for r in rows], dtype=object)
        for j, name in enumerate(categorical)
    }
    return LapArrays(list(columns), values, mask & ~np.isnan(values), ids[:, 0], ids[:, 1], cats)


def split_by_session(
    arrays: LapArrays, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): whole sessions held out, so no race is in both."""
    sessions = np.unique(arrays.session_id)
    n_test = max(1, round(test_fraction * len(sessions))) if len(sessions) > 1 else 0
    test_sessions = rng.choice(sessions, size=n_test, replace=False)
    is_test = np.isin(arrays.session_id, test_sessions)
    return np.nonzero(~is_test)[0], np.nonzero(is_test)[0]

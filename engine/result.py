"""What a simulation returns: per-replica classification arrays, flag periods, incidents and
(optionally) every lap in the lap store's column names; and mid-race snapshots."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LAP_COLUMNS = (
    "replica",
    "car",
    "lap",
    "lap_time_s",
    "race_time_s",
    "position",
    "class_position",
    "pit_in",
    "pit_out",
    "pit_time_s",
    "compound",
    "tyre_age_laps",
    "fuel_start",
    "fuel_end",
    "energy_start",
    "energy_end",
    "tread_fl",
    "tread_fr",
    "tread_rl",
    "tread_rr",
    "tyre_temp_c",
    "track_temp_c",
    "wetness",
    "rain",
    "flag",
    "damage",
    "driver_change",
    "driver",
    "pace_mode",
)
"""Columns of ``RaceResult.laps``: the lap store's ``laps`` names plus replica, car (index in
the entry list), driver (index in the car's line-up) and pace mode."""


def _cat(parts: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


@dataclass
class RaceResult:
    """Outcome of ``replicas`` races of one scenario; arrays ``[R, C]`` unless flat columns."""

    scenario_name: str
    seed: int
    replicas: int
    car_numbers: list[str]
    car_classes: list[str]
    car_teams: list[str]
    strategy_names: list[str]
    finish_position: np.ndarray
    class_position: np.ndarray
    laps_completed: np.ndarray
    finish_time_s: np.ndarray
    pit_stops: np.ndarray
    pit_time_s: np.ndarray
    retired: np.ndarray
    flag_periods: dict[str, np.ndarray]
    """Flat columns: replica, kind (FlagState), start_s, end_s."""
    incidents: dict[str, np.ndarray]
    """Flat columns: replica, car, race_time_s, kind (text), damage, other_car (the contact
    partner's car index, -1 for none)."""
    laps: dict[str, np.ndarray] | None = None
    """Flat columns ``LAP_COLUMNS`` when laps were recorded."""
    first_replica: int = 0
    """Global index of row 0 (chunks run separately know where they sit)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_cars(self) -> int:
        return len(self.car_numbers)

    def car_index(self, number: str) -> int:
        return self.car_numbers.index(number)

    @classmethod
    def concat(cls, results: Sequence[RaceResult]) -> RaceResult:
        """Join results of consecutive replica ranges (e.g. chunks run on different workers)."""
        if not results:
            raise ValueError("nothing to concatenate")
        ordered = sorted(results, key=lambda r: r.first_replica)
        head = ordered[0]
        for r in ordered[1:]:
            if r.car_numbers != head.car_numbers or r.scenario_name != head.scenario_name:
                raise ValueError("results of different scenarios or fields cannot be joined")

        def stack(name: str) -> np.ndarray:
            return np.concatenate([getattr(r, name) for r in ordered], axis=0)

        def flat(name: str) -> dict[str, np.ndarray]:
            keys = getattr(head, name).keys()
            return {k: np.concatenate([getattr(r, name)[k] for r in ordered]) for k in keys}

        laps = None
        if all(r.laps is not None for r in ordered):
            laps = {k: np.concatenate([r.laps[k] for r in ordered]) for k in head.laps}  # type: ignore[index]
        return cls(
            scenario_name=head.scenario_name,
            seed=head.seed,
            replicas=sum(r.replicas for r in ordered),
            car_numbers=head.car_numbers,
            car_classes=head.car_classes,
            car_teams=head.car_teams,
            strategy_names=head.strategy_names,
            finish_position=stack("finish_position"),
            class_position=stack("class_position"),
            laps_completed=stack("laps_completed"),
            finish_time_s=stack("finish_time_s"),
            pit_stops=stack("pit_stops"),
            pit_time_s=stack("pit_time_s"),
            retired=stack("retired"),
            flag_periods=flat("flag_periods"),
            incidents=flat("incidents"),
            laps=laps,
            first_replica=head.first_replica,
        )

    def classification(self, replica: int = 0) -> list[dict[str, Any]]:
        """Rows of one replica's classification, in finishing order."""
        r = replica
        order = np.argsort(self.finish_position[r], kind="stable")
        rows = []
        for c in order:
            rows.append(
                {
                    "position": int(self.finish_position[r, c]),
                    "class_position": int(self.class_position[r, c]),
                    "number": self.car_numbers[c],
                    "class": self.car_classes[c],
                    "team": self.car_teams[c],
                    "laps": int(self.laps_completed[r, c]),
                    "time_s": float(self.finish_time_s[r, c]),
                    "pit_stops": int(self.pit_stops[r, c]),
                    "pit_time_s": float(self.pit_time_s[r, c]),
                    "retired": bool(self.retired[r, c]),
                    "strategy": self.strategy_names[c],
                }
            )
        return rows


@dataclass
class RaceSnapshot:
    """One replica's race in mid-flight: the clock, the state of every car and the flags.

    ``simulate(..., start=snapshot)`` runs every replica on from it.
    """

    scenario_name: str
    race_time_s: float
    state: dict[str, list]
    """``RaceState`` fields of the one replica, as nested lists (leading dimension 1)."""

    def save(self, path: str | Path, readable: dict[str, Any] | None = None) -> None:
        """Write JSON atomically (temp file in the same folder, then ``os.replace``), with
        ``readable`` (``engine.readable_state``) beside the state for people and tools."""
        path = Path(path)
        payload = {
            "format": "stintsim-race-snapshot/1",
            "scenario_name": self.scenario_name,
            "race_time_s": self.race_time_s,
            **({} if readable is None else {"readable": readable}),
            "state": self.state,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(payload, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def load(path: str | Path) -> RaceSnapshot:
        """The snapshot saved at ``path``; StateFileError (a ValueError) naming the file and
        the problem when it is not one."""
        from engine.state_file import read_state_file

        name, race_time_s, state = read_state_file(path)
        return RaceSnapshot(scenario_name=name, race_time_s=race_time_s, state=state)


class LapRecorder:
    """Collects the laps of each window as numpy column blocks (only when laps are kept)."""

    def __init__(self) -> None:
        self.blocks: dict[str, list[np.ndarray]] = {k: [] for k in LAP_COLUMNS}

    def add(self, columns: dict[str, np.ndarray]) -> None:
        for k in LAP_COLUMNS:
            self.blocks[k].append(columns[k])

    def columns(self) -> dict[str, np.ndarray]:
        out = {k: _cat(v, np.float64) for k, v in self.blocks.items()}
        if out["replica"].size:
            order = np.lexsort((out["lap"], out["car"], out["replica"]))
            out = {k: v[order] for k, v in out.items()}
        return out


def incident_columns(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {
        "replica": _cat(parts["replica"], np.int64),
        "car": _cat(parts["car"], np.int64),
        "race_time_s": _cat(parts["race_time_s"], np.float64),
        "kind": _cat(parts["kind"], np.str_),
        "damage": _cat(parts["damage"], np.float32),
        "other_car": _cat(parts["other_car"], np.int64),
    }


RETIRE_WORDS = {"failure": "failure", "crash": "crash", "out_of_fuel": "out of fuel"}
"""Incident kinds that end a car's race -> the cause as reports write it."""


def retirements(result: RaceResult, replica: int) -> dict[int, tuple[float, str]]:
    """Car index -> (race time [s], cause) of each car whose race ended early in row
    ``replica``; a car out of the race with no such incident (stranded) reads "retired" at an
    unknown time (NaN)."""
    inc = result.incidents
    rows = np.flatnonzero(np.asarray(inc["replica"]) == result.first_replica + replica)
    out: dict[int, tuple[float, str]] = {}
    for i in rows:
        kind = str(inc["kind"][i])
        car = int(inc["car"][i])
        if kind in RETIRE_WORDS and car not in out and bool(result.retired[replica, car]):
            out[car] = (float(inc["race_time_s"][i]), RETIRE_WORDS[kind])
    for car in np.flatnonzero(result.retired[replica]).tolist():
        out.setdefault(int(car), (float("nan"), "retired"))
    return out

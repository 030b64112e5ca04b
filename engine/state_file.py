"""Reading a saved race state (``whatif --save-state`` / ``--from-state`` JSON) with errors that
name the file and what is wrong, instead of a traceback from deep in the engine."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

SNAPSHOT_FORMAT = "stintsim-race-snapshot/1"


class StateFileError(ValueError):
    """A race-state file that cannot be used; the message names the file and the problem."""


def _car_count(path: Path, state: dict[str, Any]) -> int:
    lap = state.get("lap")
    if not isinstance(lap, list) or len(lap) != 1 or not isinstance(lap[0], list):
        raise StateFileError(
            f"{path}: state.lap must be a list holding one list of laps per car "
            f"(one replica), got {type(lap).__name__}"
        )
    if not lap[0]:
        raise StateFileError(f"{path}: state.lap holds no car")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in lap[0]):
        raise StateFileError(f"{path}: state.lap must hold whole numbers of laps >= 0")
    return len(lap[0])


def _check_fields(path: Path, state: dict[str, Any], cars: int) -> None:
    from engine.state import RaceState

    names = [f.name for f in fields(RaceState)]
    missing = [k for k in names if k not in state]
    if missing:
        raise StateFileError(f"{path}: state lacks the field(s) {', '.join(missing)}")
    for name in names:
        value = state[name]
        if not isinstance(value, list) or len(value) != 1:
            raise StateFileError(f"{path}: state.{name} must be a list of one replica's values")
        row = value[0]
        per_car = isinstance(row, list) and len(row) == cars
        per_replica = not isinstance(row, list) or name in ("garage_free_s",)
        if not (per_car or per_replica):
            raise StateFileError(
                f"{path}: state.{name} has {len(row)} values, expected one per car ({cars})"
            )


def read_state_file(path: str | Path) -> tuple[str, float, dict[str, list]]:
    """(scenario name, race time [s], state) of a saved race state; StateFileError if the file
    is not one (not JSON, a JSON list, another format, a missing or malformed field)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateFileError(f"{path}: race state file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{path}: not a readable race state ({exc})") from None
    if not isinstance(payload, dict):
        raise StateFileError(
            f"{path}: a race state is a JSON object (as whatif --save-state writes), "
            f"got a JSON {type(payload).__name__}"
        )
    if payload.get("format") != SNAPSHOT_FORMAT:
        raise StateFileError(f'{path}: expected "format": "{SNAPSHOT_FORMAT}"')
    name = payload.get("scenario_name")
    if not isinstance(name, str):
        raise StateFileError(f"{path}: scenario_name must be a string")
    race_time = payload.get("race_time_s")
    if isinstance(race_time, bool) or not isinstance(race_time, int | float):
        raise StateFileError(f"{path}: race_time_s must be a number of seconds")
    if not math.isfinite(race_time) or race_time < 0:
        raise StateFileError(f"{path}: race_time_s must be finite and >= 0, got {race_time}")
    state = payload.get("state")
    if not isinstance(state, dict):
        raise StateFileError(f"{path}: state must be a JSON object of race-state fields")
    _check_fields(path, state, _car_count(path, state))
    return name, float(race_time), state
